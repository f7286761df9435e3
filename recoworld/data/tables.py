"""Checked columns of data files: a bad value is named by its file, column and row.

The loaders read every field as text and turn each column into numbers here, so that a
damaged file fails with ``<file>: rating is '7' at line 12, but it must be a rating in
1..5; ...`` rather than with an error of pandas or numpy, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

#: How a message names the place of a bad value, from its row index in the table.
Where = Callable[[int], str]
DAMAGED = "the file is damaged, fetch it again"


def at_row(row: int) -> str:
    """The default place: the table's row index (a file whose rows carry that index, as OBD's do)."""
    return f"row {row}"


def check_column(table: pd.DataFrame, column: str, file: Path, what: str, ok: np.ndarray,
                 where: Where = at_row, fix: str = DAMAGED) -> None:
    """Raise ``ValueError`` naming the first row of ``table[column]`` where ``ok`` is False."""
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValueError(f"{file}: {column} is {table[column].iloc[row]!r} at {where(row)}, but it must be {what}; "
                         f"{fix}")


def numeric_column(table: pd.DataFrame, column: str, file: Path, what: str, valid=np.isfinite,
                   where: Where = at_row, fix: str = DAMAGED) -> np.ndarray:
    """``table[column]`` as floats; ``valid(values)`` is False where a value (NaN: not a
    number) is wrong, and the first such row is named (:func:`check_column`)."""
    try:
        values = table[column].to_numpy().astype(np.float64)
    except ValueError:  # the slow parse that marks what is not a number as NaN, to name the row
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.asarray(valid(values), dtype=bool)
    check_column(table, column, file, what, ok, where, fix)
    return values


def integer_column(table: pd.DataFrame, column: str, file: Path, what: str, low: int | None = None,
                   high: int | None = None, where: Where = at_row, fix: str = DAMAGED) -> np.ndarray:
    """``table[column]`` as int64: whole numbers in ``low..high`` (either end open when None)."""
    low_ = -np.inf if low is None else low
    high_ = np.inf if high is None else high
    values = numeric_column(table, column, file, what,
                            lambda x: np.isfinite(x) & (x == np.round(x)) & (x >= low_) & (x <= high_), where, fix)
    return values.astype(np.int64)
