"""Configurations of the statistical users whose values float32 holds but whose equations
overflow it (``inf - inf`` in the click utility, ``inf / inf`` in the satiation build-up) are
refused by name; at the largest values accepted both kernels step with every output finite."""

import os
import shutil

import pytest
import torch

from recoworld import Catalog
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers

CATALOG = Catalog.synthetic(60, n_genres=5, seed=1)
KERNELS = ["torch", pytest.param("c", marks=pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                                                reason="no C compiler to build the fused kernel"))]
W = 1e17  # statistical_config.MAX_WEIGHT
UTILITY = "in the click utility, and in the rating that multiplies it by rating_slope"
RATING = "in the rating of a clicked item"
HAZARD = "in the leave hazard's logit"
RETURN = "in the return probability's logit"


def _message(field: str, value: str, bound: str, where: str) -> str:
    return (f"StatisticalUserConfig.{field}={value}: must be {bound} (a larger magnitude overflows float32 "
            f"{where})")


@pytest.mark.parametrize("field, value, message", [
    # the known defects: 3e38 x a genre's exposure is inf, and inf / (1 + inf) is NaN
    ("satiation_rate", 3e38, _message("satiation_rate", "3e+38", "<= 1e+17", "in the satiation build-up, where it "
                                                                             "multiplies a genre's exposure")),
    # two opposite utility terms near 1e38 (interest and quality) gave inf - inf
    ("interest_weight", 3e38, _message("interest_weight", "3e+38", "<= 1e+17", UTILITY)),
    ("interest_weight", -3e38, _message("interest_weight", "-3e+38", ">= -1e+17", UTILITY)),
    ("quality_weight", -2e17, _message("quality_weight", "-2e+17", ">= -1e+17", UTILITY)),
    ("click_threshold", 1.5e17, _message("click_threshold", "1.5e+17", "<= 1e+17", UTILITY)),
    ("satiation_weight", 1e30, _message("satiation_weight", "1e+30", "<= 1e+17", UTILITY)),
    ("repeat_penalty", 1e30, _message("repeat_penalty", "1e+30", "<= 1e+17", UTILITY)),
    ("theme_weight", -1e30, _message("theme_weight", "-1e+30", ">= -1e+17", UTILITY)),
    # its spread times a normal draw made the novelty propensity inf, then inf * 0 or inf - inf
    ("novelty_session_spread", 3e38, _message("novelty_session_spread", "3e+38", "<= 1e+17", UTILITY)),
    ("rating_center", -1e20, _message("rating_center", "-1e+20", ">= -1e+17", RATING)),
    ("rating_slope", 1e20, _message("rating_slope", "1e+20", "<= 1e+17", RATING)),
    ("rating_quality", 1e20, _message("rating_quality", "1e+20", "<= 1e+17", RATING)),
    ("rating_noise", 1e20, _message("rating_noise", "1e+20", "<= 1e+17", RATING)),
    ("leave_base", -1e20, _message("leave_base", "-1e+20", ">= -1e+17", HAZARD)),
    ("leave_mindset", 1e20, _message("leave_mindset", "1e+20", "<= 1e+17", HAZARD)),
    ("leave_boredom", 1e20, _message("leave_boredom", "1e+20", "<= 1e+17", HAZARD)),
    ("leave_length", 1e20, _message("leave_length", "1e+20", "<= 1e+17", HAZARD)),
    ("leave_patience", -1e20, _message("leave_patience", "-1e+20", ">= -1e+17", HAZARD)),
    ("leave_first_session", -1e20, _message("leave_first_session", "-1e+20", ">= -1e+17", HAZARD)),
    ("first_session_spread", 3e38, _message("first_session_spread", "3e+38", "<= 1e+17", HAZARD)),
    ("return_base", -1e20, _message("return_base", "-1e+20", ">= -1e+17", RETURN)),
    ("return_mindset", 1e20, _message("return_mindset", "1e+20", "<= 1e+17", RETURN)),
    ("return_first_session", -1e20, _message("return_first_session", "-1e+20", ">= -1e+17", RETURN)),
    # its normalisation squares the drifted interest: at 1e20 the norm is inf, the interest 0
    ("interest_drift", 1e20, _message("interest_drift", "1e+20", "<= 1e+12", "in the interest drift, whose "
                                                                           "normalisation squares it times the "
                                                                           "step's consumption")),
])
def test_values_whose_equations_overflow_float32_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError) as error:
        StatisticalUserConfig(**{field: value})
    assert str(error.value) == message


def test_the_float32_range_and_the_field_s_own_range_are_checked_first():
    """A value beyond float32, or outside the field's range, keeps the message that says so."""
    with pytest.raises(ValueError, match=r"=1e\+39: must be within ±3.4028235e\+38, the float32 range"):
        StatisticalUserConfig(satiation_rate=1e39)
    with pytest.raises(ValueError, match=r"^StatisticalUserConfig.satiation_rate=-5.0: must be >= 0$"):
        StatisticalUserConfig(satiation_rate=-5.0)


def _run(config: StatisticalUserConfig, kernel: str, n_users: int = 60, steps: int = 15) -> dict[str, int]:
    """Step ``n_users`` users ``steps`` times, restarting those who churn, checking every
    output; how many clicks, leaves and returns the run had."""
    users = StatisticalUsers(CATALOG, config, kernel=kernel)
    users.reset(n_users, seed=11)
    generator = torch.Generator().manual_seed(0)
    seen = dict(clicks=0, leaves=0, returns=0)
    for t in range(steps):
        response = users.respond(torch.rand(n_users, CATALOG.n_items, generator=generator).argsort(1)[:, :6])
        for name in ("watch_fraction", "satisfaction", "leave_hazard", "compliance"):
            assert torch.isfinite(getattr(response, name)).all(), (t, name)
        for name in ("satiation", "recent_satiation", "session_memory", "novelty_seeking"):
            assert torch.isfinite(getattr(users.state, name)).all(), (t, name)
        # the interest stays a unit vector (a norm that overflowed made it 0)
        assert torch.allclose(users.state.interest.norm(dim=1), torch.ones(n_users), atol=1e-4), t
        rating = response.rating[response.clicked]
        assert ((rating >= 1) & (rating <= 5)).all(), (t, rating)  # a NaN rating was cast to 0
        assert torch.equal(torch.isinf(response.return_gap), response.churned), t
        assert not torch.isnan(response.return_gap).any(), t
        seen["clicks"] += int(response.clicked.sum())
        seen["leaves"] += int(response.left_session.sum())
        seen["returns"] += int(response.returned.sum())
        gone = response.churned.nonzero().flatten()
        if len(gone):
            users.reset(n_users, seed=[100 * (t + 1) + int(slot) for slot in gone], users=gone)
    return seen


AT_THE_LIMITS = {
    # opposite utility terms at the limit, the rating's slope times that utility, the noise
    # against the center, and the largest satiation rate and interest drift
    "utility_and_rating": dict(interest_weight=W, quality_weight=W, click_threshold=-W, satiation_weight=-W,
                               repeat_penalty=-W, theme_weight=W, novelty_session_spread=W, rating_slope=W,
                               rating_quality=-W, rating_noise=W, rating_center=-W, satiation_rate=W,
                               interest_drift=1e12),
    "utility_and_rating_flipped": dict(interest_weight=-W, quality_weight=W, click_threshold=-W, satiation_weight=W,
                                       repeat_penalty=W, theme_weight=-W, novelty_session_spread=W, rating_slope=-W,
                                       rating_quality=W, rating_noise=W, rating_center=W, satiation_rate=W,
                                       interest_drift=1e12, rewatch=False),
    # opposite hazard terms: the length and the sign-up spread of a first session
    "hazard_and_return": dict(leave_base=-W, leave_mindset=W, leave_boredom=W, leave_length=W, leave_patience=-W,
                              leave_first_session=-W, first_session_spread=W, return_base=-W, return_mindset=W,
                              return_first_session=W),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("overrides", list(AT_THE_LIMITS.values()), ids=list(AT_THE_LIMITS))
def test_configs_at_the_limits_step_with_every_output_finite(kernel, overrides):
    seen = _run(StatisticalUserConfig(**overrides), kernel)
    # not a vacuous pass: the utility's users click, the hazard's leave and come back
    assert seen["clicks"] > 0 and seen["leaves"] > 0 and seen["returns"] > 0, seen
