"""Importance-weight diagnostics: how far a log supports the policy it is asked about.

An estimate that reweights logged rounds is only as good as its weights
``w_i = pi(a_i | x_i) / mu(a_i | x_i)``. :func:`weight_diagnostics` summarises them:

* ``ess``: Kish's effective sample size ``(sum w)^2 / sum w^2`` (L. Kish, *Survey
  Sampling*, 1965; A. Owen, *Monte Carlo theory, methods and examples*, 2013, sec. 9.3):
  the number of equally weighted rounds that would give the same variance of a weighted
  mean. ``ess_share`` is ``ess / n``.
* ``mean_weight``: about 1 when the logging policy covers the evaluation policy (its
  expectation is the share of the evaluation policy's mass that the log can reach); far
  below 1 flags actions the logger never takes, far above it wrong propensities.
* ``max_weight`` and ``top1_share``, the share of the total weight carried by the top 1 %
  of rounds (at least one round): one heavy round dominating the estimate.
* ``zero_share``: rounds the evaluation policy would never have chosen.

:data:`MIN_ESS` is the effective sample size below which the evaluation command calls no
weighting estimate trustworthy: with fewer than 100 effective rounds, a mean of 0/1
rewards has a standard error above 0.05 and the bootstrap intervals of the self-normalised
estimators are themselves unreliable (Owen 2013, sec. 9.3, who uses the ESS the same way).
"""

from __future__ import annotations

import math

import numpy as np

#: Below this effective sample size no reweighting estimate is called trustworthy.
MIN_ESS = 100.0


def weight_diagnostics(weight) -> dict[str, float]:
    """The diagnostics of the module docstring for ``[n]`` importance weights (``[n, K]``:
    per position, flattened)."""
    w = np.asarray(weight, dtype=np.float64).ravel()
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be a non-empty array of finite numbers >= 0; got {w.size} values "
                         f"with min {np.min(w) if w.size else 'n/a'}")
    total, squares = w.sum(), (w**2).sum()
    ess = float(total**2 / squares) if squares > 0 else 0.0
    top = max(1, math.ceil(0.01 * w.size))
    heaviest = np.sort(w)[::-1][:top].sum()
    return {
        "n": int(w.size), "ess": ess, "ess_share": ess / w.size, "mean_weight": float(w.mean()),
        "max_weight": float(w.max()), "top1_share": float(heaviest / total) if total > 0 else math.nan,
        "zero_share": float((w == 0).mean()),
    }
