"""``recoworld merge DIR...``: the runs of a sweep in one table, with intervals across seeds,
and a sweep plot.

    recoworld run --multirun env.reward=clicks,mix 'experiment.seeds=[0,1],[2,3]'
    recoworld merge multirun/2026-12-06/10-00-00            # what the end of that sweep ran
    recoworld merge multirun/a multirun/b --out merged --metric ctr

Each ``DIR`` is searched for run directories: those holding a ``metrics.json``. A run's
*setting* is its job's command-line overrides (``.hydra/overrides.yaml``), ``experiment.seeds``
aside: runs that differ only by their seeds are one setting, their per-seed values pooled,
so that a sweep over seeds as well as parameters ends in one row per setting and agent whose
mean and 95% Student-t interval (:func:`recoworld.metrics.mean_interval`) are across every
seed of that setting. A seed that two runs of one setting both ran counts once (the first
run's value, in the order the directories were given), and the console names it.

Written to ``--out`` (default: the first ``DIR``):

- ``sweep.csv``: one row per setting and agent — the overridden keys, ``agent``, ``seeds``,
  ``n_seeds``, ``runs`` (the run directories, ``;``-separated) and, per metric of
  :data:`recoworld.metrics.METRICS`, ``<metric>``, ``<metric>_ci_low`` and ``<metric>_ci_high``;
- ``sweep.png``: ``--metric`` (default ``return_per_episode``) against the first key whose
  value varies, one line per agent (and per value of the other varying keys), with the
  interval as error bars; the agents side by side when no setting varies.

A directory of a job that did not finish (a ``status.json`` or ``.hydra/`` without
``metrics.json``) is named on the console and left out; no run at all is an error.

At the end of every ``recoworld run --multirun``, the Hydra callback :class:`MergeSweep`
(``hydra.callbacks.merge_sweep`` in ``conf/config.yaml``) merges the sweep directory, whichever
launcher ran the jobs (``hydra/launcher=basic``, ``joblib`` or ``ray``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.experimental.callback import Callback

logger = logging.getLogger("recoworld.merge")

#: The override that names a run's seeds: runs differing only by it are pooled.
SEEDS_KEY = "experiment.seeds"
DEFAULT_METRIC = "return_per_episode"


def find_runs(dirs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The run directories under ``dirs`` (holding ``metrics.json``), and those of jobs that
    did not finish. Raises :class:`FileNotFoundError` naming a ``DIR`` that does not exist."""
    runs, unfinished = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a directory; give the sweep directory (hydra.sweep.dir, "
                                    "e.g. multirun/2026-12-06/10-00-00) or run directories")
        runs += sorted(p.parent for p in d.rglob("metrics.json"))
        started = {p.parent for pattern in ("status.json", ".hydra/overrides.yaml") for p in d.rglob(pattern)}
        started = {p.parent if p.name == ".hydra" else p for p in started}
        unfinished += sorted(p for p in started if not (p / "metrics.json").exists())
    # A run reached twice (a DIR given twice, or a sweep and one of its runs) counts once.
    return _first_of_each(runs), _first_of_each(unfinished)


def _first_of_each(paths: list[Path]) -> list[Path]:
    """``paths`` in their order, each place once (the first way it was reached)."""
    first: dict[Path, Path] = {}
    for path in paths:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def run_setting(run: Path) -> dict[str, str]:
    """The overrides of the job that wrote ``run`` (``key -> value``), ``experiment.seeds`` aside."""
    from omegaconf import OmegaConf

    path = run / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else []
    setting = {}
    for override in overrides:
        key, _, value = str(override).partition("=")
        key = key.lstrip("+~")
        if key != SEEDS_KEY:
            setting[key] = value
    return setting


def seed_values(runs: Sequence[Path]):
    """One row per (run, agent, metric, seed): the long form of the runs' ``metrics.json``."""
    import pandas as pd

    rows = []
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        setting = run_setting(run)
        for agent, summary in metrics["agents"].items():
            for name, value in summary["metrics"].items():
                for seed, x in zip(summary["seeds"], value["per_seed"]):
                    rows.append({**setting, "run": str(run), "agent": agent, "metric": name, "seed": int(seed),
                                 "value": float("nan") if x is None else float(x)})
    return pd.DataFrame(rows)


def merge_table(runs: Sequence[Path]):
    """The merged table (module docstring, ``sweep.csv``) and the seeds counted once."""
    import pandas as pd

    from recoworld.metrics import mean_interval

    long = seed_values(runs)
    keys = [c for c in long.columns if c not in ("run", "agent", "metric", "seed", "value")]
    long[keys] = long[keys].fillna("(default)")
    group = [*keys, "agent"]
    repeated = long[long.duplicated([*group, "metric", "seed"])]
    long = long.drop_duplicates([*group, "metric", "seed"])
    rows = []
    for values, frame in long.groupby(group, sort=False):
        row = dict(zip(group, values if isinstance(values, tuple) else (values,)))
        seeds = sorted(frame["seed"].unique())
        row.update(seeds=" ".join(map(str, seeds)), n_seeds=len(seeds), runs=";".join(sorted(frame["run"].unique())))
        for metric, per_metric in frame.groupby("metric", sort=False):
            interval = mean_interval(per_metric["value"].to_numpy())
            row.update({metric: interval.mean, f"{metric}_ci_low": interval.low, f"{metric}_ci_high": interval.high})
        rows.append(row)
    return pd.DataFrame(rows), repeated


def varying_keys(table) -> list[str]:
    """The setting keys whose value differs between rows, in command-line order."""
    fixed = ("agent", "seeds", "n_seeds", "runs")
    keys = [c for c in table.columns if c not in fixed and not c.endswith(("_ci_low", "_ci_high"))]
    keys = [k for k in keys if f"{k}_ci_low" not in table.columns]
    return [k for k in keys if table[k].nunique() > 1]


def plot_sweep(table, metric: str, path: Path) -> None:
    """``metric`` against the first varying key (or the agents, when nothing varies)."""
    import numpy as np
    from matplotlib.figure import Figure

    _check_metric(table, metric)
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
    from rich.console import Console

    from recoworld.logs import replacing

    console = console or Console(stderr=True)
    runs, unfinished = find_runs(dirs)
    if not runs:
        raise FileNotFoundError(f"no run with a metrics.json under {', '.join(map(str, dirs))}; "
                                "a run writes it when all its parts are complete")
    for run in unfinished:
        _say(console, f"recoworld merge: {run} has no metrics.json (a job that did not finish): left out")
    table, repeated = merge_table(runs)
    for _, r in repeated.drop_duplicates(["run", "agent", "seed"]).iterrows():
        _say(console, f"recoworld merge: seed {r['seed']} of {r['agent']} in {r['run']} is already in the "
                      "table from an earlier run of the same setting: counted once")
    _check_metric(table, metric)
    out = Path(out) if out is not None else Path(dirs[0])
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


def _say(console, text: str) -> None:
    """One line, unwrapped and literal (paths may hold brackets), so that it can be grepped."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _print(table, metric: str, console) -> None:
    from rich.table import Table

    columns = [*varying_keys(table), "agent", "n_seeds"]
    view = Table(title=f"{metric}: mean [95% interval across seeds]")
    for c in [*columns, metric]:
        view.add_column(c)
    for _, r in table.iterrows():
        view.add_row(*(str(r[c]) for c in columns),
                     f"{r[metric]:.4g} [{r[f'{metric}_ci_low']:.4g}, {r[f'{metric}_ci_high']:.4g}]")
    console.print(view)


class MergeSweep(Callback):
    """Hydra callback: at the end of a ``--multirun``, merge its sweep directory. A merge
    that fails is logged, not raised: the jobs' own results stand."""

    def __init__(self, metric: str = DEFAULT_METRIC):
        self.metric = metric

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            merge([sweep_dir], metric=self.metric)
        except (FileNotFoundError, ValueError) as err:
            logger.error(f"recoworld merge {sweep_dir}: {err}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="recoworld merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories")
    parser.add_argument("--out", help="where sweep.csv and sweep.png go (default: the first DIR)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"the plotted metric (default {DEFAULT_METRIC})")
    args = parser.parse_args(argv)
    try:
        merge(args.dirs, args.out, args.metric)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"recoworld merge: error: {err}", file=sys.stderr)
        return 1
    return 0
