"""SlateQ's model: what it knows of each (user, candidate) pair, and the networks on it.

:class:`CandidateFeaturizer` turns an observation into tensors from the observation and the
public catalog only; :class:`SlateQNetworks` holds the choice model :math:`g`, the
item-wise values :math:`\\bar Q` and the optional exposure values :math:`W` of
:mod:`recoworld.agents.slateq`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from recoworld.agents.features import standardised
from recoworld.catalog import lookup
from recoworld.types import CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION, SESSION, Observation

#: The observation fields SlateQ reads (and stores in its replay buffer).
OBS_FIELDS = (CANDIDATE_IDS, HISTORY_ITEMS, HISTORY_FEEDBACK, INSTRUCTION, SESSION)


class CandidateFeaturizer:
    """What a recommender knows about each (user, candidate) pair, as tensors.

    From the observation and the public catalog: per candidate its features :math:`f_i`,
    their product with the user's taste :math:`u` (watch-weighted mean features of the
    recent clicks) and the dot product, whether it was clicked recently, its standardised
    log-popularity, its genres' share of the recent clicks (a satiation proxy), its match
    with the instruction's ``more`` and ``less`` genres and its distance from the taste times
    the novelty wish. Per user: :math:`u`, whether an instruction is in force, the novelty
    wish, the session counters and the history length. An instruction counts while
    :attr:`~recoworld.types.Observation.instruction_in_force` says it applies (voiced in this session); after that its
    flag, match and novelty features are 0, as without one. ``item_dim`` and ``user_dim``
    are the widths; :meth:`__call__` returns the candidates' ``[B, C, item_dim]`` and their
    users' ``[B, user_dim]``.
    """

    def __init__(self, catalog, device: torch.device):
        self.device = device
        log_popularity = catalog.log_popularity.to(device)
        popularity = standardised(log_popularity)
        features, genres = catalog.features.to(device), catalog.genres.to(device).float()
        # One row per item, so that a batch of ids is one index_select (see catalog.lookup).
        self.candidate_table = torch.cat([features, popularity[:, None], genres], 1)
        self.history_table = torch.cat([features, catalog.genre_weights.to(device)], 1)
        self.n_genres, self.feature_dim = catalog.n_genres, catalog.feature_dim
        D = catalog.feature_dim
        self.item_dim = 2 * D + 7
        self.user_dim = D + 6

    def tensors(self, obs: Mapping[str, np.ndarray]) -> Observation:
        """The observation fields the featurizer reads, as tensors on the device."""
        return Observation({k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in OBS_FIELDS})

    def __call__(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        D, G = self.feature_dim, self.n_genres
        obs = Observation(obs)
        candidates, history = obs.candidate_ids.long(), obs.history_items.long()
        present = (history >= 0).float()
        weight = present * (0.5 + obs.history_feedback[..., 0].float())
        past_features, past_genres = lookup(self.history_table, history.clamp_min(0)).split([D, G], -1)
        taste = nn.functional.normalize(torch.bmm(weight[:, None], past_features)[:, 0], dim=-1)
        genre_share = torch.bmm(present[:, None], past_genres)[:, 0] / present.sum(1, keepdim=True).clamp_min(1)

        f, popularity, genres = lookup(self.candidate_table, candidates).split([D, 1, G], -1)  # [B, C, .]
        affinity = torch.bmm(f, taste[:, :, None])
        seen = (candidates[:, :, None] == history[:, None, :]).any(-1, keepdim=True).float()
        active = Observation(obs).instruction_in_force.float()[:, None]
        instruction = obs.instruction.float() * active
        more, less, novelty = instruction[:, :G], -instruction[:, G:2 * G], instruction[:, 2 * G]
        # Genres and instruction parts are 0/1, so a clipped count says "any genre matches".
        item = torch.cat([
            f, f * taste[:, None], affinity, seen, popularity,
            torch.bmm(genres, genre_share[:, :, None]),
            torch.bmm(genres, more[:, :, None]).clamp(max=1.0), torch.bmm(genres, less[:, :, None]).clamp(max=1.0),
            novelty[:, None, None] * (1.0 - affinity),
        ], -1)
        session = torch.log1p(obs.session.float())
        user = torch.cat([taste, active, novelty[:, None], session, present.mean(1, keepdim=True)], -1)
        return item, user



class PairMLP(nn.Module):
    """An MLP of each candidate's features with its user's, ``[B, C, item_dim]``, ``[B, user_dim]``
    -> ``[B, C]``.

    The first layer is a linear map of the concatenation ``[item, user]``, applied as the
    sum of its two blocks, so that the user's part is computed once for all of their
    candidates instead of copying the user's features next to each of them (``[B, C, item +
    user]`` tensors of every candidate of a training batch's next states).
    """

    def __init__(self, item_dim: int, user_dim: int, hidden: int, layers: int):
        super().__init__()
        self.item_dim = item_dim
        self.first = nn.Linear(item_dim + user_dim, hidden)
        rest: list[nn.Module] = []
        for _ in range(layers - 1):
            rest += [nn.ReLU(), nn.Linear(hidden, hidden)]
        self.rest = nn.Sequential(*rest, nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, item: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        item_weight, user_weight = self.first.weight.split([self.item_dim, user.shape[-1]], 1)
        user_part = nn.functional.linear(user, user_weight, self.first.bias)
        return self.rest(nn.functional.linear(item, item_weight) + user_part[:, None])[..., 0]


class SlateQNetworks(nn.Module):
    """Choice scores :math:`g(s, i)`, :math:`g(s, \\perp)`, values :math:`\\bar Q(s, i)`,
    :math:`\\bar Q(s, \\perp)` and, optionally, exposure values :math:`W(s, i)`."""

    def __init__(self, item_dim: int, user_dim: int, hidden: int, exposure: bool = False):
        super().__init__()
        self.choice = PairMLP(item_dim, user_dim, hidden, layers=1)
        self.choice_null = nn.Linear(user_dim, 1)
        self.value = PairMLP(item_dim, user_dim, hidden, layers=2)
        self.value_null = nn.Sequential(nn.Linear(user_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.exposure = PairMLP(item_dim, user_dim, hidden, layers=1) if exposure else None

    def choice_logits(self, item: torch.Tensor, user: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.choice(item, user), self.choice_null(user)[..., 0]

    def values(self, item: torch.Tensor, user: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(item, user), self.value_null(user)[..., 0]

    def exposure_values(self, item: torch.Tensor, user: torch.Tensor) -> torch.Tensor | None:
        return None if self.exposure is None else self.exposure(item, user)

