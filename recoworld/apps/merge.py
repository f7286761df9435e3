"""``recoworld merge DIR...``: the runs of a sweep in one table, with intervals across seeds,
and a sweep plot.

    recoworld run --multirun env.reward=clicks,mix 'experiment.seeds=[0,1],[2,3]'
    recoworld merge multirun/2026-12-06/10-00-00            # what the end of that sweep ran
    recoworld merge multirun/a multirun/b --out merged --metric ctr

Each ``DIR`` is searched for run directories: those holding a ``metrics.json``. A run's
*setting* is its job's command-line overrides (those its ``status.json`` keeps; for a run of an
earlier release, ``.hydra/overrides.yaml``), ``experiment.seeds`` aside, and the config it ran:
runs that differ only by their seeds are one setting, their per-seed values pooled, so that a
sweep over seeds as well as parameters ends in one row per setting and agent whose mean and 95%
Student-t interval (:func:`recoworld.metrics.mean_interval`) are across every seed of that
setting, summed in seed order. A seed that two runs of one setting both ran counts once (the
value of the run that comes first in job order of the runs' absolute paths), and the console
names it. The runs are taken in that order whatever the order of the ``DIR`` arguments: the same
runs give the same files, byte for byte.

Runs with the same overrides whose saved configs (the resolved config each run keeps in its
``status.json``, :func:`~recoworld.apps.run.checks.run_identity`) differ at a key that changes
results — two sweeps run with different defaults of ``conf/``, or a config file edited between
them — are separate settings: each such key becomes a column of its own, holding each run's
value, and the console names them. A key that one of them lacks (a RecoWorld
that had not added it yet) counts as a difference: ``(absent)`` in its column. A run without
a ``status.json`` (of an older RecoWorld) is told apart by its overrides only: ``(unknown)``
in those columns.

A run of ``experiment.segments`` has metrics for each segment besides the whole population:
they are merged the same way, one row per setting, segment and agent, in a ``segment`` column
(``(all)`` for the whole population) that the table has when some run has segments.

Written to ``--out`` (default: the first ``DIR``):

- ``sweep.csv``: one row per setting (and segment) and agent — the overridden keys, the keys of
  saved configs that tell settings apart, ``segment``, ``agent``, ``seeds``, ``n_seeds``, ``runs``
  (the run directories, ``;``-separated, each relative to ``--out`` when inside it and absolute
  otherwise, however ``DIR`` was typed) and, per metric of :data:`recoworld.metrics.METRICS`,
  ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high`` and ``<metric>_n_seeds`` (the seeds
  where it is defined, which the mean and interval rest on);
- ``sweep.png``: ``--metric`` (default ``return_per_episode``; a metric, one of the columns with
  an interval) of the whole population against the first key whose value varies, one line per
  agent (and per value of the other varying keys), with the interval as error bars; the agents
  side by side when no setting varies.

The two files are written whole, under hidden ``.sweep.*.<pid>.tmp`` names beside them, and
take their names at the end: the previous ``sweep.png`` is deleted, then ``sweep.csv`` takes
its name, then ``sweep.png``. A ``sweep.png`` beside a ``sweep.csv`` is therefore always that
table's plot. A merge that fails or is stopped (a ``--metric`` that is not a metric, Ctrl-C,
``kill``) before the end leaves the previous files and no temporary; stopped among the
renames, it may leave a ``sweep.csv`` (the previous one or the new one, as the stop's message
says) with no ``sweep.png``: merge again to draw it. A merge killed outright (SIGKILL, a lost
machine) leaves its temporaries: the next merge into the same ``--out`` deletes them, once the
process that wrote them has ended. One merge at a time
writes into an ``--out``: it holds the lock of ``sweep.csv`` (the hidden ``.sweep.csv.lock``,
:func:`recoworld.logs.try_writer_lock`, which stays) while it writes, and a second merge that
comes to write meanwhile is refused, writing nothing (``--out DIR is being written by another
recoworld merge``); the lock dies with its process, killed included.

Overrides that change no row of a run's log
(:func:`~recoworld.apps.merge_setting.result_neutral`: ``experiment.resume``,
``experiment.executor``, ``experiment.progress``..., and the operational keys of ``llm``) are
no part of a setting: a job finished with ``experiment.resume=true``, or run by Ray, pools
with the others. A saved config holds no such key to begin with.

Left out, and named on the console with the reason:

- a job that did not finish (a ``status.json`` or ``.hydra/`` without ``metrics.json``), with
  its state (:func:`~recoworld.apps.merge_runs.unfinished_reason`) — failed (with its error),
  interrupted, killed, still running — and what to do;
- a run whose ``metrics.json`` (or ``.hydra/overrides.yaml``) is damaged, is not a run's, or
  holds no value of any seed.

No run left at all is an error (which counts what was left out). A run that lacks a metric
that other runs have (a run of an older RecoWorld) is named too: in its rows, that metric's
mean and interval are over fewer seeds than ``n_seeds``.

A run's ``metrics.json`` names the schema version of the episodes log its metrics were
computed from (``schema_version``, :data:`recoworld.logs.SCHEMA_VERSION` when it ran). Runs of
different versions are pooled when this RecoWorld reads their logs as one
(:data:`recoworld.logs.READABLE_VERSIONS`: version 1 lacks only the LLM users' words), and the
console names them; among them, a version that it does not read (a newer RecoWorld's) is an
error naming each version with its runs (:func:`~recoworld.apps.merge_setting.pooled_versions`),
and nothing is written.

At the end of every ``recoworld run --multirun``, the Hydra callback
:class:`~recoworld.apps.merge_multirun.MergeSweep` (``hydra.callbacks.merge_sweep`` in
``conf/config.yaml``, which names it as ``recoworld.apps.merge_multirun.MergeSweep``) merges the sweep
directory, whichever launcher ran the jobs (``hydra/launcher=basic``, ``joblib`` or ``ray``).
A sweep in which a job failed is merged too (Hydra skips the callback's end then: ``recoworld
run`` calls :func:`~recoworld.apps.merge_multirun.end_stopped_sweeps`), and ``recoworld run``
exits 1 naming the jobs that did not finish; an interrupted sweep is not merged, but its
unfinished jobs are named with the command that finishes it. A job of an interrupted sweep
whose process the launcher ended before it could record the interruption
(``hydra/launcher=joblib`` kills its workers when its own process gets Ctrl-C) is marked
``interrupted`` then, not left to look killed
(:func:`~recoworld.apps.run.rundir.record_interruptions`).

This module is the command. The work: :mod:`~recoworld.apps.merge_runs` finds a sweep's run
directories and says why a job did not finish; :mod:`~recoworld.apps.merge_setting` reads a
run's values with the setting they belong to; :mod:`~recoworld.apps.merge_table` pools them
into the table, its console view and its plot; :mod:`~recoworld.apps.merge_writer` writes
``sweep.csv`` and ``sweep.png``; :mod:`~recoworld.apps.merge_multirun` is the Hydra callback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from recoworld.apps.merge_writer import DEFAULT_METRIC, SWEEP_CSV, SWEEP_PNG, merge

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="recoworld merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories")
    parser.add_argument("--out", help="where sweep.csv and sweep.png go (default: the first DIR)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"the plotted metric (default {DEFAULT_METRIC})")
    args = parser.parse_args(argv)
    table = Path(args.out or args.dirs[0]) / SWEEP_CSV
    before = _version(table)
    try:
        merge(args.dirs, args.out, args.metric)
    except KeyboardInterrupt:
        print(f"recoworld merge: {_stopped_note(table, before)}", file=sys.stderr)
        raise
    except (OSError, ValueError) as err:  # OSError: FileNotFoundError, FileExistsError, a --out not writable...
        print(f"recoworld merge: error: {err}", file=sys.stderr)
        return 1
    return 0


def _version(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (``None``: none): a merge replaces it with a new file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _stopped_note(table: Path, before: tuple[int, int] | None) -> str:
    """What a merge stopped midway left. Once both files are written, the previous
    ``sweep.png`` goes before the new ``sweep.csv`` takes its name, and the new plot takes its
    name last (:func:`~recoworld.apps.merge_writer.merge`): a plot beside the table is its
    own, and a stop among the renames leaves the table without one."""
    plot = table.with_name(SWEEP_PNG)
    unplotted = "" if plot.exists() else f", without its plot {plot}: merge again to draw it"
    if _version(table) != before:
        if not unplotted:
            return f"stopped after the table was written; {table} and {plot} are new and whole"
        return f"stopped after the table was written; {table} is new and whole{unplotted}"
    if before is None:
        return f"stopped before the table was written; nothing was written to {table.parent}"
    return f"stopped before the table was written; {table} is as it was{unplotted}"
