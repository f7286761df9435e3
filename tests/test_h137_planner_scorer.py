"""A batched plug-in user model with its own ``utility_valid`` but no ``utility`` passes the
planning oracle's check of the model, and is planned with its click_probabilities (it was an
AttributeError at the first lookahead)."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents.planning import PlanningOracle
from recoworld.simulators import StatisticalUsers
from recoworld.types import Observation

CATALOG = Catalog.synthetic(60, n_genres=4, seed=0)
HORIZON, ROLLOUTS, USERS = 5, 2, 3


class OwnUnchecked:
    """A batched user model, not a StatisticalUsers: a state, n_users, click_probabilities and
    an unchecked utility of its own (no utility)."""

    def __init__(self, users, calls):
        self._users, self._calls = users, calls

    state = property(lambda self: self._users.state, lambda self, value: setattr(self._users, "state", value))
    n_users = property(lambda self: self._users.n_users, lambda self, value: setattr(self._users, "n_users", value))
    device = property(lambda self: self._users.device)

    def click_probabilities(self, items):
        self._calls.append(tuple(items.shape))
        return self._users.click_probabilities(items)

    def utility_valid(self, items):
        raise AssertionError("the lookahead reads utility_valid only where it is the statistical users'")

    def respond(self, slates):
        return self._users.respond(slates)

    def respond_valid(self, slates):
        return self._users.respond_valid(slates)


def test_a_model_with_its_own_utility_valid_and_no_utility_is_planned_with_its_click_probabilities():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=USERS, vectorization_mode="vector_entry_point",
                       simulator=StatisticalUsers(CATALOG, kernel="torch"), num_candidates=10, slate_size=3,
                       max_steps=20)
    plain = PlanningOracle(horizon=HORIZON, rollouts=ROLLOUTS)
    plain.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    action = plain.act(obs)

    world, calls = env.unwrapped, []
    wrapped = SimpleNamespace(unwrapped=SimpleNamespace(
        catalog=world.catalog, slate_size=world.slate_size, num_candidates=world.num_candidates,
        user_model=lambda: OwnUnchecked(world.user_model(), calls)))
    planner = PlanningOracle(horizon=HORIZON, rollouts=ROLLOUTS)
    planner.setup(wrapped, seed=0)
    assert np.array_equal(planner.act(obs), action)  # was: AttributeError: ... has no attribute 'utility'
    assert len(calls) == HORIZON  # the first decision, then each lookahead step
