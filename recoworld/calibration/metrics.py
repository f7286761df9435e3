r"""Fidelity metrics: pure functions of scores, labels and counts.

Scores and masks are ``[n_users, n_items]`` tensors. Every metric is computed per user
first where the literature does so (AUC), and pooled over all users' decisions otherwise
(the 1:m protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recoworld.calibration.choice import row_chunks


def user_auc(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
             chunk_users: int | None = None) -> torch.Tensor:
    r"""Per-user ROC AUC of ``scores`` separating ``positive`` from ``negative`` items.

    :math:`\mathrm{AUC}_b = P(s_{bi} > s_{bj}) + \tfrac12 P(s_{bi} = s_{bj})` over the
    user's positive items :math:`i` and negative items :math:`j` (Hanley and McNeil, 1982),
    computed exactly, ties included. Users without a positive or a negative get NaN.

    Args:
        scores: ``[n_users, n_items]`` float scores (any monotone transform of a
            probability gives the same AUC).
        positive, negative: ``[n_users, n_items]`` bool masks; they must not overlap.
        chunk_users: users whose AUC is computed at once (default:
            :data:`~recoworld.calibration.choice.CHUNK_PAIRS` pairs' worth), so that the
            sorted copies and indices take a chunk's memory, not the whole table's.
    """
    if scores.shape != positive.shape or scores.shape != negative.shape:
        raise ValueError(f"scores {tuple(scores.shape)}, positive {tuple(positive.shape)} and negative "
                         f"{tuple(negative.shape)} must have the same shape")
    if bool((positive & negative).any()):
        user, item = (int(x) for x in (positive & negative).nonzero()[0])
        raise ValueError(f"item {item} of user {user} is both positive and negative")
    n_users, n_items = scores.shape
    return torch.cat([_chunk_auc(scores[rows], positive[rows], negative[rows])
                      for rows in row_chunks(max(n_users, 1), n_items, chunk_users)])


def _chunk_auc(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """:func:`user_auc` of a chunk of users."""
    scores = scores.double()
    negatives = torch.sort(scores.masked_fill(~negative, torch.inf), dim=1).values
    n_pos, n_neg = positive.sum(1), negative.sum(1)
    width = max(int(n_pos.max()), 1)
    # Each user's positive scores, left-aligned and padded with +inf.
    order = torch.argsort((~positive).to(torch.uint8), dim=1, stable=True)[:, :width]
    pos_scores = scores.gather(1, order)
    valid = torch.arange(width)[None, :] < n_pos[:, None]
    pos_scores = pos_scores.masked_fill(~valid, torch.inf)
    below = torch.searchsorted(negatives, pos_scores, right=False).double()
    at_or_below = torch.searchsorted(negatives, pos_scores, right=True).double()
    # Padding (+inf) is at or after every real negative; clip the counts to the negatives.
    below = torch.minimum(below, n_neg[:, None].double())
    at_or_below = torch.minimum(at_or_below, n_neg[:, None].double())
    wins = ((below + at_or_below) / 2 * valid).sum(1)
    auc = wins / (n_pos * n_neg).double()
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.nan)


@dataclass
class Lists:
    """The items of the 1:m protocol: one row per (user, item) shown, with its label."""

    users: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor


def one_to_m_lists(positive: torch.Tensor, negative: torch.Tensor, m: int, seed: int = 0) -> Lists:
    """Each user's positive items mixed with ``m`` times as many negatives.

    The negatives are drawn uniformly without replacement from the user's ``negative``
    items (all of them when there are fewer). This is the 1:m protocol of Agent4Rec
    (Zhang et al., "On Generative Agents in Recommendation", SIGIR 2024), where a
    simulated user sees items they did watch mixed with items they did not, and says
    which ones they would watch.
    """
    if m < 1:
        raise ValueError(f"m={m}; the protocol mixes each positive with m >= 1 negatives")
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(negative.shape, generator=gen).masked_fill(~negative, 2.0)
    rank = torch.argsort(torch.argsort(keys, dim=1), dim=1)
    take = negative & (rank < m * positive.sum(1, keepdim=True))
    users, items = (positive | take).nonzero(as_tuple=True)
    return Lists(users, items, positive[users, items])


@dataclass
class Classification:
    """Accuracy, precision, recall and F1 of yes/no decisions against labels."""

    accuracy: float
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: float, fp: float, fn: float, tn: float) -> Classification:
        total = tp + fp + fn + tn
        precision = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall = tp / (tp + fn) if tp + fn > 0 else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        return cls((tp + tn) / total if total else float("nan"), precision, recall, f1)


def decide(probability: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> Classification:
    """Metrics of the decision "would watch" = ``probability > threshold`` (default 1/2:
    the more likely answer; :func:`f1_threshold` chooses the one that maximises F1)."""
    yes, labels = probability > threshold, labels.bool()
    return Classification.from_counts(*(float(x) for x in (
        (yes & labels).sum(), (yes & ~labels).sum(), (~yes & labels).sum(), (~yes & ~labels).sum())))


def f1_threshold(probability: torch.Tensor, labels: torch.Tensor) -> float:
    r"""The threshold :math:`t` whose decisions "would watch" = ``probability > t`` have the
    highest F1 on these ``labels``, midway between two distinct probabilities.

    F1 is not maximised at 1/2 even for probabilities calibrated to the lists' mix: the
    optimal threshold is then half the best attainable F1 (Lipton, Elkan and
    Naryanaswamy, "Thresholding classifiers to maximize F1 score", ECML PKDD 2014), so
    about 0.4 when F1 is 0.8. Probabilities calibrated to another mix (the choice models'
    to an even one) move it further. Choose it on one set of lists (a validation fold)
    and apply it to another: chosen on the lists it scores, it flatters them. Saying yes to
    the :math:`k` most probable items gives
    :math:`F_1 = 2\,TP_k / (k + P)`; the best :math:`k` is searched among the distinct
    probabilities. Returns 1 (never yes) when there is no positive label.
    """
    p, y = probability.double().flatten(), labels.bool().flatten()
    if p.numel() != y.numel():
        raise ValueError(f"{p.numel()} probabilities but {y.numel()} labels; give one label per probability")
    positives = int(y.sum())
    if positives == 0:
        return 1.0
    order = torch.argsort(p, descending=True, stable=True)
    p, y = p[order], y[order]
    true_positives = torch.cumsum(y.double(), 0)
    said_yes = torch.arange(1, len(p) + 1, dtype=torch.float64)
    # Only where the next probability differs can a threshold say yes to exactly these.
    distinct = torch.cat([p[1:] < p[:-1], torch.tensor([True])])
    f1 = torch.where(distinct, 2 * true_positives / (said_yes + positives), -1.0)
    k = int(torch.argmax(f1))
    below = float(p[k + 1]) if k + 1 < len(p) else min(0.0, float(p[k]) - 1.0)
    return (float(p[k]) + below) / 2


def expected_decisions(probability: torch.Tensor, labels: torch.Tensor) -> Classification:
    """Metrics from the *expected* counts when each decision is a Bernoulli draw.

    A simulated user who clicks with probability ``p`` says yes to a positive item with
    probability ``p``: ``E[TP] = sum p`` over positives, ``E[FP] = sum p`` over
    negatives. Precision, recall and F1 are then ratios of these expectations.
    """
    p, labels = probability.double(), labels.bool()
    return Classification.from_counts(float(p[labels].sum()), float(p[~labels].sum()),
                                      float((1 - p[labels]).sum()), float((1 - p[~labels]).sum()))


def rmse(predicted, actual) -> float:
    """Root mean squared error."""
    predicted, actual = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def gini(counts) -> float:
    r"""Gini coefficient of non-negative ``counts`` (0: all equal; near 1: one takes all).

    :math:`G = \frac{\sum_i (2i - n - 1) x_{(i)}}{n \sum_i x_i}` with :math:`x_{(i)}` sorted
    ascending, :math:`i = 1..n` (e.g. Fleder and Hosanagar, "Blockbuster culture's next
    rise or fall", Management Science 2009, who use it for sales concentration). Zero
    when every count is zero.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    if len(x) == 0:
        raise ValueError("gini of an empty array is undefined; pass at least one count")
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError(f"counts must be finite and >= 0, got a minimum of {x[0]}")
    total = x.sum()
    if total == 0:
        return 0.0
    n = len(x)
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def concentration_curve(counts, order) -> tuple[np.ndarray, np.ndarray]:
    """The long-tail curve: share of all ``counts`` taken by the top ``x`` share of items.

    Items are ranked by ``order`` (descending; e.g. training popularity), so curves of
    simulated and real consumption are read against the same item ranking. Returns
    ``(x, y)`` with ``x[k] = (k+1)/n`` and ``y[k]`` the share of counts of the ``k+1``
    top-ranked items.
    """
    counts = np.asarray(counts, dtype=np.float64)
    ranked = counts[np.argsort(-np.asarray(order, dtype=np.float64), kind="stable")]
    total = ranked.sum()
    y = np.cumsum(ranked) / total if total > 0 else np.zeros(len(ranked))
    return np.arange(1, len(ranked) + 1) / len(ranked), y


def genre_shares(item_counts, genre_weights) -> np.ndarray:
    """Share of consumption per genre: counts spread over each item's genres, normalised."""
    shares = np.asarray(item_counts, dtype=np.float64) @ np.asarray(genre_weights, dtype=np.float64)
    total = shares.sum()
    return shares / total if total > 0 else shares
