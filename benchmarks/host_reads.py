"""Host reads on the per-step paths of the library's own callers: tensors read back as Python
values, each a wait for the device on a GPU.

Counts, per call, the tensors that torch hands back to Python (``item``, ``tolist``,
``bool``, ``int``, ``float``, ``index`` of a tensor), seen by a
``torch.overrides.TorchFunctionMode``; the results whose shape depends on the data
(``nonzero``, ``masked_select``, ``unique``, the rows of a boolean mask), which wait for the
device on a GPU too, before their size is known; and the id checks of the statistical users
(``_ids_within``, one read each: the check of :meth:`StatisticalUsers.utility`'s ids) and
their slate checks (``check_slates``: of ``respond`` and ``expected_clicks``), for:

- ``planner``: one ``PlanningOracle`` act (``agents/planning.py``, its defaults) on
  ``RecoWorld/Slate-v0`` with B users, 50 candidates, slates of 10, on a synthetic catalog
  of 1,682 items (MovieLens-100K's size), for plain ``StatisticalUsers`` and for
  ``Tempered``, a subclass that overrides ``click_probabilities`` (whose lookahead scores
  go through the public, checked path);
- ``oracle``: one click-greedy ``Oracle`` act (``agents/baselines.py``), whose scores come
  through the env's privileged channel ``env.unwrapped.click_probabilities()``;
- ``env step``: one step of the vector env with a fixed slate (the first 10 candidates):
  the env's own reads;
- ``calibrate`` (with ``--calibrate``): one ``recoworld.apps.calibrate`` fit on
  MovieLens-100K (from RecoWorld's cache, fetched if missing) at ``CalibrationConfig(users=N)``
  (``--calibrate-users``; 0 fits every user, as ``recoworld calibrate`` does), timed once.

Between counted calls the agents' slates are stepped, so the acts are those along an
episode. Each row gives the counts of every counted call (one figure where all agree, else
``min-max``) and the median wall time of as many uncounted calls (the counting mode slows
each torch call down). Reads are counted on any device; on a GPU (``--device cuda``) the
row also counts the tensors copied to the host (``cpu`` or ``to`` of a GPU tensor),
which wait for the device too.

Usage::

    python benchmarks/host_reads.py                    # B = 64, kernels auto and torch
    python benchmarks/host_reads.py --users 1 64 4096 --repeats 7
    python benchmarks/host_reads.py --calibrate --calibrate-users 100
    python benchmarks/host_reads.py --device cuda      # the torch kernel on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

N_ITEMS = 1682
NUM_CANDIDATES = 50
SLATE_SIZE = 10
MAX_STEPS = 50


class HostReads(TorchFunctionMode):
    """Counts the tensors read back as Python values (a device sync each, on a GPU), the
    results whose shape depends on the data (a sync each, on a GPU), and the tensors copied
    from a GPU to the host."""

    READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__"}
    SHAPED = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}

    def __init__(self):
        super().__init__()
        self.reads = 0
        self.shaped = 0
        self.copies = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        self.reads += name in self.READS
        self.shaped += name in self.SHAPED or (name == "__getitem__" and _masks(args[1]))
        result = func(*args, **(kwargs or {}))
        # Tensor.numpy refuses a GPU tensor: what leaves the GPU goes through cpu() or to().
        if name in ("cpu", "to") and isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu" \
                and isinstance(result, torch.Tensor) and result.device.type == "cpu":
            self.copies += 1
        return result


def _masks(index) -> bool:
    """Whether an index holds a boolean tensor (``x[mask]``: as many rows as it holds true)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts)


class Checks:
    """Counts the statistical users' id checks and slate checks while it is entered (it wraps
    the module functions that ``utility`` and ``respond`` look up when called)."""

    def __init__(self):
        import recoworld.simulators.statistical as statistical

        self.module = statistical
        self.ids = 0
        self.slates = 0

    def __enter__(self):
        self.originals = self.module._ids_within, self.module.check_slates
        ids_within, check_slates = self.originals

        def counted_ids(*args, **kwargs):
            self.ids += 1
            return ids_within(*args, **kwargs)

        def counted_slates(*args, **kwargs):
            self.slates += 1
            return check_slates(*args, **kwargs)

        self.module._ids_within, self.module.check_slates = counted_ids, counted_slates
        return self

    def __exit__(self, *exc):
        self.module._ids_within, self.module.check_slates = self.originals


def count(call: Callable[[], object]) -> tuple[dict, object]:
    """The reads, copies and checks of one ``call()``, and what it returned."""
    with Checks() as checks, HostReads() as reads:
        result = call()
    return {"reads": reads.reads, "shaped": reads.shaped, "copies": reads.copies, "ids": checks.ids,
            "slates": checks.slates}, result


def timed(call: Callable[[], object], sync: Callable[[], None]) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    result = call()
    sync()
    return time.perf_counter() - start, result


def span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def tempered():
    """A statistical-users class whose click probabilities are its own (squared)."""
    from recoworld.simulators import StatisticalUsers

    class Tempered(StatisticalUsers):
        def click_probabilities(self, items):
            return super().click_probabilities(items) ** 2

    return Tempered


def along_episode(env, agent, obs, repeats: int, sync) -> tuple[list[dict], list[float]]:
    """Counts and times ``agent.act`` along an episode: each act's slates are stepped."""
    from recoworld.types import Observation

    counts, times = [], []
    for _ in range(repeats):
        tally, action = count(lambda: agent.act(obs))
        counts.append(tally)
        obs = Observation(env.step(action)[0])
        seconds, action = timed(lambda: agent.act(obs), sync)
        times.append(seconds)
        obs = Observation(env.step(action)[0])
    return counts, times


def agents_and_env(n_users: int, kernel: str, device: str, repeats: int) -> list[dict]:
    import gymnasium as gym
    import numpy as np

    import recoworld  # noqa: F401  (registers the envs)
    from recoworld import Catalog
    from recoworld.agents.baselines import Oracle
    from recoworld.agents.planning import PlanningOracle
    from recoworld.simulators import StatisticalUsers
    from recoworld.types import Observation

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    catalog = Catalog.synthetic(N_ITEMS, seed=0)
    rows = []

    def make(kind):
        simulator = kind(catalog, kernel=kernel, device=device)
        env = gym.make_vec("RecoWorld/Slate-v0", num_envs=n_users, vectorization_mode="vector_entry_point",
                           simulator=simulator, num_candidates=NUM_CANDIDATES, slate_size=SLATE_SIZE,
                           max_steps=MAX_STEPS, device=device)
        return env, simulator.kernel

    for agent_name, kinds in (("planner", (StatisticalUsers, tempered())), ("oracle", (StatisticalUsers,))):
        for kind in kinds:
            env, used = make(kind)
            agent = PlanningOracle() if agent_name == "planner" else Oracle()
            agent.setup(env, seed=0)
            obs = Observation(env.reset(seed=0)[0])
            obs = Observation(env.step(agent.act(obs))[0])  # warm-up: first-call costs
            counts, times = along_episode(env, agent, obs, repeats, sync)
            rows.append({"call": f"{agent_name} act", "users": kind.__name__, "kernel": used, "counts": counts,
                         "times": times})
            env.close()

    env, used = make(StatisticalUsers)
    env.reset(seed=0)
    slate = np.tile(np.arange(SLATE_SIZE), (n_users, 1))
    env.step(slate)  # warm-up
    counts, times = [], []
    for _ in range(repeats):
        counts.append(count(lambda: env.step(slate))[0])
        times.append(timed(lambda: env.step(slate), sync)[0])
    rows.append({"call": "env step", "users": "StatisticalUsers", "kernel": used, "counts": counts, "times": times})
    env.close()
    return rows


def resolved(kernel: str, device: str) -> str:
    """The kernel that ``kernel`` names on ``device`` ("auto": C on CPU where it builds)."""
    from recoworld import Catalog
    from recoworld.simulators import StatisticalUsers

    return StatisticalUsers(Catalog.synthetic(N_ITEMS, seed=0), kernel=kernel, device=device).kernel


def calibration(n_users: int) -> dict:
    from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate

    config = CalibrationConfig(users=n_users or None)
    tally, _ = count(lambda: calibrate(config, progress=False))
    seconds, _ = timed(lambda: calibrate(config, progress=False), lambda: None)  # after the first fit's reading
    return {"call": f"calibrate (MovieLens-100K, users={n_users or 'all'})", "users": "calibrated", "kernel": "-",
            "counts": [tally], "times": [seconds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--users", type=int, nargs="+", default=[64], help="users B of the env (default: 64)")
    parser.add_argument("--kernels", nargs="+", default=None,
                        help="users kernels: auto (C on CPU where it builds), c, torch (default: auto torch; "
                             "on a GPU: torch); each kernel that runs is measured once")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (the torch kernel on a GPU)")
    parser.add_argument("--repeats", type=int, default=5, help="calls counted, and as many timed (default: 5)")
    parser.add_argument("--calibrate", action="store_true", help="also count one calibrate fit")
    parser.add_argument("--calibrate-users", type=int, default=100,
                        help="CalibrationConfig(users=N) of that fit (default: 100; 0: every user)")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    kernels = args.kernels or (["torch"] if cuda else ["auto", "torch"])
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: count at least one call")
    if args.calibrate_users < 0:
        parser.error(f"--calibrate-users {args.calibrate_users}: a number of users, or 0 for every user")
    if min(args.users) < 1:
        parser.error(f"--users {min(args.users)}: the env needs at least one user")

    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(1)  # as the env and the fit run their own torch work
    rows = []
    for n_users in args.users:
        for kernel in dict.fromkeys(resolved(kernel, args.device) for kernel in kernels):
            rows += [{**row, "B": f"{n_users:,}"} for row in agents_and_env(n_users, kernel, args.device, args.repeats)]
    if args.calibrate:
        rows.append({**calibration(args.calibrate_users), "B": "-"})

    table = Table(title=f"Host reads per call on {args.device} (torch {torch.__version__}): counts of "
                        f"{args.repeats} counted calls, median time of {args.repeats} uncounted ones")
    for column in ("call", "users", "kernel", "B", "reads", "data-shaped", *(["GPU->host copies"] if cuda else []),
                   "id checks", "slate checks", "ms per call"):
        table.add_column(column, justify="left" if column in ("call", "users", "kernel") else "right")
    for row in rows:
        tallies = {key: span([c[key] for c in row["counts"]]) for key in ("reads", "shaped", "copies", "ids", "slates")}
        table.add_row(row["call"], row["users"], row["kernel"], row["B"], tallies["reads"], tallies["shaped"],
                      *([tallies["copies"]] if cuda else []), tallies["ids"], tallies["slates"],
                      f"{1000 * statistics.median(row['times']):,.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
