"""The learning-agents leaderboard: every agent over five seeds on the default world.

Runs ``recoworld run experiment=leaderboard env.num_envs=256`` (the Hydra config that
reproduces it, on 256 users per seed: why so many, and the tables, are in
``benchmarks/RESULTS.md``) and prints, per agent: mean
return per episode, CTR, return rate and instruction compliance with 95% intervals across
seeds; reward per user-step; regret against the Oracle (its reward per user-step minus the
agent's, paired by seed: the same users meet every agent); and paired t-tests of the
agent's reward per user-step against Random and MostPopular. A second table tests the
retention-aware agent (``retention_linucb``) against each click-greedy agent on return
rate, paired by seed.

Usage::

    python benchmarks/agents_leaderboard.py                         # the full lineup
    python benchmarks/agents_leaderboard.py world=synthetic         # on the synthetic world
    python benchmarks/agents_leaderboard.py 'experiment.agents=[random,ucb1,oracle]' experiment.steps=100
    python benchmarks/agents_leaderboard.py --from RUN_DIR [RUN_DIR ...]   # tables of finished runs,
                                                                           # merged (e.g. split lineups)
    python benchmarks/agents_leaderboard.py --markdown ...          # markdown tables
    python benchmarks/agents_leaderboard.py hydra.run.dir=DIR ...   # keep the run in DIR
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from recoworld.apps.run.app import main as run_app
from recoworld.logs import read_log
from recoworld.metrics import mean_interval

RETENTION_AGENT = "retention_linucb"
CLICK_GREEDY = ("linucb", "linear_ts", "slateq", "most_popular")
USERS = 256


def reward_per_step(log) -> dict[str, dict[int, float]]:
    """Mean reward per user-step, by agent and seed."""
    table = log.groupby(["agent", "seed"])["reward"].mean()
    return {agent: {int(seed): float(v) for seed, v in rows.droplevel(0).items()}
            for agent, rows in table.groupby(level=0)}


def per_seed(summary: dict, metric: str) -> dict[int, float]:
    """One metric of one agent of ``metrics.json``, by seed."""
    return {int(s): v for s, v in zip(summary["seeds"], summary["metrics"][metric]["per_seed"]) if v is not None}


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` over shared seeds, its 95% half-width, and the one-sided p-value of ``a > b``."""
    seeds = sorted(set(a) & set(b))
    diff = np.array([a[s] - b[s] for s in seeds])
    interval = mean_interval(diff)
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        return interval.mean, float("nan"), float("nan")
    p = stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue
    return interval.mean, (interval.high - interval.low) / 2, float(p)


def cell(metric: dict) -> str:
    if metric["mean"] is None:
        return "-"
    if metric["ci_low"] is None:
        return f"{metric['mean']:.3f}"
    return f"{metric['mean']:.3f} ± {(metric['ci_high'] - metric['ci_low']) / 2:.3f}"


def load(run_dirs: list[Path]) -> tuple[dict, dict[str, dict[int, float]]]:
    """``metrics.json`` and rewards per step of one or more run directories, merged by agent."""
    metrics, rewards = None, {}
    for run_dir in run_dirs:
        part = json.loads((run_dir / "metrics.json").read_text())
        if metrics is None:
            metrics = part
        else:
            if (part["world"], part["num_envs"], part["steps"]) != (metrics["world"], metrics["num_envs"], metrics["steps"]):
                raise ValueError(f"{run_dir} ran another world, users or steps than {run_dirs[0]}; "
                                 "merge only runs of one setting")
            metrics["agents"].update(part["agents"])
        rewards.update(reward_per_step(read_log(run_dir)))
    return metrics, rewards


def leaderboard(metrics: dict, rewards: dict[str, dict[int, float]]) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of the main table."""
    title = (f"Leaderboard: {metrics['world']['name']}, {metrics['num_envs']} users x {metrics['steps']} steps, "
             f"seeds {metrics['seeds']} (95% intervals across seeds)")
    header = ["agent", "return/episode", "CTR", "return rate", "compliance", "reward/step",
              "regret vs oracle", "> random (p)", "> most_popular (p)"]
    rows = []
    for agent, summary in metrics["agents"].items():
        m = summary["metrics"]
        row = [agent, cell(m["return_per_episode"]), cell(m["ctr"]), cell(m["return_rate"]), cell(m["compliance"]),
               f"{np.mean(list(rewards[agent].values())):.3f}"]
        if "oracle" in rewards:
            gap, half, _ = paired(rewards["oracle"], rewards[agent])
            row.append(f"{gap:.3f} ± {half:.3f}" if half == half else f"{gap:.3f}")
        else:
            row.append("-")
        for baseline in ("random", "most_popular"):
            if baseline in rewards and baseline != agent:
                gain, _, p = paired(rewards[agent], rewards[baseline])
                row.append(f"{gain:+.3f} ({p:.1g})" if p == p else f"{gain:+.3f}")
            else:
                row.append("-")
        rows.append(row)
    return title, header, rows


def return_rate_tests(metrics: dict, agent: str = RETENTION_AGENT) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of the return-rate tests of ``agent`` against the click-greedy agents."""
    agents = metrics["agents"]
    title = f"Return rate: {agent} against the click-greedy agents (paired by seed, one-sided t-test)"
    header = ["click-greedy agent", "its return rate", f"{agent} - it (95% CI)", "p (greater)", "seeds better"]
    rows = []
    if agent not in agents:
        return title, header, rows
    ours = per_seed(agents[agent], "return_rate")
    for other in CLICK_GREEDY:
        if other not in agents:
            continue
        theirs = per_seed(agents[other], "return_rate")
        gain, half, p = paired(ours, theirs)
        seeds = sorted(set(ours) & set(theirs))
        better = sum(ours[s] > theirs[s] for s in seeds)
        rows.append([other, cell(agents[other]["metrics"]["return_rate"]),
                     f"{gain:+.3f} ± {half:.3f}" if half == half else f"{gain:+.3f}",
                     f"{p:.2g}" if p == p else "-", f"{better}/{len(seeds)}"])
    return title, header, rows


def show(tables: list[tuple[str, list[str], list[list[str]]]], markdown: bool) -> None:
    if markdown:
        for title, header, rows in tables:
            print(f"\n**{title}**\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
            for row in rows:
                print("| " + " | ".join(row) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for title, header, rows in tables:
        table = Table(title=title)
        for column in header:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def main(argv: list[str]) -> None:
    markdown = "--markdown" in argv
    argv = [a for a in argv if a != "--markdown"]
    if argv[:1] == ["--from"]:
        run_dirs = [Path(d) for d in argv[1:]]
    else:
        # A hydra.run.dir=DIR override keeps the run where the caller wants it.
        chosen = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
        run_dirs = [Path(chosen[-1] if chosen else tempfile.mkdtemp(prefix="recoworld-leaderboard-"))]
        run_app(["experiment=leaderboard", f"env.num_envs={USERS}", f"hydra.run.dir={run_dirs[0]}", *argv])
    metrics, rewards = load(run_dirs)
    show([leaderboard(metrics, rewards), return_rate_tests(metrics)], markdown)
    print(f"run directories: {' '.join(map(str, run_dirs))}")


if __name__ == "__main__":
    main(sys.argv[1:])
