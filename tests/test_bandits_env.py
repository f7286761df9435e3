"""Every bandit and Thompson-sampling agent learns to serve RecoWorld's users: over 200
steps of 64 users of ``RecoWorld/Slate-v0`` it earns clearly more clicks than random."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from recoworld.agents.bandits import BernoulliTS, EpsilonGreedy, UCB1
from recoworld.agents.baselines import RandomAgent
from recoworld.agents.linear import DiagLinUCB, DisjointLinUCB, HybridLinUCB, LinUCB
from recoworld.agents.neural_linear import NeuralLinearTS
from recoworld.agents.thompson import InSlateThompson, LinearTS
from recoworld.envs.rollout import rollout

STEPS, USERS, SEED = 200, 64, 0

# Propensities are not under test here; Monte-Carlo estimates would only slow the loop.
LEARNERS = {
    "epsilon_greedy": lambda: EpsilonGreedy(),
    "ucb1": lambda: UCB1(),
    "bernoulli_ts": lambda: BernoulliTS(propensity_samples=0),
    "linucb": lambda: LinUCB(),
    "disjoint_linucb": lambda: DisjointLinUCB(),
    "hybrid_linucb": lambda: HybridLinUCB(),
    "diag_linucb": lambda: DiagLinUCB(),
    "linear_ts": lambda: LinearTS(propensity_samples=0),
    "in_slate_ts": lambda: InSlateThompson(propensity_samples=0),
    "neural_linear_ts": lambda: NeuralLinearTS(propensity_samples=0, train_every=40, train_steps=30, batch_size=128,
                                               hidden_size=16, representation_size=16),  # a light network: fast
}


@pytest.fixture(scope="module")
def env():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the batched simulator's small tensor ops run faster on one thread
    yield gym.make_vec("RecoWorld/Slate-v0", num_envs=USERS, vectorization_mode="vector_entry_point")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_clicks(env) -> float:
    return rollout(env, RandomAgent(), STEPS, SEED).reward_per_interaction


@pytest.mark.parametrize("name", LEARNERS)
def test_agent_beats_random_clearly(name, env, random_clicks):
    clicks = rollout(env, LEARNERS[name](), STEPS, SEED).reward_per_interaction
    assert clicks > 1.35 * random_clicks, f"{name}: {clicks:.3f} clicks per step vs random {random_clicks:.3f}"
