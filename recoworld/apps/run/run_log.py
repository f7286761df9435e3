"""A run directory's log, as the tools that read one (``recoworld view``, ``recoworld export
minari``) take it: the rollouts its ``status.json`` lists as complete, checked on disk, and
a note on the run when it did not complete.

:func:`read_run_log` reads the log of the run in a folder, or of one of its
``experiment.segments`` (``segments/<name>/episodes/``):

- a run that completed gives its whole log;
- a run that failed, was interrupted, was killed or still runs gives the rollouts complete so
  far, and :attr:`RunLog.note` says which state it is in, how many rollouts are complete and
  what to do (:func:`run_note`); with none complete it is refused;
- a rollout that ``status.json`` lists as complete but that is missing on disk, or no longer
  holds the rows recorded, is refused: a log that silently lacks a part would look whole;
- a folder without a ``status.json`` (a run of a release before run directories kept one)
  is read as it is; one without a log either (a run that stopped before it began, leaving
  only Hydra's ``.hydra/``) is refused, saying so.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd

from recoworld.apps.run.rundir import (STATUS_FILE, RunDirectoryError, part_damage, read_status, rerun_sweep,
                                      resume_into, sweep_of)
from recoworld.apps.status import LOCK_FILE, job_running, writer_running
from recoworld.logs import LogSchemaError, log_parts, read_log


@dataclass(frozen=True)
class RunLog:
    """What :func:`read_run_log` read."""

    log: pd.DataFrame
    #: Why ``log`` is not the whole run's (the run did not complete), ``None`` for a complete run.
    note: str | None
    #: The names of the run's ``experiment.segments`` (each has a log of its own).
    segments: tuple[str, ...]


def read_run_log(run_dir: str | Path, segment: str | None = None) -> RunLog:
    """The log of the run in ``run_dir`` (of its segment ``segment``), from the rollouts
    that its ``status.json`` lists as complete (see the module's docstring).

    Raises:
        ValueError: the status is damaged, the segment is not one of the run's, no rollout is
            complete, or one listed as complete is missing or damaged (the message says what
            to do).
        FileNotFoundError: the folder holds no log (no ``status.json`` and no ``episodes/``).
    """
    run_dir = Path(run_dir)
    return read_run_log_at(run_dir, run_status(run_dir), segment)


def read_run_log_at(run_dir: str | Path, status: dict | None, segment: str | None = None) -> RunLog:
    """:func:`read_run_log` of the run in ``run_dir`` whose ``status.json`` the caller read
    already, as ``status`` (:func:`run_status`): a command that warns about the run's state
    before the long read reads its status once, and the log is read in the state it warned of.

    Raises:
        ValueError, FileNotFoundError: as :func:`read_run_log`.
    """
    run_dir = Path(run_dir)
    folder = run_dir if segment is None else run_dir / "segments" / quote(segment, safe="")
    segments = run_segments(run_dir, status)
    if segment is not None and segment not in segments:
        named = ", ".join(segments) if segments else "none: it ran no experiment.segments"
        raise ValueError(f"segment {segment!r} is not one of the run's segments in {run_dir} ({named})")
    if status is None:
        try:
            parts = log_parts(folder)  # the one reader of the log's layout: parts in subfolders count
        except LogSchemaError:
            if segment is not None or (folder / "episodes").exists():
                raise  # a segment's or an episodes/ folder without a part: log_parts' message says so
            # What `recoworld run` leaves when it stops before its run begins: Hydra has
            # written .hydra/ (and the log file), the run no status.json yet.
            raise FileNotFoundError(f"{run_dir} holds no {STATUS_FILE} and no episodes/: its `recoworld run` stopped "
                                    "before the run began (a config it refused, whose error it printed, or a run "
                                    "killed as it started); run the command again") from None
        return RunLog(read_log(parts), None, segments)
    records = [r for r in status["parts"]["complete"] if r.get("segment") == segment]
    if not records:
        phrase, advice = run_state(run_dir, status)
        scope = f"its {status['parts']['planned']} rollouts" if segment is None else f"segment {segment!r}'s rollouts"
        raise ValueError(f"the run in {run_dir} {phrase}, and none of {scope} is complete: there is no log to read; "
                         f"{advice}")
    damaged = [problem for r in records if (problem := part_damage(run_dir, r))]
    if damaged:
        raise ValueError(f"{run_dir / STATUS_FILE} lists {len(damaged)} rollout(s) as complete that are not whole on "
                         f"disk ({'; '.join(damaged[:3])}{'; ...' if len(damaged) > 3 else ''}): "
                         f"{resume_advice(run_dir)} to run them again (it keeps the rollouts that are whole)")
    return RunLog(read_log([run_dir / r["file"] for r in records]), run_note(run_dir, status), segments)


def run_status(run_dir: Path) -> dict | None:
    """The run's ``status.json`` (``None`` without one); a damaged one is a ``ValueError``
    that says so (which rollouts are complete is then unknown)."""
    try:
        return read_status(run_dir)
    except RunDirectoryError:
        raise ValueError(f"{run_dir / STATUS_FILE} is damaged or was edited, so which rollouts of the run are "
                         "complete is unknown: restore it, or read the log's parts yourself with "
                         f"recoworld.logs.read_log({str(run_dir)!r})") from None


def run_note(run_dir: str | Path, status: dict | None) -> str | None:
    """What to say about the run in ``run_dir`` whose status is ``status`` when it did not
    complete (``None`` for a complete run, or without a status): its state, how many rollouts
    are complete (only they are read) and what to do."""
    if status is None or status["state"] == "complete":
        return None
    phrase, advice = run_state(Path(run_dir), status)
    parts = status["parts"]
    return (f"the run in {run_dir} {phrase}: {len(parts['complete'])} of {parts['planned']} rollouts are complete, "
            f"and only those are read; {advice}")


def resume_advice(run_dir: Path) -> str:
    """How to resume the run in ``run_dir``, a phrase that "to finish it" may follow: its
    command again with ``experiment.resume=true`` and the run's folder as ``hydra.run.dir``
    (:func:`~recoworld.apps.run.rundir.resume_into`: the command alone starts a new run in a
    new folder); for a job of a ``--multirun`` (:func:`~recoworld.apps.run.rundir.sweep_of`),
    the sweep's command, with its ``hydra.sweep.dir``: the job has no command of its own."""
    sweep = sweep_of(run_dir)
    return f"rerun its command with {resume_into(run_dir)}" if sweep is None else rerun_sweep(sweep)


def run_state(run_dir: Path, status: dict) -> tuple[str, str]:
    """(what became of the run, what to do) for an unfinished run: failed (with its error),
    interrupted, still running, or killed: a running state, but no process holds the run's
    lock (:func:`~recoworld.apps.status.job_running`; for a status of a release before the
    lock, the process it names has ended)."""
    state, resume = status["state"], resume_advice(run_dir)
    if state == "failed":
        return f"failed ({status.get('error_type')}: {status.get('error')})", f"fix that, then {resume} to finish it"
    if state == "interrupted":
        return "was interrupted", f"{resume} to finish it"
    pid, host = status.get("pid"), status.get("host")
    if host != socket.gethostname():
        return (f"is running on {host} (pid {pid}), or was killed there",
                f"when it has ended, look again; if it was killed, {resume} to finish it")
    if job_running(run_dir, status):
        return f"is still running (pid {pid})", "look again when it has ended"
    # A live process under the pid took it since (containers reuse ids): not the run's writer.
    ended = f"does not hold {LOCK_FILE}" if writer_running(status) else "has ended"
    return f"was killed (its {STATUS_FILE} says running, but process {pid} {ended})", f"{resume} to finish it"


def run_segments(run_dir: Path, status: dict | None) -> tuple[str, ...]:
    """The names of the run's ``experiment.segments`` (from its status, else its folders)."""
    if status is not None:
        named = ((status.get("config") or {}).get("experiment") or {}).get("segments") or {}
        return tuple(dict.fromkeys([*named, *(r["segment"] for r in status["parts"]["complete"] if r.get("segment"))]))
    folder = run_dir / "segments"
    return tuple(sorted(unquote(p.name) for p in folder.iterdir() if p.is_dir())) if folder.is_dir() else ()
