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

The mean importance weight tests the log itself (:func:`~recoworld.ope.diagnostics.support_problem`):
where it is surely below 1, the target gives probability to choices the logger never
makes and the estimates of that layout of weights are *not identified*; where it is surely
above 1, the logged propensities are not the logger's. Either way the verdict says so and
the estimates it touches are printed as ``-`` (their numbers stay in the files, with the
``note``). It prints a table and writes ``report.json`` and ``estimates.csv`` into
``--out``, a new or empty folder, whole or not at all; each estimate row holds
``estimator``, ``estimate``, ``lower``, ``upper``, ``interval`` (``rows``: resampled rounds;
``refit``: the model refitted on every resample), ``n_replicates`` (the bootstrap
replicates a ``rows`` interval rests on, fewer than ``--bootstrap`` where a self-normalised
estimator is undefined on some resamples; empty for ``refit``, unless some of the
``--refits`` left SNDR undefined: then it counts those that defined it) and ``note``. Where
too few resamples leave it defined for an interval, the estimate stands and the bounds are
empty (``null``), noted :data:`~recoworld.apps.ope.judgement.UNDEFINED_INTERVAL`.

A limit of these checks: propensities that are too *large* lower the weights, which reads
as a target partly outside the log's support, and goes unnoticed while the mean weight is
not surely below 1. On a slate log, a whole slate's ``propensity`` is also held against
the log's ``position_propensity`` (a slate is never more probable than one of its items at
its position) and ``cascade_propensity`` (the full prefix is the whole slate), which
refuse, for instance, the top position's probability logged as the slate's; a log with
only a ``propensity`` column (or a table's ``pscore``) carries no such check: make sure it
is the probability of the whole logged choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.apps.interrupts import write_then_show
from recoworld.apps.ope import sources
from recoworld.apps.ope.judgement import UNDEFINED, judge
from recoworld.logs import check_new_folder, new_folder, strict_json
from recoworld.ope.base import check_resamples
from recoworld.ope.diagnostics import (
    INCONSISTENT,
    MIN_ESS,
    NOT_IDENTIFIED,
)
from recoworld.ope.selection import MAX_RELATIVE_RMSE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recoworld ope evaluate",
        description="Estimate a policy's value from a log: every applicable estimator with bootstrap intervals, "
                    "weight diagnostics, and the estimator recommended by simulation (simulate-then-select).",
        epilog="Propensities are checked against what they imply: weights averaging surely above 1 are not the "
               "logger's; a slate's propensity above its position_propensity, or unlike its cascade_propensity's "
               "full prefix, is refused. A log with only a whole-slate propensity (or a table's pscore) that is "
               "too large, such as the top position's probability logged as the slate's, cannot be told from its "
               "log: it lowers the weights, and is reported only once they average surely below 1 (as a target "
               "the log does not identify).")
    p.add_argument("--log", required=True, help="episodes.parquet or a run directory; obd or obd:FOLDER; a CSV/Parquet table")
    p.add_argument("--policy", required=True, help="agent config name, module:Attribute (a module of the current "
                                                   "folder, or FILE.py:Attribute), or an SB3 model .zip")
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
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples of the row intervals (at least 2 / alpha - 1: 39 at --alpha 0.05)")
    p.add_argument("--refits", type=int, default=20, help="reward-model refits behind DM/DR intervals")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default: 0.05)")
    p.add_argument("--sims", type=int, default=20, help="simulated logs behind the recommendation")
    p.add_argument("--truth-users", type=int, default=5000, help="users behind each simulated truth (slate logs)")
    p.add_argument("--min-ess", type=float, default=MIN_ESS, help="effective sample size below which no "
                                                                 "weighting estimate is trusted")
    p.add_argument("--max-relative-rmse", type=float, default=MAX_RELATIVE_RMSE,
                   help="simulated RMSE, as a share of the simulated value above the floor of the logged "
                        "rewards (their 1%% quantile; 0 for 0/1 rewards), above which no estimate is trusted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("ope_evaluation"), help="output directory (default: %(default)s)")
    return p


#: Each numeric flag's smallest value and why, checked before any work (``--alpha`` and
#: ``--max-relative-rmse`` have their own checks in :func:`check_flags`, as has ``--bootstrap``,
#: whose least count depends on ``--alpha``: 0 is refused with the same sentence as 38).
LEAST = {"refits": (2, "refits, for a standard error"),
         "sims": (2, "simulated logs, for an RMSE"), "truth_users": (2, "users, for a standard error"),
         "min_ess": (0, "(0: no threshold)"), "seed": (0, "(a seed is not negative)"),
         "n_actions": (1, "actions")}


def check_flags(args, p: argparse.ArgumentParser) -> None:
    """Refuse a flag out of its range before any work, naming the flag (not the setting
    deep inside the estimators that it feeds)."""
    for name, (least, why) in LEAST.items():
        value = getattr(args, name)
        if value is not None and not value >= least:  # NaN too: --min-ess nan would trust every estimate
            p.error(f"--{name.replace('_', '-')} {value}; give {least} or more {why}")
    if not 0 < args.alpha < 1:
        p.error(f"--alpha {args.alpha}; give a number in (0, 1), e.g. 0.05 for 95% intervals")
    try:  # too few resamples for the level: refused here, not after the log and the policy are read
        check_resamples(args.bootstrap, args.alpha, "--bootstrap")
    except ValueError as error:
        p.error(str(error))
    if not args.max_relative_rmse > 0:
        p.error(f"--max-relative-rmse {args.max_relative_rmse}; give a share above 0, e.g. 0.25: the largest "
                "simulated RMSE trusted, as a share of the simulated value above the floor of the logged rewards "
                "(their 1% quantile; 0 for 0/1 rewards)")


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
    dist, unsteady = policy_distribution(args.policy, policy, frame, n_actions, n_positions)
    problem = BanditProblem(feedback, dist, sources.features_of(context, n_actions, n_positions, len(frame)))
    diagnostics = {"action": bandit_diagnostics(problem)}
    rows = evaluate_bandit(problem, args.bootstrap, args.refits, args.alpha, args.seed)
    selection = simulate_then_select(problem, args.sims, args.seed)
    layout = {name: "action" for name in ("IPS", "SNIPS", "DM", "DR", "SNDR")}
    trusted, sentence, warnings = judge(rows, diagnostics, layout, ("IPS", "SNIPS", "DR", "SNDR"), selection,
                                        args, {"action": "pscore"})
    return {"kind": "bandit", "n": feedback.n_rounds, "n_actions": n_actions, "n_positions": n_positions,
            "estimates": rows, "diagnostics": diagnostics, "selection": asdict(selection),
            "verdict": {"trustworthy": trusted, "sentence": sentence}, "warnings": [*unsteady, *warnings]}


def policy_distribution(spec: str, policy, frame: pd.DataFrame, n_actions: int,
                        n_positions: int) -> tuple[np.ndarray, list[str]]:
    """``(dist, warnings)``: ``policy.action_dist`` on the logged rows, checked (one probability
    distribution over the ``n_actions`` actions per row and position), and a warning when a
    second call on the same rows gives other probabilities: a policy that samples, or draws
    from an unseeded generator, changes the report from run to run whatever ``--seed``."""
    dist = _asked(spec, policy, frame, n_actions, n_positions)
    again = _asked(spec, policy, frame, n_actions, n_positions)
    changed = ~np.isclose(dist, again, rtol=0, atol=1e-9)
    if not changed.any():
        return dist, []
    row, action, position = np.argwhere(changed)[0]
    return dist, [f"--policy {spec!r}: action_dist gave other probabilities when asked again about the same rows "
                  f"({int(changed.any((1, 2)).sum())} of {len(frame)} rows; row {row + 1}, action {action}, position "
                  f"{position}: {dist[row, action, position]:.4g}, then {again[row, action, position]:.4g}): these "
                  "estimates will not repeat, whatever --seed; return the policy's probabilities rather than a "
                  "sampled choice, and seed any randomness it needs (e.g. with a --policy-arg seed=0)"]


def _asked(spec: str, policy, frame: pd.DataFrame, n_actions: int, n_positions: int) -> np.ndarray:
    """One call of ``policy.action_dist``, checked; an error the policy raises is a usage
    error naming it and where it was raised."""
    from recoworld.apps.ope.policies import raised
    from recoworld.ope import _validation as v

    try:
        given = policy.action_dist(frame, n_actions, n_positions)
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        raise ValueError(f"--policy {spec!r}: action_dist(rows, n_actions={n_actions}, n_positions={n_positions}) "
                         f"raised {raised(error)}; fix the policy (call it on the log's rows in Python for the "
                         "traceback)") from None
    try:
        dist = v.to_numpy(given, "action_dist")
        # the actions' axis first: a distribution over the wrong axis also fails to sum to 1,
        # and that message would hide the cause
        if dist.ndim in (2, 3) and dist.shape[0] == len(frame) and dist.shape[1] != n_actions:
            raise ValueError(f"action_dist gave {v.plural(dist.shape[1], 'action')} per row, but the log has "
                             f"{n_actions} (ids 0..{n_actions - 1}); return shape (len(rows), n_actions, n_positions), "
                             "or set n_actions with --n-actions")
        return v.action_distribution(dist, len(frame), n_positions)
    except (ValueError, TypeError) as error:
        raise ValueError(f"--policy {spec!r}: {error}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld ope evaluate [flags]`` (see ``--help``)."""
    p = parser()
    args = p.parse_args(argv)
    check_flags(args, p)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a directory (it receives report.json and estimates.csv)")
    try:
        check_new_folder(args.out)  # before any work: an earlier report there is never overwritten
    except ValueError as error:
        p.error(str(error))
    final = write_then_show("recoworld ope evaluate", args.out, lambda: _evaluate(args, p),
                            lambda folder, report: show(report))
    print(f"Written to {final}.")
    return 0


def _evaluate(args, p: argparse.ArgumentParser) -> tuple[Path, dict]:
    """Read the log, evaluate the policy on it and write the report; returns the report's
    folder and the report."""
    try:
        kind = sources.guess_format(args.log) if args.format == "auto" else args.format
        if kind == "recoworld":
            from recoworld.apps.ope.slate_evaluation import evaluate_slate_log

            # First, as the minutes of simulation should not hide it (a run without a
            # complete rollout is refused); the report keeps it with its warnings.
            unfinished = sources.unfinished_run(args.log)
            if unfinished:
                print(f"recoworld ope evaluate: warning: {unfinished}", file=sys.stderr)
            report = evaluate_slate_log(args)
            report["warnings"] += [unfinished] if unfinished else []
        else:
            read = sources.read_obd(args.log, args.obd_policy, args.obd_campaign) if kind == "obd" \
                else sources.read_table(args.log, args.n_actions)
            repeated = sources.repeated_rows(read[0], args.log) if kind == "table" else None
            report = evaluate_bandit_log(args, *read)
            report["warnings"] += [repeated] if repeated else []
    except (ValueError, TypeError, FileNotFoundError) as error:
        p.error(str(error))
    report = {"log": args.log, "format": kind, "policy": args.policy, "alpha": args.alpha, **report}
    return write(report, args.out), report


def write(report: dict, out: Path) -> Path:
    """``report.json`` (strict JSON: an undefined estimate is ``null``) and ``estimates.csv`` in
    the new folder ``out`` (:func:`recoworld.logs.new_folder`): both or neither, so an
    interrupted run leaves no report, and never one file of this run beside one of another."""
    with new_folder(out) as written:
        folder = written.folder
        (folder / "report.json").write_text(json.dumps(strict_json(report), indent=2, allow_nan=False))
        estimates = pd.DataFrame(report["estimates"])
        # a count with gaps (refitted intervals have none) stays a count: 1000, not 1000.0
        counts = {"n_replicates": "Int64"} if "n_replicates" in estimates else {}
        estimates.astype(counts).to_csv(folder / "estimates.csv", index=False)
    return written.path


def show(report: dict) -> None:
    """The estimates, the diagnostics and the verdict as rich tables. The log's path, the
    policy's name and the sentences that quote them are printed as they are, never read as
    rich markup: ``runs/[exp]/log.parquet`` keeps its ``[exp]``, and a ``[/x]`` raises no
    MarkupError after the report is written."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=max(Console().width, 130))  # the tables are wide; do not truncate them
    selection = report["selection"]
    value = f"{report['value']}, " if "value" in report else ""  # a slate log's reward (bandit logs: the table's)
    table = Table(title=Text(f"{report['policy']} on {report['log']} ({report['n']} rounds, {value}"
                             f"{1 - report['alpha']:.0%} CI)", style="table.title"))
    noted = any(row.get("note") for row in report["estimates"])
    columns = ("estimator", "estimate", "lower", "upper", "interval", "sim. bias", "sim. RMSE", "note")
    for column in columns if noted else columns[:-1]:
        table.add_column(column, justify="left" if column in ("estimator", "interval", "note") else "right")
    for row in report["estimates"]:
        name, note = row["estimator"], row.get("note", "")
        mark = " *" if name == selection["recommended"] else ""
        # an estimate the log does not identify, one of wrong propensities, or one the log
        # leaves undefined (NaN) is no number to read; nor are the NaN bounds of an interval
        # refused for too few defined resamples, whose estimate stands
        hidden = note in (NOT_IDENTIFIED, INCONSISTENT, UNDEFINED)
        table.add_row(name + mark, *("-" if hidden or not np.isfinite(row[k]) else f"{row[k]:.4f}"
                                     for k in ("estimate", "lower", "upper")),
                      row["interval"], _number(selection["bias"].get(name), "+.4f"),
                      _number(selection["rmse"].get(name), ".4f"), *([note] if noted else []))
    console.print(table)
    weights = Table(title="importance weights")
    keys = ("n", "ess", "ess_share", "mean_weight", "max_weight", "top1_share", "zero_share")
    weights.add_column("weights")
    for key in keys:
        weights.add_column(key, justify="right")
    for layout, values in report["diagnostics"].items():
        weights.add_row(layout, *(_number(values[k], ".4g") for k in keys))
    console.print(weights)
    console.print(Text.assemble((report["verdict"]["sentence"], "bold"), f" (protocol: {selection['protocol']})"))
    for warning in report.get("warnings", []):
        console.print(Text.assemble(("warning:", "yellow"), f" {warning}"))


def _number(value, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``-`` where it is no number: an estimator undefined
    on every simulated log has no bias nor RMSE, and weights that are all 0 have no top-1 %
    share; the files hold ``null``."""
    return f"{value:{spec}}" if value is not None and np.isfinite(value) else "-"
