"""Merge the runs under some directories into ``sweep.csv`` and ``sweep.png``, saying on the
console what was left out and why (the manual: :mod:`recoworld.apps.merge`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from recoworld.apps.merge_runs import METRICS_FILE, find_runs, unfinished_reason
from recoworld.apps.merge_setting import pooled_versions, read_metrics, run_rows, saved_config, with_config_columns
from recoworld.apps.merge_table import check_metric, lacking_metrics, merge_table, plot_sweep, print_table
from recoworld.wording import plural

#: What ``sweep.png`` plots unless ``--metric`` says otherwise.
DEFAULT_METRIC = "return_per_episode"
#: The files a merge writes into ``--out``.
SWEEP_CSV, SWEEP_PNG = "sweep.csv", "sweep.png"


def merge(dirs: Sequence[str | Path], out: str | Path | None = None, metric: str = DEFAULT_METRIC, console=None):
    """Merge the runs under ``dirs`` into ``out`` (:mod:`recoworld.apps.merge`); returns the table.

    Raises:
        BlockingIOError: another merge is writing into ``out`` (it holds the lock of
            ``sweep.csv``, :func:`recoworld.logs.try_writer_lock`); nothing is written.
        FileNotFoundError, FileExistsError, ValueError: no run to merge, an ``out`` that is a
            file, a ``metric`` that is not one.
    """
    import pandas as pd
    from rich.console import Console

    from recoworld.apps.interrupts import kill_stops_like_ctrl_c
    from recoworld.logs import lock_path, replacing, try_writer_lock

    console = console or Console(stderr=True)
    found, unfinished = find_runs(dirs)
    for run in unfinished:
        say(console, f"recoworld merge: {run} has no {METRICS_FILE}, left out: {unfinished_reason(run)}")
    rows, runs, configs, versions = [], [], {}, {}
    for run in found:
        try:
            metrics = read_metrics(run)
            rows += run_rows(run, metrics)
            runs.append(run)
            versions[str(run)] = metrics.get("schema_version")
        except ValueError as err:
            say(console, f"recoworld merge: {err}: left out")
            continue
        try:
            configs[str(run)] = saved_config(run)
        except ValueError as err:
            configs[str(run)] = None
            say(console, f"recoworld merge: {err}: it is told apart from other runs by its overrides only")
    if not runs:
        left_out = len(found) + len(unfinished)
        raise FileNotFoundError(f"no run with a {METRICS_FILE} under {', '.join(map(str, dirs))}"
                                + (f" ({left_out} left out, named above)" if left_out else "")
                                + "; a run writes it when all its parts are complete")
    if pooled := pooled_versions(versions):
        say(console, f"recoworld merge: {pooled}")
    long, differing = with_config_columns(pd.DataFrame(rows), configs)
    if differing:
        say(console, f"recoworld merge: runs with the same overrides ran different configs (their status.json) at "
                     f"{', '.join(differing)}: they are separate settings, told apart by those columns")
    out = Path(out) if out is not None else Path(dirs[0])
    table, repeated = merge_table(long, run_name=lambda run: _stable_name(Path(run), out))
    for _, r in repeated.drop_duplicates(["run", "agent", "seed"]).iterrows():
        say(console, f"recoworld merge: seed {r['seed']} of {r['agent']} in {r['run']} is already in the "
                     "table from an earlier run of the same setting: counted once")
    for run, missing in lacking_metrics(long).items():
        say(console, f"recoworld merge: {run} lacks {', '.join(missing)} (a run of an older RecoWorld?): in the rows "
                     "it is pooled into, their values are over the seeds of the setting's other runs only")
    check_metric(table, metric)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory; give a directory for sweep.csv and sweep.png")
    out.mkdir(parents=True, exist_ok=True)
    # One merge at a time writes into --out: two would rename their files in turn, and could
    # leave one's table beside the other's plot.
    lock = try_writer_lock(out / SWEEP_CSV)
    if lock is None:
        raise BlockingIOError(f"--out {out} is being written by another recoworld merge (it holds "
                              f"{lock_path(out / SWEEP_CSV)}); wait for it to end, then merge again, or give "
                              "another --out")
    try:
        remove_dead_temporaries(out)
        # Both files written before either takes its name; then the old plot goes, the table
        # takes its name (the inner block) and the plot last. Two renames are never one step:
        # a merge that fails or is stopped (``kill``, even SIGKILL) between them leaves a table
        # without a plot, which the next merge draws, never a table beside an older table's plot.
        with kill_stops_like_ctrl_c(), replacing(out / SWEEP_PNG) as png_path, replacing(out / SWEEP_CSV) as csv_path:
            table.to_csv(csv_path, index=False)
            plot_sweep(table, metric, png_path)
            (out / SWEEP_PNG).unlink(missing_ok=True)
    finally:
        lock.release()
    print_table(table, metric, console)
    say(console, f"recoworld merge: {plural(len(runs), 'run')}, {plural(len(table), 'row')} -> {out / SWEEP_CSV}, {out / SWEEP_PNG}")
    if table[metric].isna().all():
        # The plot has axes and no point: say why, or the last line reads as a full success.
        say(console, f"recoworld merge: --metric {metric} has no value in any row (e.g. return_per_episode, "
                     "watch_time and session_length need experiment.steps >= env.max_steps), so sweep.png "
                     "shows no point; give another --metric, e.g. --metric ctr")
    return table


def remove_dead_temporaries(out: Path) -> list[Path]:
    """Delete the temporaries of ``sweep.csv`` and ``sweep.png`` that merges killed outright
    (SIGKILL, a lost machine) left in ``out``, and return them. One is deleted only once the
    process named in it (:func:`recoworld.logs.temporary_path`) has ended on this machine: a
    merge into the same folder may be writing it now."""
    from recoworld.logs import TEMPORARY_SUFFIX, left_by_ended_writers

    outputs = "|".join(map(re.escape, (SWEEP_CSV, SWEEP_PNG)))
    name = re.compile(rf"\.(?:{outputs})\.(?P<pid>\d+){re.escape(TEMPORARY_SUFFIX)}")
    removed = [path for path in left_by_ended_writers(out, name) if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _stable_name(run: Path, out: Path) -> str:
    """``run`` as the ``runs`` column names it: relative to ``out`` when inside it, else
    absolute; the same however the directory was typed."""
    resolved = run.resolve()
    try:
        return resolved.relative_to(out.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def say(console, text: str) -> None:
    """One line, unwrapped and literal (paths may hold brackets), so that it can be grepped."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)
