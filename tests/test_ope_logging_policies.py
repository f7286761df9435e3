"""Logging policies with exact propensities: they sum to one, match sampled frequencies, and
reduce to the greedy slate at epsilon = 0 / temperature -> 0."""

import numpy as np
import pytest
import torch

from recoworld.agents.baselines import MostPopularAgent, RandomAgent
from recoworld.agents.linear import DiagLinUCB, DisjointLinUCB, HybridLinUCB, LinUCB
from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy, all_slates
from recoworld.catalog import Catalog
from recoworld.envs.rollout import rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.types import CANDIDATE_IDS
from toy_world import ToyWorld, tiny_catalog

torch.set_num_threads(1)
C, K = 5, 3


@pytest.fixture
def world():
    catalog = tiny_catalog(C)
    catalog.log_popularity[:] = torch.tensor([0.5, -0.3, 1.2, 0.1, -1.0])
    env = ToyWorld(catalog, lambda obs: np.full(obs[CANDIDATE_IDS].shape, 0.1), num_envs=2, slate_size=K)
    obs, _ = env.reset(seed=0)
    obs[CANDIDATE_IDS][1] = obs[CANDIDATE_IDS][1][::-1]  # the second request sees the candidates reversed
    return env, obs


def policies():
    return [EpsilonSoft(base=MostPopularAgent(), epsilon=0.3), SoftmaxPolicy(base=MostPopularAgent(), temperature=0.7),
            SoftmaxPolicy(base=MostPopularAgent(), temperature=0.7, max_prefixes=1, propensity_samples=20_000)]


def enumerate_propensities(policy, obs):
    slates = all_slates(C, K)
    return slates, {key: np.stack([policy.propensities(obs, np.tile(s, (2, 1)))[key] for s in slates])
                    for key in ("slate", "position", "cascade")}


@pytest.mark.parametrize("policy", policies(), ids=["epsilon_soft", "softmax_exact", "softmax_sampled"])
def test_slate_probabilities_sum_to_one_and_agree_with_marginals_and_prefixes(world, policy):
    env, obs = world
    policy.setup(env, seed=0)
    slates, p = enumerate_propensities(policy, obs)
    np.testing.assert_allclose(p["slate"].sum(0), 1.0, atol=1e-12)
    np.testing.assert_allclose(p["cascade"][:, :, -1], p["slate"], atol=1e-12)
    marginals = np.zeros((2, C, K))
    for s, prob in zip(slates, p["slate"]):
        marginals[:, s, np.arange(K)] += prob[:, None]
    sampled = isinstance(policy, SoftmaxPolicy) and policy.max_prefixes == 1  # marginals from 20,000 draws
    tolerance = 0.015 if sampled else 1e-12
    np.testing.assert_allclose(policy.action_distribution(obs), marginals, atol=tolerance)
    np.testing.assert_allclose(policy.action_distribution(obs).sum(1), 1.0, atol=1e-12)
    # P(positions 0..k as shown) = P(0..k-1) * P(item k | 0..k-1)
    action = slates[[7, 31]]
    cascade = policy.propensities(obs, action)["cascade"]
    before = np.concatenate([np.ones((2, 1)), cascade[:, :-1]], axis=1)
    following = policy.next_item_distribution(obs, action)
    np.testing.assert_allclose(following.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(before * np.take_along_axis(following, action[:, :, None], 2)[..., 0], cascade,
                               atol=1e-12)


@pytest.mark.parametrize("policy", policies()[:2], ids=["epsilon_soft", "softmax"])
def test_propensities_match_the_frequencies_of_seeded_draws(world, policy):
    env, obs = world
    env.num_envs = n = 40_000
    many = {key: np.repeat(value[:1], n, axis=0) for key, value in obs.items()}
    policy.setup(env, seed=3)
    drawn = policy.act(many)
    slates, p = enumerate_propensities(policy, obs)
    codes = drawn @ (C ** np.arange(K))
    frequency = np.array([(codes == s @ (C ** np.arange(K))).mean() for s in slates])
    standard_error = np.sqrt(p["slate"][:, 0] * (1 - p["slate"][:, 0]) / n)
    assert np.all(np.abs(frequency - p["slate"][:, 0]) <= 5 * standard_error + 1e-9)


def test_epsilon_zero_and_temperature_zero_are_the_greedy_slate(world):
    env, obs = world
    greedy = MostPopularAgent()
    greedy.setup(env, seed=0)
    expected = greedy.act(obs)
    for policy in (EpsilonSoft(base=MostPopularAgent(), epsilon=0.0), SoftmaxPolicy(base=MostPopularAgent(), temperature=0.0),
                   SoftmaxPolicy(base=MostPopularAgent(), temperature=1e-4)):
        policy.setup(env, seed=1)
        for _ in range(5):
            np.testing.assert_array_equal(policy.act(obs), expected)
        p = policy.propensities(obs, expected)
        np.testing.assert_allclose(p["slate"], 1.0)
        np.testing.assert_allclose(p["position"], 1.0)
        other = expected[:, ::-1].copy()
        np.testing.assert_allclose(policy.propensities(obs, other)["slate"], 0.0, atol=1e-12)


def test_epsilon_one_is_the_uniform_random_policy(world):
    env, obs = world
    policy, uniform = EpsilonSoft(base=MostPopularAgent(), epsilon=1.0), RandomAgent()
    policy.setup(env, seed=0)
    uniform.setup(env, seed=0)
    action = np.array([[0, 1, 2], [4, 3, 2]])
    for key, value in uniform.propensities(obs, action).items():
        np.testing.assert_allclose(policy.propensities(obs, action)[key], value)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match=r"^EpsilonSoft.epsilon=1.5: must be in \[0, 1\]$"):
        EpsilonSoft(base=MostPopularAgent(), epsilon=1.5)
    with pytest.raises(ValueError, match=r"^SoftmaxPolicy.temperature=-1.0: must be >= 0$"):
        SoftmaxPolicy(base=MostPopularAgent(), temperature=-1.0)
    with pytest.raises(TypeError, match=r"^SoftmaxPolicy needs a base agent with score\(obs\) -> \[B, C\] candidate "
                                        r"scores \(e.g. MostPopularAgent, LinUCB, SlateQAgent, LinearScorer\); "
                                        r"got RandomAgent$"):
        SoftmaxPolicy(base=RandomAgent())


@pytest.mark.parametrize("bandit", [LinUCB, DisjointLinUCB, HybridLinUCB, DiagLinUCB])
def test_logging_policies_wrap_a_learning_linucb(bandit):
    env = SlateVectorEnv(num_envs=8, catalog=Catalog.synthetic(40, seed=0), slate_size=K, num_candidates=6)
    wrapped, bare = EpsilonSoft(base=bandit(), epsilon=0.0), bandit()
    for agent in (wrapped, bare):  # the wrapper passes the feedback on: both learn the same
        rollout(env, agent, n_steps=4, seed=0)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(wrapped.act(obs), bare.act(obs))
    softmax = SoftmaxPolicy(base=wrapped.base, temperature=0.5, setup_base=False)
    softmax.setup(env, seed=0)
    np.testing.assert_allclose(softmax.action_distribution(obs).sum(1), 1.0, atol=1e-12)
    assert (softmax.propensities(obs, softmax.act(obs))["slate"] > 0).all()
