"""Throughput and peak memory of the vector env ``RecoWorld/Slate-v0``.

Prints user-steps per second for B = 1, 64, 1024, 16384 users with slates of K = 10, on a
MovieLens-sized catalog (1,682 items) and on a 100,000-item catalog, and the peak resident
memory of each configuration (measured in a fresh subprocess, so that each figure is that
configuration's own), for these configurations of the env:

- ``default``: the defaults (``kernel="auto"``, which is C on CPU where a compiler or a
  prebuilt kernel exists; candidate features in the observation; torch's own threads);
- ``default-busy``: the defaults beside a concurrent CPU load, a busy-loop process that
  this benchmark starts before the measurement and stops after it;
- ``torch``: ``kernel="torch"``, the reference torch ops (the only kernel on a GPU);
- ``c``: ``kernel="c"``, candidate features observed;
- ``c-lean``: ``kernel="c", candidate_features=False``: observations carry candidate ids,
  and agents look the features up in the catalog.

Agents' time is excluded: the actions are fixed. Throughput is the median of five windows
of steps; ``--child`` prints one configuration's figures as JSON, with the best window and
the CPU time per step (every thread's) beside them. ``--device cuda`` measures the torch
kernel on the GPU, at B = 16384 up to 1,048,576.

``--reference PATH`` is optional: without it the script prints the figures alone. It names a
reference workload that is not part of RecoWorld (its authors use ``numpy_reference.py``, a
batched RecSim-like user step in NumPy, kept outside the repository): a script run as
``python PATH --backend numpy --docs shared --batch B --runs 3 --run-seconds 2 --json``, whose
last line is JSON with ``median_user_steps_per_s``. It runs on the same machine before each
configuration, interleaved, and each configuration's ratio to the reference measured just
before it is added (figures on a shared machine drift, so only ratios measured in one run
compare).

Usage::

    python benchmarks/sim_throughput.py                   # every configuration, every B
    python benchmarks/sim_throughput.py --quick           # B up to 1024, fewer steps
    python benchmarks/sim_throughput.py --users 16384 --catalogs 1682 --reference PATH  # and ratios to PATH's
    python benchmarks/sim_throughput.py --device cuda     # the torch kernel on a GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import contextmanager

USERS = (1, 64, 1024, 16384)
CUDA_USERS = (16384, 65536, 262144, 1048576)
CATALOGS = (1682, 100_000)
WINDOWS = 5
# name: (kernel, candidate features in the observation, beside a busy core)
CONFIGS = {"default": ("auto", True, False), "default-busy": ("auto", True, True), "torch": ("torch", True, False),
           "c": ("c", True, False), "c-lean": ("c", False, False)}
BUSY_LOOP = "while True: pass"


def measure(n_items: int, n_users: int, steps: int, candidate_features: bool, threads: int | None,
            kernel: str, device: str = "cpu") -> dict:
    import resource
    import time

    import gymnasium as gym
    import numpy as np
    import torch

    import recoworld

    if threads:  # else torch's default: the env scopes its own work to one thread
        torch.set_num_threads(threads)
    catalog = recoworld.Catalog.synthetic(n_items, seed=0)
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=n_users, vectorization_mode="vector_entry_point",
                       catalog=catalog, slate_size=10, candidate_features=candidate_features, kernel=kernel,
                       device=device)
    env.reset(seed=0)
    actions = np.tile(np.arange(10), (n_users, 1))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):  # warm-up: allocator and first-call costs
        env.step(actions)
    # Five windows, reported by their median: on a shared VM one window can be slowed by
    # other tenants.
    windows, per_window = [], max(1, steps // WINDOWS)
    cpu_start = time.process_time()
    for _ in range(WINDOWS):
        sync()
        start = time.perf_counter()
        for _ in range(per_window):
            env.step(actions)
        sync()
        windows.append((time.perf_counter() - start) / per_window)
    cpu = (time.process_time() - cpu_start) / (WINDOWS * per_window)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    median, best = sorted(windows)[WINDOWS // 2], min(windows)
    return {"items": n_items, "users": n_users, "kernel": env.unwrapped.world.kernels,
            "user_steps_per_s": n_users / median, "best_user_steps_per_s": n_users / best,
            "ms_per_step": 1000 * median, "cpu_ms_per_step": 1000 * cpu, "peak_rss_mib": peak_kib / 1024}


@contextmanager
def busy_core(on: bool):
    """A process that keeps one core busy for the block (nothing when ``on`` is false)."""
    load = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if on else None
    try:
        yield
    finally:
        if load is not None:
            load.kill()
            load.wait()


def reference(path: str, n_users: int) -> float:
    """The NumPy reference step's median user-steps/s at ``n_users`` (its last line is JSON)."""
    out = subprocess.run([sys.executable, path, "--backend", "numpy", "--docs", "shared", "--batch", str(n_users),
                          "--runs", "3", "--run-seconds", "2", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_user_steps_per_s"]


def run_child(name: str, n_items: int, n_users: int, steps: int, threads: int | None, device: str) -> dict:
    command = [sys.executable, __file__, "--child", f"{n_items},{n_users},{steps}", "--configs", name,
               "--device", device] + (["--threads", str(threads)] if threads else [])
    with busy_core(CONFIGS[name][2]):
        return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="B up to 1024 and fewer steps")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated configurations among {', '.join(CONFIGS)} (default: all; "
                             "with --device cuda: torch)")
    parser.add_argument("--users", type=int, nargs="+", default=None, help="batch sizes B (default: see above)")
    parser.add_argument("--catalogs", type=int, nargs="+", default=list(CATALOGS), help="catalog sizes")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the torch kernel on a GPU")
    parser.add_argument("--reference", metavar="PATH",
                        help="optional: a reference workload (see above), run before each configuration for ratios")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own; the env runs its torch work on one); "
                             "the C kernels use $RECOWORLD_THREADS, else $OMP_NUM_THREADS, else every usable core")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    configs = (args.configs or ("torch" if cuda else ",".join(CONFIGS))).split(",")
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        parser.error(f"--configs {args.configs!r}: unknown {unknown}; choose among {', '.join(CONFIGS)}")
    if cuda and any(CONFIGS[name][0] == "c" for name in configs):
        parser.error("--device cuda runs the torch kernel: --configs torch or default")
    if args.child:
        n_items, n_users, steps = (int(x) for x in args.child.split(","))
        kernel, features, _ = CONFIGS[configs[0]]
        print(json.dumps(measure(n_items, n_users, steps, features, args.threads, kernel, args.device)))
        return

    from rich.console import Console
    from rich.table import Table

    users = args.users or (CUDA_USERS if cuda else USERS[:-1] if args.quick else USERS)
    table = Table(title=f"RecoWorld/Slate-v0 vector env on {args.device}, K = 10, 50 candidates: user-steps/s "
                        "(median window), peak RSS MiB" + (", ratio to the NumPy step run just before" if args.reference
                                                           else ""))
    table.add_column("catalog items", justify="right")
    table.add_column("users B", justify="right")
    for name in configs:
        table.add_column(f"{name} steps/s", justify="right")
        table.add_column(f"{name} MiB", justify="right")
        if args.reference:
            table.add_column(f"{name} ratio", justify="right")
    if args.reference:
        table.add_column("NumPy step, before each", justify="right")
    for n_items in args.catalogs:
        for n_users in users:
            steps = max(5 * WINDOWS, min(2000, 1_000_000 // n_users)) // (4 if args.quick else 1)
            cells, baselines = [f"{n_items:,}", f"{n_users:,}"], []
            for name in configs:
                baseline = reference(args.reference, n_users) if args.reference else None
                row = run_child(name, n_items, n_users, steps, args.threads, args.device)
                cells += [f"{row['user_steps_per_s']:,.0f}", f"{row['peak_rss_mib']:.0f}"]
                if baseline:
                    cells.append(f"{row['user_steps_per_s'] / baseline:.2f}")
                    baselines.append(f"{baseline:,.0f}")
            table.add_row(*cells, *([" / ".join(baselines)] if baselines else []))
    Console(width=240).print(table)


if __name__ == "__main__":
    main()
