"""The merged table of a sweep (``sweep.csv``): one row per setting (and segment) and agent,
mean and 95% interval across seeds; its view on the console, and its plot (``sweep.png``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recoworld.apps.merge_runs import job_order
from recoworld.apps.merge_setting import ALL_USERS, ROW_FIELDS, SEGMENT_KEY


def merge_table(long, run_name=str):
    """The merged table (:mod:`recoworld.apps.merge`, ``sweep.csv``) of ``long``, the runs'
    :func:`~recoworld.apps.merge_setting.run_rows` in one frame, and the seeds counted once;
    ``run_name`` gives a run's name in ``runs``."""
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
                   runs=";".join(sorted(names, key=lambda name: job_order(Path(name)))))
        for metric, per_metric in frame.groupby("metric", sort=False):
            # Summed in seed order: the last bit of a mean depends on the order of its terms, and
            # this one is then a function of the seeds' values alone, not of how runs split them.
            interval = mean_interval(per_metric.sort_values("seed")["value"].to_numpy())
            # The seeds where the metric is defined (no session ended in the others...): the mean
            # and interval rest on these alone, which n_seeds alone would not say.
            row.update({metric: interval.mean, f"{metric}_ci_low": interval.low, f"{metric}_ci_high": interval.high,
                        f"{metric}_n_seeds": interval.n})
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


#: The columns of each metric ``m`` of the table besides ``m`` itself: ``m_ci_low``...
METRIC_SUFFIXES = ("_ci_low", "_ci_high", "_n_seeds")


def metric_columns(table) -> list[str]:
    """The metrics of ``table``: its columns with an interval (not ``n_seeds``, ``runs`` or
    ``ctr_ci_low``, say)."""
    return sorted(c for c in table.columns if f"{c}_ci_low" in table.columns)


def varying_keys(table) -> list[str]:
    """The setting keys whose value differs between rows, in command-line order: not a
    metric, nor one of its columns (``ctr_n_seeds`` differs wherever ctr is undefined on
    some seeds of one row only)."""
    metrics = metric_columns(table)
    fixed = {SEGMENT_KEY, "agent", "seeds", "n_seeds", "runs", *metrics,
             *(f"{m}{suffix}" for m in metrics for suffix in METRIC_SUFFIXES)}
    return [k for k in table.columns if k not in fixed and table[k].nunique() > 1]


def plot_sweep(table, metric: str, path: Path) -> None:
    """``metric`` of the whole population against the first varying key (or the agents, when
    nothing varies)."""
    import numpy as np
    from matplotlib.figure import Figure

    check_metric(table, metric)
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


def check_metric(table, metric: str) -> None:
    """Refuse a ``--metric`` that is not a metric of ``table`` (a column with an interval: not
    ``n_seeds``, ``runs`` or ``ctr_ci_low``, say), naming those that are."""
    known = metric_columns(table)
    if metric not in known:
        raise ValueError(f"--metric {metric!r} is not in the runs' metrics; choose one of {known}")


def _ordered(values) -> list:
    """Values in numeric order when they are all numbers, else in their order of appearance."""
    values = list(values)
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return values


def print_table(table, metric: str, console) -> None:
    """``metric`` of each row of ``table`` on ``console``, with the keys that vary."""
    from rich.table import Table
    from rich.text import Text

    columns = [*varying_keys(table), *([SEGMENT_KEY] if SEGMENT_KEY in table.columns else []), "agent", "n_seeds"]
    view = Table(title=Text(f"{metric}: mean [95% interval across seeds]"))
    for c in [*columns, metric]:
        view.add_column(Text(c))
    for _, r in table.iterrows():
        # Literal text: a value such as experiment.agents=[random,linucb] is no markup tag.
        view.add_row(*(Text(str(r[c])) for c in columns), Text(_mean_interval(r, metric)))
    console.print(view)


def _mean_interval(row, metric: str) -> str:
    """``mean [low, high]``; ``-`` where the setting has no value (e.g. no session ended
    within its steps), the mean alone where one seed gives no interval (as the run's summary
    shows them, rather than ``nan``), and ``(k of N seeds)`` where the metric is defined on
    k of the row's N seeds only."""
    mean, low, high = row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if pd.isna(mean):
        return "-"
    defined = row.get(f"{metric}_n_seeds")
    seeds = f" ({int(defined)} of {row['n_seeds']} seeds)" if pd.notna(defined) and defined < row["n_seeds"] else ""
    return (f"{mean:.4g}" if pd.isna(low) or pd.isna(high) else f"{mean:.4g} [{low:.4g}, {high:.4g}]") + seeds
