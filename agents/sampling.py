"""How sampling agents turn posterior draws into slates, and estimate their propensities.

*Slate-wise* sampling ranks all candidates by one draw: the slate is the top-``K`` of a
single hypothesis about the user. *Slot-wise* (in-slate) sampling fills position ``k``
with the best not-yet-shown candidate under a fresh draw ``k``, so one slate tries up to
``K`` hypotheses at once instead of ``K`` consequences of one.

Thompson samplers have no closed-form slate propensities, so
:func:`monte_carlo_propensities` estimates them by replaying the agent's draw with a
generator of its own (the acting generator is left untouched). Each call replays a stream of
its own, the next of a sequence fixed by the agent's seed (:meth:`PosteriorSampler.propensities`
counts its calls, and a pickled agent keeps the count): a frozen agent asked about the same
request at every step reads a fresh estimate each time, whose errors average out over a log,
where one stream would repeat one error at every step; the same seed and the same calls give
the same estimates.

Which estimate is unbiased depends on the side of the importance weight ``pi / mu`` it
serves, as no estimate is unbiased for both ``p`` and ``1 / p``:

* the **logging** side, the denominator ``mu``, needs ``1 / p_hat`` unbiased:
  :meth:`PosteriorSampler.propensities` (``side="logging"``), which a rollout logs, reads the
  two phases below;
* the **evaluation** side, the numerator ``pi``, needs ``p_hat`` itself unbiased:
  :meth:`PosteriorSampler.evaluation_propensities` (``side="evaluation"``), which
  ``recoworld ope evaluate`` asks of the evaluated policy, reads the plain frequencies
  ``m / D`` of ``D = n_samples`` replays (``E[m/D] = p``). The logging side's reading weighs
  there too much: ``(m+1) / (D+1)`` is above ``p`` by ``(1-p) / (D+1)``, a row out of reach
  reads ``1 / (M+1)`` however rare its slate, and the logging side's estimates of all the
  slates of a request with many slates sum to far more than 1: each of those out of reach
  adds ``1 / (M+1)``.

The logging side replays in two phases per row:

1. ``n_samples`` draws;
2. rows whose logged slate came up fewer than ``min_matches`` (``r``) times, and that may
   see it within ``max_samples`` (``M``) draws (:func:`reachable`), go on drawing until it
   has (at most ``M`` draws in all). This is *geometric resampling* (G. Neu,
   G. Bartók, "An Efficient Algorithm for Learning with Semi-bandit Feedback", ALT 2013):
   with ``N`` the draws up to the ``r``-th match, ``N / r`` is an unbiased estimate of the
   inverse propensity ``1/p``.

IPS divides by the estimate, so what must be unbiased is its inverse, the weight, and
``matches / draws`` after a fixed number of draws is not: ``E[n/m] > 1/p`` (Jensen), by up
to 30 % at the default settings. So a row stopped by a count of draws ``D`` (``n_samples``
after the first phase, or the cap ``M``) with ``m`` matches reads ``(m+1) / (D+1)``, and a
row stopped at its ``r``-th match reads ``r / N``. With ``m`` the matches in the first
phase and ``q = 1 - p``, ``(n+1)/(m+1) C(n,m) p^m q^(n-m) = C(n+1,m+1) p^(m+1) q^(n-m) / p``
and ``(k/r) C(k-1,r-1) = C(k,r)`` give

- ``E[(n+1)/(m+1); m >= r] = P(Bin(n+1, p) >= r+1) / p`` (stopped after the first phase),
- ``E[N/r; n < N <= M] = (P(Bin(n+1, p) <= r) - P(Bin(M+1, p) <= r)) / p`` (stopped at the
  ``r``-th match),
- ``E[(M+1)/(m'+1); N > M] = P(1 <= Bin(M+1, p) <= r) / p`` (at the cap, ``m' < r``),

so ``E[1/p_hat] = (1 - q^(M+1)) / p``: unbiased but for the cap's truncation, a downward
bias of ``q^(M+1) / p`` in the weight, as Neu & Bartók's truncated geometric resampling
has (at ``M = 512``: under 0.01 % for ``p >= 0.02``, 13 % at ``p = 0.004``).

A row judged out of the cap's reach (its slate not seen in the first phase, and
:func:`reachable`'s bound on ``p`` below ``1/M``) stops after the first phase and reads
``1 / (M+1)``, as a row replayed to the cap without a match would. The judgment reads the
first phase only, of which the later replays are independent, so with ``V(p)`` the mean
weight of a row that goes on from ``n`` draws without a match,
``E[1/p_hat] = (1 - q^(M+1)) / p + P(judged out of reach) (M + 1 - V(p))``. No weight
exceeds ``M + 1``, so the added term is non-negative; where ``p << 1/M`` it is small, as
replaying would reach the cap without a match too (``V = 512`` against ``M + 1 = 513`` at
``p = 1e-5``). So the mean weight rises as ``p`` falls, to ``M + 1``, and stays below
``1/p`` wherever ``p <= 1/(M+1)`` even if every row without a match were judged out of reach
(``0.89 / p`` at ``p = 1/513``, with ``n = 100``). Only a slate likelier than ``1/M`` judged
out of reach weighs too much (up to ``2.4 / p`` at ``p = 0.01`` were all its rows without a
match judged so). :func:`reachable`'s bounds make that rare where a slate's positions are
about equally uncertain (the ``LinearTS`` logs of the OPE study: none), not where the
uncertain positions come first and the later ones follow almost surely: there a slate of
``p = 0.02`` with ``K = 10`` is cut on 13% of rows and its mean weight is ``2.2 / p``. A
ranked slate of 10 out of 50 candidates is often far rarer than ``1/M``, and then only the
``"position"`` and short-prefix ``"cascade"`` estimates are informative.

Each position and each prefix reads its own matches the same way (``(m+1) / (D+1)``, or
``matches / N`` where the row stopped at the ``r``-th whole-slate match). Their inverses
are not exactly unbiased: which rows go on replaying depends on the prefix counts
(:func:`reachable`); on test policies a position of probability 0.05 in a slate of 0.0025
is weighted about 2 % too high. ``"slate_se"`` is the
standard error ``sqrt(p(1-p)/D)`` of the slate estimate (``p sqrt((1-p)/r)`` after
geometric resampling, the same number). A row costs about ``r / p`` replays (at least
``n_samples``, at most ``M``; ``n_samples`` when out of reach): a slate rarer than ``1/M``
that :func:`reachable` cannot rule out costs ``M``. Each replay costs about one
``act`` (``K`` of them for slot-wise sampling); set ``propensity_samples`` to 0 to skip
the estimate (``propensities`` then returns ``None``, "unknown").

:class:`PosteriorSampler` wires these into a Thompson-style agent, which only says how to
draw its scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from recoworld.agents.base import top_k

from recoworld.beta_draws import beta_scores, log_gamma  # noqa: F401  (re-exported for the agents)
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE
from recoworld.types import Observation


def slotwise_top_k(draw_scores: Callable[[], np.ndarray], k: int) -> np.ndarray:
    """Candidate indices ``[..., k]``: slot ``j`` takes the best candidate not yet placed
    under the ``j``-th call of ``draw_scores`` (scores ``[..., C]``, a fresh draw per call)."""
    chosen = []
    for _ in range(k):
        scores = np.array(draw_scores(), dtype=np.float64)
        if chosen:
            np.put_along_axis(scores, np.stack(chosen, -1), -np.inf, axis=-1)
        chosen.append(np.argmax(scores, axis=-1))
    return np.stack(chosen, -1)


def top_k_nd(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`~recoworld.agents.base.top_k` over the last axis of scores of any rank."""
    return top_k(scores.reshape(-1, scores.shape[-1]), k).reshape(*scores.shape[:-1], k)


#: Whole-slate matches a row needs before its estimate stops (geometric resampling).
MIN_MATCHES = 4
#: Most replays per row: the weight of a slate rarer than 1 / MAX_SAMPLES is truncated. It bounds
#: the cost of logging a Thompson sampler at about 5x the first phase of 100 replays.
MAX_SAMPLES = 512
#: One-sided confidence of :func:`reachable`'s bound on each step's rate.
_REACH_CONFIDENCE = 0.95
#: Replays drawn at a time: bounds memory at chunk x rows x candidates scores.
_CHUNK = 256


def monte_carlo_propensities(
    draw_slates: Callable[[np.random.Generator, int, np.ndarray], np.ndarray],
    action: np.ndarray,
    n_samples: int,
    seed: np.random.SeedSequence | int,
    min_matches: int = MIN_MATCHES,
    max_samples: int = MAX_SAMPLES,
    side: str = "logging",
) -> dict[str, np.ndarray] | None:
    """Estimate the propensities of ``action`` ``[B, K]`` by replaying the policy (``None``
    when ``n_samples`` is 0), for the ``side`` of the importance weight they serve (see the
    module docstring): ``"logging"`` (``1 / p_hat`` unbiased; two phases, up to
    ``max_samples`` replays per row) or ``"evaluation"`` (``p_hat`` unbiased: the frequencies
    of ``n_samples`` replays; ``min_matches`` and ``max_samples`` are neither used nor checked).

    ``draw_slates(rng, n, rows)`` returns ``n`` independent slates for each of the rows
    ``rows`` (indices into ``action``), ``[n, len(rows), K]``, drawn exactly as the agent's
    ``act`` draws one. The same ``seed`` gives the same estimate.

    Returns ``{"slate" [B], "position" [B, K], "cascade" [B, K], "slate_se" [B], "draws" [B]}``.
    """
    if side not in ("logging", "evaluation"):
        raise ValueError(f"side={side!r}; give 'logging' (the weight's denominator) or 'evaluation' (its numerator)")
    if n_samples <= 0:
        return None
    if side == "logging" and (min_matches < 1 or max_samples < n_samples):
        raise ValueError(f"min_matches={min_matches}, max_samples={max_samples}, n_samples={n_samples}; "
                         "need min_matches >= 1 and max_samples >= n_samples")
    rng = np.random.default_rng(seed)
    action = np.asarray(action)
    tallies = Tallies(np.zeros(action.shape), np.zeros(action.shape), np.zeros(len(action), dtype=np.int64))
    # the first phase: n_samples replays per row (a row stops at its n_samples-th, matches or not)
    _replay(draw_slates, rng, action, np.arange(len(action)), tallies, 1, n_samples, n_samples)
    if side == "evaluation":
        return frequencies(tallies)
    short = (tallies.prefixes[:, -1] < min_matches) & (tallies.draws < max_samples)
    within = reachable(tallies, max_samples)
    _replay(draw_slates, rng, action, np.flatnonzero(short & within), tallies, min_matches, n_samples, max_samples)
    return tallied_propensities(tallies, n_samples, min_matches, max_samples, out_of_reach=short & ~within)


class Tallies(NamedTuple):
    """Per row: position matches and prefix matches ``[B, K]``, replays ``[B]`` (updated in place)."""

    matches: np.ndarray
    prefixes: np.ndarray
    draws: np.ndarray


def tallied_propensities(tallies: Tallies, n_samples: int, min_matches: int, max_samples: int,
                         out_of_reach: np.ndarray) -> dict[str, np.ndarray]:
    """The estimates that :func:`monte_carlo_propensities` reads from its finished
    ``tallies``: read so that the slate's inverse, the IPS weight, is unbiased up to the cap
    (see the module docstring). Rows ``out_of_reach`` ``[B]`` stopped after the first phase
    without a whole-slate match, judged beyond ``max_samples`` replays (:func:`reachable`)."""
    # A row that went on and stopped at its min_matches-th match reads matches / draws; one
    # stopped by a count of draws (the first phase, or the cap) reads (matches+1) / (draws+1):
    # matches / draws there weights too high (E[n/m] > 1/p, Jensen).
    at_match = ((tallies.draws > n_samples) & (tallies.prefixes[:, -1] >= min_matches))[:, None]
    draws = tallies.draws[:, None]
    cascade = np.where(at_match, tallies.prefixes / draws, (tallies.prefixes + 1) / (draws + 1))
    # a whole slate out of reach reads as the cap without a match would, never above a replayed one
    cascade[out_of_reach, -1] = 1 / (max_samples + 1)
    position = np.where(at_match, tallies.matches / draws, (tallies.matches + 1) / (draws + 1))
    slate = cascade[:, -1].copy()
    slate_se = np.sqrt(slate * (1 - slate) / tallies.draws)
    return {"slate": slate, "position": position, "cascade": cascade, "slate_se": slate_se, "draws": tallies.draws}


def frequencies(tallies: Tallies) -> dict[str, np.ndarray]:
    """The evaluation side's estimates read from ``tallies`` of a fixed number of replays per
    row: the plain frequencies ``matches / draws``, unbiased for the propensities themselves."""
    draws = tallies.draws[:, None]
    slate = tallies.prefixes[:, -1] / tallies.draws
    return {"slate": slate, "position": tallies.matches / draws, "cascade": tallies.prefixes / draws,
            "slate_se": np.sqrt(slate * (1 - slate) / tallies.draws), "draws": tallies.draws}


def _replay(draw_slates, rng, action, active, tallies: Tallies, min_matches: int, at_least: int, limit: int) -> None:
    """Replay the rows ``active`` until each has ``min_matches`` whole-slate matches and
    ``at_least`` draws, or ``limit`` draws."""
    while active.size:
        n = int(min(_CHUNK, limit - tallies.draws[active].min()))
        same = draw_slates(rng, n, active) == action[active][None]             # [n, b, K]
        prefix = np.cumprod(same, axis=2)
        seen = np.cumsum(prefix[:, :, -1], axis=0) + tallies.prefixes[active, -1]   # whole-slate matches so far
        total = tallies.draws[active][None] + np.arange(1, n + 1)[:, None]      # draws so far
        stop = ((seen >= min_matches) & (total >= at_least)) | (total >= limit)
        stopped = stop.any(0)
        counted = np.where(stopped, stop.argmax(0) + 1, n)                     # draws of this chunk that count
        keep = (np.arange(n)[:, None] < counted[None])[:, :, None]
        tallies.matches[active] += (same * keep).sum(0)
        tallies.prefixes[active] += (prefix * keep).sum(0)
        tallies.draws[active] += counted
        active = active[~stopped]


def reachable(tallies: Tallies, max_samples: int) -> np.ndarray:
    """``[B]``: whether a row's logged slate may come up within ``max_samples`` replays.

    Always where the first phase saw it. Otherwise, by the chain rule, the slate's
    probability is the product of its steps' rates, step ``k`` being position ``k`` matching
    given that the first ``k - 1`` did. The first phase tried the steps up to the first that
    failed, ``j + 1`` with ``j`` the longest prefix that came up: step ``k`` came up ``c_k``
    times in ``c_{k-1}`` tries (``c_0`` the draws). Each tried step's rate is bounded by its
    one-sided Clopper-Pearson bound ``u_k`` (confidence ``_REACH_CONFIDENCE``) and the untried
    steps are taken as likely as the tried ones at those bounds on average, so the slate's
    probability is at most about ``(u_1 ... u_{j+1})^(K / (j+1))``; the row goes on replaying
    when that is at least ``1 / max_samples``.

    The bounds keep a slate whose deeper steps the first phase barely tried (a prefix seen
    once, so its next step tried once) from being cut: of the ``LinearTS`` slates the OPE study
    logs, the point estimates ``(c_j / n)^(K/j)`` cut 36-44 %, and 15-19 % were of probability
    above ``1/512`` (some above 0.01); the bounds cut none. The untried steps remain an
    assumption, wrong for a slate whose hard positions come first and whose later ones follow
    almost surely (four positions of rates 0.1, 0.07, 1 and 1, a slate of 0.007, are cut on
    36 % of rows). Why cut at all: a ranked slate of many positions (10 of 50 candidates) is
    often far rarer than ``1 / max_samples``, and replaying it to the cap costs
    ``max_samples`` draws per row and per step, to read about the same ``1 / (max_samples + 1)``
    that a row out of reach reads.
    """
    from scipy.special import betaincinv

    K = tallies.prefixes.shape[1]
    matched = tallies.prefixes
    tries = np.concatenate([tallies.draws[:, None], matched[:, :-1]], axis=1)
    tried = np.minimum((matched > 0).sum(1) + 1, K)[:, None]           # the steps up to the first that failed
    bound = np.where(matched < tries, betaincinv(matched + 1, np.maximum(tries - matched, 1), _REACH_CONFIDENCE), 1.0)
    log_bound = np.where(np.arange(K) < tried, np.log(bound), 0.0).sum(1) * K / tried[:, 0]
    return (matched[:, -1] > 0) | (log_bound >= -np.log(max_samples))


#: Gauss-Legendre nodes of :func:`beta_top_one_propensity`.
_QUADRATURE_NODES = 128
#: Tail mass of the chosen arm's Beta left outside the quadrature window in ``x``.
_WINDOW_TAIL = 1e-12


def beta_top_one_propensity(alpha: np.ndarray, beta: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    r"""Exact probability ``[B]`` that candidate ``chosen[b]`` has the largest of independent
    ``Beta(alpha[b, c], beta[b, c])`` draws (``[B, C]``): the single-slot Thompson propensity.

    .. math:: P(a) = \int_0^1 f_a(x) \prod_{c \ne a} F_c(x)\, dx
                   = \int_0^1 \prod_{c \ne a} F_c\big(F_a^{-1}(u)\big)\, du,

    a one-dimensional integral, computed by Gauss-Legendre quadrature
    (:func:`scipy.special.roots_legendre`, ``_QUADRATURE_NODES`` nodes), one vectorised pass
    for every row. Where the chosen arm's density :math:`f_a` is bounded (both its parameters
    at least 1), the nodes span its central ``1 - 2e-12`` in ``x`` (error about 1e-12). Where
    a parameter is below 1 (a ``posterior_scale`` above 1, a Jeffreys prior of 0.5), the
    density is unbounded at 0 or 1, beyond the reach of nodes in ``x``, so the nodes span the
    arm's own quantiles ``u = F_a(x)`` (:func:`scipy.special.betaincinv`), where the
    integrand is bounded by 1 (error about 1e-6). Draws tie with probability 0, so the
    propensities of a row's candidates sum to 1, within those errors; a wide arm facing far
    narrower ones, whose race turns within a sliver of ``x``, loses up to 1e-4 to 1e-3.

    Near 1, float64 keeps no resolution in ``x`` (``betaincinv(0.05, 0.05, u)`` is exactly
    ``1.0`` for ``u`` above 0.92), where arms of tiny parameters would tie and a row's
    propensities sum above 1. So nodes above the median come from the mirrored quantile,
    ``1 - x = I^{-1}_{1-u}(b, a)``, and every ``F_c`` above 1/2 from ``1 - I_{1-x}(b_c, a_c)``
    (:func:`_beta_cdf`): ``Beta(2, 2)`` against two ``Beta(0.05, 0.05)`` sums to 1 within
    1e-10, against two ``Beta(0.01, 0.01)`` within 4e-6. Below parameters of
    about 0.01 the quantiles underflow float64's smallest number (``1 - x`` below 1e-308) and
    the arms tie again (two ``Beta(0.005, 0.005)``: off by 2e-4). The sampler races the
    draws' logits (:func:`~recoworld.beta_draws.beta_scores`), which do not round so, and its
    choices follow these propensities at any parameters.
    """
    rows = np.arange(len(chosen))
    a, b = alpha[rows, chosen][:, None], beta[rows, chosen][:, None]
    bounded = (a[:, 0] >= 1) & (b[:, 0] >= 1)
    x, y, log_weight = (np.empty((len(rows), _QUADRATURE_NODES)) for _ in range(3))
    x[bounded], y[bounded], log_weight[bounded] = _density_nodes(a[bounded], b[bounded])
    x[~bounded], y[~bounded], log_weight[~bounded] = _quantile_nodes(a[~bounded], b[~bounded])
    others = np.log(np.clip(_beta_cdf(alpha[:, :, None], beta[:, :, None], x[:, None], y[:, None]), 1e-300, 1))
    others[rows, chosen] = 0.0
    return np.clip(np.exp(log_weight + others.sum(axis=1)).sum(axis=1), 0.0, 1.0)


def _beta_cdf(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The CDF of ``Beta(a, b)`` at ``x = 1 - y`` (broadcast), from the nearer end: above 1/2 as
    ``1 - I_y(b, a)``, so that an ``x`` within 1e-16 of 1 keeps its resolution in ``y``."""
    from scipy.special import betainc

    a, b, x, y = np.broadcast_arrays(a, b, x, y)
    upper = x > y
    cdf = np.empty(x.shape)
    cdf[~upper] = betainc(a[~upper], b[~upper], x[~upper])
    cdf[upper] = 1 - betainc(b[upper], a[upper], y[upper])
    return cdf


def _density_nodes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Nodes ``x`` over the central mass of ``Beta(a, b)`` (``[B, 1]`` each), ``1 - x``, and
    the logs of their weights times the density: :math:`\int f_a g\,dx \approx \sum w f_a(x) g(x)`."""
    from scipy.special import roots_legendre
    from scipy.stats import beta as beta_distribution

    nodes, weights = roots_legendre(_QUADRATURE_NODES)
    low = beta_distribution.ppf(_WINDOW_TAIL, a, b)
    high = beta_distribution.ppf(1 - _WINDOW_TAIL, a, b)
    x = low + (high - low) * (nodes[None] + 1) / 2
    return x, 1 - x, np.log(weights * (high - low) / 2) + beta_distribution.logpdf(x, a, b)


def _quantile_nodes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Nodes ``x = F^{-1}(u)`` at Gauss-Legendre points ``u`` of ``[0, 1]``, for ``Beta(a, b)``
    (``[B, 1]`` each), ``y = 1 - x``, and the logs of their weights: :math:`\int g\,dF \approx
    \sum w g(x)`. A node in the upper half of ``[0, 1]`` comes from the mirrored quantile
    ``y = I^{-1}_{1-u}(b, a)``: ``x`` itself rounds to 1 there once ``y`` is below 1e-16."""
    from scipy.special import betaincinv, roots_legendre

    nodes, weights = roots_legendre(_QUADRATURE_NODES)
    below, above = betaincinv(a, b, (1 + nodes) / 2), betaincinv(b, a, (1 - nodes) / 2)   # (1 - nodes) / 2 = 1 - u
    # Mirror by where the node lies, not by u: a Beta massed near 0 has x ~ 1e-20 above its
    # median (1 - y rounds to 0), one massed near 1 has x rounding to 1 below it.
    mirrored = above < 0.5
    x, y = np.where(mirrored, 1 - above, below), np.where(mirrored, above, 1 - below)
    return x, y, np.broadcast_to(np.log(weights / 2), x.shape)


def propensity_seed(seed: int | None) -> np.random.SeedSequence:
    """The seed of an agent's Monte-Carlo replays: a stream apart from its acting one."""
    entropy = np.random.SeedSequence().entropy if seed is None else seed
    return np.random.SeedSequence(entropy, spawn_key=(0x5052_4F50,))


class PosteriorSampler:
    """Acting and propensities of a Thompson-style agent (a mixin placed before its
    :class:`~recoworld.agents.base.Recommender` base).

    The agent defines :meth:`score_sampler` and the fields ``per_slot`` (slot-wise instead
    of slate-wise sampling), ``propensity_samples`` (the fixed first phase of the
    Monte-Carlo replays behind :meth:`propensities`, and all of those behind
    :meth:`evaluation_propensities`; 0 skips them), ``propensity_matches``
    and ``max_propensity_samples`` (the second phase; by default :data:`MIN_MATCHES` and
    :data:`MAX_SAMPLES`), whose ranges ``RANGES`` declares for the agent's own checks.
    """

    per_slot: bool
    propensity_samples: int
    propensity_matches: int
    max_propensity_samples: int
    RANGES = {"propensity_samples": NON_NEGATIVE, "propensity_matches": AT_LEAST_ONE,
              "max_propensity_samples": AT_LEAST_ONE}
    #: Replay calls so far (:meth:`estimate_propensities`); the class's 0 serves an agent pickled
    #: before the count was kept, which then goes on from the first stream.
    _propensity_calls = 0

    def score_sampler(self, obs, rng: np.random.Generator, n: int) -> Callable[[], np.ndarray]:
        """A function that returns a fresh posterior draw of the scores ``[n, B, C]`` per call."""
        raise NotImplementedError

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._propensity_seed = propensity_seed(seed)
        self._propensity_calls = 0  # replays so far: each call replays the next stream (module docstring)

    def draw_slates(self, obs, rng: np.random.Generator, n: int, rows: np.ndarray | None = None) -> np.ndarray:
        """``n`` independent slates per row (of ``rows`` only, when given), ``[n, B, K]``."""
        if rows is not None:
            obs = Observation({key: value[rows] for key, value in obs.items()})
        draw = self.score_sampler(obs, rng, n)
        if self.per_slot:
            return slotwise_top_k(draw, self.slate_size)
        return top_k_nd(draw(), self.slate_size)

    def act(self, obs) -> np.ndarray:
        return self.draw_slates(obs, self.rng, 1)[0]

    def propensities(self, obs, action: np.ndarray) -> dict[str, np.ndarray] | None:
        """The logging side's estimates (what a rollout logs): read so that their inverse, the
        weight's denominator, is unbiased (module docstring)."""
        return self.estimate_propensities(obs, action, "logging")

    def evaluation_propensities(self, obs, action: np.ndarray) -> dict[str, np.ndarray] | None:
        """The evaluation side's estimates (what ``recoworld ope evaluate`` asks of the policy it
        evaluates): unbiased for the propensities themselves, the weight's numerator."""
        return self.estimate_propensities(obs, action, "evaluation")

    def estimate_propensities(self, obs, action: np.ndarray, side: str) -> dict[str, np.ndarray] | None:
        """The propensities of ``action`` for ``side`` of the weight, ``"logging"`` or
        ``"evaluation"``: replayed (:func:`monte_carlo_propensities`), on the next stream of
        the agent's replay seed. An agent that knows some of them exactly overrides this."""
        seed = np.random.SeedSequence(self._propensity_seed.entropy,
                                      spawn_key=(*self._propensity_seed.spawn_key, self._propensity_calls))
        self._propensity_calls += 1
        return monte_carlo_propensities(
            lambda rng, n, rows: self.draw_slates(obs, rng, n, rows), action, self.propensity_samples,
            seed, min_matches=self.propensity_matches,
            max_samples=max(self.propensity_samples, self.max_propensity_samples), side=side)
