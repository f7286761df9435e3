"""The robustness study: which worlds to run, and what their rankings say.

:func:`run_study` is independent of how a world is simulated: it calls
``evaluate(values, seeds)``, which returns every agent's score in the world whose
unidentified parameters take ``values`` (``{}``: the configured world), averaged over the
rollouts of ``seeds``. :class:`~recoworld.apps.robustness.lineup.Lineup` is the evaluation
that runs agents against simulated users; tests pass a toy one.

The worlds, in order:

1. ``default``: the configured world (the reference ranking).
2. ``seed_noise`` (``seed_noise`` of them, optional): the configured world again with
   other users (seeds after the configured ones). Their :math:`\\tau` against the
   reference is what sampling users alone does to the ranking: the parameters move the
   ranking only as far as the sampled worlds' :math:`\\tau` falls below theirs.
3. ``sampled``: ``worlds`` draws from the ranges (:meth:`ParameterSpace.sample`), every
   parameter at once.
4. ``low`` / ``high`` (optional): each parameter alone at each end of its range, the
   one-at-a-time sweep.

Every world serves the same users (the configured seeds: common random numbers), so the
differences between worlds are the parameters', not the users'.

Scores that cannot be ranked stop the study with a ``ValueError`` naming the world and the
fix (:func:`check_scores`): an undefined (NaN) or infinite score, and a configured world that
scores every agent alike, which leaves no ranking to test. A sampled world that scores
every agent alike has no :math:`\tau` (NaN); the mean is over the worlds that have one, and
the report says how many.

The plan is a function of the settings alone (the draw is seeded by ``sample_seed``), so a
stopped study resumes by passing the scores of its finished worlds, by their index in the
plan, as ``finished``: they are not evaluated again, and the result is the uninterrupted
study's (:mod:`~recoworld.apps.robustness.studydir` keeps them on disk).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from recoworld.apps.robustness import stability
from recoworld.apps.robustness.space import DEFAULT_RANGES, ParameterRange, ParameterSpace, check_worlds

#: The default lineup: cheap agents of ``conf/agent/``, from the floor to linear bandits.
AGENTS = ("random", "most_popular", "linucb", "epsilon_greedy", "bernoulli_ts")
#: The score the lineup is ranked by when no metric of :data:`recoworld.metrics.METRICS` is named.
REWARD_PER_STEP = "reward_per_step"
#: Sizes of ``--quick`` (tests and a first look).
QUICK = {"worlds": 4, "users": 16, "steps": 10}

Evaluate = Callable[[Mapping[str, float], Sequence[int]], dict[str, float]]


@dataclass
class RobustnessConfig:
    """Settings of a robustness study.

    Attributes:
        agents: names of configs in ``conf/agent/``, ranked in every world.
        worlds: ``K``, the worlds drawn from the ranges.
        users: users served at once in a rollout (``env.num_envs``).
        steps: batched steps of a rollout.
        seeds: one rollout per agent, world and seed; an agent's score is the mean.
        metric: what ranks the agents, higher is better: ``reward_per_step`` (the env's
            reward per user-step, as the leaderboards rank) or a name of
            :data:`recoworld.metrics.METRICS` (e.g. ``return_rate``), computed on the log.
        sampler: ``lhs`` (Latin hypercube) or ``sobol`` (``worlds`` a power of 2).
        sample_seed: seeds the draw of the worlds.
        one_at_a_time: also run each parameter alone at each end of its range.
        seed_noise: worlds that run the configured world with other users (0: none; else 2 or more).
        confidence: level of the bootstrap interval of the mean :math:`\\tau`.
        resamples: bootstrap resamples.
        ranges: ``{parameter: ParameterRange}``, the plausible ranges
            (default :data:`~recoworld.apps.robustness.space.DEFAULT_RANGES`).
    """

    agents: Sequence[str] = AGENTS
    worlds: int = 16
    users: int = 128
    steps: int = 50
    seeds: Sequence[int] = (0,)
    metric: str = REWARD_PER_STEP
    sampler: str = "lhs"
    sample_seed: int = 0
    one_at_a_time: bool = True
    seed_noise: int = 4
    confidence: float = 0.95
    resamples: int = 2000
    ranges: Mapping[str, ParameterRange] = field(default_factory=lambda: dict(DEFAULT_RANGES))

    def check(self) -> ParameterSpace:
        """Raise ``ValueError`` naming the bad setting; return the checked parameter space."""
        check_worlds(self.worlds, self.sampler)
        if len(self.agents) < 2:
            raise ValueError(f"agents={list(self.agents)}; a ranking needs at least two agents")
        repeated = sorted({a for a in self.agents if list(self.agents).count(a) > 1})
        if repeated:
            raise ValueError(f"agents lists {repeated} more than once; each agent is ranked once")
        for name in ("users", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; it must be at least 1")
        if self.seed_noise < 0:
            raise ValueError(f"seed_noise={self.seed_noise}; it counts worlds and must be >= 0 (0: none)")
        if self.seed_noise == 1:
            raise ValueError("seed_noise=1; one world with other users has no spread to read as a noise floor (its "
                             "interval would be its one tau): give 2 or more, or 0 for none")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed, e.g. seeds=(0,)")
        repeated = sorted({s for s in self.seeds if list(self.seeds).count(s) > 1})
        if repeated:
            raise ValueError(f"seeds lists {repeated} more than once; each seed serves other users, so a repeated "
                             "one only runs the same rollout again")
        # NumPy's generators take no negative seed: refused here, not by the first rollout.
        negative = [s for s in self.seeds if s < 0]
        if negative:
            raise ValueError(f"seeds lists {negative[0]}; a seed is an integer >= 0, e.g. seeds=(0, 1)")
        if self.sample_seed < 0:
            raise ValueError(f"sample_seed={self.sample_seed}; the seed of the draw of the worlds is an integer >= 0")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence={self.confidence}; it is a level in (0, 1), e.g. 0.95")
        return ParameterSpace(self.ranges)

    def settings(self) -> dict:
        """The settings as plain values (ranges apart)."""
        out = asdict(self)
        out.pop("ranges")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass
class World:
    """One world of the study: its ``kind`` (module docstring), the parameter values set
    (``{}``: as configured), the varied parameter of a ``low``/``high`` world, its seeds."""

    kind: str
    values: dict[str, float]
    seeds: list[int]
    parameter: str | None = None


def plan(config: RobustnessConfig, space: ParameterSpace) -> list[World]:
    """Every world of the study, in the order of the module docstring."""
    seeds = [int(s) for s in config.seeds]
    worlds = [World("default", {}, seeds)]
    fresh = max(seeds) + 1  # users no world of the configured seeds serves
    worlds += [World("seed_noise", {}, [fresh + i * len(seeds) + j for j in range(len(seeds))])
               for i in range(config.seed_noise)]
    points = space.sample(config.worlds, config.sample_seed, config.sampler)
    worlds += [World("sampled", dict(zip(space.names, map(float, row))), seeds) for row in points]
    if config.one_at_a_time:
        for name in space.names:
            low, high = space.ends(name)
            worlds += [World("low", {name: low}, seeds, name), World("high", {name: high}, seeds, name)]
    return worlds


def run_study(config: RobustnessConfig, evaluate: Evaluate, base: Mapping[str, float] | None = None,
              record: Callable[[int, World, dict[str, float]], None] | None = None,
              finished: Mapping[int, Mapping[str, float]] | None = None) -> dict:
    """Run every world of :func:`plan` through ``evaluate`` and summarise the rankings.

    Args:
        config: the study's settings.
        evaluate: ``evaluate(values, seeds) -> {agent: score}`` (module docstring).
        base: the configured world's value of each parameter, for the report.
        record: called as ``record(index, world, scores)`` after each world evaluated,
            ``index`` its place in the plan (a study folder writes the scores down).
        finished: ``{index: {agent: score}}`` of the worlds a stopped study evaluated; they
            are not evaluated again (module docstring).

    Returns the content of ``robustness.json`` (see :mod:`recoworld.apps.robustness`).
    """
    space = config.check()
    worlds = plan(config, space)
    finished = finished or {}
    rows = []
    for index, world in enumerate(worlds):
        known = index in finished
        scores = finished[index] if known else evaluate(world.values, world.seeds)
        scores = {name: float(score) for name, score in scores.items()}
        check_scores(config, index, world, scores, "the finished world's scores" if known else "evaluate's scores")
        if record is not None and not known:
            record(index, world, scores)
        rows.append({"kind": world.kind, "parameter": world.parameter, "values": world.values,
                     "seeds": world.seeds, "scores": scores, "ranks": stability.ranks(scores)})
    reference = rows[0]["scores"]
    for row in rows:
        row["tau"] = stability.kendall_tau(reference, row["scores"])
        row["swapped_pairs"] = stability.swapped_pairs(reference, row["scores"])
    sampled = [r for r in rows if r["kind"] == "sampled"]
    noise = [r for r in rows if r["kind"] == "seed_noise"]
    ranges = space.to_dict()
    for name in ranges:
        ranges[name]["configured"] = None if base is None else base.get(name)
    return {
        "settings": config.settings(),
        "ranges": ranges,
        "default": rows[0],
        "seed_noise": _seed_noise(config, noise),
        "stability": _stability(config, sampled, reference),
        "agents": _agents(config.agents, rows[0], sampled),
        "pairs": _pairs(rows[0], sampled, noise),
        "sensitivity": _sensitivity(space, rows, sampled),
        "worlds": rows,
    }


def check_scores(config: RobustnessConfig, index: int, world: World, scores: dict[str, float], source: str) -> None:
    """Refuse, naming the world and the fix, scores that cannot be ranked: of other agents
    than the lineup's, an undefined (NaN) or infinite score, or a configured world (index 0)
    that scores every agent alike, which leaves no ranking to test."""
    where = f"world {index} ({world.kind}{''.join(f', {n}={v:g}' for n, v in world.values.items())})"
    if set(scores) != set(config.agents):
        raise ValueError(f"{source} of world {index} are of {list(scores)}, expected {list(config.agents)}")
    undefined = [name for name, score in scores.items() if not math.isfinite(score)]
    if undefined:
        raise ValueError(f"{source} of {where} give {', '.join(f'{n}={scores[n]}' for n in undefined)}; a ranking "
                         f"needs a number for every agent: rank by a metric defined for every agent (not "
                         f"{config.metric}), or serve more users or steps")
    if index == 0 and len(set(scores.values())) == 1:
        raise ValueError(f"the configured world scores every agent alike ({config.metric} = "
                         f"{next(iter(scores.values())):g} for {', '.join(scores)}): there is no ranking whose "
                         "robustness to test; serve more users or steps, or rank by another metric")


def _stability(config: RobustnessConfig, sampled: list[dict], reference: dict[str, float]) -> dict:
    taus = [r["tau"] for r in sampled]
    ranks = stability.ranks(reference)
    return {
        "tau": stability.bootstrap_mean(taus, config.confidence, config.resamples, config.sample_seed),
        "worlds": len(sampled),
        "tau_min": float(np.nanmin(taus)) if not all(map(math.isnan, taus)) else math.nan,
        "same_ranking_share": float(np.mean([r["ranks"] == ranks for r in sampled])),
        "top_agents": stability.top_agents(reference),
        "same_top_share": stability.same_top_share(reference, [r["scores"] for r in sampled]),
    }


def _agents(agents: Sequence[str], default: dict, sampled: list[dict]) -> dict[str, dict]:
    out = {}
    for name in agents:
        ranks = [r["ranks"][name] for r in sampled]
        out[name] = {"default_score": default["scores"][name], "default_rank": default["ranks"][name],
                     "mean_rank": float(np.mean(ranks)), "best_rank": int(min(ranks)), "worst_rank": int(max(ranks)),
                     "kept_rank_share": float(np.mean([r == default["ranks"][name] for r in ranks]))}
    return out


def _seed_noise(config: RobustnessConfig, noise: list[dict]) -> dict | None:
    if not noise:
        return None
    taus = [r["tau"] for r in noise]
    return {"worlds": len(noise), "tau": stability.bootstrap_mean(taus, config.confidence, config.resamples,
                                                                  config.sample_seed)}


def _pairs(default: dict, sampled: list[dict], noise: list[dict]) -> list[dict]:
    """Each pair of agents as the configured world orders them, with the share of sampled
    worlds that keep that order (and of seed-noise worlds, ``None`` without them); a pair
    the configured world ties is ``tied``, and kept where it stays tied."""
    scores = default["scores"]
    names = sorted(scores, key=lambda n: -scores[n])
    out = []
    for i, ahead in enumerate(names):
        for behind in names[i + 1:]:
            tied = scores[ahead] == scores[behind]
            kept = [[(r["scores"][ahead] == r["scores"][behind]) if tied else r["scores"][ahead] > r["scores"][behind]
                     for r in worlds] for worlds in (sampled, noise)]
            out.append({"ahead": ahead, "behind": behind, "margin": scores[ahead] - scores[behind], "tied": tied,
                        "kept_share": float(np.mean(kept[0])),
                        "kept_with_other_users": float(np.mean(kept[1])) if noise else None})
    return out


def _sensitivity(space: ParameterSpace, rows: list[dict], sampled: list[dict]) -> dict:
    values = np.array([[r["values"][n] for n in space.names] for r in sampled])
    correlation = stability.rank_correlation(values, [r["tau"] for r in sampled], space.names)
    ends = {(r["parameter"], r["kind"]): r for r in rows if r["kind"] in ("low", "high")}
    sweep = []
    if ends:
        effect = stability.one_at_a_time({n: ends[n, "low"]["tau"] for n in space.names},
                                         {n: ends[n, "high"]["tau"] for n in space.names})
        sweep = [{"parameter": n, "low": space.ends(n)[0], "high": space.ends(n)[1],
                  "tau_low": ends[n, "low"]["tau"], "tau_high": ends[n, "high"]["tau"],
                  "swapped_low": ends[n, "low"]["swapped_pairs"], "swapped_high": ends[n, "high"]["swapped_pairs"],
                  "effect": e} for n, e in effect.items()]
    return {"one_at_a_time": sweep, "rank_correlation": correlation}
