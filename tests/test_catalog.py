"""Catalog construction and its checks."""

import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.catalog import lookup
from recoworld.simulators import StatisticalUsers


def test_synthetic_catalog_shapes_and_power_law_popularity():
    cat = Catalog.synthetic(5000, n_genres=10, feature_dim=8, seed=1)
    assert cat.features.shape == (5000, 8) and cat.genres.shape == (5000, 10)
    assert torch.allclose(cat.features.norm(dim=1), torch.ones(5000), atol=1e-5)
    assert cat.genres.any(1).all()
    assert cat.popularity.sum().item() == pytest.approx(1.0, abs=1e-5)
    top = cat.popularity.sort(descending=True).values
    assert top[0] / top[99] == pytest.approx(100.0, rel=1e-3)  # Zipf with exponent 1
    assert cat.titles[3].endswith("#3") and len(cat.titles) == 5000
    assert torch.equal(Catalog.synthetic(5000, n_genres=10, feature_dim=8, seed=1).features, cat.features)


def test_synthetic_catalog_scales_to_a_million_items():
    cat = Catalog.synthetic(1_000_000, seed=0)
    assert cat.n_items == 1_000_000 and cat.titles[999_999].endswith("#999999")


def test_a_synthetic_catalog_of_one_item_stands_at_the_mean_quality_and_serves_users():
    cat = Catalog.synthetic(1, n_genres=1, seed=2)  # one quality has no spread to standardise by
    assert cat.n_items == 1 and cat.quality.tolist() == [0.0]
    users = StatisticalUsers(cat, kernel="torch")
    users.reset(3, seed=0)
    assert bool(torch.isfinite(users.respond(torch.zeros(3, 1, dtype=torch.long)).watch_fraction).all())


def test_from_dataframe_reads_genres_popularity_and_features():
    df = pd.DataFrame({
        "title": ["A", "B", "C"],
        "genres": ["Drama|Comedy", ["Comedy"], "Horror"],
        "popularity": [10, 0, 5],
        "quality": [4.0, 2.0, 3.0],
    })
    cat = Catalog.from_dataframe(df, name="tiny")
    assert cat.genre_names == ("Comedy", "Drama", "Horror")
    assert cat.genres.tolist() == [[True, True, False], [True, False, False], [False, False, True]]
    assert cat.popularity.tolist() == pytest.approx([11 / 18, 1 / 18, 6 / 18])
    assert cat.quality.tolist() == pytest.approx([1.0, -1.0, 0.0])
    round_trip = Catalog.from_dataframe(cat.to_dataframe(), popularity=None)
    assert torch.allclose(round_trip.features, cat.features)


@pytest.mark.parametrize("df, message", [
    (pd.DataFrame({"title": ["A"]}), r"column 'genres' is missing; the DataFrame has \['title'\]"),
    (pd.DataFrame({"title": ["A", "B"], "genres": ["Drama", ""]}), r"row 1 of column 'genres' has no genre"),
    (pd.DataFrame({"title": ["A"], "genres": ["Drama"], "popularity": [-2]}), r"popularity of row 0 is -2.0; it must be finite and >= 0"),
    (pd.DataFrame({"title": [], "genres": []}), r"the DataFrame has no rows"),
])
def test_from_dataframe_errors_name_the_problem(df, message):
    with pytest.raises(ValueError, match=message):
        Catalog.from_dataframe(df)


def test_lookup_equals_advanced_indexing():
    cat = Catalog.synthetic(100)
    items = torch.randint(100, (7, 5))
    assert torch.equal(lookup(cat.features, items), cat.features[items])
    assert torch.equal(lookup(cat.quality, items), cat.quality[items])


def test_float64_tables_are_stored_as_float32_and_serve_an_env():
    import numpy as np

    import recoworld  # noqa: F401  (registers the envs)
    from recoworld.envs import SlateVectorEnv

    base = Catalog.synthetic(200, seed=0)
    cat = Catalog(features=torch.from_numpy(base.features.numpy().astype(np.float64)), genres=base.genres,
                  genre_names=base.genre_names, titles=base.titles, popularity=base.popularity.double(),
                  quality=base.quality.double())
    assert {t.dtype for t in (cat.features, cat.popularity, cat.quality)} == {torch.float32}
    assert torch.equal(cat.features, base.features)
    obs, _ = SlateVectorEnv(2, catalog=cat).reset(seed=0)
    assert obs["candidate_features"].dtype == np.float32
