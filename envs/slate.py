"""``RecoWorld/Slate-v0``: a recommender shows slates to simulated users who come and go."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recoworld.rewards import RewardWeights
from recoworld.validation import check_slates
from recoworld.envs.render import AnsiFrames
from recoworld.envs.world import SlateWorld, check_arguments, one_seed, refuse_step_after_end, reset_seeds

MANUAL = """
    ## Description

    A recommender serves one simulated user (``SlateEnv``) or ``num_envs`` users at once
    (``SlateVectorEnv``). At each step it picks a slate of ``slate_size`` distinct items
    among ``num_candidates`` candidates retrieved for the request; the user examines the
    slate top-down (cascade with position bias), clicks, watches, likes and rates items,
    updates their mindset and satiation, and may end the session, come back days later for
    another, or churn. A user who senses they are about to leave may first voice a
    reflective instruction ("Too much Comedy lately — show me something different, maybe
    some Sci-Fi."). An episode is one user's life on the platform over several sessions.

    ## Action Space

    ``action_format="slate"`` (default): ``SlateSpace(num_candidates, slate_size)``, a
    ``MultiDiscrete([num_candidates] * slate_size)`` whose samples are valid slates: the
    candidate indices shown top to bottom. They must be distinct integers in range;
    anything else raises ``ValueError`` naming the bad entry (nothing is repaired).
    ``action_format="scores"``: ``Box(-1, 1, (num_candidates,))``, one score per candidate;
    the env shows the ``slate_size`` best-scored candidates, best first; equal scores go
    to the lower candidate index first, on any device. Use it with policy-gradient
    learners (e.g. Stable-Baselines3 PPO) whose samples would repeat indices.

    ## Observation Space

    ``Dict`` of what a real recommender could see:

    - ``candidate_ids`` ``(C,)`` int64: catalog ids of the candidates.
    - ``candidate_features`` ``(C, D)`` float32: the candidates' catalog features (left out
      with ``candidate_features=False``, for agents that look features up in the catalog).
    - ``history_items`` ``(H,)`` int64: the user's last clicked items, newest first, ``-1`` padded.
    - ``history_feedback`` ``(H, 2)`` float32: watch fraction and like of those clicks.
    - ``instruction`` ``(2G + 1,)`` float32: the latest reflective instruction, +1 for
      genres asked for more, -1 for genres asked for less, and the novelty wish (-1, 0, +1).
    - ``session`` ``(3,)`` float32: sessions completed, steps in the current session, and
      steps since the latest instruction (0 when none).

    The instruction's sentence is in ``info["instruction_text"]`` at the step it is voiced.
    Observations are the agent's to keep: the env never writes an array that the agent (or
    a view or tensor of it) still holds, and reuses one the agent has let go of.

    ## Rewards

    A weighted sum of clicks, watch time, likes, retention (+1 when a session ends and the
    user will return, -1 when the user churns), churn (-1 when the user churns) and
    instruction compliance, chosen with
    ``reward=`` (a preset name or a mapping of weights, see ``recoworld.rewards``).
    The default pays one per click.

    ## Starting State

    A new user drawn from the simulator's population, seeded by the episode seed, with an
    empty history and no instruction.

    ## Episode End

    Terminated when the user churns (leaves and will not return). Truncated after
    ``max_steps`` steps. A single env then needs ``env.reset()``: stepping it again raises
    ``RuntimeError`` saying so (the vector env resets finished users itself).

    ## Arguments

    - ``catalog``: a ``recoworld.Catalog`` (default: a 1,000-item synthetic catalog).
    - ``simulator``: a ``UserSimulator`` instance to use instead of the statistical users
      (it brings its own catalog); its ``n_users`` is set by the env. It serves one env at
      a time, the one reset last: another env built on it refuses to step
      (``RuntimeError``); give each env its own (``copy.deepcopy(simulator)``).
    - ``simulator_config``: ``StatisticalUserConfig`` or mapping for the default simulator.
    - ``population``: a ``Population`` that draws the default simulator's users
      (default: ``SyntheticPopulation()``).
    - ``slate_size`` (10), ``num_candidates`` (50), ``history_length`` (10), ``max_steps`` (100).
    - ``reward`` (``"clicks"``), ``action_format`` (``"slate"``), ``candidate_features``
      (``True``), ``device`` (``"cpu"``).
    - ``render_mode`` (single env): ``None`` (default) or ``"ansi"``, where ``render()``
      returns the current state as text: the user, session and step, satisfaction, reward
      and instruction, the last slate with titles, genres and the user's reactions, and the
      next candidates. The vector env takes ``None`` only (``make_vec`` passes it on).
    - ``kernel``: ``"auto"`` (default), ``"c"`` or ``"torch"``. ``"c"`` runs the env's
      per-step bookkeeping (history, instruction, session, candidates, observation) and the
      default simulator's step (see ``StatisticalUsers``) in fused CPU kernels on every
      core (faster at large batches: see ``benchmarks/RESULTS.md``); the users agree with
      ``"torch"`` up to float rounding, the bookkeeping exactly. ``"auto"`` takes C on a CPU
      where the kernels load (shipped prebuilt, or compiled on first use) and handle the
      sizes (slates of up to 256 items; for the users, features and genres up to 1,024),
      and torch otherwise; ``"c"`` refuses larger sizes when the env is built.
      :attr:`kernels` says which ran. A given simulator brings its own kernel.
      The env runs its own torch work on one thread and gives the caller's setting back.
    - ``check_responses`` (``True``): check every ``Response`` of a plug-in simulator (one
      whose class is not RecoWorld's) before using it: shapes, dtypes, no NaN, documented
      ranges, dense tensors on the simulator's ``device`` that need no gradient; a bad field
      raises ``ValueError`` naming the simulator's class, the field and what was expected
      (see ``recoworld.envs.response_checks``). ``False`` turns it off.

    Sizes must be integers >= 1 and switches booleans; a bad argument raises ``ValueError``
    naming it (``slate_size='5': must be an integer >= 1``), and so does an argument the env
    does not take, with the one meant (``num_candidate``: did you mean ``num_candidates``?).

    ``reset(seed=s)`` takes an integer in ``[0, 2**63)`` (numpy's, or a 0-d array or tensor
    holding one, too); the same seed gives the same episode, in any process. ``reset()``
    without a seed starts the next episode of the seed's sequence. The single env takes no
    reset ``options``: one it is given raises ``ValueError`` rather than being ignored.

    ## Privileged channel

    What real recommenders cannot see, for the Oracle agent, ground-truth evaluation and
    training on a twin of the world; agents and studies read it here, never through
    ``env.world``:

    - ``env.unwrapped.click_probabilities()``: the simulator's true click probability of
      each current candidate, ``(C,)`` (``(B, C)`` for the vector env).
    - ``env.unwrapped.expected_clicks(slates)``: the exact expected clicks of showing
      ``slates`` (catalog ids, ``(K,)`` or ``(B, K)``) to the users in their current state,
      a float (``(B,)``). Custom simulators may not offer it (``NotImplementedError``).
    - ``env.unwrapped.reward_weights``: the :class:`~recoworld.rewards.RewardWeights`
      the env pays, for agents that learn the same mix of signals.
    - ``env.unwrapped.training_env(num_envs, formulation="scores", seed=None, **overrides)``:
      a Stable-Baselines3 ``VecEnv`` of ``num_envs`` new users drawn from a copy of this
      world's simulator (see ``recoworld.envs.sb3_vec.make_training_env``), so that an agent
      trains on the population without touching the users it is evaluated on.
    - ``env.unwrapped.user_model()``: a copy of the simulator in its current state (sharing
      the catalog), for planners that look ahead (``recoworld.agents.planning``); stepping
      or re-keying it leaves the env's users untouched.

    ## Vectorized environment

    ``gymnasium.make_vec("RecoWorld/Slate-v0", num_envs=B)`` builds ``SlateVectorEnv``,
    which steps all ``B`` users in one batched simulator call (not a loop over single
    envs) and autoresets finished users on the next step (``AutoresetMode.NEXT_STEP``).
    Seeding it with ``s`` gives user slot ``i`` exactly the trajectory of a ``SlateEnv``
    seeded with ``s + i``. Its infos are dicts of per-user arrays, each key ``k`` with the
    boolean mask ``_k`` that Gymnasium's vector info wrappers read; on the step that
    autoresets a user, only the keys a reset's info has (``episode_seed``,
    ``session_index``) and ``autoreset`` are masked in for that user.

    ``reset(seed=...)`` takes an int ``s`` (slot ``i`` seeded ``s + i``) or Gymnasium's list
    of one seed per user, ``None`` for a user that starts the next episode of its own seed
    sequence (as a single env's ``reset()``). ``reset(options={"reset_mask": mask})``, with
    ``mask`` a bool array of ``num_envs``, restarts only the users where it is True (seeded
    from ``seed`` as above, if given) and leaves the others exactly as they were; only the
    users reset are masked in to the returned info. Other options raise ``ValueError``.
    Gymnasium's own ``vectorization_mode="sync"`` and ``"async"`` work as well (their action
    space is a ``SlateSpace`` of ``num_envs`` slates), at the cost of a Python loop over
    single envs; the async one may fork (the env's torch work runs on one thread, so a
    forked worker does not hang in torch's thread pool).

    ## Version History

    - v0: initial version.
"""


class _WorldFace:
    """What every face of a :class:`SlateWorld` (Gymnasium single and vector, SB3) exposes of it:
    public world facts, which agents read in ``setup()``, and the privileged channel of the
    manual. A single-user face (``single = True``) speaks of one user: no batch dimension."""

    world: SlateWorld
    single: bool = False

    @property
    def catalog(self):
        """The items of this world (public: a real recommender knows its catalog)."""
        return self.world.catalog

    @property
    def slate_size(self) -> int:
        return self.world.slate_size

    @property
    def num_candidates(self) -> int:
        return self.world.num_candidates

    # ------------------------------------------------------- privileged channel
    def click_probabilities(self) -> np.ndarray:
        """Privileged: the true click probability of each current candidate, ``(C,)`` or
        ``(B, C)`` (see the manual's Privileged channel)."""
        probabilities = self.world.privileged_click_probabilities()
        return probabilities[0] if self.single else probabilities

    def expected_clicks(self, slates) -> np.ndarray | float:
        """Privileged: the exact expected clicks of showing ``slates`` (catalog ids, ``(K,)``
        or ``(B, K)``) to the users in their current state (see the manual)."""
        slates = np.asarray(slates)
        if self.single and slates.ndim != 1:  # named before the batch dimension is added to it
            raise ValueError(f"slates has shape {slates.shape}; a single-user env takes one slate of catalog ids, "
                             "(K,)")
        K, n_items = self.world.slate_size, self.world.catalog.n_items
        check_expected_slates(slates, (K,) if self.single else (self.world.n_users, K))
        # The ids read as actions are (numpy's dtypes: uint64 beyond int64, strings), named by their place.
        slates = check_slates(slates[None] if self.single else slates, n_items, name="slate", single=self.single,
                              universe=f"the catalog has {n_items} items").to(self.world.device)
        expected = self.world.started_simulator("expected_clicks").expected_clicks(slates)
        self.world.check_response.privileged("expected_clicks", expected, slates.shape[-1])
        expected = expected.cpu().numpy()
        return float(expected[0]) if self.single else expected

    def user_model(self):
        """Privileged: a copy of the simulator in its current state, sharing the catalog
        (see the manual); the env's users never see what is done to it."""
        simulator = self.world.serving_simulator()
        return copy.deepcopy(simulator, memo={id(simulator.catalog): simulator.catalog})

    @property
    def kernels(self) -> dict[str, str]:
        """The kernels that step this env: ``{"bookkeeping": ..., "users": ...}``."""
        return self.world.kernels

    @property
    def reward_weights(self) -> RewardWeights:
        """Privileged: the weights of the signals the env pays (see the manual)."""
        return self.world.reward_weights

    def training_env(self, num_envs: int, formulation: str = "scores", seed: int | None = None, **overrides: Any):
        """A Stable-Baselines3 ``VecEnv`` of ``num_envs`` users of a copy of this world (see
        the manual and ``recoworld.envs.sb3_vec.make_training_env``)."""
        from recoworld.envs.sb3_vec import make_training_env  # Stable-Baselines3 only when asked for

        return make_training_env(self, num_envs, formulation, seed=seed, **overrides)


class SlateEnv(_WorldFace, gym.Env):
    __doc__ = "A single simulated user served slate by slate.\n" + MANUAL
    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # fps: Gymnasium's checker asks, text has none
    single = True

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r}; SlateEnv renders {self.metadata['render_modes']} "
                             "(or None for no rendering)")
        check_arguments(kwargs)
        self.world = SlateWorld(1, **kwargs)
        self.render_mode = render_mode
        self._frames = AnsiFrames(self.world.catalog) if render_mode == "ansi" else None
        self.observation_space = self.world.single_observation_space()
        self.action_space = self.world.action_space()
        self._ended: str | None = None  # why the episode ended, until the next reset

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = _single_reset_seed(seed, options, "SlateEnv")
        super().reset(seed=seed)
        self.world.reset_all(seed, self.np_random)
        self._ended = None
        observation, info = _first(self.world.observe()), _first(self.world.info(None, None))
        if self._frames is not None:
            self._frames.start(observation, info)
        return observation, info

    def step(self, action):
        refuse_step_after_end(self._ended)
        slates = self.world.slates_from_actions(action, single=True)
        reward, terminated, truncated, response = self.world.step(slates)
        terminated, truncated = bool(terminated[0]), bool(truncated[0])
        self._ended = _episode_end(terminated, truncated, self.world.max_steps)
        info, observation, reward = _first(self.world.info(response, slates)), _first(self.world.observe()), \
            float(reward[0])
        if self._frames is not None:
            self._frames.record(observation, reward, info)
        return observation, reward, terminated, truncated, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the current state as text: the user, session and step,
        satisfaction, reward and instruction, the last slate with titles, genres and the
        user's reactions, and the next candidates (see ``recoworld.envs.render``)."""
        return None if self._frames is None else self._frames.frame()


class SlateVectorEnv(_WorldFace, VectorEnv):
    __doc__ = "``num_envs`` simulated users served by one batched simulator.\n" + MANUAL
    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None:  # gymnasium.make_vec passes render_mode=None on when given it
            raise ValueError(f"render_mode={render_mode!r}; SlateVectorEnv has no render modes: render a single "
                             "env, gym.make('RecoWorld/Slate-v0', render_mode='ansi'), or leave it out")
        self.render_mode = None
        check_arguments(kwargs)
        self.world = SlateWorld(num_envs, **kwargs)  # checks num_envs first
        self.num_envs = num_envs = self.world.n_users
        self.single_observation_space = self.world.single_observation_space()
        self.single_action_space = self.world.action_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = self.world.action_space(num_envs)
        self._done = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Start every user's episode, or with ``options={"reset_mask": mask}`` (bool
        ``(num_envs,)``) those of the users where ``mask`` is True, the others going on as
        they were. ``seed``: an int ``s`` seeds user ``i`` with ``s + i``; a list gives one
        seed per user, ``None`` for a user that starts the next episode of its own seed
        sequence; ``None`` does that for every user."""
        reset_mask = _check_options(options, "SlateVectorEnv", allowed=("reset_mask",)).get("reset_mask")
        if reset_mask is not None:
            reset_mask = _check_reset_mask(reset_mask, self.num_envs)
        seed = one_seed(seed)  # as reset_seeds reads it: np_random is seeded by it too
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            reset_seeds(seed, self.num_envs)  # refuses, naming it, a seed out of range
            super().reset(seed=int(seed))
        self.world.reset_all(seed, self.np_random, reset_mask)
        if reset_mask is None:
            self._done[:] = False
            return self.world.observe(), _with_masks(self.world.info(None, None))
        self._done[reset_mask] = False
        info = _with_masks(self.world.info(None, None))
        for name in [name for name in info if name.startswith("_")]:
            info[name] &= reset_mask  # as Gymnasium's vector envs: only the users reset hold a reset's info
        return self.world.observe(), info

    def step(self, actions):
        slates = self.world.slates_from_actions(actions)
        # NEXT_STEP autoreset: users whose episode ended at the previous step start their
        # next episode now, and their action is ignored.
        finished = np.flatnonzero(self._done)
        reward, terminated, truncated, response = self.world.step(slates, autoreset=finished)
        reward, terminated, truncated = (x.cpu().numpy() for x in (reward, terminated, truncated))
        info = self.world.info(response, slates)
        info["autoreset"] = self._done.copy()
        self._done = terminated | truncated
        return self.world.observe(), reward, terminated, truncated, _with_masks(info, finished)

    def render(self) -> None:
        """Nothing: the vector env has no render modes. As Gymnasium's own vector envs without
        one (``CartPoleVectorEnv``), it warns and returns ``None`` rather than raising, so that a
        loop that renders every few steps runs on."""
        gym.logger.warn("SlateVectorEnv has no render modes, so render() returns None; to watch a user, render a "
                        "single env: gym.make('RecoWorld/Slate-v0', render_mode='ansi')")


def _single_reset_seed(seed, options, env: str) -> int | None:
    """The seed of a single-user env's ``reset`` as Gymnasium's ``Env.reset`` takes it (a
    Python int; numpy's, and a 0-d array, converted); ``ValueError`` for a seed the users do
    not take, or an option (a single env takes none), naming it."""
    _check_options(options, env, allowed=())
    seed = one_seed(seed)
    if seed is not None and not isinstance(seed, (numbers.Number, str)):
        raise ValueError(f"seed={seed!r}: {env} takes one integer seed >= 0 (or None); a vector env takes "
                         "one per user")
    # Checked here, as the vector env checks it, before Gymnasium's own check (its Error, not a
    # ValueError) and for the users' 63-bit keys, which Gymnasium does not know of.
    reset_seeds(seed, 1)
    return None if seed is None else int(seed)  # Gymnasium takes Python ints only


def _episode_end(terminated: bool, truncated: bool, max_steps: int) -> str | None:
    """Why a single user's episode ended, or ``None`` while it goes on."""
    if terminated:
        return "terminated: the user churned"
    return f"truncated after max_steps={max_steps} steps" if truncated else None


def _check_options(options, env: str, allowed: tuple[str, ...]) -> dict:
    """``options`` of a ``reset``, as a dict; ``ValueError`` for an option ``env`` does not
    take (Gymnasium's envs would ignore it, and the reset would not do what was asked)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"options={options!r}: pass a dict of reset options, or None")
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        takes = f"takes only {', '.join(repr(k) for k in allowed)}" if allowed else "takes none"
        raise ValueError(f"options has {', '.join(repr(k) for k in unknown)}, which {env}.reset does not take; it "
                         f"{takes}")
    return dict(options)


def check_expected_slates(slates: np.ndarray, shape: tuple[int, ...]) -> None:
    """Refuse (``ValueError``) the ``slates`` of ``expected_clicks`` unless of ``shape``: ``(K,)``,
    one slate of a single-user env, or ``(n_users, K)``, a slate per user (also of a sharded
    env, which checks the whole batch before it splits it). The expectation of a shorter slate
    is not what the env's users meet; an empty list is named as empty, not by the float dtype
    numpy gives it."""
    if slates.shape != shape:
        got = f"is empty, shape {slates.shape}" if slates.size == 0 else f"has shape {slates.shape}"
        raise ValueError(f"slates {got}; expected {shape}: " + ("one slate" if len(shape) == 1 else "a slate per user")
                         + f" of slate_size={shape[-1]} catalog ids")


def _check_reset_mask(mask, num_envs: int) -> np.ndarray:
    """``options["reset_mask"]`` as Gymnasium's vector envs take it: a bool array of one flag
    per user, True for the users to reset, at least one."""
    mask = np.asarray(mask)
    if mask.shape != (num_envs,):
        raise ValueError(f"options['reset_mask'] has shape {mask.shape}; expected ({num_envs},), one flag per user")
    if mask.dtype != np.bool_:
        raise ValueError(f"options['reset_mask'] has dtype {mask.dtype}; expected bool, True for the users to reset")
    if not mask.any():
        raise ValueError("options['reset_mask'] is all False, which resets no user; set True for the users to "
                         "reset")
    return mask


def _first(batch: dict) -> dict:
    return {k: v[0] for k, v in batch.items()}


#: The step infos' keys that a user who starts a new episode at this step (NEXT_STEP
#: autoreset) holds as well: those of a reset's info, and the autoreset flag itself.
RESET_KEYS = frozenset({"episode_seed", "session_index", "kernel", "autoreset"})


def _with_masks(info: dict, restarted: np.ndarray | None = None) -> dict:
    """Gymnasium's vector info layout: beside each key ``k``, a boolean ``_k`` per user saying
    which users' infos hold it, as its info wrappers expect. Every user's does, except the
    users ``restarted`` at this step (NEXT_STEP autoreset): as after a reset, they hold the
    keys of :data:`RESET_KEYS` only, and their other entries (the answer to a slate for an
    episode that had ended, which a plug-in simulator may have given) are not theirs. The
    masks are the rows of one array (one allocation, not one per key); each row is a mask
    of its own."""
    names = list(info)
    masks = np.ones((len(names), len(info[names[0]])), dtype=bool)
    if restarted is not None and len(restarted):
        for row, name in enumerate(names):
            if name not in RESET_KEYS:
                masks[row, restarted] = False
    info.update(zip([f"_{name}" for name in names], masks))
    return info
