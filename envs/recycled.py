"""Observation arrays that are reused once the agent has let go of them.

An env hands each step's observation to the agent, who may keep it (a replay buffer, a
log), so every step needs arrays the env will not write again while anyone holds them. A
fresh array per step is safe but, at large batches, costly: the candidate features are
a large array, and a new one pays for the zeroed pages the OS hands out (figures in
``benchmarks/RESULTS.md``). :class:`RecycledArrays` keeps a few arrays and reuses one
only when no reference to it is left but its own: views of it (slices,
``torch.from_numpy``) hold a reference too, so an array the agent still uses, in any form,
is never written again.
"""

from __future__ import annotations

import sys

import numpy as np


def _references(arrays: list[np.ndarray], i: int) -> int:
    # Always read through this one function, so that the references the read itself makes
    # are the same for the baseline and for every check.
    return sys.getrefcount(arrays[i])


# How many references an array has when only a list of RecycledArrays holds it.
_UNHELD = _references([np.empty(0)], 0)


class RecycledArrays:
    """Arrays of one ``shape`` and ``dtype``: :meth:`empty` returns one that nobody else
    holds, or a new one. At most ``keep`` are kept for reuse; an agent that keeps more
    gets new arrays, as if there were no recycling."""

    def __init__(self, shape: tuple[int, ...], dtype, keep: int = 3):
        self.shape, self.dtype, self.keep = tuple(shape), np.dtype(dtype), keep
        self._arrays: list[np.ndarray] = []

    def empty(self) -> np.ndarray:
        """An array of :attr:`shape` that no one else holds (contents unspecified)."""
        for i in range(len(self._arrays)):
            if _references(self._arrays, i) == _UNHELD:
                return self._arrays[i]
        array = np.empty(self.shape, self.dtype)
        if len(self._arrays) < self.keep:
            self._arrays.append(array)
        return array
