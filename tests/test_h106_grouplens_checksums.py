"""GroupLens' files copied into the cache by hand are checked against the release's SHA-256:
a copy cut short or edited is refused, naming the file, both checksums and the way out, and
never downloaded over; the genuine files are used. A folder given as ``path`` is read as it
is, and its tables say whether it is the release.

GroupLens' files cannot be shipped with the tests (their licence forbids redistribution), so
the genuine ones are rebuilt from RecBole's copy in the pinned wheel: u.data and u.user hold
its rows byte for byte in GroupLens' layout. RecBole dropped u.item's dates and links, so
u.item is written from its tables and stands in for the release's by its own checksum.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import data_support
from data_support import fetched_cache
from recoworld.data.fetch import MOVIELENS_100K, FetchError, fetch
from recoworld.data.movielens import GENRES, load_movielens_100k

U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
U_USER_SHA256 = "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def grouplens(tmp_path_factory) -> dict[str, bytes]:
    """u.data and u.user rebuilt from RecBole's files, and a u.item written from its items."""
    recbole = fetched_cache(tmp_path_factory, "movielens-100k", "MovieLens-100K") / "movielens-100k"
    ratings = (recbole / "ml-100k.inter").read_text().splitlines()[1:]
    users = (recbole / "ml-100k.user").read_text().splitlines()[1:]
    items = load_movielens_100k(recbole).items
    item_lines = [f"{i.original_id}|{i.title}||||" + "|".join("1" if g in i.genres else "0" for g in GENRES)
                  for i in items.itertuples()]
    return {
        "u.data": ("\n".join(ratings) + "\n").encode(),
        "u.user": ("\n".join(line.replace("\t", "|") for line in users) + "\n").encode(),
        "u.item": ("\n".join(item_lines) + "\n").encode("latin-1"),
    }


@pytest.fixture
def by_hand(grouplens, tmp_path, monkeypatch) -> Path:
    """A cache holding the GroupLens files copied by hand (no RecBole files), where pip fails."""
    monkeypatch.setitem(MOVIELENS_100K.by_hand_sha256, "u.item", sha256(grouplens["u.item"]))
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    for name, data in grouplens.items():
        (folder / name).write_bytes(data)
    data_support.fake_pip(monkeypatch, lambda dest: None, returncode=1, stderr="ERROR: pip must not run\n")
    return folder


def test_the_release_checksums_are_those_of_recboles_rows_in_grouplens_layout(grouplens):
    assert sha256(grouplens["u.data"]) == MOVIELENS_100K.by_hand_sha256["u.data"] == U_DATA_SHA256
    assert sha256(grouplens["u.user"]) == MOVIELENS_100K.by_hand_sha256["u.user"] == U_USER_SHA256


def test_a_genuine_copy_made_by_hand_is_used_without_network(by_hand, tmp_path):
    assert fetch("movielens-100k", cache_dir=tmp_path, progress=False) == by_hand
    assert fetch("movielens-100k", cache_dir=tmp_path, progress=False) == by_hand, "and again, from the kept checksums"
    data = load_movielens_100k(by_hand)
    assert (len(data.ratings), len(data.items), len(data.users)) == (100_000, 1_682, 943)
    assert data.source == {"kind": "movielens-100k"}


def test_a_copy_cut_short_by_hand_is_refused_naming_the_file_both_checksums_and_the_fix(by_hand, tmp_path, grouplens):
    # The last rating is lost, as in a copy interrupted midway.
    cut = grouplens["u.data"][:grouplens["u.data"].rstrip(b"\n").rfind(b"\n") + 1]
    (by_hand / "u.data").write_bytes(cut)
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        f"the copy of movielens-100k in {by_hand} differs from GroupLens' ml-100k.zip: u.data has SHA-256 "
        f"{sha256(cut)}, expected {U_DATA_SHA256}; copy the files from the unzipped ml-100k.zip into {by_hand} again "
        "(where every recoworld command looks), or pass the folder that holds your own copy to "
        "recoworld.data.movielens.load_movielens_100k(path) to use it as it is"
    )
    assert (by_hand / "u.data").read_bytes() == cut, "the user's copy is left as it is, not downloaded over"
    assert sorted(p.name for p in by_hand.iterdir()) == ["u.data", "u.item", "u.user"]


def test_a_file_edited_after_it_was_checked_is_checked_again(by_hand, tmp_path, grouplens):
    """The checksums a process keeps are the files' own: an edit of the same size is seen."""
    assert fetch("movielens-100k", cache_dir=tmp_path, progress=False) == by_hand
    first = grouplens["u.user"].index(b"|24|")
    edited = grouplens["u.user"][:first] + b"|42|" + grouplens["u.user"][first + 4:]
    (by_hand / "u.user").write_bytes(edited)
    (by_hand / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(reversed(GENRES))) + "\n")
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    genre = sha256((by_hand / "u.genre").read_bytes())
    assert (f"differs from GroupLens' ml-100k.zip: u.user has SHA-256 {sha256(edited)}, expected {U_USER_SHA256}; "
            f"u.genre has SHA-256 {genre}, expected {MOVIELENS_100K.by_hand_sha256['u.genre']}; copy the files") \
        in str(err.value)


def test_a_folder_given_as_path_is_read_as_it_is_and_its_tables_name_the_files_that_differ(by_hand, grouplens):
    """A copy changed on purpose is the user's to use: read, not refused, and never called
    MovieLens-100K (a world calibrated on it records this source)."""
    ratings = grouplens["u.data"].splitlines(keepends=True)
    edited = b"".join(ratings[:-1]) + ratings[-1].replace(b"\t3\t", b"\t4\t", 1)
    (by_hand / "u.data").write_bytes(edited)
    data = load_movielens_100k(by_hand)
    assert len(data.ratings) == 100_000
    assert data.source == {"kind": "given", "read_from": str(by_hand.resolve()), "altered": {"u.data": sha256(edited)}}


def test_grouplens_titles_that_end_in_a_space_read_as_recboles(grouplens, tmp_path):
    """Three titles of the release's u.item end in a space (items 1127, 1200 and 1634 here,
    "Two Friends (1986) "), which RecBole's copy drops: both layouts give the same tables."""
    lines = grouplens["u.item"].decode("latin-1").splitlines()
    spaced = list(lines)
    for row in (1127, 1200, 1634):
        fields = spaced[row].split("|")
        fields[1] += " "
        spaced[row] = "|".join(fields)
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name, data in grouplens.items():
        (folder / name).write_bytes(data)
    (folder / "u.item").write_bytes(("\n".join(spaced) + "\n").encode("latin-1"))
    titles = [line.split("|")[1] for line in lines]
    assert load_movielens_100k(folder).items["title"].tolist() == titles
