"""Review fixes of the item representations and the GRPO adapter: unsigned and DataFrame
embeddings, semantic IDs cached by a digest (no table kept alive, in-place changes seen),
ids outside the catalog in text/genres_of, and checks that come first or name their owner."""

from __future__ import annotations

import gc
import re
import weakref

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.training import grpo
from recoworld.catalog import Catalog
from recoworld.representations import (
    RepresentationConfig,
    ResidualQuantizer,
    SemanticIds,
    attach_embeddings,
    kmeans,
    make_representation,
)

SEMANTIC = {"kind": "semantic_id", "source": "img", "levels": 2, "codebook_size": 4}


@pytest.fixture
def catalog():
    return Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=0)


def vectors(seed=0):
    return np.random.default_rng(seed).normal(size=(40, 4)).astype(np.float32)


def test_a_dataframe_of_embeddings_is_read_by_position_not_by_label(catalog):
    table = vectors()
    stored = attach_embeddings(catalog, "img", pd.DataFrame(table, index=range(3, 43)))
    assert torch.equal(stored, torch.as_tensor(table))


def test_a_dataframe_of_text_is_not_a_table_of_numbers(catalog):
    with pytest.raises(ValueError, match=re.escape("embeddings 'img' are not a table of numbers (")):
        attach_embeddings(catalog, "img", pd.DataFrame([["a"] * 4] * 40))


def test_a_replaced_table_is_not_kept_alive_by_the_semantic_ids(catalog):
    attach_embeddings(catalog, "img", vectors(0))
    make_representation(catalog, SEMANTIC)
    old = weakref.ref(catalog.extra["embeddings"]["img"])
    attach_embeddings(catalog, "img", vectors(1))
    gc.collect()
    assert old() is None
    assert not any(isinstance(part, torch.Tensor) for entry in catalog.extra["semantic_ids"].values()
                   for part in entry)


def test_semantic_ids_are_fitted_again_when_their_table_changes_in_place(catalog):
    stored = attach_embeddings(catalog, "img", vectors())
    before = make_representation(catalog, SEMANTIC).ids
    stored.copy_(stored[torch.randperm(40, generator=torch.Generator().manual_seed(1))].clone())
    after = make_representation(catalog, SEMANTIC).ids
    assert torch.equal(after.codes, SemanticIds.fit(stored.clone(), 2, 4, 0).codes)
    assert not torch.equal(after.codes, before.codes)


def test_semantic_ids_follow_features_changed_in_place(catalog):
    before = make_representation(catalog, "semantic_id").ids
    catalog.features.copy_(Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=5).features)
    after = make_representation(catalog, "semantic_id").ids
    assert after is not before and torch.equal(after.codes, SemanticIds.fit(catalog.features.clone(), 3, 64, 0).codes)


def test_the_same_vectors_in_another_tensor_reuse_the_codes(catalog):
    attach_embeddings(catalog, "img", vectors())
    first = make_representation(catalog, SEMANTIC).ids
    attach_embeddings(catalog, "img", vectors())  # equal values, a new tensor
    assert make_representation(catalog, SEMANTIC).ids is first


@pytest.mark.parametrize("method", ["text", "genres_of"])
@pytest.mark.parametrize("item", [-1, 40])
def test_text_and_genres_of_an_item_outside_the_catalog_are_refused(catalog, method, item):
    representation = make_representation(catalog, "text")
    with pytest.raises(IndexError, match=re.escape(f"item={item} is outside the catalog 'synthetic-40' (ids 0..39)")):
        getattr(representation, method)(item)
    assert representation.genres_of(39) and representation.text(39).startswith(catalog.titles[39])


def test_kind_embedding_of_the_catalogs_features_is_refused_by_the_config():
    with pytest.raises(ValueError, match=re.escape(
            "representation kind 'embedding' describes external vectors; set source to 'text' or to a name attached "
            "with recoworld.representations.attach_embeddings")):
        RepresentationConfig(kind="embedding")


@pytest.mark.parametrize("call, message", [
    (lambda x: ResidualQuantizer.fit(x, 2, 2, seed=-1), "ResidualQuantizer.seed=-1: must be an integer >= 0"),
    (lambda x: ResidualQuantizer.fit(x, 2, 2, seed=True), "ResidualQuantizer.seed=True: must be an integer >= 0"),
    (lambda x: ResidualQuantizer.fit(x, 2, 2, iters=0), "ResidualQuantizer.iters=0: must be an integer >= 1"),
    (lambda x: SemanticIds.fit(x, 2, 2, seed=-1), "SemanticIds.seed=-1: must be an integer >= 0"),
    (lambda x: SemanticIds.fit(x, 2, 2, seed=True), "SemanticIds.seed=True: must be an integer >= 0"),
    (lambda x: kmeans(x, 2, iters=2.5), "kmeans.iters=2.5: must be an integer >= 1"),
])
def test_quantiser_settings_are_named_by_their_own_owner(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(torch.randn(10, 2))


def test_no_slate_penalty_is_checked_before_the_environment_is_built(monkeypatch):
    def built(**kwargs):
        raise AssertionError("InstructEnv was built before no_slate_penalty was checked")

    monkeypatch.setattr(grpo, "InstructEnv", built)
    with pytest.raises(ValueError, match=re.escape("RecommendationEnvironment.no_slate_penalty=-1: must be >= 0")):
        grpo.RecommendationEnvironment(no_slate_penalty=-1)
