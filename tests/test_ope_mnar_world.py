"""The MNAR rating world of RecoWorld's statistical users: exact expected ratings, ratings
observed where users click (the debiased models are judged on it in test_ope_mnar.py)."""

import numpy as np
import pytest

from recoworld.apps.ope.mnar_world import expected_rating, statistical_mnar_world


def test_expected_rating_is_the_mean_of_the_drawn_ratings():
    level = np.array([0.2, 1.7, 3.0, 4.49, 6.0])
    u = np.random.default_rng(0).random((200_000, 1))
    drawn = np.clip(np.round(level + 0.33 * np.log(u / (1 - u))), 1, 5)
    np.testing.assert_allclose(expected_rating(level, 0.33), drawn.mean(0), atol=0.01)
    np.testing.assert_array_equal(expected_rating(level, 0.0), [1, 2, 3, 4, 5])


def test_users_rate_what_they_click_so_observed_ratings_run_high():
    world = statistical_mnar_world(n_users=60, n_items=80, seed=0)
    seen = world["observed"]
    assert world["ratings"][seen].mean() > world["truth"].mean() + 0.5
    assert abs(world["mcar"].mean() - world["truth"].mean()) < 0.3
    np.testing.assert_array_equal(world["ratings"], statistical_mnar_world(n_users=60, n_items=80, seed=0)["ratings"])


def test_a_show_rate_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"shown=1.5; it is the probability that a user is shown an item"):
        statistical_mnar_world(shown=1.5)
