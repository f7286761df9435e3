"""MNAR debiasing on RecoWorld's statistical users: naive, IPS and DR matrix factorisation.

Draws :func:`~recoworld.apps.ope.mnar_world.statistical_mnar_world` (users rate what they
click) per seed and prints the mean squared error of each model on every user-item pair's
expected rating, with propensities from naive Bayes, the logistic model and the truth.

    python benchmarks/ope_mnar.py [--seeds 3] [--users 200] [--items 300] [--shown 0.2]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from recoworld.apps.ope.mnar_world import statistical_mnar_world
from recoworld.ope.mnar import compare_on_all_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--shown", type=float, default=0.2, help="probability that a user is shown an item")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    start = time.perf_counter()
    for seed in range(args.seeds):
        world = statistical_mnar_world(args.users, args.items, shown=args.shown, seed=seed)
        row = {"seed": seed, "observed": world["observed"].mean(),
               "mean rating seen": world["ratings"][world["observed"]].mean(), "mean true": world["truth"].mean()}
        for source in ("naive_bayes", "logistic", "true"):
            errors = compare_on_all_pairs(world, propensities=source)
            row["naive MF"] = errors["naive"]
            row[f"IPS ({source})"], row[f"DR ({source})"] = errors["ips"], errors["dr"]
        rows.append(row)
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
