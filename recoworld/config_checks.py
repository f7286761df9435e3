"""Checks of configuration values at the boundary: type, finiteness, range.

Every configuration of RecoWorld (the statistical users' :class:`StatisticalUserConfig`,
the synthetic population, the env's arguments, the reward weights, the agents' dataclasses)
checks its values once, when it is built, through this module, so that a bad value fails
before anything runs, and the error reads the same everywhere: the key, the value as given
and what it must be::

    StatisticalUserConfig.continue_after_click=5.0: must be in [0, 1]
    StatisticalUserConfig.leave_base=nan: must be a finite number
    slate_size='5': must be an integer >= 1

Hydra builds these dataclasses from the YAML configs, so an override such as
``simulator.config.leave_base=nan`` fails when the config is instantiated.

A dataclass declares its ranges in a mapping (the class attribute ``RANGES`` or an
argument of :func:`check_fields`); every ``float`` field must be a finite number (an
``int`` is accepted), every ``int`` field an integer (not a float,
nor a bool) and every ``bool`` field True or False, whether or not it has a range. NumPy
scalars are stored as the Python numbers they equal. A configuration computed in float32
(``float32=True``: the statistical users' tensors and their C kernels' parameters) also
refuses a number that float32 turns into infinity or rounds out of its range::

    StatisticalUserConfig.leave_boredom=1e+39: must be within ±3.4028235e+38, the float32 range (it is computed in float32, where it is inf)
    StatisticalUserConfig.gap_days=1e-300: must be > 0 as a float32 too (it is computed in float32, where it is 0)

A field that an equation multiplies or sums with others may hold in float32 and still
overflow there, into ``inf - inf`` or ``inf * 0``, which is NaN. Such a field declares an
:class:`OverflowLimit`, the largest magnitude the equation holds, checked last::

    StatisticalUserConfig.satiation_rate=3e+38: must be <= 1e+17 (a larger magnitude overflows float32 in the satiation build-up, where it multiplies a genre's exposure)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
import difflib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AT_LEAST_ONE", "FLOAT32_MAX", "NON_NEGATIVE", "OPEN_UNIT", "POSITIVE", "UNIT", "Interval", "OverflowLimit",
    "check_fields", "check_flag", "check_float32", "check_number", "check_overflow", "check_seed", "declared_ranges",
    "did_you_mean", "from_mapping",
]


@dataclass(frozen=True)
class Interval:
    """The valid range of a number, each end closed (``[``) or open (``(``)."""

    low: float = -math.inf
    high: float = math.inf
    closed_low: bool = True
    closed_high: bool = True

    def __contains__(self, value: float) -> bool:
        return bool(self.contains(value))

    def contains(self, values):
        """Whether each of ``values`` (a number, or a NumPy array of them) lies in the
        interval: a bool, or a boolean array of the array's shape. NaN lies in none."""
        above = values >= self.low if self.closed_low else values > self.low
        below = values <= self.high if self.closed_high else values < self.high
        return above & below

    def __str__(self) -> str:
        if math.isinf(self.low) and math.isinf(self.high):
            return ""
        if math.isinf(self.high):
            return f"{'>=' if self.closed_low else '>'} {_number(self.low)}"
        if math.isinf(self.low):
            return f"{'<=' if self.closed_high else '<'} {_number(self.high)}"
        return (f"in {'[' if self.closed_low else '('}{_number(self.low)}, "
                f"{_number(self.high)}{']' if self.closed_high else ')'}")


@dataclass(frozen=True)
class OverflowLimit:
    """The largest magnitude ``limit`` of a number that the float32 equation it enters holds,
    and ``where`` it would overflow beyond (``"in the satiation build-up"``), for the message."""

    limit: float
    where: str


#: Probabilities, rates and shares.
UNIT = Interval(0.0, 1.0)
#: Probabilities that must leave room on both sides (a logit is taken).
OPEN_UNIT = Interval(0.0, 1.0, closed_low=False, closed_high=False)
#: Scales, spreads, widths, counts that may be zero.
NON_NEGATIVE = Interval(0.0)
#: Time scales, Beta parameters, penalties that must not vanish.
POSITIVE = Interval(0.0, closed_low=False)
#: Sizes and counts of at least one.
AT_LEAST_ONE = Interval(1)
#: Shares that may be whole but not nothing: a nucleus sampling mass, a click's watch fraction.
OPEN_LOW_UNIT = Interval(0.0, 1.0, closed_low=False)
#: The largest float32; a number beyond it is infinite in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _name(owner: str | None, key: str) -> str:
    return f"{owner}.{key}" if owner else key


def check_number(owner: str | None, key: str, value, within: Interval | None = None, *,
                 integer: bool = False) -> int | float:
    """``value`` as a plain ``int`` (``integer=True``) or ``float``, if it is a finite number
    of that kind in ``within``; otherwise ``ValueError`` naming ``owner.key``, the value and
    what it must be. Booleans and strings are not numbers."""
    within = within or Interval()
    span = f" {within}" if str(within) else ""
    if integer:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        expected = f"an integer{span}"
    else:
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value))
        expected = f"a finite number{span}"
    if not ok:
        raise ValueError(f"{_name(owner, key)}={value!r}: must be {expected}")
    number = int(value) if integer else float(value)
    if number not in within:
        shown = value if type(value) in (int, float) else number  # as given, but numpy's scalars as Python's
        raise ValueError(f"{_name(owner, key)}={shown!r}: must be {'an integer ' if integer else ''}{within}")
    return number


def check_float32(owner: str | None, key: str, value: float, within: Interval | None = None) -> None:
    """``ValueError`` naming ``owner.key`` if the finite ``value`` is infinite in float32 (beyond
    :data:`FLOAT32_MAX`) or, rounded to float32, leaves ``within``: ``1e-300`` is 0 there, no
    longer ``> 0``, and ``1 - 1e-12`` is 1, no longer ``< 1``."""
    with np.errstate(over="ignore"):
        held = float(np.float32(value))
    if math.isinf(held):
        raise ValueError(f"{_name(owner, key)}={value!r}: must be within ±{FLOAT32_MAX:.8g}, the float32 range "
                         f"(it is computed in float32, where it is {held})")
    if within is None:
        return
    # The ends rounded to float32 too: a value within a closed end stays within it (rounding
    # is monotone), while one next to an open end may round onto it.
    low, high = float(np.float32(within.low)), float(np.float32(within.high))
    if held not in Interval(low, high, within.closed_low, within.closed_high):
        raise ValueError(f"{_name(owner, key)}={value!r}: must be {within} as a float32 too (it is computed in "
                         f"float32, where it is {_number(held)})")


def check_overflow(owner: str | None, key: str, value: float, limit: OverflowLimit) -> None:
    """``ValueError`` naming ``owner.key``, the value, the largest magnitude accepted and the
    equation, if ``|value|`` exceeds ``limit.limit``."""
    if abs(value) > limit.limit:
        bound = f"<= {limit.limit:g}" if value > 0 else f">= {-limit.limit:g}"
        raise ValueError(f"{_name(owner, key)}={value!r}: must be {bound} (a larger magnitude overflows float32 "
                         f"{limit.where})")


def check_flag(owner: str | None, key: str, value) -> bool:
    """``value`` as a ``bool`` if it is one (numpy's included); ``ValueError`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{_name(owner, key)}={value!r}: must be True or False")
    return bool(value)


# A field's annotation is the type, or its name under ``from __future__ import annotations``.
_KINDS = {kind: kind for kind in (float, int, bool)} | {kind.__name__: kind for kind in (float, int, bool)}


@functools.cache
def _numeric_fields(cls: type) -> tuple[tuple[str, type], ...]:
    """``(name, float | int | bool)`` of the dataclass fields annotated with those types."""
    return tuple((f.name, _KINDS[f.type]) for f in dataclasses.fields(cls) if isinstance(f.type, (str, type))
                 and f.type in _KINDS)


def declared_ranges(cls: type) -> dict[str, Interval]:
    """The ``RANGES`` of ``cls`` and its bases, a subclass's entry winning."""
    ranges: dict[str, Interval] = {}
    for klass in reversed(cls.__mro__):
        ranges.update(vars(klass).get("RANGES", {}))
    return ranges


def check_fields(config, ranges: Mapping[str, Interval] | None = None, owner: str | None = None, *,
                 float32: bool = False, limits: Mapping[str, OverflowLimit] | None = None) -> None:
    """Check the ``float``, ``int`` and ``bool`` fields of the dataclass instance ``config``
    (see the module docstring); a NumPy scalar is stored as the Python number it equals.

    Args:
        config: a dataclass instance, frozen or not.
        ranges: the valid range of some fields (default: :func:`declared_ranges`).
        owner: how messages name the config (default: its class name).
        float32: whether its ``float`` fields are computed in float32, and must stay finite
            and in range there (:func:`check_float32`).
        limits: the largest magnitude of some ``float`` fields, where an equation would
            overflow beyond it (:func:`check_overflow`), checked after the range and float32.
    """
    cls = type(config)
    ranges = declared_ranges(cls) if ranges is None else ranges
    owner = cls.__name__ if owner is None else owner
    for name, kind in _numeric_fields(cls):
        value = getattr(config, name)
        if kind is bool:
            checked = check_flag(owner, name, value)
        else:
            checked = check_number(owner, name, value, ranges.get(name), integer=kind is int)
            if float32 and kind is float:
                check_float32(owner, name, checked, ranges.get(name))
            if limits and kind is float and name in limits:
                check_overflow(owner, name, checked, limits[name])
        if type(value) not in (int, float, bool):  # numpy's scalars become Python's; an int stays as given
            object.__setattr__(config, name, checked)  # object's: frozen dataclasses too


def check_seed(seed, key: str = "seed"):
    """A seed as given to a ``reset``: ``None``, an ``int`` (numpy's too) or a sequence of
    them, returned as ``None``, an ``int`` or an int64 array. Floats and booleans are refused
    rather than truncated; a negative seed is refused naming it."""
    if seed is None:
        return None
    if isinstance(seed, np.ndarray) and seed.ndim == 0:
        seed = seed.item()
    if isinstance(seed, (numbers.Number, str)):
        return check_number(None, key, seed, NON_NEGATIVE, integer=True)
    seeds = np.asarray(seed)
    if seeds.ndim != 1 or not (seeds.dtype.kind in "iu" or seeds.size == 0):
        raise ValueError(f"{key}={seed!r}: must be an integer >= 0 or a sequence of them, one per user")
    if seeds.size and int(seeds.min()) < 0:
        bad = int(np.flatnonzero(seeds < 0)[0])
        raise ValueError(f"{key}[{bad}]={int(seeds[bad])}: must be an integer >= 0")
    return seeds.astype(np.int64)


def did_you_mean(name, known) -> str:
    """``" (did you mean 'x'?)"`` naming the entry of ``known`` nearest to ``name`` (a
    misspelt key, field or argument), or ``""`` where none is near."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def from_mapping(cls: type, given: Mapping, owner: str):
    """``cls(**given)``, the dataclass ``cls`` built from a mapping of its fields (a dict in
    Python, a ``DictConfig``), refusing with ``ValueError`` a key of ``given`` that is no
    field of ``cls``, named with ``owner`` (where the mapping was given) and the fields it has:
    ``cls(**given)`` would say only that ``__init__()`` got an unexpected keyword argument."""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [key for key in given if key not in known]
    if unknown:
        raise ValueError(f"{owner} has {unknown[0]!r}, which {cls.__name__} has not{did_you_mean(unknown[0], known)}; "
                         f"its fields are {', '.join(known)}")
    return cls(**given)
