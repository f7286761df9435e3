"""How well the calibration's return fit recovers known parameters (issue 17 point 4).

Logs drawn from the fit's own model (:func:`recoworld.apps.calibrate.dynamics.fit_returns`):
users of log activity ``N(0, spread^2)`` return with probability ``sigmoid(log 4 + log a)``
after Weibull gaps of mean ``5 days / a``, watched for 200 days; and logs in which most users
come back once, a share ``--several`` of them four times, after exponential gaps of their own
pace (shape 1), the case where a fit of every user's pace beside the shape read shapes of 10
and more. Printed per log: the true and the fitted return log-odds, mean gap, shape and spread,
and the fit's seconds (one torch thread).

Usage::

    python benchmarks/return_fit.py
    python benchmarks/return_fit.py --users 2000 --seeds 3
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_return_fit import returning_users  # noqa: E402  (the tests' generator of the model's logs)

from recoworld.apps.calibrate import dynamics  # noqa: E402
from recoworld.calibration.split import Sessions  # noqa: E402


def few_returning_several_times(n: int, share: float, seed: int) -> Sessions:
    """``n`` users of pace ``exp(N(0, 0.7^2))``, each coming back once after an exponential gap
    of mean 3 days / pace, a ``share`` of them four times."""
    rng = np.random.default_rng(seed)
    rows = []
    for user, pace in enumerate(np.exp(rng.normal(0, 0.7, n))):
        t = 1_000_000 + 3600 * user
        for gap in [*(3.0 / pace * rng.exponential(1.0, 4 if rng.random() < share else 1) + 0.05), None]:
            rows.append((user, t, t, 1, gap))
            t += (gap or 0) * 86_400
    table = pd.DataFrame(rows, columns=["user_id", "start", "end", "length", "next_gap_days"])
    return Sessions(table, table["end"].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| log | seed | return log-odds | mean gap (days) | shape | spread | seconds |")
    print("|---|---|---|---|---|---|---|")
    for shape, spread in ((1.0, 0.7), (1.0, 1.5), (0.6, 1.5)):
        for seed in range(args.seeds):
            sessions, _ = returning_users(args.users, spread=spread, shape=shape, seed=seed)
            start = time.perf_counter()
            fit = dynamics.fit_returns(sessions, args.users, weibull=True)
            print(f"| model, shape {shape}, spread {spread} (truth: {math.log(4):.3f} / 5.00) | {seed} | "
                  f"{fit.return_logit:.3f} | {fit.mean_gap_days:.2f} | {fit.gap_shape:.3f} | "
                  f"{fit.activity_spread:.3f} | {time.perf_counter() - start:.1f} |")
    for share in (0.1, 0.02):
        for seed in range(args.seeds):
            sessions = few_returning_several_times(args.users, share, seed)
            start = time.perf_counter()
            fit = dynamics.fit_returns(sessions, args.users, weibull=True)
            print(f"| {share:.0%} of users come back four times, shape 1 | {seed} | {fit.return_logit:.3f} | "
                  f"{fit.mean_gap_days:.2f} | {fit.gap_shape:.3f} | {fit.activity_spread:.3f} | "
                  f"{time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
