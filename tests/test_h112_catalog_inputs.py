"""Catalog inputs that torch refused with its own errors, or that were silently wrong:
Catalog.synthetic's arguments, from_dataframe's named columns and genre names, and the
rules a catalog built directly must keep."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog

LONG = 9223372036854775807


@pytest.mark.parametrize("kwargs, message", [
    ({"n_items": 10.0}, "Catalog.synthetic.n_items=10.0: must be an integer >= 1"),
    ({"n_items": True}, "Catalog.synthetic.n_items=True: must be an integer >= 1"),
    ({"n_items": "10"}, "Catalog.synthetic.n_items='10': must be an integer >= 1"),
    ({"n_items": 0}, "Catalog.synthetic.n_items=0: must be an integer >= 1"),
    ({"n_genres": 2.0}, "Catalog.synthetic.n_genres=2.0: must be an integer in [1, 16]"),
    ({"n_genres": 17}, "Catalog.synthetic.n_genres=17: must be an integer in [1, 16]"),
    ({"feature_dim": -1}, "Catalog.synthetic.feature_dim=-1: must be an integer >= 1"),
    ({"feature_dim": 0}, "Catalog.synthetic.feature_dim=0: must be an integer >= 1"),
    ({"seed": 2**70}, f"Catalog.synthetic.seed={2**70}: must be an integer in [0, {LONG}]"),
    ({"seed": -1}, f"Catalog.synthetic.seed=-1: must be an integer in [0, {LONG}]"),
    ({"multi_genre_prob": 2.0}, "Catalog.synthetic.multi_genre_prob=2.0: must be in [0, 1]"),
    ({"popularity_exponent": float("nan")}, "Catalog.synthetic.popularity_exponent=nan: must be a finite number"),
    ({"popularity_exponent": -40.0}, "Catalog.synthetic.popularity_exponent=-40.0: with 10 items the Zipf weights "
                                     "rank**40 sum beyond the float32 range; choose an exponent closer to 0"),
])
def test_synthetic_names_a_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Catalog.synthetic(**{"n_items": 10, **kwargs})


def test_synthetic_takes_numpy_integers_and_gives_the_same_catalog():
    cat = Catalog.synthetic(np.int64(50), n_genres=np.int32(4), feature_dim=np.int64(3), seed=np.int64(7))
    assert torch.equal(cat.features, Catalog.synthetic(50, n_genres=4, feature_dim=3, seed=7).features)


ITEMS = pd.DataFrame({"title": ["A", "B"], "genres": ["Drama | War", [" War", "Comedy "]],
                      "emb": [[3.0, 4.0], [0.0, 2.0]], "pop": [1, 2], "score": [1.0, 2.0]})
COLUMNS = "['title', 'genres', 'emb', 'pop', 'score']"


@pytest.mark.parametrize("kwargs, message", [
    ({"features": "embb"}, f"features='embb': the DataFrame has no such column (did you mean 'emb'?); its columns are "
                           f"{COLUMNS} (features=None gives the normalised genre vectors)"),
    ({"popularity": "popp"}, f"popularity='popp': the DataFrame has no such column (did you mean 'pop'?); its columns "
                             f"are {COLUMNS} (popularity=None gives every item the same share)"),
    ({"quality": "qualty"}, f"quality='qualty': the DataFrame has no such column; its columns are {COLUMNS} "
                            "(quality=None gives every item quality 0)"),
    ({"features": []}, "features=[] names no column; give a column of vectors, a list of numeric columns, or None for "
                       "the normalised genre vectors"),
])
def test_from_dataframe_refuses_a_named_column_it_does_not_have(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Catalog.from_dataframe(ITEMS, **kwargs)


def test_from_dataframe_defaults_stand_in_for_missing_default_columns():
    cat = Catalog.from_dataframe(ITEMS)  # no 'popularity', 'quality' nor 'features' column
    assert cat.popularity.tolist() == [0.5, 0.5] and cat.quality.tolist() == [0.0, 0.0]
    assert torch.equal(cat.features, torch.nn.functional.normalize(cat.genres.float(), dim=1))
    named = Catalog.from_dataframe(ITEMS, features="emb", popularity="pop", quality="score")
    assert torch.allclose(named.features, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    assert named.popularity.tolist() == pytest.approx([2 / 5, 3 / 5])


def test_from_dataframe_reads_genre_names_without_their_spaces():
    cat = Catalog.from_dataframe(ITEMS)
    assert cat.genre_names == ("Comedy", "Drama", "War")
    assert cat.genres.tolist() == [[False, True, True], [True, False, True]]


def test_from_dataframe_refuses_a_feature_row_of_zeros():
    items = ITEMS.assign(emb=[[1.0, 0.0], [0.0, 0.0]], a=[1.0, 0.0], b=[2.0, 0.0])
    with pytest.raises(ValueError, match=re.escape(
            "row 1 of column 'emb' is all zeros (1 row in all); an item's features give it a direction, so give "
            "every item a nonzero vector (or features=None to use the genres)")):
        Catalog.from_dataframe(items, features="emb")
    with pytest.raises(ValueError, match=re.escape("row 1 of the feature columns ['a', 'b'] is all zeros")):
        Catalog.from_dataframe(items, features=["a", "b"])


def _tables(n_items=4):
    cat = Catalog.synthetic(n_items, n_genres=3, feature_dim=5, seed=3)
    return dict(features=cat.features, genres=cat.genres, genre_names=cat.genre_names, titles=list(cat.titles),
                popularity=cat.popularity, quality=cat.quality)


def test_a_catalog_built_from_numpy_arrays_holds_the_same_tensors():
    tables = _tables()
    arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in tables.items()}
    cat = Catalog(**{**arrays, "genre_names": list(tables["genre_names"])})
    assert cat.genre_names == tables["genre_names"] and cat.genres.dtype == torch.bool
    for key in ("features", "genres", "popularity", "quality"):
        assert torch.equal(getattr(cat, key), tables[key])


@pytest.mark.parametrize("change, message", [
    (lambda t: {"popularity": t["popularity"] * 2},
     "popularity sums to 2; it holds each item's share of all interactions and must sum to 1: divide it by its sum "
     "(popularity / popularity.sum())"),
    (lambda t: {"popularity": torch.tensor([0.5, 0.75, -0.25, 0.0])},
     "popularity[2] is -0.25 (item 2); popularity holds each item's share of all interactions, which is >= 0"),
    (lambda t: {"genre_names": ("Action", "Comedy", "Action")},
     "genre_names holds 'Action' twice (columns 0 and 2); give each genre column its own name, or merge the two: "
     "genres[:, 0] | genres[:, 2]"),
    (lambda t: {"genre_names": "ABC"}, "genre_names='ABC' is one string; give a sequence of genre names, one per "
                                       "column of genres"),
    (lambda t: {"features": t["features"] * torch.tensor([[1.0], [3.0], [1.0], [3.0]])},
     "features[1] (item 1, the first of 2 such rows) has L2 norm 3; every item's features must have unit L2 norm: "
     "normalise the rows (torch.nn.functional.normalize(features, dim=1))"),
    (lambda t: {"features": t["features"] * torch.tensor([[1.0], [1.0], [0.0], [1.0]])},
     "features[2] (item 2) is the zero vector; every item's features must have unit L2 norm, so give each item a "
     "nonzero feature vector and normalise the rows (torch.nn.functional.normalize(features, dim=1))"),
    (lambda t: {"features": torch.zeros(4, 0)}, "features has shape (4, 0); give each item at least one feature "
                                                "dimension"),
])
def test_a_catalog_built_directly_refuses_what_breaks_its_rules(change, message):
    tables = _tables()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Catalog(**{**tables, **change(tables)})


def test_rounding_within_the_tolerances_is_accepted():
    tables = _tables()
    cat = Catalog(**{**tables, "features": tables["features"].half(), "popularity": tables["popularity"] * (1 + 1e-4)})
    assert cat.features.dtype == torch.float32 and cat.to("cpu") is cat
