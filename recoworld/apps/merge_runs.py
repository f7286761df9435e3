"""A sweep's run directories: those that finished (a ``metrics.json``), and why the others did not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

#: What a run writes when all its parts are complete: a run directory is one that holds it.
METRICS_FILE = "metrics.json"
#: A job's error is cut to this many characters on the console (its status.json keeps it whole).
REASON_CHARS = 300


def find_runs(dirs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The run directories under ``dirs`` (holding ``metrics.json``), and those of jobs that
    did not finish, each in job order of their absolute paths (``2`` before ``10``), whatever
    the order of ``dirs``: a merge of the same runs pools them in the same order, so its means
    are the same to the last bit. Raises :class:`FileNotFoundError` naming a ``DIR`` that does
    not exist."""
    runs, unfinished = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a directory; give the sweep directory (hydra.sweep.dir, "
                                    "e.g. multirun/2026-12-06/10-00-00) or run directories")
        runs += [p.parent for p in d.rglob(METRICS_FILE)]
        started = {p.parent for pattern in ("status.json", ".hydra/overrides.yaml") for p in d.rglob(pattern)}
        started = {p.parent if p.name == ".hydra" else p for p in started}
        unfinished += [p for p in started if not (p / METRICS_FILE).exists()]
    # A run reached twice (a DIR given twice, or a sweep and one of its runs) counts once.
    return _in_job_order(_first_of_each(runs)), _in_job_order(_first_of_each(unfinished))


def job_order(path: Path) -> list:
    """Sort key: numbers in a path by value, so Hydra's job folders come 0, 1, 2, ..., 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]


def _in_job_order(paths: list[Path]) -> list[Path]:
    """``paths`` in the :func:`job_order` of where they are, however they were typed."""
    return sorted(paths, key=lambda path: job_order(path.resolve()))


def _first_of_each(paths: list[Path]) -> list[Path]:
    """``paths`` in their order, each place once (the first way it was reached)."""
    first: dict[Path, Path] = {}
    for path in paths:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def unfinished_reason(run: Path) -> str:
    """Why the job in ``run`` has no ``metrics.json``, and what to do: its ``status.json``'s
    state in the words of :mod:`recoworld.apps.run.run_log` (failed with its error,
    interrupted, killed, still running) with its rollouts complete (what a resume keeps), or
    why there is no state to read: the job stopped before its run began, its log names why
    unless it is empty (Ctrl-C as the job started)."""
    from recoworld.apps.run.run_log import resume_advice, run_state, run_status
    from recoworld.apps.run.rundir import rollouts_complete
    from recoworld.apps.status import STATUS_FILE

    try:
        status = run_status(run)
    except ValueError:
        return (f"its {STATUS_FILE} is damaged (edited, or written by something else), so whether it failed or "
                "still runs is unknown")
    if status is None:
        logs = sorted(run.glob("*.log"))
        saying = [log.name for log in logs if log.stat().st_size > 0]
        if saying:
            return f"the job stopped before its run began (no {STATUS_FILE}; {saying[0]} says why)"
        log = f"its {logs[0].name} is empty" if logs else "no log"
        return f"the job was stopped as it started, with nothing to keep (no {STATUS_FILE}; {log})"
    if status["state"] == "complete":
        return f"its {STATUS_FILE} says complete, so the file was removed since; {resume_advice(run)} to write it again"
    phrase, advice = run_state(run, status)
    phrase = " ".join(phrase.split())
    if len(phrase) > REASON_CHARS:
        phrase = f"{phrase[:REASON_CHARS]}... (whole in its {STATUS_FILE})"
    return f"the job {phrase}: {rollouts_complete(status)}; {advice}"
