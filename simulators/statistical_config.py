"""The parameters of statistical users (:class:`StatisticalUserConfig`), apart from their
simulator so that configs — ``recoworld run``'s schema among them — are checked without
importing torch. The equations they enter are in :mod:`recoworld.simulators.statistical`'s
docstring."""

from __future__ import annotations

from dataclasses import dataclass

from recoworld.config_checks import NON_NEGATIVE, POSITIVE, UNIT, Interval, OverflowLimit, check_fields

__all__ = ["MAX_GAP_FIRST_SESSION", "MAX_INTEREST_DRIFT", "MAX_WEIGHT", "MIN_GAP_SHAPE", "StatisticalUserConfig"]


@dataclass
class StatisticalUserConfig:
    """Response and dynamics parameters of statistical users (equations in
    :mod:`recoworld.simulators.statistical`'s docstring). Who the users are — their traits — comes from a
    :class:`~recoworld.simulators.population.Population`.

    Every field is checked when the config is built (:mod:`recoworld.config_checks`): finite,
    in its range, and within what float32 holds, as the users compute in float32. The weights,
    shifts and spreads of the click utility, the rating, the leave hazard and the return
    probability, and ``satiation_rate``, must stay within ±:data:`MAX_WEIGHT` (1e17), and
    ``interest_drift`` at most :data:`MAX_INTEREST_DRIFT` (1e12): beyond, their equations
    overflow float32 into NaN (``inf - inf``) though each value is finite there."""

    # per-session novelty propensity around the user's static trait
    novelty_session_spread: float = 0.3
    # utility
    interest_weight: float = 4.0
    quality_weight: float = 0.5
    satiation_weight: float = 2.5
    repeat_penalty: float = 3.0
    theme_weight: float = 0.0
    rewatch: bool = True
    click_threshold: float = 2.5
    continue_after_click: float = 0.7
    # ratings of clicked items (equation in the module docstring)
    rating_center: float = 4.3
    rating_slope: float = 0.9
    rating_quality: float = 0.0
    rating_noise: float = 0.33
    # dynamics
    satiation_rate: float = 0.5
    satiation_decay: float = 0.05
    satiation_recovery_days: float = 3.0
    item_satiation_decay: float = 0.02
    item_recovery_days: float = 30.0
    quality_scale: float = 1.0
    peak_end_weight: float = 0.5
    interest_drift: float = 0.05
    familiarity_rate: float = 0.3
    mindset_rate: float = 0.35
    initial_mindset: float = 0.6
    compliance_weight: float = 0.6
    # leaving
    leave_base: float = -3.0
    leave_mindset: float = 4.0
    leave_boredom: float = 2.0
    leave_length: float = 0.15
    leave_patience: float = 2.0
    leave_first_session: float = 0.0
    first_session_spread: float = 0.0
    quick_visit_share: float = 0.0
    first_session_patience: float = 1.0
    # returning
    return_base: float = 2.0
    return_mindset: float = 6.0
    gap_days: float = 2.0
    gap_shape: float = 1.0
    gap_length_elasticity: float = 0.0
    return_first_session: float = 0.0
    gap_first_session: float = 0.0
    gap_first_share: float = 1.0
    # instructions
    instruction_threshold: float = 0.3
    voice_probability: float = 0.7
    instruction_steps: int = 5
    instruction_satiation: float = 0.25
    more_share: float = 0.3

    def __post_init__(self):
        check_fields(self, _CONFIG_RANGES, float32=True, limits=_OVERFLOW_LIMITS)


# The ranges the equations need (probabilities, rates and shares in [0, 1], time scales
# > 0); every other field must be a finite number, and each must stay finite and in its
# range in float32, in which both kernels compute (recoworld.config_checks); those of
# _OVERFLOW_LIMITS, further below, within the magnitude their equations hold in float32.
#: The smallest Weibull shape of the return gap the users can draw (``gap_shape``).
MIN_GAP_SHAPE = 0.05
#: The largest ``gap_first_session``: its exponential scales the gap's mean, and above
#: log(3.4028235e38) = 88.7228 it is infinite in float32, every such gap with it.
MAX_GAP_FIRST_SESSION = 88.72

_CONFIG_RANGES = {
    **dict.fromkeys(("continue_after_click", "satiation_decay", "item_satiation_decay", "familiarity_rate",
                     "mindset_rate", "initial_mindset", "instruction_threshold", "voice_probability",
                     "instruction_satiation", "peak_end_weight", "first_session_patience", "gap_first_share"), UNIT),
    **dict.fromkeys(("novelty_session_spread", "rating_noise", "interest_drift", "satiation_rate",
                     "gap_length_elasticity", "first_session_spread"), NON_NEGATIVE),
    **dict.fromkeys(("satiation_recovery_days", "item_recovery_days", "gap_days", "quality_scale"), POSITIVE),
    # Below it a gap leaves float32: 1/Gamma(1 + 1/k) underflows and (-log u)^(1/k) overflows
    # (NaN or infinite gaps from about 0.03, math.gamma's OverflowError below about 0.006),
    # while at 0.05 the draw's factor stays under 1e7 (equations.return_gap).
    "gap_shape": Interval(MIN_GAP_SHAPE),
    "gap_first_session": Interval(high=MAX_GAP_FIRST_SESSION),
    # The C kernel holds it as a float32 parameter, exact up to 2**24 (users_step.c's voice).
    "instruction_steps": Interval(1, 2**24),
    # compliance divides the share of asked-for items by it
    "more_share": Interval(0.0, 1.0, closed_low=False),
    # the other visits' leave draw is divided by 1 - it (equations.quick_visit)
    "quick_visit_share": Interval(0.0, 1.0, closed_high=False),
}

# Finite in float32 is not enough where an equation multiplies a field, or sums it with
# others: a term or a partial sum past 3.4e38 is inf, and then inf - inf (two terms of
# opposite signs) or inf * 0 is NaN, which every later step carries. So the fields below
# are held to the magnitude at which their equations stay finite, far beyond any
# meaningful value: a logit's sigmoid is already 0 or 1 in float32 a few hundred from 0.
#: The largest magnitude of a weight, shift or spread of a logit (the click utility, the
#: rating, the leave hazard, the return probability) and of ``satiation_rate``. Their terms
#: are a field times a number of order one — a unit feature's dot product, a satiation, a
#: share, the mindset, the patience — or at most some thousands: a standard normal draw
#: (a few units), a standard logistic draw (within ±17.4 for rng's uniforms), an item's
#: standardised quality and log-popularity (within ±sqrt(n_items)), a genre's exposure in a
#: step (at most the slate's size). The rating multiplies the whole utility by
#: ``rating_slope``, a product of two bounded fields: at 1e17 each, the utility's weighted
#: terms stay within 1e17 (11 + sqrt(n_items)) and the rating within 1e34 times that,
#: finite for every catalog up to some 1e9 items, and up to some 3e7 with the population's
#: popularity-bias trait at its own bound (past that, a single infinite term holds the
#: rating at 1 or 5, never NaN); a leave hazard's length term overflows only after 1e21
#: steps of one session. (The population's traits, which weigh popularity and shift the
#: rating, are its own to bound: :class:`~recoworld.simulators.population.SyntheticPopulation`.)
MAX_WEIGHT = 1e17
#: The largest ``interest_drift``: the drift adds it times the step's consumption (a
#: vector of length up to the slate's size K) to the unit interest, whose normalisation
#: squares the sum: (1 + 1e12 K)^2 stays below 3.4e38 for slates up to 1.8e7 items.
MAX_INTEREST_DRIFT = 1e12

_UTILITY = OverflowLimit(MAX_WEIGHT, "in the click utility, and in the rating that multiplies it by rating_slope")
_OVERFLOW_LIMITS = {
    # statistical.StatisticalUsers.utility (novelty_session_spread: the spread of the
    # session's novelty propensity, which weighs the item's distance)
    **dict.fromkeys(("interest_weight", "quality_weight", "click_threshold", "satiation_weight", "repeat_penalty",
                     "theme_weight", "novelty_session_spread"), _UTILITY),
    # the rating of a clicked item (statistical's docstring; backends.TorchUsers._react)
    **dict.fromkeys(("rating_center", "rating_slope", "rating_quality", "rating_noise"),
                    OverflowLimit(MAX_WEIGHT, "in the rating of a clicked item")),
    **dict.fromkeys(("leave_base", "leave_mindset", "leave_boredom", "leave_length", "leave_patience",
                     "leave_first_session", "first_session_spread"),
                    OverflowLimit(MAX_WEIGHT, "in the leave hazard's logit")),  # equations.leave_hazard
    **dict.fromkeys(("return_base", "return_mindset", "return_first_session"),
                    OverflowLimit(MAX_WEIGHT, "in the return probability's logit")),  # equations.return_probability
    "satiation_rate": OverflowLimit(MAX_WEIGHT, "in the satiation build-up, where it multiplies a genre's "
                                                "exposure"),  # equations.satiation_build_up
    "interest_drift": OverflowLimit(MAX_INTEREST_DRIFT, "in the interest drift, whose normalisation squares it "
                                                        "times the step's consumption"),  # equations.interest_drift
}
