"""Throughput and peak memory of the vector env ``RecoWorld/Slate-v0``.

Prints user-steps per second for B = 1, 64, 1024, 16384 users with slates of K = 10, on a
MovieLens-sized catalog (1,682 items) and on a 100,000-item catalog, and the peak resident
memory of each configuration (measured in a fresh subprocess, so that each figure is that
configuration's own). Agents' time is excluded: the actions are fixed. Throughput is the
median of five windows of steps (the best window beside it); "CPU ms/step" counts every
thread, so above "ms/step" it shows the kernels' threads at work.

Usage::

    python benchmarks/sim_throughput.py            # full table
    python benchmarks/sim_throughput.py --quick    # B up to 1024, fewer steps
    python benchmarks/sim_throughput.py --no-candidate-features   # lean observations
    python benchmarks/sim_throughput.py --kernel c  # the simulator's fused C kernel
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

USERS = (1, 64, 1024, 16384)
CATALOGS = (1682, 100_000)
WINDOWS = 5


def measure(n_items: int, n_users: int, steps: int, candidate_features: bool, threads: int | None,
            kernel: str) -> dict:
    import resource
    import time

    import gymnasium as gym
    import numpy as np
    import torch

    import recoworld

    # One torch thread beside the C kernels, which run their own on every core: torch's
    # OpenMP workers spin after each parallel op and would keep the cores from them.
    torch.set_num_threads(threads or (1 if kernel == "c" else torch.get_num_threads()))
    catalog = recoworld.Catalog.synthetic(n_items, seed=0)
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=n_users, vectorization_mode="vector_entry_point",
                       catalog=catalog, slate_size=10, candidate_features=candidate_features, kernel=kernel)
    env.reset(seed=0)
    actions = np.tile(np.arange(10), (n_users, 1))
    for _ in range(3):  # warm-up: allocator and first-call costs
        env.step(actions)
    # Five windows, reported by their median: on a shared VM one window can be slowed by
    # other tenants (this machine's speed drifts by 20% over minutes).
    windows, per_window = [], max(1, steps // WINDOWS)
    cpu_start = time.process_time()
    for _ in range(WINDOWS):
        start = time.perf_counter()
        for _ in range(per_window):
            env.step(actions)
        windows.append((time.perf_counter() - start) / per_window)
    cpu = (time.process_time() - cpu_start) / (WINDOWS * per_window)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    median, best = sorted(windows)[WINDOWS // 2], min(windows)
    return {"items": n_items, "users": n_users, "user_steps_per_s": n_users / median,
            "best_user_steps_per_s": n_users / best, "ms_per_step": 1000 * median,
            "cpu_ms_per_step": 1000 * cpu, "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="B up to 1024 and fewer steps")
    parser.add_argument("--no-candidate-features", action="store_true",
                        help="leave candidate features out of observations (agents look them up)")
    parser.add_argument("--kernel", choices=("torch", "c"), default="torch",
                        help="how the simulator computes a step (StatisticalUsers(kernel=...))")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 with --kernel c, else torch's default); "
                             "the C kernels use $RECOWORLD_THREADS, else every usable core")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n_items, n_users, steps = (int(x) for x in args.child.split(","))
        print(json.dumps(measure(n_items, n_users, steps, not args.no_candidate_features, args.threads,
                                 args.kernel)))
        return

    from rich.console import Console
    from rich.table import Table

    users = USERS[:-1] if args.quick else USERS
    table = Table(title=f"RecoWorld/Slate-v0 vector env, K = 10, 50 candidates, kernel={args.kernel}"
                  + (" (no candidate features)" if args.no_candidate_features else ""))
    # CPU time (all threads) next to wall time: on a shared machine it is the steadier figure.
    for column in ("catalog items", "users B", "user-steps/s", "best window", "ms/step", "CPU ms/step",
                   "peak RSS MiB"):
        table.add_column(column, justify="right")
    for n_items in CATALOGS:
        for n_users in users:
            steps = max(5 * WINDOWS, min(2000, 1_000_000 // n_users)) // (4 if args.quick else 1)
            command = [sys.executable, __file__, "--child", f"{n_items},{n_users},{steps}"]
            command += ["--no-candidate-features"] if args.no_candidate_features else []
            command += ["--threads", str(args.threads)] if args.threads else []
            command += ["--kernel", args.kernel]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            table.add_row(f"{n_items:,}", f"{n_users:,}", f"{row['user_steps_per_s']:,.0f}",
                          f"{row['best_user_steps_per_s']:,.0f}", f"{row['ms_per_step']:.2f}", f"{row['cpu_ms_per_step']:.2f}", f"{row['peak_rss_mib']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
