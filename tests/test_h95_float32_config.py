"""Extreme configurations of the statistical users: what float32 cannot hold is refused by
name, and what it can stays finite on both kernels."""

import os
import shutil

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers

LONGEST_GAP = torch.finfo(torch.float32).max  # equations.LONGEST_GAP
CATALOG = Catalog.synthetic(60, n_genres=5, seed=1)
KERNELS = ["torch", pytest.param("c", marks=pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                                                reason="no C compiler to build the fused kernel"))]


@pytest.mark.parametrize("overrides, message", [
    # beyond the largest float32 a weight is inf there, and inf * 0 is NaN (hazards, watch)
    (dict(leave_boredom=1e39), "StatisticalUserConfig.leave_boredom=1e+39: must be within ±3.4028235e+38, the float32 "
                               "range (it is computed in float32, where it is inf)"),
    (dict(satiation_weight=np.float64(-1e39)), "StatisticalUserConfig.satiation_weight=-1e+39: must be within "
                                               "±3.4028235e+38, the float32 range (it is computed in float32, where "
                                               "it is -inf)"),
    # a divisor that float32 rounds to 0: 0 / 0 made NaN mindsets and compliances
    (dict(quality_scale=1e-300), "StatisticalUserConfig.quality_scale=1e-300: must be > 0 as a float32 too (it is "
                                 "computed in float32, where it is 0)"),
    (dict(more_share=1e-300), "StatisticalUserConfig.more_share=1e-300: must be in (0, 1] as a float32 too (it is "
                              "computed in float32, where it is 0)"),
    (dict(quick_visit_share=1 - 1e-12), "StatisticalUserConfig.quick_visit_share=0.999999999999: must be in [0, 1) "
                                        "as a float32 too (it is computed in float32, where it is 1)"),
    # e ** 100 is inf in float32: every first-session gap was inf for a user who returned
    (dict(gap_first_session=100.0), "StatisticalUserConfig.gap_first_session=100.0: must be <= 88.72"),
])
def test_values_float32_cannot_hold_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError) as error:
        StatisticalUserConfig(**overrides)
    assert str(error.value) == message



def test_the_synthetic_population_refuses_what_float32_cannot_hold():
    """Its spreads become C floats and float32 tensors as the users' parameters do."""
    from recoworld.simulators.population import SyntheticPopulation

    with pytest.raises(ValueError) as error:
        SyntheticPopulation(novelty_spread=1e39)
    assert str(error.value) == ("SyntheticPopulation.novelty_spread=1e+39: must be within ±3.4028235e+38, the "
                                "float32 range (it is computed in float32, where it is inf)")

def _run(config: StatisticalUserConfig, kernel: str, n_users: int = 40, steps: int = 12):
    """Step ``n_users`` users ``steps`` times, restarting those who churn; the responses."""
    users = StatisticalUsers(CATALOG, config, kernel=kernel)
    users.reset(n_users, seed=11)
    generator = torch.Generator().manual_seed(0)
    responses = []
    for t in range(steps):
        response = users.respond(torch.rand(n_users, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        for name in ("watch_fraction", "satisfaction", "leave_hazard", "compliance"):
            assert torch.isfinite(getattr(response, name)).all(), (t, name)
        for name in ("satiation", "recent_satiation", "session_memory", "interest"):
            assert torch.isfinite(getattr(users, name)).all(), (t, name)
        # the contract (recoworld.check_simulator): an infinite gap is a churn, any other gap is finite
        assert torch.equal(torch.isinf(response.return_gap), response.churned), t
        assert not torch.isnan(response.return_gap).any(), t
        responses.append(response)
        gone = response.churned.nonzero().flatten()
        if len(gone):
            users.reset(n_users, seed=[100 * (t + 1) + int(slot) for slot in gone], users=gone)
    return responses


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("overrides", [
    dict(gap_first_session=88.72),  # the largest accepted: e ** 88.72 times the mean gap leaves float32
    dict(gap_days=3e38),
    dict(gap_days=3e38, gap_shape=0.5),  # a Weibull tail
], ids=["gap_first_session", "gap_days", "weibull_tail"])
def test_gaps_too_long_for_float32_are_the_longest_gap_not_infinite(kernel, overrides):
    responses = _run(StatisticalUserConfig(**overrides), kernel)
    gaps = torch.cat([r.return_gap[r.returned] for r in responses])
    assert (gaps == LONGEST_GAP).any(), "the test must draw a gap past float32"
    assert (gaps <= LONGEST_GAP).all()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("overrides", [dict(quality_scale=1.4e-45), dict(more_share=1.4e-45)],
                         ids=["quality_scale", "more_share"])
def test_the_smallest_float32_divisors_run_finite(kernel, overrides):
    responses = _run(StatisticalUserConfig(**overrides), kernel)
    assert any(bool(r.instruction_in_force.any()) for r in responses), "the test must divide by more_share"
