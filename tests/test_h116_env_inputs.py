"""The single env checks a reset seed as the vector env does; a slate's dtype is named as
the caller gave it; one seed bound for envs and simulators."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.envs import world
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.simulators import StatisticalUsers, base

CATALOG = Catalog.synthetic(60, seed=0)


def _envs(num_envs: int = 2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (SlateEnv(catalog=CATALOG, num_candidates=20, slate_size=5),
                SlateVectorEnv(num_envs=num_envs, catalog=CATALOG, num_candidates=20, slate_size=5))


@pytest.mark.parametrize("seed, message", [
    (-1, "seed=-1: must be an integer >= 0"),
    (3.0, "seed=3.0: must be an integer >= 0"),
    (np.float64(3.0), "seed=np.float64(3.0): must be an integer >= 0"),
    (np.array(-1), "seed=-1: must be an integer >= 0"),
    ("3", "seed='3': must be an integer >= 0"),
])
def test_the_single_env_refuses_a_seed_as_the_vector_env_does(seed, message):
    # The single env raised Gymnasium's own Error ("Seed must be a python integer"), not a ValueError.
    for env in _envs():
        with pytest.raises(ValueError) as error:
            env.reset(seed=seed)
        assert str(error.value) == message


def test_a_0d_array_seed_is_the_seed_it_holds():
    single, vector = _envs()
    observation, _ = single.reset(seed=np.array(3))
    again, _ = single.reset(seed=3)
    assert all(np.array_equal(observation[key], again[key]) for key in observation)
    vector.reset(seed=np.array(3))  # it left the vector env's np_random unseeded
    drawn = vector.np_random.integers(2**62)
    vector.reset(seed=3)
    assert vector.np_random.integers(2**62) == drawn


def test_envs_and_simulators_share_one_seed_bound():
    assert world.MAX_SEED is base.MAX_SEED == 2**63 - 1


SCORES = "not scores — rank scores yourself or use action_format='scores'"


@pytest.mark.parametrize("action, dtype", [
    (np.arange(10, dtype=np.float32).reshape(2, 5), "float32"),
    ([[0.0, 1.0, 2.0, 3.0, 4.0]] * 2, "float64"),
    (np.ones((2, 5), dtype=bool), "bool"),
    (torch.arange(10, dtype=torch.float64).reshape(2, 5), "torch.float64"),
])
def test_a_slate_of_another_dtype_is_named_by_its_own_dtype(action, dtype):
    # A NumPy array was named by torch's dtype ("torch.float32"), and the message asked for
    # "candidate index ids".
    _, vector = _envs()
    vector.reset(seed=0)
    with pytest.raises(ValueError) as error:
        vector.step(action)
    assert str(error.value) == f"action has dtype {dtype}; pass integer candidate indices (e.g. int64), {SCORES}"
    users = StatisticalUsers(CATALOG)
    users.reset(2, seed=0)
    with pytest.raises(ValueError) as error:
        users.respond(action)
    # A simulator takes no action_format: only the env's message offers it.
    assert str(error.value) == f"slate has dtype {dtype}; pass integer item ids (e.g. int64), not scores — rank scores yourself"


def test_a_single_envs_tensor_slate_of_another_dtype_is_named_by_torchs_dtype():
    # The single env read the tensor into NumPy first: "action has dtype float64".
    env = SlateEnv(catalog=CATALOG, slate_size=5, num_candidates=20)
    env.reset(seed=0)
    with pytest.raises(ValueError) as error:
        env.step(torch.arange(5, dtype=torch.float64))
    assert str(error.value) == f"action has dtype torch.float64; pass integer candidate indices (e.g. int64), {SCORES}"
