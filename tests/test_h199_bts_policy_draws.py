"""The Open Bandit Dataset's Bernoulli-TS policy, replayed by :func:`bts_distribution`, races
its Beta draws exactly at tiny parameters (as :class:`BernoulliTS` does, through the same
:mod:`recoworld.beta_draws`), and keeps numpy's Beta stream at ordinary ones."""

import numpy as np
import pytest

from recoworld.agents import sampling
from recoworld.agents.sampling import beta_top_one_propensity
from recoworld.beta_draws import beta_scores, log_gamma
from recoworld.data.bts_policy import bts_distribution


def test_single_slot_shares_follow_the_exact_race_at_tiny_parameters():
    # rng.beta rounded many of these draws to exactly 1.0 and the tie went to item 0:
    # it was shown 0.408 of the time against 0.351, item 2 0.334 against 0.392
    alpha, beta = np.array([0.01, 0.02, 0.04]), np.array([0.01, 0.02, 0.02])
    n = 200_000
    policy = bts_distribution(alpha, beta, slate_length=1, n_mc=n, seed=0)
    exact = np.array([beta_top_one_propensity(alpha[None], beta[None], np.array([c]))[0] for c in range(3)])
    share = policy.position_marginals[:, 0]
    assert (np.abs(share - exact) < 4 * np.sqrt(exact * (1 - exact) / n)).all(), (share, exact)


def test_identical_tiny_items_show_every_ranked_slate_equally_often():
    # three Beta(0.02, 0.02) items, slates of 2: six ranked slates of 1/6 each, by symmetry
    n = 60_000
    policy = bts_distribution(np.full(3, 0.02), np.full(3, 0.02), slate_length=2, n_mc=n, seed=1)
    assert len(policy.slates) == 6
    assert (np.abs(policy.probability - 1 / 6) < 4 * np.sqrt(5 / 36 / n)).all(), policy.probability


def test_parameters_at_least_1_give_the_same_distribution_as_before():
    # pinned from bts_distribution as it was, drawing rng.beta: the stream is unchanged bit for bit
    policy = bts_distribution([1.0, 3, 2, 8, 1.5], [4.0, 2, 2, 9, 1], slate_length=2, n_mc=2000, seed=7)
    every_pair = [[a, b] for a in range(5) for b in range(5) if a != b]
    np.testing.assert_array_equal(policy.slates, every_pair)
    np.testing.assert_array_equal(policy.probability * 2000, [7, 2, 5, 6, 27, 188, 209, 241, 4, 174, 99, 133,
                                                             7, 52, 38, 32, 23, 376, 212, 165])


@pytest.mark.parametrize("alpha, beta, wrong", [([1.0, 0.0, 2.0], [1.0, 1.0, 1.0], "alpha\\[1\\] = 0.0"),
                                                ([1.0, 1.0, 2.0], [1.0, -0.5, 1.0], "beta\\[1\\] = -0.5"),
                                                ([1.0, 1.0, np.nan], [1.0, 1.0, 1.0], "alpha\\[2\\] = nan")])
def test_a_parameter_that_is_not_positive_and_finite_is_refused(alpha, beta, wrong):
    # rng.beta refused 0 itself; the logits of tiny parameters would read it as NaN scores
    with pytest.raises(ValueError, match=wrong + ", but a Beta parameter must be positive and finite"):
        bts_distribution(alpha, beta, slate_length=1, n_mc=10)


def test_the_agents_draw_from_the_one_shared_copy():
    assert (sampling.beta_scores, sampling.log_gamma) == (beta_scores, log_gamma)
