"""The gaps after the sessions users return for in the lives fit (``dynamics.fit_lives``): their
scale on the 80th percentile, their Weibull shape on the median, between the return fit's
shape and 1 (the exponential)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from lives_support import lives_of
from recoworld.apps.calibrate import dynamics
from recoworld.calibration.split import cut_sessions


def test_life_targets_hold_the_later_gaps_80th_percentile():
    table = pd.DataFrame({"user_id": [0, 0, 0, 0, 1, 1, 1],
                          "length": [40, 3, 4, 5, 30, 4, 20],
                          "next_gap_days": [0.5, 2.0, 10.0, np.nan, 1.5, 4.0, np.nan]})
    targets = dynamics.LifeTargets.of(table)
    assert targets.gap_upper == pytest.approx(np.quantile([2.0, 10.0, 4.0], 0.8)) == 7.6
    assert targets.at_quantile["gap_upper"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def lives(small_world):
    """The small world's lives (:func:`lives_support.lives_of`) with gaps Weibull of shape 0.9, and
    the targets of those lives."""
    return lives_of(small_world, gap_days=3.0, gap_shape=0.9)[:-1]


def test_fit_lives_lightens_a_too_heavy_gap_tail_on_the_later_gaps_median(lives):
    world, population, seeds, windows, truth, targets = lives
    # A return fit's shape heavier than the lives': the tail too long where the scale sets the 80th.
    start = replace(truth, gap_shape=0.5)
    fitted, _ = dynamics.fit_lives(world.catalog, start, population, seeds, windows, targets, max_steps=160)
    assert 0.7 < fitted.gap_shape <= 1.0
    clicks = dynamics.simulate_lives(world.catalog, fitted, population, seeds, windows, max_steps=160)
    below = targets.position(cut_sessions(clicks, 30.0).table)
    assert below["gap_days"] == pytest.approx(targets.at_quantile["gap_days"], abs=0.08)
    assert below["gap_upper"] == pytest.approx(targets.at_quantile["gap_upper"], abs=0.08)


def test_fit_lives_keeps_a_gap_shape_held_at_one(lives):
    world, population, seeds, windows, truth, targets = lives
    # calibration_returns holds exponential gaps where no user's gaps differ: the lives fit keeps them.
    fitted, _ = dynamics.fit_lives(world.catalog, replace(truth, gap_shape=1.0), population, seeds, windows, targets,
                                   iterations=3, max_steps=160)
    assert fitted.gap_shape == 1.0
