"""Other formulations of ``RecoWorld/Slate-v0`` for learners that pick one action at a time.

DQN (and any ``Discrete``-action learner) cannot output a slate of ``K`` distinct
candidates: ``Discrete(C^K)`` is far too large and ``MultiDiscrete`` would repeat
candidates. :class:`SequentialSlateEnv` builds the slate one position at a time instead,
the standard reduction of slate recommendation to single-item choices: ``K`` sub-steps
per shown slate, each choosing one candidate, with the candidates chosen so far visible in
the observation and masked for MaskablePPO.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recoworld.config_checks import NON_NEGATIVE, Interval, check_number
from recoworld.envs.world import refuse_step_after_end


class SequentialSlateEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A slate built candidate by candidate: ``K`` sub-steps per slate shown.

    ## Action Space

    ``Discrete(num_candidates)``: the candidate to put at the next free position.

    ## Observation Space

    The wrapped env's ``Dict`` plus ``chosen`` ``(C,)`` float32: 1 for candidates already on
    the slate being built, 0 otherwise; and ``position`` ``(1,)`` float32: how many positions
    are filled, divided by ``K``.

    ## Rewards

    0 for the first ``K - 1`` picks; the K-th pick shows the slate to the user and returns
    the wrapped env's reward. Picking a candidate that is already on the slate changes
    nothing and costs ``repeat_penalty`` (DQN explores into such picks; the penalty teaches
    it to avoid them, and ``info["repeated"]`` reports them). MaskablePPO never makes
    them: :meth:`action_masks` masks the chosen candidates out.

    Discounting happens per sub-step, so a learner's ``gamma`` per shown slate is its
    ``gamma ** K``; set ``gamma = gamma_slate ** (1 / K)`` for the slate-level horizon you want.

    ## Episode End

    As the wrapped env's, checked when a slate is shown. ``max_picks`` (default
    ``4 * K`` per slate) truncates a slate build that keeps repeating candidates. A pick
    after the end raises ``RuntimeError``: call ``env.reset()``.

    ## Arguments

    - ``env``: a single-user ``RecoWorld/Slate-v0`` with ``action_format="slate"``.
    - ``repeat_penalty`` (``1.0``): cost of a repeated pick, a number >= 0.
    - ``max_picks`` (``4 * K``): picks per slate before the build is truncated, at least ``K``.
    """

    def __init__(self, env: gym.Env, repeat_penalty: float = 1.0, max_picks: int | None = None):
        # Its arguments recorded, as Gymnasium's own wrappers do, so that env.spec can rebuild it.
        gym.utils.RecordConstructorArgs.__init__(self, repeat_penalty=repeat_penalty, max_picks=max_picks)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if getattr(base.world, "action_format", "slate") != "slate":
            raise ValueError("SequentialSlateEnv builds slates itself; wrap an env with action_format='slate'")
        self.slate_size, self.num_candidates = base.slate_size, base.num_candidates
        self.repeat_penalty = check_number("SequentialSlateEnv", "repeat_penalty", repeat_penalty, NON_NEGATIVE)
        # Fewer than K picks could never fill a slate: every build would end truncated.
        self.max_picks = 4 * self.slate_size if max_picks is None else check_number(
            "SequentialSlateEnv", "max_picks", max_picks, Interval(self.slate_size), integer=True)
        self.action_space = spaces.Discrete(self.num_candidates)
        self.observation_space = spaces.Dict({
            **env.observation_space.spaces,
            "chosen": spaces.Box(0.0, 1.0, (self.num_candidates,), np.float32),
            "position": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self._slate: list[int] = []
        self._picks = 0
        self._ended: str | None = None  # why the episode ended, until the next reset
        self._obs: dict[str, np.ndarray] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_slate(obs)
        self._ended = None
        return self._observe(), info

    def step(self, action):
        # Before the K-th pick reaches the wrapped env, which refuses a step after the end too.
        refuse_step_after_end(self._ended)
        pick = np.asarray(action)
        # int() would truncate a float (2.7 is candidate 2) and read a bool as 0 or 1.
        if pick.size != 1 or pick.dtype.kind not in "iu":
            raise ValueError(f"action {action!r} is not a candidate index: pass one integer in "
                             f"0..{self.num_candidates - 1}")
        candidate = int(pick.reshape(()))
        if not 0 <= candidate < self.num_candidates:
            raise ValueError(f"action {action} is not a candidate index (there are {self.num_candidates} candidates)")
        if candidate in self._slate:
            self._picks += 1
            truncated = self._picks >= self.max_picks
            self._ended = f"truncated after max_picks={self.max_picks} picks for one slate" if truncated else None
            return self._observe(), -self.repeat_penalty, False, truncated, {"repeated": True}
        slate = [*self._slate, candidate]
        if len(slate) < self.slate_size:
            self._slate, self._picks = slate, self._picks + 1
            return self._observe(), 0.0, False, False, {"repeated": False}
        # The K-th pick changes nothing here until the wrapped step succeeds: one that raises (a
        # simulator's timeout, say) leaves the slate of K - 1 picks, and the pick can be retried.
        obs, reward, terminated, truncated, info = self.env.step(np.array(slate, dtype=np.int64))
        info = {**info, "repeated": False}
        if terminated or truncated:
            self._ended = ("terminated: the user churned" if terminated
                           else "truncated: the wrapped env reached its step limit")
        self._start_slate(obs)
        return self._observe(), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """``(C,)`` bool, False for candidates already on the slate (MaskablePPO's hook)."""
        mask = np.ones(self.num_candidates, dtype=bool)
        mask[self._slate] = False
        return mask

    def _start_slate(self, obs: dict[str, np.ndarray]) -> None:
        self._obs, self._slate, self._picks = obs, [], 0

    def _observe(self) -> dict[str, Any]:
        chosen = np.zeros(self.num_candidates, dtype=np.float32)
        chosen[self._slate] = 1.0
        position = np.array([len(self._slate) / self.slate_size], dtype=np.float32)
        # Copies: the K picks of one slate see the same request, but each observation is the
        # learner's to keep and change (Gymnasium's checker refuses arrays shared between calls).
        return {**{key: value.copy() for key, value in self._obs.items()}, "chosen": chosen, "position": position}
