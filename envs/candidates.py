"""The candidate items of each recommendation request.

Each user's candidates are ``(a + j s) mod N``, ``j < C``: a random start ``a`` and a
random stride ``s`` coprime with the catalog's ``N`` items give ``C`` distinct items, drawn
in O(1) per user (the pair is kept in
:attr:`~recoworld.kernels.world.WorldState.candidate_draw`) and spelled out in O(C) when
asked for. The offsets ``j s mod N`` come from a table of up to 4,096 strides
(:func:`candidate_offsets`). The draw hashes the user's episode key and step count on the
stream :data:`S_CANDIDATES` (:mod:`recoworld.rng`), so it does not depend on the batch.
"""

from __future__ import annotations

import numpy as np
import torch

from recoworld import rng
from recoworld.kernels.world import CandidateOffsets, WorldState

S_CANDIDATES = 101
MAX_STRIDES = 4096


def candidate_offsets(n: int, count: int, device, max_strides: int = MAX_STRIDES) -> CandidateOffsets:
    """``[S, count]`` offsets ``j s mod n`` for up to ``max_strides`` strides ``s`` coprime
    with ``n`` (spread evenly over ``1..n-1``), so that ``(a + offset) mod n`` lists
    ``count`` distinct items."""
    if n <= 2:
        strides = np.ones(1, dtype=np.int64)
    else:
        strides = np.arange(1, n, dtype=np.int64)
        strides = strides[np.gcd(strides, n) == 1]
        strides = strides[np.linspace(0, len(strides) - 1, min(max_strides, len(strides))).astype(np.int64)]
    offsets = torch.from_numpy(np.arange(count, dtype=np.int64)[None, :] * strides[:, None] % n).to(device)
    return CandidateOffsets(offsets=offsets, strides=torch.from_numpy(strides).to(device), n_items=n)


class CandidateSets:
    """Draws and spells out the candidates of ``C`` items from a catalog of ``n_items``."""

    def __init__(self, n_items: int, num_candidates: int, device):
        self.table = candidate_offsets(n_items, num_candidates, device)
        self._ids: torch.Tensor | None = None  # the draws spelled out, until they change

    def draw(self, state: WorldState, index: torch.Tensor | None = None) -> None:
        """New candidates for the users ``index`` (all when ``None``) from their key and
        step count."""
        key = state.key if index is None else state.key[index]
        count = state.step_count if index is None else state.step_count[index]
        draws = rng.bits(key, count, S_CANDIDATES, 2)
        draw = torch.stack([draws[:, 0] % self.table.n_items, draws[:, 1] % len(self.table.offsets)], 1)
        if index is None:
            state.candidate_draw = draw
        else:
            state.candidate_draw[index] = draw
        self.forget()

    def forget(self) -> None:
        """The draws changed (here or in a kernel): spell them out afresh when asked for."""
        self._ids = None

    def ids(self, state: WorldState) -> torch.Tensor:
        """Every user's current candidates ``[B, C]`` (item ids)."""
        if self._ids is None:
            draw, n_items = state.candidate_draw, self.table.n_items
            # In place on the gathered rows: at a large batch each [B, C] int64 temporary is large.
            candidates = self.table.offsets.index_select(0, draw[:, 1]).add_(draw[:, :1])
            self._ids = candidates.sub_((candidates >= n_items).to(candidates.dtype).mul_(n_items))
        return self._ids
