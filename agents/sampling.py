"""How sampling agents turn posterior draws into slates, and estimate their propensities.

*Slate-wise* sampling ranks all candidates by one draw: the slate is the top-``K`` of a
single hypothesis about the user. *Slot-wise* (in-slate) sampling fills position ``k``
with the best not-yet-shown candidate under a fresh draw ``k``, so one slate tries up to
``K`` hypotheses at once instead of ``K`` consequences of one.

Thompson samplers have no closed-form slate propensities, so
:func:`monte_carlo_propensities` estimates them by replaying the agent's draw ``n`` times
with a generator of its own (the acting generator is left untouched, and the same inputs
give the same estimate). The estimate of a probability ``p`` has standard error
``sqrt(p(1-p)/n)``: at most 0.05 for the agents' default ``n = 100``. A ranked slate of
10 out of 50 candidates is typically far rarer than ``1/n``, so its ``"slate"`` estimate
is mostly 0, while ``"position"`` and short-prefix ``"cascade"`` estimates are usable.
Each replay costs about one ``act`` (``K`` of them for slot-wise sampling), so raise
``propensity_samples`` when logging data for off-policy evaluation, and set it to 0 to
skip the estimate (``propensities`` then returns ``None``, "unknown").

:class:`PosteriorSampler` wires these into a Thompson-style agent, which only says how to
draw its scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recoworld.agents.base import top_k


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


def monte_carlo_propensities(
    draw_slates: Callable[[np.random.Generator, int], np.ndarray],
    action: np.ndarray,
    n_samples: int,
    seed: np.random.SeedSequence | int,
) -> dict[str, np.ndarray] | None:
    """Estimate the propensities of ``action`` ``[B, K]`` from ``n_samples`` replays
    (``None`` when ``n_samples`` is 0).

    ``draw_slates(rng, n)`` returns ``n`` independent slates per row, ``[n, B, K]``, drawn
    exactly as the agent's ``act`` draws one. The same ``seed`` gives the same estimate.
    """
    if n_samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    matches = np.zeros(action.shape, dtype=np.float64)
    prefixes = np.zeros(action.shape, dtype=np.float64)
    chunk = 256  # bounds memory: n x B x C scores at a time
    for start in range(0, n_samples, chunk):
        draws = draw_slates(rng, min(chunk, n_samples - start))
        same = draws == action[None]
        matches += same.sum(0)
        prefixes += np.cumprod(same, axis=2).sum(0)
    cascade = prefixes / n_samples
    return {"slate": cascade[:, -1].copy(), "position": matches / n_samples, "cascade": cascade}


def propensity_seed(seed: int | None) -> np.random.SeedSequence:
    """The seed of an agent's Monte-Carlo replays: a stream apart from its acting one."""
    entropy = np.random.SeedSequence().entropy if seed is None else seed
    return np.random.SeedSequence(entropy, spawn_key=(0x5052_4F50,))


class PosteriorSampler:
    """Acting and propensities of a Thompson-style agent (a mixin placed before its
    :class:`~recoworld.agents.base.Recommender` base).

    The agent defines :meth:`score_sampler` and the fields ``per_slot`` (slot-wise instead
    of slate-wise sampling) and ``propensity_samples`` (Monte-Carlo replays behind
    :meth:`propensities`; 0 skips them).
    """

    per_slot: bool
    propensity_samples: int

    def score_sampler(self, obs, rng: np.random.Generator, n: int) -> Callable[[], np.ndarray]:
        """A function that returns a fresh posterior draw of the scores ``[n, B, C]`` per call."""
        raise NotImplementedError

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._propensity_seed = propensity_seed(seed)

    def draw_slates(self, obs, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent slates per row, ``[n, B, K]``."""
        draw = self.score_sampler(obs, rng, n)
        if self.per_slot:
            return slotwise_top_k(draw, self.slate_size)
        return top_k_nd(draw(), self.slate_size)

    def act(self, obs) -> np.ndarray:
        return self.draw_slates(obs, self.rng, 1)[0]

    def propensities(self, obs, action: np.ndarray) -> dict[str, np.ndarray] | None:
        return monte_carlo_propensities(lambda rng, n: self.draw_slates(obs, rng, n), action,
                                        self.propensity_samples, self._propensity_seed)
