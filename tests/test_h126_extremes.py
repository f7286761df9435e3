"""The statistical users at the extremes of their inputs: every float parameter of the config
and of the synthetic population, at 1e30, 1e38 and -1e38, is either refused by name or steps
both kernels without NaN (a patience held at 0 or 1 included); a return after a gap of 0 is a
return like any other."""

import os
import shutil
from dataclasses import fields

import numpy as np
import pytest
import torch

from recoworld import Catalog, metrics
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.checker import check_simulator
from recoworld.simulators.population import SyntheticPopulation

CATALOG = Catalog.synthetic(60, n_genres=5, seed=1)
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None
KERNELS = ["torch", pytest.param("c", marks=pytest.mark.skipif(not HAS_CC, reason="no C compiler to build the kernel"))]
EXTREMES = (1e30, 1e38, -1e38)
FIELDS = [(cls, f.name) for cls in (StatisticalUserConfig, SyntheticPopulation) for f in fields(cls)
          if f.type in ("float", float)]
STATE = ("satiation", "recent_satiation", "interest", "familiar", "satisfaction", "session_memory", "patience",
         "activity", "novelty_seeking", "popularity_bias")


def _steps(config, population, kernel, n_users=64, steps=8):
    """Step the users on random slates, restarting the churned; yield each response."""
    users = StatisticalUsers(CATALOG, config, population=population, kernel=kernel)
    users.reset(n_users, seed=11)
    generator = torch.Generator().manual_seed(0)
    for t in range(steps):
        response = users.respond(torch.rand(n_users, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        yield users, response
        gone = response.churned.nonzero().flatten()
        if len(gone):
            users.reset(n_users, seed=[100 * (t + 1) + int(slot) for slot in gone], users=gone)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("owner, name", FIELDS, ids=[f"{cls.__name__}.{name}" for cls, name in FIELDS])
def test_an_extreme_value_is_refused_by_name_or_steps_without_nan(owner, name, kernel):
    for value in EXTREMES:
        try:
            built = owner(**{name: value})
        except ValueError as error:
            assert str(error).startswith(f"{owner.__name__}.{name}={value!r}: must be "), error
            continue
        config = built if owner is StatisticalUserConfig else StatisticalUserConfig()
        population = built if owner is SyntheticPopulation else SyntheticPopulation()
        for users, response in _steps(config, population, kernel):
            for field in ("satisfaction", "leave_hazard", "watch_fraction", "compliance", "return_gap"):
                assert not torch.isnan(getattr(response, field)).any(), (value, field)
            for field in STATE:
                assert torch.isfinite(getattr(users.state, field)).all(), (value, field)
            assert bool(((users.state.patience >= 0) & (users.state.patience <= 1)).all()), value


# L^-1e30 is 0 in float32 for a session of two steps or more: most returns draw a gap of 0.
ZERO_GAPS = StatisticalUserConfig(gap_length_elasticity=1e30, leave_base=-1.0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_return_after_a_gap_of_zero_is_a_return(kernel):
    users = StatisticalUsers(CATALOG, ZERO_GAPS, kernel=kernel)
    check_simulator(users, n_users=32, slate_size=5, steps=20)
    zero, left, returned = 0, [], []
    index_before, restarted = None, None
    for sim, response in _steps(ZERO_GAPS, SyntheticPopulation(), kernel, n_users=128, steps=40):
        index = sim.state.session_index.clone()
        at_once = response.returned & (response.return_gap == 0)
        zero += int(at_once.sum())
        if index_before is not None:
            # the next session begins: one more session, its first step still to come (a slot
            # restarted after a churn holds a new user, whose index started again)
            kept = at_once & ~restarted
            assert torch.equal(index[kept], index_before[kept] + 1)
            assert bool((sim.state.session_step[at_once] == 0).all())
        assert not bool((at_once & (response.churned | ~response.left_session)).any())
        left.append(response.left_session.numpy())
        returned.append(response.returned.numpy())
        index_before, restarted = index, response.churned.clone()
    assert zero > 100, "the test must draw returns after a gap of 0"
    left, returned = np.concatenate(left), np.concatenate(returned)
    assert metrics.return_rate(left, returned) == returned.sum() / left.sum()
