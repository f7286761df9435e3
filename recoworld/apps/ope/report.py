"""What ``recoworld ope`` writes into its output directory, and prints.

The directory (``--out``) must be new or empty; the files are written into a temporary
folder beside it that takes its name once all are there, so an interrupted study leaves no
report, and never a mix of two (:func:`recoworld.logs.new_folder`).

- ``summary.csv`` / ``summary.md``: one row per (logging, target, n, estimator): the true
  value and its standard error, bias, RMSE, CI coverage, mean CI width, and runs on which
  the estimator was defined (of all runs). The markdown also holds the truths, the
  off-policy learning and session sections, the settings and, with ``--obd``, the Open
  Bandit Dataset section (``obd.csv``).
- ``runs.csv``: every estimate and interval of every run, with ``n_replicates``, the
  bootstrap replicates a resampled interval rests on (empty for an estimate the log leaves
  undefined; for a refitted one, the refits that defined it where some did not: a resample
  of fewer distinct slates than ``--folds`` leaves a fold of the click model empty; else
  empty; bounds are empty, the estimate kept, where too few resamples left a self-normalised
  estimator defined, or too few refits a refitted one); ``truths.csv`` (per logging
  policy and target: learned targets depend on the logging policy).
- ``learning.csv``: per (logging policy, learned policy): both true values, the gain, and
  each estimator's mean estimate of the learned policy at the largest log size.
- ``sessions_summary.csv``, ``sessions_runs.csv``, ``sessions_truths.csv``: the same for
  the multi-step session section (truth by on-policy Monte Carlo, with its standard error).
- ``rmse.png`` (``sessions_rmse.png``): RMSE against log size, one panel per (logging,
  target) pair, one line per estimator (log-log); ``coverage.png``
  (``sessions_coverage.png``): CI coverage at the largest log size, with the nominal level
  drawn in.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from rich.text import Text

from recoworld.logs import new_folder
from recoworld.wording import plural

COLUMNS = ("logging", "target", "n", "estimator", "truth", "truth_se", "bias", "rmse", "coverage", "ci_width",
           "defined")
SESSIONS_TITLE = "Sessions: bias, RMSE and {level}-CI coverage against the on-policy Monte-Carlo value"
LEARNING_TITLE = "Off-policy learning: learned policies' true and estimated values beside the logging policy's"


class Section(NamedTuple):
    """The session section's ``runs``, ``truths`` and ``summary`` (as for the one-step part)."""

    runs: pd.DataFrame
    truths: pd.DataFrame
    summary: pd.DataFrame


def write(out: Path, config, runs: pd.DataFrame, truths: pd.DataFrame, summary: pd.DataFrame,
          obd: pd.DataFrame | None = None, plots: bool = True, learning: pd.DataFrame | None = None,
          sessions: Section | None = None) -> Path:
    """Write every file of the module docstring into the new folder ``out``, whole
    (:func:`recoworld.logs.new_folder`); returns the report's folder (``out``, or the free
    name it went to). Printing is :func:`show`'s: a stop while the tables print is no stop
    before the report was written."""
    with new_folder(out) as written:
        _write_files(written.folder, config, runs, truths, summary, obd, plots, learning, sessions)
    return written.path


def show(path: Path, config, truths: pd.DataFrame, summary: pd.DataFrame, obd: pd.DataFrame | None = None,
         seconds: float | None = None, console: Console | None = None, learning: pd.DataFrame | None = None,
         sessions: Section | None = None) -> None:
    """Print the tables of the report that :func:`write` wrote to ``path``."""
    console = console or Console(width=max(Console().width, 130))  # the table is wide; do not truncate it
    console.print(table(summary, config.alpha))
    console.print(f"truth: {_truth_line(truths)}.")
    if learning is not None and not learning.empty:
        console.print(frame_table(_compact(learning), LEARNING_TITLE))
    if sessions is not None:
        console.print(table(sessions.summary, config.alpha, SESSIONS_TITLE))
        console.print(f"session truth (H = {config.horizon}): {_truth_line(sessions.truths)}.")
    if obd is not None:
        console.print(frame_table(obd, "Open Bandit Dataset: Bernoulli-TS click rate"))
    took = f" in {seconds:.0f}s" if seconds is not None else ""
    console.print(Text(f"Written to {path}{took}."))  # the path as it is: "[exp]" is no markup


def _write_files(out: Path, config, runs, truths, summary, obd, plots, learning, sessions) -> None:
    runs.to_csv(out / "runs.csv", index=False)
    truths.to_csv(out / "truths.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    if learning is not None and not learning.empty:
        learning.to_csv(out / "learning.csv", index=False)
    if sessions is not None:
        for name, frame in zip(("runs", "truths", "summary"), sessions):
            frame.to_csv(out / f"sessions_{name}.csv", index=False)
    if obd is not None:
        obd.to_csv(out / "obd.csv", index=False)
    (out / "summary.md").write_text(markdown(config, truths, summary, obd, learning, sessions))
    if plots:
        rmse_plot(summary, out / "rmse.png")
        coverage_plot(summary, config.alpha, out / "coverage.png")
        if sessions is not None:
            rmse_plot(sessions.summary, out / "sessions_rmse.png", unit="clicks per episode", size="trajectories")
            coverage_plot(sessions.summary, config.alpha, out / "sessions_coverage.png")


def _compact(learning: pd.DataFrame) -> pd.DataFrame:
    """The learning table narrow enough for a terminal: values as ``V +- s.e.``, 3 decimals."""
    compact = learning[["logging", "policy"]].copy()
    for name, label in (("logging_truth", "V logging"), ("truth", "V learned")):
        compact[label] = [f"{v:.3f}±{e:.3f}" for v, e in zip(learning[name], learning[f"{name}_se"])]
    compact["gain"] = [f"{v:+.3f}" for v in learning["gain"]]
    for name in learning.columns[7:]:
        compact[name] = [f"{v:.3f}" for v in learning[name]]
    return compact


def _truth_line(truths: pd.DataFrame) -> str:
    """Each target's value; a target whose value depends on the logging policy (a learned one)
    is named with it."""
    unique = truths.drop_duplicates(["target", "truth"])
    repeated = unique["target"].duplicated(keep=False)
    return "; ".join(f"{row.target}{f' ({row.logging})' if again else ''} V = {row.truth:.4f} "
                     f"(s.e. {row.truth_se:.4f})" for row, again in zip(unique.itertuples(), repeated))


def _formatted(summary: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in summary.itertuples():
        rows.append([row.logging, row.target, str(row.n), row.estimator, f"{row.truth:.4f}", f"{row.truth_se:.4f}",
                     _num(row.bias, "+.4f"), _num(row.rmse, ".4f"), _num(row.coverage, ".2f"),
                     _num(row.ci_width, ".4f"), f"{row.defined}/{row.runs}"])
    return rows


def _num(value: float, spec: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def table(summary: pd.DataFrame, alpha: float,
          title: str = "Estimator study: bias, RMSE and {level}-CI coverage against the true value") -> Table:
    """The summary as a rich table."""
    result = Table(title=title.format(level=f"{1 - alpha:.0%}"))
    for name in COLUMNS:
        result.add_column(name, justify="left" if name in ("logging", "target", "estimator") else "right")
    for row in _formatted(summary):
        result.add_row(*row)
    return result


def frame_table(frame: pd.DataFrame, title: str) -> Table:
    """Any small DataFrame as a rich table."""
    result = Table(title=title)
    for name in frame.columns:
        result.add_column(str(name))
    for row in frame.itertuples(index=False):
        result.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    return result


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(config, truths: pd.DataFrame, summary: pd.DataFrame, obd: pd.DataFrame | None,
             learning: pd.DataFrame | None = None, sessions: Section | None = None) -> str:
    """``summary.md``: truths, the summary table, the learning, session and OBD sections, settings."""
    parts = [
        "# Off-policy estimator study", "",
        f"Truth (exact expected clicks per slate, Monte Carlo over held-out users): {_truth_line(truths)}.", "",
        _markdown_table(list(COLUMNS), _formatted(summary)), "",
        ("`defined` counts the runs on which the estimator was defined (of all runs); bias and RMSE are over "
         "those, coverage and CI width over those of them with an interval (a self-normalised estimator defined on "
         "too few bootstrap resamples has none). DM's and cascade DR's intervals refit the click model on every "
         "resample (Student-t interval "
         f"from {config.n_refits} refits; none where fewer than 95% of them are defined: a resample of fewer "
         f"distinct slates than the {config.n_folds} folds of the click model has no estimate); the others "
         "resample logged slates."),
    ]
    if learning is not None and not learning.empty:
        parts += ["", "## Off-policy learning", "",
                  ("Policies learned from each logging policy's training log (IPS and DR objectives), checked "
                   "online in the simulator against the logging policy; the estimator columns are mean estimates "
                   "at the largest log size."), "", _frame_markdown(learning)]
    if sessions is not None:
        parts += ["", "## Sessions", "",
                  (f"Episodes of H = {plural(config.horizon, 'step')}; truth by on-policy Monte Carlo over "
                   f"{config.session_truth_users} held-out users (exact expected clicks per step): "
                   f"{_truth_line(sessions.truths)}. DR's, WDR's and FQE's intervals "
                   f"refit the Q-function on every resample ({config.session_refits} refits); FQE's adds its "
                   "estimated bias |FQE - DR|."), "",
                  _markdown_table(list(COLUMNS), _formatted(sessions.summary))]
    if obd is not None:
        parts += ["", "## Open Bandit Dataset", "", _frame_markdown(obd)]
    parts += ["", "Settings:", "", "```json", json.dumps(asdict(config), indent=1), "```"]
    return "\n".join(parts) + "\n"


def _frame_markdown(frame: pd.DataFrame) -> str:
    return _markdown_table([str(c) for c in frame.columns],
                           [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
                            for row in frame.itertuples(index=False)])


def rmse_plot(summary: pd.DataFrame, path: Path, unit: str = "clicks per slate", size: str = "logged slates") -> None:
    pairs = list(summary.groupby(["logging", "target"], sort=False).groups)
    fig = Figure(figsize=(4.2 * len(pairs), 3.8))
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (logging, target) in zip(axes, pairs):
        cell = summary[(summary["logging"] == logging) & (summary["target"] == target)]
        for estimator, rows in cell.groupby("estimator", sort=False):
            ax.plot(rows["n"], rows["rmse"], marker="o", label=estimator)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{logging} -> {target}", fontsize=10)
        ax.set_xlabel(size)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"RMSE ({unit})")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def coverage_plot(summary: pd.DataFrame, alpha: float, path: Path) -> None:
    largest = summary[summary["n"] == summary["n"].max()]
    pairs = list(largest.groupby(["logging", "target"], sort=False).groups)
    estimators = list(dict.fromkeys(largest["estimator"]))
    fig = Figure(figsize=(max(6.0, 0.9 * len(pairs) * len(estimators) / 3), 3.8))
    ax = fig.subplots()
    width = 0.8 / len(estimators)
    for j, estimator in enumerate(estimators):
        rows = largest[largest["estimator"] == estimator].set_index(["logging", "target"])
        heights = [rows["coverage"].get(pair, np.nan) for pair in pairs]
        ax.bar(np.arange(len(pairs)) + j * width, heights, width, label=estimator)
    ax.axhline(1 - alpha, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(pairs)) + 0.4 - width / 2, [f"{a} -> {b}" for a, b in pairs], fontsize=8)
    ax.set_ylabel(f"coverage of the {1 - alpha:.0%} CI")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"CI coverage at n = {int(summary['n'].max())}", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
