r"""User×item features built from what a recommender observes (shared by contextual agents).

From an observation (see ``RecoWorld/Slate-v0``'s manual) with catalog item features
:math:`f_i` (unit vectors, dim :math:`D`) and genre weights :math:`w_i` (sum to 1):

- the user's **profile** :math:`u_b = \sum_h \omega_h f_{i_h} / \sum_h \omega_h`, the mean
  features of the recent clicks :math:`i_h` weighted by their watch fractions
  :math:`\omega_h` (0 without history). It is not renormalised: a scattered history gives
  a short profile, which the linear models read as lower confidence;
- the profile's **genre mix** :math:`g_b = \sum_h \omega_h w_{i_h} / \sum_h \omega_h`;
- the latest **instruction** (more / less genres, novelty wish), weighted by
  :math:`1/\text{age}` (steps since it was voiced, 0 when none), because an instruction
  stops applying after a few steps and the agent does not know how many. Unlike
  :attr:`~recoworld.types.Observation.instruction_in_force` (the rule of SlateQ and the LLM
  agents), the weight does not drop to 0 when the session ends: what a user asked for says
  something of their taste after it. Dropping it was measured worse on the instruction
  benchmark's world (`benchmarks/RESULTS.md`, "Contextual agents' features: an instruction
  of an earlier session").

The shared feature vector :math:`x_{bc}` of user :math:`b` and candidate :math:`c` is

====================  ==========================================================
``bias``              1
``popularity``        the item's standardised log-popularity (public)
``affinity``          :math:`\langle u_b, f_c\rangle`
``repeat``            1 if the item is among the user's recent clicks
``genre_overlap``     :math:`\langle g_b, w_c\rangle` (taste, or satiation)
``more``, ``less``    :math:`\langle \text{more}_b, w_c\rangle / \text{age}`, same for less
``novelty``           novelty wish :math:`\times (1 - \langle u_b, f_c\rangle) / \text{age}`
``has_history``       1 if the user has any recent click
interaction           :math:`u_b \odot f_c` (``"diagonal"``, :math:`D`) or
                      :math:`\mathrm{vec}(u_b f_c^\top)` (``"outer"``, :math:`D^2`)
``item``              :math:`f_c` (the item's own appeal, :math:`D`)
====================  ==========================================================

Why not the plain concatenation :math:`[u_b, \text{instruction}, f_c]`? A linear score of
a concatenation is a user term plus an item term, so every user gets the same ranking:
personalisation needs user×item products. The full outer product learns a bilinear form
:math:`u^\top W f` (:math:`D^2` weights); the default keeps its diagonal
(:math:`\sum_j W_{jj} u_j f_j`, :math:`D` weights), which learns much faster and contains
the inner product that drives the statistical users' clicks.

The per-arm context of the disjoint and hybrid LinUCB models is
:math:`[1, \text{repeat}_{bc}, u_b]` (:math:`D + 2`): each item learns which profiles click it.
"""

from __future__ import annotations

import numpy as np
import torch

from recoworld.types import CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION, SESSION, Observation

SCALAR_FEATURES = ("bias", "popularity", "affinity", "repeat", "genre_overlap", "more", "less",
                   "novelty", "has_history")
INTERACTIONS = ("diagonal", "outer")


class UserItemFeatures:
    """The feature map of the module docstring for one catalog.

    Args:
        catalog: the world's :class:`~recoworld.Catalog`.
        interaction: ``"diagonal"`` (default) or ``"outer"``.

    Attributes:
        dim: length of :math:`x_{bc}`; ``arm_dim``: length of the per-arm context.
    """

    def __init__(self, catalog, interaction: str = "diagonal"):
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction={interaction!r}; choose one of {INTERACTIONS}")
        self.interaction = interaction
        self.item_features = catalog.features.cpu().numpy().astype(np.float64)
        self.genre_weights = catalog.genre_weights.cpu().numpy().astype(np.float64)
        log_pop = catalog.log_popularity.cpu().numpy().astype(np.float64)
        self.popularity = (log_pop - log_pop.mean()) / max(log_pop.std(), 1e-6)
        self.n_genres = catalog.n_genres
        D = self.item_features.shape[1]
        self.dim = len(SCALAR_FEATURES) + (D if interaction == "diagonal" else D * D) + D
        self.arm_dim = D + 2

    def profile(self, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Watch-weighted profile ``[B, D]``, genre mix ``[B, G]`` and has-history ``[B]``."""
        items = np.asarray(obs[HISTORY_ITEMS])
        weight = np.where(items >= 0, np.asarray(obs[HISTORY_FEEDBACK])[..., 0], 0.0)
        total = weight.sum(1, keepdims=True)
        weight = weight / np.where(total > 0, total, 1.0)
        safe = np.where(items >= 0, items, 0)
        profile = np.einsum("bh,bhd->bd", weight, self.item_features[safe])
        genre_mix = np.einsum("bh,bhg->bg", weight, self.genre_weights[safe])
        return profile, genre_mix, (total[:, 0] > 0).astype(np.float64)

    def repeat(self, obs: Observation) -> np.ndarray:
        """``[B, C]``: 1.0 where the candidate is among the user's recent clicks."""
        history = np.asarray(obs[HISTORY_ITEMS])
        return (np.asarray(obs[CANDIDATE_IDS])[:, :, None] == history[:, None, :]).any(-1).astype(np.float64)

    def __call__(self, obs: Observation) -> np.ndarray:
        """The shared features ``[B, C, dim]`` (float64)."""
        ids = np.asarray(obs[CANDIDATE_IDS])
        f = self.item_features[ids]
        w = self.genre_weights[ids]
        u, genre_mix, has_history = self.profile(obs)
        G = self.n_genres
        instruction = np.asarray(obs[INSTRUCTION], dtype=np.float64)
        age = np.asarray(obs[SESSION], dtype=np.float64)[:, 2]
        recency = np.where(age > 0, 1.0 / np.maximum(age, 1.0), 0.0)[:, None]
        more, less, novelty = instruction[:, :G], -instruction[:, G:2 * G], instruction[:, 2 * G]
        affinity = np.einsum("bd,bcd->bc", u, f)
        B, C = ids.shape
        scalars = np.stack([
            np.ones((B, C)),
            self.popularity[ids],
            affinity,
            self.repeat(obs),
            np.einsum("bg,bcg->bc", genre_mix, w),
            np.einsum("bg,bcg->bc", more, w) * recency,
            np.einsum("bg,bcg->bc", less, w) * recency,
            (novelty[:, None] * (1.0 - affinity)) * recency,
            np.broadcast_to(has_history[:, None], (B, C)),
        ], -1)
        if self.interaction == "diagonal":
            cross = u[:, None, :] * f
        else:
            cross = (u[:, None, :, None] * f[:, :, None, :]).reshape(B, C, -1)
        return np.concatenate([scalars, cross, f], -1)

    def arm_context(self, obs: Observation) -> np.ndarray:
        """The per-arm context ``[B, C, D + 2]``: ``[1, repeat, profile]``."""
        u, _, _ = self.profile(obs)
        B, C = np.asarray(obs[CANDIDATE_IDS]).shape
        return np.concatenate([np.ones((B, C, 1)), self.repeat(obs)[..., None],
                               np.broadcast_to(u[:, None, :], (B, C, u.shape[1]))], -1)


def standardised(values: torch.Tensor) -> torch.Tensor:
    """``values`` less their mean, over their (unbiased) standard deviation, at least 1e-6.
    One value has no spread: its standardised value is 0 (torch's unbiased std of one value
    is NaN, which would reach every score)."""
    spread = values.std() if values.numel() > 1 else values.new_zeros(())
    return (values - values.mean()) / spread.clamp_min(1e-6)
