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
never blocks a resume. The lock, not the process id that ``status.json`` names, is what
says whether a job's writer lives (:func:`job_running`): a killed job's id that another
process took since (containers reuse ids) does not keep it from resuming. Its status says
so (``"lock": ".status.json.lock"``); a status without it was written by a release whose
jobs held no lock, and its process id is all there is to go by (:func:`older_writer_running`).

The lock file is created by the first job into the folder and stays, empty, when no one holds
it. A job refused for what the folder holds leaves none where there was none (:func:`claim`
checks first); it is never deleted, as another process may have opened it meanwhile to take
the lock: it would then hold the lock of a file no longer in the folder while a third process
locks a new one, and both would write.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from recoworld.logs import lock_path, process_running, replacing, strict_json, try_writer_lock

STATUS_FILE = "status.json"
#: A job is ``running`` until it ends ``failed``, ``interrupted`` or ``complete``; a job
#: killed outright stays ``running`` under a process id that no longer lives.
STATES = ("running", "failed", "interrupted", "complete")
#: The key of ``status.json`` that says its writer holds the folder's lock (:func:`claim`),
#: and its value, the lock file's name.
LOCK_KEY, LOCK_FILE = "lock", lock_path(STATUS_FILE).name


def now() -> str:
    """The time in UTC, ISO 8601, to the second: the times of ``status.json``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def writer_running(status: Mapping) -> bool:
    """Whether the process that ``status`` (a ``status.json``'s contents, or another record of
    a writer with ``state``, ``host`` and ``pid``) names as the writer still runs on this
    machine. A writer left ``running`` by a process that has ended was killed; one on another
    machine is not known to run here, and this process's own id counts as ended (a killed
    process had it: containers reuse ids). An id can have been taken by another process
    since: for a job's folder, ask :func:`job_running`, which asks the folder's lock."""
    pid = status.get("pid")
    return (status.get("state") == "running" and status.get("host") == socket.gethostname()
            and isinstance(pid, int) and pid != os.getpid() and process_running(pid))


def older_writer_running(status: Mapping) -> bool:
    """Whether ``status`` was written by a release whose jobs held no lock (it lacks
    :data:`LOCK_KEY`) and the process it names still runs (:func:`writer_running`): such a
    writer would not hold the folder's lock, so only its process id can tell that it lives.
    A job that holds the folder's lock (:func:`claim`) refuses it too."""
    return LOCK_KEY not in status and writer_running(status)


def job_running(path: Path, status: Mapping | None) -> bool:
    """Whether a live process writes the job in folder ``path``, whose ``status.json`` holds
    ``status`` (``None``: none readable), as a reader of the folder (not its writer) asks: one
    holds the folder's lock, or the status was written by an older release whose process still
    runs (:func:`older_writer_running`). Asking takes the lock for an instant when it is free.
    Where the lock cannot be asked (no lock file, or one this user may not open: another
    user's run), the status's process id is all there is (:func:`writer_running`)."""
    try:
        lock = try_writer_lock(Path(path) / STATUS_FILE) if (Path(path) / LOCK_FILE).exists() else False
    except OSError:
        lock = False
    if lock is None:
        return True
    if lock is False:
        return status is not None and writer_running(status)
    lock.release()
    return status is not None and older_writer_running(status)


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


def claim(path: Path, check: Callable[[], object] | None = None) -> FileLock | None:
    """The lock of the job in folder ``path``, held by this process (release it when the job
    ends: :meth:`JobStatus.release`), or ``None`` when another process (or another job of this
    one) holds it. It is the :func:`~recoworld.logs.writer_lock` of ``status.json`` taken
    without waiting (:func:`~recoworld.logs.try_writer_lock`): a job's writer keeps it for the
    whole job, and another one is refused.

    ``check``, the job's own checks of what the folder holds (they raise to refuse it), runs
    first where the folder has no lock file yet, so that a job they refuse leaves none (see the
    module's docstring: it is never deleted); the caller checks again once it holds the lock."""
    if check is not None and not (Path(path) / LOCK_FILE).exists():
        check()
    return try_writer_lock(Path(path) / STATUS_FILE)


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
        self.status[LOCK_KEY] = LOCK_FILE  # saved only by the lock's holder (:func:`claim`)
        with replacing(self.path / STATUS_FILE) as temporary:
            temporary.write_text(json.dumps(strict_json(self.status), indent=2) + "\n")
