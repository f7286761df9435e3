"""One large population across Ray workers: ``num_envs`` users split into shards.

:class:`ShardedVectorEnv` is a vector env of ``num_envs`` user slots whose slots live in
``num_shards`` Ray actors, each holding a native :class:`~recoworld.envs.slate.SlateVectorEnv`
of its contiguous block of slots. It is a facade: the agent acts on the **concatenated
batch** (the observations of every shard in slot order, as if one env held them all), and
each ``step`` sends every actor its rows of the actions, steps all actors at once and
concatenates their observations, rewards, flags and infos. So any agent works unchanged,
including those that learn across users, and nothing about the agent knows of shards.

Seeding: ``reset(seed=s)`` resets the shard holding slots ``a .. b-1`` with seed ``s + a``;
since slot ``i`` of a vector env seeded ``s`` lives exactly the episodes of a single env
seeded ``s + i`` (counter-based randomness, :mod:`recoworld.rng`), the sharded env's
observations, rewards and infos equal an unsharded ``SlateVectorEnv`` of ``num_envs``
slots seeded ``s``, whatever the number of shards. Each shard builds its own default
statistical simulator from the keyword arguments (``catalog``, ``simulator_config``,
``population``, ``reward``...; a ``simulator`` instance cannot be split and is refused).

Privileged channel: ``click_probabilities()`` and ``expected_clicks(slates)`` gather each
shard's rows (equal to the unsharded env's up to float rounding: batched products
round by batch size); ``reward_weights``, ``catalog``, ``slate_size``, ``num_candidates`` and
``kernels`` are the first shard's (all shards are built alike).

Cost model (what crosses the network per step): the actions, ``B x K`` integers, go out;
the observations come back — per user the candidate ids and, with
``candidate_features=True``, ``C x D`` float32 features (set ``candidate_features=False``
for agents that look features up in the catalog: it divides the traffic by about ``D``),
the history, instruction and session vectors, and the per-item feedback of the infos. Each
step is one round trip to every actor plus the driver's concatenation and the agent's
``act`` on the whole batch; both run on the driver, so scaling stops when the driver's
serialisation and the agent's time per step equal a shard's step time (measured figures:
``benchmarks/RESULTS.md``, ``benchmarks/ray_scaling.py``).

Ray is started on this machine if the process has not initialised it (``address`` joins
a cluster instead); the actors end with :meth:`close`. Each shard is an actor holding one
CPU, so ``num_shards`` may not exceed the CPUs of the Ray cluster (an autoscaling cluster:
of the nodes it has when the env is built); more would wait forever for a CPU, and are
refused with a ``ValueError``.

Errors: arguments a shard's ``SlateVectorEnv`` refuses raise its own error (e.g.
``ValueError: num_candidates='many': must be an integer >= 1``) from the constructor, as the
unsharded env would, and the actors already started are ended; so does any error a shard
raises later (``RuntimeError: call reset() before step()``...). Actions are checked whole on
the driver before any shard steps: an invalid one raises the unsharded env's ``ValueError``,
naming the user by its row in the whole batch, and leaves every user as it was. The slates of
``expected_clicks`` are checked whole too: another shape raises the unsharded env's
``ValueError``, naming the whole population's size.
:meth:`close` may be called any number of times, also after a shard's worker died; a closed
env refuses every other call with a ``RuntimeError`` that says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recoworld.envs.actions import ActionDecoder
from recoworld.envs.slate import check_expected_slates
from recoworld.envs.world import reset_seeds


class _Shard:
    """A Ray actor's state: one native vector env of ``num_envs`` slots."""

    def __init__(self, num_envs: int, kwargs: dict):
        from recoworld.envs.slate import SlateVectorEnv
        from recoworld.kernels.placement import one_cpu

        one_cpu()  # the actor's one CPU, for torch and the C kernels alike
        # Kept for spaces() to raise: an actor whose construction raises dies, and Ray reports
        # that as ActorDiedError with the traceback as text, not the env's own error.
        self.error: Exception | None = None
        try:
            self.env = SlateVectorEnv(num_envs=num_envs, **kwargs)
        except Exception as error:  # noqa: BLE001 - re-raised by spaces()
            self.error = error

    def spaces(self):
        if self.error is not None:
            raise self.error
        return self.env.single_observation_space, self.env.single_action_space, self.env.world.actions

    def reset(self, seed):
        return self.env.reset(seed=seed)

    def step(self, actions):
        return self.env.step(actions)

    def privileged(self, name: str, *args):
        attribute = getattr(self.env, name)
        return attribute(*args) if callable(attribute) else attribute

    def close(self):
        self.env.close()


class ShardedVectorEnv(VectorEnv):
    """``num_envs`` users in ``num_shards`` Ray actors behind one vector env (see the module)."""

    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, num_shards: int, address: str | None = None, **kwargs: Any):
        for key, value in (("num_envs", num_envs), ("num_shards", num_shards)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: must be an integer >= 1")
        if num_shards > num_envs:
            raise ValueError(f"num_shards={num_shards} > num_envs={num_envs}: each shard needs at least one user; "
                             f"use num_shards <= {num_envs}")
        if kwargs.get("simulator") is not None:
            raise ValueError("ShardedVectorEnv builds each shard's simulator itself and cannot split a simulator "
                             "instance; pass simulator_config/population/catalog instead of simulator")
        import ray

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, **({} if address else {"include_dashboard": False}))
        cpus = ray.cluster_resources().get("CPU", 0)
        if num_shards > cpus:  # the actors beyond the CPUs would never start, and the constructor never return
            raise ValueError(f"num_shards={num_shards}: each shard is a Ray actor holding one CPU, and this Ray "
                             f"cluster has {cpus:g} CPUs; use num_shards <= {int(cpus)}, or give Ray more CPUs "
                             "(ray.init(num_cpus=N) before building the env, or nodes joined to the cluster)")
        sizes = [num_envs // num_shards + (i < num_envs % num_shards) for i in range(num_shards)]
        self.offsets = np.cumsum([0, *sizes])[:-1].tolist()
        self.sizes = sizes
        actor = ray.remote(num_cpus=1)(_Shard)
        self._ray = ray
        self._shards = []
        try:
            for size in sizes:
                self._shards.append(actor.remote(size, kwargs))
            spaces = self._get([shard.spaces.remote() for shard in self._shards])  # every shard built
        except BaseException:
            self.close()  # the actors started so far would hold their CPUs until the driver exits
            raise
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space, decoder = spaces[0]
        # The shards' action format over every user: it checks a batch whole (see step).
        self._actions = ActionDecoder(decoder.action_format, num_envs, decoder.num_candidates, decoder.slate_size,
                                      "cpu")
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    # ------------------------------------------------------------------ the vector env
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if options:  # a shard's reset takes seeds only: an option would be dropped in silence
            raise ValueError(f"ShardedVectorEnv.reset takes no options (got {sorted(options)}); restart some "
                             "users with SlateVectorEnv's reset(options={'reset_mask': mask}) in one process, "
                             "or reset every user here")
        # Checked here, against every user: a shard would count only its own, and name them so.
        reset_seeds(seed, self.num_envs)
        if seed is not None and np.ndim(seed) == 0:
            seed = int(seed)
        super().reset(seed=seed if isinstance(seed, int) or seed is None else None)
        if seed is None:
            seeds = [None] * len(self._shards)
        elif isinstance(seed, int):
            seeds = [seed + offset for offset in self.offsets]
        else:  # Gymnasium's list[int | None], None for a user that goes on with its own seed sequence
            entries = list(seed)
            seeds = [entries[a:a + n] for a, n in zip(self.offsets, self.sizes)]
        results = self._get([s.reset.remote(sd) for s, sd in zip(self._live(), seeds)])
        return _concat([r[0] for r in results]), _concat([r[1] for r in results])

    def step(self, actions):
        shards, actions = self._live(), np.asarray(actions)
        # Checked whole: split by rows, extra rows would be dropped in silence and missing ones
        # blamed on the last shard's size.
        if actions.shape != self.action_space.shape:
            raise ValueError(f"action has shape {actions.shape}; expected {self.action_space.shape}, one row per user")
        # Checked whole, before any shard steps: a shard would name a bad row by its place in
        # the shard, and the other shards would have stepped, leaving the users out of step.
        if not _valid(actions, self._actions):
            self._actions.positions(actions)  # raises the unsharded env's error, naming the row
        results = self._get([shard.step.remote(actions[a:a + n])
                             for shard, a, n in zip(shards, self.offsets, self.sizes)])
        observations, rewards, terminated, truncated, infos = zip(*results)
        return (_concat(observations), np.concatenate(rewards), np.concatenate(terminated),
                np.concatenate(truncated), _concat(infos))

    def close(self, **kwargs: Any) -> None:
        """End the shards' envs and actors. Idempotent; a shard whose worker died, or a Ray
        already shut down, has nothing left to end."""
        shards, self._shards = getattr(self, "_shards", []), []
        self.closed = True
        if not shards or not self._ray.is_initialized():
            return
        try:
            for closing in [shard.close.remote() for shard in shards]:
                try:
                    self._ray.get(closing)
                except self._ray.exceptions.RayError:
                    pass  # a dead shard (its worker was killed, or its construction failed)
        finally:
            for shard in shards:
                self._ray.kill(shard)

    def render(self) -> None:
        """Nothing, as the unsharded env: no render modes; it warns and returns ``None``."""
        gym.logger.warn("ShardedVectorEnv has no render modes, so render() returns None; to watch a user, render a "
                        "single env: gym.make('RecoWorld/Slate-v0', render_mode='ansi')")

    def _get(self, refs: list) -> list:
        """The shards' answers to ``refs``; an error a shard's env raised is raised as it is
        (Ray would wrap it in a ``RayTaskError`` whose message is the remote traceback)."""
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, Exception):
                raise error.cause from None
            raise

    def _live(self) -> list:
        """The shards' actors; a ``RuntimeError`` once the env is closed."""
        if self.closed:
            raise RuntimeError("this ShardedVectorEnv is closed (its Ray actors have ended); build a new one")
        return self._shards

    # ------------------------------------------------------------------ privileged channel
    def click_probabilities(self) -> np.ndarray:
        return np.concatenate(self._gather("click_probabilities"))

    def expected_clicks(self, slates) -> np.ndarray:
        shards, slates = self._live(), np.asarray(slates)
        # Checked whole, before the rows are split: a shard would name its own rows as if they
        # were the population, and rows beyond the last shard's would be dropped in silence.
        check_expected_slates(slates, (self.num_envs, self._actions.slate_size))
        return np.concatenate(self._get([shard.privileged.remote("expected_clicks", slates[a:a + n])
                                         for shard, a, n in zip(shards, self.offsets, self.sizes)]))

    def _gather(self, name: str) -> list:
        return self._get([shard.privileged.remote(name) for shard in self._live()])

    def _first(self, name: str):
        return self._get([self._live()[0].privileged.remote(name)])[0]

    reward_weights = property(lambda self: self._first("reward_weights"))
    catalog = property(lambda self: self._first("catalog"))
    slate_size = property(lambda self: self._first("slate_size"))
    num_candidates = property(lambda self: self._first("num_candidates"))
    kernels = property(lambda self: self._first("kernels"))


def _valid(actions: np.ndarray, decoder: ActionDecoder) -> bool:
    """Whether every row of ``actions`` is a valid action, in a few numpy passes (the decoder's
    own check, in torch, takes several times longer on the driver, which every step waits
    for); ``False`` sends the batch to the decoder, which names the bad entry."""
    kind = actions.dtype.kind
    if decoder.action_format == "scores":
        return kind in "iu" or (kind == "f" and not np.isnan(actions).any())
    if kind not in "iu" or actions.min() < 0 or actions.max() >= decoder.num_candidates:
        return False
    ordered = np.sort(actions, axis=1)
    return not (ordered[:, 1:] == ordered[:, :-1]).any()


def _concat(batches) -> dict:
    """Per-key concatenation of the shards' dicts of per-user arrays, in slot order."""
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
