"""Reference agents every experiment should include: Random, MostPopular and Oracle."""

from __future__ import annotations

from math import perm

import numpy as np

from recoworld.agents.base import Recommender, deterministic, top_k
from recoworld.types import CANDIDATE_IDS, Observation


class RandomAgent(Recommender):
    """Shows ``K`` candidates drawn uniformly without replacement, in random order.

    Propensities are exact: a ranked slate has probability ``(C-K)!/C!``; the candidate
    at position ``k`` is there with probability ``1/C``; the first ``k+1`` positions are
    as shown with probability ``(C-k-1)!/C!``.
    """

    name = "random"

    def act(self, obs: Observation) -> np.ndarray:
        batch = obs[CANDIDATE_IDS].shape[0]
        keys = self.rng.random((batch, self.num_candidates))
        return np.argsort(keys, axis=1)[:, : self.slate_size]

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        C, K = self.num_candidates, action.shape[1]
        # Int over int: correctly rounded, where a float of perm(C, k+1) would overflow (K over ~110).
        cascade = np.array([1 / perm(C, k + 1) for k in range(K)])
        batch = action.shape[0]
        return {
            "slate": np.full(batch, cascade[-1]),
            "position": np.full((batch, K), 1.0 / C),
            "cascade": np.tile(cascade, (batch, 1)),
        }


class MostPopularAgent(Recommender):
    """Shows the candidates with the highest catalog popularity, most popular first."""

    name = "most_popular"

    def score(self, obs: Observation) -> np.ndarray:
        """``[B, C]`` log-popularity of the candidates (a scorer for the logging policies)."""
        return self.catalog.log_popularity.cpu().numpy()[obs[CANDIDATE_IDS]]

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.score(obs), self.slate_size)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)


class Oracle(Recommender):
    """Shows the candidates with the highest *true* click probability for each user.

    It reads the simulator's ground truth through the env's documented privileged
    channel, ``env.unwrapped.click_probabilities()`` (see ``RecoWorld/Slate-v0``'s manual),
    which no real recommender has: it is a myopic upper bound for click-based rewards, not
    a learner.
    """

    name = "oracle"

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._true_click_probabilities = env.unwrapped.click_probabilities

    def act(self, obs: Observation) -> np.ndarray:
        scores = np.asarray(self._true_click_probabilities())
        if scores.ndim == 1:  # a single-user env
            scores = scores[None, :]
        return top_k(scores, self.slate_size)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)
