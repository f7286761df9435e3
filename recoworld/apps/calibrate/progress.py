"""How the calibration and the fidelity report run: a progress display of their stages, and
the torch thread count meanwhile."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

import torch


class Stages:
    """A one-line progress display of the fit's stages, on stderr."""

    def __init__(self, total: int, enabled: bool, label: str = "calibrate"):
        self.total, self.enabled, self.done, self.label = total, enabled, 0, label
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        if self.enabled:
            print(f"\r[{self.label} {self.done + 1}/{self.total}] {name} ...", end="", file=sys.stderr, flush=True)
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 2)
        self.done += 1
        if self.enabled:
            print(f"\r[{self.label} {self.done}/{self.total}] {name}: {self.timings[name]:.1f}s" + " " * 20,
                  file=sys.stderr, flush=True)

    @property
    def elapsed(self) -> float:
        return round(time.perf_counter() - self.start, 2)


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
