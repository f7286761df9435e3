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


class SequentialSlateEnv(gym.Wrapper):
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
    ``4 * K`` per slate) truncates a slate build that keeps repeating candidates.

    ## Arguments

    - ``env``: a single-user ``RecoWorld/Slate-v0`` with ``action_format="slate"``.
    - ``repeat_penalty`` (``1.0``): cost of a repeated pick.
    """

    def __init__(self, env: gym.Env, repeat_penalty: float = 1.0, max_picks: int | None = None):
        super().__init__(env)
        base = env.unwrapped
        if getattr(base.world, "action_format", "slate") != "slate":
            raise ValueError("SequentialSlateEnv builds slates itself; wrap an env with action_format='slate'")
        self.slate_size, self.num_candidates = base.slate_size, base.num_candidates
        self.repeat_penalty = float(repeat_penalty)
        self.max_picks = 4 * self.slate_size if max_picks is None else int(max_picks)
        self.action_space = spaces.Discrete(self.num_candidates)
        self.observation_space = spaces.Dict({
            **env.observation_space.spaces,
            "chosen": spaces.Box(0.0, 1.0, (self.num_candidates,), np.float32),
            "position": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self._slate: list[int] = []
        self._picks = 0
        self._obs: dict[str, np.ndarray] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_slate(obs)
        return self._observe(), info

    def step(self, action):
        candidate = int(action)
        if not 0 <= candidate < self.num_candidates:
            raise ValueError(f"action {action} is not a candidate index (there are {self.num_candidates} candidates)")
        self._picks += 1
        if candidate in self._slate:
            truncated = self._picks >= self.max_picks
            return self._observe(), -self.repeat_penalty, False, truncated, {"repeated": True}
        self._slate.append(candidate)
        if len(self._slate) < self.slate_size:
            return self._observe(), 0.0, False, False, {"repeated": False}
        obs, reward, terminated, truncated, info = self.env.step(np.array(self._slate, dtype=np.int64))
        info = {**info, "repeated": False}
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
        return {**self._obs, "chosen": chosen, "position": position}
