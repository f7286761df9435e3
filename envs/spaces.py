"""The space of valid slates: ``K`` distinct indices out of ``C`` candidates."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


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
