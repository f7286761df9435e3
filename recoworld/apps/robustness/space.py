r"""The plausible ranges of the parameters no data identifies, and the worlds drawn from them.

A :class:`ParameterRange` is an interval of one parameter on a linear or a log scale; a
:class:`ParameterSpace` is a set of them, checked against the fields of
:class:`~recoworld.simulators.statistical.StatisticalUserConfig`. :meth:`ParameterSpace.sample`
draws ``K`` worlds by Latin hypercube sampling (McKay, Beckman & Conover, "A comparison of
three methods for selecting values of input variables in the analysis of output from a
computer code", Technometrics 1979) or a scrambled Sobol sequence (Sobol', 1967; Owen's
scrambling, 1998), both from :mod:`scipy.stats.qmc`: each parameter's range is cut into
``K`` strata of equal probability and every stratum gets one world, so even a dozen worlds
cover every range end to end.

One parameter is not a field but a shift of two: ``exposure_odds`` :math:`o`, the
assumed ratio of unwanted to wanted items among those a user examines (see
:mod:`recoworld.apps.calibrate`), moves the world's click threshold to
:math:`c + \log o` and its rating center to :math:`r_0 + r_v \log o`, so that the click
level falls while the rating of a clicked item stays as fitted — the shift that
``recoworld calibrate`` applies for ``CalibrationConfig.exposure_odds``
(:func:`recoworld.apps.calibrate.fit.user_config`). It is relative to the world it shifts:
:math:`o = 1` is the world as configured.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.stats import qmc

from recoworld.config_checks import did_you_mean
from recoworld.simulators.statistical import StatisticalUserConfig

#: The derived parameter that shifts the click threshold (module docstring).
EXPOSURE_ODDS = "exposure_odds"
SCALES = ("linear", "log")
SAMPLERS = ("lhs", "sobol")


@dataclass(frozen=True)
class ParameterRange:
    """The plausible values of one parameter: ``[low, high]`` on a ``linear`` or ``log``
    scale (a log scale draws uniformly in :math:`\\log x`, for ratios and time scales);
    ``why`` says where the range comes from."""

    low: float
    high: float
    scale: str = "linear"
    why: str = ""

    def check(self, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if the range is empty, not a range, or reaches
        values the parameter cannot take (a probability above 1, a negative rate)."""
        for end in ("low", "high"):
            value = getattr(self, end)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"range of {name} has {end}={value!r}; give a number")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"range of {name} is [{self.low}, {self.high}]; both ends must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"range of {name} is empty (low={self.low}, high={self.high}); give low < high")
        if self.scale not in SCALES:
            raise ValueError(f"range of {name} has scale={self.scale!r}; choose one of {', '.join(SCALES)}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"range of {name} is on a log scale but low={self.low}; a log scale needs low > 0")
        for end in (self.low, self.high):  # the parameter's own domain is an interval: its ends suffice
            try:
                world_config(StatisticalUserConfig(), {name: end})
            except ValueError as error:
                raise ValueError(f"range of {name} reaches {end:g}, which no world can take ({error}); give a range "
                                 "inside it") from None
        if name in integer_parameters() and round(self.low) == round(self.high):
            raise ValueError(f"range of {name} is [{self.low:g}, {self.high:g}], but {name} is an integer and every "
                             f"value in it rounds to {round(self.low)}: no world would differ; give a range that "
                             "spans two integers or more")

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map ``u`` in ``[0, 1)`` onto the range, on its scale."""
        if self.scale == "log":
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


#: The unidentified parameters of the statistical users and their plausible ranges. Why each
#: is unidentified: the package docstring of :mod:`recoworld.apps.calibrate`.
DEFAULT_RANGES: dict[str, ParameterRange] = {
    EXPOSURE_ODDS: ParameterRange(1.0, 15.0, "log", "1: the 1:1 mix of the calibration; about 15: MovieLens's "
                                                   "catalog-wide rate (a user rates some 6% of the movies)"),
    "leave_mindset": ParameterRange(1.0, 8.0, "linear", "default 4; from a mood that barely matters to one that "
                                                        "doubles the default's pull"),
    "leave_boredom": ParameterRange(0.5, 4.0, "linear", "default 2; boredom from a weak to a strong reason to leave"),
    "leave_patience": ParameterRange(2.0, 34.0, "linear", "fitted on the later sessions' 95th percentile, weakly: "
                                                          "a larger weight with a higher leave level gives much the "
                                                          "same sessions; the grid fit's range"),
    "satiation_rate": ParameterRange(0.2, 0.8, "linear", "default 0.5; one step of a genre's full exposure "
                                                         "wears it by 17% to 44% of what is left"),
    "item_recovery_days": ParameterRange(7.0, 120.0, "log", "default 30; a film watched is wanted again after "
                                                            "about a week to a season"),
    "quality_scale": ParameterRange(0.5, 2.0, "log", "default 1; a step's quality saturates after one enjoyed "
                                                     "film to after about four"),
    "peak_end_weight": ParameterRange(0.0, 1.0, "linear", "default 0.5; a session remembered by its mean to "
                                                          "by its peak and its end alone"),
    "satiation_decay": ParameterRange(0.01, 0.2, "log", "default 0.05; within-session recovery from barely any "
                                                        "to a fifth per step"),
    "satiation_recovery_days": ParameterRange(1.0, 10.0, "log", "default 3; genres recover between sessions "
                                                                "within a day to within ten"),
    "interest_drift": ParameterRange(0.0, 0.1, "linear", "calibrated 0, synthetic 0.05; from none to twice the "
                                                         "synthetic default"),
    "return_mindset": ParameterRange(2.0, 10.0, "linear", "default 6; how strongly the remembered session "
                                                          "quality moves the return, a third to 5/3 of the default"),
}


def known_parameters() -> tuple[str, ...]:
    """The names a range may take: the numeric fields of ``StatisticalUserConfig`` and
    ``exposure_odds``."""
    numeric = [f.name for f in fields(StatisticalUserConfig) if f.type in ("float", "int", float, int)]
    return (EXPOSURE_ODDS, *numeric)


class ParameterSpace:
    """The ranges of the parameters a robustness study varies, in a fixed order.

    Args:
        ranges: ``{name: ParameterRange}`` (or ``{name: {"low", "high", "scale"}}``);
            each name a numeric field of ``StatisticalUserConfig`` or ``exposure_odds``.

    Raises ``ValueError`` naming the parameter for an unknown name, an empty range, a log
    range that reaches zero, or a range that reaches values the parameter cannot take.
    """

    def __init__(self, ranges: Mapping[str, ParameterRange | Mapping]):
        if not ranges:
            raise ValueError("no parameter ranges given; a robustness study varies at least one parameter")
        known = known_parameters()
        self.ranges: dict[str, ParameterRange] = {}
        for name, spec in ranges.items():
            if name not in known:
                raise ValueError(f"unknown parameter {name!r}{did_you_mean(name, known)}; a range names a numeric field of "
                                 f"StatisticalUserConfig or {EXPOSURE_ODDS}: {', '.join(known)}")
            if not isinstance(spec, ParameterRange):
                try:
                    spec = ParameterRange(**dict(spec))
                except (TypeError, ValueError):
                    raise ValueError(f"range of {name} is {spec!r}; give low, high and optionally scale "
                                     "(linear or log) and why") from None
            spec.check(name)
            self.ranges[name] = spec

    @property
    def names(self) -> list[str]:
        return list(self.ranges)

    def sample(self, k: int, seed: int, method: str = "lhs") -> np.ndarray:
        """``[k, P]`` parameter values of ``k`` worlds, one row a world, columns in :attr:`names`.

        The same ``seed`` gives the same worlds. ``method`` is ``"lhs"`` (Latin hypercube, any
        ``k``) or ``"sobol"`` (scrambled Sobol points; ``k`` a power of 2, which keeps the
        sequence balanced).
        """
        check_worlds(k, method)
        rng = np.random.default_rng(seed)
        if method == "lhs":
            unit = qmc.LatinHypercube(d=len(self.ranges), seed=rng).random(k)
        else:
            unit = qmc.Sobol(d=len(self.ranges), scramble=True, seed=rng).random_base2(int(math.log2(k)))
        return np.column_stack([r.from_unit(unit[:, j]) for j, r in enumerate(self.ranges.values())])

    def ends(self, name: str) -> tuple[float, float]:
        """The two ends of ``name``'s range (the one-at-a-time sweep)."""
        r = self.ranges[name]
        return r.low, r.high

    def to_dict(self) -> dict[str, dict]:
        return {n: {"low": r.low, "high": r.high, "scale": r.scale, "why": r.why} for n, r in self.ranges.items()}


def check_worlds(k: int, method: str) -> None:
    """Raise ``ValueError`` unless ``k`` worlds can be drawn by ``method`` (:data:`SAMPLERS`)."""
    if k < 2:
        raise ValueError(f"worlds={k}; the stability of a ranking needs at least 2 sampled worlds")
    if method not in SAMPLERS:
        raise ValueError(f"sampler={method!r}; choose one of {', '.join(SAMPLERS)}")
    if method == "sobol" and k & (k - 1):
        raise ValueError(f"worlds={k} with sampler='sobol'; Sobol points are balanced only in powers of 2: "
                         f"use {1 << (k.bit_length() - 1)} or {1 << k.bit_length()}, or sampler='lhs'")


def world_config(base: StatisticalUserConfig, values: Mapping[str, float]) -> StatisticalUserConfig:
    """``base`` with ``values`` set; ``exposure_odds`` shifts the click threshold and the
    rating center (module docstring) instead of being set."""
    values = dict(values)
    odds = values.pop(EXPOSURE_ODDS, 1.0)
    if odds <= 0:
        raise ValueError(f"{EXPOSURE_ODDS}={odds}; it is a ratio of item counts and must be > 0")
    shift = math.log(odds)
    values.setdefault("click_threshold", base.click_threshold)
    values.setdefault("rating_center", base.rating_center)
    values["click_threshold"] += shift
    values["rating_center"] += values.get("rating_slope", base.rating_slope) * shift
    integral = integer_parameters()
    return replace(base, **{n: int(round(v)) if n in integral else float(v) for n, v in values.items()})


def integer_parameters() -> set[str]:
    """The integer fields of ``StatisticalUserConfig``: a world rounds a drawn value to the nearest."""
    return {f.name for f in fields(StatisticalUserConfig) if f.type in ("int", int)}


def base_values(base: StatisticalUserConfig, names: list[str]) -> dict[str, float]:
    """The configured world's value of each parameter (``exposure_odds``: 1)."""
    return {n: 1.0 if n == EXPOSURE_ODDS else float(getattr(base, n)) for n in names}
