"""How a long job says where it stands: the ``status.json`` of its folder.

``recoworld run``'s run directory (:mod:`recoworld.apps.run.rundir`) and a robustness
study's folder (:mod:`recoworld.apps.robustness.studydir`) each keep a ``status.json``
whose ``state`` is one of :data:`STATES`, rewritten whole (written beside it, then renamed)
whenever it changes. :class:`JobStatus` holds what both do with it: mark the job
``interrupted`` on Ctrl-C and ``failed``, with the error, on any other exception, and
``complete`` at its end, so that a stopped job's folder always says how it stopped.
When a job is attempted again in the same folder (a resume), :func:`attempt_ending` gives
what its new ``status.json`` keeps of how the earlier attempt ended, so that a second
failure does not erase the first.

A job's process holds the folder's lock (:func:`claim`, the hidden ``.status.json.lock``)
from its start to its end, so that two processes started at once into one folder cannot
both take it: the system releases the lock when its process ends, killed included, so it
never blocks a resume.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from recoworld.logs import lock_path, process_running, replacing, strict_json

STATUS_FILE = "status.json"
#: A job is ``running`` until it ends ``failed``, ``interrupted`` or ``complete``; a job
#: killed outright stays ``running`` under a process id that no longer lives.
STATES = ("running", "failed", "interrupted", "complete")


def now() -> str:
    """The time in UTC, ISO 8601, to the second: the times of ``status.json``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def writer_running(status: Mapping) -> bool:
    """Whether the process that ``status`` (a ``status.json``'s contents) names as the job's
    writer still runs on this machine. A job left ``running`` by a process that has ended was
    killed, and may be resumed; a writer on another machine is not known to run here, and
    this process's own id counts as ended (a killed process had it: containers reuse ids)."""
    pid = status.get("pid")
    return (status.get("state") == "running" and status.get("host") == socket.gethostname()
            and isinstance(pid, int) and pid != os.getpid() and process_running(pid))


def attempt_ending(status: Mapping) -> dict:
    """How the attempt that ``status`` (a ``status.json``'s contents) describes ended, as a job
    attempted again keeps it in its ``previous_attempts``: ``attempt`` (its number), ``state``,
    ``error`` and ``error_type``, ``started``, ``finished`` and ``updated`` (its last write).
    An attempt left ``running`` (its writer was killed: a live writer is never resumed) ends
    ``killed``, with ``finished`` null."""
    state = "killed" if status["state"] == "running" else status["state"]
    return {"attempt": status.get("attempts", 1), "state": state, "error": status.get("error"),
            "error_type": status.get("error_type"),
            **{key: status.get(key) for key in ("started", "finished", "updated")}}


def previous_attempts(status: Mapping, **progress) -> list[dict]:
    """The ``previous_attempts`` of a job attempted again after the attempt that ``status``
    (a ``status.json``'s contents) describes: those it kept, oldest first, then its own
    ending (:func:`attempt_ending`) with ``progress``, what the job had done by then (a run's
    ``rollouts_complete``, a study's ``worlds_finished``)."""
    return [*status.get("previous_attempts", []), {**attempt_ending(status), **progress}]


def claim(path: Path) -> FileLock | None:
    """The lock of the job in folder ``path``, held by this process (release it when the job
    ends: :meth:`JobStatus.release`), or ``None`` when another process (or another job of this
    one) holds it. It is the :func:`~recoworld.logs.writer_lock` of ``status.json`` taken
    without waiting: a job's writer keeps it for the whole job, and another one is refused."""
    lock = FileLock(lock_path(Path(path) / STATUS_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


class JobStatus:
    """The ``status`` (a dict, ``status.json``'s contents) of the job whose folder is
    ``path``, and its endings. A subclass sets both, and adds to an ending what its own
    status records (:meth:`_ending`) or how an error is worded (:meth:`_error_text`)."""

    path: Path
    status: dict
    #: The folder's lock (:func:`claim`) while this process writes the job, else ``None``.
    lock: FileLock | None = None

    def release(self) -> None:
        """The job's process is done with its folder: let another one in (:func:`claim`)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> JobStatus:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextmanager
    def recording(self) -> Iterator[JobStatus]:
        """Marks the job ``interrupted`` on KeyboardInterrupt and ``failed`` (with the error)
        on any other exception, which then propagates."""
        try:
            yield self
        except KeyboardInterrupt:
            self._end("interrupted", None)
            raise
        except BaseException as error:
            self._end("failed", error)
            raise

    def complete(self) -> None:
        """The job is done: everything it writes is in place."""
        self._end("complete", None)

    def interrupted(self) -> None:
        """The job was stopped by Ctrl-C in a way :meth:`recording` could not see: another
        process (a sweep's) records it for the job's process, which was killed first."""
        self._end("interrupted", None)

    def _end(self, state: str, error: BaseException | None) -> None:
        self.status.update(state=state, finished=now())
        self._ending()
        if error is not None:
            self.status.update(error=self._error_text(error), error_type=type(error).__name__)
        self._save()

    def _ending(self) -> None:
        """What the job's status records as it ends, besides its state (nothing here)."""

    def _error_text(self, error: BaseException) -> str:
        return str(error) or repr(error)

    def _save(self) -> None:
        self.status["updated"] = now()
        with replacing(self.path / STATUS_FILE) as temporary:
            temporary.write_text(json.dumps(strict_json(self.status), indent=2) + "\n")


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
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
