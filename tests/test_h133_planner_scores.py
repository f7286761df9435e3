"""The planning oracle plans with the user model's own click probabilities at every step of
its lookahead: a class that changes them (or the utility they come from) is honoured beyond
the first decision, and a batched model without the statistical users' unchecked utility is
planned with its click_probabilities, as before."""

import re
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents.planning import PlanningOracle
from recoworld.simulators import StatisticalUsers
from recoworld.types import Observation

CATALOG = Catalog.synthetic(60, n_genres=4, seed=0)
HORIZON, ROLLOUTS, USERS = 5, 2, 3
calls = []


class Tempered(StatisticalUsers):
    """A plug-in whose click probabilities are tempered (a calibration layer)."""

    def click_probabilities(self, items):
        calls.append(tuple(items.shape))
        return super().click_probabilities(items) ** 2


class Bonus(StatisticalUsers):
    """A plug-in that changes the utility, and so the click probabilities (its sigmoid)."""

    def utility(self, items, users=None):
        calls.append(tuple(items.shape))
        return super().utility(items, users) + 0.5


def env_of(simulator):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=USERS, vectorization_mode="vector_entry_point",
                        simulator=simulator, num_candidates=10, slate_size=3, max_steps=20)


@pytest.mark.parametrize("kind", [Tempered, Bonus])
def test_a_changed_click_probability_is_planned_with_at_every_lookahead_step(kind):
    env = env_of(kind(CATALOG, kernel="torch"))
    planner = PlanningOracle(horizon=HORIZON, rollouts=ROLLOUTS)
    planner.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    calls.clear()
    planner.act(obs)
    rows = USERS * len(planner.rules) * ROLLOUTS  # a row per (user, rule, rollout)
    assert calls == [(USERS, 10)] + [(rows, 10)] * (HORIZON - 1)


class Batched:
    """A batched user model that is not a StatisticalUsers: a state, n_users and
    click_probabilities (here those of the statistical users it wraps), no utility_valid."""

    def __init__(self, users):
        self._users = users

    state = property(lambda self: self._users.state, lambda self, value: setattr(self._users, "state", value))
    n_users = property(lambda self: self._users.n_users, lambda self, value: setattr(self._users, "n_users", value))
    device = property(lambda self: self._users.device)

    def click_probabilities(self, items):
        calls.append(tuple(items.shape))
        return self._users.click_probabilities(items)

    def respond(self, slates):
        return self._users.respond(slates)

    def respond_valid(self, slates):
        return self._users.respond_valid(slates)


def test_a_batched_model_without_utility_valid_is_planned_with_its_click_probabilities():
    env = env_of(StatisticalUsers(CATALOG, kernel="torch"))
    plain = PlanningOracle(horizon=HORIZON, rollouts=ROLLOUTS)
    plain.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    action = plain.act(obs)

    world = env.unwrapped
    wrapped = SimpleNamespace(unwrapped=SimpleNamespace(
        catalog=world.catalog, slate_size=world.slate_size, num_candidates=world.num_candidates,
        user_model=lambda: Batched(world.user_model())))
    planner = PlanningOracle(horizon=HORIZON, rollouts=ROLLOUTS)
    planner.setup(wrapped, seed=0)
    calls.clear()
    assert np.array_equal(planner.act(obs), action)  # the checked probabilities are the unchecked ones
    assert len(calls) == HORIZON


def test_a_model_without_click_probabilities_is_refused_by_name():
    world = SimpleNamespace(catalog=CATALOG, slate_size=3, num_candidates=10,
                            user_model=lambda: SimpleNamespace(state=None, n_users=3))
    with pytest.raises(TypeError, match="^" + re.escape(
            "PlanningOracle needs a batched user model with a dataclass state of per-user tensors and "
            "click_probabilities (the statistical or calibrated users); the env's simulator is a SimpleNamespace")):
        PlanningOracle().setup(SimpleNamespace(unwrapped=world), seed=0)
