"""One reading of an item's genres: Catalog.from_dataframe and the item table of
``recoworld calibrate --items`` read the same cells the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.data.interactions import load_interactions


def _catalog_genres(cells) -> list[list[str]]:
    catalog = Catalog.from_dataframe(pd.DataFrame({"title": [f"t{i}" for i in range(len(cells))], "genres": cells}))
    return [[catalog.genre_names[j] for j in np.flatnonzero(row)] for row in catalog.genres.numpy()]


def _table_genres(tmp_path, genres) -> list[list[str]]:
    """The genres that load_interactions reads from a Parquet item table of ``genres``."""
    items = [f"i{j}" for j in range(len(genres))]
    log = tmp_path / "log.csv"
    pd.DataFrame({"user": ["u"] * len(items), "item": items, "timestamp": range(len(items))}).to_csv(log, index=False)
    table = tmp_path / "items.parquet"
    pd.DataFrame({"item": items, "genres": genres}).to_parquet(table)
    return load_interactions(log, items=table).items["genres"].tolist()


def test_a_number_is_a_genre_code_in_both_readers(tmp_path):
    # from_dataframe refused a genre code that the item table read.
    assert _catalog_genres([7.0, 4, "Drama"]) == [["7"], ["4"], ["Drama"]]
    assert _table_genres(tmp_path, [7.0, 4.0, np.nan]) == [["7"], ["4"], ["unknown"]]


def test_lists_and_text_read_the_same_in_both_readers(tmp_path):
    cells = [["War", None, " Comedy "], ["Drama", "Drama"], [" Drama", "War"]]
    assert _table_genres(tmp_path, cells) == [["War", "Comedy"], ["Drama"], ["Drama", "War"]]
    assert _catalog_genres(cells) == [["Comedy", "War"], ["Drama"], ["Drama", "War"]]  # in the catalog's column order
    assert _catalog_genres(["Drama | War", "Drama|Drama|"]) == [["Drama", "War"], ["Drama"]]


@pytest.mark.parametrize("cell, expected", [
    ("Drama, War", "|-separated genre names (it is comma-separated): write Drama|War, not Drama, War; a genre whose "
                   "name holds a comma goes in a list of names, one per entry: ['Books', 'Arts, Crafts & Sewing'] (in "
                   "a file, a Parquet list column)"),
    ("Drama;War", "|-separated genre names (it is semicolon-separated): write Drama|War, not Drama;War"),
    ("['Drama', 'War']", "|-separated genre names (it is a Python list written as text): write Drama|War, or a list "
                         "of names (in a file, a Parquet list column)"),
])
def test_from_dataframe_refuses_the_text_that_the_item_table_refuses(cell, expected):
    # It read "Drama, War" as one genre of that name.
    with pytest.raises(ValueError) as error:
        Catalog.from_dataframe(pd.DataFrame({"title": ["A", "B"], "genres": ["Comedy", cell]}))
    assert str(error.value) == f"row 1 of column 'genres': {cell!r} is not {expected}"


@pytest.mark.parametrize("genres, shown, expected", [
    ([["Drama|War"], ["War"]], "['Drama|War']",
     "a list of genre names (the entry 'Drama|War' is pipe-separated): give one name per entry: ['Drama', 'War']"),
    ([7.5, 1.0], "7.5", "a genre code (it is not a whole number): give genre codes as whole numbers, or genre names"),
    ([True, False], "True", "genre names (it holds a boolean): give each item's genre names, e.g. Drama|War"),
])
def test_the_item_table_refuses_cells_no_reader_can_name_genres_by(tmp_path, genres, shown, expected):
    # A list entry "Drama|War" was one genre named with the separator (which to_dataframe
    # writes back as two), 7.5 genre "7.5", True genre "True". (A list entry holding a comma
    # is a name such as "Arts, Crafts & Sewing": test_h119_genre_names_and_feature_dtypes.)
    with pytest.raises(ValueError) as error:
        _table_genres(tmp_path, genres)
    assert str(error.value) == f"{tmp_path / 'items.parquet'}: row 1, column 'genres': {shown} is not {expected}"


def test_an_item_without_a_genre_is_unknown_in_the_table_and_refused_by_from_dataframe(tmp_path):
    from recoworld.catalog import read_genres

    cells = ["", None, [], " | ", float("nan")]
    assert read_genres(cells, no_genre="unknown") == [["unknown"]] * 5
    assert read_genres(cells) == [[]] * 5
    assert _table_genres(tmp_path, [[], None, ["War"]]) == [["unknown"], ["unknown"], ["War"]]
    with pytest.raises(ValueError, match=r"^row 1 of column 'genres' has no genre; give every item one$"):
        Catalog.from_dataframe(pd.DataFrame({"title": ["A", "B"], "genres": ["War", " | "]}))
