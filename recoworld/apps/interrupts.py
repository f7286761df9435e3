"""Stopping a command: ``kill`` taken as Ctrl-C.

A module of its own, with nothing but the standard library: the CLI wraps every command in
:func:`kill_stops_like_ctrl_c` before it loads anything, and ``recoworld run --help`` answers
without pandas or torch.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

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
