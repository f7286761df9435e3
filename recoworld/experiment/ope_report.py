"""What ``recoworld ope`` writes into its output directory, and prints.

- ``summary.csv`` / ``summary.md``: one row per (logging, target, n, estimator): the true
  value and its standard error, bias, RMSE, CI coverage, mean CI width, and runs on which
  the estimator was defined (of all runs). The markdown also holds the truths, the
  settings and, with ``--obd``, the Open Bandit Dataset section (``obd.csv``).
- ``runs.csv``: every estimate and interval of every run; ``truths.csv``.
- ``rmse.png``: RMSE against log size, one panel per (logging, target) pair, one line per
  estimator (log-log); ``coverage.png``: CI coverage at the largest log size, with the
  nominal level drawn in.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

COLUMNS = ("logging", "target", "n", "estimator", "truth", "bias", "rmse", "coverage", "ci_width", "defined")


def write(out: Path, config, runs: pd.DataFrame, truths: pd.DataFrame, summary: pd.DataFrame,
          obd: pd.DataFrame | None = None, plots: bool = True, seconds: float | None = None,
          console: Console | None = None) -> None:
    """Write every file of the module docstring into ``out`` and print the tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console(width=max(Console().width, 120))  # the table is wide; do not truncate it
    runs.to_csv(out / "runs.csv", index=False)
    truths.to_csv(out / "truths.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    if obd is not None:
        obd.to_csv(out / "obd.csv", index=False)
    (out / "summary.md").write_text(markdown(config, truths, summary, obd))
    if plots:
        rmse_plot(summary, out / "rmse.png")
        coverage_plot(summary, config.alpha, out / "coverage.png")
    console.print(table(summary, config.alpha))
    if obd is not None:
        console.print(frame_table(obd, "Open Bandit Dataset: Bernoulli-TS click rate"))
    took = f" in {seconds:.0f}s" if seconds is not None else ""
    console.print(f"truth: {_truth_line(truths)}. Written to {out}{took}.")


def _truth_line(truths: pd.DataFrame) -> str:
    return "; ".join(f"{row.target} V = {row.truth:.4f} (s.e. {row.truth_se:.4f})" for row in truths.itertuples())


def _formatted(summary: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in summary.itertuples():
        rows.append([row.logging, row.target, str(row.n), row.estimator, f"{row.truth:.4f}", _num(row.bias, "+.4f"),
                     _num(row.rmse, ".4f"), _num(row.coverage, ".2f"), _num(row.ci_width, ".4f"),
                     f"{row.defined}/{row.runs}"])
    return rows


def _num(value: float, spec: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def table(summary: pd.DataFrame, alpha: float) -> Table:
    """The summary as a rich table."""
    result = Table(title=f"Estimator study: bias, RMSE and {1 - alpha:.0%}-CI coverage against the true value")
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


def markdown(config, truths: pd.DataFrame, summary: pd.DataFrame, obd: pd.DataFrame | None) -> str:
    """``summary.md``: settings, truths, the summary table and the OBD section."""
    parts = [
        "# Off-policy estimator study", "",
        f"Truth (exact expected clicks per slate, Monte Carlo over held-out users): {_truth_line(truths)}.", "",
        _markdown_table(list(COLUMNS), _formatted(summary)), "",
        "`defined` counts the runs on which the estimator was defined (of all runs); bias, RMSE and coverage "
        "are over those.", "",
        "Settings:", "", "```json", json.dumps(asdict(config), indent=1), "```",
    ]
    if obd is not None:
        parts += ["", "## Open Bandit Dataset", "",
                  _markdown_table([str(c) for c in obd.columns],
                                  [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
                                   for row in obd.itertuples(index=False)])]
    return "\n".join(parts) + "\n"


def rmse_plot(summary: pd.DataFrame, path: Path) -> None:
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
        ax.set_xlabel("logged slates")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("RMSE (clicks per slate)")
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
