"""Cost of the env's check of a plug-in simulator's Response, against the simulator's step.

Times :func:`recoworld.simulators.checker.response_problems` (what
:mod:`recoworld.envs.response_checks` runs on every step of a plug-in simulator) and one
torch-kernel ``StatisticalUsers.respond`` on the same batch, best of five windows each.

    python benchmarks/response_check.py
"""

from __future__ import annotations

import argparse
import time

import torch

from recoworld.catalog import Catalog
from recoworld.simulators.checker import response_problems
from recoworld.simulators.statistical import StatisticalUsers


def best_seconds(call, repeats: int, windows: int = 5) -> float:
    times = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        times.append((time.perf_counter() - start) / repeats)
    return min(times)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and no stray options
    torch.set_num_threads(1)
    catalog = Catalog.synthetic(1000, seed=0)
    for batch in (256, 4096):
        simulator = StatisticalUsers(catalog, kernel="torch")
        slates = torch.arange(10).repeat(batch, 1)
        simulator.reset(batch, seed=0)
        response = simulator.respond(slates)
        check = best_seconds(lambda: response_problems(response, batch, 10, catalog.n_genres), 200)

        step = min(first_step(simulator, batch, slates) for _ in range(5))
        print(f"B={batch}: check {check * 1e6:.0f} us/step, respond {step * 1e6:.0f} us/step, "
              f"check/respond {check / step:.1%}")


def first_step(simulator: StatisticalUsers, batch: int, slates: torch.Tensor) -> float:
    """Seconds of the first ``respond`` after a reset (users who churned cannot step again)."""
    simulator.reset(batch, seed=0)
    start = time.perf_counter()
    simulator.respond(slates)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
