r"""Logging policies with controllable exploration, for collecting off-policy data.

Both wrap a *scorer*: an agent with ``score(obs) -> [B, C]`` (one score per candidate,
higher is better; e.g. :class:`~recoworld.agents.baselines.MostPopularAgent`,
:class:`~recoworld.agents.linear.LinUCB`, :class:`~recoworld.agents.slateq.SlateQAgent`,
:class:`~recoworld.agents.off_policy.LinearScorer`).
The scorer's greedy slate is the top ``K`` candidates by score.

- :class:`EpsilonSoft`: the greedy slate with probability :math:`1-\varepsilon`, else a
  uniformly random ranked slate, so every slate has probability at least
  :math:`\varepsilon (C-K)!/C!`.
- :class:`SoftmaxPolicy`: Plackett-Luce sampling from :math:`\mathrm{softmax}(s/\tau)`:
  position ``k`` takes candidate ``c`` among those not yet placed with probability
  :math:`e^{s_c/\tau} / \sum_{c' \notin a_{<k}} e^{s_{c'}/\tau}` (Plackett 1975; Luce 1959).
  :math:`\tau \to 0` is the greedy slate, :math:`\tau \to \infty` the uniform one.

Both give exact propensities (:meth:`propensities`: whole slate, per-position marginals,
prefixes) and the exact per-position marginal distribution over all candidates
(:meth:`action_distribution`, ``[B, C, K]``, the ``action_dist`` layout of
:mod:`recoworld.ope`), and the distribution of each position's item given the items above
it (:meth:`next_item_distribution`, ``[B, K, C]``, what cascade DR's ``v_hat`` averages over). Plackett-Luce marginals below the top position have no closed
form; :class:`SoftmaxPolicy` sums over every ordered prefix of ``K - 1`` candidates when
there are at most ``max_prefixes`` of them (``10 x 9 = 90`` for ``C = 10, K = 3``), and
otherwise estimates the marginals from ``propensity_samples`` seeded draws (standard
error ``sqrt(p(1-p)/n)``, see :mod:`recoworld.agents.sampling`); slate and prefix
probabilities are always exact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import perm

import numpy as np

from recoworld.agents.base import Recommender, ScorerWrapper, require_scorer, top_k
from recoworld.agents.baselines import RandomAgent
from recoworld.agents.sampling import propensity_seed
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, UNIT
from recoworld.types import Observation


def base_scores(base: Recommender, obs: Observation) -> np.ndarray:
    """The scorer's ``[B, C]`` scores of the current candidates, as float64."""
    return np.asarray(base.score(obs), dtype=np.float64)


@dataclass(eq=False)
class _LoggingPolicy(ScorerWrapper):
    """A logging policy built on a scoring agent ``base``."""

    base: Recommender = None
    setup_base: bool = True

    def __post_init__(self):
        super().__post_init__()
        require_scorer(self.base, type(self).__name__)

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._propensity_seed = propensity_seed(seed)

    def greedy(self, obs: Observation) -> np.ndarray:
        """The base's top ``K`` candidates, best first (``[B, K]``)."""
        return top_k(base_scores(self.base, obs), self.slate_size)

    def greedy_propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        """Probabilities of ``action`` under the greedy slate: 1 where it agrees, else 0."""
        same = self.greedy(obs) == np.asarray(action)
        return {"slate": same.all(1).astype(np.float64), "position": same.astype(np.float64),
                "cascade": np.cumprod(same, axis=1).astype(np.float64)}

    def greedy_next_item(self, obs: Observation, action: np.ndarray) -> np.ndarray:
        """``[B, K, C]`` one-hot: the greedy slate's item at each position (whatever came before)."""
        greedy = self.greedy(obs)
        B, K = greedy.shape
        dist = np.zeros((B, K, self.num_candidates))
        dist[np.arange(B)[:, None], np.arange(K), greedy] = 1.0
        return dist

    def greedy_distribution(self, obs: Observation) -> np.ndarray:
        """``[B, C, K]`` one-hot marginals of the greedy slate."""
        greedy = self.greedy(obs)
        B, K = greedy.shape
        dist = np.zeros((B, self.num_candidates, K))
        dist[np.arange(B)[:, None], greedy, np.arange(K)] = 1.0
        return dist


@dataclass(eq=False)
class EpsilonSoft(_LoggingPolicy):
    r"""The base's greedy slate with probability :math:`1-\varepsilon` per request, else a
    uniformly random ranked slate drawn as :class:`~recoworld.agents.baselines.RandomAgent`
    draws it.

    Args:
        base: the scoring agent.
        epsilon: exploration probability in ``[0, 1]``; 0 is the greedy policy, 1 uniform.

    Propensities: with :math:`g` the greedy slate and :math:`U` the uniform probabilities,
    :math:`P = (1-\varepsilon)[a = g] + \varepsilon U` for the whole slate, each position
    and each prefix alike; the marginal of candidate ``c`` at position ``k`` is
    :math:`(1-\varepsilon)[c = g_k] + \varepsilon / C`.
    """

    epsilon: float = 0.1
    name = "epsilon_soft"
    RANGES = {"epsilon": UNIT}

    def act(self, obs: Observation) -> np.ndarray:
        greedy = self.greedy(obs)
        explore = self.rng.random(len(greedy)) < self.epsilon
        return np.where(explore[:, None], RandomAgent.act(self, obs), greedy)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        exploit = self.greedy_propensities(obs, action)
        uniform = RandomAgent.propensities(self, obs, action)
        return {key: (1 - self.epsilon) * exploit[key] + self.epsilon * uniform[key] for key in uniform}

    def action_distribution(self, obs: Observation) -> np.ndarray:
        """``[B, C, K]``: probability that candidate ``c`` is shown at position ``k``."""
        return (1 - self.epsilon) * self.greedy_distribution(obs) + self.epsilon / self.num_candidates

    def next_item_distribution(self, obs: Observation, action: np.ndarray) -> np.ndarray:
        """``[B, K, C]``: probability that position ``k`` shows candidate ``c`` given that
        positions ``0..k-1`` show ``action[:, :k]`` (the ratio of the two prefix
        probabilities; 0 for candidates already placed)."""
        action = np.asarray(action)
        B, K = action.shape
        C = self.num_candidates
        greedy_prefix = self.greedy_propensities(obs, action)["cascade"]          # [B, K]
        on_greedy = np.concatenate([np.ones((B, 1)), greedy_prefix[:, :-1]], axis=1)  # prefix 0..k-1 is greedy
        uniform = np.array([1.0 / perm(C, k) for k in range(K + 1)])               # one prefix of length k
        before = (1 - self.epsilon) * on_greedy + self.epsilon * uniform[:K]
        placed = _placed(action, C)
        explore = self.epsilon * uniform[1:K + 1][None, :, None] * ~placed
        exploit = (1 - self.epsilon) * on_greedy[:, :, None] * self.greedy_next_item(obs, action)
        return (explore + exploit) / before[:, :, None]


@dataclass(eq=False)
class SoftmaxPolicy(_LoggingPolicy):
    r"""Plackett-Luce slates from the base's scores at temperature :math:`\tau` (see the
    module docstring).

    Args:
        base: the scoring agent.
        temperature: :math:`\tau \ge 0`; 0 is the greedy slate (deterministic propensities).
        max_prefixes: largest number of ordered ``K - 1`` prefixes summed over for exact
            position marginals; beyond it they are estimated from ``propensity_samples``.
        propensity_samples: seeded draws behind estimated marginals.

    Sampling uses the Gumbel-top-``K`` trick: the top ``K`` of :math:`s/\tau + G`, with
    :math:`G` i.i.d. standard Gumbel, is a Plackett-Luce draw (Yellott 1977; Kool et al.,
    "Stochastic Beams and Where to Find Them", ICML 2019).
    """

    temperature: float = 1.0
    max_prefixes: int = 10_000
    propensity_samples: int = 1000
    name = "softmax"
    RANGES = {"temperature": NON_NEGATIVE, "max_prefixes": NON_NEGATIVE, "propensity_samples": AT_LEAST_ONE}

    def logits(self, obs: Observation) -> np.ndarray:
        """``[B, C]`` scores over the temperature, shifted so that each row's maximum is 0."""
        z = base_scores(self.base, obs) / self.temperature
        return z - z.max(1, keepdims=True)

    def draw_slates(self, obs: Observation, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent slates per row, ``[n, B, K]``."""
        z = self.logits(obs)
        keys = z[None] + rng.gumbel(size=(n, *z.shape))
        return top_k(keys.reshape(-1, z.shape[1]), self.slate_size).reshape(n, z.shape[0], self.slate_size)

    def act(self, obs: Observation) -> np.ndarray:
        if self.temperature == 0:
            return self.greedy(obs)
        return self.draw_slates(obs, self.rng, 1)[0]

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        action = np.asarray(action)
        if self.temperature == 0:
            return self.greedy_propensities(obs, action)
        cascade = np.exp(np.cumsum(_sequential_log_probabilities(self.logits(obs), action), axis=1))
        marginals = self.action_distribution(obs)
        position = np.take_along_axis(marginals, action[:, None, :], 1)[:, 0, :]
        return {"slate": cascade[:, -1].copy(), "position": position, "cascade": cascade}

    def next_item_distribution(self, obs: Observation, action: np.ndarray) -> np.ndarray:
        """``[B, K, C]``: probability that position ``k`` shows candidate ``c`` given that
        positions ``0..k-1`` show ``action[:, :k]``: a softmax over the candidates not yet placed."""
        action = np.asarray(action)
        if self.temperature == 0:
            return self.greedy_next_item(obs, action)
        logits = np.where(_placed(action, self.num_candidates), -np.inf, self.logits(obs)[:, None, :])
        return np.exp(logits - _logsumexp(logits)[..., None])

    def action_distribution(self, obs: Observation) -> np.ndarray:
        """``[B, C, K]``: probability that candidate ``c`` is shown at position ``k``."""
        K = self.slate_size
        if self.temperature == 0:
            return self.greedy_distribution(obs)
        z = self.logits(obs)
        if perm(z.shape[1], K - 1) <= self.max_prefixes:
            return plackett_luce_marginals(z, K)
        draws = self.draw_slates(obs, np.random.default_rng(self._propensity_seed), self.propensity_samples)
        dist = np.zeros((z.shape[0], z.shape[1], K))
        for k in range(K):
            np.add.at(dist[:, :, k], (np.arange(z.shape[0])[None, :], draws[:, :, k]), 1.0)
        return dist / self.propensity_samples


def _sequential_log_probabilities(logits: np.ndarray, action: np.ndarray) -> np.ndarray:
    """``[B, K]``: log-probability of ``action[:, k]`` given ``action[:, :k]`` under Plackett-Luce."""
    B, K = action.shape
    rows = np.arange(B)
    remaining = logits.copy()
    out = np.empty((B, K))
    for k in range(K):
        norm = _logsumexp(remaining)
        out[:, k] = remaining[rows, action[:, k]] - norm
        remaining[rows, action[:, k]] = -np.inf
    return out


def plackett_luce_marginals(logits: np.ndarray, slate_size: int) -> np.ndarray:
    """Exact ``[B, C, K]`` position marginals of Plackett-Luce over ``logits`` ``[B, C]``.

    ``P(c at k) = sum over ordered prefixes p of length k without c of P(p) P(c | p)``,
    summed over all ``C!/(C-k)!`` prefixes at once (cost ``B x C!/(C-K+1)! x C``).
    """
    B, C = logits.shape
    dist = np.zeros((B, C, slate_size))
    prefixes = np.zeros((1, 0), dtype=np.int64)  # [P, k] ordered prefixes of candidate indices
    prefix_log_p = np.zeros((B, 1))
    for k in range(slate_size):
        masked = np.broadcast_to(logits[:, None, :], (B, len(prefixes), C)).copy()
        if k:
            masked[:, np.arange(len(prefixes))[:, None], prefixes] = -np.inf
        next_log_p = masked - _logsumexp(masked)[..., None]       # [B, P, C]
        joint = prefix_log_p[:, :, None] + next_log_p             # [B, P, C]
        dist[:, :, k] = np.exp(joint).sum(1)
        if k + 1 < slate_size:
            pairs = [(p, c) for p, prefix in enumerate(prefixes.tolist()) for c in range(C) if c not in prefix]
            parent, child = (np.array(x, dtype=np.int64) for x in zip(*pairs))
            prefixes = np.concatenate([prefixes[parent], child[:, None]], axis=1)
            prefix_log_p = joint[:, parent, child]
    return dist


def _placed(action: np.ndarray, num_candidates: int) -> np.ndarray:
    """``[B, K, C]``: candidate ``c`` is among ``action[:, :k]``."""
    B, K = action.shape
    shown = np.zeros((B, K + 1, num_candidates), dtype=bool)
    shown[np.arange(B)[:, None], np.arange(1, K + 1), action] = True
    return np.logical_or.accumulate(shown, axis=1)[:, :K]


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(-1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top + np.log(np.exp(x - top[..., None]).sum(-1))


def all_slates(num_candidates: int, slate_size: int) -> np.ndarray:
    """Every ranked slate of ``slate_size`` distinct candidates, ``[C!/(C-K)!, K]``."""
    return np.array(list(itertools.permutations(range(num_candidates), slate_size)), dtype=np.int64)


