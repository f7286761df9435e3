"""Stopping a command: ``kill`` taken as Ctrl-C, and what a stopped command says it kept.

A module of its own, with nothing but the standard library: the CLI wraps every command in
:func:`kill_stops_like_ctrl_c` before it loads anything, and ``recoworld run --help`` answers
without pandas or torch.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

Report = TypeVar("Report")

#: No handler was set (off the main thread), so none is put back.
_NOT_SET = object()


@contextmanager
def kill_stops_like_ctrl_c() -> Iterator[None]:
    """``kill`` (SIGTERM: a scheduler's time limit, ``docker stop``, ``timeout``) stops the job
    as Ctrl-C does, so that its folder says ``interrupted`` and no temporary is left (a handler
    can only be set from the main thread: elsewhere, e.g. a launcher's worker thread, none is)."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:
        # Off the main thread. Yielding here would chain every error the job raises to this
        # one ("During handling of the above exception ...").
        previous = _NOT_SET
    try:
        yield
    finally:
        if previous is not _NOT_SET:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def write_then_show(command: str, out: Path, write: Callable[[], tuple[Path, Report]],
                    show: Callable[[Path, Report], object]) -> Path:
    """Write a report folder, then print its tables; returns the folder ``write`` wrote.

    ``write`` does the work and writes the folder whole or not at all (into ``out``, or a
    free name beside it), returning the folder and what ``show`` prints. Stopped (Ctrl-C,
    ``kill``), the command says in one line on stderr what it kept, then the stop goes on:
    before the folder took its name, nothing (in ``out``); while the tables print, the whole
    report, in the folder named.
    """
    try:
        folder, report = write()
    except KeyboardInterrupt:
        print(f"{command}: stopped before the report was complete; nothing was written to {out}", file=sys.stderr)
        raise
    try:
        show(folder, report)
    except KeyboardInterrupt:
        # The folder took its name before the tables print: it is whole.
        print(f"{command}: stopped while the tables printed; the report is whole in {folder}", file=sys.stderr)
        raise
    return folder
