"""The items' pull at the world's date (recoworld.calibration.trend): the terms read off a
known ratings table, the fit on a known world, and its rewriting as a plain choice model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.calibration.choice import ChoiceModel, platt_scaling
from recoworld.calibration.split import DAY
from recoworld.calibration.trend import TREND_TERMS, TrendScaling, fit_trend_scaling, trend_terms

DATE = pd.Timestamp("1998-03-01").timestamp()


def test_trend_terms_of_a_known_table():
    # item 0: rated 100 and 20 days before the date; item 1: 3 days before and at the date
    # (the last rating, which sets it); item 2: never rated.
    ratings = pd.DataFrame({"item_id": [0, 0, 1, 1], "timestamp": [DATE - 100 * DAY, DATE - 20 * DAY,
                                                                    DATE - 3 * DAY, DATE]})
    terms = trend_terms(ratings, pd.array([1997, 1998, pd.NA], dtype="Int64"), 3)
    assert terms.shape == (3, len(TREND_TERMS))
    expected = np.array([
        [np.log1p(1), np.log1p(0), np.log1p(2), 0, 1, 0, np.log1p(100)],
        [np.log1p(2), np.log1p(2), np.log1p(2), 1, 0, 1, np.log1p(3)],
        [0, 0, 0, 0, 0, 0, 0],
    ])
    np.testing.assert_allclose(terms.numpy(), expected, rtol=1e-6)


def test_trend_terms_without_ratings_name_the_fix():
    with pytest.raises(ValueError, match="trend terms need the ratings before the date, and none were given"):
        trend_terms(pd.DataFrame({"item_id": [], "timestamp": []}), None, 3)


def test_without_release_years_the_release_terms_are_zero():
    ratings = pd.DataFrame({"item_id": [0, 1], "timestamp": [DATE - DAY, DATE]})
    terms = trend_terms(ratings, None, 2)
    assert terms[:, 3:5].abs().sum() == 0


def _world(seed: int = 0):
    """Taste logits, one trend term, and choices drawn from a known trend scaling."""
    gen = torch.Generator().manual_seed(seed)
    taste = 2 * torch.randn(300, 80, generator=gen)
    terms = torch.randn(80, 1, generator=gen)
    truth = TrendScaling(taste=0.6, taste_by_term=torch.tensor([0.3], dtype=torch.float64),
                         bias_by_term=torch.tensor([1.5], dtype=torch.float64), shift=-1.0)
    chosen = torch.rand(300, 80, generator=gen) < torch.sigmoid(truth.logits(taste, terms))
    return taste, terms, truth, chosen


def test_fit_recovers_how_the_trend_moves_choices():
    taste, terms, truth, chosen = _world()
    fitted = fit_trend_scaling(taste, terms, chosen, ~chosen)
    # Balanced weights move the shift (per user, by the log ratio of the classes); the
    # slopes are the world's.
    assert fitted.taste == pytest.approx(truth.taste, abs=0.1)
    assert float(fitted.taste_by_term[0]) == pytest.approx(0.3, abs=0.1)
    assert float(fitted.bias_by_term[0]) == pytest.approx(1.5, abs=0.2)


def test_with_terms_that_do_not_vary_it_is_platt_scaling():
    taste, _, _, chosen = _world(1)
    flat = torch.ones(taste.shape[1], 2)
    fitted = fit_trend_scaling(taste, flat, chosen, ~chosen)
    a, b = platt_scaling(taste, chosen, ~chosen)
    assert fitted.taste == pytest.approx(a, abs=1e-3)
    assert fitted.item_bias(flat)[0] == pytest.approx(b, abs=1e-3)


def test_applied_model_gives_the_fitted_logits():
    gen = torch.Generator().manual_seed(2)
    model = ChoiceModel(torch.randn(40, 6, generator=gen), torch.randn(30, 6, generator=gen))
    terms = torch.rand(30, 3, generator=gen)
    scaling = TrendScaling(taste=0.8, taste_by_term=torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64),
                           bias_by_term=torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64), shift=0.3)
    applied = scaling.apply(model, terms)
    assert applied.user_vectors.shape == (40, 7) and applied.item_vectors.shape == (30, 7)
    assert torch.allclose(applied.logits(), scaling.logits(model.logits(), terms), atol=1e-5)


def test_an_items_taste_scale_never_turns_negative():
    scaling = TrendScaling(taste=0.5, taste_by_term=torch.tensor([-1.0], dtype=torch.float64),
                           bias_by_term=torch.tensor([0.0], dtype=torch.float64), shift=0.0)
    scale = scaling.item_scale(torch.tensor([[0.0], [0.25], [2.0]]))
    assert scale.tolist() == [0.5, 0.25, 0.0]


def test_a_world_cut_at_a_date_carries_the_trend_at_that_date(small_world):
    from dataclasses import replace

    from recoworld.apps.calibrate.choices import fit_validation_choices
    from recoworld.apps.calibrate.fit import calibrate
    from recoworld.apps.calibrate.folds import Folds
    from recoworld.apps.fidelity.splits import settings_of

    world, data = small_world
    config = replace(settings_of(world), split="time")
    folds = Folds.cut(data, config.holdout_fraction, config.validation_fraction, kind="time")
    # The validation fold is cut at an earlier date, as the held-out ratings are.
    assert folds.inner.train["timestamp"].max() < folds.inner.test["timestamp"].min()
    assert folds.split.train["timestamp"].max() < folds.cut_time
    validation = fit_validation_choices(folds, config.choice)
    assert validation.trend is not None
    timed = calibrate(config, data=data, progress=False)
    trend = timed.meta["choice"]["trend"]
    assert set(trend["bias_by_term"]) == set(TREND_TERMS)
    assert timed.meta["choice"]["decomposition_error"] < 1e-3
    # Each user's latest ratings have no one date: that world keeps Platt's scaling.
    assert "trend" not in world.meta["choice"]
