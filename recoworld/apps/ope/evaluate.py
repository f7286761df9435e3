"""``recoworld ope evaluate --log PATH --policy POLICY``: your policy's value on your log.

The command reads a log (:mod:`recoworld.apps.ope.sources`: a RecoWorld run, the Open
Bandit Dataset, or a CSV/Parquet table), loads the policy
(:mod:`recoworld.apps.ope.policies`), computes its action distribution on the logged rows
and reports every applicable estimator with its ``1 - alpha`` interval (a percentile
bootstrap over rows for the weighting estimators; the model-based ones, DM and the doubly
robust forms, refit their reward model on every resample), the importance weights'
diagnostics (:mod:`recoworld.ope.diagnostics`), and the estimator it recommends for this
log, chosen by simulation (simulate-then-select: single-action logs in worlds built from
the log, :mod:`recoworld.ope.selection`; slate logs with RecoWorld's users, see
:func:`select_for_slates`), with a plain verdict on whether any estimate deserves trust.
It prints a table and writes ``report.json`` and ``estimates.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.apps.ope import sources
from recoworld.logs import replacing, strict_json
from recoworld.ope.diagnostics import MIN_ESS
from recoworld.ope.selection import MAX_RELATIVE_RMSE, verdict


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recoworld ope evaluate",
        description="Estimate a policy's value from a log: every applicable estimator with bootstrap intervals, "
                    "weight diagnostics, and the estimator recommended by simulation (simulate-then-select).")
    p.add_argument("--log", required=True, help="episodes.parquet or a run directory; obd or obd:FOLDER; a CSV/Parquet table")
    p.add_argument("--policy", required=True, help="agent config name, module:Attribute, or an SB3 model .zip")
    p.add_argument("--format", choices=sources.FORMATS, default="auto", help="layout of --log (default: guessed)")
    p.add_argument("--policy-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of a module:Class policy (repeatable; values parsed as YAML)")
    p.add_argument("--world", default=None, help="conf/world config of a RecoWorld log (default: the run's own, "
                                                 "else synthetic)")
    p.add_argument("--override", action="append", default=[], help="Hydra override for an agent config (repeatable)")
    p.add_argument("--agent", default=None, help="the log's agent label, when it holds several")
    p.add_argument("--sb3-algo", default="PPO", help="algorithm of an SB3 .zip (default: PPO)")
    p.add_argument("--obd-policy", default="random", choices=("random", "bts"), help="OBD behaviour policy")
    p.add_argument("--obd-campaign", default="all", choices=("all", "men", "women"), help="OBD campaign")
    p.add_argument("--n-actions", type=int, default=None, help="actions of a table log (default: largest + 1)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the row intervals")
    p.add_argument("--refits", type=int, default=20, help="reward-model refits behind DM/DR intervals")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default: 0.05)")
    p.add_argument("--sims", type=int, default=20, help="simulated logs behind the recommendation")
    p.add_argument("--truth-users", type=int, default=5000, help="users behind each simulated truth (slate logs)")
    p.add_argument("--min-ess", type=float, default=MIN_ESS, help="effective sample size below which no "
                                                                 "weighting estimate is trusted")
    p.add_argument("--max-relative-rmse", type=float, default=MAX_RELATIVE_RMSE,
                   help="simulated relative RMSE above which no estimate is trusted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("ope_evaluation"), help="output directory")
    return p


def evaluate_bandit_log(args, frame: pd.DataFrame, feedback, context, n_actions: int) -> dict:
    """The report of a single-action log (table or OBD)."""
    from recoworld.apps.ope.policies import load_object, policy_kwargs
    from recoworld.ope.evaluation import (
        BanditProblem,
        bandit_diagnostics,
        evaluate_bandit,
    )
    from recoworld.ope.selection import simulate_then_select

    if ":" not in args.policy:
        raise ValueError(f"--policy {args.policy!r}: a table or OBD log needs a bandit policy given as "
                         "module:Attribute, with action_dist(rows, n_actions, n_positions)")
    policy = load_object(args.policy, policy_kwargs(args.policy_arg))
    if not callable(getattr(policy, "action_dist", None)):
        raise TypeError(f"--policy {args.policy!r} has no action_dist(rows, n_actions, n_positions); "
                         "see recoworld.apps.ope.policies")
    n_positions = int(feedback.position_or_zero.max()) + 1
    dist = policy_distribution(args.policy, policy, frame, n_actions, n_positions)
    problem = BanditProblem(feedback, dist, sources.features_of(context, n_actions, n_positions, len(frame)))
    diagnostics = bandit_diagnostics(problem)
    rows = evaluate_bandit(problem, args.bootstrap, args.refits, args.alpha, args.seed)
    selection = simulate_then_select(problem, args.sims, args.seed)
    trusted, sentence = verdict(selection, diagnostics["ess"], args.min_ess, args.max_relative_rmse)
    return {"kind": "bandit", "n": feedback.n_rounds, "n_actions": n_actions, "n_positions": n_positions,
            "estimates": rows, "diagnostics": {"action": diagnostics}, "selection": asdict(selection),
            "verdict": {"trustworthy": trusted, "sentence": sentence}}


def policy_distribution(spec: str, policy, frame: pd.DataFrame, n_actions: int, n_positions: int) -> np.ndarray:
    """``policy.action_dist`` on the logged rows, checked: one probability distribution over
    the ``n_actions`` actions per row and position."""
    from recoworld.ope import _validation as v

    try:
        dist = v.action_distribution(policy.action_dist(frame, n_actions, n_positions), len(frame), n_positions)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--policy {spec!r}: {error}") from None
    if dist.shape[1] != n_actions:
        raise ValueError(f"--policy {spec!r}: action_dist gave {dist.shape[1]} actions per row, but the log has "
                         f"{n_actions} (ids 0..{n_actions - 1}); return shape (len(rows), n_actions, n_positions), "
                         "or set n_actions with --n-actions")
    return dist


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld ope evaluate [flags]`` (see ``--help``)."""
    p = parser()
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a directory (it receives report.json and estimates.csv)")
    try:
        kind = sources.guess_format(args.log) if args.format == "auto" else args.format
        if kind == "recoworld":
            from recoworld.apps.ope.slate_evaluation import evaluate_slate_log

            report = evaluate_slate_log(args)
        else:
            read = sources.read_obd(args.log, args.obd_policy, args.obd_campaign) if kind == "obd" \
                else sources.read_table(args.log, args.n_actions)
            report = evaluate_bandit_log(args, *read)
    except (ValueError, TypeError, FileNotFoundError) as error:
        p.error(str(error))
    report = {"log": args.log, "format": kind, "policy": args.policy, "alpha": args.alpha, **report}
    write(report, args.out)
    show(report)
    return 0


def write(report: dict, out: Path) -> None:
    """``report.json`` (strict JSON: an undefined estimate is ``null``) and ``estimates.csv`` in
    ``out``; each is written whole or not at all, so an interrupted run leaves no partial file."""
    out.mkdir(parents=True, exist_ok=True)
    with replacing(out / "report.json") as path:
        path.write_text(json.dumps(strict_json(report), indent=2, allow_nan=False))
    with replacing(out / "estimates.csv") as path:
        pd.DataFrame(report["estimates"]).to_csv(path, index=False)


def show(report: dict) -> None:
    """The estimates, the diagnostics and the verdict as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    selection = report["selection"]
    table = Table(title=f"{report['policy']} on {report['log']} ({report['n']} rounds, {1 - report['alpha']:.0%} CI)")
    for column in ("estimator", "estimate", "lower", "upper", "interval", "sim. bias", "sim. RMSE"):
        table.add_column(column, justify="left" if column in ("estimator", "interval") else "right")
    for row in report["estimates"]:
        name = row["estimator"]
        mark = " *" if name == selection["recommended"] else ""
        table.add_row(name + mark, *(f"{row[k]:.4f}" for k in ("estimate", "lower", "upper")), row["interval"],
                      f"{selection['bias'].get(name, float('nan')):+.4f}", f"{selection['rmse'].get(name, float('nan')):.4f}")
    console.print(table)
    weights = Table(title="importance weights")
    keys = ("n", "ess", "ess_share", "mean_weight", "max_weight", "top1_share", "zero_share")
    weights.add_column("weights")
    for key in keys:
        weights.add_column(key, justify="right")
    for layout, values in report["diagnostics"].items():
        weights.add_row(layout, *(f"{values[k]:.4g}" for k in keys))
    console.print(weights)
    console.print(f"[bold]{report['verdict']['sentence']}[/bold] (protocol: {selection['protocol']})")
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
