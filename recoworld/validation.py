"""Slate checks shared by simulators and envs: bad slates are refused, never repaired."""

from __future__ import annotations

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
    universe = universe or f"there are {n_choices} {plural}"

    def at(row: int, col: int | None = None) -> str:
        index = ([] if single else [row]) + ([] if col is None else [col])
        return name + "".join(f"[{i}]" for i in index)

    if not isinstance(slates, torch.Tensor):
        try:
            slates = torch.as_tensor(np.asarray(slates))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be an integer array [B, K]; could not read {slates!r}: {err}") from None
    expected = f"[{n_rows if n_rows is not None else 'B'}, {slate_size if slate_size is not None else 'K'}]"
    if slates.ndim != 2:
        raise ValueError(f"{name} has shape {tuple(slates.shape)}; expected {expected}")
    if (n_rows is not None and slates.shape[0] != n_rows) or (
        slate_size is not None and slates.shape[1] != slate_size
    ):
        raise ValueError(f"{name} has shape {tuple(slates.shape)}; expected {expected}")
    if slates.dtype.is_floating_point or slates.dtype.is_complex or slates.dtype == torch.bool:
        if slates.dtype.is_floating_point:
            nan = torch.isnan(slates)
            if bool(nan.any()):
                row, col = (int(i) for i in nan.nonzero()[0])
                raise ValueError(f"{at(row, col)} is NaN; a {name} holds integer {choice} ids")
        raise ValueError(
            f"{name} has dtype {slates.dtype}; pass integer {choice} ids (e.g. int64), "
            "not scores — rank scores yourself or use action_format='scores'"
        )
    slates = slates.long()
    bad = (slates < 0) | (slates >= n_choices)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{at(row, col)} is {choice} {int(slates[row, col])}, but {universe} "
            f"(valid ids 0..{n_choices - 1})"
        )
    if slates.shape[1] > 1:
        ordered, _ = torch.sort(slates, dim=1)
        repeats = ordered[:, 1:] == ordered[:, :-1]
        if bool(repeats.any()):
            row, col = (int(i) for i in repeats.nonzero()[0])
            value = int(ordered[row, col])
            positions = (slates[row] == value).nonzero().flatten().tolist()
            raise ValueError(
                f"{at(row)} repeats {choice} {value} at positions {positions}; "
                f"each {name} must list {slates.shape[1]} distinct {plural}"
            )
    return slates
