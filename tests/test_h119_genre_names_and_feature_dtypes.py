"""Genre names that hold a comma or a semicolon (Amazon's "Clothing, Shoes & Jewelry") are
read from a list entry, and a catalog's own table reads back; features given in bfloat16 or
float16 are judged by the precision of that dtype."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.catalog import UNIT_NORM_TOLERANCE, read_genres, unit_norm_tolerance
from recoworld.data.interactions import load_interactions

CLOTHING = "Clothing, Shoes & Jewelry"


def _catalog(genre_names, features=None) -> Catalog:
    """Two items, the first of the first genre, the second of the last."""
    genres = torch.zeros(2, len(genre_names), dtype=torch.bool)
    genres[0, 0] = genres[1, -1] = True
    return Catalog(torch.eye(2) if features is None else features, genres, genre_names, ["a", "b"],
                   torch.tensor([0.5, 0.5]), torch.zeros(2))


# ----------------------------------------------------------------- genre names
def test_a_list_entry_may_hold_a_comma_or_a_semicolon_in_both_readers(tmp_path):
    # Both readers refused every form of such a name, though a list entry is unambiguous.
    cells = [["Books"], [CLOTHING, "Rock;Pop"], ("Arts, Crafts & Sewing",)]
    assert read_genres(cells) == [["Books"], [CLOTHING, "Rock;Pop"], ["Arts, Crafts & Sewing"]]
    catalog = Catalog.from_dataframe(pd.DataFrame({"title": ["a", "b", "c"], "genres": cells}))
    assert catalog.genre_names == ("Arts, Crafts & Sewing", "Books", CLOTHING, "Rock;Pop")
    assert catalog.genres.tolist() == [[False, True, False, False], [False, False, True, True],
                                       [True, False, False, False]]
    log, table = tmp_path / "log.csv", tmp_path / "items.parquet"
    pd.DataFrame({"user": ["u", "u"], "item": ["i0", "i1"], "timestamp": [0, 1]}).to_csv(log, index=False)
    pd.DataFrame({"item": ["i0", "i1"], "genres": [["Books"], [CLOTHING]]}).to_parquet(table)
    assert load_interactions(log, items=table).items["genres"].tolist() == [["Books"], [CLOTHING]]


def test_text_with_a_comma_is_refused_and_pointed_to_the_list_form():
    with pytest.raises(ValueError) as error:
        Catalog.from_dataframe(pd.DataFrame({"title": ["a", "b"], "genres": ["Books", CLOTHING]}))
    assert str(error.value) == (
        f"row 1 of column 'genres': {CLOTHING!r} is not |-separated genre names (it is comma-separated): write "
        "Drama|War, not Drama, War; a genre whose name holds a comma goes in a list of names, one per entry: "
        "['Books', 'Arts, Crafts & Sewing'] (in a file, a Parquet list column)")


def test_a_list_entry_holding_the_separator_is_still_refused():
    with pytest.raises(ValueError) as error:
        read_genres([["Books"], ["Drama|War, Epic"]])
    assert str(error.value) == ("row 1: ['Drama|War, Epic'] is not a list of genre names (the entry 'Drama|War, "
                                "Epic' is pipe-separated): give one name per entry: ['Drama', 'War']")


def test_a_catalog_refuses_a_genre_name_holding_the_separator():
    # It was accepted, and to_dataframe wrote it back as two genres, "Drama" and "War".
    with pytest.raises(ValueError, match="^" + re.escape(
            "genre_names[1] is 'Drama|War', which holds '|', the mark between an item's genres in text "
            "(Drama|War); rename the genre without it, e.g. 'Drama/War'") + "$"):
        _catalog(("Books", "Drama|War"))


@pytest.mark.parametrize("names", [("Books", "Drama"), ("Books", CLOTHING), ("Books", "Rock;Pop")])
def test_a_catalog_reads_back_its_own_table(names):
    catalog = _catalog(names)
    table = catalog.to_dataframe()
    # Text where every name can be written in it (as before); lists where one cannot.
    assert table["genres"].tolist() == ([["Books"], [names[1]]] if names[1] != "Drama" else ["Books", "Drama"])
    again = Catalog.from_dataframe(table)
    assert again.genre_names == catalog.genre_names
    assert torch.equal(again.genres, catalog.genres)
    assert torch.allclose(again.features, catalog.features)


# ------------------------------------------------------------- feature dtypes
def test_the_tolerance_follows_the_dtype_the_features_are_given_in():
    assert unit_norm_tolerance(torch.bfloat16) == 2 * 2.0**-7
    assert unit_norm_tolerance(torch.float16) == 2 * 2.0**-10
    for dtype in (torch.float32, torch.float64, torch.int64, torch.bool):
        assert unit_norm_tolerance(dtype) == UNIT_NORM_TOLERANCE


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("where", ["rounded", "normalised"])
def test_unit_rows_in_a_half_precision_dtype_are_accepted_and_stored_unit_in_float32(dtype, where):
    # bfloat16 rounding moves a unit row's norm by up to half its epsilon (3.9e-3), beyond
    # the float32 tolerance: such a catalog was refused, and so was the fix its message gave.
    base = Catalog.synthetic(2000, n_genres=4, feature_dim=64, seed=1)
    raw = base.features * torch.linspace(0.5, 3.0, 2000)[:, None]
    features = base.features.to(dtype) if where == "rounded" else torch.nn.functional.normalize(raw.to(dtype), dim=1)
    catalog = Catalog(features, base.genres, base.genre_names, base.titles, base.popularity, base.quality)
    assert catalog.features.dtype == torch.float32
    # The users' affinity and distance from the familiar read unit rows; stored normalised in
    # float32, the catalog is judged the same when rebuilt (to(), dataclasses.replace).
    norms = torch.linalg.vector_norm(catalog.features, dim=1)
    assert float((norms - 1).abs().max()) < 1e-6
    assert torch.allclose(catalog.features, features.float(), atol=2 * torch.finfo(dtype).eps)
    assert torch.equal(dataclasses.replace(catalog).features, catalog.features)


def test_float32_rows_keep_the_float32_tolerance_and_their_values():
    features = torch.tensor([[1.0005, 0.0], [0.0, 1.0]])
    assert torch.equal(_catalog(("Books", "Drama"), features).features, features)
    with pytest.raises(ValueError, match=r"^features\[0\] \(item 0\) has L2 norm 1\.002;"):
        _catalog(("Books", "Drama"), torch.tensor([[1.002, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize("features", [
    torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.bfloat16),
    torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float16),
    torch.tensor([[3, 4], [0, 1]]),
    np.array([[3.0, 4.0], [0.0, 1.0]]),
    [[3.0, 4.0], [0.0, 1.0]],
], ids=["bfloat16", "float16", "int64", "numpy", "list"])
def test_the_fix_the_message_gives_works_on_the_table_given(features):
    # It said normalize(features, dim=1), which torch refuses for an integer tensor and a
    # NumPy array, and which gave bfloat16 rows that were refused again.
    fix = "torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)"
    with pytest.raises(ValueError) as error:
        _catalog(("Books", "Drama"), features)
    assert str(error.value) == ("features[0] (item 0) has L2 norm 5; every item's features must have unit L2 norm: "
                                f"normalise the rows ({fix})")
    fixed = _catalog(("Books", "Drama"), eval(fix, {"torch": torch, "features": features}))
    assert torch.allclose(fixed.features, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def test_a_half_precision_row_clearly_off_unit_is_still_refused():
    features = torch.tensor([[1.03, 0.0], [0.0, 1.0]], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"^features\[0\] \(item 0\) has L2 norm 1\.03125; every item's features "):
        _catalog(("Books", "Drama"), features)


def test_a_simulated_log_keeps_genre_names_that_hold_a_comma():
    """The generated log of recoworld.apps.calibrate.synthetic took the genres of
    to_dataframe() apart at '|', which fails on the lists written for such names."""
    from recoworld.apps.calibrate.synthetic import simulated_dataset

    base = Catalog.synthetic(100, n_genres=3, feature_dim=4, seed=0)
    names = ("Arts, Crafts & Sewing", "Books", "Music")
    catalog = Catalog(base.features, base.genres, names, base.titles, base.popularity, base.quality)
    items = simulated_dataset(catalog, n_users=5, seed=0).data.items
    assert items["genres"].tolist() == [[names[g] for g in row.nonzero().flatten().tolist()] for row in base.genres]
