"""Population specs: which fitted users a calibrated population draws, and how often.

A spec maps a column of the fitted users' table to a condition (the table is in
:mod:`recoworld.simulators.calibrated`'s docstring): a value, a list of values, a numeric
range ``[low, high]``, a level (``low``, ``medium``, ``high``: tertiles of the column) or a
distribution ``{value: share}``. :func:`select` turns a spec into the eligible users and
their sampling weights; a spec that leaves no user raises ``ValueError`` naming the
condition that emptied it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

LEVELS = ("low", "medium", "high")


def as_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """``spec`` as a dict (``None``: no condition); ``ValueError`` unless it is a mapping."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):  # dict("gender") would fail on its letters
        raise ValueError(f"a population spec maps columns to conditions, e.g. {{'gender': 'F'}} or "
                         f"{{'patience': 'low'}}; got {spec!r}")
    return dict(spec)


def select(users: pd.DataFrame, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Eligible users (bool mask) and their sampling weights for a population ``spec``.

    Filters apply first; each distribution then weights the users left so that its
    categories get their shares (exactly for one distribution; with several, each user's
    weight is the product of theirs).
    """
    spec = as_spec(spec)
    for name in spec:
        if name not in users.columns:
            raise ValueError(f"population spec names column {name!r}; the fitted users have "
                             f"{', '.join(users.columns)}")
    eligible = np.ones(len(users), dtype=bool)
    weight = np.ones(len(users))
    applied: list[str] = []
    filters = [(n, c) for n, c in spec.items() if not isinstance(c, Mapping)]
    distributions = [(n, c) for n, c in spec.items() if isinstance(c, Mapping)]
    for name, condition in filters + distributions:
        column = users[name]
        if isinstance(condition, Mapping):
            mask, w = _distribution(name, column, condition, eligible, spec)
            weight *= w
        else:
            mask = _condition(name, column, condition)
        before = int(eligible.sum())
        eligible &= mask
        applied.append(_describe(name, condition))
        if not eligible.any():
            raise ValueError(
                f"no fitted user matches the population spec {dict(spec)}: {' and '.join(applied)} leaves 0 of "
                f"the {len(users)} users ({before} were left before {applied[-1]}); {_range_hint(name, column)}")
    return eligible, weight


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column)


def _level_mask(name: str, column: pd.Series, level: str) -> np.ndarray:
    if not _numeric(column):
        raise ValueError(f"level {level!r} applies to numeric columns; {name!r} holds text")
    low, high = np.quantile(column.to_numpy(dtype=np.float64), [1 / 3, 2 / 3])
    x = column.to_numpy(dtype=np.float64)
    return {"low": x <= low, "medium": (x > low) & (x <= high), "high": x > high}[level]


def _number(value) -> bool:
    """Whether ``value`` is a number (numpy's too), not a bool read as one."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bound(value) -> bool:
    """Whether ``value`` can end a numeric range: a number, or ``None`` for an open end."""
    return value is None or _number(value)


def _condition(name: str, column: pd.Series, condition) -> np.ndarray:
    if isinstance(condition, str) and _numeric(column):
        if condition in LEVELS:
            return _level_mask(name, column, condition)
        # Compared as text, a misspelt level would match no one and blame the range.
        raise ValueError(f"population spec {name}: {condition!r} is not a level of a numeric column; give a level "
                         f"({', '.join(LEVELS)}), a range [low, high] (None for an open end) or a number")
    if isinstance(condition, Sequence) and not isinstance(condition, str):
        values = list(condition)
        if _numeric(column) and len(values) == 2 and all(_bound(v) for v in values):
            low = -math.inf if values[0] is None else values[0]
            high = math.inf if values[1] is None else values[1]
            if math.isnan(low) or math.isnan(high):
                raise ValueError(f"population spec {name}: [{values[0]}, {values[1]}] has a NaN bound; give None for "
                                 "an open end")
            if low > high:
                raise ValueError(f"population spec {name}: [{low}, {high}] is an empty range (low > high)")
            x = column.to_numpy(dtype=np.float64)
            return (x >= low) & (x <= high)
        if _numeric(column):
            raise ValueError(f"population spec {name}: {values!r}; give a numeric column a range [low, high] "
                             "(None for an open end), a level (low, medium, high) or a value")
        _check_values(name, column, values)
        return column.isin(values).to_numpy()
    if not _numeric(column):
        _check_values(name, column, [condition])
    return (column == condition).to_numpy()


def _check_values(name: str, column: pd.Series, values) -> None:
    known = set(column.unique())
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"population spec {name}: no fitted user has {unknown[0]!r}; "
                         f"the values are {', '.join(map(str, sorted(known)))}")


def _distribution(name: str, column: pd.Series, shares: Mapping, eligible: np.ndarray,
                  spec: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Mask of users in the named categories and weights giving each category its share."""
    if not all(_number(s) for s in shares.values()):
        raise ValueError(f"population spec {name}: shares {dict(shares)} must be numbers, e.g. {{'F': 0.7, 'M': 0.3}}")
    total = sum(float(s) for s in shares.values())
    if total <= 0 or any(float(s) < 0 for s in shares.values()):
        raise ValueError(f"population spec {name}: shares {dict(shares)} must be >= 0 with a positive sum")
    mask = np.zeros(len(column), dtype=bool)
    weight = np.zeros(len(column))
    for category, share in shares.items():
        members = _condition(name, column, category)
        count = int((members & eligible).sum())
        if count == 0 and float(share) > 0:
            raise ValueError(f"no fitted user matches the population spec {dict(spec)}: {name} has share {share} "
                             f"for {category!r}, but no user left by the other conditions has it; "
                             f"{_range_hint(name, column)}")
        if count:
            weight[members] = float(share) / total / count
            mask |= members
    return mask, np.where(mask, weight, 0.0) * len(column)


def _describe(name: str, condition) -> str:
    if isinstance(condition, Mapping):
        return f"{name} in {list(condition)}"
    if isinstance(condition, Sequence) and not isinstance(condition, str):
        return f"{name} in {list(condition)}"
    return f"{name} = {condition!r}"


def _range_hint(name: str, column: pd.Series) -> str:
    if _numeric(column):
        x = column.to_numpy(dtype=np.float64)
        return f"{name} ranges from {x.min():.4g} to {x.max():.4g}"
    counts = column.value_counts()
    return f"{name} takes the values " + ", ".join(f"{k} ({v})" for k, v in counts.items())
