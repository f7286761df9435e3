"""Confidence intervals of the estimator study: resampled rows, or refitted models.

:func:`~recoworld.ope.base.row_interval` (re-exported here) is each estimator's own
percentile bootstrap over logged rounds, with what the log leaves undefined recorded as
NaN: the estimate and its bounds where a self-normalised estimator's weights sum to 0 on
the log, the bounds alone where it is defined on the log but on too few resamples for an
interval;
:func:`~recoworld.ope.refit.refit_interval` (re-exported here) reruns a model-based
estimator, model fit included, on every resample.
"""

from __future__ import annotations

from recoworld.ope.base import row_interval
from recoworld.ope.refit import refit_interval

__all__ = ["refit_interval", "row_interval"]
