"""The learning-agents leaderboard: every agent over five seeds on the default world.

Runs ``recoworld run experiment=leaderboard`` (the Hydra config that reproduces it) and
prints, per agent: mean return per episode, CTR, return rate and instruction compliance
with 95% intervals across seeds; reward per user-step; regret against the Oracle (its
reward per user-step minus the agent's, paired by seed: the same users meet every agent);
and paired t-tests of the agent's reward per user-step against Random and MostPopular.

Usage::

    python benchmarks/agents_leaderboard.py                         # the full lineup
    python benchmarks/agents_leaderboard.py 'experiment.agents=[random,ucb1,oracle]' experiment.steps=100
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

from recoworld.experiment.app import main as run_app
from recoworld.logs import read_log
from recoworld.metrics import mean_interval


def reward_per_step(log) -> dict[str, dict[int, float]]:
    """Mean reward per user-step, by agent and seed."""
    table = log.groupby(["agent", "seed"])["reward"].mean()
    return {agent: {int(seed): float(v) for seed, v in rows.droplevel(0).items()}
            for agent, rows in table.groupby(level=0)}


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


def main(overrides: list[str]) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="recoworld-leaderboard-"))
    run_app(["experiment=leaderboard", f"hydra.run.dir={run_dir}", *overrides])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rewards = reward_per_step(read_log(run_dir / "episodes.parquet"))
    table = Table(title=f"Leaderboard: {metrics['world']['name']}, {metrics['num_envs']} users x "
                        f"{metrics['steps']} steps, seeds {metrics['seeds']} (95% intervals across seeds)")
    for column in ("agent", "return/episode", "CTR", "return rate", "compliance", "reward/step",
                   "regret vs oracle", "> random (p)", "> most_popular (p)"):
        table.add_column(column, justify="right")
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
        table.add_row(*row)
    Console(width=200).print(table)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
