"""Slate checks shared by simulators and envs: bad slates are refused, never repaired."""

from __future__ import annotations

import numbers
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
    given = slates
    slates = _as_tensor(slates, names, n_choices, n_rows, slate_size)
    _check_shape(slates, name, n_rows, slate_size)
    _check_dtype(slates, names, given)
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

    @property
    def ids(self) -> str:
        """The entries as the numbers they must be: ``item ids``, but ``candidate indices``
        (an index is already a number)."""
        return self.plural if self.choice.endswith("index") else f"{self.choice} ids"

    def at(self, row: int, col: int | None = None) -> str:
        index = ([] if self.single else [row]) + ([] if col is None else [col])
        return self.batch + "".join(f"[{i}]" for i in index)


def _as_tensor(slates, names: _Names, n_choices: int, n_rows: int | None, slate_size: int | None) -> torch.Tensor:
    """``slates`` as a tensor of numbers; entries that are not numbers (strings, Python ints
    beyond int64, which numpy holds as objects) and uint64 entries beyond int64 (which would
    read as negative ids) raise ``ValueError`` naming the first."""
    if isinstance(slates, torch.Tensor):
        return slates
    try:
        array = np.asarray(slates)
    except ValueError as err:  # ragged rows
        raise ValueError(f"{names.batch} must be an integer array [B, K] of {names.plural}; could not read "
                         f"{slates!r}: {err}") from None
    if array.dtype.kind not in "biufc":
        _check_shape(array, names.batch, n_rows, slate_size)
        array = _integers(array, names, n_choices)
    elif array.dtype == np.uint64 and array.size and int(array.max()) > 2**63 - 1:
        _check_shape(array, names.batch, n_rows, slate_size)
        row, col = np.argwhere(array > 2**63 - 1)[0]
        raise ValueError(_out_of_range(names, int(row), int(col), int(array[row, col]), n_choices))
    return torch.as_tensor(viewable(array))


def viewable(array: np.ndarray) -> np.ndarray:
    """``array`` as torch can view it: a copy where it has negative strides (a reversed
    argsort, ``np.argsort(scores)[:, ::-1]``, which torch refuses to view) or is read-only
    (``np.broadcast_to``, which torch views with a warning), itself otherwise."""
    return array.copy() if not array.flags.writeable or any(stride < 0 for stride in array.strides) else array


def _integers(array: np.ndarray, names: _Names, n_choices: int) -> np.ndarray:
    """An array of objects or strings as int64, if every entry is an integer within int64;
    otherwise ``ValueError`` naming the first entry that is not."""
    for (row, col), value in np.ndenumerate(array):
        value = value.item() if isinstance(value, np.generic) else value  # '2', not np.str_('2')
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{names.at(row, col)} is {value!r} ({type(value).__name__}), not an integer; "
                             f"{names.batch} must hold integer {names.ids} (e.g. int64)")
        if not -2**63 <= int(value) < 2**63:
            raise ValueError(_out_of_range(names, row, col, int(value), n_choices))
    return array.astype(np.int64)


def _check_shape(slates: torch.Tensor, name: str, n_rows: int | None, slate_size: int | None) -> None:
    expected = f"[{n_rows if n_rows is not None else 'B'}, {slate_size if slate_size is not None else 'K'}]"
    if slates.ndim != 2 or (n_rows is not None and slates.shape[0] != n_rows) or (
        slate_size is not None and slates.shape[1] != slate_size
    ):
        raise ValueError(f"{name} has shape {tuple(slates.shape)}; expected {expected}")


def _check_dtype(slates: torch.Tensor, names: _Names, given) -> None:
    """Integer ids only: a float batch is refused (naming a NaN first), as are booleans.
    The message names the dtype of the batch as ``given`` (NumPy's for an array or a list,
    torch's for a tensor), not that of the tensor it was read into."""
    if not (slates.dtype.is_floating_point or slates.dtype.is_complex or slates.dtype == torch.bool):
        return
    if slates.dtype.is_floating_point:
        nan = torch.isnan(slates)
        if bool(nan.any()):
            row, col = (int(i) for i in nan.nonzero()[0])
            raise ValueError(f"{names.at(row, col)} is NaN; {names.batch} must hold integer {names.ids} "
                             "(e.g. int64)")
    dtype = given.dtype if isinstance(given, (torch.Tensor, np.ndarray)) else np.asarray(given).dtype
    raise ValueError(
        f"{names.batch} has dtype {dtype}; pass integer {names.ids} (e.g. int64), not scores — rank scores "
        "yourself" + (" or use action_format='scores'" if _of_an_env(names) else "")
    )


def _of_an_env(names: _Names) -> bool:
    """Whether the batch is an env's actions (candidate indices), whose ``action_format='scores'``
    is the fix the messages name."""
    return names.choice.endswith("index")


def _check_range(slates: torch.Tensor, n_choices: int, names: _Names) -> None:
    bad = (slates < 0) | (slates >= n_choices)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(_out_of_range(names, row, col, int(slates[row, col]), n_choices))


def _out_of_range(names: _Names, row: int, col: int, value: int, n_choices: int) -> str:
    return f"{names.at(row, col)} is {names.choice} {value}, but {names.universe} (valid ids 0..{n_choices - 1})"


def _check_distinct(slates: torch.Tensor, names: _Names) -> None:
    if slates.shape[1] <= 1:
        return
    ordered, _ = torch.sort(slates, dim=1)
    repeats = ordered[:, 1:] == ordered[:, :-1]
    if bool(repeats.any()):
        row, col = (int(i) for i in repeats.nonzero()[0])
        value = int(ordered[row, col])
        positions = (slates[row] == value).nonzero().flatten().tolist()
        # A learner that samples each index on its own (SB3's PPO on a MultiDiscrete space)
        # repeats them sooner or later: scores never do.
        raise ValueError(
            f"{names.at(row)} repeats {names.choice} {value} at positions {positions}; "
            f"each {names.batch} must list {slates.shape[1]} distinct {names.plural}"
            + ("; a learner that samples each index (e.g. SB3's PPO) should use action_format='scores' instead "
               f"(a score per candidate, the top {slates.shape[1]} shown)" if _of_an_env(names) else "")
        )
