"""How far long-term service can beat greedy clicks: the planning oracle against the click-greedy one.

On a world of ``recoworld run`` (``--world``: ``movielens``, its default, the users
calibrated to MovieLens-100K, who click by taste and popularity but enjoy by quality; or
``synthetic``, whose ratings follow the click utility; catalog, users and env composed
from ``conf/``, positional Hydra overrides change them), the click-greedy
:class:`~recoworld.agents.baselines.Oracle` and the
:class:`~recoworld.agents.planning.PlanningOracle` serve the same ``--users`` users per
seed (rollout seed ``s`` meets the users of ``population_seed(s, users)``, whichever agent
serves them: the comparison is paired) for ``--steps`` steps, with ``max_steps`` raised to
``--steps`` so that no episode is truncated. Each user is followed over their first
episode only: a user who churns counts nothing after it (the slot's next user is not
theirs).

Printed per agent, with 95% percentile-bootstrap intervals over users (the users of all
seeds pooled, resampled in pairs so that the difference planning - greedy has its own
interval): the return rate (returns per session end,
:func:`recoworld.metrics.return_rate`), clicks per user over the steps, sessions per user,
the churn share (users who churned within the steps), the enjoyment per click
``(rating - 1) / 4`` and the mean mindset (``satisfaction``). Then every parameter of the
users' config (``StatisticalUserConfig``) that produces these figures, and the share of
requests each of the planner's rules served.

Usage::

    python benchmarks/retention_oracles.py                       # movielens, 64 users x 3 seeds x 200 steps, 32 rollouts
    python benchmarks/retention_oracles.py --world synthetic
    python benchmarks/retention_oracles.py --users 32 --seeds 2 --steps 100 --horizon 2 --rollouts 2
    python benchmarks/retention_oracles.py --markdown            # markdown tables (benchmarks/RESULTS.md)
    python benchmarks/retention_oracles.py simulator.config.rating_quality=-5.0   # another world (Hydra overrides)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import NamedTuple

import numpy as np
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from agents_leaderboard import show  # this folder's scripts: run as python benchmarks/retention_oracles.py
from recoworld.agents.baselines import Oracle
from recoworld.agents.planning import PlanningOracle
from recoworld.apps.run.runner import ensure_calibrated
from recoworld.envs.rollout import Hook, rollout
from recoworld.metrics import return_rate

COUNTS = ("clicks", "steps", "left", "returned", "churned", "ratings", "enjoyment", "mindset")
BOOTSTRAP = 2000


class FirstEpisodes(Hook):
    """Per-user sums over each slot's first episode (one row per slot)."""

    def on_start(self, env, agent, seed, label):
        self.sums = {name: np.zeros(env.num_envs) for name in COUNTS}
        self.left_rows, self.returned_rows = [], []

    def on_step(self, step):
        info = step.feedback.info
        mine = step.feedback.valid & (step.episode == 0)
        clicked = step.feedback.clicked.astype(bool) & mine[:, None]
        left, returned = info["left_session"] & mine, info["returned"] & mine
        for name, value in (("clicks", clicked.sum(1)), ("steps", mine), ("left", left), ("returned", returned),
                            ("churned", info["churned"] & mine), ("ratings", clicked.sum(1)),
                            ("enjoyment", ((info["rating"] - 1) / 4 * clicked).sum(1)),
                            ("mindset", info["satisfaction"] * mine)):
            self.sums[name] += value
        self.left_rows.append(left[mine])
        self.returned_rows.append(returned[mine])


def world(name: str, users: int, steps: int, overrides: list[str] = ()):
    """A function making a fresh env of world ``name`` (with Hydra ``overrides`` of
    ``recoworld run``'s config)."""
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"world={name}", *overrides, f"env.num_envs={users}",
                                           f"env.max_steps={steps}"])
    ensure_calibrated(cfg)  # the movielens world is fitted on first use, as recoworld run does
    catalog = instantiate(cfg.world)
    make_simulator = instantiate(cfg.simulator, _partial_=True, _convert_="object")
    make_env = instantiate(cfg.env, _partial_=True, _convert_="object")
    return lambda: make_env(simulator=make_simulator(catalog=catalog))


class Served(NamedTuple):
    """One agent over all seeds: per-user sums, the pooled return rate, the rollouts' seconds,
    the users' config, and (for the planner) the requests each of its rules served."""

    sums: dict[str, np.ndarray]
    return_rate: float
    seconds: float
    config: dict
    rule_counts: np.ndarray | None


def serve(make_env, agent, seeds: int, steps: int) -> Served:
    sums, left, returned, seconds, counts = {name: [] for name in COUNTS}, [], [], 0.0, None
    for seed in range(seeds):
        env, hook = make_env(), FirstEpisodes()
        start = time.perf_counter()
        rollout(env, agent, steps, seed, hooks=[hook])
        seconds += time.perf_counter() - start
        config = asdict(env.unwrapped.user_model().config)
        env.close()
        for name in COUNTS:
            sums[name].append(hook.sums[name])
        left += hook.left_rows
        returned += hook.returned_rows
        if hasattr(agent, "rule_counts"):  # set up afresh for each seed
            counts = agent.rule_counts if counts is None else counts + agent.rule_counts
    return Served({name: np.concatenate(v) for name, v in sums.items()},
                  return_rate(np.concatenate(left), np.concatenate(returned)), seconds, config, counts)


def measures(s: dict[str, np.ndarray], users: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure for each bootstrap resample ``users`` (``[R, U]`` indices)."""
    total = {name: s[name][users].sum(1) for name in COUNTS}
    n = users.shape[1]
    return {
        "return rate": total["returned"] / np.maximum(total["left"], 1),
        "clicks per user": total["clicks"] / n,
        "sessions per user": 1.0 + total["returned"] / n,  # the first, then one per return
        "churn share": total["churned"] / n,
        "enjoyment per click": total["enjoyment"] / np.maximum(total["ratings"], 1),
        "mean mindset": total["mindset"] / np.maximum(total["steps"], 1),
    }


def table(greedy: dict, planning: dict, greedy_rate: float, planning_rate: float):
    """Rows: measure, greedy, planning, planning - greedy, each with its 95% bootstrap interval."""
    n = len(greedy["clicks"])
    everyone = np.arange(n)[None, :]
    resamples = np.random.default_rng(0).integers(n, size=(BOOTSTRAP, n))
    point = (measures(greedy, everyone), measures(planning, everyone))
    boot = (measures(greedy, resamples), measures(planning, resamples))
    # The point estimate of the return rate is the shared definition on the rows themselves.
    point[0]["return rate"][:], point[1]["return rate"][:] = greedy_rate, planning_rate
    rows = []
    for name in point[0]:
        cells = [_cell(point[0][name][0], boot[0][name]), _cell(point[1][name][0], boot[1][name]),
                 _cell(point[1][name][0] - point[0][name][0], boot[1][name] - boot[0][name])]
        rows.append([name, *cells])
    return rows


def _cell(value: float, resampled: np.ndarray) -> str:
    low, high = np.percentile(resampled, [2.5, 97.5])
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


#: The planner's rollouts here. The agent's default (4) serves a lineup cheaply, but its choice
#: among rules of near-equal value is then mostly noise, which would understate what planning
#: can gain (benchmarks/RESULTS.md, "the planner's rollouts", compares them).
MEASURE_ROLLOUTS = 32


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("movielens", "synthetic"), default="movielens",
                        help="recoworld run's world (default: its default, the calibrated MovieLens users)")
    parser.add_argument("--users", type=int, default=64, help="users per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="steps per user (several sessions)")
    parser.add_argument("--horizon", type=int, default=PlanningOracle.horizon, help="the planner's lookahead")
    parser.add_argument("--rollouts", type=int, default=MEASURE_ROLLOUTS,
                        help=f"the planner's rollouts (default {MEASURE_ROLLOUTS}; the agent's own default is "
                             f"{PlanningOracle.rollouts})")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides of the world, e.g. simulator.config.leave_base=-2.5")
    args = parser.parse_args(argv)
    make_env = world(args.world, args.users, args.steps, args.overrides)
    planner = PlanningOracle(horizon=args.horizon, rollouts=args.rollouts)
    greedy = serve(make_env, Oracle(), args.seeds, args.steps)
    planning = serve(make_env, planner, args.seeds, args.steps)
    title = (f"Planning oracle (horizon {args.horizon}, {args.rollouts} rollouts, rules {list(planner.rules)}, "
             f"future_steps {planner.future_steps}) against the click-greedy oracle, world {args.world}: "
             f"{args.users} users x {args.seeds} seeds x {args.steps} steps, first episodes, 95% bootstrap "
             "intervals over users")
    show([(title, ["measure", "click-greedy oracle", "planning oracle", "planning - greedy"],
           table(greedy.sums, planning.sums, greedy.return_rate, planning.return_rate)),
          ("The users' parameters (StatisticalUserConfig)", ["parameter", "value"],
           [[name, str(value)] for name, value in greedy.config.items()])], args.markdown)
    shares = planning.rule_counts / planning.rule_counts.sum()
    print("requests served by each rule: " + ", ".join(f"{rule} {share:.3f}" for rule, share in
                                                       zip(planner.rules, shares)))
    print(f"seconds: click-greedy {greedy.seconds:.1f}, planning {planning.seconds:.1f}")

if __name__ == "__main__":
    main()
