"""The folder of a robustness study, which keeps every finished world so that a stopped study resumes.

``recoworld robustness`` writes into its ``--out`` folder, as ``recoworld run`` writes its
run directory (:mod:`recoworld.apps.run.rundir`), nothing that looks finished but is not:

- ``status.json`` (:data:`STATUS_FILE`), written when the study starts and rewritten after
  each world, always whole (written beside it, then renamed: :func:`recoworld.logs.replacing`):

  - ``study``: ``"recoworld robustness"``, what the folder is;
  - ``state``: ``running``, ``failed`` (``error`` and ``error_type`` say why), ``interrupted``
    (Ctrl-C, or ``kill``: the command takes SIGTERM as Ctrl-C) or ``complete``; a study
    killed outright (SIGKILL, a lost machine) stays ``running`` with a ``pid`` that no
    longer lives;
  - ``worlds``: ``planned``, the worlds of :func:`~recoworld.apps.robustness.study.plan`,
    and ``finished``, those whose scores are kept;
  - ``settings``: what the study was started with and a resume repeats
    (:func:`settings_of`): every field of
    :class:`~recoworld.apps.robustness.study.RobustnessConfig`, the ``ranges`` and the Hydra
    ``overrides`` of the configured world;
  - ``world``: the configured world and the agents as composed
    (:meth:`~recoworld.apps.robustness.lineup.Lineup.identity`), which a resume must compose
    alike, less the keys a newer RecoWorld added at their default, which ``config_added``
    lists (as a resumed run's ``status.json`` does);
  - ``started``, ``updated``, ``finished`` (UTC, ISO 8601) of the latest attempt, ``pid``,
    ``host``, ``attempts`` (1, plus one per resume) and ``seconds``, the wall time of the
    attempts from their first world to their last finished one;
  - ``lock``: ``".status.json.lock"``, the file the study's process holds locked from its
    start to its end (:func:`~recoworld.apps.status.claim`); a study killed outright lets go
    of it with its process, and resumes at once whatever process took its ``pid`` since. A
    status without it was written by a release whose studies took no lock: while the process
    it names runs, the study is not resumed;
  - ``previous_attempts``: how each earlier attempt ended, oldest first, as a resumed run's
    ``status.json`` keeps them (:func:`~recoworld.apps.status.previous_attempts`: ``attempt``,
    ``state`` — ``failed``, ``interrupted``, or ``killed`` when it was left ``running`` —
    ``error``, ``error_type``, ``started``, ``finished``, ``updated``) and
    ``worlds_finished``, the worlds whose scores were kept when it ended; ``[]`` for a first
    attempt. ``state`` and ``error`` speak of the latest attempt only, so a resume that fails
    again keeps the earlier error here;
- ``scores/world-007.json``: one file per finished world, written whole when it finishes:
  its ``index`` in the plan, ``kind``, ``parameter``, ``values``, ``seeds``, each agent's
  score (``null`` for NaN) and ``seconds``; a stopped study loses the world in flight only;
- the report (:data:`~recoworld.apps.robustness.report.FILES`), written once every world
  has finished; the state turns ``complete`` after it.

A new study's folder is created whole, holding its first ``status.json``
(:func:`recoworld.logs.new_folder`: ``out-2`` if ``out`` was taken meanwhile). To resume,
:meth:`StudyDirectory.open` refuses a folder that is not a study's, a complete study and one
whose writer still runs; :meth:`StudyDirectory.begin` refuses a configured world that now
composes differently from the saved one, removes what a stopped attempt left (temporaries,
report files), marks the study running again and returns the scores of its finished worlds,
each checked against the plan. Scores read back bit for bit (JSON keeps every digit of a
float), so the resumed study's report is the uninterrupted one's.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from recoworld.apps.robustness.report import FILES
from recoworld.apps.robustness.space import ParameterRange, ParameterSpace
from recoworld.apps.robustness.study import RobustnessConfig, World
from recoworld.apps.run.checks import config_differences
from recoworld.apps.status import (LOCK_FILE, LOCK_KEY, STATES, STATUS_FILE, JobStatus, claim, job_running, now,
                                   older_writer_running, previous_attempts)
from recoworld.logs import TEMPORARY_SUFFIX, lock_path, new_folder, replacing, strict_json

SCORES = "scores"
STUDY = "recoworld robustness"


class StudyDirectoryError(ValueError):
    """The folder cannot take this study (the message names the folder and the fix)."""


def settings_of(config: RobustnessConfig, overrides: Sequence[str]) -> dict:
    """What a study was started with and a resume repeats, as JSON reads it back."""
    ranges = ParameterSpace(config.ranges).to_dict()
    return _as_json({**config.settings(), "ranges": ranges, "overrides": list(overrides)})


def config_of(settings: dict) -> tuple[RobustnessConfig, list[str]]:
    """The config and the overrides of :func:`settings_of`'s ``settings``."""
    settings = dict(settings)
    overrides = [str(o) for o in settings.pop("overrides")]
    ranges = {name: ParameterRange(**spec) for name, spec in settings.pop("ranges").items()}
    agents, seeds = tuple(settings.pop("agents")), tuple(settings.pop("seeds"))
    return RobustnessConfig(agents=agents, seeds=seeds, ranges=ranges, **settings), overrides


class StudyDirectory(JobStatus):
    """The folder of one study (module docstring); built by :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, status: dict):
        self.path = path
        self.status = status
        self._since = time.monotonic()  # the end of the last world recorded in this attempt

    @classmethod
    def create(cls, out: str | Path, settings: dict, world: dict, planned: int) -> StudyDirectory:
        """A new study's folder at ``out`` (or the next free name), marked running."""
        status = {"study": STUDY, "state": "running", "error": None, "error_type": None,
                  "worlds": {"planned": planned, "finished": 0}, "started": now(), "updated": now(),
                  "finished": None, "pid": os.getpid(), "host": socket.gethostname(), "attempts": 1,
                  "previous_attempts": [], "seconds": 0.0, "settings": settings, "world": _as_json(world),
                  LOCK_KEY: LOCK_FILE}
        lock = None
        try:
            with new_folder(out) as written:
                _write_json(written.folder / STATUS_FILE, status)
                # Locked before the folder takes its name, so that a --resume of it cannot take
                # it first: the lock is held on the file, which the rename moves with the folder.
                lock = claim(written.folder)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        # Where the name was taken during the block, the study went to the next free one.
        directory = cls(written.path, status)
        directory.lock = lock
        return directory

    @classmethod
    def open(cls, path: str | Path) -> StudyDirectory:
        """The stopped study in ``path``, to resume; nothing is written yet. The directory
        returned holds the folder's lock (:func:`~recoworld.apps.status.claim`) until it is
        released (``with`` it), so that two resumes started at once cannot both run it.

        A resume refused for what the folder holds leaves it as it was, with no lock file
        where it had none (:func:`~recoworld.apps.status.claim`); one refused later, for its
        settings or its world, leaves the (empty) lock file it took, as every study does.

        Raises:
            StudyDirectoryError: ``path`` is not a study's folder, holds a complete study,
                or is being written by a live process.
        """
        path = Path(path)
        if not path.is_dir():
            raise StudyDirectoryError(f"--resume {path}: no such folder; give the --out folder of a stopped study")
        if not (path / STATUS_FILE).is_file():
            raise StudyDirectoryError(_not_a_study(path))
        lock = claim(path, check=lambda: cls._resumable(path))
        if lock is None:
            raise StudyDirectoryError(f"--resume {path}: the study there is still being run by another process (it "
                                      f"holds {lock_path(path / STATUS_FILE)}); wait for it to finish, or stop it, "
                                      "and resume then")
        try:
            directory = cls(path, cls._resumable(path))
        except BaseException:
            lock.release()
            raise
        directory.lock = lock
        return directory

    @staticmethod
    def _resumable(path: Path) -> dict:
        """The status of the stopped study in ``path``, to resume; checked once this process
        holds the folder's lock, and before it too where the folder has no lock file yet."""
        status = _read_status(path)
        if status["state"] == "complete":
            raise StudyDirectoryError(f"--resume {path}: the study there is complete (its report: {path / 'report.md'})"
                                      "; nothing is left to run: start a new study with another --out")
        pid = status.get("pid")
        if older_writer_running(status):  # else killed, or its writer held the lock this process took
            raise StudyDirectoryError(f"--resume {path}: the study there is still being run by process {pid} "
                                      f"({STATUS_FILE}); wait for it to finish, or stop it (Ctrl-C, or kill {pid}) "
                                      "and resume then")
        return status

    @property
    def settings(self) -> tuple[RobustnessConfig, list[str]]:
        """The config and the overrides the study was started with."""
        return config_of(self.status["settings"])

    def begin(self, world: dict, plan: Sequence[World],
              default: Callable[[], dict | None] | None = None) -> dict[int, dict[str, float]]:
        """Resume the study in ``world`` (its identity, module docstring) over ``plan``; returns
        the scores of the finished worlds by index in ``plan``, which are not run again.
        ``default`` gives the identity of the configured world without the values its
        overrides set: a key that a newer RecoWorld added since the study began may take its
        default, as a resumed run's may; ``status.json``'s ``config_added`` then lists it."""
        differences, added = config_differences(self.status["world"], _as_json(world),
                                                (lambda: _as_json(default())) if default is not None else None)
        if differences:
            more = f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
            raise StudyDirectoryError(
                f"the configured world of the study in {self.path} composes differently now ("
                f"{'; '.join(differences[:5])}{more}): RecoWorld or its configs changed since the study began, and its "
                "finished worlds ran in the saved one; finish it with the RecoWorld that began it, or start a new "
                "study with another --out")
        finished = self._finished(plan)
        # Report files are written only when all worlds have run: any here are stale.
        for name in FILES:
            (self.path / name).unlink(missing_ok=True)
        for temporary in self.path.rglob(f".*{TEMPORARY_SUFFIX}"):  # left by a killed writer
            temporary.unlink(missing_ok=True)
        earlier = previous_attempts(self.status, worlds_finished=self.status["worlds"]["finished"])
        self.status.update(state="running", error=None, error_type=None, started=now(), finished=None,
                           pid=os.getpid(), host=socket.gethostname(), attempts=self.status["attempts"] + 1,
                           previous_attempts=earlier, config_added={**self.status.get("config_added", {}), **added})
        self.status["worlds"].update(planned=len(plan), finished=len(finished))
        self._since = time.monotonic()
        self._save()
        return finished

    def record(self, index: int, world: World, scores: dict[str, float]) -> None:
        """World ``index`` of the plan has finished with ``scores``: keep them."""
        now = time.monotonic()
        seconds = round(now - self._since, 3)
        (self.path / SCORES).mkdir(exist_ok=True)
        _write_json(self.path / SCORES / f"world-{index:03d}.json",
                    {"index": index, **_as_json(asdict(world)), "scores": scores, "seconds": seconds})
        self.status["worlds"]["finished"] += 1
        self.status["seconds"] = round(self.status["seconds"] + seconds, 3)
        self._since = now
        self._save()

    @property
    def seconds(self) -> float:
        """Wall time of the study's attempts (module docstring), this one up to now."""
        return round(self.status["seconds"] + time.monotonic() - self._since, 3)

    @property
    def progress(self) -> str:
        worlds = self.status["worlds"]
        return f"{worlds['finished']} of {worlds['planned']} worlds finished"

    def _ending(self) -> None:
        self.status["seconds"] = self.seconds

    def _finished(self, plan: Sequence[World]) -> dict[int, dict[str, float]]:
        finished = {}
        for file in sorted((self.path / SCORES).glob("world-*.json")):
            try:
                saved = json.loads(file.read_text())
                index = saved["index"]
                scores = {str(a): math.nan if s is None else float(s) for a, s in saved["scores"].items()}
                world = {key: saved[key] for key in ("kind", "values", "seeds", "parameter")}
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise StudyDirectoryError(f"{file} is not a finished world's scores ({error}); it was edited or "
                                          "written by something else: remove it to run that world again") from None
            planned = _as_json(asdict(plan[index])) if isinstance(index, int) and 0 <= index < len(plan) else None
            if world != planned:
                raise StudyDirectoryError(
                    f"{file} holds world {world}, but world {index} of the study's plan is {planned}: the worlds "
                    "were drawn differently than when the study began (another SciPy?); start a new study with "
                    "another --out")
            finished[index] = scores
        return finished


def held_study(path: str | Path) -> str | None:
    """What a new study's ``--out`` says instead of starting where ``path`` holds a study that
    has not completed, else ``None``: ``"an interrupted study (3 of 23 worlds finished);
    continue it with --resume PATH"``. A study left ``running`` is named as still run by its
    process (and its host, where that is another machine sharing the folder) while one holds
    the folder, else as killed (its process ended without a word)."""
    try:
        status = _read_status(Path(path))
    except (StudyDirectoryError, OSError):
        return None
    state = status["state"]
    if state == "complete":
        return None
    worlds = status.get("worlds", {})
    progress = f"{worlds.get('finished')} of {worlds.get('planned')} worlds finished"
    if state == "running" and job_running(Path(path), status):
        # A lock is held across machines on a shared file system: there, kill PID is no advice.
        host = status.get("host")
        where = "" if host in (None, socket.gethostname()) else f" on {host}"
        return (f"a study still being run by process {status.get('pid')}{where} ({progress}); wait for it to finish, "
                f"or stop it (Ctrl-C, or kill {status.get('pid')}{where}) and continue it with --resume {path}")
    if state == "running":
        state = "killed"  # as previous_attempts names such an ending
    article = "an" if state[0] in "aeiou" else "a"
    return f"{article} {state} study ({progress}); continue it with --resume {path}"


def _read_status(path: Path) -> dict:
    file = path / STATUS_FILE
    status = None
    try:
        status = json.loads(file.read_text())
        missing = [key for key in ("study", "state", "settings", "world", "worlds", "attempts", "seconds")
                   if key not in status]
        if missing or status["study"] != STUDY or status["state"] not in STATES:
            raise ValueError(f"lacks {missing}" if missing else f"study {status['study']!r}, state {status['state']!r}")
        config_of(status["settings"])
        return status
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        why = error
    if isinstance(status, dict) and "parts" in status:
        raise StudyDirectoryError(_a_run_directory(path))
    raise StudyDirectoryError(f"--resume {path}: {file} is not the status of a robustness study ({why}); it was "
                              "edited or written by something else: give the --out folder of a stopped study")


def _not_a_study(path: Path) -> str:
    """Why ``--resume path``, a folder without a ``status.json``, is refused: it is no study's,
    and may be a ``recoworld run --multirun``'s sweep directory (its ``multirun.yaml``)."""
    from recoworld.apps.run.rundir import MULTIRUN_FILE, rerun_sweep

    if (path / MULTIRUN_FILE).is_file():
        return (f"--resume {path} is the sweep directory of a recoworld run --multirun (it holds {MULTIRUN_FILE}), not "
                f"a robustness study's folder; to finish the sweep, {rerun_sweep(path)}")
    return (f"--resume {path} holds no {STATUS_FILE}: it is not the folder of a robustness study; give the --out "
            "folder of a stopped study")


def _a_run_directory(path: Path) -> str:
    """Why ``--resume path``, the folder of a ``recoworld run``, is refused, and how that run
    is finished: into the folder as ``hydra.run.dir``, or, for a job of a sweep, by the
    sweep's command with its ``hydra.sweep.dir`` (``hydra.run.dir`` does nothing in a sweep)."""
    from recoworld.apps.run.rundir import rerun_sweep, resume_into, sweep_of

    sweep = sweep_of(path)
    if sweep is None:
        return (f"--resume {path} is a recoworld run directory, not a robustness study's folder; finish a run with "
                f"{resume_into(path)}")
    return (f"--resume {path} is the folder of a job of the recoworld run --multirun in {sweep}, not a robustness "
            f"study's folder; to finish that sweep, {rerun_sweep(sweep)}")


def _write_json(path: Path, tree: dict) -> None:
    with replacing(path) as temporary:
        temporary.write_text(json.dumps(strict_json(tree), indent=1) + "\n")


def _as_json(tree):
    """``tree`` as JSON reads it back (tuples as lists, NaN as null): what a saved copy is compared with."""
    return json.loads(json.dumps(strict_json(tree)))


