"""What a recommender sees of its users: the observation space and the observations.

An observation holds, per user, the ids of the request's candidates (and, optionally,
their features), the user's recent clicks with their feedback (watch fraction, like), the
latest instruction (+1 for each genre asked for more, -1 for each asked for less, and the
novelty wish) and the session counters (session index, step in the session, steps since
the instruction was voiced).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from recoworld.catalog import Catalog
from recoworld.kernels.world import WorldState
from recoworld.envs.recycled import RecycledArrays


def observation_space(catalog: Catalog, history_length: int, num_candidates: int, candidate_features: bool
                      ) -> spaces.Dict:
    """The space of one user's observation."""
    N, D, G = catalog.n_items, catalog.feature_dim, catalog.n_genres
    H, C = history_length, num_candidates
    space = {
        "candidate_ids": spaces.Box(0, N - 1, (C,), np.int64),
        "candidate_features": spaces.Box(-np.inf, np.inf, (C, D), np.float32),
        "history_items": spaces.Box(-1, N - 1, (H,), np.int64),
        "history_feedback": spaces.Box(0.0, 1.0, (H, 2), np.float32),
        "instruction": spaces.Box(-1.0, 1.0, (2 * G + 1,), np.float32),
        "session": spaces.Box(0.0, np.inf, (3,), np.float32),
    }
    if not candidate_features:
        del space["candidate_features"]
    return spaces.Dict(space)


class Observer:
    """Builds observations ``[B, ...]`` as numpy arrays from a world's state.

    Each array of an observation is one the agent has let go of, or a new one
    (:class:`~recoworld.envs.recycled.RecycledArrays`): :meth:`empty` hands them out, to
    this observer and to a bookkeeping kernel that writes the observation as it steps."""

    def __init__(self, catalog: Catalog, n_users: int, num_candidates: int, candidate_features: bool,
                 history_length: int):
        self.candidate_features = candidate_features
        self._features = catalog.features.cpu().numpy()  # what candidate_features shows
        B, C, H, G = n_users, num_candidates, history_length, catalog.n_genres
        shapes = {"candidate_ids": ((B, C), np.int64), "history_items": ((B, H), np.int64),
                  "history_feedback": ((B, H, 2), np.float32), "instruction": ((B, 2 * G + 1), np.float32),
                  "session": ((B, 3), np.float32), "candidate_features": ((B, C, catalog.feature_dim), np.float32)}
        self._arrays = {name: RecycledArrays(shape, dtype) for name, (shape, dtype) in shapes.items()}

    def empty(self, name: str) -> np.ndarray:
        """An array for the observation's ``name`` that nobody else holds (contents unspecified)."""
        return self._arrays[name].empty()

    def observe(self, state: WorldState, candidates: torch.Tensor, observed: dict[str, np.ndarray] | None = None
                ) -> dict[str, np.ndarray]:
        """The observation of ``state`` with its ``candidates`` ``[B, C]``, or of ``observed``,
        an observation a kernel wrote as it stepped (with or without the candidate features)."""
        obs = observed
        if obs is None:
            ins = state.instruction
            instruction = torch.cat([ins.more.float(), -ins.less.float(), ins.novelty.float()[:, None]], 1)
            session = torch.stack([state.session_index, state.session_step, state.instruction_age], 1)
            # Copies of the state, which later steps and restarts update in place.
            obs = {name: self._copy(name, value) for name, value in (
                ("candidate_ids", candidates), ("history_items", state.history_items),
                ("history_feedback", state.history_feedback), ("instruction", instruction), ("session", session))}
        if self.candidate_features and "candidate_features" not in obs:
            # mode="clip" (the ids are in range) lets numpy gather straight into the array
            # instead of via a copy.
            features = self.empty("candidate_features")
            np.take(self._features, obs["candidate_ids"], axis=0, out=features, mode="clip")
            obs["candidate_features"] = features
        return obs

    def _copy(self, name: str, value: torch.Tensor) -> np.ndarray:
        array = self.empty(name)
        np.copyto(array, value.cpu().numpy())
        return array
