r"""Non-contextual bandits over items: ε-greedy, UCB1 and Bernoulli Thompson sampling.

Every catalog item is an arm with an unknown click probability :math:`\mu_i`, the same for
all users. For each request the agent ranks the current candidates by a per-item index
and shows the top ``K``. Each item keeps two numbers, updated from a whole batch at once:

.. math::

    n_i \leftarrow n_i + \#\{\text{observed impressions of } i\},\qquad
    s_i \leftarrow s_i + \#\{\text{observed clicks on } i\},\qquad
    \hat\mu_i = s_i / n_i,

where the observed impressions are chosen by :mod:`recoworld.agents.examination`
(default ``"all"``: every shown position, the rule under which these agents learn best in
RecoWorld; ``"last_click"`` counts only positions the user evidently read).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.agents.base import Feedback, Observation, Recommender, deterministic, top_k
from recoworld.agents.baselines import RandomAgent
from recoworld.agents.examination import check_rule, impressions
from recoworld.agents.sampling import PosteriorSampler


@dataclass(eq=False)
class ItemBandit(Recommender):
    """Shared state of the item bandits: impressions ``pulls`` and ``clicks`` per item.

    Args:
        examination: which positions count as observed (``"all"`` or ``"last_click"``).
    """

    examination: str = "all"
    learns = True

    def __post_init__(self):
        check_rule(self.examination)

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self.pulls = np.zeros(self.catalog.n_items)
        self.clicks = np.zeros(self.catalog.n_items)

    def update(self, feedback: Feedback) -> None:
        rows, positions, clicks = impressions(feedback, self.examination)
        items = np.asarray(feedback.slate)[rows, positions]
        np.add.at(self.pulls, items, 1.0)
        np.add.at(self.clicks, items, clicks)


@dataclass(eq=False)
class EpsilonGreedy(ItemBandit):
    r"""With probability :math:`1-\varepsilon` the top ``K`` candidates by :math:`\hat\mu_i`;
    with probability :math:`\varepsilon` (per request) a uniformly random ranked slate,
    exactly as :class:`~recoworld.agents.baselines.RandomAgent` draws it (Sutton & Barto
    2018, §2.2, applied to whole slates).

    Args:
        epsilon: exploration probability per request.
        initial_value: :math:`\hat\mu_i` of an item never observed (1.0 is optimistic:
            every item is tried once before it can be ignored).

    Propensities are exact: with :math:`g` the greedy slate and :math:`U` RandomAgent's
    probabilities, :math:`P(a) = (1-\varepsilon)\,[a = g] + \varepsilon\,U(a)`, for the
    whole slate, each position and each prefix alike.
    """

    epsilon: float = 0.1
    initial_value: float = 1.0
    name = "epsilon_greedy"

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon={self.epsilon}; it is a probability in [0, 1]")

    def estimates(self) -> np.ndarray:
        seen = self.pulls > 0
        return np.where(seen, self.clicks / np.maximum(self.pulls, 1.0), self.initial_value)

    def act(self, obs: Observation) -> np.ndarray:
        greedy = top_k(self.estimates()[obs["candidate_ids"]], self.slate_size)
        explore = self.rng.random(len(greedy)) < self.epsilon
        uniform = RandomAgent.act(self, obs)
        return np.where(explore[:, None], uniform, greedy)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        greedy = top_k(self.estimates()[obs["candidate_ids"]], self.slate_size)
        uniform = RandomAgent.propensities(self, obs, action)
        same = greedy == action
        exploit = {"slate": same.all(1), "position": same, "cascade": np.cumprod(same, axis=1)}
        return {key: (1 - self.epsilon) * exploit[key] + self.epsilon * uniform[key] for key in uniform}


@dataclass(eq=False)
class UCB1(ItemBandit):
    r"""Ranks candidates by the upper confidence bound of Auer, Cesa-Bianchi & Fischer
    (2002), Fig. 1:

    .. math:: \hat\mu_i + c\sqrt{2\ln n / n_i},

    with :math:`n = \sum_i n_i` all observed impressions; items never observed come first.

    Args:
        c: scale of the confidence width. The paper's is ``c = 1``, a width sized for
            rewards spread over [0, 1]; click rates of 0.05-0.3 are resolved long before
            that width shrinks, and on ``RecoWorld/Slate-v0`` ``c = 1`` barely beats
            random over 200 steps while ``c = 0.1`` (the default) learns.
    """

    c: float = 0.1
    name = "ucb1"

    def indices(self) -> np.ndarray:
        n = max(self.pulls.sum(), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            index = self.clicks / self.pulls + self.c * np.sqrt(2.0 * np.log(n) / self.pulls)
        return np.where(self.pulls > 0, index, np.inf)

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.indices()[obs["candidate_ids"]], self.slate_size)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)


@dataclass(eq=False)
class BernoulliTS(PosteriorSampler, ItemBandit):
    r"""Bernoulli Thompson sampling with Beta posteriors (Thompson 1933; Chapelle & Li 2011;
    Agrawal & Goyal 2012, Alg. 1):

    .. math::

        \mu_i \mid \text{data} \sim \mathrm{Beta}(\alpha_0 + s_i,\ \beta_0 + n_i - s_i),

    a fresh draw per request (each user of a batch samples independently), then the top
    ``K`` candidates by their draws. With ``per_slot=True`` each position gets its own draw
    (in-slate Thompson sampling, see :mod:`recoworld.agents.sampling`).

    Args:
        prior_clicks, prior_skips: :math:`\alpha_0, \beta_0` of the Beta prior.
        per_slot: one posterior draw per position instead of one per slate.
        propensity_samples: Monte-Carlo replays behind :meth:`propensities` (seeded; 0 skips
            them; see :mod:`recoworld.agents.sampling` for their error and cost).
    """

    prior_clicks: float = 1.0
    prior_skips: float = 1.0
    per_slot: bool = False
    propensity_samples: int = 100
    name = "bernoulli_ts"

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Beta parameters ``(alpha, beta)`` of every item's click probability."""
        return self.prior_clicks + self.clicks, self.prior_skips + self.pulls - self.clicks

    def score_sampler(self, obs: Observation, rng: np.random.Generator, n: int):
        alpha, beta = (p[obs["candidate_ids"]] for p in self.posterior())

        def draw() -> np.ndarray:
            return rng.beta(alpha, beta, size=(n, *alpha.shape))

        return draw

