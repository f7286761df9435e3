"""The space of valid slates: ``K`` distinct indices out of ``C`` candidates."""

from __future__ import annotations

from copy import deepcopy

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space


class SlateSpace(spaces.MultiDiscrete):
    """``MultiDiscrete([C] * K)`` restricted to rows of distinct indices.

    It is a ``MultiDiscrete`` to every library that checks types (Stable-Baselines3,
    Gymnasium's utilities), but ``sample()`` draws only valid slates and ``contains()``
    refuses slates that repeat a candidate. With ``batch=B`` it is the space of ``B`` slates.
    """

    def __init__(self, num_candidates: int, slate_size: int, batch: int | None = None, seed=None):
        shape = (slate_size,) if batch is None else (batch, slate_size)
        super().__init__(np.full(shape, num_candidates, dtype=np.int64), seed=seed)
        self.num_candidates, self.slate_size, self.batch = num_candidates, slate_size, batch

    def sample(self, mask=None, probability=None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("SlateSpace.sample() takes no mask or probability")
        rows = 1 if self.batch is None else self.batch
        draws = self.np_random.random((rows, self.num_candidates)).argsort(axis=1)[:, : self.slate_size]
        return draws[0] if self.batch is None else draws

    def contains(self, x) -> bool:
        if not super().contains(x):
            return False
        rows = np.sort(np.asarray(x).reshape(-1, self.slate_size), axis=1)
        return not bool((rows[:, 1:] == rows[:, :-1]).any())

    def __repr__(self) -> str:
        batch = "" if self.batch is None else f", batch={self.batch}"
        return f"SlateSpace(num_candidates={self.num_candidates}, slate_size={self.slate_size}{batch})"

    def __eq__(self, other) -> bool:
        return isinstance(other, SlateSpace) and (
            self.num_candidates, self.slate_size, self.batch) == (other.num_candidates, other.slate_size, other.batch)


@batch_space.register(SlateSpace)
def _batch_slate_space(space: SlateSpace, n: int = 1) -> spaces.Space:
    """``n`` slates, as Gymnasium's own vector envs (``vectorization_mode="sync"`` or
    ``"async"``) batch the single env's action space: a ``SlateSpace`` with ``batch=n``, whose
    samples are valid slates, where Gymnasium's rule for a ``MultiDiscrete`` would give a
    ``Box`` whose samples repeat candidates."""
    if space.batch is not None:  # a batch of batches: no slate rule to keep, Gymnasium's Box
        return batch_space.dispatch(spaces.MultiDiscrete)(space, n)
    return SlateSpace(space.num_candidates, space.slate_size, n, seed=deepcopy(space.np_random))
