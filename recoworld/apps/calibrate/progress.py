"""How the calibration and the fidelity report run: a rich progress display of their stages,
and the torch thread count meanwhile."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Stages:
    """A progress display of a job's stages on stderr, with rich: one line per stage, with a
    spinner and its elapsed time while it runs, left behind when it ends
    (``✓ [calibrate 5/9] fitting choices on the training split: 4.2s ━━━━ 0:00:04``); a stage
    that raises leaves ``✗ [calibrate 5/9] ...: failed after 4.2s`` (``stopped`` for Ctrl-C).

    On a terminal the line updates live; elsewhere (a log file, CI) each stage prints its
    line once, when it ends. ``timings`` holds each stage's seconds and ``elapsed`` the
    seconds since the display was made.
    """

    def __init__(self, total: int, enabled: bool, label: str = "calibrate", console: Console | None = None):
        self.total, self.enabled, self.done, self.label = total, enabled, 0, label
        self.console = console or Console(stderr=True)
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        with self._display() as display:
            header = escape(f"[{self.label} {self.done + 1}/{self.total}] {name}")
            task = display.add_task(header, total=None)  # a pulsing bar while the stage runs
            try:
                yield
            except BaseException as error:
                # The line left behind says where the job stopped, not a spinner frozen mid-turn.
                display.update(task, visible=False)
                if self.enabled:
                    how = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
                    self.console.print(f"✗ {header}: {how} after {time.perf_counter() - t:.1f}s", highlight=False)
                raise
            self.timings[name] = round(time.perf_counter() - t, 2)
            self.done += 1
            display.update(task, total=1, completed=1, description=f"{header}: {self.timings[name]:.1f}s")

    def _display(self) -> Progress:
        return Progress(SpinnerColumn(finished_text="✓"), TextColumn("{task.description}"), BarColumn(),
                        TimeElapsedColumn(), console=self.console,
                        disable=not self.enabled)

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
