r"""Non-contextual bandits over items: ε-greedy, UCB1 and Bernoulli Thompson sampling.

Every catalog item is an arm with an unknown click probability :math:`\mu_i`, the same for
all users. For each request the agent ranks the current candidates by a per-item index
and shows the top ``K``. Each item keeps two numbers, updated from a whole batch at once:

.. math::

    n_i \leftarrow n_i + \#\{\text{observed impressions of } i\},\qquad
    s_i \leftarrow s_i + \#\{\text{observed clicks on } i\},\qquad
    \hat\mu_i = s_i / n_i,

where the observed impressions are chosen by :mod:`recoworld.agents.examination`
(default ``"all"``: every shown position; ``"last_click"`` counts only positions the user
evidently read).

**Popularity prior** (``prior_impressions`` :math:`m > 0`; the papers' flat start is
:math:`m = 0`, the default). A catalog of 1,682 items met over a few hundred steps leaves
most arms with a handful of impressions, and a flat start spends them rediscovering what
the catalog's public popularity already says. With a prior, every item's rate is shrunk
towards a line in its standardised log-popularity :math:`z_i`, fitted to all items at once
(empirical Bayes, Robbins 1956; Efron & Morris 1975):

.. math::

    \hat\mu_i = \frac{s_i + m\,\pi_i}{n_i + m},\qquad \pi_i = a + b\,z_i,\qquad
    (a, b) = \arg\min \textstyle\sum_i n_i\,(s_i/n_i - a - b\,z_i)^2,

i.e. :math:`m` pseudo-impressions at the rate that items of that popularity earn. Before
the first observation the line cannot be fitted and the prior is only an order: the agent
shows the most popular candidates. Where the best *global* ranking earns little more
than popularity does, the prior is what lets an item bandit collect that margin instead of
paying more than it for exploration (see ``conf/agent/epsilon_greedy.yaml`` and its
siblings, and ``benchmarks/RESULTS.md`` for the margins measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from recoworld.agents.base import Recommender, deterministic, top_k
from recoworld.agents.baselines import RandomAgent
from recoworld.agents.examination import check_rule, impressions
from recoworld.agents.sampling import (
    MAX_SAMPLES,
    MIN_MATCHES,
    PosteriorSampler,
    beta_scores,
    beta_top_one_propensity,
)

from recoworld.config_checks import NON_NEGATIVE, POSITIVE, UNIT
from recoworld.types import CANDIDATE_IDS, Feedback, Observation


def popularity_design(catalog) -> np.ndarray:
    """``[N, 2]`` rows :math:`[1, z_i]`, :math:`z_i` the item's standardised log-popularity."""
    log_popularity = catalog.log_popularity.cpu().numpy().astype(np.float64)
    spread = log_popularity.std()
    z = (log_popularity - log_popularity.mean()) / (spread if spread > 0 else 1.0)
    return np.stack([np.ones_like(z), z], axis=1)


def popularity_line(design: np.ndarray, pulls: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    r"""The prior rates :math:`\pi_i = a + b z_i`: the line of least squares through the items'
    observed rates, each weighted by its impressions (``design`` from :func:`popularity_design`)."""
    # The tiny ridge keeps the 2x2 system solvable while every impression is of one item.
    gram = design.T @ (pulls[:, None] * design) + 1e-9 * np.eye(2)
    return np.clip(design @ np.linalg.solve(gram, design.T @ clicks), 1e-6, 1.0 - 1e-6)


@dataclass(eq=False)
class ItemBandit(Recommender):
    """Shared state of the item bandits: impressions ``pulls`` and ``clicks`` per item.

    Args:
        examination: which positions count as observed (``"all"`` or ``"last_click"``).
        prior_impressions: :math:`m`, the weight of the popularity prior in impressions
            (0: no prior, every item starts unknown; see the module docstring).
    """

    examination: str = "all"
    prior_impressions: float = 0.0
    learns = True
    RANGES = {"prior_impressions": NON_NEGATIVE}

    def __post_init__(self):
        super().__post_init__()
        check_rule(self.examination)

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self.pulls = np.zeros(self.catalog.n_items)
        self.clicks = np.zeros(self.catalog.n_items)
        self._popularity_design = popularity_design(self.catalog)

    @property
    def cold(self) -> bool:
        """True while an agent with a prior has observed nothing: it ranks by popularity alone."""
        return self.prior_impressions > 0 and not self.pulls.any()

    def popularity_order(self) -> np.ndarray:
        """Standardised log-popularity: the prior's order, all a cold agent knows."""
        return self._popularity_design[:, 1]

    def prior_rates(self) -> np.ndarray:
        """The prior's rate of every item, fitted to the counts so far (:func:`popularity_line`)."""
        return popularity_line(self._popularity_design, self.pulls, self.clicks)

    def rates(self) -> np.ndarray:
        r"""Posterior mean click rates :math:`\hat\mu_i = (s_i + m\pi_i)/(n_i + m)` (needs ``m > 0``)."""
        m = self.prior_impressions
        return (self.clicks + m * self.prior_rates()) / (self.pulls + m)

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
            every item is tried once before it can be ignored); unused with a prior.

    Propensities are exact: with :math:`g` the greedy slate and :math:`U` RandomAgent's
    probabilities, :math:`P(a) = (1-\varepsilon)\,[a = g] + \varepsilon\,U(a)`, for the
    whole slate, each position and each prefix alike.
    """

    epsilon: float = 0.1
    initial_value: float = 1.0
    name = "epsilon_greedy"
    RANGES = {"epsilon": UNIT}

    def estimates(self) -> np.ndarray:
        """Each item's estimated click rate (with a prior: :meth:`rates`, or the prior's
        order while :attr:`cold`)."""
        if self.cold:
            return self.popularity_order()
        if self.prior_impressions > 0:
            return self.rates()
        seen = self.pulls > 0
        return np.where(seen, self.clicks / np.maximum(self.pulls, 1.0), self.initial_value)

    def act(self, obs: Observation) -> np.ndarray:
        greedy = top_k(self.estimates()[obs[CANDIDATE_IDS]], self.slate_size)
        explore = self.rng.random(len(greedy)) < self.epsilon
        uniform = RandomAgent.act(self, obs)
        return np.where(explore[:, None], uniform, greedy)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        greedy = top_k(self.estimates()[obs[CANDIDATE_IDS]], self.slate_size)
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
    With the popularity prior the index is :math:`\hat\mu_i + c\sqrt{2\ln n / (n_i + m)}`
    (the prior counts as :math:`m` impressions), and no item is infinite.

    Args:
        c: scale of the confidence width. The paper's ``c = 1``, a width sized for rewards
            spread over [0, 1], keeps its bound: regret grows as :math:`\log T`. Click rates
            far below 1 are resolved long before that width shrinks, hence the smaller
            default, which earns more early (``benchmarks/RESULTS.md`` compares them; on
            ``RecoWorld/Slate-v0`` ``c = 1`` barely beats random over 200 steps) but gives up
            the bound: an arm whose estimate fell :math:`\delta` below the leader's is tried
            again only once :math:`\ln n > n_i \delta^2 / (2c^2)`, after some 22,000
            impressions at ``c = 0.1`` for :math:`\delta = 0.2, n_i = 5`, so regret grows
            linearly until then, and some runs settle on a worse item. Give ``c = 1`` for
            long runs on rates far from 0.
    """

    c: float = 0.1
    name = "ucb1"
    RANGES = {"c": NON_NEGATIVE}

    def indices(self) -> np.ndarray:
        n = max(self.pulls.sum(), 1.0)
        if self.cold:
            return self.popularity_order()
        if self.prior_impressions > 0:
            return self.rates() + self.c * np.sqrt(2.0 * np.log(n) / (self.pulls + self.prior_impressions))
        with np.errstate(divide="ignore", invalid="ignore"):
            index = self.clicks / self.pulls + self.c * np.sqrt(2.0 * np.log(n) / self.pulls)
        return np.where(self.pulls > 0, index, np.inf)

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.indices()[obs[CANDIDATE_IDS]], self.slate_size)

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
    (in-slate Thompson sampling, see :mod:`recoworld.agents.sampling`). The popularity
    prior replaces the flat one: :math:`\alpha_0 = m\pi_i,\ \beta_0 = m(1-\pi_i)`.
    ``posterior_scale`` :math:`v < 1` tempers the draws, as
    :class:`~recoworld.agents.thompson.LinearTS`'s does: both Beta parameters are divided by
    :math:`v^2`, which keeps the posterior mean and shrinks its variance about
    :math:`v^2`-fold. Where a candidate's Beta parameter is below 1 the draws race as
    logits, which float64 does not round to 0 or 1 as it does draws of tiny parameters
    (:func:`~recoworld.beta_draws.beta_scores`).

    Args:
        prior_clicks, prior_skips: :math:`\alpha_0, \beta_0` of the flat Beta prior (used
            when ``prior_impressions`` is 0).
        posterior_scale: :math:`v`, the scale of the draws around the posterior mean.
        per_slot: one posterior draw per position instead of one per slate.
        propensity_samples: Monte-Carlo replays behind :meth:`propensities` (seeded; 0 skips
            them; see :mod:`recoworld.agents.sampling` for their error and cost), and all the
            replays behind :meth:`evaluation_propensities`. A single
            slot's propensity is exact instead (a one-dimensional integral).
        propensity_matches, max_propensity_samples: the second phase of the replays
            (geometric resampling), as for :class:`~recoworld.agents.thompson.LinearTS`.
    """

    prior_clicks: float = 1.0
    prior_skips: float = 1.0
    posterior_scale: float = 1.0
    per_slot: bool = False
    propensity_samples: int = 100
    propensity_matches: int = MIN_MATCHES
    max_propensity_samples: int = MAX_SAMPLES
    name = "bernoulli_ts"
    RANGES = {"prior_clicks": POSITIVE, "prior_skips": POSITIVE, "posterior_scale": POSITIVE,
              "propensity_samples": NON_NEGATIVE}

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Beta parameters ``(alpha, beta)`` of every item's click probability (tempered by
        ``posterior_scale``)."""
        if self.prior_impressions > 0:
            prior = self.prior_impressions * self.prior_rates()
            alpha, beta = prior + self.clicks, self.prior_impressions - prior + self.pulls - self.clicks
        else:
            alpha, beta = self.prior_clicks + self.clicks, self.prior_skips + self.pulls - self.clicks
        return alpha / self.posterior_scale**2, beta / self.posterior_scale**2

    def score_sampler(self, obs: Observation, rng: np.random.Generator, n: int):
        if self.cold:
            order = self.popularity_order()[obs[CANDIDATE_IDS]]
            return lambda: np.broadcast_to(order, (n, *order.shape))
        alpha, beta = (p[obs[CANDIDATE_IDS]] for p in self.posterior())

        def draw() -> np.ndarray:
            return beta_scores(rng, alpha, beta, (n, *alpha.shape))

        return draw

    def estimate_propensities(self, obs: Observation, action: np.ndarray, side: str) -> dict[str, np.ndarray] | None:
        """Exact for a single slot (:func:`~recoworld.agents.sampling.beta_top_one_propensity`;
        ``slate_se`` 0) or while :attr:`cold` (the popularity order), for either side of the
        weight; Monte Carlo otherwise."""
        action = np.asarray(action)
        if self.propensity_samples <= 0:
            return None
        if self.cold:
            return deterministic(action)
        if action.shape[1] > 1:
            return super().estimate_propensities(obs, action, side)
        alpha, beta = (p[obs[CANDIDATE_IDS]] for p in self.posterior())
        slate = beta_top_one_propensity(alpha, beta, action[:, 0])
        return {"slate": slate, "position": slate[:, None].copy(), "cascade": slate[:, None].copy(),
                "slate_se": np.zeros(len(slate)), "draws": np.zeros(len(slate), dtype=np.int64)}

