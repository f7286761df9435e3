"""Input checks shared by every estimator: one place, one wording.

Every check raises ``ValueError`` (``TypeError`` for a wrong kind of object) that names
the argument, the first offending index and value, and what to do about it.
"""

from __future__ import annotations

import math

import numpy as np

from recoworld.wording import plural

try:  # torch is a dependency of recoworld, but the checks do not need it to be imported
    import torch
except ImportError:  # pragma: no cover
    torch = None


def to_numpy(value, name: str) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and moved to the CPU."""
    if value is None:
        raise TypeError(f"{name} is None; pass an array")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _where(index) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _first(bad: np.ndarray) -> tuple:
    return tuple(np.unravel_index(int(np.argmax(bad)), bad.shape))


def check_shape(array: np.ndarray, name: str, expected: tuple, dims: str) -> None:
    """``array.shape == expected``; ``dims`` names the axes, e.g. ``(n_rounds, slate_length)``."""
    if array.shape != tuple(expected):
        raise ValueError(
            f"{name} has shape {array.shape}, but {dims} = {tuple(expected)} was expected"
        )


def float_array(value, name: str, shape: tuple, dims: str, fix: str,
                valid: np.ndarray | None = None, fill: float = 0.0) -> np.ndarray:
    """A float64 array of ``shape`` without NaN or infinity (``fix`` says how to get there).

    Where ``valid`` is False (padding after the end of a trajectory) the values are not
    checked and are replaced by ``fill``.
    """
    array = to_numpy(value, name)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    check_shape(array, name, shape, dims)
    if valid is not None:
        array = np.where(valid, array, fill)
    bad = ~np.isfinite(_distinct(array))
    if bad.any():
        index = _first(bad)
        raise ValueError(f"{name}{_where(index)} is {array[index]}; {fix}")
    return array


def _distinct(array: np.ndarray) -> np.ndarray:
    """``array`` without the repeats of a broadcast view (its axes of stride 0 cut to length
    1, so an index into it is one into ``array``): a check of a design broadcast over
    millions of rounds reads the values once, not once per round."""
    return array[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in array.strides)]


def int_array(value, name: str, shape: tuple, dims: str, what: str, low: int = 0,
              high: int | None = None, source: str = "", valid: np.ndarray | None = None) -> np.ndarray:
    """An int64 array of ``shape`` with values in ``[low, high)``; ``source`` sets ``high``.

    Where ``valid`` is False (padding) the values are not checked and are replaced by ``low``.
    """
    array = to_numpy(value, name)
    if valid is not None:
        check_shape(array, name, shape, dims)
        array = np.where(valid, array, low)
    if np.issubdtype(array.dtype, np.floating):
        fractional = array != np.round(array)
        if fractional.any():
            index = _first(fractional)
            raise ValueError(f"{name}{_where(index)} = {array[index]} is not an integer; {name} holds {what}")
    elif not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer {what}, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    check_shape(array, name, shape, dims)
    if array.size and array.min() < low:
        index = _first(array < low)
        raise ValueError(f"{name}{_where(index)} = {array[index]}, but {what} start at {low}")
    if high is not None and array.size and array.max() >= high:
        index = _first(array >= high)
        raise ValueError(
            f"{name}{_where(index)} = {array[index]}, but {source} covers only {high} {what} "
            f"(0..{high - 1}); pass {source} over all {what} the logging policy could choose"
        )
    return array


def propensity(value, name: str, shape: tuple, dims: str, valid: np.ndarray | None = None) -> np.ndarray:
    """Logging-policy probabilities of the logged choices: each in ``(0, 1]`` (1 at padding)."""
    array = float_array(value, name, shape, dims, valid=valid, fill=1.0,
                        fix="log the probability with which the logging policy chose the action")
    if (array <= 0).any():
        index = _first(array <= 0)
        raise ValueError(
            f"{name}{_where(index)} = {array[index]}, but logging propensities must lie in (0, 1]: "
            "a choice the logging policy could not have made cannot be reweighted; "
            "drop such rows or log the true probability"
        )
    _at_most_one(array, name)
    return array


def probability(value, name: str, shape: tuple, dims: str, valid: np.ndarray | None = None) -> np.ndarray:
    """Evaluation-policy probabilities: each in ``[0, 1]``, zero allowed (1 at padding)."""
    array = float_array(value, name, shape, dims, valid=valid, fill=1.0,
                        fix="give the evaluation policy's probability of the logged choice")
    if (array < 0).any():
        index = _first(array < 0)
        raise ValueError(f"{name}{_where(index)} = {array[index]} is negative; probabilities lie in [0, 1]")
    _at_most_one(array, name)
    return array


def _at_most_one(array: np.ndarray, name: str) -> None:
    if (array > 1 + 1e-9).any():
        index = _first(array > 1 + 1e-9)
        raise ValueError(
            f"{name}{_where(index)} = {array[index]} exceeds 1; pass probabilities, "
            "not importance weights or unnormalised scores"
        )


def non_increasing(array: np.ndarray, name: str) -> None:
    """Prefix (cascade) probabilities can only shrink as the prefix grows."""
    grows = np.diff(array, axis=1) > 1e-12 + 1e-9 * array[:, :-1]
    if grows.any():
        i, k = _first(grows)
        raise ValueError(
            f"{name}[{i}, {k + 1}] = {array[i, k + 1]} exceeds {name}[{i}, {k}] = {array[i, k]}, "
            "but the probability of a longer prefix cannot exceed that of a shorter one; "
            f"{name}[:, k] must be the probability of the whole prefix (positions 0..k), "
            "not of position k alone"
        )


def action_distribution(value, n_rounds: int, n_positions_needed: int) -> np.ndarray:
    """The evaluation policy's ``[n_rounds, n_actions, n_positions]`` action distribution.

    A 2-D ``[n_rounds, n_actions]`` array is read as a single position. Each
    ``action_dist[i, :, p]`` must be a probability distribution over the actions.
    """
    array = to_numpy(value, "action_dist")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            f"action_dist has {plural(array.ndim, 'dimension')}, but (n_rounds, n_actions) or "
            "(n_rounds, n_actions, n_positions) was expected"
        )
    if array.shape[0] != n_rounds:
        raise ValueError(
            f"action_dist has {plural(array.shape[0], 'row')}, but the feedback has "
            f"{plural(n_rounds, 'logged round')}; "
            "pass one row per logged round, in log order"
        )
    if array.shape[2] < n_positions_needed:
        raise ValueError(
            f"feedback.position reaches {n_positions_needed - 1}, but action_dist covers only "
            f"{plural(array.shape[2], 'position')}; pass action_dist with shape (n_rounds, n_actions, n_positions)"
        )
    array = float_array(array, "action_dist", array.shape, "(n_rounds, n_actions, n_positions)",
                        fix="the evaluation policy must give every action a finite probability")
    check_distribution(array, "action_dist", axis=1)
    return array


def check_distribution(array: np.ndarray, name: str, axis: int) -> None:
    """Every slice of ``array`` along ``axis`` (the actions) is a probability distribution."""
    if (array < 0).any():
        index = _first(array < 0)
        raise ValueError(f"{name}{_where(index)} = {array[index]} is negative; probabilities lie in [0, 1]")
    totals = array.sum(axis=axis)
    off = np.abs(totals - 1.0) > 1e-6
    if off.any():
        index = _first(off)
        where = [str(int(i)) for i in index]
        where.insert(axis, ":")
        raise ValueError(
            f"{name}[{', '.join(where)}] sums to {totals[index]:.6g}, but it must be a probability "
            f"distribution over the {plural(array.shape[axis], 'action')} (sum to 1); normalise it, e.g. with a "
            "softmax"
        )


def check_scalar(value, name: str, low: float, high: float = math.inf,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """A hyperparameter inside its admissible interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    too_low = value < low if low_inclusive else value <= low
    too_high = value > high if high_inclusive else value >= high
    if math.isnan(value) or too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ValueError(f"{name} = {value}, but it must lie in {left}{low}, {high}{right}")


def check_count(value, name: str, low: int, high: float = math.inf) -> None:
    """A count (a seed, folds, refits, simulated logs) in ``[low, high]`` and whole: ``2.5``
    refits or a seed of ``0.5`` would be cut to an integer unseen, or fail deep inside."""
    check_scalar(value, name, low, high)
    if not float(value).is_integer():
        # the whole number below it is in range too (low is whole); infinity has none
        example = math.floor(value) if math.isfinite(value) else low
        raise ValueError(f"{name} = {value}, but it must be a whole number; give an integer, e.g. {name}={example}")

