"""User-steps per second of one population against the number of Ray workers.

Steps ``B`` users with fixed random slates (agents' time excluded) in three ways:

- ``in-process``: one native ``SlateVectorEnv`` of ``B`` slots in this process (torch on
  one thread), the reference;
- ``ray x N``: ``ShardedVectorEnv(B, num_shards=N)`` (``recoworld/envs/sharded.py``), ``N``
  Ray actors of ``B / N`` slots each, the driver concatenating their batches every step.

Throughput is the median of ``--windows`` windows of ``--steps`` steps, after one warm-up
window. Each configuration also reports the bytes of one step's results (observations,
rewards, flags, infos) as pickled for the trip from an actor, the traffic per step of the
scaling model (see ``RESULTS.md``).

Usage::

    python benchmarks/ray_scaling.py                          # B = 4096, N = 1, 2
    python benchmarks/ray_scaling.py --users 16384 --workers 1 2 4 --lean
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

import numpy as np


def _windows(env, actions, steps: int, windows: int) -> float:
    for _ in range(steps):  # warm-up
        env.step(actions)
    rates = []
    for _ in range(windows):
        started = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        rates.append(env.num_envs * steps / (time.perf_counter() - started))
    return statistics.median(rates)


def measure(users: int, workers: list[int], steps: int, windows: int, lean: bool) -> list[dict]:
    import ray
    import torch
    from recoworld.envs.sharded import ShardedVectorEnv
    from recoworld.envs.slate import SlateVectorEnv

    torch.set_num_threads(1)
    kwargs = {"candidate_features": not lean, "max_steps": 10_000}
    reference = SlateVectorEnv(num_envs=users, **kwargs)
    reference.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = np.stack([rng.permutation(reference.num_candidates)[:reference.slate_size] for _ in range(users)])
    step_bytes = len(pickle.dumps(reference.step(actions)))
    rows = [{"config": "in-process", "users": users, "user_steps_per_s": _windows(reference, actions, steps, windows),
             "bytes_per_step": 0}]
    reference.close()
    ray.init(address="local", num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    for n in workers:
        env = ShardedVectorEnv(users, n, **kwargs)
        env.reset(seed=0)
        rows.append({"config": f"ray x {n}", "users": users,
                     "user_steps_per_s": _windows(env, actions, steps, windows), "bytes_per_step": step_bytes})
        env.close()
    ray.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4096)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--lean", action="store_true", help="candidate_features=False (ids only)")
    args = parser.parse_args()
    rows = measure(args.users, args.workers, args.steps, args.windows, args.lean)
    print(f"{'config':<12} {'users':>7} {'user-steps/s':>14} {'bytes/step':>12}")
    for row in rows:
        print(f"{row['config']:<12} {row['users']:>7} {row['user_steps_per_s']:>14,.0f} {row['bytes_per_step']:>12,}")


if __name__ == "__main__":
    main()
