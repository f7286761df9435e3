"""Bernoulli Thompson sampling draws its Beta posteriors exactly at tiny parameters: no draw
rounds to 0 or 1 and ties arms that should race, so its choices follow the exact
propensities, while draws of parameters at least 1 keep numpy's stream."""

import numpy as np
import pytest
from scipy import special, stats

from recoworld.agents.bandits import BernoulliTS
from recoworld.agents.sampling import beta_scores, log_gamma
from recoworld.types import CANDIDATE_IDS, Observation
from toy_world import ToyWorld, tiny_catalog


def tiny_bandit(n_items: int, slate_size: int, **settings) -> tuple[BernoulliTS, Observation]:
    world = ToyWorld(tiny_catalog(n_items), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), slate_size=slate_size)
    agent = BernoulliTS(**settings)
    agent.setup(world, seed=0)
    return agent, Observation(world.reset(seed=0)[0])


def test_single_slot_choices_follow_the_exact_propensities_at_beta_parameters_near_0_02():
    # posterior_scale 10 divides every parameter by 100: Beta(0.01, 0.01), (0.02, 0.02), (0.04, 0.02).
    # rng.beta rounded a quarter to a third of those draws to exactly 1.0 and the tie went to
    # the first arm: it was chosen 0.408 of the time against 0.351 (z = 54), the last 0.334 against 0.392.
    agent, obs = tiny_bandit(3, 1, posterior_scale=10.0)
    agent.pulls[:], agent.clicks[:] = [0, 2, 4], [0, 1, 3]
    every = np.array([agent.propensities(obs, np.array([[c]]))["slate"][0] for c in range(3)])
    n = 200_000
    draws = agent.draw_slates(obs, np.random.default_rng(0), n)[:, 0, 0]
    frequency = np.bincount(draws, minlength=3) / n
    assert (np.abs(frequency - every) < 4 * np.sqrt(every * (1 - every) / n)).all(), (frequency, every)


@pytest.mark.parametrize("per_slot", [False, True])
def test_identical_tiny_arms_show_every_ranked_slate_equally_often(per_slot):
    # three Beta(0.02, 0.02) arms, slates of 2: six ranked slates of 1/6 each, by symmetry;
    # with ties broken by position rng.beta showed [0, 1] on 0.204 of draws and [2, 1] on 0.142
    # (slot-wise: 0.205 and 0.135)
    agent, obs = tiny_bandit(3, 2, prior_clicks=0.02, prior_skips=0.02, per_slot=per_slot)
    n = 60_000
    slates = agent.draw_slates(obs, np.random.default_rng(1), n)[:, 0]
    frequency = np.bincount(3 * slates[:, 0] + slates[:, 1], minlength=9)[[1, 2, 3, 5, 6, 7]] / n
    assert (np.abs(frequency - 1 / 6) < 4 * np.sqrt(5 / 36 / n)).all(), frequency


def test_acting_repeats_for_a_seed_at_tiny_parameters():
    runs = []
    for _ in range(2):
        agent, obs = tiny_bandit(3, 2, prior_clicks=0.02, prior_skips=0.02)
        runs.append([agent.act(obs) for _ in range(20)])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_draws_of_parameters_at_least_1_stay_numpys_beta_stream():
    alpha, beta = np.array([[1.0, 2.5, 40.0]]), np.array([[1.0, 7.0, 1.0]])
    np.testing.assert_array_equal(beta_scores(np.random.default_rng(5), alpha, beta, (4, 1, 3)),
                                  np.random.default_rng(5).beta(alpha, beta, size=(4, 1, 3)))


@pytest.mark.parametrize("shape", [1e-4, 0.02, 0.5, 1.0, 3.0])
def test_log_gamma_is_finite_and_has_the_gamma_laws_mean_and_variance(shape):
    # rng.standard_gamma(1e-4) is exactly 0 on 93 % of draws, whose log is -inf
    n = 100_000
    draws = log_gamma(np.random.default_rng(2), np.full(3, shape), (n // 3, 3)).ravel()
    assert np.isfinite(draws).all()
    mean, variance = special.digamma(shape), special.polygamma(1, shape)   # of log G, G ~ Gamma(shape)
    assert abs(draws.mean() - mean) < 4 * np.sqrt(variance / len(draws)), (draws.mean(), mean)
    assert abs(draws.var() / variance - 1) < 0.05


@pytest.mark.parametrize("shape", [0.05, 0.5, 3.0])
def test_log_gamma_follows_the_log_gamma_distribution(shape):
    draws = log_gamma(np.random.default_rng(3), np.array(shape), (20_000,))
    assert stats.kstest(draws, stats.loggamma(shape).cdf).pvalue > 1e-3
