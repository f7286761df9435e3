"""The rollout loop: one agent serving a vector env of simulated users for a number of steps.

:func:`rollout` is the one loop that drives a :class:`~recoworld.agents.base.Recommender`
against ``RecoWorld/Slate-v0``'s native vector env. The experiment runner, benchmarks and
OPE data collection all use it::

    env = gymnasium.make_vec("RecoWorld/Slate-v0", num_envs=256, vectorization_mode="vector_entry_point")
    with EpisodeLog("episodes.parquet") as log:
        result = rollout(env, RandomAgent(), n_steps=100, seed=0, logger=log)

Each step: ``action = agent.act(obs)``, ``propensities = agent.propensities(obs, action)``,
``env.step(action)``, then — for agents with ``learns`` — ``agent.update(feedback)``.

The vector env autoresets on the *next* step (``AutoresetMode.NEXT_STEP``): a user whose
episode ended at step ``t`` is replaced at step ``t + 1``, where the env ignores the
agent's action for that slot and flags the row with ``info["autoreset"]``. Such rows carry
no interaction: they are passed to learners with ``Feedback.valid`` False, and never
reach the log, the rewards of the result, or the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recoworld.agents.base import Feedback, Recommender
from recoworld.logs import EpisodeLog


@dataclass
class RolloutResult:
    """What one rollout did (the interactions themselves go to the logger).

    Attributes:
        agent: the label the rows were logged under.
        seed: the rollout's seed.
        steps: batched env steps taken.
        interactions: real user-steps (rows of ``num_envs`` x ``steps`` less autoreset rows).
        episodes_completed: user episodes that ended (churn or ``max_steps``) in the rollout.
        total_reward: sum of the rewards of all interactions.
        seconds: wall time of the loop.
    """

    agent: str
    seed: int
    steps: int
    interactions: int
    episodes_completed: int
    total_reward: float
    seconds: float

    @property
    def reward_per_interaction(self) -> float:
        return self.total_reward / self.interactions if self.interactions else float("nan")


def population_seed(seed: int, num_envs: int) -> int:
    """The env seed of a rollout seeded ``seed`` on ``num_envs`` users: ``seed * num_envs``.

    User slot ``i`` then lives the episodes of a single ``SlateEnv`` seeded
    ``seed * num_envs + i``: different seeds never share a user, and every agent run with
    the same seed meets the same users (common random numbers for paired comparisons).
    """
    if seed < 0:
        raise ValueError(f"seed={seed}; seeds must be integers >= 0")
    return seed * num_envs


def rollout(
    env,
    agent: Recommender,
    n_steps: int,
    seed: int,
    logger: EpisodeLog | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    label: str | None = None,
    setup: bool = True,
    learn: bool = True,
    log_candidates: bool = False,
) -> RolloutResult:
    """Let ``agent`` serve the users of the vector env ``env`` for ``n_steps`` steps.

    Args:
        env: a ``SlateVectorEnv``, e.g. from ``gymnasium.make_vec("RecoWorld/Slate-v0",
            num_envs=B, vectorization_mode="vector_entry_point")``. It is reset with
            :func:`population_seed` ``(seed, B)``.
        agent: the recommender. ``agent.setup(env, seed)`` is called first (see ``setup``).
        n_steps: batched steps; each serves every one of the ``B`` user slots once.
        seed: seeds the users (see :func:`population_seed`) and the agent's own randomness.
        logger: receives one batch of rows per step in the episodes schema
            (:mod:`recoworld.logs`), autoreset rows excluded.
        progress: called with ``1`` after every step (e.g. to advance a progress bar).
        label: the agent's name in the log; defaults to ``agent.name``.
        setup: call ``agent.setup(env, seed)``; pass False to go on with an agent already
            set up (e.g. to evaluate it after a training rollout).
        learn: call ``agent.update`` after each step for agents whose ``learns`` is True;
            pass False to evaluate a learner frozen.
        log_candidates: also log each request's candidate ids (for off-policy evaluation
            of other policies on this log).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps}; a rollout needs at least one step")
    label = label or agent.name
    num_envs = env.num_envs
    if setup:
        agent.setup(env, seed)
    obs, _ = env.reset(seed=population_seed(seed, num_envs))
    updates = learn and agent.learns
    # Per slot: the index of its current episode and the step within that episode.
    episode = np.zeros(num_envs, dtype=np.int32)
    episode_step = np.zeros(num_envs, dtype=np.int32)
    interactions, completed, total_reward = 0, 0, 0.0
    start = time.perf_counter()
    for t in range(n_steps):
        action = agent.act(obs)
        propensities = agent.propensities(obs, action)
        next_obs, reward, terminated, truncated, info = env.step(action)
        valid = ~np.asarray(info["autoreset"], dtype=bool)
        if logger is not None:
            rows = np.flatnonzero(valid)
            logger.append(_rows(label, seed, t, rows, obs, propensities, reward, terminated, truncated, info,
                                episode, episode_step, log_candidates))
        if updates:
            agent.update(Feedback(
                obs=obs, action=action, slate=info["slate"], clicked=info["clicked"],
                watch_fraction=info["watch_fraction"], liked=info["liked"], reward=reward, next_obs=next_obs,
                terminated=terminated, truncated=truncated, valid=valid, info=info,
            ))
        interactions += int(valid.sum())
        completed += int((valid & (terminated | truncated)).sum())
        total_reward += float(reward[valid].sum())
        # An autoreset row starts the slot's next episode; its first real step comes next.
        episode_step = np.where(valid, episode_step + 1, 0).astype(np.int32)
        episode = episode + (~valid)
        obs = next_obs
        if progress is not None:
            progress(1)
    return RolloutResult(label, seed, n_steps, interactions, completed, total_reward, time.perf_counter() - start)


def _rows(label, seed, t, rows, obs, propensities, reward, terminated, truncated, info, episode, episode_step,
          log_candidates) -> dict:
    """The logged columns of the real interactions ``rows`` of one step."""
    session = obs["session"][rows]
    in_force = info["instruction_in_force"][rows]
    given = propensities or {}
    return {
        "agent": label, "seed": seed, "user": rows, "episode": episode[rows],
        "episode_seed": info["episode_seed"][rows], "step": episode_step[rows], "rollout_step": t,
        "session": session[:, 0], "session_step": session[:, 1],
        "slate": info["slate"][rows],
        "candidate_ids": obs["candidate_ids"][rows] if log_candidates else None,
        "propensity": _pick(given.get("slate"), rows),
        "position_propensity": _pick(given.get("position"), rows),
        "cascade_propensity": _pick(given.get("cascade"), rows),
        "examined": info["examined"][rows], "clicked": info["clicked"][rows],
        "watch_fraction": info["watch_fraction"][rows], "liked": info["liked"][rows], "rating": info["rating"][rows],
        "reward": reward[rows], "satisfaction": info["satisfaction"][rows],
        "left_session": info["left_session"][rows], "returned": info["returned"][rows],
        "churned": info["churned"][rows], "return_gap": info["return_gap"][rows],
        "terminated": terminated[rows], "truncated": truncated[rows],
        "instruction_text": info["instruction_text"][rows], "instruction_in_force": in_force,
        "compliance": np.ma.masked_array(info["compliance"][rows], mask=~in_force),
    }


def _pick(values, rows):
    return None if values is None else np.asarray(values)[rows]
