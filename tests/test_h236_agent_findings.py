"""The agents' propensities as off-policy evaluation reads them (review h226): a Thompson
sampler's evaluation-side estimates are unbiased for the probabilities themselves, its replays
move on from call to call, the planning oracle does not claim to be deterministic, and an SB3
model with nothing to sample refuses to be asked to sample."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

from recoworld.agents import BernoulliTS, PlanningOracle
from recoworld.agents.logging_policies import all_slates
from recoworld.agents.sampling import monte_carlo_propensities
from recoworld.agents.sb3 import SB3Agent, SB3Recommender
from recoworld.apps.ope.policies import PolicyOnLog
from recoworld.types import CANDIDATE_IDS, Observation
from toy_world import ToyWorld, drive, tiny_catalog


def trained_sampler(C: int, K: int, **kwargs) -> tuple[BernoulliTS, ToyWorld]:
    """A Bernoulli Thompson sampler trained on ``C`` items of rates 0.01 to 0.6, slates of ``K``."""
    rates = np.linspace(0.01, 0.6, C)
    env = ToyWorld(tiny_catalog(C), lambda obs: rates[obs[CANDIDATE_IDS]], num_envs=16, slate_size=K)
    agent = BernoulliTS(**kwargs)
    drive(env, agent, 100, seed=0)
    return agent, env


def every_slate_request(env: ToyWorld, C: int, K: int) -> tuple[Observation, np.ndarray]:
    """One row per ranked slate of ``K`` out of ``C`` candidates, all rows the same request."""
    slates = all_slates(C, K)
    env.num_envs = len(slates)
    return Observation(env.reset(seed=1)[0]), slates


def test_the_evaluated_thompson_samplers_probabilities_of_every_slate_sum_to_one():
    """The logging side's estimates ((m+1)/(D+1), r/N) make 1/p unbiased and sum far above 1 over
    every slate; ope evaluate's target side reads the plain frequencies, unbiased for p."""
    C, K = 8, 3
    agent, env = trained_sampler(C, K)
    obs, slates = every_slate_request(env, C, K)
    assert agent.propensities(obs, slates)["slate"].sum() > 1.5  # the logger's reading, not for a numerator
    target = PolicyOnLog(agent, {key: np.asarray(value) for key, value in obs.items()}, "bernoulli_ts")
    given = target.propensities({CANDIDATE_IDS: np.asarray(obs[CANDIDATE_IDS])}, slates)
    assert abs(given["slate"].sum() - 1) < 0.2   # 336 rows of 100 replays: standard error 0.06 here
    for k in range(K):  # each position's candidates, once per candidate
        first = np.unique(slates[:, k], return_index=True)[1]
        assert abs(given["position"][first, k].sum() - 1) < 0.2


def test_evaluation_side_estimates_are_the_frequencies_of_a_fixed_number_of_replays():
    action = np.zeros((4, 2), dtype=np.int64)

    def draw(rng, n, rows):  # position 0 matches w.p. 0.5, position 1 always
        return np.stack([(rng.random((n, len(rows))) < 0.5).astype(np.int64), np.zeros((n, len(rows)), np.int64)], 2)

    p = monte_carlo_propensities(draw, action, 40, seed=0, side="evaluation")
    np.testing.assert_array_equal(p["draws"], 40)
    np.testing.assert_allclose(p["slate"] * 40, np.round(p["slate"] * 40))  # m / 40, not (m + 1) / 41
    np.testing.assert_array_equal(p["position"][:, 1], 1.0)
    with pytest.raises(ValueError, match=r"^side='target'; give 'logging' \(the weight's denominator\) or "
                                         r"'evaluation' \(its numerator\)$"):
        monte_carlo_propensities(draw, action, 40, seed=0, side="target")


def close_race_sampler() -> tuple[BernoulliTS, Observation]:
    """A sampler briefly trained on 4 items of near rates, whose slates of 2 still vary, and a request."""
    env = ToyWorld(tiny_catalog(4), lambda obs: np.array([0.2, 0.25, 0.3, 0.35])[obs[CANDIDATE_IDS]], num_envs=1,
                   slate_size=2)
    agent = BernoulliTS()
    drive(env, agent, 40, seed=0)
    return agent, Observation(env.reset(seed=1)[0])


def test_a_frozen_samplers_replays_move_on_from_call_to_call_deterministically():
    """A frozen logger asked about the same request at every step read one estimate, repeating its
    error over the whole log; each call now replays the next stream of the agent's seed."""
    agent, obs = close_race_sampler()
    g = np.array([[3, 2]])
    acting = agent.rng.bit_generator.state
    first = agent.propensities(obs, g)["slate"]
    copy = pickle.loads(pickle.dumps(agent))  # keeps the count of calls
    later = [agent.propensities(obs, g)["slate"][0] for _ in range(5)]
    assert len(set([first[0], *later])) > 1
    assert agent.rng.bit_generator.state == acting  # the acting generator is left untouched
    assert copy.propensities(obs, g)["slate"][0] == later[0]
    again, _ = close_race_sampler()  # the same seed and calls give the same estimates
    assert again.propensities(obs, g)["slate"][0] == first[0]


def planner_and_request(**kwargs) -> tuple[PlanningOracle, Observation]:
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=8, vectorization_mode="vector_entry_point")
    agent = PlanningOracle(**kwargs)
    agent.setup(env, seed=0)
    return agent, Observation(env.reset(seed=3)[0])


def test_the_planning_oracle_states_no_propensities_where_its_lookahead_draws_anew():
    agent, obs = planner_and_request(horizon=2)
    slates = [agent.act(obs) for _ in range(6)]
    assert any(len({tuple(s[b]) for s in slates}) > 1 for b in range(8))  # the same request, other slates
    assert agent.propensities(obs, slates[0]) is None
    single, obs = planner_and_request(rules=("clicks",))  # one rule, no lookahead: its slate every time
    slate = single.act(obs)
    np.testing.assert_array_equal(single.act(obs), slate)
    np.testing.assert_array_equal(single.propensities(obs, slate)["slate"], 1.0)


def test_dqn_refuses_to_sample_its_greedy_picks():
    with pytest.raises(ValueError, match=r"^SB3Agent\(algo='DQN', deterministic=False\) samples the model's "
                                         r"choices, but a Q-value model \(DQN\) picks greedily by Q-value: the same "
                                         r"slate for a request at every call; give deterministic=True, or a "
                                         r"policy-gradient algo \(PPO, A2C, MaskablePPO\) to sample$"):
        SB3Agent(algo="DQN", deterministic=False)
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       num_candidates=10, slate_size=3)
    trained = SB3Agent(algo="DQN", formulation="single_item", total_timesteps=16, num_envs=2,
                       algo_kwargs={"learning_starts": 8, "buffer_size": 100, "batch_size": 8})
    trained.setup(env, seed=0)
    with pytest.raises(ValueError, match=r"^SB3Recommender\(deterministic=False\) samples the model's choices, but "
                                         r"a Q-value model \(DQN\) picks greedily by Q-value: the same slate for a "
                                         r"request at every call; give deterministic=True$"):
        SB3Recommender(model=trained.model, deterministic=False).setup(env, seed=0)
