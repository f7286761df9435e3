"""Throughput and peak memory of the vector env ``RecoWorld/Slate-v0``.

Prints user-steps per second for B = 1, 64, 1024, 16384 users with slates of K = 10, on a
MovieLens-sized catalog (1,682 items) and on a 100,000-item catalog, and the peak resident
memory of each configuration (measured in a fresh subprocess, so that each figure is that
configuration's own), for three configurations of the env:

- ``torch``: the defaults (``kernel="torch"``, candidate features in the observation);
- ``c``: ``kernel="c"``, the fused C kernels, with torch on one thread beside them;
- ``c-lean``: ``kernel="c", candidate_features=False``: observations carry candidate ids,
  and agents look the features up in the catalog (at large B the features are a large
  copy per step).

Agents' time is excluded: the actions are fixed. Throughput is the median of five windows
of steps; ``--child`` prints one configuration's figures as JSON, with the best window and
the CPU time per step (every thread's) beside them.

Usage::

    python benchmarks/sim_throughput.py                   # all three configurations
    python benchmarks/sim_throughput.py --quick           # B up to 1024, fewer steps
    python benchmarks/sim_throughput.py --configs c-lean  # one of them
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
    # other tenants.
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


# name: (kernel, candidate features in the observation)
CONFIGS = {"torch": ("torch", True), "c": ("c", True), "c-lean": ("c", False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="B up to 1024 and fewer steps")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated configurations among {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 with the C kernels, else torch's default); "
                             "the C kernels use $RECOWORLD_THREADS, else every usable core")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configs = args.configs.split(",")
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"--configs {args.configs!r}: unknown {unknown}; choose among {', '.join(CONFIGS)}")
    if args.child:
        n_items, n_users, steps = (int(x) for x in args.child.split(","))
        kernel, features = CONFIGS[configs[0]]
        print(json.dumps(measure(n_items, n_users, steps, features, args.threads, kernel)))
        return

    from rich.console import Console
    from rich.table import Table

    users = USERS[:-1] if args.quick else USERS
    table = Table(title="RecoWorld/Slate-v0 vector env, K = 10, 50 candidates: user-steps/s (median window) "
                        "and peak RSS MiB")
    table.add_column("catalog items", justify="right")
    table.add_column("users B", justify="right")
    for name in configs:
        table.add_column(f"{name} steps/s", justify="right")
        table.add_column(f"{name} MiB", justify="right")
    for n_items in CATALOGS:
        for n_users in users:
            steps = max(5 * WINDOWS, min(2000, 1_000_000 // n_users)) // (4 if args.quick else 1)
            cells = [f"{n_items:,}", f"{n_users:,}"]
            for name in configs:
                command = [sys.executable, __file__, "--child", f"{n_items},{n_users},{steps}", "--configs", name]
                command += ["--threads", str(args.threads)] if args.threads else []
                row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                cells += [f"{row['user_steps_per_s']:,.0f}", f"{row['peak_rss_mib']:.0f}"]
            table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
