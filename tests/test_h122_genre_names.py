"""A catalog's genre names are text that reads back from its own table: names that are not
text, blank or with spaces around them are refused, NumPy's text is stored as ``str``; a
calibrated world that an earlier RecoWorld saved with a genre holding '|' is named as such,
not as damaged."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.apps.calibrate.fit import CalibrationConfig, main as calibrate_main
from recoworld.catalog import SYNTHETIC_GENRES, GenreNameError, read_genres
from recoworld.simulators.calibrated import CalibratedWorld, load_world


def _catalog(genre_names) -> Catalog:
    """One item per genre."""
    n = len(genre_names)
    return Catalog(torch.eye(n), torch.eye(n, dtype=torch.bool), genre_names, [f"item {i}" for i in range(n)],
                   torch.full((n,), 1 / n), torch.zeros(n))


# ----------------------------------------------------------------- Catalog(...)
@pytest.mark.parametrize("name, message", [
    (7, "genre_names[1] is 7, which is not text; give the name as text: '7', as Catalog.from_dataframe names genre "
        "code 7 (genre_names=[str(g) for g in genre_names] converts them all)"),
    (np.int64(7), "genre_names[1] is np.int64(7), which is not text; give the name as text: '7', as "
                  "Catalog.from_dataframe names genre code 7 (genre_names=[str(g) for g in genre_names] converts "
                  "them all)"),
    (7.0, "genre_names[1] is 7.0, which is not text; give the name as text: '7', as Catalog.from_dataframe names "
          "genre code 7"),
    (None, "genre_names[1] is None, which is not text; give each genre's name as text, e.g. 'Unknown'"),
    (float("nan"), "genre_names[1] is nan, which is not text; give each genre's name as text, e.g. 'Unknown'"),
    (True, "genre_names[1] is True, which is not text; give each genre's name as text, e.g. 'Unknown'"),
    (b"Drama", "genre_names[1] is b'Drama', which is not text; decode it: 'Drama'"),
    ("", "genre_names[1] is '', which is blank; give the genre a name, e.g. 'Unknown'"),
    ("  ", "genre_names[1] is '  ', which is blank; give the genre a name, e.g. 'Unknown'"),
    (" Drama", "genre_names[1] is ' Drama', with spaces around it; give 'Drama'"),
    ("Drama\n", "genre_names[1] is 'Drama\\n', with spaces around it; give 'Drama'"),
], ids=["int", "numpy-int", "float", "None", "nan", "bool", "bytes", "empty", "blank", "leading", "trailing"])
def test_a_genre_name_that_would_not_read_back_is_refused_naming_it_and_the_fix(name, message):
    # Each was accepted; its catalog's table read back another name, or no genre at all.
    with pytest.raises(GenreNameError, match=f"^{re.escape(message)}$") as error:
        _catalog(("Books", name))
    assert isinstance(error.value, ValueError) and error.value.column == 1


def test_the_old_refusals_keep_their_messages():
    with pytest.raises(GenreNameError, match="^" + re.escape(
            "genre_names[0] is 'Drama|War', which holds '|', the mark between an item's genres in text (Drama|War); "
            "rename the genre without it, e.g. 'Drama/War'") + "$"):
        _catalog(("Drama|War", "Books"))
    with pytest.raises(ValueError, match=re.escape("genre_names holds 'Books' twice (columns 0 and 1)")):
        _catalog(("Books", np.str_("Books")))


@pytest.mark.parametrize("names", [np.array(["Books", "Drama"]), pd.Index(["Books", "Drama"]),
                                   (np.str_("Books"), "Drama")], ids=["numpy-array", "pandas-index", "numpy-str"])
def test_text_of_numpy_and_pandas_is_taken_and_stored_as_str(names):
    catalog = _catalog(names)
    assert catalog.genre_names == ("Books", "Drama")
    assert [type(name) for name in catalog.genre_names] == [str, str]
    assert [type(name) for name in catalog.to("cpu").genre_names] == [str, str]


@pytest.mark.parametrize("names", [
    ("Books", "[Classics]"), ("[Unrated", "Drama"), ("Books", "Drama]"), ("Sci-Fi/Fantasy", "7", "N/A"),
    ("Arts, Crafts & Sewing", "[Classics]"),
])
def test_every_catalog_taken_reads_back_from_its_own_table(names):
    # A name starting with '[' or ending with ']' joined as text looked like a list written
    # as text ("[Classics]") and was refused by from_dataframe: such names go in lists.
    catalog = _catalog(names)
    again = Catalog.from_dataframe(catalog.to_dataframe())
    order = sorted(range(len(names)), key=lambda j: names[j])  # from_dataframe sorts the genres
    assert again.genre_names == tuple(names[j] for j in order)
    assert torch.equal(again.genres, catalog.genres[:, order])


def test_a_slash_separates_nothing():
    # Real genre names hold a slash ("Sci-Fi/Fantasy"): only '|' separates.
    assert read_genres(["Sci-Fi/Fantasy", "Drama/War|Epic", ["Drama/War"]]) == [
        ["Sci-Fi/Fantasy"], ["Drama/War", "Epic"], ["Drama/War"]]
    catalog = Catalog.from_dataframe(pd.DataFrame({"title": ["a", "b"], "genres": ["Sci-Fi/Fantasy", "Drama"]}))
    assert catalog.genre_names == ("Drama", "Sci-Fi/Fantasy")


def test_the_library_s_own_catalogs_are_taken(small_world):
    for n_genres in range(1, len(SYNTHETIC_GENRES) + 1):
        assert Catalog.synthetic(20, n_genres=n_genres, seed=0).genre_names == SYNTHETIC_GENRES[:n_genres]
    world, data = small_world  # recoworld calibrate's catalog (read_genres, from_dataframe)
    assert all(type(name) is str for name in world.catalog.genre_names)
    codes = Catalog.from_dataframe(pd.DataFrame({"title": ["a", "b"], "genres": [7, [np.int64(3), "Drama"]]}))
    assert codes.genre_names == ("3", "7", "Drama")


# ----------------------------------------------------------- a world saved earlier
def _as_an_earlier_recoworld_saved_it(world: CalibratedWorld, folder, items) -> str:
    """Save ``world`` at ``folder`` as RecoWorld before the genre checks saved a world fitted
    (``recoworld calibrate --data log.csv --items ITEMS``) from an item table whose list
    entries held ``Sci-Fi|Fantasy``: the same world.json of version 17 (the name kept as it
    was, in the catalog's genre names and the users' favourite genres) and tensors.pt. Returns
    the genre it renamed."""
    world.save(folder)
    document = json.loads((folder / "world.json").read_text())
    names = document["catalog"]["genre_names"]
    column = names.index("Sci-Fi")
    names[column] = "Sci-Fi|Fantasy"
    document["users"]["favourite_genre"] = ["Sci-Fi|Fantasy" if g == "Sci-Fi" else g
                                            for g in document["users"]["favourite_genre"]]
    document["meta"]["data"]["source"] = {"kind": "interactions", "data": str(folder.parent / "log.csv"),
                                          "items": str(items), "users": None}
    document["meta"]["calibration"] = asdict(CalibrationConfig())  # the command's settings
    (folder / "world.json").write_text(json.dumps(document, indent=1))
    return column


def test_a_world_saved_with_a_genre_holding_the_separator_is_named_not_called_damaged(small_world, tmp_path, capsys):
    world, _ = small_world
    folder, items = tmp_path / "world", tmp_path / "items.parquet"
    assert CalibratedWorld.load(world.save(tmp_path / "now")).catalog.genre_names == world.catalog.genre_names
    column = _as_an_earlier_recoworld_saved_it(world, folder, items)
    message = (
        f"{folder}: this calibrated world's genre 'Sci-Fi|Fantasy' (catalog.genre_names[{column}] in world.json), "
        "which holds '|', the mark between an item's genres in text (Drama|War), is a name this RecoWorld refuses, "
        "though the earlier RecoWorld that fitted the world took it (the world is not damaged). Rename the genre "
        f"in the data it was fitted from (the item table {items}), e.g. to 'Sci-Fi/Fantasy', and fit the world "
        f"again: `recoworld calibrate --data {tmp_path / 'log.csv'} --items {items} --out {folder} --force`")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_world(folder)
    assert calibrate_main(["--out", str(folder), "--quiet"]) == 2
    assert capsys.readouterr().err == f"recoworld calibrate: {message}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["tensors.pt", "world.json"]  # left as it was
