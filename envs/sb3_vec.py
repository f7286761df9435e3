"""``RecoWorld/Slate-v0``'s batched users as a Stable-Baselines3 ``VecEnv``.

Stable-Baselines3 does not take a ``gymnasium.vector.VectorEnv``: given anything that is
not its own ``VecEnv`` it wraps it in a ``DummyVecEnv``, a Python loop over single envs.
:class:`SB3SlateVecEnv` is a third face of the same batched :class:`~recoworld.envs.world.SlateWorld`
behind ``SlateEnv`` and ``SlateVectorEnv``, so that PPO or A2C collect ``B`` users' steps in
one simulator call::

    venv = SB3SlateVecEnv(num_envs=64, action_format="scores", reward="mix")
    PPO("MultiInputPolicy", venv).learn(100_000)

It follows SB3's conventions, which differ from Gymnasium's vector API: ``step`` returns
``(obs, reward, done, infos)`` with ``infos`` a list of dicts; a finished user is replaced
*in the same step* (its last observation is in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` tells a time limit from a churn). Slot ``i`` seeded with
``s`` lives exactly the episodes of ``SlateVectorEnv``'s slot ``i`` seeded with ``s``: the
episode seeds follow the same sequence, only the autoreset happens one step earlier.

``env_seconds`` accumulates the wall time spent inside ``reset`` and ``step_wait`` (the
simulator, the reward and the observations), so that a benchmark can split a training run
into env time and learner time.

The Slate env's documented ``training_env`` method builds its training twins here
(:func:`make_training_env`), so this module does not import ``recoworld.envs.slate``: it
finds ``RecoWorld/Slate-v0``'s classes in Gymnasium's registry, as ``gymnasium.make`` does.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from recoworld.envs.world import SlateWorld
from recoworld.envs.wrappers import SequentialSlateEnv


#: Offset of the seeds of the users that agents train on (see :func:`make_training_env`).
TRAINING_SEEDS = 2**40
#: The env whose batched world this module serves to Stable-Baselines3.
SLATE_ENV_ID = "RecoWorld/Slate-v0"


def slate_env_classes() -> tuple[type, type]:
    """``RecoWorld/Slate-v0``'s single-user and vector env classes, from Gymnasium's registry."""
    spec = gym.spec(SLATE_ENV_ID)
    return load_env_creator(spec.entry_point), load_env_creator(spec.vector_entry_point)


class SB3SlateVecEnv(VecEnv):
    """``num_envs`` simulated users served to a Stable-Baselines3 learner (see the module docstring).

    Args:
        vector_env: a ``SlateVectorEnv`` (e.g. from ``gymnasium.make_vec``) whose batched
            world this adapter drives from now on; do not step it directly afterwards.
        **env_kwargs: when ``vector_env`` is omitted, the arguments of ``SlateVectorEnv``
            (``num_envs``, ``action_format``, ``reward``, ...) to build one.

    Policy-gradient learners need ``action_format="scores"``: their samples of a
    ``MultiDiscrete`` slate would repeat candidates, which the env refuses.
    """

    def __init__(self, vector_env: gym.vector.VectorEnv | None = None, **env_kwargs: Any):
        if vector_env is None:
            vector_env = slate_env_classes()[1](**env_kwargs)
        elif env_kwargs:
            raise ValueError(f"give either a vector_env or the arguments to build one, not both ({sorted(env_kwargs)})")
        vector_env = vector_env.unwrapped
        if not isinstance(getattr(vector_env, "world", None), SlateWorld) or not hasattr(vector_env, "num_envs"):
            raise TypeError(f"SB3SlateVecEnv drives a {SLATE_ENV_ID} vector env (SlateVectorEnv), "
                            f"got {type(vector_env).__name__}")
        self.vector_env = vector_env
        self.world = vector_env.world
        self.render_mode = None
        self.env_seconds = 0.0
        self._actions: np.ndarray | None = None
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)

    # The world's public facts, as on the Gymnasium faces (agents read them in setup()).
    catalog = property(lambda self: self.world.catalog, doc="The items of this world.")
    slate_size = property(lambda self: self.world.slate_size, doc="Items per slate.")
    num_candidates = property(lambda self: self.world.num_candidates, doc="Candidates per request.")

    def reset(self) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        options, self._options = self._options, [{} for _ in range(self.num_envs)]  # used once, as SB3's
        if any(options):  # one batched reset of every user: an option would be dropped in silence
            raise ValueError(f"SB3SlateVecEnv.reset takes no options (set_options gave {options}); it resets every "
                             "user: restart some users with SlateVectorEnv's reset(options={'reset_mask': mask})")
        seeds = None if all(s is None for s in self._seeds) else [0 if s is None else s for s in self._seeds]
        obs, info = self.vector_env.reset(seed=seeds)
        self.reset_infos = _user_infos(info, range(self.num_envs))
        self._reset_seeds()
        self.env_seconds += time.perf_counter() - start
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        start = time.perf_counter()
        world = self.world
        slates = world.slates_from_actions(self._actions)
        self._actions = None
        reward, terminated, truncated, _ = world.step(slates)
        reward = reward.cpu().numpy().astype(np.float32)
        terminated, truncated = terminated.cpu().numpy(), truncated.cpu().numpy()
        done = terminated | truncated
        obs = world.observe()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(done)
        if len(finished):
            for i in finished:
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            world.restart(finished)
            fresh = world.observe()
            for key, value in obs.items():
                value[finished] = fresh[key][finished]
            # As DummyVecEnv's: a user reset within the step holds its new episode's reset info.
            for i, info in zip(finished, _user_infos(world.info(None, None), finished)):
                self.reset_infos[i] = info
        self.env_seconds += time.perf_counter() - start
        return obs, reward, done, infos

    def close(self) -> None:
        self.vector_env.close()

    # SB3 asks these of each sub-env; here every slot shares one world, so the answers
    # are the vector env's, repeated per slot.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError(f"SB3SlateVecEnv cannot set {attr_name!r} per user: all users share one world")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise AttributeError(f"SB3SlateVecEnv has no per-user method {method_name!r}: all users share one world")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _user_infos(info: dict[str, np.ndarray], users) -> list[dict[str, Any]]:
    """SB3's list of per-user infos from Gymnasium's dict of per-user arrays, for ``users``:
    each user's dict holds the keys its mask ``_k`` (where there is one) marks it as holding."""
    names = [name for name in info if not name.startswith("_")]
    return [{name: info[name][i] for name in names if f"_{name}" not in info or info[f"_{name}"][i]} for i in users]


def twin_env_kwargs(env, **overrides: Any) -> dict[str, Any]:
    """Arguments that build another env of the same world as ``env``.

    The twin gets a copy of ``env``'s simulator (sharing its catalog), so that an agent can
    train on users of the same population without touching the users it is evaluated on.
    ``overrides`` replace any argument, e.g. ``reward="mix"`` or ``action_format="scores"``.
    """
    world = env.unwrapped.world
    simulator = world.simulator
    twin = copy.deepcopy(simulator, memo={id(simulator.catalog): simulator.catalog})
    kwargs = dict(
        simulator=twin, slate_size=world.slate_size, num_candidates=world.num_candidates,
        history_length=world.history_length, max_steps=world.max_steps,
        reward=world.reward_weights, action_format=world.action_format,
        candidate_features=world.observe_features,
    )
    kwargs.update(overrides)
    return kwargs


class SingleItemVecEnv(VecEnvWrapper):
    """The single-item formulation: one candidate per step (``Discrete(C)``), shown alone.

    Wraps an :class:`SB3SlateVecEnv` with slates of one (``slate_size=1``,
    ``action_format="slate"``). A value learner such as DQN then learns what a single
    candidate is worth to the user in context, paid by that candidate's own click, and a
    slate is the top ``K`` candidates by that value (:class:`~recoworld.agents.sb3.SB3Recommender`).
    The users still live their sessions, batched in one simulator call per step; what the
    reduction leaves out is what items of one slate do to each other (position, satiation
    within the slate).
    """

    def __init__(self, venv: VecEnv):
        nvec = getattr(venv.action_space, "nvec", None)
        if nvec is None or len(nvec) != 1:
            raise ValueError(f"SingleItemVecEnv wraps slates of one candidate (MultiDiscrete([C])); got {venv.action_space}")
        super().__init__(venv, action_space=spaces.Discrete(int(nvec[0])))

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(np.asarray(actions, dtype=np.int64).reshape(-1, 1))

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


#: How :func:`make_training_env` lets a learner act: a score per candidate, a slate built
#: pick by pick, or one candidate per step.
FORMULATIONS = ("scores", "sequential", "single_item")


def make_training_env(env, num_envs: int, formulation: str = "scores", seed: int | None = None, **overrides: Any):
    """An SB3 ``VecEnv`` of ``num_envs`` users of ``env``'s world (see ``twin_env_kwargs``).

    The scores formulation steps all users in one batched simulator call
    (:class:`SB3SlateVecEnv`), as does the single-item one (:class:`SingleItemVecEnv`);
    the sequential one (:class:`~recoworld.envs.wrappers.SequentialSlateEnv`) is a
    ``DummyVecEnv`` of single envs, because users who repeat a pick fall out of step with
    each other. All are monitored, so that SB3 logs episode returns. User ``i`` is seeded
    ``user_seed + i``, with ``user_seed = training_seed(seed, num_envs)`` kept as the
    returned env's ``user_seed`` attribute: SB3 models re-seed their env with their own
    seed when built, so seed it again with ``venv.seed(venv.user_seed)`` before ``learn``.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation={formulation!r}; choose one of {FORMULATIONS}")
    seed = training_seed(seed, num_envs)
    SlateEnv, SlateVectorEnv = slate_env_classes()
    if formulation != "sequential":  # batched users
        face = {"action_format": "scores"} if formulation == "scores" else {"action_format": "slate", "slate_size": 1}
        users = SB3SlateVecEnv(SlateVectorEnv(num_envs, **twin_env_kwargs(env, **{**overrides, **face})))
        venv = VecMonitor(users if formulation == "scores" else SingleItemVecEnv(users))
    else:
        def single():
            return Monitor(SequentialSlateEnv(SlateEnv(**twin_env_kwargs(env, action_format="slate", **overrides))))

        venv = DummyVecEnv([single for _ in range(num_envs)])
    venv.seed(seed)
    venv.user_seed = seed
    return venv


def training_seed(seed: int | None, num_envs: int) -> int | None:
    """The first user seed of training run ``seed``: ``TRAINING_SEEDS + seed * num_envs``, far
    from the seeds evaluation rollouts give their users, so that an agent does not train on
    the very users it is scored on."""
    return None if seed is None else TRAINING_SEEDS + seed * num_envs
