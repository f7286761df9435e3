"""The end of a ``recoworld run --multirun``: its sweep merged (:class:`MergeSweep`, the Hydra
callback ``hydra.callbacks.merge_sweep`` of ``conf/config.yaml``), and the sweeps that Hydra
began and did not end, after a job failed or Ctrl-C, ended by :func:`end_stopped_sweeps`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from recoworld.apps.merge_runs import METRICS_FILE, find_runs, unfinished_reason

# The merge itself (recoworld.apps.merge_writer) is imported where a sweep is merged or ended:
# it loads pandas, and `recoworld run` imports this module for every run, its --help and a
# refused override included.

logger = logging.getLogger("recoworld.merge")

#: The sweeps that Hydra began in this process and has not ended, by sweep directory, with
#: their callback and when they began: Hydra skips ``on_multirun_end`` when a job failed (its
#: sweeper raises the first failed job's error once the others have run) or the sweep was
#: interrupted.
_SWEEPS_BEGUN: dict[Path, tuple[MergeSweep, str, bool]] = {}  # callback, start, a Ray already up


class MergeSweep(Callback):
    """Hydra callback: at the end of a ``--multirun``, merge its sweep directory. A merge
    that fails is logged, not raised: the jobs' own results stand. A sweep that Hydra does
    not end (a job failed, or Ctrl-C) is ended by :func:`end_stopped_sweeps`."""

    def __init__(self, metric: str | None = None):
        self.metric = metric  # None: recoworld merge's default metric

    def on_multirun_start(self, config, **kwargs) -> None:
        from recoworld.apps.status import now

        _SWEEPS_BEGUN[Path(config.hydra.sweep.dir)] = (self, now(), _ray_running())

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _SWEEPS_BEGUN.pop(sweep_dir, None)
        self.merge(sweep_dir)

    def merge(self, sweep_dir: Path) -> bool:
        """Merge ``sweep_dir``; whether it was merged (why not is logged)."""
        from recoworld.apps.merge_writer import DEFAULT_METRIC, merge

        try:
            merge([sweep_dir], metric=DEFAULT_METRIC if self.metric is None else self.metric)
        except Exception as err:  # noqa: BLE001 - the jobs' results stand; `recoworld merge` can be run again
            logger.error(f"recoworld merge {sweep_dir}: {type(err).__name__}: {err}")
            return False
        return True


def end_stopped_sweeps(interrupted: bool, console=None) -> list[Path]:
    """End the sweeps that Hydra began in this process and did not end (``recoworld run``
    calls it when a ``--multirun`` stops on an error or Ctrl-C); returns their directories.

    A sweep in which a job failed is merged (each job that did not finish named with its
    state); an interrupted one is not, but its unfinished jobs are named with the rollouts each
    has complete, those whose process the launcher killed first (or, ``hydra/launcher=ray``,
    that stop as its Ray is shut down: :func:`_stop_launcher_jobs`) marked ``interrupted``
    (:func:`~recoworld.apps.run.rundir.record_interruptions`). Either way the last line says
    how to finish the sweep: the same command again with ``experiment.resume=true`` and its
    ``hydra.sweep.dir`` (each finished job is kept)."""
    if not _SWEEPS_BEGUN:
        return []  # a single run, or a sweep Hydra ended: nothing to load, nothing to say
    from rich.console import Console

    from recoworld.apps.merge_writer import say
    from recoworld.apps.run.rundir import finish_sweep, record_interruptions

    console = console or Console(stderr=True)
    stopped = []
    while _SWEEPS_BEGUN:
        sweep_dir, (callback, begun, ray_before) = _SWEEPS_BEGUN.popitem()
        stopped.append(sweep_dir)
        try:
            finished, unfinished = find_runs([sweep_dir])
        except FileNotFoundError:
            finished, unfinished = [], []
        if not finished and not unfinished:
            continue  # stopped before any job began (e.g. a sweep value Hydra refused): its error says why
        finish = f"finish it by {finish_sweep(sweep_dir)}"
        if interrupted:
            if not ray_before:
                _stop_launcher_jobs()
            record_interruptions(unfinished, since=begun)
            for run in unfinished:
                say(console, f"recoworld run: {run} has no {METRICS_FILE}: {unfinished_reason(run)}")
            say(console, f"recoworld run: the sweep in {sweep_dir} was interrupted with {len(finished)} job(s) "
                         f"finished and {len(unfinished)} not (named above; a job not begun has no folder); {finish}, "
                         f"or merge the finished ones with: recoworld merge {sweep_dir}")
            continue
        merged = callback.merge(sweep_dir)
        if unfinished:
            say(console, f"recoworld run: {len(unfinished)} job(s) of the sweep in {sweep_dir} did not finish: "
                         f"{', '.join(run.name for run in unfinished)} (named above with why)"
                         + ("; the others are merged in sweep.csv" if merged else "")
                         + f". Fix what failed, then {finish}")
    return stopped


def _stop_launcher_jobs() -> None:
    """Stop the jobs that ``hydra/launcher=ray`` runs as tasks of this process's Ray.

    Ctrl-C ends the launcher's wait, not its tasks: they would run on, named "still running",
    until Ray's exit hook killed them as the process ended, their runs left ``running``. Once
    Ray is shut down their processes have ended (a local Ray's; a cluster cancels the tasks
    of a driver that is gone), so :func:`~recoworld.apps.run.rundir.record_interruptions`
    marks their runs ``interrupted``. The Ray of ``experiment.executor=ray`` goes too. Only a
    Ray that started with the sweep is shut down (:func:`end_stopped_sweeps`): one already up
    (a notebook's) is its user's, and its tasks are named as they are.
    """
    if _ray_running():
        sys.modules["ray"].shutdown()


def _ray_running() -> bool:
    """Whether this process runs a Ray (never imported: joblib, the basic launcher, no Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()
