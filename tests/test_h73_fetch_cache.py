"""The data cache as users meet it: a copy altered in place, fetches at once, a fetch killed
midway, a cache that cannot be written, and local folders that are not quite the data set's."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

import data_support
from data_support import fetched_cache
from recoworld.data import fetch as fetch_module
from recoworld.data.cache import cache_dir
from recoworld.data.fetch import FetchError, fetch, main
from recoworld.data.movielens import load_movielens_100k
from recoworld.data.obd import load_open_bandit

MEMBER_DIR = "recbole/dataset_example/ml-100k"
LOCK = ".movielens-100k.lock"


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> dict[str, bytes]:
    folder = fetched_cache(tmp_path_factory, "movielens-100k", "MovieLens-100K") / "movielens-100k"
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def fake_pip(monkeypatch, files: dict[str, bytes] | None = None, returncode: int = 0, stderr: str = "",
             before=lambda: None) -> list:
    """pip replaced by a fake that calls ``before()`` and then drops a recbole wheel holding ``files``."""
    def write_wheel(dest: Path) -> None:
        before()
        with zipfile.ZipFile(dest / "recbole-1.2.1-py3-none-any.whl", "w") as wheel:
            for name, data in (files or {}).items():
                wheel.writestr(f"{MEMBER_DIR}/{name}", data)

    return data_support.fake_pip(monkeypatch, write_wheel, returncode, stderr)


def altered(data: bytes) -> bytes:
    """The ratings with the first rating changed: every row still there, one value wrong."""
    header, first, rest = data.split(b"\n", 2)
    user, item, rating, timestamp = first.split(b"\t")
    return b"\n".join([header, b"\t".join([user, item, b"1" if rating != b"1" else b"2", timestamp]), rest])


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- a copy altered in place ----------------------------------------------------------------

def test_a_cached_file_altered_with_its_rows_intact_is_named_and_fetched_again(real_files, tmp_path, monkeypatch,
                                                                               capsys):
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    for name, data in real_files.items():
        (folder / name).write_bytes(data)
    (folder / "ml-100k.inter").write_bytes(altered(real_files["ml-100k.inter"]))
    damage = (f"the copy in {folder} is damaged: ml-100k.inter is not the file recbole==1.2.1 ships (its SHA-256 "
              "differs)")
    fake_pip(monkeypatch, returncode=1, stderr="ERROR: No matching distribution found for recbole==1.2.1\n")
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert f"\n{damage}; it was left as it is.\nFetching 'movielens-100k' needs access to PyPI" in str(err.value)
    assert (folder / "ml-100k.inter").read_bytes() == altered(real_files["ml-100k.inter"]), "left as it was"

    fake_pip(monkeypatch, real_files)
    assert main(["fetch", "movielens-100k", "--cache-dir", str(tmp_path)]) == 0
    assert f"{damage}; downloading it again\n" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == real_files
    assert listing(tmp_path) == [LOCK, "movielens-100k"]


def test_an_archive_whose_file_is_not_the_releases_is_refused(real_files, tmp_path, monkeypatch):
    fake_pip(monkeypatch, {**real_files, "ml-100k.inter": altered(real_files["ml-100k.inter"])})
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert str(err.value) == ("movielens-100k failed verification: ml-100k.inter is not the file recbole==1.2.1 "
                              "ships (its SHA-256 differs); nothing was saved to the cache")
    assert listing(tmp_path) == [LOCK]


# --- fetches at once, and a fetch killed midway -----------------------------------------------

def test_two_fetches_at_once_download_once_the_second_waiting_for_the_first(real_files, tmp_path, monkeypatch,
                                                                            caplog):
    final, lock = tmp_path / "movielens-100k", tmp_path / LOCK
    waiting = f"waiting for another process to finish writing {final} (it holds {lock})"

    def until_the_second_waits():
        deadline = time.monotonic() + 60
        while waiting not in caplog.messages and time.monotonic() < deadline:
            time.sleep(0.01)

    calls = fake_pip(monkeypatch, real_files, before=until_the_second_waits)
    found, errors = [], []

    def fetch_it():
        try:
            found.append(fetch("movielens-100k", cache_dir=tmp_path, progress=False))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with caplog.at_level(logging.WARNING):
        first = threading.Thread(target=fetch_it)
        first.start()
        deadline = time.monotonic() + 60
        while not calls and time.monotonic() < deadline:  # the first holds the lock and downloads
            time.sleep(0.01)
        second = threading.Thread(target=fetch_it)
        second.start()
        for thread in (first, second):
            thread.join(120)
    assert errors == []
    assert found == [final, final] and len(calls) == 1, "one download; the second finds the first one's copy"
    assert caplog.messages == [waiting]
    assert listing(tmp_path) == [LOCK, "movielens-100k"]


# Fetches into the cache argv[1], killing itself once the download has begun.
KILLED_FETCH = textwrap.dedent("""
    import os, signal, sys
    from recoworld.data import fetch

    def killed(requirement, dest, wheel=True):
        dest.mkdir(parents=True)
        (dest / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"half a wheel")
        os.kill(os.getpid(), signal.SIGKILL)

    fetch.download_distribution = killed
    fetch.fetch("movielens-100k", cache_dir=sys.argv[1], progress=False)
""")


def test_a_fetch_killed_midway_leaves_no_data_set_and_the_next_fetch_clears_what_it_left(real_files, tmp_path,
                                                                                         monkeypatch):
    killed = subprocess.run([sys.executable, "-c", KILLED_FETCH, str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [leftover] = [name for name in listing(tmp_path) if name != LOCK]
    assert leftover.startswith(".movielens-100k-") and leftover.endswith(".partial")
    other = Path(tempfile.mkdtemp(prefix=".open-bandit-", suffix=".partial", dir=tmp_path))  # not this data set's

    fake_pip(monkeypatch, real_files)
    assert fetch("movielens-100k", cache_dir=tmp_path, progress=False) == tmp_path / "movielens-100k"
    assert listing(tmp_path) == sorted([LOCK, other.name, "movielens-100k"])
    assert len(load_movielens_100k(tmp_path / "movielens-100k").ratings) == 100_000


# --- a cache that cannot be written -----------------------------------------------------------

@pytest.mark.parametrize("code, fix", [
    (errno.EROFS, "give a folder you can write"),
    (errno.ENOSPC, "free some space, or give another folder"),
])
def test_a_cache_that_cannot_be_written_is_named_with_the_fix(tmp_path, monkeypatch, capsys, code, fix):
    def refused(prefix, suffix, dir):
        raise OSError(code, os.strerror(code), os.path.join(dir, prefix + "x" + suffix))

    monkeypatch.setattr(fetch_module.tempfile, "mkdtemp", refused)
    calls = fake_pip(monkeypatch, {})
    assert main(["fetch", "movielens-100k", "--cache-dir", str(tmp_path), "--quiet"]) == 1
    assert capsys.readouterr() == ("", (
        f"recoworld data fetch: error: could not save movielens-100k in the cache {tmp_path} "
        f"({tmp_path / '.movielens-100k-x.partial'}: {os.strerror(code)}); {fix} (--cache-dir, or "
        "$RECOWORLD_CACHE)\n"))
    assert calls == [] and listing(tmp_path) == [LOCK]


def test_a_cache_folder_that_cannot_be_created_is_named(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("mine")
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(ValueError) as err:
        cache_dir()
    assert str(err.value) == (f"$RECOWORLD_CACHE {tmp_path / 'file' / 'cache'} cannot be created (Not a directory); "
                              "point $RECOWORLD_CACHE at a folder you can write")
    assert main(["fetch", "movielens-100k", "--quiet"]) == 1
    assert capsys.readouterr().err == f"recoworld data fetch: error: {err.value}\n"
    assert (tmp_path / "file").read_text() == "mine"


# --- local folders that are not quite the data set's ------------------------------------------

def test_a_movielens_path_one_step_off_names_the_folder_meant(tmp_path):
    unzipped = tmp_path / "downloads" / "ml-100k"
    unzipped.mkdir(parents=True)
    for name in ("u.data", "u.item", "u.user"):
        (unzipped / name).write_text("")
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as archive:
        archive.writestr("ml-100k/u.data", "")
    with pytest.raises(ValueError) as err:
        load_movielens_100k(tmp_path / "downloads")
    assert str(err.value) == (f"{tmp_path / 'downloads'} holds neither MovieLens-100K layout, but its folder "
                              f"{unzipped} does: pass that folder")
    with pytest.raises(ValueError) as err:
        load_movielens_100k(tmp_path / "ml-100k.zip")
    assert str(err.value) == (
        f"{tmp_path / 'ml-100k.zip'} is a file, not a folder: expected GroupLens' files u.data, u.item, u.user "
        "(ml-100k.zip, unzipped) or RecBole's files ml-100k.inter, ml-100k.item, ml-100k.user (recoworld data fetch "
        "movielens-100k); unzip it and pass the folder ml-100k it holds")


@pytest.mark.parametrize("given, meant", [
    ("cache", "cache/open-bandit"),  # the cache root
    ("cache/open-bandit/random", "cache/open-bandit"),  # a policy's folder
    ("cache/open-bandit/random/all", "cache/open-bandit"),  # a campaign's folder
    ("obp-0.5.7", "obp-0.5.7/obp/dataset/obd"),  # obp's unpacked sdist
])
def test_an_open_bandit_path_one_step_off_names_the_folder_meant(tmp_path, given, meant):
    for root in ("cache/open-bandit", "obp-0.5.7/obp/dataset/obd"):
        for policy in ("random", "bts"):
            (tmp_path / root / policy / "all").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as err:
        load_open_bandit("random", "all", path=tmp_path / given)
    assert str(err.value).startswith(f"{tmp_path / given} is not a folder in the Open Bandit Dataset layout, but "
                                     f"{tmp_path / meant} is: pass that folder; the Open Bandit Dataset layout is ")
