"""What a run shows a person: the summary tables and the plots of a run directory.

The summary has one table of the metrics and, when the simulator reports them (LLM and
hybrid users), one of its LLM use per rollout (:data:`SIMULATOR_TITLES`), the share of
steps that fell back to the statistical response among them.

The plots are PNG files whatever the name they are written to (the runner writes each
under a temporary name and renames it when it is complete).

- ``returns.png``: mean return by episode index (the slot's first user, second user, ...),
  per agent, with its 95% t-interval across seeds, over the whole lives
  (:func:`recoworld.metrics.whole_lives`): the episodes that started by rollout step
  ``experiment.steps - env.max_steps``, all of which end in the rollout whatever their
  length. (A mean over the episodes that happened to end would hold, at the later indices,
  only the users who churned early.) A slot's user of index ``k`` starts in time or not by
  how long the ``k`` users before lived, never by their own life, so each index's mean is
  fair; an index is drawn while every seed has at least ``min_episodes`` whole lives with
  it. The first users are whole once ``experiment.steps >= env.max_steps``; later indices
  need more steps: the user of index ``k`` starts at rollout step ``2k`` at the earliest
  (after ``k`` one-step lives, each followed by its slot's autoreset step).
- ``learning.png``: learning curves — mean reward per user-step against environment
  steps (user-steps so far), per agent, with a 95% t-band across seeds. Learners rise;
  fixed policies stay flat.
- ``retention.png``: the share of users still active after ``n`` sessions, per agent
  (Kaplan–Meier, :func:`recoworld.metrics.retention_curve`), drawn while at least
  ``min_at_risk`` users ended the session before: the tail of such a curve rests on a
  handful of users.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.table import Table

from recoworld.metrics import METRICS, WHOLE_LIFE_METRICS, episode_table, mean_interval, whole_lives
from recoworld.wording import listing

TITLES = {
    "return_per_episode": "return per episode",
    "ctr": "CTR",
    "watch_time": "watch time per session",
    "session_length": "session length",
    "return_rate": "return rate",
    "compliance": "instruction compliance",
    "coverage": "catalog coverage",
    "diversity": "intra-slate diversity",
    "novelty": "novelty (bits)",
    "exposure_gini": "exposure Gini",
    "head_exposure": "exposure: head items",
    "mid_exposure": "exposure: mid items",
    "tail_exposure": "exposure: tail items",
    "serendipity": "serendipity",
}

#: Simulator counters shown in the summary when a simulator reports them (all of them are
#: in ``metrics.json``).
SIMULATOR_TITLES = {
    "fallback_share": "share of steps that fell back",
    "llm_calls": "LLM calls",
    "llm_cache_hits": "LLM cache hits",
    "llm_total_tokens": "LLM tokens",
    "llm_latency_s_mean": "LLM latency (s)",
    "llm_repairs": "LLM repairs",
    "llm_user_failures": "failed user-steps",
    "llm_user_fallback_steps": "fallback user-steps",
    "hybrid_failures": "failed voicings",
    "hybrid_fallback_steps": "fallback voicings",
}


def print_summary(metrics: dict, console: Console, run_dir: Path | None = None) -> None:
    """One row per metric, one column per agent: ``mean ± half-width`` of the 95% interval,
    with ``(n of N seeds)`` where the metric was undefined in some seeds (they are left out)."""
    seeds = metrics["seeds"]
    console.print(f"[bold]{metrics['world']['name']}[/]: {metrics['num_envs']} users x {metrics['steps']} steps, "
                  f"seeds {seeds}", soft_wrap=True)
    table = Table()
    table.add_column("metric", style="bold")
    agents = metrics["agents"]
    for agent in agents:
        table.add_column(agent, justify="right")
    for name in METRICS:
        table.add_row(TITLES.get(name, name), *(_cell(summary["metrics"][name]) for summary in agents.values()))
    console.print(table)
    shown = [key for key in SIMULATOR_TITLES if any(key in a.get("simulator", {}) for a in agents.values())]
    if shown:
        usage = Table(title="simulator, per rollout")
        usage.add_column("counter", style="bold")
        for agent in agents:
            usage.add_column(agent, justify="right")
        for key in shown:
            usage.add_row(SIMULATOR_TITLES[key], *(_cell(a["simulator"][key], counter=True, share=key in SHARES)
                                                   if key in a.get("simulator", {}) else "-"
                                                   for a in agents.values()))
        console.print(usage)
    if len(seeds) < 2:
        console.print("(one seed: no confidence intervals; give experiment.seeds several seeds for them)")
    cut = [TITLES[name] for name in WHOLE_LIFE_METRICS
           if any(None in summary["metrics"][name].get("per_seed", []) for summary in agents.values())]
    if cut:
        # A "-" would read as a failure: say why these have no value.
        console.print(f"({listing(cut)}: '-' or 'k of N seeds' where a seed has no value; {_why_cut(metrics)})",
                      soft_wrap=True)
    if run_dir is not None:
        console.print(f"run directory: {run_dir}", soft_wrap=True)


def _why_cut(metrics: dict) -> str:
    """Why a metric over whole lives (:func:`recoworld.metrics.whole_lives`) has no value in a seed."""
    steps, max_steps = metrics["steps"], metrics.get("max_steps")
    if max_steps is None or steps < max_steps:
        return (f"these count whole lives (recoworld.metrics.whole_lives), and a seed's first users did not all "
                f"end within its {steps} steps: give experiment.steps at least env.max_steps"
                + ("" if max_steps is None else f" ({max_steps})"))
    return ("no user ended a session within the whole lives of the rollout (recoworld.metrics.whole_lives), "
            "e.g. every one was cut by env.max_steps first: run more steps, or raise env.max_steps")


#: Simulator counters that are shares of steps, shown as percentages.
SHARES = frozenset({"fallback_share"})


def _cell(value: dict, counter: bool = False, share: bool = False) -> str:
    mean, low, high = value["mean"], value["ci_low"], value["ci_high"]
    if mean is None:
        return "-"
    if share:
        return f"{mean:.1%}" if low is None else f"{mean:.1%} ± {(high - low) / 2:.1%}"
    digits = 0 if counter and float(mean).is_integer() else 3 if abs(mean) < 10 else 1
    # A seed where the metric is undefined (no session ended...) is left out of the mean:
    # say so, or the mean of the others reads as the mean of all seeds.
    per_seed = value.get("per_seed", [])
    defined = sum(v is not None for v in per_seed)
    seeds = f" ({defined} of {len(per_seed)} seeds)" if defined < len(per_seed) else ""
    if low is None:
        return f"{mean:.{digits}f}{seeds}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}{seeds}"


def returns_by_index(log: pd.DataFrame, max_steps: int | None = None, min_episodes: int = 10,
                     steps: int | None = None) -> dict[str, pd.DataFrame]:
    """Per agent, the points of ``returns.png``: columns ``episode`` (the index), ``mean``,
    ``low``, ``high`` (the 95% t-interval across seeds of the seeds' mean returns of the
    whole lives with that index), for the indices from 0 while every seed has at least
    ``min_episodes`` such lives; ``max_steps`` is the env's ``env.max_steps``, ``steps`` the
    rollout's (:func:`~recoworld.metrics.whole_lives`)."""
    points = {}
    for agent, rows in log.groupby("agent", sort=False):
        lives = whole_lives(episode_table(rows), max_steps, steps)
        by_seed = lives.groupby(["episode", "seed"])["return"].agg(["mean", "size"]).reset_index()
        n_seeds = rows["seed"].nunique()
        drawn = []
        for index, group in by_seed.groupby("episode"):
            if len(group) < n_seeds or group["size"].min() < min_episodes:
                break
            interval = mean_interval(group["mean"].to_numpy())
            drawn.append((index, interval.mean, interval.low, interval.high))
        points[str(agent)] = pd.DataFrame(drawn, columns=["episode", "mean", "low", "high"])
    return points


def plot_returns(log: pd.DataFrame, path: Path, max_steps: int | None = None, min_episodes: int = 10,
                 steps: int | None = None) -> None:
    """Mean return of the whole lives by episode index with its 95% t-interval across seeds,
    per agent (:func:`returns_by_index`)."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    last = 0
    for agent, points in returns_by_index(log, max_steps, min_episodes, steps).items():
        if points.empty:
            continue
        last = max(last, int(points["episode"].max()))
        # Bars, not a band: the indices are discrete, and often one (steps = env.max_steps).
        mean, low, high = points["mean"], points["low"], points["high"]
        spread = None if low.isna().any() else [mean - low, high - mean]  # one seed: no interval
        ax.errorbar(points["episode"], mean, yerr=spread, marker="o", markersize=3, capsize=3, label=agent)
    ax.set_xlim(-0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("episode index within a user slot (0 = first user)")
    ax.set_ylabel("return per episode (whole lives)")
    ax.set_title("Return per episode (mean, 95% interval across seeds)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def plot_learning_curves(log: pd.DataFrame, path: Path, points: int = 20) -> None:
    """Mean reward per user-step in ``points`` windows of the rollout, per agent, with a 95%
    t-band across seeds; the x axis counts environment (user-)steps."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for agent, rows in log.groupby("agent", sort=False):
        steps = int(rows["rollout_step"].max()) + 1
        users = rows.groupby("seed")["user"].nunique().max()
        window = np.maximum(1, steps // points)
        per_seed = (rows.assign(window=rows["rollout_step"] // window)
                    .groupby(["window", "seed"])["reward"].mean().unstack("seed"))
        intervals = [mean_interval(row.dropna().to_numpy()) for _, row in per_seed.iterrows()]
        x = (per_seed.index.to_numpy() + 0.5) * window * users
        line, = ax.plot(x, [i.mean for i in intervals], label=str(agent))
        if per_seed.shape[1] > 1:
            ax.fill_between(x, [i.low for i in intervals], [i.high for i in intervals],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps (user-steps)")
    ax.set_ylabel("mean reward per user-step")
    ax.set_title("Learning curves (mean, 95% band across seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def plot_retention(agents: dict, path: Path, min_at_risk: int = 10) -> None:
    """Share of users still active after ``n`` sessions, per agent (from ``metrics.json``'s curves).

    A curve is drawn while at least ``min_at_risk`` users ended the session before.
    """
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for agent, summary in agents.items():
        at_risk = np.asarray(summary["retention_at_risk"])
        shown = 1 + int(np.argmin(at_risk >= min_at_risk)) if (at_risk < min_at_risk).any() else len(at_risk) + 1
        curve = summary["retention"][:shown]
        ax.step(np.arange(len(curve)), curve, where="post", label=agent)
    ax.set_xlabel("sessions completed")
    ax.set_ylabel("share of users still active")
    ax.set_ylim(0, 1.02)
    ax.set_title("Retention (Kaplan–Meier over all seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")

