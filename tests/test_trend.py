"""The items' pull at the world's date (recoworld.calibration.trend): the terms read off a
known ratings table, the fit on a known world, and its rewriting as a plain choice model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.calibration.choice import ChoiceModel, platt_scaling
from recoworld.calibration.split import DAY
from recoworld.calibration.trend import (TREND_TERMS, USER_TREND_TERMS, TrendScaling, fit_trend_scaling, trend_terms,
                                         user_trend_terms)

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


def test_user_terms_count_the_ratings_each_user_gave():
    ratings = pd.DataFrame({"user_id": [0, 0, 2], "item_id": [0, 1, 1], "timestamp": [DATE - DAY, DATE, DATE]})
    terms = user_trend_terms(ratings, 4)
    assert terms.shape == (4, len(USER_TREND_TERMS))
    np.testing.assert_allclose(terms[:, 0].numpy(), np.log1p([2, 0, 1, 0]), rtol=1e-6)
    with pytest.raises(ValueError, match="trend terms need the ratings before the date, and none were given"):
        user_trend_terms(ratings.iloc[:0], 4)


def test_without_release_years_the_release_terms_are_zero():
    ratings = pd.DataFrame({"item_id": [0, 1], "timestamp": [DATE - DAY, DATE]})
    terms = trend_terms(ratings, None, 2)
    assert terms[:, 3:5].abs().sum() == 0


def _scaling(taste, taste_by_term, bias_by_term, shift, bias_by_user_term=None, shift_by_user_term=(0.0,)):
    """A TrendScaling from lists (one user term, weighing nothing unless given)."""
    by_user = [[0.0] * len(bias_by_term)] if bias_by_user_term is None else bias_by_user_term
    weights = (torch.tensor(v, dtype=torch.float64) for v in (taste_by_term, bias_by_term, by_user, shift_by_user_term))
    taste_by_term, bias_by_term, by_user, shift_by_user = weights
    return TrendScaling(taste, taste_by_term, bias_by_term, shift, by_user, shift_by_user)


def _world(seed: int = 0):
    """Taste logits, one trend term, one user term, and choices drawn from a known trend
    scaling; the user term (offset from 0, as a log count is) moves how strongly each
    user follows the trend."""
    gen = torch.Generator().manual_seed(seed)
    taste = 2 * torch.randn(400, 80, generator=gen)
    terms = torch.randn(80, 1, generator=gen)
    user_terms = 3 + torch.rand(400, 1, generator=gen) * 2
    truth = _scaling(0.6, [0.3], [1.5], -1.0, [[-0.5]], [0.2])
    chosen = torch.rand(400, 80, generator=gen) < torch.sigmoid(truth.logits(taste, terms, user_terms))
    return taste, terms, user_terms, truth, chosen


def test_fit_recovers_how_the_trend_moves_choices():
    taste, terms, user_terms, truth, chosen = _world()
    fitted = fit_trend_scaling(taste, terms, user_terms, chosen, ~chosen)
    # Balanced weights move the shift (per user, by the log ratio of the classes); the
    # slopes are the world's, on the terms' own scales.
    assert fitted.taste == pytest.approx(truth.taste, abs=0.1)
    assert float(fitted.taste_by_term[0]) == pytest.approx(0.3, abs=0.1)
    assert float(fitted.bias_by_term[0]) == pytest.approx(1.5, abs=0.2)
    assert float(fitted.bias_by_user_term[0, 0]) == pytest.approx(-0.5, abs=0.1)


def test_the_fitted_logits_do_not_depend_on_the_terms_units():
    # The fit standardises the terms and writes its weights back on their own scales.
    taste, terms, user_terms, _, chosen = _world(3)
    fitted = fit_trend_scaling(taste, terms, user_terms, chosen, ~chosen)
    rescaled = fit_trend_scaling(taste, 2 * terms + 1, 3 * user_terms - 2, chosen, ~chosen)
    assert torch.allclose(fitted.logits(taste, terms, user_terms),
                          rescaled.logits(taste, 2 * terms + 1, 3 * user_terms - 2), atol=1e-4)


def test_with_terms_that_do_not_vary_it_is_platt_scaling():
    taste, _, _, _, chosen = _world(1)
    flat, same_users = torch.ones(taste.shape[1], 2), torch.full((taste.shape[0], 1), 4.0)
    fitted = fit_trend_scaling(taste, flat, same_users, chosen, ~chosen)
    a, b = platt_scaling(taste, chosen, ~chosen)
    assert fitted.taste == pytest.approx(a, abs=1e-3)
    logits = fitted.logits(taste, flat, same_users)
    assert torch.allclose(logits, a * taste + b, atol=1e-3)


def test_applied_model_gives_the_fitted_logits():
    gen = torch.Generator().manual_seed(2)
    model = ChoiceModel(torch.randn(40, 6, generator=gen), torch.randn(30, 6, generator=gen))
    terms, user_terms = torch.rand(30, 3, generator=gen), torch.rand(40, 1, generator=gen)
    scaling = _scaling(0.8, [0.5, -0.2, 0.1], [1.0, 0.0, -2.0], 0.3, [[0.4, -1.0, 0.2]], [0.7])
    applied = scaling.apply(model, terms, user_terms)
    # One more dimension for the bias, and one per user term.
    assert applied.user_vectors.shape == (40, 8) and applied.item_vectors.shape == (30, 8)
    assert torch.allclose(applied.logits(), scaling.logits(model.logits(), terms, user_terms), atol=1e-5)
    # The user terms enter centred (their mean is in the item bias), so that they do not
    # lengthen the user vectors, whose longest sets the simulator's interest weight.
    assert float(applied.user_vectors[:, -1].mean()) == pytest.approx(0.0, abs=1e-6)


def test_an_items_taste_scale_never_turns_negative():
    scaling = _scaling(0.5, [-1.0], [0.0], 0.0)
    scale = scaling.item_scale(torch.tensor([[0.0], [0.25], [2.0]]))
    assert scale.tolist() == [0.5, 0.25, 0.0]


def test_a_world_cut_at_a_date_carries_the_trend_at_that_date(small_world):
    from dataclasses import replace

    from recoworld.apps.calibrate.choices import fit_validation_choices
    from recoworld.apps.calibrate.fit import calibrate
    from recoworld.apps.calibrate.folds import Folds
    from recoworld.apps.fidelity.splits import settings_of

    world, data = small_world
    # The trend is the choice model's: the session fits have no part in it, so the leave fit
    # runs small and the simulated-lives fit not at all (their own tests fit them).
    config = replace(settings_of(world), split="time", leave_users=10, leave_steps=10, lives_iterations=0)
    folds = Folds.cut(data, config.holdout_fraction, config.validation_fraction, kind="time")
    # The validation fold is cut at an earlier date, as the held-out ratings are.
    assert folds.inner.train["timestamp"].max() < folds.inner.test["timestamp"].min()
    assert folds.split.train["timestamp"].max() < folds.cut_time
    validation = fit_validation_choices(folds, config.choice)
    assert validation.trend is not None
    timed = calibrate(config, data=data, progress=False)
    trend = timed.meta["choice"]["trend"]
    assert set(trend["bias_by_term"]) == set(TREND_TERMS)
    assert set(trend["bias_by_user_term"]) == set(USER_TREND_TERMS)
    assert timed.meta["choice"]["decomposition_error"] < 1e-3
    # Each user's latest ratings have no one date: that world keeps Platt's scaling.
    assert "trend" not in world.meta["choice"]
