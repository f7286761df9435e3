"""``recoworld merge DIR...``: the runs of a sweep in one table, with intervals across seeds,
and a sweep plot.

    recoworld run --multirun env.reward=clicks,mix 'experiment.seeds=[0,1],[2,3]'
    recoworld merge multirun/2026-12-06/10-00-00            # what the end of that sweep ran
    recoworld merge multirun/a multirun/b --out merged --metric ctr

Each ``DIR`` is searched for run directories: those holding a ``metrics.json``. A run's
*setting* is its job's command-line overrides (``.hydra/overrides.yaml``), ``experiment.seeds``
aside, and the config it ran: runs that differ only by their seeds are one setting, their
per-seed values pooled, so that a sweep over seeds as well as parameters ends in one row per
setting and agent whose mean and 95% Student-t interval (:func:`recoworld.metrics.mean_interval`)
are across every seed of that setting. A seed that two runs of one setting both ran counts
once (the first run's value, in the order the directories were given), and the console names it.

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
  ``<metric>``, ``<metric>_ci_low`` and ``<metric>_ci_high``;
- ``sweep.png``: ``--metric`` (default ``return_per_episode``) of the whole population against
  the first key whose value varies, one line per agent (and per value of the other varying
  keys), with the interval as error bars; the agents side by side when no setting varies.

Overrides that change no row of a run's log (:func:`result_neutral`: ``experiment.resume``,
``experiment.executor``, ``experiment.progress``..., and the operational keys of ``llm``) are
no part of a setting: a job finished with ``experiment.resume=true``, or run by Ray, pools
with the others. A saved config holds no such key to begin with.

Left out, and named on the console with the reason:

- a job that did not finish (a ``status.json`` or ``.hydra/`` without ``metrics.json``), with
  its state (:func:`unfinished_reason`) — failed (with its error), interrupted, killed, still
  running — and what to do;
- a run whose ``metrics.json`` (or ``.hydra/overrides.yaml``) is damaged, or is not a run's.

No run left at all is an error (which counts what was left out). A run that lacks a metric
that other runs have (a run of an older RecoWorld) is named too: in its rows, that metric's
mean and interval are over fewer seeds than ``n_seeds``.

At the end of every ``recoworld run --multirun``, the Hydra callback :class:`MergeSweep`
(``hydra.callbacks.merge_sweep`` in ``conf/config.yaml``) merges the sweep directory, whichever
launcher ran the jobs (``hydra/launcher=basic``, ``joblib`` or ``ray``). A sweep in which a job
failed is merged too (Hydra skips the callback's end then: ``recoworld run`` calls
:func:`end_stopped_sweeps`), and ``recoworld run`` exits 1 naming the jobs that did not finish;
an interrupted sweep is not merged, but its unfinished jobs are named with the command that
finishes it. A job of an interrupted sweep whose process the launcher ended before it could
record the interruption (``hydra/launcher=joblib`` kills its workers when its own process gets
Ctrl-C) is marked ``interrupted`` then, not left to look killed
(:func:`~recoworld.apps.run.rundir.record_interruptions`).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.experimental.callback import Callback

logger = logging.getLogger("recoworld.merge")

#: The override that names a run's seeds: runs differing only by it are pooled.
SEEDS_KEY = "experiment.seeds"
#: The column of the rows of ``experiment.segments``, and its value for the whole population.
SEGMENT_KEY = "segment"
ALL_USERS = "(all)"
#: In a column of saved-config keys: a run without a ``status.json``, and a key its config lacks.
UNKNOWN, ABSENT = "(unknown)", "(absent)"
#: The columns of :func:`run_rows` that are no part of a setting.
ROW_FIELDS = ("run", "agent", "metric", "seed", "value")
DEFAULT_METRIC = "return_per_episode"
METRICS_FILE = "metrics.json"
#: A job's error is cut to this many characters on the console (its status.json keeps it whole).
REASON_CHARS = 300


def find_runs(dirs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The run directories under ``dirs`` (holding ``metrics.json``), and those of jobs that
    did not finish, each in job order (``2`` before ``10``). Raises :class:`FileNotFoundError`
    naming a ``DIR`` that does not exist."""
    runs, unfinished = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a directory; give the sweep directory (hydra.sweep.dir, "
                                    "e.g. multirun/2026-12-06/10-00-00) or run directories")
        runs += sorted((p.parent for p in d.rglob(METRICS_FILE)), key=_job_order)
        started = {p.parent for pattern in ("status.json", ".hydra/overrides.yaml") for p in d.rglob(pattern)}
        started = {p.parent if p.name == ".hydra" else p for p in started}
        unfinished += sorted((p for p in started if not (p / METRICS_FILE).exists()), key=_job_order)
    # A run reached twice (a DIR given twice, or a sweep and one of its runs) counts once.
    return _first_of_each(runs), _first_of_each(unfinished)


def _job_order(path: Path) -> list:
    """Sort key: numbers in a path by value, so Hydra's job folders come 0, 1, 2, ..., 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]


def _first_of_each(paths: list[Path]) -> list[Path]:
    """``paths`` in their order, each place once (the first way it was reached)."""
    first: dict[Path, Path] = {}
    for path in paths:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def unfinished_reason(run: Path) -> str:
    """Why the job in ``run`` has no ``metrics.json``, and what to do: its ``status.json``'s
    state in the words of :mod:`recoworld.apps.run.run_log` (failed with its error,
    interrupted, killed, still running), or why there is no state to read."""
    from recoworld.apps.run.run_log import RESUME, run_state, run_status
    from recoworld.apps.status import STATUS_FILE

    try:
        status = run_status(run)
    except ValueError:
        return (f"its {STATUS_FILE} is damaged (edited, or written by something else), so whether it failed or "
                "still runs is unknown")
    if status is None:
        logs = sorted(p.name for p in run.glob("*.log"))
        return f"the job stopped before its run began (no {STATUS_FILE}{f'; {logs[0]} says why' if logs else ''})"
    if status["state"] == "complete":
        return f"its {STATUS_FILE} says complete, so the file was removed since; {RESUME} to write it again"
    phrase, advice = run_state(run, status)
    phrase = " ".join(phrase.split())
    if len(phrase) > REASON_CHARS:
        phrase = f"{phrase[:REASON_CHARS]}... (whole in its {STATUS_FILE})"
    return f"the job {phrase}; {advice}"


def result_neutral(key: str) -> bool:
    """Whether an override of ``key`` changes no row of a run's log, and so is no part of a
    setting: the keys of ``experiment`` outside what a resumed run must repeat
    (:data:`~recoworld.apps.run.checks.EXPERIMENT_IDENTITY`: ``resume``, ``executor``,
    ``progress``, ``plots``...) and the :data:`~recoworld.apps.run.checks.OPERATIONAL_LLM_KEYS`
    of an ``llm`` node."""
    from recoworld.apps.run.checks import EXPERIMENT_IDENTITY, OPERATIONAL_LLM_KEYS

    node, _, leaf = key.rpartition(".")
    if node == "experiment":
        return leaf not in (*EXPERIMENT_IDENTITY, "agents")
    return (node == "llm" or node.endswith(".llm")) and leaf in OPERATIONAL_LLM_KEYS


def run_setting(run: Path) -> dict[str, str]:
    """The overrides of the job that wrote ``run`` (``key -> value``), ``experiment.seeds`` and
    the :func:`result_neutral` keys aside."""
    from omegaconf import OmegaConf

    path = run / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else []
    setting = {}
    for override in overrides:
        key, _, value = str(override).partition("=")
        key = key.lstrip("+~")
        if key != SEEDS_KEY and not result_neutral(key):
            setting[key] = value
    return setting


def run_rows(run: Path) -> list[dict]:
    """One row per (segment, agent, metric, seed) of ``run``'s ``metrics.json``, with its
    setting (``segment``: ``None`` for the whole population).

    Raises:
        ValueError: the file is damaged or is not a run's ``metrics.json`` (the message names
            it and what is wrong).
    """
    path = run / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); if its run is complete, rerun its "
                         "command with experiment.resume=true to write it again") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("agents"), dict):
        raise ValueError(f"{path} is not a recoworld run's {METRICS_FILE} (it has no 'agents' mapping)")
    try:
        setting = run_setting(run)
    except Exception as err:  # noqa: BLE001 - YAML's and OmegaConf's errors alike
        raise ValueError(f"{run / '.hydra' / 'overrides.yaml'} cannot be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())})") from None
    rows = []
    try:
        populations = {None: metrics["agents"],
                       **{str(name): segment["agents"] for name, segment in (metrics.get("segments") or {}).items()}}
        for segment, agents in populations.items():
            for agent, summary in agents.items():
                for name, value in summary["metrics"].items():
                    for seed, x in zip(summary["seeds"], value["per_seed"], strict=True):
                        rows.append({**setting, SEGMENT_KEY: segment, "run": str(run), "agent": agent, "metric": name,
                                     "seed": int(seed), "value": float("nan") if x is None else float(x)})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a recoworld run's {METRICS_FILE} ({type(err).__name__}: {err})") from None
    return rows


def saved_config(run: Path) -> dict | None:
    """The config that ``run`` ran, as its ``status.json`` keeps it (resolved, result-neutral
    keys left out); ``None`` without one.

    Raises:
        ValueError: the ``status.json`` is damaged (the message names it).
    """
    from recoworld.apps.run.rundir import RunDirectoryError, read_status

    try:
        status = read_status(run)
    except RunDirectoryError:
        raise ValueError(f"{run / 'status.json'} is damaged, so the config {run} ran is unknown") from None
    return None if status is None else status.get("config")


def with_config_columns(long, configs: dict[str, dict | None]):
    """``long`` (the runs' :func:`run_rows`) with a column for each key of the saved configs
    (``configs``: run -> :func:`saved_config`) at which runs of the same overrides and agent
    differ, holding each run's value (module docstring), and those keys."""
    overrides = [c for c in long.columns if c not in (*ROW_FIELDS, SEGMENT_KEY)]
    pairs = long[["run", "agent", *overrides]].fillna("(default)").drop_duplicates(["run", "agent"])
    flat = {(run, agent): _setting_config(configs[run], agent) for run, agent in zip(pairs["run"], pairs["agent"])}
    settings: dict[tuple, list[dict]] = {}  # (agent, overrides) -> the saved configs known
    for pair in pairs.itertuples(index=False):
        if (config := flat[(pair.run, pair.agent)]) is not None:
            settings.setdefault((pair.agent, *pair[2:]), []).append(config)
    differing: list[str] = []
    for configs_of_setting in settings.values():
        for key in dict.fromkeys(key for config in configs_of_setting for key in config):
            values = {config.get(key, ABSENT) for config in configs_of_setting}
            if len(values) > 1 and key not in overrides and key not in differing:
                differing.append(key)
    long = long.copy()
    for key in differing:
        long[key] = [UNKNOWN if flat[pair] is None else flat[pair].get(key, ABSENT)
                     for pair in zip(long["run"], long["agent"])]
    return long, differing


def _setting_config(config: dict | None, agent: str) -> dict[str, str] | None:
    """``config`` (a saved one) as ``dotted key -> value`` for the rows of ``agent``: its
    ``agents`` entry under ``agent`` (the other agents decide none of its results), without
    ``experiment.seeds`` and the :func:`result_neutral` keys."""
    if config is None:
        return None
    tree = {**{key: value for key, value in config.items() if key != "agents"},
            "agent": (config.get("agents") or {}).get(agent)}
    return {key: value for key, value in _dotted(tree) if key != SEEDS_KEY and not result_neutral(key)}


def _dotted(tree, prefix: str = ""):
    """``(dotted key, value)`` of each leaf of ``tree``, the value as an override writes it."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _dotted(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree if isinstance(tree, str) else json.dumps(tree)


def merge_table(long, run_name=str):
    """The merged table (module docstring, ``sweep.csv``) of ``long``, the runs' :func:`run_rows`
    in one frame, and the seeds counted once; ``run_name`` gives a run's name in ``runs``."""
    import pandas as pd

    from recoworld.metrics import mean_interval

    long = long.copy()
    segmented = SEGMENT_KEY in long.columns and long[SEGMENT_KEY].notna().any()
    if segmented:
        long[SEGMENT_KEY] = long[SEGMENT_KEY].fillna(ALL_USERS)
    else:
        long = long.drop(columns=SEGMENT_KEY, errors="ignore")
    keys = [c for c in long.columns if c not in (*ROW_FIELDS, SEGMENT_KEY)] + ([SEGMENT_KEY] if segmented else [])
    long[keys] = long[keys].fillna("(default)")
    group = [*keys, "agent"]
    repeated = long[long.duplicated([*group, "metric", "seed"])]
    long = long.drop_duplicates([*group, "metric", "seed"])
    rows = []
    for values, frame in long.groupby(group, sort=False):
        row = dict(zip(group, values if isinstance(values, tuple) else (values,)))
        seeds = sorted(frame["seed"].unique())
        names = {run_name(run) for run in frame["run"].unique()}
        row.update(seeds=" ".join(map(str, seeds)), n_seeds=len(seeds),
                   runs=";".join(sorted(names, key=lambda name: _job_order(Path(name)))))
        for metric, per_metric in frame.groupby("metric", sort=False):
            interval = mean_interval(per_metric["value"].to_numpy())
            row.update({metric: interval.mean, f"{metric}_ci_low": interval.low, f"{metric}_ci_high": interval.high})
        rows.append(row)
    return pd.DataFrame(rows), repeated


def lacking_metrics(long) -> dict[str, list[str]]:
    """``run -> the metrics that other runs have and it lacks`` (a run of an older RecoWorld):
    the rows it is pooled into have those metrics over fewer seeds than ``n_seeds``."""
    every = list(dict.fromkeys(long["metric"]))
    lacking = {}
    for run, frame in long.groupby("run", sort=False):
        missing = [m for m in every if m not in set(frame["metric"])]
        if missing:
            lacking[run] = missing
    return lacking


def varying_keys(table) -> list[str]:
    """The setting keys whose value differs between rows, in command-line order."""
    fixed = (SEGMENT_KEY, "agent", "seeds", "n_seeds", "runs")
    keys = [c for c in table.columns if c not in fixed and not c.endswith(("_ci_low", "_ci_high"))]
    keys = [k for k in keys if f"{k}_ci_low" not in table.columns]
    return [k for k in keys if table[k].nunique() > 1]


def plot_sweep(table, metric: str, path: Path) -> None:
    """``metric`` of the whole population against the first varying key (or the agents, when
    nothing varies)."""
    import numpy as np
    from matplotlib.figure import Figure

    _check_metric(table, metric)
    if SEGMENT_KEY in table.columns:
        table = table[table[SEGMENT_KEY] == ALL_USERS]
    varying = varying_keys(table)
    x_key = varying[0] if varying else "agent"
    lines = ["agent", *varying[1:]] if varying else []
    x_values = _ordered(table[x_key].unique())
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, frame in (table.groupby(lines, sort=False) if lines else [("all", table)]):
        frame = frame.set_index(x_key).reindex([v for v in x_values if v in set(frame[x_key])])
        positions = [x_values.index(v) for v in frame.index]
        name = " ".join(map(str, label)) if isinstance(label, tuple) else str(label)
        mean = frame[metric].to_numpy(dtype=float)
        # A setting with one seed has no interval: its point has no bar.
        below = (mean - frame[f"{metric}_ci_low"].to_numpy(dtype=float)).clip(0)
        above = (frame[f"{metric}_ci_high"].to_numpy(dtype=float) - mean).clip(0)
        ax.errorbar(positions, mean, yerr=[np.nan_to_num(below), np.nan_to_num(above)], marker="o", capsize=3,
                    linestyle="-" if varying else "none", label=name)
    ax.set_xticks(range(len(x_values)), [str(v) for v in x_values])
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"{metric} (95% interval across seeds)")
    if lines:
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110, format="png")  # named: the file may be written under a temporary name


def _check_metric(table, metric: str) -> None:
    if metric not in table.columns:
        known = sorted(c for c in table.columns if f"{c}_ci_low" in table.columns)
        raise ValueError(f"--metric {metric!r} is not in the runs' metrics; choose one of {known}")


def _ordered(values) -> list:
    """Values in numeric order when they are all numbers, else in their order of appearance."""
    values = list(values)
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return values


def merge(dirs: Sequence[str | Path], out: str | Path | None = None, metric: str = DEFAULT_METRIC, console=None):
    """Merge the runs under ``dirs`` into ``out`` (module docstring); returns the table."""
    import pandas as pd
    from rich.console import Console

    from recoworld.logs import replacing

    console = console or Console(stderr=True)
    found, unfinished = find_runs(dirs)
    for run in unfinished:
        _say(console, f"recoworld merge: {run} has no {METRICS_FILE}, left out: {unfinished_reason(run)}")
    rows, runs, configs = [], [], {}
    for run in found:
        try:
            rows += run_rows(run)
            runs.append(run)
        except ValueError as err:
            _say(console, f"recoworld merge: {err}: left out")
            continue
        try:
            configs[str(run)] = saved_config(run)
        except ValueError as err:
            configs[str(run)] = None
            _say(console, f"recoworld merge: {err}: it is told apart from other runs by its overrides only")
    if not runs:
        left_out = len(found) + len(unfinished)
        raise FileNotFoundError(f"no run with a {METRICS_FILE} under {', '.join(map(str, dirs))}"
                                + (f" ({left_out} left out, named above)" if left_out else "")
                                + "; a run writes it when all its parts are complete")
    long, differing = with_config_columns(pd.DataFrame(rows), configs)
    if differing:
        _say(console, f"recoworld merge: runs with the same overrides ran different configs (their status.json) at "
                      f"{', '.join(differing)}: they are separate settings, told apart by those columns")
    out = Path(out) if out is not None else Path(dirs[0])
    table, repeated = merge_table(long, run_name=lambda run: _stable_name(Path(run), out))
    for _, r in repeated.drop_duplicates(["run", "agent", "seed"]).iterrows():
        _say(console, f"recoworld merge: seed {r['seed']} of {r['agent']} in {r['run']} is already in the "
                      "table from an earlier run of the same setting: counted once")
    for run, missing in lacking_metrics(long).items():
        _say(console, f"recoworld merge: {run} lacks {', '.join(missing)} (a run of an older RecoWorld?): in the rows "
                      "it is pooled into, their values are over the seeds of the setting's other runs only")
    _check_metric(table, metric)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory; give a directory for sweep.csv and sweep.png")
    out.mkdir(parents=True, exist_ok=True)
    # Each file whole or not at all: a merge that fails midway leaves the previous one.
    with replacing(out / "sweep.csv") as path:
        table.to_csv(path, index=False)
    with replacing(out / "sweep.png") as path:
        plot_sweep(table, metric, path)
    _print(table, metric, console)
    _say(console, f"recoworld merge: {len(runs)} runs, {len(table)} rows -> {out / 'sweep.csv'}, {out / 'sweep.png'}")
    return table


def _stable_name(run: Path, out: Path) -> str:
    """``run`` as the ``runs`` column names it: relative to ``out`` when inside it, else
    absolute; the same however the directory was typed."""
    resolved = run.resolve()
    try:
        return resolved.relative_to(out.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def _say(console, text: str) -> None:
    """One line, unwrapped and literal (paths may hold brackets), so that it can be grepped."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _print(table, metric: str, console) -> None:
    from rich.table import Table

    columns = [*varying_keys(table), *([SEGMENT_KEY] if SEGMENT_KEY in table.columns else []), "agent", "n_seeds"]
    view = Table(title=f"{metric}: mean [95% interval across seeds]")
    for c in [*columns, metric]:
        view.add_column(c)
    for _, r in table.iterrows():
        view.add_row(*(str(r[c]) for c in columns),
                     f"{r[metric]:.4g} [{r[f'{metric}_ci_low']:.4g}, {r[f'{metric}_ci_high']:.4g}]")
    console.print(view)


#: The sweeps that Hydra began in this process and has not ended, by sweep directory, with
#: their callback and when they began: Hydra skips ``on_multirun_end`` when a job failed (its
#: sweeper raises the first failed job's error once the others have run) or the sweep was
#: interrupted.
_SWEEPS_BEGUN: dict[Path, tuple[MergeSweep, str]] = {}


class MergeSweep(Callback):
    """Hydra callback: at the end of a ``--multirun``, merge its sweep directory. A merge
    that fails is logged, not raised: the jobs' own results stand. A sweep that Hydra does
    not end (a job failed, or Ctrl-C) is ended by :func:`end_stopped_sweeps`."""

    def __init__(self, metric: str = DEFAULT_METRIC):
        self.metric = metric

    def on_multirun_start(self, config, **kwargs) -> None:
        from recoworld.apps.status import now

        _SWEEPS_BEGUN[Path(config.hydra.sweep.dir)] = (self, now())

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _SWEEPS_BEGUN.pop(sweep_dir, None)
        self.merge(sweep_dir)

    def merge(self, sweep_dir: Path) -> bool:
        """Merge ``sweep_dir``; whether it was merged (why not is logged)."""
        try:
            merge([sweep_dir], metric=self.metric)
        except Exception as err:  # noqa: BLE001 - the jobs' results stand; `recoworld merge` can be run again
            logger.error(f"recoworld merge {sweep_dir}: {type(err).__name__}: {err}")
            return False
        return True


def end_stopped_sweeps(interrupted: bool, console=None) -> list[Path]:
    """End the sweeps that Hydra began in this process and did not end (``recoworld run``
    calls it when a ``--multirun`` stops on an error or Ctrl-C); returns their directories.

    A sweep in which a job failed is merged (each job that did not finish named with its
    state); an interrupted one is not, but its unfinished jobs are named, those whose process
    the launcher killed first marked ``interrupted``
    (:func:`~recoworld.apps.run.rundir.record_interruptions`). Either way the last line says
    how to finish the sweep: the same command again with ``experiment.resume=true`` and its
    ``hydra.sweep.dir`` (each finished job is kept)."""
    from rich.console import Console

    from recoworld.apps.run.rundir import record_interruptions

    console = console or Console(stderr=True)
    stopped = []
    while _SWEEPS_BEGUN:
        sweep_dir, (callback, begun) = _SWEEPS_BEGUN.popitem()
        stopped.append(sweep_dir)
        try:
            finished, unfinished = find_runs([sweep_dir])
        except FileNotFoundError:
            finished, unfinished = [], []
        if not finished and not unfinished:
            continue  # stopped before any job began (e.g. a sweep value Hydra refused): its error says why
        finish = (f"finish it by running the same command again with experiment.resume=true "
                  f"hydra.sweep.dir={sweep_dir} (each job that finished is kept)")
        if interrupted:
            record_interruptions(unfinished, since=begun)
            for run in unfinished:
                _say(console, f"recoworld run: {run} has no {METRICS_FILE}: {unfinished_reason(run)}")
            _say(console, f"recoworld run: the sweep in {sweep_dir} was interrupted with {len(finished)} job(s) "
                          f"finished and {len(unfinished)} not (named above; a job not begun has no folder); {finish}, "
                          f"or merge the finished ones with: recoworld merge {sweep_dir}")
            continue
        merged = callback.merge(sweep_dir)
        if unfinished:
            _say(console, f"recoworld run: {len(unfinished)} job(s) of the sweep in {sweep_dir} did not finish: "
                          f"{', '.join(run.name for run in unfinished)} (named above with why)"
                          + ("; the others are merged in sweep.csv" if merged else "")
                          + f". Fix what failed, then {finish}")
    return stopped


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="recoworld merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories")
    parser.add_argument("--out", help="where sweep.csv and sweep.png go (default: the first DIR)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"the plotted metric (default {DEFAULT_METRIC})")
    args = parser.parse_args(argv)
    try:
        merge(args.dirs, args.out, args.metric)
    except (OSError, ValueError) as err:  # OSError: FileNotFoundError, FileExistsError, a --out not writable...
        print(f"recoworld merge: error: {err}", file=sys.stderr)
        return 1
    return 0
