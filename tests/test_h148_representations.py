"""What a careless user gives item representations: a misspelt key, settings out of range,
embeddings of the wrong shape, kind or values, zero vectors, item ids outside the catalog, a
model folder that is no model, and semantic IDs cached from other embeddings."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from recoworld.catalog import Catalog
from recoworld.representations import (
    RepresentationConfig,
    ResidualQuantizer,
    SemanticIds,
    attach_embeddings,
    get_embeddings,
    kmeans,
    make_representation,
    text_embeddings,
)


@pytest.fixture
def catalog():
    return Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=0)


def vectors(n=40, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_a_misspelt_key_names_the_nearest_field_and_the_fields(catalog):
    with pytest.raises(ValueError, match=re.escape(
            "the representation config has 'level', which RepresentationConfig has not (did you mean 'levels'?); "
            "its fields are kind, source, levels, codebook_size, nearest_genres, seed")):
        make_representation(catalog, {"kind": "semantic_id", "level": 2})


@pytest.mark.parametrize("given, message", [
    ({"kind": "semantic"}, "RepresentationConfig.kind='semantic'; choose one of ('text', 'semantic_id', 'embedding') "
                           "(did you mean 'semantic_id'?)"),
    ({"levels": 0}, "RepresentationConfig.levels=0: must be an integer in [1, 25]"),
    # 26 letters name the tokens, one of them the collision token's
    ({"levels": 26}, "RepresentationConfig.levels=26: must be an integer in [1, 25]"),
    ({"levels": 2.5}, "RepresentationConfig.levels=2.5: must be an integer in [1, 25]"),
    ({"codebook_size": 0}, "RepresentationConfig.codebook_size=0: must be an integer >= 1"),
    ({"nearest_genres": 0}, "RepresentationConfig.nearest_genres=0: must be an integer >= 1"),
    ({"seed": -1}, "RepresentationConfig.seed=-1: must be an integer >= 0"),
])
def test_settings_out_of_range_are_refused_when_the_config_is_built(given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RepresentationConfig(**given)


def test_semantic_ids_of_more_levels_than_letters_are_refused():
    with pytest.raises(ValueError, match=re.escape("SemanticIds.levels=30: must be an integer in [1, 25]")):
        SemanticIds.fit(torch.randn(40, 3), levels=30, codebook_size=2)


def test_more_levels_and_codes_than_items_still_give_unique_ids(catalog):
    ids = make_representation(catalog, {"kind": "semantic_id", "levels": 25, "codebook_size": 1000}).ids
    assert ids.codes.shape == (40, 26) and ids.collisions() == 0
    assert ids.tokens(0).endswith("<z0>")


@pytest.mark.parametrize("table, message", [
    (np.zeros((39, 4)), "embeddings 'img' have shape (39, 4); expected [40, D] with D >= 1, one row per item of "
                        "synthetic-40"),
    (np.zeros((40, 0)), "embeddings 'img' have shape (40, 0); expected [40, D] with D >= 1"),
    (np.full((40, 4), 1e39), "embeddings 'img' have the value 1e+39 in row 0 (beyond the float32 range they are "
                             "stored in); every value must be a finite float32"),
    ([["a"] * 4] * 40, "embeddings 'img' are not a table of numbers ("),
    (np.array([[1, None]] * 40), "embeddings 'img' are not a table of numbers ("),
    (np.ones((40, 4), dtype=complex), "embeddings 'img' have dtype torch.complex128; give an [N, D] array of real "
                                      "numbers"),
])
def test_embeddings_of_the_wrong_shape_or_kind_are_refused_naming_them(catalog, table, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        attach_embeddings(catalog, "img", table)


def test_a_nan_row_is_named_with_its_value(catalog):
    table = vectors()
    table[7, 2] = np.nan
    with pytest.raises(ValueError, match=re.escape("embeddings 'img' have the value nan in row 7; every value must "
                                                   "be a finite float32")):
        attach_embeddings(catalog, "img", table)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.bool_, np.uint16, np.uint32, np.uint64])
def test_embeddings_of_other_numeric_dtypes_are_stored_as_float32(catalog, dtype):
    table = (vectors() * 3).astype(dtype)
    stored = attach_embeddings(catalog, "img", table)
    assert stored.dtype == torch.float32 and torch.equal(stored, torch.as_tensor(table.astype(np.float32)))


def test_the_name_features_cannot_be_shadowed(catalog):
    with pytest.raises(ValueError, match=re.escape("embeddings name='features': give a non-empty name other than "
                                                   "'features', which get_embeddings answers")):
        attach_embeddings(catalog, "features", vectors(d=8))


def test_zero_vectors_have_no_nearest_genre(catalog):
    table = vectors()
    table[[3, 9]] = 0
    attach_embeddings(catalog, "img", table)
    with pytest.raises(ValueError, match=re.escape(
            "embeddings 'img' have 2 zero vector(s) (rows [3, 9]): a zero vector has no direction, so no nearest "
            "genre; give those items a vector, or use kind='text'")):
        make_representation(catalog, {"kind": "embedding", "source": "img"})


def test_a_genre_no_item_has_is_never_named():
    catalog = Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=0)
    empty = catalog.genres.sum(0) == 0
    genres = catalog.genres.clone()
    genres[:, 3] = 0  # genre 3 loses its items; every item keeps another genre
    genres[genres.sum(1) == 0, 0] = 1
    emptied = dataclasses.replace(catalog, genres=genres, extra={})
    assert not bool(empty.any()) and int(emptied.genres[:, 3].sum()) == 0
    attach_embeddings(emptied, "img", vectors())
    # asking for every genre: the empty one, with a cosine of 0 to every item, would be among them
    representation = make_representation(emptied, {"kind": "embedding", "source": "img", "nearest_genres": 4})
    named = {g for row in representation._nearest for g in row}
    assert 3 not in named and all(len(row) == 3 for row in representation._nearest)


@pytest.mark.parametrize("kind", ["text", "semantic_id", "embedding"])
@pytest.mark.parametrize("method", ["describe", "code"])
@pytest.mark.parametrize("item", [-1, 40])
def test_an_item_outside_the_catalog_is_refused(catalog, kind, method, item):
    attach_embeddings(catalog, "img", vectors())
    representation = make_representation(catalog, {"kind": kind, "source": "img"})
    with pytest.raises(IndexError, match=re.escape(f"items[1]={item} is outside the catalog 'synthetic-40' "
                                                   "(ids 0..39)")):
        getattr(representation, method)([0, item])


def test_semantic_ids_are_fitted_again_when_their_embeddings_are_attached_again(catalog):
    config = {"kind": "semantic_id", "source": "img", "levels": 2, "codebook_size": 4}
    attach_embeddings(catalog, "img", vectors(seed=0))
    before = make_representation(catalog, config).ids
    assert make_representation(catalog, config).ids is before  # fitted once
    replaced = attach_embeddings(catalog, "img", vectors(seed=1))
    after = make_representation(catalog, config).ids
    assert torch.equal(after.codes, SemanticIds.fit(replaced, 2, 4, 0).codes)
    assert not torch.equal(after.codes, before.codes)


def test_semantic_ids_of_a_copy_with_other_features_are_its_own(catalog):
    first = make_representation(catalog, "semantic_id").ids
    other = Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=5)
    copy = dataclasses.replace(catalog, features=other.features)  # shares catalog.extra
    assert copy.extra is catalog.extra
    assert torch.equal(make_representation(copy, "semantic_id").ids.codes,
                       SemanticIds.fit(other.features, 3, 64, 0).codes)
    assert make_representation(catalog, "semantic_id").ids.codes.equal(first.codes)


def test_embeddings_of_another_catalog_are_refused_not_indexed(catalog):
    attach_embeddings(catalog, "img", vectors())
    smaller = dataclasses.replace(Catalog.synthetic(20, n_genres=4, feature_dim=8, seed=1), extra=catalog.extra)
    with pytest.raises(ValueError, match=re.escape(
            "the embeddings 'img' attached to the catalog 'synthetic-20' have 40 rows, but it has 20 items; "
            "attach them again with recoworld.representations.attach_embeddings")):
        get_embeddings(smaller, "img")


def test_the_same_seed_gives_the_same_codes_on_fresh_catalogs():
    codes = [make_representation(Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=0),
                                 {"kind": "semantic_id", "seed": 3}).ids.codes for _ in range(2)]
    assert torch.equal(*codes)


@pytest.mark.parametrize("call, message", [
    (lambda: kmeans(torch.randn(10, 2), 0), "kmeans.k=0: must be an integer >= 1"),
    (lambda: kmeans(torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]), 2),
     "quantisation needs finite vectors; row 1 has a non-finite value: drop or replace the rows that have one"),
    (lambda: ResidualQuantizer.fit(torch.full((3, 2), float("inf")), 2, 2),
     "quantisation needs finite vectors; row 0 has a non-finite value (and 2 more rows): drop or replace the rows"),
    (lambda: ResidualQuantizer.fit(torch.randn(10, 2), 2.5, 2),
     "ResidualQuantizer.levels=2.5: must be an integer >= 1"),
    (lambda: ResidualQuantizer.fit(torch.randn(10, 0), 2, 2),
     "quantisation needs a non-empty [N, D] tensor, got shape (10, 0)"),
])
def test_quantiser_inputs_out_of_range_are_refused(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_decoding_more_levels_than_fitted_or_other_dimensions_is_refused():
    x = torch.randn(10, 3)
    quantizer = ResidualQuantizer.fit(x, 2, 2)
    with pytest.raises(ValueError, match=re.escape("decode.levels=3: must be an integer in [0, 2]")):
        quantizer.reconstruction_error(x, 3)
    with pytest.raises(ValueError, match=re.escape("x has 5 dimensions, but the quantiser was fitted to 3")):
        quantizer.encode(torch.randn(4, 5))
    assert torch.equal(quantizer.decode(quantizer.encode(x), 0), torch.zeros(10, 3))


def test_a_folder_that_is_no_model_is_refused_before_loading(catalog, tmp_path):
    (tmp_path / "weights.txt").write_text("not a model")
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"model_path={str(tmp_path)!r} holds none of modules.json, config.json, so it is not a "
            "sentence-transformers model folder")):
        text_embeddings(catalog, tmp_path)
