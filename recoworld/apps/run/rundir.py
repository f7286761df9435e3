"""A run directory that never holds a file that looks complete but is not.

``recoworld run`` writes its outputs (:mod:`recoworld.apps.run.runner`) through a
:class:`RunDirectory`:

- ``status.json`` (:data:`STATUS_FILE`), written when the run starts and rewritten at each
  change, always whole (written beside it, then renamed):

  - ``state``: ``running``, ``failed``, ``interrupted`` (Ctrl-C or ``kill``: SIGINT or
    SIGTERM) or ``complete``; a run killed outright (SIGKILL, a lost machine) stays
    ``running`` with a ``pid`` that no longer lives, unless it was a job of a sweep
    interrupted with Ctrl-C whose launcher killed it (:func:`record_interruptions`);
  - ``error`` and ``error_type``: why a failed run failed (``null`` otherwise); a run whose
    disk is too full even for this file keeps ``running``, and its error is logged;
  - ``parts``: ``planned``, the number of rollouts of the run; ``complete``, one record per
    finished rollout (``agent``, ``seed``, ``segment``, its ``file``, ``rows``, ``seconds``
    and the simulator's counters); ``current``, the file of the rollout in flight (a run
    that stops deletes it, even when it had taken its name but was not yet recorded);
  - ``started``, ``updated``, ``finished`` (UTC, ISO 8601), ``pid``, ``host``, and
    ``attempts``: 1, plus one per resume (and per rerun of the same config into a folder whose
    run failed before any rollout completed);
  - ``lock``: ``".status.json.lock"``, the file its writer holds locked (below); a status
    without it was written by a release whose runs took no lock;
  - ``previous_attempts``: how each earlier attempt ended, oldest first
    (:func:`~recoworld.apps.status.previous_attempts`: ``attempt``, ``state`` — ``failed``,
    ``interrupted``, ``complete``, or ``killed`` when it was left ``running`` — ``error``,
    ``error_type``, ``started``, ``finished``, ``updated``) and ``rollouts_complete``, the
    rollouts complete when it ended; ``[]`` for a first attempt. ``state`` and ``error`` speak
    of the latest attempt only, so a resume that fails again keeps the earlier error here;
  - ``sweep``: the sweep directory (``hydra.sweep.dir``, absolute) of the ``--multirun`` whose
    job this attempt is, ``null`` for a single run: what tells a job's folder from a single
    run's wherever it lies (:func:`sweep_of`);
  - ``config``: what a resumed run must repeat (:func:`~recoworld.apps.run.checks.run_identity`);
  - ``config_added``: the keys (dotted) that a newer RecoWorld added to the config since the
    run began, with the defaults its resumes took (``{}`` when none);
  - ``results_attempt``: the attempt whose ``metrics.json``, ``lineup.yaml`` and plots the
    folder holds, ``null`` when it holds none: a resume of a complete run keeps them (its
    parts are seeded, so their rows are the same) until it writes its own, and a resume that
    fails leaves them readable, under the earlier attempt's number;
- ``episodes/agent=<agent>/seed=<seed>.parquet``: one part of the log per rollout
  (:class:`Part`), written under a hidden temporary name and renamed when the rollout ends
  (:class:`recoworld.logs.EpisodeLog`), so a killed run loses the rollout in flight only;
- ``metrics.json``, ``lineup.yaml`` and the plots, each written whole
  (:meth:`RunDirectory.replacing`); ``metrics.json`` and the plots only once every part is
  complete, and the state turns ``complete`` after them;
- ``.status.json.lock``: the lock (:func:`~recoworld.apps.status.claim`) that the run's
  process holds from :meth:`RunDirectory.start` to its end (release it with
  :meth:`~recoworld.apps.status.JobStatus.release`, or use the directory as a context
  manager), so that a second run started into the folder at the same instant is refused as
  one that finds a running run; the system releases it when the process dies, so a killed
  run resumes at once, whatever process took its ``pid`` since. The empty file stays (deleting
  it could let two runs in: :mod:`recoworld.apps.status`), but a run refused for what the
  folder holds creates none.

:meth:`RunDirectory.start` opens a folder for a run: a folder that holds results (a
complete part, ``metrics.json``, or a log of an earlier release) is refused unless the run
resumes (``experiment.resume=true``); a resumed run keeps the parts ``status.json`` lists as
complete that are still whole on disk and runs the others, provided its config repeats the
saved one: a key that the saved config lacks (a newer RecoWorld added it) may only take its
default, and is then listed in ``config_added`` and logged. A folder whose run failed before
any rollout completed is simply run again: as a further attempt at that run when the config
is the same, else as a new run (``attempts`` 1, no ``previous_attempts``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shlex
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from recoworld.apps.run.checks import ExperimentConfigError, config_differences
from recoworld.apps.status import (STATES, STATUS_FILE, JobStatus, claim, job_running, now, older_writer_running,
                                   previous_attempts)
from recoworld.logs import TEMPORARY_SUFFIX, lock_path, replacing, temporary_path

#: Files a complete run adds last. When its run starts again, an earlier attempt's copies are
#: removed, unless that attempt completed (``results_attempt``): those stay until replaced.
FINAL_OUTPUTS = ("metrics.json", "returns.png", "learning.png", "retention.png")
#: The single-file log of releases before logs were written in parts.
LEGACY_LOG = "episodes.parquet"
RESUME_FLAG = "experiment.resume=true"
#: What Hydra's sweeper writes into a sweep's directory (``hydra.sweep.dir``), above its jobs' folders.
MULTIRUN_FILE = "multirun.yaml"
log = logging.getLogger(__name__)


class RunDirectoryError(ExperimentConfigError):
    """The run directory cannot take this run (the message names the folder and the fix)."""


@dataclass(frozen=True)
class Part:
    """One rollout of a run: an agent of the lineup over a seed, on the whole population or
    on one of ``experiment.segments``."""

    agent: str
    seed: int
    segment: str | None = None

    @property
    def file(self) -> str:
        """Its log's path in the run directory (names are percent-encoded for the file system)."""
        folder = "" if self.segment is None else f"segments/{quote(self.segment, safe='')}/"
        return f"{folder}episodes/agent={quote(self.agent, safe='')}/seed={self.seed}.parquet"

    def record(self, **fields) -> dict:
        return {"agent": self.agent, "seed": self.seed, "segment": self.segment, "file": self.file, **fields}


class RunDirectory(JobStatus):
    """The run directory of one run (see the module's docstring); built by :meth:`start`."""

    def __init__(self, path: Path, status: dict, redact: Callable[[str], str]):
        self.path = path
        self.status = status
        self._redact = redact
        self._written: set[str] = set()  # the files this attempt wrote (:meth:`replacing`)

    # ------------------------------------------------------------------ opening
    @classmethod
    def start(cls, path: str | Path, config: dict, plan: Sequence[Part], resume: bool,
              redact: Callable[[str], str] = str, default: Callable[[], dict | None] | None = None
              ) -> RunDirectory:
        """Open ``path`` for a run of ``plan`` with ``config`` (its identity) and mark it running.
        The directory returned holds the folder's lock until it is released (``with`` it).

        Args:
            resume: keep the complete parts of the run already there (its config must
                equal ``config``, less the keys it lacks that take their default); without
                it, a folder holding results is refused.
            redact: applied to error messages before they are saved.
            default: gives the identity of this run's config with no value set on the
                command line (``None`` if unknown), to tell the keys added since the saved
                run that take their default; called only when there are such keys.

        Raises:
            RunDirectoryError: the folder holds results and ``resume`` is false, holds
                results but no ``status.json``, holds a run of another config, or is being
                written by a live process (one that holds its lock, or the process that a
                status of a release before the lock names).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps(config))  # compared with the saved copy, as JSON reads back
        lock = claim(path, check=lambda: cls._examine(path, config, resume, default))
        if lock is None:  # another process started a run here, maybe in this very instant
            _refuse_live_writer(path, _readable_status(path), locked=True)
        try:
            directory = cls._open(path, config, plan, resume, redact, default)
        except BaseException:
            lock.release()
            raise
        directory.lock = lock
        return directory

    @classmethod
    def _open(cls, path: Path, config: dict, plan: Sequence[Part], resume: bool, redact: Callable[[str], str],
              default: Callable[[], dict | None] | None) -> RunDirectory:
        """:meth:`start`, in a folder whose lock this process holds."""
        saved, kept, added, results = cls._examine(path, config, resume, default)
        planned = {part.file for part in plan}
        kept = [r for r in kept if r["file"] in planned]
        continued = saved is not None and bool(kept or results is not None or saved["config"] == config)
        if not continued:
            results = None
        _remove_leftovers(path, earlier_run=saved is not None and results is None)
        attempts = saved["attempts"] + 1 if continued else 1
        if kept and added:
            log.info("resuming the run in %s with keys its config lacked (RecoWorld added them since), at their "
                     "defaults: %s", path, ", ".join(f"{key}={value!r}" for key, value in added.items()))
        added = {**saved.get("config_added", {}), **added} if kept else {}
        status = {"state": "running", "error": None, "error_type": None,
                  "parts": {"planned": len(plan), "complete": kept, "current": None},
                  "started": now(), "updated": now(), "finished": None,
                  "pid": os.getpid(), "host": socket.gethostname(), "attempts": attempts,
                  "previous_attempts": [], "sweep": _this_sweep(), "config": config, "config_added": added,
                  "results_attempt": results}
        if continued:  # before this attempt: the parts the last one had finished
            status["previous_attempts"] = previous_attempts(saved, rollouts_complete=len(saved["parts"]["complete"]))
        directory = cls(path, status, redact)
        directory._save()
        return directory

    @staticmethod
    def _examine(path: Path, config: dict, resume: bool, default: Callable[[], dict | None] | None
                 ) -> tuple[dict | None, list[dict], dict, int | None]:
        """What :meth:`start` keeps of the folder ``path`` for a run of ``config`` (as JSON reads
        it back): ``(its saved status, the complete parts whole on disk, the keys added since
        at their default, the attempt whose results are kept)``; raises
        :class:`RunDirectoryError` when the run may not start there. Writes nothing."""
        saved = read_status(path)
        kept: list[dict] = []
        added: dict = {}
        results = None  # the attempt whose metrics.json is kept while this one runs
        if saved is None:
            found = _results_without_status(path)
            if found:
                raise RunDirectoryError(f"{path} holds results ({', '.join(found)}) but no {STATUS_FILE}: it is "
                                        f"not a run of this RecoWorld and cannot be resumed; {another_folder()}")
        else:
            _refuse_live_writer(path, saved)
            kept = [r for r in saved["parts"]["complete"] if part_damage(path, r) is None]
            stale = _parts_on_disk(path) - {r["file"] for r in kept}
            results = _results_attempt(saved)
            if kept or results is not None or stale:
                as_saved = None if default is None else lambda: json.loads(json.dumps(default()))
                added = _check_resumable(path, saved, config, kept, resume, as_saved)
        return saved, kept, added, results

    # ------------------------------------------------------------------ parts
    def completed(self, part: Part) -> dict | None:
        """The record of ``part`` if it is complete, else ``None``."""
        return next((r for r in self.status["parts"]["complete"] if r["file"] == part.file), None)

    def begin(self, part: Part) -> Path:
        """Mark ``part`` in flight; returns the path its log is written to."""
        self.status["parts"]["current"] = part.file
        self._save()
        return self.path / part.file

    def record(self, part: Part, rows: int, seconds: float, simulator: dict, kernels: dict | None = None,
               agent_stats: dict | None = None) -> None:
        """``part``'s log is complete under its name: list it with what metrics need of it
        (``kernels``: which kernels stepped it, ``SlateVectorEnv.kernels``; ``agent_stats``:
        the agent's counters, :meth:`~recoworld.agents.base.Recommender.stats`)."""
        complete = [r for r in self.status["parts"]["complete"] if r["file"] != part.file]
        complete.append(part.record(rows=int(rows), seconds=round(float(seconds), 3), simulator=simulator,
                                    kernels=kernels or {}, agent_stats=agent_stats or {}))
        self.status["parts"].update(complete=complete, current=None)
        self._save()

    @property
    def progress(self) -> str:
        return rollouts_complete(self.status)

    # ------------------------------------------------------------------ ending
    def complete(self) -> None:
        """Every part is complete and this attempt wrote the results: the final outputs of an
        earlier attempt that it did not write (plots, where this one has
        ``experiment.plots=false``) go, and ``results_attempt`` names this attempt."""
        if self.status["results_attempt"] is not None:  # else a file of that name is not the run's
            for name in FINAL_OUTPUTS:
                if name not in self._written:
                    (self.path / name).unlink(missing_ok=True)
        self.status["results_attempt"] = self.status["attempts"]
        super().complete()

    def _end(self, state: str, error: BaseException | None) -> None:
        try:
            super()._end(state, error)
        except OSError as unsaved:
            if state == "complete":
                raise
            # A full disk that stopped the run can refuse its status too: the run's own error (or
            # Ctrl-C) is the one to see. status.json then keeps `running`, which reads as a run
            # that was killed, and resumes as one.
            log.error("could not record in %s that the run is %s (%s); it still says running", self.path / STATUS_FILE,
                      state, unsaved)

    def _ending(self) -> None:
        current = self.status["parts"]["current"]
        if current is not None:
            # Stopped after the part's log took its name but before it was recorded (while its
            # env closed, say): unlisted, it would be a file the status does not explain, and a
            # resume runs the part again anyway.
            (self.path / current).unlink(missing_ok=True)
            # And its log's temporary, where the stop came as the log was being opened, before
            # the rollout's own clean-up (EpisodeLog's) could take charge of it.
            temporary_path(self.path / current).unlink(missing_ok=True)
        self.status["parts"]["current"] = None

    def _error_text(self, error: BaseException) -> str:
        return self._redact(str(error) or repr(error))

    # ------------------------------------------------------------------ files
    @contextmanager
    def replacing(self, name: str) -> Iterator[Path]:
        """A temporary path to write ``name`` (relative to the run directory) to; it takes
        the name when the block ends without error, and is deleted otherwise."""
        with replacing(self.path / name) as temporary:
            yield temporary
        self._written.add(name)

    def write_text(self, name: str, text: str) -> None:
        with self.replacing(name) as temporary:
            temporary.write_text(text)



#: Why a write fails that no rerun fixes until a person frees space or makes the folder writable.
UNWRITABLE = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space under your disk quota",
              errno.EROFS: "make that file system writable"}


def unwritable(error: OSError, path: Path, progress: str | None) -> RunDirectoryError | None:
    """What to tell the user of a run in ``path`` that ``error`` stopped, when it is a full disk,
    a spent quota or a read-only file system (``None`` for any other error): the cause, the file
    if known, and how to finish the run; ``progress`` says what is kept (``None``: the run
    directory could not be opened)."""
    fix = UNWRITABLE.get(error.errno)
    if fix is None:
        return None
    where = f" writing {error.filename}" if error.filename else ""
    kept = "" if progress is None else f" ({progress}, kept)"
    return RunDirectoryError(f"{os.strerror(error.errno)}{where}: the run in {path} stopped{kept}; {fix}, then "
                             f"{how_to_finish(path)}")


def record_interruptions(paths: Sequence[str | Path], since: str, wait_s: float = 3.0) -> list[Path]:
    """Mark ``interrupted`` the runs in ``paths`` that a sweep's Ctrl-C stopped in processes its
    launcher then killed before they could say so (``hydra/launcher=joblib`` ends its workers
    with SIGKILL when its own process gets the Ctrl-C); the sweep's process calls it. Such a run's
    ``status.json`` says ``running`` on this machine since ``since`` (the sweep's start, as
    :func:`~recoworld.apps.status.now` writes it) or later, and its writer has ended (within
    ``wait_s`` seconds: a killed worker may not be reaped yet). Any other run is left as it
    is: one that records its own ending, one still running, one of another machine, or one
    killed before this sweep began. Returns the runs marked."""
    deadline = time.monotonic() + wait_s
    marked = []
    for path in map(Path, paths):
        saved = _readable_status(path)
        if not _stopped_by_this_sweep(saved, since):
            continue
        while job_running(path, saved) and time.monotonic() < deadline:
            time.sleep(0.05)
            saved = _readable_status(path)
        lock = claim(path) if _stopped_by_this_sweep(saved, since) else None
        if lock is None:  # not this sweep's, or a resume has just taken the folder
            continue
        with RunDirectory(path, _readable_status(path), str) as directory:
            directory.lock = lock
            if _stopped_by_this_sweep(directory.status, since) and not older_writer_running(directory.status):
                directory.interrupted()
                marked.append(path)
    return marked


def _readable_status(path: Path) -> dict | None:
    try:
        return read_status(path)
    except RunDirectoryError:  # damaged: not ours to rewrite
        return None


def _stopped_by_this_sweep(saved: dict | None, since: str) -> bool:
    return (saved is not None and saved["state"] == "running" and saved.get("host") == socket.gethostname()
            and str(saved.get("started")) >= since)


def another_folder() -> str:
    """The advice to start afresh in another folder, for a run refused the one it was given:
    another ``hydra.run.dir``, or in a ``--multirun`` another ``hydra.sweep.dir`` (its jobs'
    folders are below it; ``hydra.run.dir`` does nothing there)."""
    if _sweep_dir() is not None:
        return "choose another hydra.sweep.dir for a new sweep"
    return "choose another hydra.run.dir for a new run"


def how_to_finish(path: str | Path, run: str = "it") -> str:
    """The advice to finish the unfinished run in ``path`` (``run`` names it): ``experiment.resume=true``
    into that folder, given as ``hydra.run.dir`` (:func:`resume_into`); or, for a job of a
    ``--multirun``, the sweep's command again with ``experiment.resume=true`` and its
    ``hydra.sweep.dir`` (:func:`finish_sweep`): ``hydra.run.dir`` does nothing in a multirun, and
    the job's folder alone, run as a single run, would need that job's own overrides repeated."""
    sweep = _sweep_dir()
    if sweep is None:
        return f"finish {run} with {resume_into(path)}"
    return f"finish the sweep by {finish_sweep(sweep)}"


def resume_into(path: str | Path) -> str:
    """The overrides that resume the single run in ``path``: ``experiment.resume=true
    hydra.run.dir=PATH``, the folder absolute. Its command alone does not find the run: the
    default ``hydra.run.dir`` (``outputs/${now:...}``) names a new folder at each start, and a
    relative one is the launch folder's. Given after a ``hydra.run.dir`` the command has, it
    overrides that one (Hydra takes the last value of a key). The folder is quoted where it
    must be (:func:`_folder_override`)."""
    return f"{RESUME_FLAG} {_folder_override('hydra.run.dir', Path(path).resolve())}"


def _folder_override(key: str, folder: str | Path) -> str:
    """The override ``key=FOLDER`` as advice gives it: a folder that Hydra's override grammar or
    a shell would misread (a space, a comma: a sweep) is quoted for both, so that it can be
    pasted as it is."""
    folder = str(folder)
    if not _PLAIN_VALUE.fullmatch(folder):
        # Hydra's quoted string: a backslash escapes only a quote, or the backslashes before one.
        folder = '"' + re.sub(r'(\\*)("|$)', lambda m: m[1] * 2 + ("\\" + m[2] if m[2] else ""), folder) + '"'
    return shlex.quote(f"{key}={folder}")


#: A value that Hydra's override grammar reads as it is, unquoted.
_PLAIN_VALUE = re.compile(r"[\w/.+:%@-]+", re.ASCII)


def finish_sweep(sweep: str | Path) -> str:
    """How to finish the sweep in ``sweep``, as its stopped jobs and its last line
    (:func:`~recoworld.apps.merge_multirun.end_stopped_sweeps`) say it."""
    return (f"running the same command again with {RESUME_FLAG} {_folder_override('hydra.sweep.dir', sweep)} (each "
            "job that finished is kept)")


def rerun_sweep(sweep: str | Path) -> str:
    """How to finish the sweep in ``sweep`` where the command at hand is not the sweep's (a
    job's advice read later, by ``recoworld merge`` or ``view``, or another command's): the
    sweep's command again, with ``experiment.resume=true`` and its ``hydra.sweep.dir``."""
    return f"rerun the sweep's command with {RESUME_FLAG} {_folder_override('hydra.sweep.dir', sweep)}"


def sweep_of(path: str | Path) -> Path | None:
    """The sweep directory, absolute, of the ``--multirun`` whose job ran in ``path``, ``None``
    for a single run's folder: what the folder says of it once its process has ended
    (:func:`_sweep_dir` is the job's own).

    Its ``status.json``'s ``sweep`` says, written by the run itself: ``null`` for a single run
    (even one whose folder lies in an old sweep's), else the sweep directory, while it still
    holds the job. A status without the key (a run of an earlier release), or a sweep moved
    since, leaves it to the job's ``.hydra/hydra.yaml`` (its ``hydra.mode`` and
    ``hydra.sweep.dir``), not a ``multirun.yaml`` that a folder above a single run may hold
    from an earlier sweep. A job without that file (``hydra.output_subdir=null``), or whose
    ``hydra.sweep.dir`` was kept unresolved (``multirun/${now:...}``), is then a sweep's where
    its parent holds the sweep's ``multirun.yaml``: Hydra's default subdir is the job's number."""
    job = Path(path).resolve()
    saved = _readable_status(job) or {}
    recorded = saved.get("sweep")
    if "sweep" in saved and recorded is None:
        return None
    if isinstance(recorded, str) and job.is_relative_to(recorded):
        return Path(recorded)
    return _sweep_in_hydra_files(job)


def _sweep_in_hydra_files(job: Path) -> Path | None:
    """:func:`sweep_of` from the job's Hydra files alone, for a folder whose status does not say."""
    hydra = _hydra_settings(job)
    if hydra is None:
        return _parent_sweep(job)
    if hydra.get("mode") != "MULTIRUN":
        return None
    sweep = str((hydra.get("sweep") or {}).get("dir") or "")
    if not sweep or "${" in sweep:
        return _parent_sweep(job)
    # A relative sweep.dir is the launch's working directory's, which Hydra records. A sweep
    # moved (or copied) since is no longer there: its jobs' own place tells it then.
    recorded = (Path((hydra.get("runtime") or {}).get("cwd") or job) / sweep).resolve()
    return recorded if job.is_relative_to(recorded) else _parent_sweep(job)


def _hydra_settings(job: Path) -> dict | None:
    """The ``hydra`` node of the job's ``.hydra/hydra.yaml``, unresolved; ``None`` where it has
    none or it cannot be read as one."""
    import yaml

    try:
        settings = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # missing or unreadable: the parent decides
        return None
    hydra = settings.get("hydra") if isinstance(settings, dict) else None
    return hydra if isinstance(hydra, dict) else None


def _parent_sweep(job: Path) -> Path | None:
    return job.parent if (job.parent / MULTIRUN_FILE).is_file() else None


def _sweep_dir() -> Path | None:
    """The ``hydra.sweep.dir`` of the ``--multirun`` whose job this is, ``None`` outside one (a
    single run, or Python that calls the runner itself)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return None


def _this_sweep() -> str | None:
    """:func:`_sweep_dir`, absolute, as ``status.json`` keeps it: a relative one is the launch
    folder's (Hydra's ``runtime.cwd``), which a job under ``hydra.job.chdir=true`` has left."""
    sweep = _sweep_dir()
    if sweep is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    return str((Path(HydraConfig.get().runtime.cwd) / sweep).resolve())


def rollouts_complete(status: dict) -> str:
    """What a run whose ``status.json`` is ``status`` has kept: ``"1 of 4 rollouts complete"``."""
    parts = status["parts"]
    return f"{len(parts['complete'])} of {parts['planned']} rollouts complete"


def read_status(path: str | Path) -> dict | None:
    """The ``status.json`` of run directory ``path``, or ``None`` if it has none."""
    file = Path(path) / STATUS_FILE
    if not file.is_file():
        return None
    try:
        status = json.loads(file.read_text())
        if status["state"] not in STATES or not isinstance(status["parts"]["complete"], list):
            raise ValueError(f"state {status['state']!r}, parts {status['parts']!r}")
    except (ValueError, KeyError, TypeError) as err:
        raise RunDirectoryError(f"{file} is not a run's status ({err}); it was edited or written by something "
                                f"else: {another_folder()}") from None
    return status


def _check_resumable(path: Path, saved: dict, config: dict, kept: list[dict], resume: bool,
                     default: Callable[[], dict | None] | None) -> dict:
    """The keys the saved config lacks that take their default (see :func:`config_differences`);
    raises :class:`RunDirectoryError` when the run may not resume."""
    if not resume:
        raise RunDirectoryError(
            f"{path} already holds results of a run ({STATUS_FILE}: {saved['state']}, {len(kept)} of "
            f"{saved['parts']['planned']} rollouts complete); pass {RESUME_FLAG} to finish it (its complete "
            f"rollouts are kept), or {another_folder()}")
    differences, added = config_differences(saved["config"], config, default)
    if differences:
        raise RunDirectoryError(
            f"{RESUME_FLAG}, but this config differs from the run in {path} at: {'; '.join(differences)}; resume "
            f"with the saved config ({STATUS_FILE}'s config), or {another_folder()}")
    return added


def _refuse_live_writer(path: Path, saved: dict | None, locked: bool = False) -> None:
    """Refuse a folder that a live process writes: any where ``locked`` (another process holds
    its lock, :func:`~recoworld.apps.status.claim`), or one whose ``saved`` status, written by
    a release whose runs took no lock, names a process that runs
    (:func:`~recoworld.apps.status.older_writer_running`)."""
    running = saved is not None and older_writer_running(saved)
    if not (running or locked):  # a killed run: its complete parts can be resumed
        return
    holder = f"pid {saved['pid']}, {STATUS_FILE}" if running else f"it holds {lock_path(path / STATUS_FILE)}"
    raise RunDirectoryError(f"{path} is being written by a running process ({holder}); wait for it or stop it, "
                            "then resume with " + RESUME_FLAG)


def _results_attempt(saved: dict) -> int | None:
    """The attempt whose results (``metrics.json``, ``lineup.yaml``, the plots) the run that
    ``saved`` describes holds: its last complete one, kept while later attempts run."""
    if "results_attempt" in saved:
        return saved["results_attempt"]
    return saved["attempts"] if saved["state"] == "complete" else None  # a status of an earlier release


def part_damage(path: Path, record: dict) -> str | None:
    """Why the part of ``record`` (an entry of ``status.json``'s complete parts) is not whole
    on disk in the run directory ``path``, or ``None`` if it is: its file exists, is whole
    Parquet and holds the rows recorded."""
    try:
        rows = pq.read_metadata(path / record["file"]).num_rows
    except FileNotFoundError:
        return f"{record['file']} is missing"
    except (OSError, pa.ArrowException):
        return f"{record['file']} is not whole Parquet"
    return None if rows == record["rows"] else f"{record['file']} holds {rows} rows, not the {record['rows']} recorded"


def _parts_on_disk(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for folder in ("episodes", "segments") for p in
            (path / folder).rglob("*.parquet")}


def _results_without_status(path: Path) -> list[str]:
    found = [name for name in (LEGACY_LOG, *FINAL_OUTPUTS[:1]) if (path / name).exists()]
    return found + sorted(_parts_on_disk(path))[:3]


def _remove_leftovers(path: Path, earlier_run: bool) -> None:
    """Outputs of an earlier attempt that the new one writes again: final outputs (stale
    until every part is complete; only where ``earlier_run``, a ``status.json`` says a run
    wrote them) and temporary files of killed writers, where a run writes: beside
    ``status.json`` and below ``episodes/`` and ``segments/``. Nothing else is touched: a
    folder given as ``hydra.run.dir`` may hold other runs (``hydra.run.dir=outputs``), whose
    parts in flight are temporaries too, or a person's own files."""
    if earlier_run:
        for name in FINAL_OUTPUTS:
            (path / name).unlink(missing_ok=True)
    pattern = f".*{TEMPORARY_SUFFIX}"
    temporaries = [*path.glob(pattern), *(path / "episodes").rglob(pattern), *(path / "segments").rglob(pattern)]
    for temporary in temporaries:
        temporary.unlink(missing_ok=True)
