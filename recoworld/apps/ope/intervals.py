"""Confidence intervals of the estimator study: resampled rows, or refitted models.

:func:`row_interval` is each estimator's own percentile bootstrap over logged rounds, with
an undefined estimate (a self-normalised estimator whose weights are all zero) recorded as
NaN; :func:`refit_interval` reruns a model-based estimator, model fit included, on every
resample.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def row_interval(estimator, *args, **kwargs) -> tuple[float, float, float]:
    """``(estimate, lower, upper)`` from ``estimator.estimate_interval(*args, **kwargs)``; NaN
    where the estimator is undefined on the log (no logged choice has weight)."""
    try:
        interval = estimator.estimate_interval(*args, **kwargs)
    except ValueError as error:
        if "undefined" not in str(error):
            raise
        return np.nan, np.nan, np.nan
    return interval.estimate, interval.lower, interval.upper


def refit_interval(estimate_on, n_rows: int, n_refits: int, alpha: float, seed: int):
    r"""``(estimate, lower, upper)`` of a model-based estimator, refitting its model on every resample.

    ``estimate_on(rows)`` runs the whole estimator, model fit included, on the logged rows
    ``rows`` (indices, with repeats) and returns one value or an array of them (e.g. one per
    target). The estimate is ``estimate_on(all rows)``; the interval is
    ``estimate +- z_{1-alpha/2} sd``, with ``sd`` the standard deviation over ``n_refits``
    bootstrap resamples drawn from ``numpy.random.default_rng(seed)``.

    Why refit: the direct method and fitted Q evaluation are smooth functions of a fitted
    model, and most of their sampling variance is the model's; resampling their per-round
    terms with the model held fixed (:meth:`~recoworld.ope.BaseEstimator.estimate_interval`)
    leaves it out, and covers the truth far less often than the nominal level
    (``benchmarks/RESULTS.md``). Refitting is
    the bootstrap of the whole procedure (Efron & Tibshirani, *An Introduction to the
    Bootstrap*, 1993, ch. 6). Refits are costly, so the interval is the normal one from the
    bootstrap standard error, which 20-50 replicates estimate well (ibid., sec. 6.4), where
    percentile tails would need about a thousand. The doubly robust estimators keep the
    row bootstrap: their models are cross-fitted and their error is first-order insensitive
    to the model's (Chernozhukov et al., "Double/debiased machine learning", Econometrics
    Journal 2018), so their per-round terms carry the variance. No interval repairs a
    misspecified model's bias: what coverage DM still lacks is its bias.
    """
    rng = np.random.default_rng(int(seed))
    estimate = np.asarray(estimate_on(np.arange(n_rows)), dtype=np.float64)
    replicates = np.array([estimate_on(rng.integers(0, n_rows, n_rows)) for _ in range(n_refits)], dtype=np.float64)
    spread = NormalDist().inv_cdf(1 - alpha / 2) * replicates.std(axis=0, ddof=1)
    return estimate, estimate - spread, estimate + spread
