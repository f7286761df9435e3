r"""Policy ranking: do agents rank the same in the calibrated simulator as on held-out logs?

A simulator is useful for choosing between recommenders when it orders them as real users
would. Each agent of a lineup (configs of ``conf/agent/``; the Oracle is left out, as it
needs the simulator's private state, which logs do not have) gets two values:

* **In the simulator**: its click-through rate (clicks per shown item) serving the
  calibrated users in ``RecoWorld/Slate-v0`` — the run of ``recoworld run`` in small.
* **On held-out logs**: its click-through rate in a replay of the held-out ratings (Li et
  al., "Unbiased offline evaluation of contextual-bandit-based news article recommendation
  algorithms", WSDM 2011). Each round is one held-out rating of a user, taken in time order
  (round ``r`` holds every user's ``r``-th held-out rating): the agent sees the user's
  history (their latest rated items, newest first, rated 4 or 5 stars read as a like) and
  ``num_candidates`` candidates — the held-out item and items the user never rated, drawn
  uniformly and shuffled — and shows ``slate_size`` of them; the held-out item counts as
  clicked if shown, every other candidate as skipped (a user who rated all but fewer than
  ``num_candidates - 1`` items of the catalog has too few never-rated items to fill a
  request and sits the replay out; the report counts them). Since every candidate's reward is
  known under this reading of the logs (what the user chose next, and what they never
  chose), the replay needs no logged action to match: every round counts, as in the 1:m
  protocol. Learners update on each round's feedback, as in Li et al.'s replay.

Both run through the one rollout loop (:func:`~recoworld.envs.rollout.rollout`): the replay
is a :class:`ReplayEnv`, the held-out rounds with the face of the vector env, on which a
round is a step and a user without that round is a row that carries no interaction.

The two rankings are compared by Kendall's :math:`\tau_b` (``scipy.stats.kendalltau``):
1 when both order the agents alike, -1 when reversed. With a handful of agents the p-value
is coarse, so the report gives both orderings. In each, rank 1 is the highest click-through
and agents of equal click-through share a rank, the average of the places they take
(:data:`TIES`): two agents tied for second are both 2.5, and neither is ranked above the
other, as :math:`\tau_b` counts a tie as neither agreement nor disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from scipy import stats

from recoworld.agents.base import Recommender
from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.calibration.split import Split
from recoworld.envs.rollout import rollout
from recoworld.simulators.calibrated import CalibratedWorld
from recoworld.simulators.statistical import StatisticalUsers
from recoworld.types import CANDIDATE_FEATURES, CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS

#: The default lineup: non-learning baselines, item bandits and a linear contextual bandit.
AGENTS = ("random", "most_popular", "epsilon_greedy", "ucb1", "bernoulli_ts", "linucb")
#: A held-out rating of at least this many stars is read as a like in the replay's history.
LIKE_STARS = 4
#: How the report ranks agents of equal click-through (module docstring; it says so in ``ranks``).
TIES = ("rank 1 is the highest click-through; agents of equal click-through share the average of the places they "
        "take (two tied for second are both 2.5)")


@dataclass
class RankingConfig:
    """Sizes of the two evaluations.

    Attributes:
        agents: names of agent configs in ``conf/agent/``.
        num_candidates, slate_size: the request, the same in both.
        num_envs, steps, seed: the simulator run (users served at once, batched steps).
        rounds: held-out ratings replayed per user (users with fewer play fewer rounds).
        history_length: items in the replayed history.
    """

    agents: Sequence[str] = AGENTS
    num_candidates: int = 20
    slate_size: int = 5
    num_envs: int = 128
    steps: int = 60
    seed: int = 0
    rounds: int = 10
    history_length: int = 10


def make_agent(name: str) -> Recommender:
    """The agent of ``conf/agent/<name>.yaml``, built as ``recoworld run`` builds it."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"agent={name}", "world=synthetic"])
    return instantiate(cfg.agent, _convert_="object")


#: Agents that read the simulator's private state (``conf/agent/*oracle*.yaml``), which
#: held-out logs do not have.
PRIVILEGED = ("oracle", "planning_oracle")


def shipped_agents() -> list[str]:
    """The names of ``conf/agent/``'s configs, the agents :func:`make_agent` builds."""
    from importlib.resources import files

    return sorted(p.name.removesuffix(".yaml") for p in files("recoworld.conf").joinpath("agent").iterdir()
                  if p.name.endswith(".yaml"))


def check_agents(agents: Sequence[str]) -> None:
    """Refuse a lineup that cannot be ranked, naming the agent: fewer than two, one named
    twice (it would be ranked against itself), one with no config, or a privileged one."""
    agents = list(agents)
    if len(agents) < 2:
        raise ValueError(f"--agents {','.join(agents)}: a ranking needs at least two agents, e.g. "
                         f"--agents {','.join(AGENTS[:3])} (or --agents '' for no ranking)")
    twice = sorted({a for a in agents if agents.count(a) > 1})
    if twice:
        raise ValueError(f"--agents names {', '.join(twice)} more than once; name each agent once")
    known = shipped_agents()
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"--agents: no agent config {', '.join(map(repr, unknown))} in conf/agent/; choose among "
                         f"{', '.join(a for a in known if a not in PRIVILEGED)}")
    privileged = [a for a in agents if a in PRIVILEGED]
    if privileged:
        one = len(privileged) == 1
        raise ValueError(f"--agents: {', '.join(privileged)} {'reads' if one else 'read'} the simulator's private "
                         f"state, which held-out logs do not have; leave {'it' if one else 'them'} out of the ranking")


def simulator_env(world: CalibratedWorld, config: RankingConfig):
    """``RecoWorld/Slate-v0``'s vector env on the calibrated users."""
    users = StatisticalUsers(world.catalog, world.config, world.population())
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=config.num_envs, vectorization_mode="vector_entry_point",
                        simulator=users, num_candidates=config.num_candidates, slate_size=config.slate_size)


def simulator_value(world: CalibratedWorld, name: str, config: RankingConfig) -> float:
    """Clicks per shown item of agent ``name`` serving the calibrated users."""
    env = simulator_env(world, config)
    try:
        result = rollout(env, make_agent(name), config.steps, config.seed)
    finally:
        env.close()
    return result.total_reward / (result.interactions * config.slate_size)


@dataclass
class ReplayRounds:
    """The replayed requests: ``[R, n_users]`` held-out item (-1: no round) and its stars,
    ``[R, n_users, C]`` candidates and ``[R, n_users, H]`` histories (newest first, -1 padded)
    with ``[R, n_users, H]`` likes; ``left_out``: the users with too few never-rated items
    for a request, who have no rounds."""

    item: np.ndarray
    stars: np.ndarray
    candidates: np.ndarray
    history: np.ndarray
    liked: np.ndarray
    left_out: int = 0


def replay_rounds(split: Split, config: RankingConfig) -> ReplayRounds:
    """Cut the held-out ratings into rounds (module docstring)."""
    n_users, n_items, R, C, H = split.n_users, split.n_items, config.rounds, config.num_candidates, \
        config.history_length
    rng = np.random.default_rng(config.seed)
    rated = np.zeros((n_users, n_items), dtype=bool)
    for table in (split.train, split.test):
        rated[table["user_id"].to_numpy(), table["item_id"].to_numpy()] = True
    unrated = (~rated).sum(1)
    # Only a user with a held-out rating has a round: one who rated too few to hold one out
    # fills a request but has nothing to replay in it.
    held = np.zeros(n_users, dtype=bool)
    held[split.test["user_id"].to_numpy()] = True
    most = unrated[held].max(initial=0)
    if most < C - 1:
        light = "" if held.all() else (f"; {int((~held).sum())} of the {n_users} users held nothing out "
                                       "(too few ratings to hold one out)")
        raise CalibrationDataError(
            f"no user has the {C - 1} never-rated items a replayed request shows beside the held-out one "
            f"(num_candidates={C}): every user with a held-out rating rated all but at most "
            f"{most} of the {n_items} items{light}")
    everything = pd.concat([split.train, split.test], ignore_index=True).sort_values(
        ["user_id", "timestamp"], kind="stable")
    # Training ratings precede held-out ones, so a user's first held-out rating comes after
    # as many ratings as they have in training.
    first_held = split.train.groupby("user_id").size().reindex(range(n_users), fill_value=0).to_numpy()
    sequence = {u: (g["item_id"].to_numpy(), g["rating"].to_numpy()) for u, g in everything.groupby("user_id")}
    item = np.full((R, n_users), -1, dtype=np.int64)
    stars = np.zeros((R, n_users), dtype=np.int64)
    candidates = np.zeros((R, n_users, C), dtype=np.int64)
    history = np.full((R, n_users, H), -1, dtype=np.int64)
    liked = np.zeros((R, n_users, H), dtype=np.float32)
    never = [np.flatnonzero(~rated[u]) for u in range(n_users)]
    for u, (items, ratings) in sequence.items():
        if len(never[u]) < C - 1:  # sits out: no rounds; distinct ids fill its rows, which carry no interaction
            candidates[:, u] = np.arange(C)
            continue
        for r in range(R):
            at = first_held[u] + r
            others = rng.choice(never[u], C - 1, replace=False)
            if at < len(items):
                item[r, u], stars[r, u] = items[at], ratings[at]
                others = np.append(others, items[at])
            else:
                others = np.append(others, rng.choice(never[u]))
            candidates[r, u] = rng.permutation(others)
            past = slice(max(at - H, 0), min(at, len(items)))
            recent = items[past][::-1]
            history[r, u, : len(recent)] = recent
            liked[r, u, : len(recent)] = ratings[past][::-1] >= LIKE_STARS
    return ReplayRounds(item, stars, candidates, history, liked, int((unrated < C - 1).sum()))


def replay_value(world: CalibratedWorld, name: str, rounds: ReplayRounds, config: RankingConfig) -> float:
    """Clicks per shown item of agent ``name`` in the replay of ``rounds``."""
    n_users = rounds.item.shape[1]
    # The env gives the agent the world's sizes (catalog, slate and candidates) in setup,
    # and the replay the layout of its observations.
    env = simulator_env(world, RankingConfig(num_envs=n_users, num_candidates=config.num_candidates,
                                             slate_size=config.slate_size))
    agent = make_agent(name)
    try:
        agent.setup(env, config.seed)
        template, _ = env.reset(seed=config.seed)
    finally:
        env.close()
    replay = ReplayEnv(rounds, template, world.catalog.features.cpu().numpy())
    result = rollout(replay, agent, rounds.item.shape[0], config.seed, setup=False)
    return result.total_reward / max(result.interactions * config.slate_size, 1)


class ReplayEnv:
    """The replayed rounds with the face of ``RecoWorld/Slate-v0``'s vector env, for
    :func:`~recoworld.envs.rollout.rollout`: step ``r`` serves round ``r`` to every user.

    The held-out item counts as clicked where shown, and liked when rated
    ``LIKE_STARS`` or more; the reward is the clicks. A user without round ``r`` is flagged
    in ``info["autoreset"]``, so that the loop treats the row as no interaction (it is not
    counted, and learners see it as not valid). No episode ends; the last round's next
    observation is that round again.

    Args:
        rounds: the replayed requests.
        template: an observation of the simulator's env, whose keys, shapes and dtypes the
            replay's observations take (fields the logs do not have are zeros).
        features: ``[N, D]`` the catalog's item features.
    """

    def __init__(self, rounds: ReplayRounds, template: dict, features: np.ndarray):
        self.rounds, self.template, self.features = rounds, template, features
        self.num_envs = rounds.item.shape[1]
        self.unwrapped = self

    def reset(self, seed: int | None = None):
        self.round = 0
        return observation(self.template, self.rounds, 0, self.features), {}

    def step(self, action: np.ndarray):
        rounds, r = self.rounds, self.round
        slate = np.take_along_axis(rounds.candidates[r], np.asarray(action), 1)
        valid = rounds.item[r] >= 0
        clicked = (slate == rounds.item[r][:, None]) & valid[:, None]
        liked = clicked & (rounds.stars[r] >= LIKE_STARS)[:, None]
        self.round = r + 1
        done = np.zeros(self.num_envs, dtype=bool)
        next_obs = observation(self.template, rounds, min(r + 1, rounds.item.shape[0] - 1), self.features)
        info = {"slate": slate, "clicked": clicked, "watch_fraction": clicked.astype(np.float32), "liked": liked,
                "autoreset": ~valid}
        return next_obs, clicked.sum(1).astype(np.float32), done, done.copy(), info


def observation(template: dict, rounds: ReplayRounds, r: int, features: np.ndarray) -> dict:
    """Round ``r`` in the env's observation layout (no instruction; session counters at 0)."""
    history = rounds.history[r]
    feedback = np.stack([(history >= 0).astype(np.float32), rounds.liked[r]], -1)
    obs = {key: np.zeros_like(value) for key, value in template.items()}
    obs.update({CANDIDATE_IDS: rounds.candidates[r].copy(), HISTORY_ITEMS: history.copy(),
                HISTORY_FEEDBACK: feedback})
    if CANDIDATE_FEATURES in template:
        obs[CANDIDATE_FEATURES] = features[rounds.candidates[r]].astype(np.float32)
    return obs


def policy_ranking(world: CalibratedWorld, split: Split, config: RankingConfig | None = None) -> dict:
    """Both values of every agent, both rankings and Kendall's tau (module docstring)."""
    config = config or RankingConfig()
    check_agents(config.agents)
    rounds = replay_rounds(split, config)
    with torch.no_grad():
        simulated = {name: simulator_value(world, name, config) for name in config.agents}
        replayed = {name: replay_value(world, name, rounds, config) for name in config.agents}
    names = list(config.agents)
    tau = stats.kendalltau([simulated[n] for n in names], [replayed[n] for n in names])
    rank = {"simulator": ranks(simulated), "replay": ranks(replayed)}
    return {
        "agents": {n: {"simulator_ctr": simulated[n], "replay_ctr": replayed[n],
                       "simulator_rank": rank["simulator"][n], "replay_rank": rank["replay"][n]} for n in names},
        "ranks": TIES, "kendall_tau": float(tau.statistic), "p_value": float(tau.pvalue),
        "replay_rounds": int((rounds.item >= 0).sum()), "replay_left_out_users": rounds.left_out,
        "chance_ctr": 1.0 / config.num_candidates,
        "settings": {"num_candidates": config.num_candidates, "slate_size": config.slate_size,
                     "num_envs": config.num_envs, "steps": config.steps, "rounds": config.rounds},
    }


def ranks(values: dict[str, float]) -> dict[str, int | float]:
    """Each agent's rank by ``values``, highest first, ties sharing the average of their places
    (:data:`TIES`): an integer where it is whole, so that untied ranks read 1, 2, 3."""
    names = list(values)
    average = stats.rankdata([-values[n] for n in names], method="average")
    return {n: int(r) if float(r).is_integer() else float(r) for n, r in zip(names, average, strict=True)}
