"""The top 24-bit draw, whose + 0.5 float32 rounds up to 2**24, stays a uniform below 1 in
``recoworld.rng`` and in the C kernels (``rng.h``): once in 2**24 draws it used to be exactly
1, so a user's normal draw (a session's novelty propensity, the sign-up draw) was infinite."""

import os
import shutil

import pytest
import torch

from recoworld import Catalog, rng
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.user_state import S_SESSION, sign_up_draw

# Keys whose session-stream draw at counter 0 is the top 24-bit value: draw 0 (the first
# session's novelty propensity) for the first, draw 1 (the sign-up draw) for the second.
TOP_DRAW_KEYS = torch.tensor([1504074, 14941554])


def test_the_top_draw_is_the_float_below_one_and_its_normal_is_finite():
    top = (rng._bits32(TOP_DRAW_KEYS, torch.zeros(2, dtype=torch.int64), S_SESSION, 2) >> 8) & 0xFFFFFF
    assert top.diagonal().tolist() == [0xFFFFFF, 0xFFFFFF]  # the premise: these keys draw the top value
    u = rng.uniform(TOP_DRAW_KEYS, torch.zeros(2, dtype=torch.int64), S_SESSION, 2).diagonal()
    assert u.tolist() == [rng.BELOW_ONE, rng.BELOW_ONE] and bool((u < 1).all())
    z = rng.normal(TOP_DRAW_KEYS, torch.zeros(2, dtype=torch.int64), S_SESSION, 2).diagonal()
    assert torch.isfinite(z).all() and bool((z > 5).all())  # the far tail, not infinity
    assert torch.isfinite(sign_up_draw(TOP_DRAW_KEYS[1:])).all()


def test_every_other_draw_keeps_its_bits():
    """The fix moves only the top value: the draws of 2**20 counters are (k + 0.5) / 2**24 as
    float32 computes it, with no clamp anywhere else."""
    keys = torch.arange(1 << 20, dtype=torch.int64)
    top24 = (rng._bits32(keys, torch.zeros_like(keys), S_SESSION, 1) >> 8) & 0xFFFFFF
    assert int(top24.max()) < 0xFFFFFF  # none of these is the top value
    unclamped = (top24.float() + 0.5) * (1.0 / (1 << 24))
    assert torch.equal(rng.uniform(keys, torch.zeros_like(keys), S_SESSION, 1), unclamped)


@pytest.mark.parametrize("kernel", ["torch", pytest.param("c", marks=pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler to build the fused kernel"))])
def test_users_with_the_top_draw_step_with_finite_numbers(kernel):
    """A user whose first session's novelty propensity, or whose sign-up draw, is the top
    draw gets a large finite value: utilities, hazards and ratings stay finite, and the
    sign-up draw does not stop the first session's leaving altogether."""
    catalog = Catalog.synthetic(50, seed=0)
    config = StatisticalUserConfig(novelty_session_spread=0.3, first_session_spread=1.0)
    users = StatisticalUsers(catalog, config, kernel=kernel)
    users.reset(2, seed=0)
    users.backend.start(users.state, torch.arange(2), TOP_DRAW_KEYS, users.population, users.catalog)
    assert torch.isfinite(users.state.novelty_seeking).all()
    slates = torch.arange(10).repeat(2, 1)
    response = users.respond(slates)
    for name, value in response.tensor_fields().items():
        if value.dtype.is_floating_point:
            assert torch.isfinite(value).all(), name
    assert float(response.leave_hazard[1]) > 0.0  # an infinite sign-up draw made it exactly 0
