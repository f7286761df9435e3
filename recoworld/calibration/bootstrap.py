r"""Bootstrap intervals over users, and the reliability of predicted probabilities.

Every metric of the fidelity report is a ratio of sums of per-user quantities (the mean
per-user AUC, pooled F1 counts, squared rating errors, a reliability bin's hits). The
bootstrap resamples users with replacement (Efron and Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13): each draw is a vector of multinomial counts over users, the
metric is recomputed with those weights, and the interval is the 2.5 and 97.5 percentiles
of the draws. Resampling users, not single ratings, keeps each user's ratings together, as
they are not independent.

**Undefined draws.** A metric can be undefined on a resample: no user with an AUC drawn,
no chosen item and no "yes" for an F1, no user with a prediction in a reliability bin, too
few sessions for a correlation. Such a draw lies in no interval, so an interval holding
95% of the resamples exists only when at most 5% of them are undefined: the bounds are the
percentiles of the defined draws when at least :func:`least_defined` of the draws are
defined (95% of them, rounded up), and NaN otherwise, the value kept. The floor is a share
of the draws asked for, so it holds alike for the report's 200 and for a quick run's 20.
Every interval says on how many draws it rests: ``{"value", "low", "high", "n_draws",
"n_defined"}``, ``n_draws`` the resamples drawn and ``n_defined`` those the metric is
defined on. NaN bounds with ``n_defined`` below ``least_defined(n_draws)`` say that the
metric is undefined on too many resamples (a bin, or a split, with few users).

This is not the floor of :func:`recoworld.ope.min_resamples` (39 for a 95% interval): that
one is a count, fixed whatever was drawn, and answers whether ``B`` replicates can claim 95%
at all. Of the report's 200 draws it would accept 39, the interval then describing only
the fifth of the resamples that happened to draw a user the metric needs; here the share
is what matters. Fewer than 39 draws (quick runs and tests) give intervals that cover
less than 95% whatever is defined: the report draws 200.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Reliability bins of predicted click probabilities.
BINS = 10
#: One minus the level of every interval: 95% percentile intervals.
ALPHA = 0.05


def user_draws(n_users: int, draws: int = 200, seed: int = 0) -> np.ndarray:
    """``[draws, n_users]`` multinomial counts: how often each user is drawn in each resample."""
    return np.random.default_rng(seed).multinomial(n_users, np.full(n_users, 1.0 / n_users), size=draws)


def least_defined(n_draws: int) -> int:
    """The fewest of ``n_draws`` draws a metric must be defined on for its interval:
    ``1 - ALPHA`` of them, rounded up, and at least one (module docstring, *Undefined draws*)."""
    # rounded first, as recoworld.ope.min_resamples is: a float error never asks for one draw more
    return max(1, math.ceil(round((1 - ALPHA) * n_draws, 9)))


def interval(value: float, draws: np.ndarray) -> dict:
    """``{"value", "low", "high", "n_draws", "n_defined"}``: the estimate ``value``, the 95%
    percentile interval of its ``draws`` (one per resample; NaN or infinite where the
    metric is undefined on it), the draws and how many are defined. Below
    :func:`least_defined` defined draws the bounds are NaN: no interval."""
    finite = draws[np.isfinite(draws)]
    if len(finite) >= least_defined(len(draws)):
        low, high = np.percentile(finite, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    else:
        low, high = np.nan, np.nan
    return {"value": float(value), "low": float(low), "high": float(high), "n_draws": len(draws),
            "n_defined": len(finite)}


def is_undefined(entry: dict) -> bool:
    """Whether the interval ``entry`` (:func:`interval`) was refused for too few defined draws."""
    return entry["n_defined"] < least_defined(entry["n_draws"])


def ratio(numerator: np.ndarray, denominator: np.ndarray, weights: np.ndarray) -> dict:
    """``sum(numerator) / sum(denominator)`` over users, with its bootstrap interval."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return interval(numerator.sum() / denominator.sum(), (weights @ numerator) / (weights @ denominator))


def mean_auc(auc: torch.Tensor, weights: np.ndarray) -> dict:
    """The mean per-user AUC (users without one left out), with its interval."""
    a = auc.double().numpy()
    valid = np.isfinite(a)
    return ratio(np.where(valid, a, 0.0), valid.astype(np.float64), weights)


def pooled_f1(probability: torch.Tensor, labels: torch.Tensor, users: torch.Tensor, n_users: int,
              weights: np.ndarray, threshold: float = 0.5) -> dict:
    """F1 of "would watch" = ``probability > threshold``, pooled over users, with its interval.
    A resample without a chosen item and without a "yes" has no F1: it is left out of the
    interval, as an empty resample is for every other metric, not counted as 0."""
    yes, labels = (probability > threshold).numpy(), labels.bool().numpy()
    users = users.numpy()
    tp, fp, fn = (np.bincount(users, weights=(mask).astype(np.float64), minlength=n_users)
                  for mask in (yes & labels, yes & ~labels, ~yes & labels))
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = 2 * (weights @ tp) / (2 * (weights @ tp) + weights @ fp + weights @ fn)
        value = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
    return interval(value if np.isfinite(value) else 0.0, draws)


def user_rmse(error: np.ndarray, users: np.ndarray, n_users: int, weights: np.ndarray) -> dict:
    """RMSE of rating ``error``s, with its interval over users."""
    squared = np.bincount(users, weights=error ** 2, minlength=n_users)
    counts = np.bincount(users, minlength=n_users).astype(np.float64)
    out = ratio(squared, counts, weights)
    return {**out, **{k: float(np.sqrt(out[k])) for k in ("value", "low", "high")}}


def reliability(probability: torch.Tensor, labels: torch.Tensor, users: torch.Tensor, n_users: int,
                weights: np.ndarray) -> dict:
    r"""The calibration curve: per bin of predicted probability, the mean prediction and the
    observed share of chosen items (with intervals), and the expected calibration error
    :math:`\sum_k \frac{n_k}{n} |\bar y_k - \bar p_k|` (Naeini, Cooper and Hauskrecht,
    AAAI 2015) with its interval."""
    p, y, u = probability.double().numpy(), labels.double().numpy(), users.numpy()
    bins = np.minimum((p * BINS).astype(np.int64), BINS - 1)
    index = u * BINS + bins
    count = np.bincount(index, minlength=n_users * BINS).reshape(n_users, BINS).astype(np.float64)
    hits = np.bincount(index, weights=y, minlength=n_users * BINS).reshape(n_users, BINS)
    mass = np.bincount(index, weights=p, minlength=n_users * BINS).reshape(n_users, BINS)
    curve = []
    for k in range(BINS):
        if count[:, k].sum() > 0:
            curve.append({"bin": [k / BINS, (k + 1) / BINS], "n": int(count[:, k].sum()),
                          "predicted": float(mass[:, k].sum() / count[:, k].sum()),
                          "observed": ratio(hits[:, k], count[:, k], weights)})

    def ece(w):
        n, h, m = w @ count, w @ hits, w @ mass
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(np.nan_to_num(h / n) - np.nan_to_num(m / n))
            return (n * gap).sum(-1) / n.sum(-1)

    return {"curve": curve, "ece": interval(float(ece(np.ones(n_users))), ece(weights))}
