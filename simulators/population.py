"""Populations: where the traits of each new simulated user come from.

A :class:`Population` turns the random keys of new users into their traits. The
statistical simulator asks it whenever a user slot is (re)started, so swapping the
population changes *who* the users are without touching *how* they respond: the
synthetic population draws traits from parametric distributions; a calibrated population
(see ``recoworld.simulators.calibrated``) draws real users fitted on logged data;
population specs filter either to a targeted segment.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recoworld.config_checks import (
    NON_NEGATIVE, OPEN_UNIT, POSITIVE, UNIT, Interval, OverflowLimit, check_fields, check_float32, check_number,
    check_overflow,
)
from recoworld.simulators.statistical_config import MAX_WEIGHT

# torch and the kernels load in the methods that draw users, not with the module:
# SyntheticPopulation is a field of recoworld run's config schema, which loads without torch.
if TYPE_CHECKING:
    import pandas as pd
    import torch

    from recoworld.catalog import Catalog
    from recoworld.kernels.users import SyntheticDraw

S_USER = 1


@dataclass
class UserTraits:
    """Traits of ``n`` new users (see ``StatisticalUsers`` for their role).

    Attributes:
        interest: ``[n, D]`` unit interest vectors in the catalog's feature space.
        patience: ``[n]`` in ``(0, 1)``, the probability of examining the next position.
        novelty_trait: ``[n]`` static novelty seeking (0 = indifferent).
        activity: ``[n]`` > 0, how often the user comes back (1 = average).
        popularity_bias: ``[n]`` weight of an item's popularity in its appeal.
        source_user: ``[n]`` int64 id of the real user a trait set was fitted on, -1 for
            synthetic users.
    """

    interest: torch.Tensor
    patience: torch.Tensor
    novelty_trait: torch.Tensor
    activity: torch.Tensor
    popularity_bias: torch.Tensor
    source_user: torch.Tensor


class Population(ABC):
    """Draws the traits of new users; the same key must always give the same user."""

    @abstractmethod
    def sample(self, keys: torch.Tensor, catalog: Catalog) -> UserTraits:
        """Traits for users with 64-bit random ``keys`` (int64 ``[n]``, see :mod:`recoworld.rng`)."""

    def kernel_draw(self, catalog: Catalog) -> SyntheticDraw | None:
        """Optional: this population's law, for the C kernel to draw new users itself in the
        pass that starts them (:class:`~recoworld.kernels.users.SyntheticDraw`), the same
        users as :meth:`sample` to rounding; ``None`` (the default): the kernel takes the
        traits of :meth:`sample`."""
        return None


@dataclass
class SyntheticPopulation(Population):
    """Parametric traits.

    Interest is the normalised sum of the features of two items drawn by popularity, plus
    Gaussian noise of scale ``interest_noise``: users gather around what the catalog
    offers, popular regions more densely. Patience is logit-normal around
    ``patience_mean``; novelty seeking and popularity bias are normal; activity is
    log-normal with median 1.

    The C kernel of the statistical users draws these users itself as it starts them
    (:meth:`kernel_draw`): the same random numbers and anchor items, the traits equal to
    rounding.

    Every field is checked when the population is built (:mod:`recoworld.config_checks`):
    finite, in its range and in float32, and within what the equations that draw and use the
    traits hold in float32 (beyond, a trait is infinite or 0 there, and the users' equations
    break: NaN in the click utility, an interest of 0, an activity of 0):
    ``popularity_bias_mean``, ``popularity_bias_spread`` and ``novelty_spread`` within
    ±:data:`~recoworld.simulators.statistical_config.MAX_WEIGHT` (1e17), as the weights of
    the click utility are, ``interest_noise`` at most :data:`MAX_INTEREST_NOISE` (1e12) and
    ``activity_spread`` at most :data:`MAX_ACTIVITY_SPREAD` (16). ``patience_mean`` and
    ``patience_spread`` need no more than their ranges: the patience is a sigmoid, which
    float32 holds at exactly 0 or 1 for a logit far from 0 (at any spread beyond a few units
    for some users, and for every user at a huge one), and every equation takes a patience
    of 0 (the user examines the first position only) or 1 (the user stops at a click only).
    """

    interest_noise: float = 0.5
    patience_mean: float = 0.8
    patience_spread: float = 0.6
    novelty_spread: float = 0.5
    activity_spread: float = 0.5
    popularity_bias_mean: float = 0.3
    popularity_bias_spread: float = 0.3

    # patience_mean's logit is taken; the others are scales
    RANGES = {"patience_mean": OPEN_UNIT, **dict.fromkeys(
        ("interest_noise", "patience_spread", "novelty_spread", "activity_spread", "popularity_bias_spread"),
        NON_NEGATIVE)}

    def __post_init__(self):
        # its fields become C floats and float32 tensors
        check_fields(self, float32=True, limits=_OVERFLOW_LIMITS)

    def sample(self, keys: torch.Tensor, catalog: Catalog) -> UserTraits:
        import torch

        from recoworld import rng
        from recoworld.catalog import lookup

        n, D = len(keys), catalog.feature_dim
        # One hash pass for all of a new user's draws: 2 anchor items, D interest noises, 4 traits.
        u = rng.uniform(keys, torch.zeros_like(keys), S_USER, 2 + D + 4)
        z = rng.to_normal(u[:, 2:])
        anchors = torch.searchsorted(_cumulative(catalog), u[:, :2].double()).clamp_max(catalog.n_items - 1)
        interest = lookup(catalog.features, anchors).sum(1) + self.interest_noise * z[:, :D]
        z = z[:, D:]
        return UserTraits(
            interest=torch.nn.functional.normalize(interest, dim=1),
            patience=torch.sigmoid(self._logit_patience() + self.patience_spread * z[:, 0]),
            novelty_trait=self.novelty_spread * z[:, 1],
            activity=torch.exp(self.activity_spread * z[:, 2]),
            popularity_bias=self.popularity_bias_mean + self.popularity_bias_spread * z[:, 3],
            source_user=torch.full((n,), -1, dtype=torch.int64, device=keys.device),
        )

    def kernel_draw(self, catalog: Catalog) -> SyntheticDraw | None:
        """The law of :meth:`sample` for the C kernel (see :meth:`Population.kernel_draw`);
        ``None`` for a subclass that changes :meth:`sample`, whose own draw then stands."""
        import torch

        from recoworld.kernels.users import SYNTHETIC_PARAMETERS, SyntheticDraw

        if type(self).sample is not SyntheticPopulation.sample:
            return None
        # The law's parameters are this population's fields of the same names, patience by its logit.
        parameters = {name: self._logit_patience() if name == "logit_patience" else getattr(self, name)
                      for name in SYNTHETIC_PARAMETERS}
        # Kept for the next restart while the catalog's tables and the parameters stay.
        popularity, features, draw = getattr(self, "_kernel_draw", (None, None, None))
        if popularity is not catalog.popularity or features is not catalog.features or draw.parameters != parameters:
            draw = SyntheticDraw(_cumulative(catalog), catalog.features.to(torch.float32).contiguous(), S_USER,
                                 parameters)
            self._kernel_draw = (catalog.popularity, catalog.features, draw)
        return draw

    def _logit_patience(self) -> float:
        return math.log(self.patience_mean / (1 - self.patience_mean))


# The traits are a field times a standard normal draw z, within ±5.42 for rng's uniforms
# (rng.to_normal of 2**-25 and of 1 - 2**-24), or e^(that) for the activity; the utility and
# the return equations then weigh them (statistical_config's _OVERFLOW_LIMITS). Beyond the
# limits below a trait is infinite or 0 in float32, and inf * 0 or inf - inf is NaN.
#: The largest ``interest_noise``: the interest is normalised from the anchors' features
#: plus it times D normal draws, a norm whose squares stay within (5.42e12)^2 D < 3.4e38 for
#: up to 1e13 feature dimensions (beyond, the norm is inf and the interest 0 or NaN).
MAX_INTEREST_NOISE = 1e12
#: The largest ``activity_spread``: the activity e^(s z) stays a positive finite float32
#: (a normal one, from 1.2e-38 to 3.4e38) while |s z| <= 87, for s up to 16; beyond, it is
#: 0 (the log in the return probability -inf) or infinite (a mean gap of 0).
MAX_ACTIVITY_SPREAD = 16.0

_UTILITY_WEIGHT = "in the click utility, where the user's {} weighs an item's {}"
_OVERFLOW_LIMITS = {
    # popularity_bias_mean + popularity_bias_spread z weighs the standardised log-popularity
    # (within ±sqrt(n_items)); novelty_spread z, plus the session's spread, weighs the
    # distance - 1 (within ±1): statistical.StatisticalUsers.utility
    **dict.fromkeys(("popularity_bias_mean", "popularity_bias_spread"),
                    OverflowLimit(MAX_WEIGHT, _UTILITY_WEIGHT.format("popularity bias", "popularity"))),
    "novelty_spread": OverflowLimit(MAX_WEIGHT, _UTILITY_WEIGHT.format("novelty seeking", "distance")),
    "interest_noise": OverflowLimit(MAX_INTEREST_NOISE, "in the interest's normalisation, which squares it times a "
                                                        "normal draw"),
    "activity_spread": OverflowLimit(MAX_ACTIVITY_SPREAD, "in the activity, exp(activity_spread z) of a normal "
                                                          "draw z"),
}


#: The columns of a fitted users' table (a calibrated world's users, or any DataFrame of the
#: same columns) that the users' equations read, each as a float32, as the synthetic
#: population's draws are: its range (or ``None``), the largest magnitude its equation holds
#: in float32 (or ``None``) and what it is.
FITTED_TRAITS: dict[str, tuple[Interval | None, OverflowLimit | None, str]] = {
    "patience": (UNIT, None, "the probability of examining the next position"),
    # social.SocialStatisticalUsers: the weight of the items' buzz in the user's utility
    "conformity": (UNIT, None, "how closely the user follows the crowd, a share"),
    "activity": (POSITIVE, None, "how often the user comes back (the return probability takes its log, the mean "
                                 "return gap divides by it)"),
    "novelty": (None, _OVERFLOW_LIMITS["novelty_spread"], "the user's novelty seeking"),
    "popularity_bias": (None, _OVERFLOW_LIMITS["popularity_bias_mean"], "the user's popularity bias"),
    "rating_bias": (None, OverflowLimit(MAX_WEIGHT, "in the rating of a clicked item, which it shifts"),
                    "the stars added to the user's rating level"),
}


class FittedUsersError(ValueError):
    """A fitted users' table, or their interest vectors, holds a value the users' equations
    cannot take. The message ends with the fix for a table given in Python; ``problem`` is
    the message without it (the row, user, column and value), for a caller whose fix is
    another, such as a saved world, which is fitted again."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def check_fitted_traits(users: pd.DataFrame) -> None:
    """:class:`FittedUsersError` (a ``ValueError``) naming the first row of a fitted users'
    table (a calibrated world's :attr:`~recoworld.simulators.calibrated.CalibratedWorld.users`,
    or a DataFrame of the same columns) that holds a trait the users' equations cannot take:
    its position in the table, its ``user_id``, the column and the value. Each of
    :data:`FITTED_TRAITS` that the table has must be a finite number, also in float32, in its
    range (``patience`` and ``conformity`` in [0, 1], ``activity`` > 0) and within the
    magnitude its equation holds (``novelty``, ``popularity_bias`` and ``rating_bias`` within
    ±1e17, as :class:`SyntheticPopulation`'s draws are): a NaN, an infinite or a huge trait
    makes the click utility, the rating or the return NaN."""
    # Found for all rows at once; the rows refused, if any, are then named one by one.
    refused = [(name, ~_taken(users[name], within, limit)) for name, (within, limit, _) in FITTED_TRAITS.items()
               if name in users.columns]
    if not refused:
        return
    for row in np.flatnonzero(np.logical_or.reduce([bad for _, bad in refused])):
        for name, bad in refused:
            if bad[row]:
                _check_trait(users, name, int(row))


def _taken(column: pd.Series, within: Interval | None, limit: OverflowLimit | None) -> np.ndarray:
    """Which cells of a trait's ``column`` :func:`_check_trait` takes, for all rows at once:
    the same rules, as check_number, check_overflow and check_float32 apply them."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        x = column.to_numpy(dtype=np.float64, na_value=np.nan)  # a missing value (pd.NA) is a NaN
    else:  # a column of objects: its numbers are read as such, any other cell is refused
        cells = column.to_numpy(dtype=object)
        number = np.fromiter((isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in cells),
                             dtype=bool, count=len(cells))
        x = np.full(len(cells), np.nan)
        x[number] = cells[number].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        held = x.astype(np.float32)
    taken = np.isfinite(x) & np.isfinite(held)
    if limit is not None:
        taken &= np.abs(x) <= limit.limit
    if within is not None:
        # In the range as given, and as a float32 within the ends rounded to float32 (check_float32).
        ends = Interval(float(np.float32(within.low)), float(np.float32(within.high)), within.closed_low,
                        within.closed_high)
        taken &= within.contains(x) & ends.contains(held)
    return taken


def _check_trait(users: pd.DataFrame, name: str, row: int) -> None:
    """:class:`FittedUsersError` for :func:`check_fitted_traits` if the trait ``name`` of
    ``users`` at ``row`` is not one the users' equations take."""
    within, limit, role = FITTED_TRAITS[name]
    cell = users[name].iloc[row]
    value = float(cell) if isinstance(cell, (int, float, np.integer, np.floating)) \
        and not isinstance(cell, (bool, np.bool_)) else cell
    try:
        number = check_number(None, name, value, within)
        if limit is not None:  # before float32's range, so that a message names the bound that holds
            check_overflow(None, name, number, limit)
        check_float32(None, name, number, within)
    except ValueError as error:
        who = f"row {row}" + (f" (user_id {users['user_id'].iloc[row]})" if "user_id" in users.columns else "")
        problem = f"the fitted users' table, {who}: {error}; {name} is {role}"
        raise FittedUsersError(f"{problem}. Correct the row, or drop it, before building a population from the "
                               "table", problem) from None


def _cumulative(catalog: Catalog) -> torch.Tensor:
    """The catalog's cumulative popularity in float64, where the anchors are searched."""
    import torch

    return torch.cumsum(catalog.popularity.double(), 0)
