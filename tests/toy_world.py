"""Small worlds where the right answer is known, and a way to drive agents through them.

:class:`ToyWorld` has the face of ``RecoWorld/Slate-v0``'s vector env that agents use
(``reset``, ``step``, ``catalog``, ``slate_size``, ``num_candidates``, ``num_envs`` and the
observation keys), but its users click independently at each position with probabilities
given by a function the test chooses: no position bias, no dynamics, no episode ends.
:func:`drive` runs any agent against any such vector env, the real one included, through
the one rollout loop (:func:`recoworld.envs.rollout.rollout`), and keeps the per-step
rewards and slates that tests of learning curves look at.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recoworld.agents.base import Recommender
from recoworld.catalog import Catalog
from recoworld.envs.rollout import StepTrace, rollout
from recoworld.types import (CANDIDATE_FEATURES, CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION,
                             SESSION)


def tiny_catalog(n_items: int, feature_dim: int = 4, seed: int = 0) -> Catalog:
    """A catalog of ``n_items`` items with random unit features and one genre."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.nn.functional.normalize(torch.randn(n_items, feature_dim, generator=gen), dim=1)
    return Catalog(features, torch.ones(n_items, 1, dtype=torch.bool), ("All",),
                   [f"item {i}" for i in range(n_items)], torch.full((n_items,), 1.0 / n_items),
                   torch.zeros(n_items), name=f"tiny-{n_items}")


class ToyWorld:
    """``num_envs`` users who click candidate ``c`` with probability ``click_probability(obs)[b, c]``.

    Args:
        catalog: the items.
        click_probability: maps an observation to ``[B, C]`` click probabilities.
        num_envs, slate_size, num_candidates: as in the real env. With ``num_candidates``
            equal to the catalog size every request sees all items in id order; otherwise
            each request draws its candidates uniformly without replacement.
        context: optional ``(rng, B, C) -> array`` put in ``obs["context"]`` each step, for
            tests whose agents read features straight from the observation.
    """

    def __init__(self, catalog: Catalog, click_probability: Callable[[dict], np.ndarray], num_envs: int = 1,
                 slate_size: int = 1, num_candidates: int | None = None,
                 context: Callable[[np.random.Generator, int, int], np.ndarray] | None = None):
        self.catalog = catalog
        self.click_probability = click_probability
        self.num_envs, self.slate_size = num_envs, slate_size
        self.num_candidates = num_candidates or catalog.n_items
        self.context = context
        self.unwrapped = self

    def reset(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.obs = self._observe()
        return self.obs, {}

    def _observe(self) -> dict[str, np.ndarray]:
        B, C, N, G = self.num_envs, self.num_candidates, self.catalog.n_items, self.catalog.n_genres
        if C == N:
            ids = np.tile(np.arange(N), (B, 1))
        else:
            ids = np.argsort(self.rng.random((B, N)), axis=1)[:, :C]
        obs = {
            CANDIDATE_IDS: ids,
            CANDIDATE_FEATURES: self.catalog.features.numpy()[ids],
            HISTORY_ITEMS: np.full((B, 1), -1, dtype=np.int64),
            HISTORY_FEEDBACK: np.zeros((B, 1, 2), dtype=np.float32),
            INSTRUCTION: np.zeros((B, 2 * G + 1), dtype=np.float32),
            SESSION: np.zeros((B, 3), dtype=np.float32),
        }
        if self.context is not None:
            obs["context"] = self.context(self.rng, B, C)
        return obs

    def step(self, action: np.ndarray):
        action = np.asarray(action)
        p = np.take_along_axis(self.click_probability(self.obs), action, 1)
        clicked = self.rng.random(p.shape) < p
        slate = np.take_along_axis(self.obs[CANDIDATE_IDS], action, 1)
        B = self.num_envs
        info = {"clicked": clicked, "watch_fraction": clicked * 0.5, "liked": np.zeros_like(clicked),
                "slate": slate, "autoreset": np.zeros(B, dtype=bool)}
        self.obs = self._observe()
        return self.obs, clicked.sum(1).astype(np.float64), np.zeros(B, bool), np.zeros(B, bool), info


def drive(env, agent: Recommender, n_steps: int, seed: int) -> dict[str, np.ndarray]:
    """Set ``agent`` up with ``seed``, reset ``env`` with ``seed``, run ``n_steps`` batched
    steps (acting, then learning from each step's feedback) and return per-step arrays:
    ``reward`` ``[T, B]``, ``valid`` ``[T, B]`` and ``slate`` ``[T, B, K]`` (catalog ids)."""
    trace = StepTrace()
    rollout(env, agent, n_steps, seed, env_seed=seed, hooks=[trace])
    return trace.arrays()


def mean_reward(trace: dict[str, np.ndarray]) -> float:
    """Mean reward per valid user-step of a :func:`drive` trace."""
    return float(trace["reward"][trace["valid"]].mean())
