"""The last NaN paths of the statistical users at extreme values their checks accept: a mean
return gap past float32 meeting a factor that rounds to 0 (both kernels, alike), the
synthetic population's traits (refused by name beyond what their equations hold), and the
discarded rating of a film that cannot be watched again; ordinary values keep their bits."""

import os
import shutil

import pytest
import torch

from kernel_support import copy_state
from recoworld import Catalog
from recoworld.rng import weibull_mean_factor
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers, equations
from recoworld.simulators.population import SyntheticPopulation

CATALOG = Catalog.synthetic(60, n_genres=5, seed=1)
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None
KERNELS = ["torch", pytest.param("c", marks=pytest.mark.skipif(not HAS_CC, reason="no C compiler to build the kernel"))]
LONGEST_GAP = torch.finfo(torch.float32).max  # equations.LONGEST_GAP
M = 3e38  # a gap_days float32 holds, whose mean gap overflows it for any user below average

# Each overflows the mean gap to inf before a factor that is 0 in float32: e^-200, a session
# length L >= 2 to the power -300, a Weibull factor (-log u)^20 of a uniform near 1, and a
# tiny activity (e^(16 z) for the widest spread accepted, returning by a large return_base)
# before e^-200.
GAP_CASES = {
    "first_session_far_below": (dict(gap_days=M, gap_first_session=-200.0, leave_base=5.0), SyntheticPopulation()),
    "large_elasticity": (dict(gap_days=M, gap_length_elasticity=300.0), SyntheticPopulation()),
    "smallest_shape": (dict(gap_days=M, gap_shape=0.05, leave_base=5.0), SyntheticPopulation()),
    "tiny_activity": (dict(gap_days=1e30, gap_first_session=-200.0, gap_shape=0.5, leave_base=5.0, return_base=60.0),
                      SyntheticPopulation(activity_spread=16.0)),
}


def _run(config: StatisticalUserConfig, population, kernel: str, n_users: int = 400, steps: int = 30):
    """The return gaps of the users who returned in ``steps`` steps (the churned restarted),
    each step's satiation checked finite."""
    users = StatisticalUsers(CATALOG, config, population=population, kernel=kernel)
    users.reset(n_users, seed=11)
    generator = torch.Generator().manual_seed(0)
    gaps = []
    for t in range(steps):
        response = users.respond(torch.rand(n_users, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        assert not torch.isnan(response.return_gap).any(), (t, "return_gap")
        for name in ("satiation", "recent_satiation"):
            assert torch.isfinite(getattr(users.state, name)).all(), (t, name)
        gaps.append(response.return_gap[response.returned])
        gone = response.churned.nonzero().flatten()
        if len(gone):
            users.reset(n_users, seed=[100 * (t + 1) + int(slot) for slot in gone], users=gone)
    return torch.cat(gaps)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", GAP_CASES, ids=GAP_CASES)
def test_a_mean_gap_past_float32_saturates_and_draws_no_nan_gap(case, kernel):
    overrides, population = GAP_CASES[case]
    gaps = _run(StatisticalUserConfig(**overrides), population, kernel)
    assert len(gaps) > 50, "the test must draw returns"
    assert bool(((gaps >= 0) & (gaps <= LONGEST_GAP)).all())


@pytest.mark.skipif(not HAS_CC, reason="no C compiler to build the kernel")
@pytest.mark.parametrize("case", GAP_CASES, ids=GAP_CASES)
def test_both_kernels_saturate_the_mean_gap_alike(case):
    """Stepped from the same state, the C kernel returns the same users after the same gaps
    as the torch reference (to rounding), the saturated ones included."""
    overrides, population = GAP_CASES[case]
    config = StatisticalUserConfig(**overrides)
    reference = StatisticalUsers(CATALOG, config, population=population, kernel="torch")
    fast = StatisticalUsers(CATALOG, config, population=population, kernel="c")
    reference.reset(300, seed=5)
    fast.reset(300, seed=5)
    generator = torch.Generator().manual_seed(0)
    returns = 0
    for _ in range(12):
        reference.churned[:] = False
        copy_state(reference, fast)
        slates = torch.rand(300, CATALOG.n_items, generator=generator).argsort(1)[:, :6]
        expected, got = reference.respond(slates), fast.respond(slates)
        assert torch.equal(got.returned, expected.returned)
        returns += int(expected.returned.sum())
        torch.testing.assert_close(got.return_gap, expected.return_gap, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast.satiation, reference.satiation, rtol=0, atol=1e-5)
    assert returns > 50, "the test must draw returns"


def test_the_mean_gap_and_the_gap_hold_float32_s_longest_gap_where_a_factor_is_zero():
    memory = torch.tensor([0.0, 0.5, 1.0])
    tiny = torch.full((3,), 1e-38)  # the activity: gap_days / (a (0.5 + M)) is inf
    length = torch.tensor([1, 2, 40])
    first = torch.ones(3, dtype=torch.bool)
    config = StatisticalUserConfig(gap_days=M, gap_first_session=-200.0)  # e^-200 is 0 in float32
    assert torch.equal(equations.mean_return_gap(memory, tiny, length, first, config), torch.zeros(3))
    config = StatisticalUserConfig(gap_days=M, gap_length_elasticity=300.0)  # 2^-300 is 0 too
    assert torch.equal(equations.mean_return_gap(memory, tiny, length, ~first, config),
                       torch.tensor([LONGEST_GAP, 0.0, 0.0]))
    # u = 1 (the first-session law's rescaled draw may be), or near 1 for the smallest shape
    u = torch.tensor([1.0, 0.999, 1e-6])
    inf = torch.full((3,), torch.inf)
    for shape in (1.0, 0.05, 2.5):
        gap = equations.return_gap(inf, u, StatisticalUserConfig(gap_shape=shape))
        assert not torch.isnan(gap).any() and gap[0] == 0 and gap[2] == LONGEST_GAP, shape
        if shape == 0.05:
            assert gap[1] == 0  # (-log 0.999)^20 is 0 in float32


def _mean_gap_unclamped(memory, activity, length, first_law, c):
    """equations.mean_return_gap as it was before the clamps (the bits to keep)."""
    mean = c.gap_days / (activity * (0.5 + memory))
    if c.gap_first_session != 0.0:
        mean = mean * torch.exp(c.gap_first_session * first_law.to(mean.dtype))
    if c.gap_length_elasticity == 0.0:
        return mean
    return mean * torch.pow(length.clamp_min(1).to(mean.dtype), -c.gap_length_elasticity)


def _gap_unclamped(mean_gap, u, c):
    k = c.gap_shape
    if k == 1.0:
        gap = -mean_gap * torch.log(u)
    else:
        gap = mean_gap * weibull_mean_factor(k) * torch.pow(-torch.log(u), 1.0 / k)
    return gap.clamp_(max=LONGEST_GAP)


@pytest.mark.parametrize("overrides", [
    {}, dict(gap_shape=0.05), dict(gap_shape=0.4, gap_days=5.0), dict(gap_shape=2.5),
    dict(gap_first_session=-3.0, gap_length_elasticity=0.7, gap_shape=0.7),
    dict(gap_first_session=4.0, gap_days=30.0), dict(gap_days=1e30, gap_first_session=-50.0, gap_shape=0.3),
])
def test_means_and_gaps_float32_holds_keep_their_bits(overrides):
    """The clamps change only what overflowed: every other mean and gap is the unclamped
    formula's to the bit."""
    config = StatisticalUserConfig(**overrides)
    generator = torch.Generator().manual_seed(3)
    n = 20000
    memory = torch.rand(n, generator=generator)
    activity = torch.exp(0.8 * torch.randn(n, generator=generator))
    length = torch.randint(1, 60, (n,), generator=generator)
    first = torch.rand(n, generator=generator) < 0.4
    u = torch.rand(n, generator=generator).clamp_(min=2.0**-25)
    want = _mean_gap_unclamped(memory, activity, length, first, config)
    have = equations.mean_return_gap(memory, activity, length, first, config)
    assert torch.isfinite(want).all() and torch.equal(have.view(torch.int32), want.view(torch.int32))
    gap_want, gap_have = _gap_unclamped(want, u, config), equations.return_gap(have, u, config)
    assert torch.equal(gap_have.view(torch.int32), gap_want.view(torch.int32))


# ------------------------------------------------------------------ population

def _population_message(field: str, value: str, bound: str, where: str) -> str:
    return (f"SyntheticPopulation.{field}={value}: must be {bound} (a larger magnitude overflows float32 {where})")


POPULARITY = "in the click utility, where the user's popularity bias weighs an item's popularity"
NOVELTY = "in the click utility, where the user's novelty seeking weighs an item's distance"


@pytest.mark.parametrize("field, value, message", [
    # an infinite bias times a popularity score of 0, or an infinite novelty propensity
    # times a distance of 1, is NaN in the utility
    ("popularity_bias_mean", 3e38, _population_message("popularity_bias_mean", "3e+38", "<= 1e+17", POPULARITY)),
    ("popularity_bias_mean", -2e17, _population_message("popularity_bias_mean", "-2e+17", ">= -1e+17", POPULARITY)),
    ("popularity_bias_spread", 3e38, _population_message("popularity_bias_spread", "3e+38", "<= 1e+17", POPULARITY)),
    ("novelty_spread", 3e38, _population_message("novelty_spread", "3e+38", "<= 1e+17", NOVELTY)),
    # the interest's norm overflowed: a zero interest at 1e20, NaN at 3e38
    ("interest_noise", 1e20, _population_message("interest_noise", "1e+20", "<= 1e+12",
                                                 "in the interest's normalisation, which squares it times a normal "
                                                 "draw")),
    # e^(30 z) is inf or 0 for a normal draw beyond ±2.96
    ("activity_spread", 30.0, _population_message("activity_spread", "30.0", "<= 16",
                                                  "in the activity, exp(activity_spread z) of a normal draw z")),
])
def test_population_traits_whose_equations_overflow_float32_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError) as error:
        SyntheticPopulation(**{field: value})
    assert str(error.value) == message


def test_a_population_s_own_range_and_float32_are_checked_first():
    with pytest.raises(ValueError, match=r"^SyntheticPopulation.activity_spread=-1.0: must be >= 0$"):
        SyntheticPopulation(activity_spread=-1.0)
    with pytest.raises(ValueError, match=r"novelty_spread=1e\+39: must be within ±3.4028235e\+38, the float32 range"):
        SyntheticPopulation(novelty_spread=1e39)


AT_THE_POPULATION_LIMITS = dict(popularity_bias_mean=1e17, popularity_bias_spread=1e17, novelty_spread=1e17,
                                interest_noise=1e12, activity_spread=16.0, patience_spread=3e38)


@pytest.mark.parametrize("kernel", KERNELS)
def test_users_of_a_population_at_its_limits_have_finite_traits_and_step_finite(kernel):
    population = SyntheticPopulation(**AT_THE_POPULATION_LIMITS)
    users = StatisticalUsers(CATALOG, StatisticalUserConfig(leave_base=2.0), population=population, kernel=kernel)
    users.reset(400, seed=3)
    state = users.state
    for name in ("patience", "novelty_seeking", "popularity_bias"):
        assert torch.isfinite(getattr(state, name)).all(), name
    assert bool(((state.activity > 0) & torch.isfinite(state.activity)).all())
    assert torch.allclose(state.interest.norm(dim=1), torch.ones(400), atol=1e-4)
    generator = torch.Generator().manual_seed(0)
    for t in range(15):
        response = users.respond(torch.rand(400, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        for name in ("watch_fraction", "satisfaction", "leave_hazard"):
            assert torch.isfinite(getattr(response, name)).all(), (t, name)
        assert not torch.isnan(response.return_gap).any(), t
        assert torch.allclose(users.state.interest.norm(dim=1), torch.ones(400), atol=1e-4), t
        gone = response.churned.nonzero().flatten()
        if len(gone):
            users.reset(400, seed=[1000 * (t + 1) + int(slot) for slot in gone], users=gone)


# ---------------------------------------------------------------- the rating

def test_no_nan_reaches_the_rating_s_integer_cast_when_a_watched_film_cannot_be_rated(monkeypatch):
    """rewatch=False makes a watched film's utility -inf; with rating_slope 0 its (discarded)
    rating level is 0 * -inf = NaN, which must not be what is cast to int8."""
    cast = torch.Tensor.to
    nan_casts = []

    def checked_to(tensor, *args, **kwargs):
        out = cast(tensor, *args, **kwargs)
        if tensor.is_floating_point() and not (out.is_floating_point() or out.dtype == torch.bool):
            nan_casts.append(int(torch.isnan(tensor).sum()))
        return out

    users = StatisticalUsers(CATALOG, StatisticalUserConfig(rewatch=False, rating_slope=0.0, leave_base=-2.0),
                             kernel="torch")
    users.reset(200, seed=7)
    generator = torch.Generator().manual_seed(0)
    monkeypatch.setattr(torch.Tensor, "to", checked_to)
    clicks = 0
    for _ in range(10):
        users.churned[:] = False  # a churned user's state is still valid: step it on
        response = users.respond(torch.rand(200, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        clicks += int(response.clicked.sum())
        assert bool(((response.rating[response.clicked] >= 1) & (response.rating[response.clicked] <= 5)).all())
        assert not response.rating[~response.clicked].any()
    monkeypatch.undo()
    assert clicks > 100 and nan_casts, "the test must click films and cast ratings"
    assert sum(nan_casts) == 0, f"{sum(nan_casts)} NaN cast to an integer"


@pytest.mark.parametrize("kernel", KERNELS)
def test_ratings_of_a_film_that_cannot_be_watched_again_are_those_of_its_clicks_alone(kernel):
    """No film clicked twice, and every rating kept is a clicked film's, 1 to 5; 0 elsewhere."""
    users = StatisticalUsers(CATALOG, StatisticalUserConfig(rewatch=False, rating_slope=0.0, leave_base=-2.0),
                             kernel=kernel)
    users.reset(200, seed=7)
    generator = torch.Generator().manual_seed(0)
    seen = torch.zeros(200, CATALOG.n_items, dtype=torch.bool)
    for _ in range(10):
        users.churned[:] = False
        slates = torch.rand(200, CATALOG.n_items, generator=generator).argsort(1)[:, :6]
        response = users.respond(slates)
        clicked_items = torch.zeros_like(seen).scatter_(1, slates, response.clicked)
        assert not (clicked_items & seen).any()
        seen |= clicked_items
        kept = response.rating[response.clicked]
        assert bool(((kept >= 1) & (kept <= 5)).all()) and not response.rating[~response.clicked].any()
