"""Coverage of the model-based OPE intervals: how often each ``1 - alpha`` interval holds the truth.

Runs the estimators of ``recoworld ope`` whose intervals refit a model on every resample,
over ``--seeds`` logs each, and prints per (section, target, estimator) the share of logs
whose interval covered the on-policy truth, with a Clopper-Pearson 95 % interval of that
share, the mean interval width, bias and RMSE:

- the slate study (:class:`~recoworld.apps.ope.study.Study`): DM and cascade DR, the click
  model refitted on each of ``--slate-refits`` resamples;
- the session study (:class:`~recoworld.apps.ope.sessions.SessionStudy`): per-decision DR,
  weighted DR and FQE, the Q-function refitted on each of ``--session-refits`` resamples,
  FQE's interval widened by its estimated bias.

Both log with the epsilon-soft policy; the truths are on-policy Monte Carlo as in the study.

    python benchmarks/ope_coverage.py                   # 20 seeds, about 15 minutes on 2 cores
    python benchmarks/ope_coverage.py --seeds 5 --session-targets softmax
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import beta
from threadpoolctl import threadpool_limits

from recoworld.apps.ope.config import StudyConfig, make_policy
from recoworld.apps.ope.sessions import SessionStudy
from recoworld.apps.ope.study import Study
from recoworld.catalog import Catalog


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of a coverage ``hits / n``."""
    tail = (1 - level) / 2
    lower = beta.ppf(tail, hits, n - hits + 1) if hits > 0 else 0.0
    upper = beta.ppf(1 - tail, hits + 1, n - hits) if hits < n else 1.0
    return float(lower), float(upper)


def slate_runs(args) -> pd.DataFrame:
    config = StudyConfig(estimators=("DM", "CascadeDR"), learned=(), n_refits=args.slate_refits,
                         truth_users=args.truth_users, targets=tuple(args.slate_targets))
    study = Study(config)
    targets = {name: make_policy(name, config, "target") for name in config.targets}
    truth = {name: study.true_value(target)[0] for name, target in targets.items()}
    rows = []
    for seed in range(args.seeds):
        log = study.log(make_policy("epsilon_soft", config, "logging"), args.slate_n, seed)
        rows += [{"section": "slate", "seed": seed, **row} for row in study.estimate(log, targets, seed)]
    return pd.DataFrame(rows).assign(truth=lambda f: f["target"].map(truth))


def session_runs(args) -> pd.DataFrame:
    config = StudyConfig(session_estimators=("DR", "WDR", "FQE"), session_refits=args.session_refits,
                         session_truth_users=args.truth_users, targets=tuple(args.session_targets))
    study = SessionStudy(config, Catalog.synthetic(config.n_items, seed=0))
    targets = {name: make_policy(name, config, "target") for name in config.targets}
    truth = {name: study.true_value(target)[0] for name, target in targets.items()}
    rows = []
    for seed in range(args.seeds):
        data = study.trajectories(study.log(make_policy("epsilon_soft", config, "logging"), args.session_n, seed))
        for target in targets.values():
            target.setup(study.env(1), seed=0)
        rows += [{"section": "session", "seed": seed, **row} for row in study.estimate(data, targets, seed)]
    return pd.DataFrame(rows).assign(truth=lambda f: f["target"].map(truth))


def coverage_table(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.assign(covered=(runs["lower"] <= runs["truth"]) & (runs["truth"] <= runs["upper"]),
                       width=runs["upper"] - runs["lower"], error=runs["estimate"] - runs["truth"])
    rows = []
    for (section, target, estimator), cell in runs.groupby(["section", "target", "estimator"], sort=False):
        hits, n = int(cell["covered"].sum()), len(cell)
        low, high = clopper_pearson(hits, n)
        rows.append({"section": section, "target": target, "estimator": estimator, "covered": f"{hits}/{n}",
                     "coverage": hits / n, "95% CI": f"{low:.2f}-{high:.2f}", "width": cell["width"].mean(),
                     "bias": cell["error"].mean(), "rmse": float(np.sqrt((cell["error"] ** 2).mean())),
                     "truth": cell["truth"].iloc[0]})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="logs per section (default: %(default)s)")
    parser.add_argument("--slate-n", type=int, default=500, help="slates per slate log")
    parser.add_argument("--session-n", type=int, default=500, help="trajectories per session log")
    parser.add_argument("--slate-refits", type=int, default=20, help="click-model refits per interval")
    parser.add_argument("--session-refits", type=int, default=5, help="Q-function refits per interval")
    parser.add_argument("--slate-targets", nargs="+", default=["greedy", "softmax"])
    parser.add_argument("--session-targets", nargs="+", default=["greedy", "softmax"],
                        help="softmax is the hard case: the log rarely shows its slates")
    parser.add_argument("--truth-users", type=int, default=20_000, help="on-policy Monte Carlo users")
    parser.add_argument("--skip", choices=["slate", "session"], help="leave one section out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    with threadpool_limits(limits=1):
        for section, run in (("slate", slate_runs), ("session", session_runs)):
            if args.skip != section:
                start = time.perf_counter()
                runs.append(run(args))
                print(f"{section}: {time.perf_counter() - start:.0f} s", flush=True)
    table = coverage_table(pd.concat(runs, ignore_index=True))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
