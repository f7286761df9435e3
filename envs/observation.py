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
    """Builds observations ``[B, ...]`` as numpy arrays from a world's state."""

    def __init__(self, catalog: Catalog, n_users: int, num_candidates: int, candidate_features: bool):
        self.candidate_features = candidate_features
        self._features = catalog.features.cpu().numpy()  # what candidate_features shows
        self._feature_arrays = RecycledArrays((n_users, num_candidates, catalog.feature_dim), np.float32)

    def observe(self, state: WorldState, candidates: torch.Tensor, observed: dict[str, np.ndarray] | None = None
                ) -> dict[str, np.ndarray]:
        """The observation of ``state`` with its ``candidates`` ``[B, C]``, or of ``observed``,
        an observation a kernel wrote as it stepped (all but the candidate features)."""
        obs = observed
        if obs is None:
            ins = state.instruction
            instruction = torch.cat([ins.more.float(), -ins.less.float(), ins.novelty.float()[:, None]], 1)
            session = torch.stack([state.session_index, state.session_step, state.instruction_age], 1)
            # Copies of the state, which later steps and restarts update in place.
            obs = {"candidate_ids": candidates.cpu().numpy().copy(),
                   "history_items": state.history_items.cpu().numpy().copy(),
                   "history_feedback": state.history_feedback.cpu().numpy().copy(),
                   "instruction": instruction.cpu().numpy(), "session": session.cpu().numpy()}
        if self.candidate_features:
            # Into an array the agent has let go of (see envs/recycled.py); mode="clip" (the
            # ids are in range) lets numpy gather straight into it instead of via a copy.
            features = self._feature_arrays.empty()
            np.take(self._features, obs["candidate_ids"], axis=0, out=features, mode="clip")
            obs["candidate_features"] = features
        return obs
