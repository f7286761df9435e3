"""A user's mistakes with the Python API: each gets a message naming the value and the fix,
and a valid slate in an unusual layout (a reversed argsort's view) is read as it is."""

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, check_simulator
from recoworld.agents import RandomAgent
from recoworld.envs.rollout import rollout
from recoworld.simulators import StatisticalUsers
from recoworld.simulators.population import SyntheticPopulation
from recoworld.simulators.checker import SimulatorCheckError

CATALOG = Catalog.synthetic(30, seed=0)
SIZES = dict(catalog=CATALOG, slate_size=3, num_candidates=8, max_steps=5)


def make(**kwargs):
    return gym.make("RecoWorld/Slate-v0", **SIZES, **kwargs).unwrapped


def make_vec(n, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point", **SIZES, **kwargs)


# ------------------------------------------------------------ reversed views
@pytest.mark.parametrize("kernel", ["c", "torch"])
def test_a_reversed_argsort_is_a_slate_of_the_vector_env(kernel):
    order = np.argsort(np.random.default_rng(0).random((3, 8)), axis=1)
    reversed_view = order[:, ::-1][:, :3]  # negative strides, as numpy gives them
    assert reversed_view.strides[1] < 0
    stepped, copied = make_vec(3, kernel=kernel), make_vec(3, kernel=kernel)
    stepped.reset(seed=4), copied.reset(seed=4)
    by_view, by_copy = stepped.step(reversed_view), copied.step(reversed_view.copy())
    assert np.array_equal(by_view[4]["slate"], by_copy[4]["slate"])
    assert np.array_equal(by_view[1], by_copy[1])


def test_a_reversed_argsort_is_a_slate_of_the_single_env():
    env, twin = make(), make()
    env.reset(seed=0), twin.reset(seed=0)
    action = np.argsort(np.arange(8))[::-1][:3]
    assert np.array_equal(env.step(action)[4]["slate"], twin.step(action.copy())[4]["slate"])


def test_reversed_scores_are_read_as_they_are():
    scores = np.linspace(-1, 1, 8, dtype=np.float32)
    env, twin = make(action_format="scores"), make(action_format="scores")
    env.reset(seed=1), twin.reset(seed=1)
    assert np.array_equal(env.step(scores[::-1])[4]["slate"], twin.step(scores[::-1].copy())[4]["slate"])


def test_a_simulator_reads_reversed_slates():
    users = StatisticalUsers(CATALOG)
    users.reset(2, seed=0)
    assert users.respond(np.array([[0, 1], [2, 3]])[:, ::-1]).clicked.shape == (2, 2)


# ------------------------------------------------------ entries that are not ids
@pytest.mark.parametrize("action, message", [
    ([0, 1, "2"], "action[0] is '0' (str), not an integer; action must hold integer candidate indices (e.g. int64)"),
    ([0, 1, 2**70], f"action[2] is candidate index {2**70}, but there are 8 candidates (valid ids 0..7)"),
    (np.array([0, 1, 2**64 - 1], dtype=np.uint64),
     f"action[2] is candidate index {2**64 - 1}, but there are 8 candidates (valid ids 0..7)"),
    ([[0], [1, 2]], "action [[0], [1, 2]] nests sequences of different lengths; expected (3,) candidate indices"),
])
def test_an_action_that_is_not_integer_ids_is_named(action, message):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        env.step(action)


def test_an_object_array_of_ids_is_read_as_ids():
    env, twin = make(), make()
    env.reset(seed=2), twin.reset(seed=2)
    assert np.array_equal(env.step(np.array([4, 1, 2], dtype=object))[4]["slate"], twin.step([4, 1, 2])[4]["slate"])


def test_a_vector_action_entry_that_is_not_an_id_is_named_by_row():
    env = make_vec(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("action[1][2] is None (NoneType), not an integer; action must "
                                                   "hold integer candidate indices (e.g. int64)")):
        env.step([[0, 1, 2], [1, 2, None]])


# -------------------------------------------------------------- env arguments
@pytest.mark.parametrize("kwargs, message", [
    (dict(simulator_config={"satiation_rat": 0.1}),
     "simulator_config has 'satiation_rat', which StatisticalUserConfig has not (did you mean 'satiation_rate'?); "
     "help(recoworld.simulators.StatisticalUserConfig) lists its fields"),
    (dict(simulator_config=[0.1]),
     "simulator_config is a list; give a StatisticalUserConfig or a mapping of its fields, e.g. "
     "{'satiation_rate': 0.1}"),
    (dict(population="patient"),
     "population is a str, not a recoworld.simulators.population.Population; give one, such as "
     "SyntheticPopulation(), or leave it out"),
    (dict(population=SyntheticPopulation),
     "population is the class SyntheticPopulation; pass an instance, SyntheticPopulation(...)"),
])
def test_a_bad_simulator_argument_is_named_when_the_env_is_built(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make(**kwargs)


def test_a_catalog_that_is_not_one_is_named():
    with pytest.raises(ValueError, match=re.escape("catalog is a str, not a recoworld.Catalog; build one with")):
        gym.make("RecoWorld/Slate-v0", catalog="movielens")


# ------------------------------------------------------------------ rollout
@pytest.mark.parametrize("call, message", [
    (lambda env: rollout(env, RandomAgent, n_steps=2, seed=0), "agent is the class RandomAgent; pass an instance, "
                                                               "RandomAgent()"),
    (lambda env: rollout(env, RandomAgent(), n_steps=2.5, seed=0), "n_steps=2.5: must be an integer >= 1"),
    (lambda env: rollout(env, RandomAgent(), n_steps=2, seed=-1), "seed=-1: must be an integer >= 0"),
])
def test_rollout_names_a_bad_argument(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call(make_vec(2))


def test_rollout_of_a_single_env_says_to_build_a_vector_env():
    with pytest.raises(ValueError, match=re.escape("env is a SlateEnv, not a vector env: rollout serves a batch of "
                                                   "users; build one with gymnasium.make_vec(")):
        rollout(gym.make("RecoWorld/Slate-v0", **SIZES), RandomAgent(), n_steps=2, seed=0)


def test_check_simulator_of_a_class_asks_for_an_instance():
    with pytest.raises(SimulatorCheckError) as raised:
        check_simulator(StatisticalUsers)
    assert raised.value.problems == ["check_simulator was given the class StatisticalUsers, not a simulator; pass "
                                     "an instance, e.g. check_simulator(StatisticalUsers(catalog))"]
