"""Slate checks shared by simulators and envs: bad slates are refused, never repaired."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def check_slates(
    slates,
    n_choices: int,
    *,
    n_rows: int | None = None,
    slate_size: int | None = None,
    name: str = "slate",
    choice: str = "item",
    universe: str | None = None,
    single: bool = False,
    plural: str | None = None,
) -> torch.Tensor:
    """Validate a batch of slates and return it as an int64 tensor ``[B, K]``.

    Args:
        slates: integer array or tensor ``[B, K]``.
        n_choices: valid values are ``0..n_choices-1``.
        n_rows: the expected ``B``, if fixed.
        slate_size: the expected ``K``, if fixed.
        name: how the batch is called in messages (``slate``, ``action``).
        choice: what one entry is (``item``, ``candidate index``).
        universe: what the valid range is, e.g. ``"the catalog has 1682 items"``.
        plural: the plural of ``choice`` (default: ``choice + "s"``).
        single: the batch is one slate ``[1, K]`` of a single-user env: messages name
            entries ``action[k]`` instead of ``action[0][k]``.

    Raises:
        ValueError: naming the first bad entry — wrong shape, non-integer dtype, NaN,
            out-of-range value, or a repeated entry within a row.
    """
    plural = plural or f"{choice}s"
    names = _Names(name, choice, plural, universe or f"there are {n_choices} {plural}", single)
    slates = _as_tensor(slates, name)
    _check_shape(slates, name, n_rows, slate_size)
    _check_dtype(slates, names)
    slates = slates.long()
    _check_range(slates, n_choices, names)
    _check_distinct(slates, names)
    return slates


@dataclass
class _Names:
    """How the messages name the batch, an entry, and the valid range."""

    batch: str
    choice: str
    plural: str
    universe: str
    single: bool

    def at(self, row: int, col: int | None = None) -> str:
        index = ([] if self.single else [row]) + ([] if col is None else [col])
        return self.batch + "".join(f"[{i}]" for i in index)


def _as_tensor(slates, name: str) -> torch.Tensor:
    if isinstance(slates, torch.Tensor):
        return slates
    try:
        return torch.as_tensor(np.asarray(slates))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an integer array [B, K]; could not read {slates!r}: {err}") from None


def _check_shape(slates: torch.Tensor, name: str, n_rows: int | None, slate_size: int | None) -> None:
    expected = f"[{n_rows if n_rows is not None else 'B'}, {slate_size if slate_size is not None else 'K'}]"
    if slates.ndim != 2 or (n_rows is not None and slates.shape[0] != n_rows) or (
        slate_size is not None and slates.shape[1] != slate_size
    ):
        raise ValueError(f"{name} has shape {tuple(slates.shape)}; expected {expected}")


def _check_dtype(slates: torch.Tensor, names: _Names) -> None:
    """Integer ids only: a float batch is refused (naming a NaN first), as are booleans."""
    if not (slates.dtype.is_floating_point or slates.dtype.is_complex or slates.dtype == torch.bool):
        return
    if slates.dtype.is_floating_point:
        nan = torch.isnan(slates)
        if bool(nan.any()):
            row, col = (int(i) for i in nan.nonzero()[0])
            raise ValueError(f"{names.at(row, col)} is NaN; {names.batch} must hold integer {names.choice} ids "
                             "(e.g. int64)")
    raise ValueError(
        f"{names.batch} has dtype {slates.dtype}; pass integer {names.choice} ids (e.g. int64), "
        "not scores — rank scores yourself or use action_format='scores'"
    )


def _check_range(slates: torch.Tensor, n_choices: int, names: _Names) -> None:
    bad = (slates < 0) | (slates >= n_choices)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{names.at(row, col)} is {names.choice} {int(slates[row, col])}, but {names.universe} "
            f"(valid ids 0..{n_choices - 1})"
        )


def _check_distinct(slates: torch.Tensor, names: _Names) -> None:
    if slates.shape[1] <= 1:
        return
    ordered, _ = torch.sort(slates, dim=1)
    repeats = ordered[:, 1:] == ordered[:, :-1]
    if bool(repeats.any()):
        row, col = (int(i) for i in repeats.nonzero()[0])
        value = int(ordered[row, col])
        positions = (slates[row] == value).nonzero().flatten().tolist()
        raise ValueError(
            f"{names.at(row)} repeats {names.choice} {value} at positions {positions}; "
            f"each {names.batch} must list {slates.shape[1]} distinct {names.plural}"
        )
