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

Both give propensities (:meth:`propensities`: whole slate, per-position marginals,
prefixes) and the per-position marginal distribution over all candidates
(:meth:`action_distribution`, ``[B, C, K]``, the ``action_dist`` layout of
:mod:`recoworld.ope`), and the distribution of each position's item given the items above
it (:meth:`next_item_distribution`, ``[B, K, C]``, what cascade DR's ``v_hat`` averages over),
all exact but :class:`SoftmaxPolicy`'s marginals when there are many candidates.
Plackett-Luce marginals below the top position have no closed form; :class:`SoftmaxPolicy`
sums over every ordered prefix of ``K - 1`` candidates when there are at most
``max_prefixes`` of them (``10 x 9 = 90`` for ``C = 10, K = 3``), and otherwise estimates
them from ``propensity_samples`` seeded draws, Rao-Blackwellised
(:func:`rao_blackwell_marginals`, :func:`rao_blackwell_positions`): positive for every
candidate, of less variance than the share of draws (which left shown items at 0), and
never below the exact prefix probability of a logged item; the top position's marginal,
slate and prefix probabilities are always exact.
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
            position marginals (``C!/(C-K+1)!``); beyond it they are estimated from
            ``propensity_samples`` draws (:func:`rao_blackwell_marginals`).
        propensity_samples: seeded draws behind estimated marginals; :meth:`propensities`
            estimates the logged items' from the same draws but by the exact prefix
            probability and the rest (:func:`rao_blackwell_positions`), so they differ from
            :meth:`action_distribution`'s (scaled per position) by sampling error and that
            scaling's bias of order ``1 / propensity_samples``.

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
        z = self.logits(obs)
        cascade = np.exp(np.cumsum(_sequential_log_probabilities(z, action), axis=1))
        if self.estimates_marginals(z):
            position = rao_blackwell_positions(z, self.propensity_draws(obs), action, cascade)
        else:
            position = np.take_along_axis(plackett_luce_marginals(z, self.slate_size), action[:, None, :], 1)[:, 0, :]
        return {"slate": cascade[:, -1].copy(), "position": position, "cascade": cascade}

    def next_item_distribution(self, obs: Observation, action: np.ndarray) -> np.ndarray:
        """``[B, K, C]``: probability that position ``k`` shows candidate ``c`` given that
        positions ``0..k-1`` show ``action[:, :k]``: a softmax over the candidates not yet placed."""
        action = np.asarray(action)
        if self.temperature == 0:
            return self.greedy_next_item(obs, action)
        return plackett_luce_next_item(self.logits(obs), action)

    def action_distribution(self, obs: Observation) -> np.ndarray:
        """``[B, C, K]``: probability that candidate ``c`` is shown at position ``k``."""
        K = self.slate_size
        if self.temperature == 0:
            return self.greedy_distribution(obs)
        z = self.logits(obs)
        if self.estimates_marginals(z):
            return rao_blackwell_marginals(z, self.propensity_draws(obs))
        return plackett_luce_marginals(z, K)

    def estimates_marginals(self, logits: np.ndarray) -> bool:
        """Whether the position marginals are estimated: more than ``max_prefixes`` to sum over."""
        return perm(logits.shape[1], self.slate_size - 1) > self.max_prefixes

    def propensity_draws(self, obs: Observation) -> np.ndarray:
        """The ``propensity_samples`` seeded slates ``[n, B, K]`` behind estimated marginals:
        the same at every call (:func:`~recoworld.agents.sampling.propensity_seed`)."""
        return self.draw_slates(obs, np.random.default_rng(self._propensity_seed), self.propensity_samples)


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


def plackett_luce_next_item(logits: np.ndarray, action: np.ndarray) -> np.ndarray:
    """``[B, K, C]``: Plackett-Luce probability over ``logits`` ``[B, C]`` that position ``k``
    takes candidate ``c`` given ``action[:, :k]``: a softmax over the candidates not yet placed."""
    masked = np.where(_placed(action, logits.shape[1]), -np.inf, logits[:, None, :])
    return np.exp(masked - _logsumexp(masked)[..., None])


def rao_blackwell_marginals(logits: np.ndarray, draws: np.ndarray) -> np.ndarray:
    r"""Estimated ``[B, C, K]`` position marginals of Plackett-Luce over ``logits`` ``[B, C]``
    from ``n`` of its slates ``draws`` ``[n, B, K]``.

    Each draw, less candidate ``c``, is a Plackett-Luce draw of the other candidates (the
    Gumbel-top-``K`` keys of the others do not depend on ``c``'s), and given the others'
    order :math:`o` candidate ``c`` lands at position ``k`` with probability

    .. math:: P(c \text{ at } k \mid o) = \frac{w_c}{D_k} \prod_{i<k} \Bigl(1 - \frac{w_c}{D_i}\Bigr),
       \qquad D_i = w_c + \sum_{c' \notin o_{<i} \cup \{c\}} w_{c'},\quad w = e^{\text{logits}}

    (``c`` inserted into the others' order). Its mean over the draws is the share of draws
    with ``c`` at ``k`` conditioned on the others' order (Rao-Blackwell): unbiased, of less
    variance than counting draws, and positive for every candidate, which counting is not
    (a shown item that no draw put at its position had probability 0). Each position's
    means are then scaled to sum to 1 over the candidates (a ratio of means: consistent, with
    a bias of order ``1 / n``); the top position's is the exact softmax.
    """
    B, C = logits.shape
    every = np.broadcast_to(np.arange(C), logits.shape)
    dist = np.zeros((B, draws.shape[2], C))
    for chunk in _chunks(draws, C):
        m = len(chunk)
        inserted = _insertion_probabilities(np.tile(logits, (m, 1)), chunk.reshape(m * B, -1), np.tile(every, (m, 1)))
        dist += inserted.reshape(m, B, -1, C).sum(0)
    dist /= dist.sum(-1, keepdims=True)
    dist[:, 0, :] = plackett_luce_next_item(logits, draws[0])[:, 0, :]  # exact, as the cascade's first position
    return np.swapaxes(dist, 1, 2)


def rao_blackwell_positions(logits: np.ndarray, draws: np.ndarray, action: np.ndarray,
                            cascade: np.ndarray) -> np.ndarray:
    """``[B, K]``: estimated probability that position ``k`` shows ``action[:, k]``, given the
    exact ``cascade`` (prefix) probabilities of ``action``.

    ``P(a_k at k) = P(a_{<=k} as shown) + P(a_k at k after another prefix)``: the first term
    is ``cascade[:, k]``, the second the mean over the draws of
    :func:`rao_blackwell_marginals`' ``P(a_k at k | o)`` where the others' first ``k``
    (``o_{<k}``) are not ``a_{<k}``. So the estimate is never below the prefix's
    probability, as the exact one is not (nor, then, below the whole slate's), and the top
    position's is exact.
    """
    B, K = action.shape
    k = np.arange(K)
    above = k[None, :] < k[:, None]                                             # [k, j]: j < k
    other = np.zeros((B, K))
    for chunk in _chunks(draws, logits.shape[1]):
        m = len(chunk)
        slates, logged = chunk.reshape(m * B, K), np.tile(action, (m, 1))
        rows = np.arange(m * B)[:, None]
        rank = np.full((m * B, logits.shape[1]), K)
        rank[rows, slates] = k
        # o_{<k}, the first k of the others: the draw's, past a_k's own place where it is among them
        place = np.minimum(k + (k >= rank[rows, logged][..., None]), K - 1)    # [mB, k, j]
        same_prefix = ((slates[rows[..., None], place] == logged[:, None, :]) | ~above).all(-1)
        inserted = _insertion_probabilities(np.tile(logits, (m, 1)), slates, logged)[:, k, k]  # P(a_k at k | o)
        other += np.where(same_prefix, 0.0, inserted).reshape(m, B, K).sum(0)
    return cascade + other / len(draws)


def _chunks(draws: np.ndarray, num_candidates: int, size: int = 1 << 18):
    """``draws`` ``[n, B, K]`` in runs of draws of about ``size`` ``[B, K, C]`` values in all:
    few numpy calls for small batches, bounded memory for large ones."""
    n, B, K = draws.shape
    step = max(1, size // (B * (K + 1) * num_candidates))
    for start in range(0, n, step):
        yield draws[start:start + step]


def _insertion_probabilities(logits: np.ndarray, slates: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``[B, K, M]``: :func:`rao_blackwell_marginals`' ``P(c at k | o)`` of the candidates
    ``items`` ``[B, M]`` for one draw ``slates`` ``[B, K]``, in logs: the others' mass at
    position ``i`` is the unplaced mass less ``c``'s while ``c`` is unplaced (for the largest,
    the sum of the rest, which the subtraction would round to 0), and the mass left after
    ``i + 1`` draws once ``c`` is placed (the others then fill ``c``'s place)."""
    B, C = logits.shape
    K = slates.shape[1]
    rows = np.arange(B)[:, None]
    shown = np.zeros((B, K + 1, C), dtype=bool)
    shown[rows, np.arange(1, K + 1), slates] = True
    left = np.where(np.logical_or.accumulate(shown, axis=1), -np.inf, logits[:, None, :])  # [B, K+1, C] unplaced
    largest = left.argmax(-1)[..., None]                                        # [B, K+1, 1]
    top = np.take_along_axis(left, largest, -1)
    top = np.where(np.isfinite(top), top, 0.0)  # every candidate placed (K = C): no mass left
    weight = np.exp(left - top)
    with np.errstate(divide="ignore"):  # no mass left, or none but the largest's
        mass = top + np.log(weight.sum(-1, keepdims=True))                      # log mass of the unplaced
        np.put_along_axis(weight, largest, 0.0, -1)
        rest = top + np.log(weight.sum(-1, keepdims=True))
    z = np.take_along_axis(logits, items, 1)[:, None, :]                        # [B, 1, M]
    # below half the mass for all but the largest: log1p stays exact (the clip only keeps
    # placed candidates, whose values go unused, from warnings)
    less_c = np.where(items[:, None, :] == largest, rest, mass + np.log1p(-np.exp(np.minimum(z - mass, -np.log(2.0)))))
    rank = np.full((B, C), K)
    rank[rows, slates] = np.arange(K)
    before = np.arange(K)[None, :, None] <= np.take_along_axis(rank, items, 1)[:, None, :]
    others = np.where(before, less_c[:, :K], mass[:, 1:])                      # [B, K, M]
    total = np.logaddexp(others, z)                                             # log D_i
    survive = np.cumsum(others - total, axis=1)
    survive = np.concatenate([np.zeros((B, 1, items.shape[1])), survive[:, :-1]], axis=1)  # sum over i < k
    return np.exp(survive + z - total)


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


