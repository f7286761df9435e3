"""A replay buffer of transitions on the device, whose rows link to the same user's next row."""

from __future__ import annotations

import torch


class ReplayBuffer:
    """Transitions as raw observation fields (features are recomputed when sampled), on the device.

    Each row also links to the same user's next row (``successor``, -1 until it arrives or
    after the episode's end), so that n-step returns can be read by following the links.
    Rows are overwritten oldest first and a row's successor is newer than the row, so a
    live row never links to an overwritten one.
    """

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.data: dict[str, torch.Tensor] = {}
        self.size = self.cursor = 0

    def add(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        """Append rows; returns their indices."""
        n = next(iter(rows.values())).shape[0]
        if n > self.capacity:
            raise ValueError(f"adding {n} transitions at once to a buffer of {self.capacity}; raise buffer_size")
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
                         for k, v in rows.items()}
            self.data["successor"] = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        index = (self.cursor + torch.arange(n, device=self.device)) % self.capacity
        for k, v in rows.items():
            self.data[k][index] = v.to(self.device)
        self.data["successor"][index] = -1
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return index

    def link(self, rows: torch.Tensor, successors: torch.Tensor) -> None:
        """Record that ``successors`` follow ``rows`` in their users' episodes."""
        self.data["successor"][rows] = successors

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``batch`` rows drawn uniformly with replacement."""
        return torch.randint(self.size, (batch,), generator=generator, device=self.device)

    def rows(self, index: torch.Tensor, fields=None) -> dict[str, torch.Tensor]:
        return {k: v.index_select(0, index) for k, v in self.data.items() if fields is None or k in fields}

