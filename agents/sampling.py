"""How sampling agents turn posterior draws into slates, and estimate their propensities.

*Slate-wise* sampling ranks all candidates by one draw: the slate is the top-``K`` of a
single hypothesis about the user. *Slot-wise* (in-slate) sampling fills position ``k``
with the best not-yet-shown candidate under a fresh draw ``k``, so one slate tries up to
``K`` hypotheses at once instead of ``K`` consequences of one.

Thompson samplers have no closed-form slate propensities, so
:func:`monte_carlo_propensities` estimates them by replaying the agent's draw with a
generator of its own (the acting generator is left untouched, and the same inputs give the
same estimate), in two phases per row:

1. ``n_samples`` draws, a fixed-size estimate (standard error ``sqrt(p(1-p)/n)``);
2. rows whose logged slate came up fewer than ``min_matches`` times, and that are likely
   to see it within ``max_samples`` draws (:func:`reachable`), go on drawing until it has
   (at most ``max_samples`` draws in all). This is *geometric resampling*
   (G. Neu, G. Bartók, "An Efficient Algorithm for Learning with Semi-bandit Feedback",
   ALT 2013): with ``N`` the draws up to the ``r``-th match, ``N / r`` is an unbiased
   estimate of the inverse propensity ``1/p``, the importance weight that IPS needs, and
   the estimate ``r / N`` has relative standard error about ``sqrt((1-p)/r)``.

The estimate is ``matches / draws`` for the whole slate, each position and each prefix, and
``"slate_se"`` states its standard error, ``p sqrt((1-p)/m)`` with ``m`` the matches (which
is ``sqrt(p(1-p)/n)`` for a fixed ``n``). A logged slate was drawn from the policy, so its
propensity is positive; a count still 0 after ``max_samples`` draws, or after the first
phase when the cap was judged out of reach, reads ``1 / max_samples``, the truncated geometric resampling of Neu & Bartók, whose inverse
propensity is clipped at ``max_samples`` (a downward bias of at most ``(1-p)^M / p`` in
the weight, as weight clipping has). A ranked slate of 10 out of 50 candidates is typically
that rare, and then only the ``"position"`` and short-prefix ``"cascade"`` estimates are
informative. A row costs about ``min_matches / p`` replays (at least ``n_samples``, at most
``max_samples``; ``n_samples`` when out of reach). Each replay costs about one ``act`` (``K`` of them for
slot-wise sampling); set ``propensity_samples`` to 0 to skip the estimate
(``propensities`` then returns ``None``, "unknown").

:class:`PosteriorSampler` wires these into a Thompson-style agent, which only says how to
draw its scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from recoworld.agents.base import top_k

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
#: Most replays per row: a slate rarer than 1 / MAX_SAMPLES reads 1 / MAX_SAMPLES. It bounds
#: the cost of logging a Thompson sampler at about 5x the first phase of 100 replays.
MAX_SAMPLES = 512
#: Replays drawn at a time: bounds memory at chunk x rows x candidates scores.
_CHUNK = 256


def monte_carlo_propensities(
    draw_slates: Callable[[np.random.Generator, int, np.ndarray], np.ndarray],
    action: np.ndarray,
    n_samples: int,
    seed: np.random.SeedSequence | int,
    min_matches: int = MIN_MATCHES,
    max_samples: int = MAX_SAMPLES,
) -> dict[str, np.ndarray] | None:
    """Estimate the propensities of ``action`` ``[B, K]`` by replaying the policy (``None``
    when ``n_samples`` is 0); see the module docstring for the two phases.

    ``draw_slates(rng, n, rows)`` returns ``n`` independent slates for each of the rows
    ``rows`` (indices into ``action``), ``[n, len(rows), K]``, drawn exactly as the agent's
    ``act`` draws one. The same ``seed`` gives the same estimate.

    Returns ``{"slate" [B], "position" [B, K], "cascade" [B, K], "slate_se" [B], "draws" [B]}``.
    """
    if n_samples <= 0:
        return None
    if min_matches < 1 or max_samples < n_samples:
        raise ValueError(f"min_matches={min_matches}, max_samples={max_samples}, n_samples={n_samples}; "
                         "need min_matches >= 1 and max_samples >= n_samples")
    rng = np.random.default_rng(seed)
    action = np.asarray(action)
    tallies = Tallies(np.zeros(action.shape), np.zeros(action.shape), np.zeros(len(action), dtype=np.int64))
    _replay(draw_slates, rng, action, np.arange(len(action)), tallies, min_matches, n_samples, n_samples)
    wanting = np.flatnonzero((tallies.prefixes[:, -1] < min_matches) & (tallies.draws < max_samples)
                             & reachable(tallies, max_samples))
    _replay(draw_slates, rng, action, wanting, tallies, min_matches, n_samples, max_samples)
    # a count of 0 reads 1 / max_samples: truncated geometric resampling, whether the row
    # reached the cap or was judged out of its reach after the first phase
    floor = 1.0 / np.maximum(tallies.draws, max_samples)[:, None]
    draws = tallies.draws[:, None]
    cascade = np.maximum(tallies.prefixes / draws, floor)
    slate = cascade[:, -1].copy()
    hits = np.maximum(tallies.prefixes[:, -1], 1)
    slate_se = slate * np.sqrt((1 - slate) / hits)
    return {"slate": slate, "position": np.maximum(tallies.matches / draws, floor), "cascade": cascade,
            "slate_se": slate_se, "draws": tallies.draws}


class Tallies(NamedTuple):
    """Per row: position matches and prefix matches ``[B, K]``, replays ``[B]`` (updated in place)."""

    matches: np.ndarray
    prefixes: np.ndarray
    draws: np.ndarray


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
    """``[B]``: whether a row's logged slate is likely to come up within ``max_samples`` replays.

    From the first phase, with ``j`` the longest prefix of the slate that came up and ``p_j``
    its frequency, the slate's probability is extrapolated as ``p_j^(K / j)``: every
    position as hard to match as the first ``j`` were on average (``(1/n)^K`` when not even
    the first position came up). A row goes on replaying when that predicts at least one
    match within the cap. Why: a ranked slate of many positions (10 of 50 candidates) is far
    rarer than ``1 / max_samples``, so replaying it to the cap costs ``max_samples`` draws
    per row and per step, and still only reads the truncated ``1 / max_samples``.
    """
    K = tallies.prefixes.shape[1]
    longest = (tallies.prefixes > 0).sum(1)                    # prefix counts never grow with length
    frequency = np.where(longest > 0, tallies.prefixes[np.arange(len(longest)), np.maximum(longest - 1, 0)], 1.0)
    predicted = (frequency / tallies.draws) ** (K / np.maximum(longest, 1))
    return predicted * max_samples >= 1


#: Gauss-Legendre nodes of :func:`beta_top_one_propensity`, over the chosen arm's central mass.
_QUADRATURE_NODES = 128
#: Tail mass of the chosen arm's Beta left outside the quadrature window.
_WINDOW_TAIL = 1e-12


def beta_top_one_propensity(alpha: np.ndarray, beta: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    r"""Exact probability ``[B]`` that candidate ``chosen[b]`` has the largest of independent
    ``Beta(alpha[b, c], beta[b, c])`` draws (``[B, C]``): the single-slot Thompson propensity.

    .. math:: P(a) = \int_0^1 f_a(x) \prod_{c \ne a} F_c(x)\, dx,

    a one-dimensional integral, computed by Gauss-Legendre quadrature
    (:func:`scipy.special.roots_legendre`, ``_QUADRATURE_NODES`` nodes) over the central
    ``1 - 2e-12`` of the chosen arm's Beta, outside which its density is negligible; one
    vectorised pass serves every row. Draws tie with probability 0, so the propensities of a
    row's candidates sum to 1.
    """
    from scipy.special import betainc, roots_legendre
    from scipy.stats import beta as beta_distribution

    rows = np.arange(len(chosen))
    a, b = alpha[rows, chosen][:, None], beta[rows, chosen][:, None]
    low = beta_distribution.ppf(_WINDOW_TAIL, a, b)
    high = beta_distribution.ppf(1 - _WINDOW_TAIL, a, b)
    nodes, weights = roots_legendre(_QUADRATURE_NODES)
    x = low + (high - low) * (nodes[None] + 1) / 2                                     # [B, N]
    others = np.log(np.clip(betainc(alpha[:, :, None], beta[:, :, None], x[:, None, :]), 1e-300, 1))  # [B, C, N]
    others[rows, chosen] = 0.0
    integrand = np.exp(beta_distribution.logpdf(x, a, b) + others.sum(axis=1))
    return np.clip((integrand * weights[None]).sum(axis=1) * (high - low)[:, 0] / 2, 0.0, 1.0)


def propensity_seed(seed: int | None) -> np.random.SeedSequence:
    """The seed of an agent's Monte-Carlo replays: a stream apart from its acting one."""
    entropy = np.random.SeedSequence().entropy if seed is None else seed
    return np.random.SeedSequence(entropy, spawn_key=(0x5052_4F50,))


class PosteriorSampler:
    """Acting and propensities of a Thompson-style agent (a mixin placed before its
    :class:`~recoworld.agents.base.Recommender` base).

    The agent defines :meth:`score_sampler` and the fields ``per_slot`` (slot-wise instead
    of slate-wise sampling) and ``propensity_samples`` (the fixed first phase of the
    Monte-Carlo replays behind :meth:`propensities`; 0 skips them), and optionally
    ``propensity_matches`` and ``max_propensity_samples`` (the second phase; defaults
    :data:`MIN_MATCHES` and :data:`MAX_SAMPLES`), whose ranges ``RANGES`` declares for the
    agent's own checks.
    """

    per_slot: bool
    propensity_samples: int
    RANGES = {"propensity_samples": NON_NEGATIVE, "propensity_matches": AT_LEAST_ONE,
              "max_propensity_samples": AT_LEAST_ONE}

    def score_sampler(self, obs, rng: np.random.Generator, n: int) -> Callable[[], np.ndarray]:
        """A function that returns a fresh posterior draw of the scores ``[n, B, C]`` per call."""
        raise NotImplementedError

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._propensity_seed = propensity_seed(seed)

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
        return monte_carlo_propensities(
            lambda rng, n, rows: self.draw_slates(obs, rng, n, rows), action, self.propensity_samples,
            self._propensity_seed, min_matches=getattr(self, "propensity_matches", MIN_MATCHES),
            max_samples=max(self.propensity_samples, getattr(self, "max_propensity_samples", MAX_SAMPLES)))
