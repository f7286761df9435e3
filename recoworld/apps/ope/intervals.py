"""Confidence intervals of the estimator study: resampled rows, or refitted models.

:func:`row_interval` is each estimator's own percentile bootstrap over logged rounds, with
an undefined estimate (a self-normalised estimator whose weights are all zero) recorded as
NaN; :func:`~recoworld.ope.refit.refit_interval` (re-exported here) reruns a model-based
estimator, model fit included, on every resample.
"""

from __future__ import annotations

import numpy as np

from recoworld.ope.refit import refit_interval

__all__ = ["refit_interval", "row_interval"]


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
