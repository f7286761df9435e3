"""Neural-linear Thompson sampling draws its noise variance safely at a tiny ``prior_a`` (the
vague ``IG(0.001, 0.001)``): ``rng.gamma`` underflowed to 0 on about half the draws, an
infinite variance that turned 42 % of the first request's scores into NaN."""

import numpy as np
import pytest
from scipy import stats

from recoworld.agents.neural_linear import NeuralLinearTS, inverse_gamma
from recoworld.types import CANDIDATE_IDS, Observation
from toy_world import ToyWorld, tiny_catalog


def fresh_agent(**prior) -> tuple[NeuralLinearTS, Observation]:
    world = ToyWorld(tiny_catalog(6), lambda obs: np.full(obs[CANDIDATE_IDS].shape, 0.3), slate_size=2)
    agent = NeuralLinearTS(propensity_samples=0, **prior)
    agent.setup(world, seed=0)
    return agent, Observation(world.reset(seed=0)[0])


def test_a_tiny_prior_a_gives_finite_scores_and_the_priors_slates():
    vague, obs = fresh_agent(prior_a=1e-3, prior_b=1e-3)
    assert vague.posterior()[2] == 1e-3   # no impression yet: a is the prior's
    assert np.isfinite(vague.score_sampler(obs, np.random.default_rng(0), 2000)()).all()
    # Before any click the posterior mean is 0 and the noise's scale does not change the
    # ranking: the first slot follows the same law as under the default prior_a = 6.
    n = 8000
    first = [np.bincount(agent.draw_slates(obs, np.random.default_rng(1), n)[:, 0, 0], minlength=6) / n
             for agent in (vague, fresh_agent()[0])]
    assert (np.abs(first[0] - first[1]) < 5 * np.sqrt(first[1] * (1 - first[1]) * 2 / n)).all(), first


def test_inverse_gamma_follows_its_law_below_shape_1_and_keeps_numpys_stream_from_1():
    draws = inverse_gamma(np.random.default_rng(2), 0.5, 3.0, (20_000,))
    assert stats.kstest(draws, stats.invgamma(0.5, scale=3.0).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(inverse_gamma(np.random.default_rng(3), 6.0, 2.0, (5, 2, 1)),
                                  1.0 / np.random.default_rng(3).gamma(6.0, 0.5, size=(5, 2, 1)))


@pytest.mark.parametrize("a", [1e-3, 1e-5])
def test_inverse_gamma_is_finite_and_positive_at_tiny_shapes(a):
    draws = inverse_gamma(np.random.default_rng(4), a, 1e-3, (50_000,))
    assert np.isfinite(draws).all() and (draws > 0).all()
