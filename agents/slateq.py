r"""SlateQ: slate Q-values from item-wise long-term values and a user choice model.

Ie et al., 2019, "SlateQ: A Tractable Decomposition for Reinforcement Learning with
Recommendation Sets" (IJCAI). If the user consumes at most one item of a slate and reward
and transition depend only on that item, the value of a slate :math:`A` decomposes as

.. math::

    Q(s, A) = \sum_{i \in A \cup \{\perp\}} P(i \mid s, A)\, \bar Q(s, i),
    \qquad P(i \mid s, A) = \frac{v(s, i)}{v(s, \perp) + \sum_{j \in A} v(s, j)}

with the conditional-logit choice model :math:`v(s, i) = e^{g(s, i)}` and the null choice
:math:`\perp` (no click). The item-wise values are learned by Q-learning (the paper's
"SlateQ" with optimisation in the target):

.. math::

    \bar Q(s, i) \leftarrow r(s, i) + \gamma \max_{A'} \sum_{j \in A' \cup \{\perp\}} P(j \mid s', A')\, \bar Q'(s', j)

for the consumed item :math:`i` (or :math:`\perp` when nothing is clicked), with a target
network :math:`\bar Q'` (Polyak-averaged) and the slate :math:`A'` chosen by the online
network (double Q-learning).

Choices made here, where the paper leaves room or where RecoWorld's users differ:

- **Choice model.** :math:`g` is learned from clicks by maximum likelihood of the
  conditional logit over the slate and :math:`\perp`; a slate with several clicks counts
  each click as one choice (the users examine a cascade and may click more than once; the
  model ignores position bias). :math:`g(s, \perp)` is a learned linear function of the
  user's features.
- **Null value.** :math:`\bar Q(s, \perp)` is learned too (the paper's RecSim code fixes it
  at 0): with retention rewards, what happens when the user clicks nothing — they may
  leave — is what a long-term agent must learn.
- **Item rewards.** With reward weights :math:`w` (the signals of ``RecoWorld/Slate-v0``'s rewards),
  a clicked item earns :math:`w_\text{clicks} + w_\text{watch}\,\omega_i + w_\text{likes}\,\ell_i`
  and every choice of the step (each clicked item, or :math:`\perp`) also earns the
  slate-level part :math:`w_\text{retention}\,\rho + w_\text{churn}\,\chi + w_\text{compliance}\,\kappa`.
- **Slate optimisation.** ``slate_optimizer="exact"`` (default) solves
  :math:`\max_{|A| = K} Q(s, A)` exactly: it is a 0-1 fractional programme whose inner
  problem for a fixed ratio :math:`\lambda` (Dinkelbach, 1967) is the top-K of
  :math:`v_i(\bar Q_i - \lambda)`, so a few top-K passes reach the optimum the paper gets
  from its LP. ``"top_k"`` is the paper's top-K heuristic: the K largest :math:`v_i \bar Q_i`.
  Either way the slate is ordered by :math:`v_i \bar Q_i`, best first.
  The exact optimum is only as good as the model: RecoWorld's users click several items of a
  slate (1.7 of 10 on the calibrated MovieLens world), so the fitted logit leaves the null
  choice a few percent and every slate's :math:`Q(s, A)` close to the best; the exact
  optimum is then decided by the noise of :math:`\bar Q` across candidates, and the
  top-K heuristic, which favours attractive items, earned 0.055 more clicks per step
  there (``conf/agent/slateq.yaml`` uses it).
- **n-step targets.** With ``n_step > 1`` the target of the step-:math:`t` choice is
  :math:`r_t(i) + \sum_{j=1}^{m} \gamma^j r_{t+j} + \gamma^{m+1} Q(s_{t+m+1}, A^*)`, the same
  user's observed step rewards for :math:`m \le n - 1` steps (fewer at an episode's end or
  where the next steps have not arrived yet), as in Rainbow; the off-policy bias of the
  exploratory steps inside the window is accepted. The users' mindset is hidden from the
  observation, so a one-step target cannot see that a slate which followed the user's
  instruction made their return likelier a few steps later; the observed rewards can. (In
  the runs reported in :mod:`recoworld.agents.retention` 8-step targets did not help at
  the budgets tried; the exposure values below did.)
- **Exposure values** (``exposure_value=True``, beyond the paper). SlateQ assumes that
  reward and transition depend only on the consumed item. RecoWorld's users also react to
  the slate as a whole: compliance with their instruction is a share of the slate, and
  every examined item satiates. The option adds a slate-level term,
  :math:`Q(s, A) = \sum_{i \in A \cup \{\perp\}} P(i \mid s, A)\,\bar Q(s, i) + \frac1K \sum_{i \in A} W(s, i)`,
  fitted with :math:`\bar Q` to the same targets; the slate is then optimised by a local
  search from the exact SlateQ slate (see :func:`optimize_slate`), which found the
  brute-force optimum on 90% of random instances (8 candidates, slates of 3) and came
  within 1% of it on average.
- **Exploration.** Epsilon-greedy per user: a uniformly random slate with probability
  ``epsilon`` (so :meth:`SlateQAgent.propensities` are exact).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from math import perm

import numpy as np
import torch
from torch import nn

from recoworld.agents.base import Feedback, Observation, Recommender
from recoworld.catalog import lookup

#: The reward signals of RecoWorld/Slate-v0 (see its manual); the env reports each per
#: user in ``info["reward_<signal>"]``. Item-level ones are rebuilt per position from the feedback.
SIGNALS = ("clicks", "watch_time", "likes", "retention", "churn", "compliance")
OBS_FIELDS = ("candidate_ids", "history_items", "history_feedback", "instruction", "session")


# ------------------------------------------------------------------ features
class CandidateFeaturizer:
    """What a recommender knows about each (user, candidate) pair, as tensors.

    From the observation and the public catalog: per candidate its features :math:`f_i`,
    their product with the user's taste :math:`u` (watch-weighted mean features of the
    recent clicks) and the dot product, whether it was clicked recently, its standardised
    log-popularity, its genres' share of the recent clicks (a satiation proxy), its match
    with the instruction's ``more`` and ``less`` genres and its distance from the taste times
    the novelty wish. Per user: :math:`u`, whether an instruction is in force, the novelty
    wish, the session counters and the history length. ``item_dim`` and ``user_dim`` are
    the widths; :meth:`__call__` returns ``[B, C, item_dim + user_dim]`` (each candidate
    with its user) and ``[B, user_dim]``.
    """

    def __init__(self, catalog, device: torch.device):
        self.device = device
        log_popularity = catalog.log_popularity.to(device)
        popularity = (log_popularity - log_popularity.mean()) / log_popularity.std().clamp_min(1e-6)
        features, genres = catalog.features.to(device), catalog.genres.to(device).float()
        # One row per item, so that a batch of ids is one index_select (see catalog.lookup).
        self.candidate_table = torch.cat([features, popularity[:, None], genres], 1)
        self.history_table = torch.cat([features, catalog.genre_weights.to(device)], 1)
        self.n_genres, self.feature_dim = catalog.n_genres, catalog.feature_dim
        D = catalog.feature_dim
        self.item_dim = 2 * D + 7
        self.user_dim = D + 6

    def tensors(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The observation fields the featurizer reads, as tensors on the device."""
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in OBS_FIELDS}

    def __call__(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        D, G = self.feature_dim, self.n_genres
        candidates, history = obs["candidate_ids"].long(), obs["history_items"].long()
        present = (history >= 0).float()
        weight = present * (0.5 + obs["history_feedback"][..., 0].float())
        past_features, past_genres = lookup(self.history_table, history.clamp_min(0)).split([D, G], -1)
        taste = nn.functional.normalize(torch.bmm(weight[:, None], past_features)[:, 0], dim=-1)
        genre_share = torch.bmm(present[:, None], past_genres)[:, 0] / present.sum(1, keepdim=True).clamp_min(1)

        f, popularity, genres = lookup(self.candidate_table, candidates).split([D, 1, G], -1)  # [B, C, .]
        affinity = torch.bmm(f, taste[:, :, None])
        seen = (candidates[:, :, None] == history[:, None, :]).any(-1, keepdim=True).float()
        instruction = obs["instruction"].float()
        more, less, novelty = instruction[:, :G], -instruction[:, G:2 * G], instruction[:, 2 * G]
        # Genres and instruction parts are 0/1, so a clipped count says "any genre matches".
        item = torch.cat([
            f, f * taste[:, None], affinity, seen, popularity,
            torch.bmm(genres, genre_share[:, :, None]),
            torch.bmm(genres, more[:, :, None]).clamp(max=1.0), torch.bmm(genres, less[:, :, None]).clamp(max=1.0),
            novelty[:, None, None] * (1.0 - affinity),
        ], -1)
        active = (instruction.abs().sum(1, keepdim=True) > 0).float()
        session = torch.log1p(obs["session"].float())
        user = torch.cat([taste, active, novelty[:, None], session, present.mean(1, keepdim=True)], -1)
        return item, user


# ------------------------------------------------------------- decomposition
def slate_value(v: torch.Tensor, q: torch.Tensor, v_null: torch.Tensor, q_null: torch.Tensor,
                w: torch.Tensor | None = None) -> torch.Tensor:
    r"""SlateQ's :math:`Q(s, A)` ``[B]`` from the slate's choice scores ``v`` and item values
    ``q`` ``[B, K]`` and the null choice's ``v_null``, ``q_null`` ``[B]``; plus the mean
    exposure value of the slate's items when ``w`` ``[B, K]`` is given."""
    value = (v_null * q_null + (v * q).sum(1)) / (v_null + v.sum(1))
    return value if w is None else value + w.mean(1)


def choice_probabilities(v: torch.Tensor, v_null: torch.Tensor) -> torch.Tensor:
    """Conditional-logit :math:`P(i | s, A)` ``[B, K + 1]``; the last column is the null choice."""
    weights = torch.cat([v, v_null[:, None]], 1)
    return weights / weights.sum(1, keepdim=True)


def optimize_slate(v: torch.Tensor, q: torch.Tensor, v_null: torch.Tensor, q_null: torch.Tensor, k: int,
                   method: str = "exact", w: torch.Tensor | None = None, max_iter: int = 50) -> torch.Tensor:
    r"""Candidate indices ``[B, k]`` of the best slate of ``k`` out of ``C`` candidates.

    ``v``, ``q`` (and ``w``) ``[B, C]``; ``v_null``, ``q_null`` ``[B]``. ``"exact"``
    maximises :func:`slate_value` by Dinkelbach's iteration (each step takes the top-k of
    :math:`v_i(q_i - \lambda)` and sets :math:`\lambda` to that slate's value, which never
    decreases and stops at the optimum); ``"top_k"`` takes the top-k of :math:`v_i q_i`.
    With exposure values ``w`` the objective is no longer a pure ratio: from the slate
    above, each step takes the top-k of the linearised gain
    :math:`v_i(q_i - \lambda)/D + w_i/k` (:math:`\lambda`, :math:`D` the current slate's
    choice value and denominator) and keeps it where it improves the value — a local search
    that never does worse than its start. The slate is ordered by its items' gains, best first.
    """
    if method not in ("exact", "top_k"):
        raise ValueError(f"slate_optimizer={method!r}; choose 'exact' or 'top_k'")
    gain = v * q if w is None else v * q / (v_null[:, None] + k * v.mean(1, keepdim=True)) + w / k
    chosen = gain.topk(k, dim=1).indices
    if method == "exact":
        ratio = slate_value(v.gather(1, chosen), q.gather(1, chosen), v_null, q_null)
        for _ in range(max_iter):
            candidate = (v * (q - ratio[:, None])).topk(k, dim=1).indices
            new_ratio = slate_value(v.gather(1, candidate), q.gather(1, candidate), v_null, q_null)
            better = new_ratio > ratio + 1e-7 * ratio.abs().clamp_min(1.0)
            if not bool(better.any()):
                break
            chosen = torch.where(better[:, None], candidate, chosen)
            ratio = torch.where(better, new_ratio, ratio)
        if w is not None:
            chosen = _local_search(v, q, v_null, q_null, w, k, chosen, max_iter)
    if w is not None:
        v_chosen = v.gather(1, chosen)
        ratio = slate_value(v_chosen, q.gather(1, chosen), v_null, q_null)
        gain = v * (q - ratio[:, None]) / (v_null + v_chosen.sum(1))[:, None] + w / k
    order = torch.argsort(gain.gather(1, chosen), dim=1, descending=True, stable=True)
    return chosen.gather(1, order)


def _local_search(v, q, v_null, q_null, w, k, chosen, max_iter):
    """Improve slates under :func:`slate_value` with exposure values (see :func:`optimize_slate`)."""
    def value(slate):
        return slate_value(v.gather(1, slate), q.gather(1, slate), v_null, q_null, w.gather(1, slate))

    current = value(chosen)
    for _ in range(max_iter):
        v_chosen = v.gather(1, chosen)
        ratio = slate_value(v_chosen, q.gather(1, chosen), v_null, q_null)
        gain = v * (q - ratio[:, None]) / (v_null + v_chosen.sum(1))[:, None] + w / k
        candidate = gain.topk(k, dim=1).indices
        new = value(candidate)
        better = new > current + 1e-7 * current.abs().clamp_min(1.0)
        if not bool(better.any()):
            break
        chosen = torch.where(better[:, None], candidate, chosen)
        current = torch.where(better, new, current)
    return chosen


# ------------------------------------------------------------------ networks
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


# -------------------------------------------------------------------- replay
class ReplayBuffer:
    """Transitions as raw observation fields (features are recomputed when sampled), on the device.

    Each row also links to the same user's next row (``successor``, -1 until it arrives or
    after the episode's end), so that n-step returns can be read by following the links.
    Rows are overwritten oldest first and a row's successor is newer than the row, so a
    live row never links to an overwritten one.
    """

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.data: dict[str, torch.Tensor] = {}
        self.size = self.cursor = 0

    def add(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        """Append rows; returns their indices."""
        n = next(iter(rows.values())).shape[0]
        if n > self.capacity:
            raise ValueError(f"adding {n} transitions at once to a buffer of {self.capacity}; raise buffer_size")
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
                         for k, v in rows.items()}
            self.data["successor"] = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        index = (self.cursor + torch.arange(n, device=self.device)) % self.capacity
        for k, v in rows.items():
            self.data[k][index] = v.to(self.device)
        self.data["successor"][index] = -1
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return index

    def link(self, rows: torch.Tensor, successors: torch.Tensor) -> None:
        """Record that ``successors`` follow ``rows`` in their users' episodes."""
        self.data["successor"][rows] = successors

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``batch`` rows drawn uniformly with replacement."""
        return torch.randint(self.size, (batch,), generator=generator, device=self.device)

    def rows(self, index: torch.Tensor, fields=None) -> dict[str, torch.Tensor]:
        return {k: v.index_select(0, index) for k, v in self.data.items() if fields is None or k in fields}


# --------------------------------------------------------------------- agent
@dataclass
class SlateQConfig:
    """Hyperparameters of :class:`SlateQAgent` (its constructor takes them as keywords)."""

    gamma: float = 0.9
    n_step: int = 1
    exposure_value: bool = False
    reward: str | Mapping | None = None
    slate_optimizer: str = "exact"
    epsilon: float = 0.1
    hidden: int = 64
    learning_rate: float = 1e-3
    batch_size: int = 256
    buffer_size: int = 50_000
    learning_starts: int = 256
    gradient_steps: int = 1
    tau: float = 0.01
    device: str = "cpu"


class SlateQAgent(Recommender):
    """SlateQ (see the module docstring), batched, on any torch device.

    Args:
        gamma: discount per step (sessions of an episode follow each other, so with
            ``gamma`` close to 1 the agent values users' coming back).
        n_step: steps of observed rewards in the TD target before bootstrapping (1 is the
            paper's one-step target). Longer targets carry consequences that the
            observation does not show — the user's mindset — back to the slate that caused them.
        exposure_value: add the slate-level term :math:`\\frac1K\\sum_{i \\in A} W(s, i)` to
            :math:`Q(s, A)` (see the module docstring).
        reward: what the agent maximises, whatever the env pays: one signal's name
            (``"clicks"``, ``"watch_time"``, ``"likes"``, ``"retention"``, ``"churn"``, ``"compliance"``)
            or a mapping of weights such as ``{"watch_time": 1, "retention": 5}``; ``None``
            uses the env's own weights. Slate-level signals are read from the env's
            ``info["reward_<signal>"]``.
        slate_optimizer: ``"exact"`` or ``"top_k"``.
        epsilon: probability of a uniformly random slate per user (exploration). Set it to
            0 to evaluate the greedy policy.
        hidden, learning_rate, batch_size, buffer_size, learning_starts, gradient_steps,
            tau: network width, Adam step, minibatch, replay size, transitions before the
            first update, updates per :meth:`update` call, Polyak rate of the target network.
        device: ``"cpu"`` (default), ``"cuda"``, or ``"auto"`` (CUDA when available).
    """

    name = "slateq"
    learns = True

    def __init__(self, name: str | None = None, **config):
        self.config = SlateQConfig(**config)
        if name is not None:
            self.name = name
        c = self.config
        if not 0.0 <= c.gamma < 1.0:
            raise ValueError(f"gamma={c.gamma}; need 0 <= gamma < 1")
        if c.n_step < 1:
            raise ValueError(f"n_step={c.n_step}; need at least 1")
        if not 0.0 <= c.epsilon <= 1.0:
            raise ValueError(f"epsilon={c.epsilon}; need a probability")
        if c.slate_optimizer not in ("exact", "top_k"):
            raise ValueError(f"slate_optimizer={c.slate_optimizer!r}; choose 'exact' or 'top_k'")
        self.reward_weights = None if c.reward is None else reward_weights(c.reward)
        self.epsilon = c.epsilon
        self.device = resolve_device(c.device)

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        c = self.config
        if c.reward is None:  # the env's own reward
            paid = getattr(getattr(env.unwrapped, "world", None), "reward_weights", None)
            if paid is None:
                raise ValueError(f"{type(env.unwrapped).__name__} does not say what it pays; give reward= explicitly")
            self.reward_weights = reward_weights(paid.as_dict())
        self.featurizer = CandidateFeaturizer(self.catalog, self.device)
        torch_seed = int(self.rng.integers(2**62))
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(torch_seed)
            self.networks = SlateQNetworks(self.featurizer.item_dim, self.featurizer.user_dim, c.hidden,
                                           c.exposure_value).to(self.device)
        self.target = copy.deepcopy(self.networks).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.networks.parameters(), lr=c.learning_rate)
        self.generator = torch.Generator(self.device).manual_seed(torch_seed)
        self.buffer = ReplayBuffer(c.buffer_size, self.device)
        self._last_row: torch.Tensor | None = None  # per user slot: its latest buffer row, or -1
        self.losses: dict[str, float] = {}

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def evaluate(self, obs: Mapping[str, torch.Tensor]):
        """``v, q`` ``[B, C]``, ``v_null, q_null`` ``[B]`` and ``w`` ``[B, C]`` (``None`` without
        exposure values) for tensor observations."""
        return self._heads(*self.featurizer(obs), self.networks)

    def _heads(self, item: torch.Tensor, user: torch.Tensor, networks: SlateQNetworks):
        g, g_null = self.networks.choice_logits(item, user)
        q, q_null = networks.values(item, user)
        # Choice scores relative to the null choice's keep exp() in range.
        v = torch.exp((g - g_null[:, None]).clamp(max=30.0))
        return v, q, torch.ones_like(g_null), q_null, networks.exposure_values(item, user)

    def greedy(self, obs: Observation) -> np.ndarray:
        """The slates that maximise the estimated :math:`Q(s, A)` ``[B, K]``."""
        cached_ids, cached = getattr(self, "_greedy_cache", (None, None))
        if cached_ids is obs["candidate_ids"]:  # propensities() right after act() on the same obs
            return cached.copy()
        v, q, v_null, q_null, w = self.evaluate(self.featurizer.tensors(obs))
        slates = optimize_slate(v, q, v_null, q_null, self.slate_size, self.config.slate_optimizer, w).cpu().numpy()
        self._greedy_cache = (obs["candidate_ids"], slates.copy())
        return slates

    def score(self, obs: Observation) -> np.ndarray:
        """Each candidate's gain ``[B, C]``: :math:`v_i \\bar Q_i`, the top-K heuristic's ranking
        score, plus :math:`W_i D / K` with exposure values (:math:`D` the slate's expected
        choice denominator), which puts both terms on the scale of :func:`slate_value`."""
        v, q, v_null, _, w = self.evaluate(self.featurizer.tensors(obs))
        gain = v * q if w is None else v * q + w * (v_null[:, None] + self.slate_size * v.mean(1, keepdim=True)) / self.slate_size
        return gain.cpu().numpy()

    def act(self, obs: Observation) -> np.ndarray:
        slates = self.greedy(obs)
        if self.epsilon > 0:
            batch = slates.shape[0]
            explore = self.rng.random(batch) < self.epsilon
            if explore.any():
                random = np.argsort(self.rng.random((int(explore.sum()), self.num_candidates)), 1)
                slates[explore] = random[:, : self.slate_size]
        return slates

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        """Epsilon-greedy: :math:`(1-\\epsilon)[A = A^*] + \\epsilon\\,P_\\text{uniform}(A)`."""
        greedy = self.greedy(obs)
        C, K, eps = self.num_candidates, action.shape[1], self.epsilon
        uniform_prefix = np.array([1.0 / perm(C, k + 1) for k in range(K)])
        same_prefix = np.cumprod(greedy == action, axis=1).astype(bool)
        return {
            "slate": (1 - eps) * same_prefix[:, -1] + eps * uniform_prefix[-1],
            "position": (1 - eps) * (greedy == action) + eps / C,
            "cascade": (1 - eps) * same_prefix + eps * uniform_prefix[None, :],
        }

    # ---------------------------------------------------------------- learning
    def item_rewards(self, feedback: Feedback) -> tuple[np.ndarray, np.ndarray]:
        """Reward of each shown item if chosen ``[B, K]`` and the slate-level reward ``[B]``."""
        w, info = self.reward_weights, feedback.info
        clicked = np.asarray(feedback.clicked, dtype=np.float64)
        item = (w["clicks"] + w["watch_time"] * np.asarray(feedback.watch_fraction)
                + w["likes"] * np.asarray(feedback.liked)) * clicked
        shared = np.zeros(clicked.shape[0])
        for name in ("retention", "churn", "compliance"):
            weight = w[name]
            if weight:
                if f"reward_{name}" not in info:
                    raise KeyError(f"the reward weighs {name!r}, but the env's info has no 'reward_{name}'")
                shared = shared + weight * np.asarray(info[f"reward_{name}"], dtype=np.float64)
        return item.astype(np.float32), shared.astype(np.float32)

    def update(self, feedback: Feedback) -> None:
        valid = np.asarray(feedback.valid, dtype=bool)
        batch = len(valid)
        if self._last_row is None or len(self._last_row) != batch:
            self._last_row = torch.full((batch,), -1, dtype=torch.int64, device=self.device)
        rows = np.flatnonzero(valid)
        if len(rows) == 0:
            return
        item_reward, shared_reward = self.item_rewards(feedback)
        obs = self.featurizer.tensors({k: np.asarray(v)[rows] for k, v in feedback.obs.items() if k in OBS_FIELDS})
        next_obs = self.featurizer.tensors({k: np.asarray(v)[rows] for k, v in feedback.next_obs.items()
                                            if k in OBS_FIELDS})
        transition = {**{f"obs.{k}": v for k, v in obs.items()}, **{f"next.{k}": v for k, v in next_obs.items()}}
        as_tensor = lambda x, dtype: torch.as_tensor(np.asarray(x)[rows], dtype=dtype, device=self.device)  # noqa: E731
        transition.update(
            action=as_tensor(feedback.action, torch.int64),
            clicked=as_tensor(feedback.clicked, torch.bool),
            item_reward=as_tensor(item_reward, torch.float32),
            shared_reward=as_tensor(shared_reward, torch.float32),
            step_reward=as_tensor(item_reward.sum(1) + shared_reward, torch.float32),
            terminal=as_tensor(feedback.terminated, torch.bool),
        )
        index = self.buffer.add(transition)
        slots = torch.as_tensor(rows, device=self.device)
        previous = self._last_row[slots]
        linked = previous >= 0
        self.buffer.link(previous[linked], index[linked])
        ended = torch.as_tensor(np.asarray(feedback.terminated)[rows] | np.asarray(feedback.truncated)[rows],
                                device=self.device)
        self._last_row[slots] = torch.where(ended, -1, index)
        if self.buffer.size >= max(self.config.learning_starts, 1):
            for _ in range(self.config.gradient_steps):
                self.train_step(self.buffer.sample(self.config.batch_size, self.generator))

    def n_step_returns(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows ``index``: the discounted rewards of the up to ``n_step - 1`` later steps of
        the same episode, the discount of the bootstrap, and the row to bootstrap from (whose
        ``next`` observation is the state reached)."""
        gamma, data = self.config.gamma, self.buffer.data
        later = torch.zeros(len(index), device=self.device)
        discount = torch.full((len(index),), gamma, device=self.device)
        current = index
        going = ~data["terminal"][index]
        for _ in range(self.config.n_step - 1):
            successor = data["successor"][current]
            going = going & (successor >= 0)
            step_to = torch.where(going, successor, current)
            later = later + torch.where(going, discount * data["step_reward"][step_to], 0.0)
            discount = torch.where(going, discount * gamma, discount)
            current = step_to
            going = going & ~data["terminal"][current]
        bootstrap = discount * (~data["terminal"][current]).float()
        return later, bootstrap, current

    def train_step(self, index: torch.Tensor) -> dict[str, float]:
        """One gradient step of the choice model and of :math:`\\bar Q` on the buffer rows ``index``."""
        c = self.config
        batch = self.buffer.rows(index)
        obs = {k: batch[f"obs.{k}"] for k in OBS_FIELDS}
        action, clicked = batch["action"], batch["clicked"]
        any_click = clicked.any(1)

        with torch.no_grad():
            later, bootstrap, last = self.n_step_returns(index)
            next_obs = {k: self.buffer.data[f"next.{k}"].index_select(0, last) for k in OBS_FIELDS}
            next_item, next_user = self.featurizer(next_obs)
            v, q_next, v_null, q_null_next, w_next = self._heads(next_item, next_user, self.networks)
            best = optimize_slate(v, q_next, v_null, q_null_next, self.slate_size, c.slate_optimizer, w_next)
            _, q_target, _, q_null_target, w_target = self._heads(next_item, next_user, self.target)
            next_value = slate_value(v.gather(1, best), q_target.gather(1, best), v_null, q_null_target,
                                     None if w_target is None else w_target.gather(1, best))
            future = later + bootstrap * next_value
            item_target = batch["item_reward"] + (batch["shared_reward"] + future)[:, None]
            null_target = batch["shared_reward"] + future

        item, user = self.featurizer(obs)
        item = item.gather(1, action[:, :, None].expand(-1, -1, item.shape[-1]))  # the shown slate [n, K, F]
        g, g_null = self.networks.choice_logits(item, user)
        log_p = torch.log_softmax(torch.cat([g, g_null[:, None]], 1), 1)
        events = torch.cat([clicked.float(), (~any_click).float()[:, None]], 1)
        choice_loss = -(events * log_p).sum() / events.sum()

        # Each choice (a clicked item, or no click) is one sample of the slate's value.
        q, q_null = self.networks.values(item, user)
        w = self.networks.exposure_values(item, user)
        exposure = torch.zeros_like(q_null) if w is None else w.mean(1)
        item_error = ((q + exposure[:, None] - item_target) ** 2 * clicked.float()).sum()
        null_error = ((q_null + exposure - null_target) ** 2 * (~any_click).float()).sum()
        value_loss = (item_error + null_error) / events.sum()

        self._greedy_cache = (None, None)
        self.optimizer.zero_grad()
        (choice_loss + value_loss).backward()
        nn.utils.clip_grad_norm_(self.networks.parameters(), 10.0)
        self.optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.networks.parameters()):
                target.lerp_(online, c.tau)
        self.losses = {"choice": choice_loss.item(), "value": value_loss.item()}
        return self.losses


def reward_weights(spec: str | Mapping) -> dict[str, float]:
    """Weights of every signal of :data:`SIGNALS` from one signal's name or a mapping."""
    if isinstance(spec, str):
        spec = {spec: 1.0}
    unknown = sorted(set(spec) - set(SIGNALS))
    if unknown:
        raise ValueError(f"reward names unknown signals {unknown}; known signals: {list(SIGNALS)}")
    return {name: float(spec.get(name, 0.0)) for name in SIGNALS}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is taken as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} but CUDA is not available; use device='cpu' or 'auto'")
    return device
