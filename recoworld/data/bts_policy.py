"""The Bernoulli Thompson-sampling policy as a distribution over ranked slates.

A Bernoulli-TS recommender that is not learning (its Beta parameters fixed, as the Open
Bandit Dataset's ``prior_bts.yaml`` gives them) ignores the context, so its slate
distribution can be computed once. It has no closed form: :func:`bts_distribution`
replays the policy's draw ``n_mc`` times from a seeded generator and keeps the share of
each ranked slate. A probability ``p`` estimated this way has standard error
``sqrt(p (1 - p) / n_mc)``, at most ``0.5 / sqrt(n_mc)``: 0.0016 for 100,000 draws.
(:mod:`recoworld.agents`' samplers estimate the propensities of one logged slate at a time
instead; this module serves the data layer, which does not import agents.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.beta_draws import beta_scores

#: Beta draws per Monte-Carlo chunk: bounds each scratch array at about 64 MB.
_MC_CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class SlateDistribution:
    """A context-free distribution over ranked slates, estimated from ``n_samples`` draws.

    Attributes:
        slates: ``[m, K]``, the distinct ranked slates drawn (item ids, top first).
        probability: ``[m]``, the share of draws that gave each; sums to one.
        n_items: the number of items the slates are drawn from.
        n_samples, seed: the Monte-Carlo budget and generator seed behind the estimate.

    :attr:`standard_error` gives the precision of each item-position probability.
    """

    slates: np.ndarray
    probability: np.ndarray
    n_items: int
    n_samples: int
    seed: int

    @property
    def slate_length(self) -> int:
        return self.slates.shape[1]

    @property
    def position_marginals(self) -> np.ndarray:
        """``[n_items, K]``: probability that item ``a`` is shown at position ``k``."""
        return np.stack([np.bincount(self.slates[:, k], weights=self.probability, minlength=self.n_items)
                         for k in range(self.slate_length)], axis=1)

    @property
    def standard_error(self) -> np.ndarray:
        """``[n_items, K]``: Monte-Carlo standard error of :attr:`position_marginals`."""
        p = self.position_marginals
        return np.sqrt(p * (1 - p) / self.n_samples)

    def action_dist(self, n_rounds: int) -> np.ndarray:
        """``[n_rounds, n_items, K]``, the ``action_dist`` of :mod:`recoworld.ope`'s bandit
        estimators: the same marginals in every round (a read-only view, no copies)."""
        marginals = self.position_marginals
        return np.broadcast_to(marginals, (int(n_rounds), *marginals.shape))

    def evaluation_pscores(self, slates) -> dict[str, np.ndarray]:
        """The policy's probabilities of logged ``slates`` ``[n, K]``, keyed as the slate
        estimators' arguments: ``evaluation_pscore`` (whole slate),
        ``evaluation_pscore_item_position`` and ``evaluation_pscore_cascade`` (prefixes)."""
        slates = np.asarray(slates, dtype=np.int64)
        if slates.ndim != 2 or slates.shape[1] != self.slate_length:
            raise ValueError(f"slates has shape {slates.shape}, but (n_slates, {self.slate_length}) was expected")
        unknown = (slates < 0) | (slates >= self.n_items)
        if unknown.any():
            i, k = np.argwhere(unknown)[0]
            raise ValueError(f"slates[{i}, {k}] = {slates[i, k]}, but the policy ranks items 0..{self.n_items - 1}")
        cascade = np.empty(slates.shape)
        for k in range(self.slate_length):
            drawn = _prefix_codes(self.slates[:, :k + 1], self.n_items)
            codes, inverse = np.unique(drawn, return_inverse=True)
            mass = np.bincount(inverse, weights=self.probability)
            wanted = _prefix_codes(slates[:, :k + 1], self.n_items)
            at = np.minimum(np.searchsorted(codes, wanted), len(codes) - 1)
            cascade[:, k] = np.where(codes[at] == wanted, mass[at], 0.0)
        return {
            "evaluation_pscore": cascade[:, -1].copy(),
            "evaluation_pscore_item_position": self.position_marginals[slates, np.arange(self.slate_length)],
            "evaluation_pscore_cascade": cascade,
        }


def bts_distribution(alpha, beta, slate_length: int = 3, n_mc: int = 100_000,
                     seed: int = 0) -> SlateDistribution:
    """The Bernoulli-TS policy's slate distribution, by ``n_mc`` seeded draws.

    One draw is what the policy does for a request: ``theta_a ~ Beta(alpha_a, beta_a)``
    independently for every item, then the ``slate_length`` items with the highest
    ``theta`` in decreasing order (O. Chapelle, L. Li, "An Empirical Evaluation of Thompson
    Sampling", NeurIPS 2011; OBP's ``BernoulliTS.compute_batch_action_dist`` does the
    same). The same ``seed`` and ``n_mc`` give the same distribution. Where a parameter is
    below 1 the draws race as logits (:func:`~recoworld.beta_draws.beta_scores`): ``rng.beta``
    rounds draws of tiny parameters to exactly 0 or 1, and the tied items would not race.
    """
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if alpha.ndim != 1 or alpha.shape != beta.shape or not 1 <= slate_length <= alpha.size:
        raise ValueError(f"alpha and beta need one value per item (got shapes {alpha.shape} and {beta.shape}) "
                         f"and at least slate_length = {slate_length} items")
    for name, values in (("alpha", alpha), ("beta", beta)):
        # rng.beta refused 0 and below, but its logits would turn such a parameter into NaN scores
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}[{i}] = {values[i]}, but a Beta parameter must be positive and finite")
    if n_mc < 1:
        raise ValueError(f"n_mc = {n_mc}, but at least one Monte-Carlo draw is needed")
    if alpha.size ** slate_length >= 2**63:
        raise ValueError(f"{alpha.size} items in slates of {slate_length} are too many ranked slates to count "
                         "with 64-bit codes; shorten the slate")
    rng = np.random.default_rng(seed)
    chunk = max(1, _MC_CHUNK_ELEMENTS // alpha.size)
    codes = []
    for start in range(0, n_mc, chunk):
        scores = beta_scores(rng, alpha, beta, (min(chunk, n_mc - start), alpha.size))   # rank as theta does
        top = np.argpartition(-scores, slate_length - 1, axis=1)[:, :slate_length]
        ranked = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
        codes.append(_prefix_codes(ranked, alpha.size))
    distinct, counts = np.unique(np.concatenate(codes), return_counts=True)
    slates = np.stack([distinct // alpha.size ** (slate_length - 1 - k) % alpha.size
                       for k in range(slate_length)], axis=1)
    return SlateDistribution(slates, counts / n_mc, alpha.size, int(n_mc), int(seed))


def _prefix_codes(slates: np.ndarray, n_items: int) -> np.ndarray:
    # A ranked prefix as one integer in base n_items (bts_distribution checks that it fits).
    codes = np.zeros(len(slates), dtype=np.int64)
    for k in range(slates.shape[1]):
        codes = codes * n_items + slates[:, k]
    return codes
