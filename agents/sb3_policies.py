"""Stable-Baselines3 policies that score every candidate with one shared network.

:class:`CandidateScoringPolicy` is an actor-critic policy that scores every candidate with
one shared network (permutation-equivariant, unlike ``MultiInputPolicy``'s MLP over the
flattened observation, which must learn the same scorer ``C`` times over), and
:class:`CandidateQPolicy` the same scorer as DQN's Q-network. Gaussian scores have bounded
means (:class:`BoundedScores`) and the scorer starts near zero, so that the first policy
ranks at random and the frozen one ranks as it did in training.

Example::

    venv = SB3SlateVecEnv(num_envs=32, action_format="scores")   # recoworld.envs.sb3_vec
    model = PPO(CandidateScoringPolicy, venv,
                policy_kwargs=catalog_policy_kwargs(venv.catalog)).learn(50_000)
    agent = SB3Recommender(model)
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from recoworld.agents.features import standardised
from recoworld.types import CANDIDATE_FEATURES, CANDIDATE_IDS, INSTRUCTION, Observation

#: The keys the sequential formulation (``recoworld.envs.wrappers.SequentialSlateEnv``) adds
#: to the observation: the candidates already on the slate, and the position to fill.
CHOSEN, POSITION = "chosen", "position"


def catalog_policy_kwargs(catalog) -> dict[str, torch.Tensor]:
    """The public catalog facts :class:`CandidateScoringPolicy` uses, as ``policy_kwargs``."""
    return {"item_features": catalog.features.cpu(), "item_genres": catalog.genres.cpu(),
            "item_popularity": catalog.popularity.cpu()}


class SlateFeaturesExtractor(nn.Module):
    """Embeds each candidate together with the user: ``[B, C * hidden + hidden]``.

    The user is the watch-weighted mean of the features of their recent clicks, their
    instruction and session counters; a candidate is its features, their product with
    the user's, whether it is among the recent clicks, its popularity and its match with
    the instruction's genres (when ``item_popularity`` and ``item_genres`` are given) and,
    in the sequential formulation, whether it is already on the slate.
    """

    def __init__(self, observation_space: spaces.Dict, item_features=None, item_genres=None,
                 item_popularity=None, hidden: int = 64):
        super().__init__()
        (C,) = observation_space[CANDIDATE_IDS].shape
        n_items = int(np.max(observation_space[CANDIDATE_IDS].high)) + 1
        if CANDIDATE_FEATURES in observation_space.spaces:
            D = observation_space[CANDIDATE_FEATURES].shape[1]
        elif item_features is not None:
            D = np.shape(item_features)[1]
        else:
            raise ValueError("the observations have no candidate_features; pass the catalog's item_features "
                             "in policy_kwargs (see catalog_policy_kwargs)")
        self.num_candidates, self.hidden = C, hidden
        self.features_dim = C * hidden + hidden
        if item_features is not None:
            self.register_buffer("item_features", torch.as_tensor(np.asarray(item_features), dtype=torch.float32))
            self.item_table = None
        else:  # learn item vectors for the history from scratch
            self.item_table = nn.Embedding(n_items, D)
        self.register_buffer("item_genres", None if item_genres is None
                             else torch.as_tensor(np.asarray(item_genres), dtype=torch.float32))
        if item_popularity is not None:  # standardised log-popularity
            log_popularity = torch.log(torch.as_tensor(np.asarray(item_popularity), dtype=torch.float32).clamp_min(1e-12))
            self.register_buffer("item_popularity", standardised(log_popularity))
        else:
            self.item_popularity = None
        instruction_dim = observation_space[INSTRUCTION].shape[0]
        self.sequential = CHOSEN in observation_space.spaces
        per_candidate = (2 * D + 2 + (2 if item_genres is not None else 0) + (1 if item_popularity is not None else 0)
                         + (1 if self.sequential else 0))
        self.user_net = nn.Sequential(nn.Linear(D + instruction_dim + 3 + (1 if self.sequential else 0), hidden), nn.ReLU())
        self.candidate_net = nn.Sequential(nn.Linear(per_candidate + hidden, hidden), nn.ReLU(),
                                           nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = Observation(obs)
        history = obs.history_items.long()
        present = (history >= 0).float()
        ids = history.clamp_min(0)
        history_features = self.item_features[ids] if self.item_table is None else self.item_table(ids)
        weight = present * (0.5 + obs.history_feedback[..., 0])
        user = nn.functional.normalize((weight[..., None] * history_features).sum(1), dim=-1)
        user_parts = [user, obs.instruction, torch.log1p(obs.session)]
        if self.sequential:
            user_parts.append(obs[POSITION])
        user_h = self.user_net(torch.cat(user_parts, -1))
        candidate_ids = obs.candidate_ids.long()
        candidates = obs.candidate_features
        if candidates is None:
            candidates = self.item_features[candidate_ids]
        seen = (candidate_ids[:, :, None] == history[:, None, :]).any(-1, keepdim=True).float()
        parts = [candidates, candidates * user[:, None], (candidates * user[:, None]).sum(-1, keepdim=True), seen]
        if self.item_popularity is not None:
            parts.append(self.item_popularity[candidate_ids][..., None])
        if self.item_genres is not None:
            genres = self.item_genres[candidate_ids]
            G = genres.shape[-1]
            more, less = obs.instruction[:, :G].clamp_min(0), (-obs.instruction[:, G:2 * G]).clamp_min(0)
            parts += [(genres * more[:, None]).amax(-1, keepdim=True), (genres * less[:, None]).amax(-1, keepdim=True)]
        if self.sequential:
            parts.append(obs[CHOSEN][..., None])
        parts.append(user_h[:, None].expand(-1, candidates.shape[1], -1))
        candidate_h = self.candidate_net(torch.cat(parts, -1))
        return torch.cat([candidate_h.flatten(1), user_h], -1)


class CandidateHeads(nn.Module):
    """Actor: one score per candidate from its embedding; critic: pooled candidates and user."""

    def __init__(self, num_candidates: int, hidden: int):
        super().__init__()
        self.num_candidates, self.hidden = num_candidates, hidden
        self.latent_dim_pi, self.latent_dim_vf = num_candidates, hidden
        self.score = nn.Linear(hidden, 1)
        self.value = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU())

    def _split(self, features: torch.Tensor):
        C, h = self.num_candidates, self.hidden
        return features[:, : C * h].view(-1, C, h), features[:, C * h:]

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        candidates, _ = self._split(features)
        return self.score(candidates)[..., 0]

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        candidates, user = self._split(features)
        return self.value(torch.cat([candidates.mean(1), user], -1))

    def forward(self, features: torch.Tensor):
        return self.forward_actor(features), self.forward_critic(features)


class _Extractor(BaseFeaturesExtractor):
    """SB3's face of :class:`SlateFeaturesExtractor`."""

    def __init__(self, observation_space: spaces.Dict, **kwargs):
        inner = SlateFeaturesExtractor(observation_space, **kwargs)
        super().__init__(observation_space, inner.features_dim)
        self.inner = inner

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.inner(obs)


class BoundedScores(nn.Module):
    """``bound * tanh((x - mean(x)) / bound)``: the Gaussian policy's mean scores, inside ``(-bound, bound)``.

    The env's action box is ``[-1, 1]`` and SB3 clips sampled actions to it, while the
    Gaussian log-likelihood is that of the unclipped sample. A mean that drifts past the
    box then ties its candidates at the clip value (the env's top-K breaks the ties, not
    the policy), and the gradient keeps pushing it out; the frozen agent, which ranks by the
    unclipped mean, ranks by scores the env never saw. With ``bound = 0.5`` and the noise
    of ``log_std_init = -2`` (0.14) even a mean at the bound has its sample clipped about
    once in ten thousand draws, and the ranking stays scale-free: sharpening it is the
    log-std's job. Near 0 it is the identity.
    """

    def __init__(self, bound: float = 0.5):
        super().__init__()
        if not 0 < bound <= 1:
            raise ValueError(f"score_bound={bound}; it must be in (0, 1], inside the action box [-1, 1]")
        self.bound = bound

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        # Centred per user first: adding a constant to every score changes no ranking, so
        # nothing in the reward stops that common part from drifting into the bound.
        centred = scores - scores.mean(-1, keepdim=True)
        return self.bound * torch.tanh(centred / self.bound)


def _extractor_kwargs(item_features, item_genres, item_popularity, hidden: int) -> dict:
    """The policy arguments that put :class:`_Extractor` (fed the catalog's facts) in front."""
    return {"features_extractor_class": _Extractor,
            "features_extractor_kwargs": {"item_features": item_features, "item_genres": item_genres,
                                          "item_popularity": item_popularity, "hidden": hidden}}


class _CandidateScoring:
    """The hooks that turn an SB3 actor-critic policy into a candidate-scoring one."""

    def __init__(self, observation_space, action_space, lr_schedule, item_features=None, item_genres=None,
                 item_popularity=None, hidden: int = 64, score_bound: float = 0.5, **kwargs):
        self.hidden, self.score_bound = hidden, float(score_bound)
        super().__init__(observation_space, action_space, lr_schedule,
                         **{**kwargs, **_extractor_kwargs(item_features, item_genres, item_popularity, hidden)})

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = CandidateHeads(self.features_extractor.inner.num_candidates, self.hidden)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # The actor's latent already is one score (or logit) per candidate: SB3's dense
        # action layer would mix candidates and break the equivariance. Gaussian scores
        # keep their mean inside the action box (see BoundedScores); logits need no bound.
        self.action_net = BoundedScores(self.score_bound) if isinstance(self.action_space, spaces.Box) else nn.Identity()
        # The scorer is the policy's action layer: initialise it as SB3 does its action
        # layer (orthogonal, gain 0.01; its ortho_init gave it the hidden layers' sqrt(2)),
        # so that the first policy ranks at random instead of by a random function of the
        # features (which on the default world can rank the least popular items first).
        nn.init.orthogonal_(self.mlp_extractor.score.weight, gain=0.01)
        nn.init.zeros_(self.mlp_extractor.score.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class CandidateScoringPolicy(_CandidateScoring, MultiInputActorCriticPolicy):
    """Actor-critic policy that scores each candidate with one shared network.

    For ``Box(C)`` scores (PPO, A2C) the scores are the Gaussian mean; for ``Discrete(C)``
    picks (PPO on the sequential formulation) they are the logits. Pass the catalog's
    ``item_features`` ``[N, D]`` (history items are looked up in it; without it the item
    vectors are learned) and optionally ``item_genres`` ``[N, G]`` (to match candidates
    with the instruction's genres) and ``item_popularity`` ``[N]`` in ``policy_kwargs``
    (:func:`catalog_policy_kwargs` gives all three); ``hidden`` sets the width and
    ``score_bound`` the range of the mean scores (:class:`BoundedScores`).
    """


class MaskableCandidateScoringPolicy(_CandidateScoring, MaskableMultiInputActorCriticPolicy):
    """:class:`CandidateScoringPolicy` for sb3-contrib's MaskablePPO (the logits are masked)."""


class CandidateQNetwork(QNetwork):
    """DQN's Q-network with one Q-value per candidate from its embedding: ``Q(s, c) = w . h_c + b``.

    The same candidate network scores every candidate, as in :class:`CandidateHeads`:
    a Q-value is a property of the candidate in context, not of its index among the ``C``
    (SB3's ``MultiInputPolicy`` MLP over the flattened observation has to learn each of
    the ``C`` outputs separately).
    """

    def __init__(self, observation_space, action_space, features_extractor, features_dim, **kwargs):
        super().__init__(observation_space, action_space, features_extractor, features_dim, **kwargs)
        self.q_net = CandidateQHead(features_extractor.inner.num_candidates, features_extractor.inner.hidden)


class CandidateQHead(nn.Module):
    """``[B, C * hidden + hidden]`` features to ``[B, C]`` Q-values (one shared linear map)."""

    def __init__(self, num_candidates: int, hidden: int):
        super().__init__()
        self.num_candidates, self.hidden = num_candidates, hidden
        self.q = nn.Linear(hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        C, h = self.num_candidates, self.hidden
        return self.q(features[:, : C * h].view(-1, C, h))[..., 0]


class CandidateQPolicy(DQNPolicy):
    """DQN policy whose online and target networks are :class:`CandidateQNetwork` s.

    Takes the catalog facts of :class:`CandidateScoringPolicy` (``item_features``,
    ``item_genres``, ``item_popularity``) and ``hidden``; the rest is SB3's ``DQNPolicy``.
    """

    def __init__(self, observation_space, action_space, lr_schedule, item_features=None, item_genres=None,
                 item_popularity=None, hidden: int = 64, **kwargs):
        super().__init__(observation_space, action_space, lr_schedule,
                         **{**kwargs, **_extractor_kwargs(item_features, item_genres, item_popularity, hidden)})

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return CandidateQNetwork(**net_args).to(self.device)

