"""The rollout loop: one agent serving a vector env of simulated users for a number of steps.

:func:`rollout` is the one loop that drives a :class:`~recoworld.agents.base.Recommender`
against a vector env with the face of ``RecoWorld/Slate-v0``'s native one. Every caller
uses it — the experiment runner, the policy ranking, the OPE studies, benchmarks and
tests — and adds what it needs through :class:`Hook` objects (as Stable-Baselines3
callbacks do)::

    env = gymnasium.make_vec("RecoWorld/Slate-v0", num_envs=256, vectorization_mode="vector_entry_point")
    with EpisodeLog("episodes.parquet") as log:
        result = rollout(env, RandomAgent(), n_steps=100, seed=0, logger=log)

Each step: ``action = agent.act(obs)``, ``propensities = agent.propensities(obs, action)``
(only when a hook needs them), every hook's :meth:`Hook.on_action`, ``env.step(action)``,
every hook's :meth:`Hook.on_step`, then — for agents with ``learns`` —
``agent.update(feedback)``. The agent sees each observation as a
:class:`~recoworld.types.Observation` and learns from a :class:`~recoworld.types.Feedback`,
both built here and nowhere else.

Learning and observing are two things. ``learn=False`` (an evaluation of a frozen agent)
withholds ``update``; an agent that hears what users say (e.g. the LLM agents, which quote
the instruction voiced in ``feedback.info["instruction_text"]``) implements
``observe(feedback)``, which receives every step's feedback whether it learns or not —
``update`` is expected to observe as well. An agent with ``begin_rollout(n_steps,
num_envs)`` is told the rollout's size before the first step (the LLM agents bound their
fallbacks with it).

The vector env autoresets on the *next* step (``AutoresetMode.NEXT_STEP``): a user whose
episode ended at step ``t`` is replaced at step ``t + 1``, where the env ignores the
agent's action for that slot and flags the row with ``info["autoreset"]``. Such rows carry
no interaction: they are passed to learners with ``Feedback.valid`` False, and never
reach the log, the rewards of the result, or the metrics.

Hooks shipped here:

- :class:`EpisodeLogger`: the interactions as rows of the episodes schema
  (:mod:`recoworld.logs`); ``rollout(..., logger=log)`` adds one.
- :class:`ExpectedClicks`: privileged truth, the exact expected clicks of every slate
  shown, read through the env's documented channel ``env.unwrapped.expected_clicks``.
- :class:`StepTrace`: the per-step rewards, validity and slates (learning curves).
- :class:`EachStep`: calls a function after every step (progress bars).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recoworld.agents.base import VECTOR_ENV, Recommender
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, check_number
from recoworld.logs import EpisodeLog
from recoworld.types import Feedback, Observation


@dataclass
class RolloutResult:
    """What one rollout did (the interactions themselves go to the hooks).

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


@dataclass
class Step:
    """One batched step of a rollout, as :meth:`Hook.on_step` sees it.

    Attributes:
        t: the rollout step, from 0.
        feedback: what the learner was (or would have been) told; its ``valid`` marks the
            real interactions.
        propensities: the agent's :meth:`~recoworld.agents.base.Recommender.propensities`
            of its action, when a hook asked for them (``None`` otherwise or when unknown).
        episode: ``[B]`` per user slot, the index of its current episode (from 0).
        episode_step: ``[B]`` per slot, the step within that episode.
    """

    t: int
    feedback: Feedback
    propensities: dict[str, np.ndarray] | None
    episode: np.ndarray
    episode_step: np.ndarray


class Hook:
    """Something a rollout does besides serving users; override what you need.

    Attributes:
        needs_propensities: ask the loop to compute the agent's propensities every step.
    """

    needs_propensities: bool = False

    def on_setup(self, env, agent: Recommender, seed: int, label: str) -> None:
        """Before ``agent.setup`` (where a learner may train first), when the rollout sets
        the agent up."""

    def on_start(self, env, agent: Recommender, seed: int, label: str) -> None:
        """Before the first step, with the env already reset and the agent set up."""

    def on_action(self, t: int, obs: Observation, action: np.ndarray) -> None:
        """After the agent chose ``action`` on ``obs``, before the users see it: the state
        the slate meets (e.g. for privileged truth about it)."""

    def on_step(self, step: Step) -> None:
        """After the env stepped, before the agent learns from ``step.feedback``."""

    def on_end(self, result: RolloutResult) -> None:
        """After the last step."""


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
    *,
    hooks: Sequence[Hook] = (),
    label: str | None = None,
    setup: bool = True,
    learn: bool = True,
    log_candidates: bool = False,
    env_seed: int | None = None,
) -> RolloutResult:
    """Let ``agent`` serve the users of the vector env ``env`` for ``n_steps`` steps.

    Args:
        env: a ``SlateVectorEnv``, e.g. from ``gymnasium.make_vec("RecoWorld/Slate-v0",
            num_envs=B, vectorization_mode="vector_entry_point")``, or anything with its face
            (``reset``, ``step`` with ``info["autoreset"]``, ``num_envs``).
        agent: the recommender. ``agent.setup(env, seed)`` is called first (see ``setup``).
        n_steps: batched steps; each serves every one of the ``B`` user slots once.
        seed: seeds the agent's own randomness and, unless ``env_seed`` is given, the
            users (see :func:`population_seed`).
        logger: shorthand for ``hooks=[EpisodeLogger(logger, log_candidates)]``: receives
            one batch of rows per step in the episodes schema, autoreset rows excluded.
        hooks: the :class:`Hook` objects of this rollout, called in order.
        label: the agent's name in the result and the log; defaults to ``agent.name``.
        setup: call ``agent.setup(env, seed)``; pass False to go on with an agent already
            set up (e.g. to evaluate it after a training rollout).
        learn: call ``agent.update`` after each step for agents whose ``learns`` is True;
            pass False to evaluate a learner frozen (its ``observe``, if any, still hears
            every step: see the module docstring).
        log_candidates: with ``logger``, also log each request's candidate ids (for
            off-policy evaluation of other policies on this log).
        env_seed: the seed of ``env.reset`` instead of ``population_seed(seed, B)`` (e.g.
            held-out users for a ground truth).
    """
    n_steps = check_number(None, "n_steps", n_steps, AT_LEAST_ONE, integer=True)
    seed = check_number(None, "seed", seed, NON_NEGATIVE, integer=True)  # before the agent seeds itself with it
    if isinstance(agent, type):
        raise ValueError(f"agent is the class {agent.__name__}; pass an instance, {agent.__name__}()")
    if not hasattr(env, "num_envs"):
        kind = type(getattr(env, "unwrapped", env)).__name__
        raise ValueError(f"env is a {kind}, not a vector env: rollout serves a batch of users; build one with "
                         f"{VECTOR_ENV}")
    hooks = [*hooks, *([EpisodeLogger(logger, log_candidates)] if logger is not None else [])]
    label = label or agent.name
    if setup:
        for hook in hooks:
            hook.on_setup(env, agent, seed, label)
        agent.setup(env, seed)
    obs, _ = env.reset(seed=population_seed(seed, env.num_envs) if env_seed is None else env_seed)
    for hook in hooks:
        hook.on_start(env, agent, seed, label)
    begin = getattr(agent, "begin_rollout", None)
    if begin is not None:
        begin(n_steps, env.num_envs)
    loop = _Loop(env, agent, hooks, learn and agent.learns, Observation(obs))
    start = time.perf_counter()
    for t in range(n_steps):
        loop.step(t)
    result = RolloutResult(label, seed, n_steps, loop.interactions, loop.completed, loop.total_reward,
                           time.perf_counter() - start)
    for hook in hooks:
        hook.on_end(result)
    return result


class _Loop:
    """The state :func:`rollout` carries from step to step."""

    def __init__(self, env, agent: Recommender, hooks: list[Hook], updates: bool, obs: Observation):
        self.env, self.agent, self.hooks, self.obs = env, agent, hooks, obs
        # What the agent is told of each step's feedback: update (learns and observes), or
        # observe only (a frozen agent still hears its users), or nothing.
        self.tell = agent.update if updates else getattr(agent, "observe", None)
        self.propensities = any(hook.needs_propensities for hook in hooks)
        # Per slot: the index of its current episode and the step within that episode.
        self.episode = np.zeros(env.num_envs, dtype=np.int32)
        self.episode_step = np.zeros(env.num_envs, dtype=np.int32)
        self.interactions, self.completed, self.total_reward = 0, 0, 0.0

    def step(self, t: int) -> None:
        obs, agent = self.obs, self.agent
        action = agent.act(obs)
        propensities = agent.propensities(obs, action) if self.propensities else None
        for hook in self.hooks:
            hook.on_action(t, obs, action)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        next_obs = Observation(next_obs)
        valid = ~np.asarray(info["autoreset"], dtype=bool)
        feedback = Feedback(obs=obs, action=action, slate=info["slate"], clicked=info["clicked"],
                            watch_fraction=info["watch_fraction"], liked=info["liked"], reward=reward,
                            next_obs=next_obs, terminated=terminated, truncated=truncated, valid=valid, info=info)
        step = Step(t, feedback, propensities, self.episode, self.episode_step)
        for hook in self.hooks:
            hook.on_step(step)
        if self.tell is not None:
            self.tell(feedback)
        self.interactions += int(valid.sum())
        self.completed += int((valid & (terminated | truncated)).sum())
        self.total_reward += float(reward[valid].sum())
        # An autoreset row starts the slot's next episode; its first real step comes next.
        self.episode_step = np.where(valid, self.episode_step + 1, 0).astype(np.int32)
        self.episode = self.episode + (~valid)
        self.obs = next_obs


class EpisodeLogger(Hook):
    """Writes the real interactions of every step to ``log`` (an
    :class:`~recoworld.logs.EpisodeLog`) in the episodes schema, under the rollout's label
    and seed; with ``log_candidates`` also each request's candidate ids."""

    needs_propensities = True

    def __init__(self, log: EpisodeLog, log_candidates: bool = False):
        self.log, self.log_candidates = log, log_candidates

    def on_start(self, env, agent: Recommender, seed: int, label: str) -> None:
        self.label, self.seed = label, seed

    def on_step(self, step: Step) -> None:
        self.log.append(self.rows(step, np.flatnonzero(step.feedback.valid)))

    def rows(self, step: Step, rows: np.ndarray) -> dict:
        """The logged columns of the interactions ``rows`` of ``step``."""
        f, info = step.feedback, step.feedback.info
        session = f.obs.session[rows]
        in_force = info["instruction_in_force"][rows]
        given = step.propensities or {}
        return {
            "agent": self.label, "seed": self.seed, "user": rows, "episode": step.episode[rows],
            "episode_seed": info["episode_seed"][rows], "step": step.episode_step[rows], "rollout_step": step.t,
            "session": session[:, 0], "session_step": session[:, 1],
            "slate": info["slate"][rows],
            "candidate_ids": f.obs.candidate_ids[rows] if self.log_candidates else None,
            "propensity": _pick(given.get("slate"), rows),
            "position_propensity": _pick(given.get("position"), rows),
            "cascade_propensity": _pick(given.get("cascade"), rows),
            "examined": info["examined"][rows], "clicked": info["clicked"][rows],
            "watch_fraction": info["watch_fraction"][rows], "liked": info["liked"][rows],
            "rating": info["rating"][rows], "reward": f.reward[rows], "satisfaction": info["satisfaction"][rows],
            "left_session": info["left_session"][rows], "returned": info["returned"][rows],
            "churned": info["churned"][rows], "return_gap": info["return_gap"][rows],
            "terminated": f.terminated[rows], "truncated": f.truncated[rows],
            "instruction_text": info["instruction_text"][rows], "instruction_in_force": in_force,
            "item_reasons": _pick(info.get("item_reasons"), rows), "mindset_text": _pick(info.get("mindset_text"), rows),
            "compliance": np.ma.masked_array(info["compliance"][rows], mask=~in_force),
        }


def _pick(values, rows):
    return None if values is None else np.asarray(values)[rows]


class ExpectedClicks(Hook):
    """Privileged truth: the exact expected clicks of each slate shown, in the state of the
    user who meets it (``env.unwrapped.expected_clicks``, before the user responds), summed
    per user slot over the slot's first episode into :attr:`total` ``[B]`` (float64).

    Summing expectations instead of the clicks drawn gives the same mean with a smaller
    variance (Rao-Blackwellisation); a slot's later episodes are other users, left out so
    that each slot is one user's value.
    """

    def on_start(self, env, agent: Recommender, seed: int, label: str) -> None:
        self.env = env.unwrapped
        self.total = np.zeros(env.num_envs, dtype=np.float64)

    def on_action(self, t: int, obs: Observation, action: np.ndarray) -> None:
        slates = np.take_along_axis(np.asarray(obs.candidate_ids), np.asarray(action, dtype=np.int64), 1)
        self._shown = np.asarray(self.env.expected_clicks(slates), dtype=np.float64)

    def on_step(self, step: Step) -> None:
        self.total += (step.feedback.valid & (step.episode == 0)) * self._shown


class StepTrace(Hook):
    """Keeps every step's ``reward`` ``[T, B]`` (float64), ``valid`` ``[T, B]`` and ``slate``
    ``[T, B, K]`` (catalog ids); :meth:`arrays` stacks them."""

    def on_start(self, env, agent: Recommender, seed: int, label: str) -> None:
        self.reward, self.valid, self.slate = [], [], []

    def on_step(self, step: Step) -> None:
        f = step.feedback
        self.reward.append(np.asarray(f.reward, dtype=np.float64))
        self.valid.append(f.valid)
        self.slate.append(np.asarray(f.slate))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"reward": np.stack(self.reward), "valid": np.stack(self.valid), "slate": np.stack(self.slate)}


class EachStep(Hook):
    """Calls ``callback(1)`` after every step (e.g. to advance a progress bar)."""

    def __init__(self, callback: Callable[[int], None]):
        self.callback = callback

    def on_step(self, step: Step) -> None:
        self.callback(1)
