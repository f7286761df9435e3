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
  ``mean_weight_se`` is its standard error (over rounds: the positions of one round are
  one draw).
* ``max_weight`` and ``top1_share``, the share of the total weight carried by the top 1 %
  of rounds (at least one round): one heavy round dominating the estimate.
* ``zero_share``: rounds the evaluation policy would never have chosen.

:data:`MIN_ESS` is the effective sample size below which the evaluation command calls no
weighting estimate trustworthy: with fewer than 100 effective rounds, a mean of 0/1
rewards has a standard error above 0.05 and the bootstrap intervals of the self-normalised
estimators are themselves unreliable (Owen 2013, sec. 9.3, who uses the ESS the same way).

:func:`support_problem` reads the mean weight as a test of the log itself. With the logging
policy's true probabilities ``mu``, ``E_mu[w] = sum of pi(a | x) over the actions with
mu(a | x) > 0``, the share of the evaluation policy's probability that the log can
reach: at most 1, and 1 exactly when the logger covers the evaluation policy. A mean
weight surely below 1 therefore says that part of the value is *not identified* by the
log: no estimator learns the rewards of choices the logger never makes, or makes too
rarely to show in the log (IPS counts them as 0, DM and DR extrapolate their model to
them). One surely above 1 says that the logged propensities are not the logger's
probabilities of the logged choices: too small (a whole slate's probability logged where
one position's was meant), or those of other rows. "Surely" is :data:`SUPPORT_Z` standard
errors: with a few heavy weights the standard error is itself rough, and a log that shows
the target's choices once or twice is reported as not identifying their value.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from recoworld.wording import plural

#: Below this effective sample size no reweighting estimate is called trustworthy.
MIN_ESS = 100.0
#: Share of the evaluation policy's probability that may lie outside the log's support, or
#: excess of the mean weight over 1, before :func:`support_problem` speaks: a value moves
#: by at most this share of the reward range.
SUPPORT_TOLERANCE = 0.01
#: Standard errors by which the mean weight must clear ``1 -+ SUPPORT_TOLERANCE``: the
#: weights are skewed (a few heavy rounds), so the normal approximation is given a wide margin.
SUPPORT_Z = 4.0


def weight_diagnostics(weight) -> dict[str, float]:
    """The diagnostics of the module docstring for ``[n]`` importance weights (``[n, K]``:
    per position, flattened)."""
    rows = np.asarray(weight, dtype=np.float64)
    w = rows.ravel()
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be a non-empty array of finite numbers >= 0; got {plural(w.size, 'value')} "
                         f"with min {np.min(w) if w.size else 'n/a'}")
    per_round = rows.reshape(len(rows), -1).mean(1) if rows.ndim > 1 else w
    se = float(per_round.std(ddof=1) / math.sqrt(len(per_round))) if len(per_round) > 1 else math.inf
    se = 0.0 if se < 1e-12 else se  # equal weights: rounding, not spread
    total, squares = w.sum(), (w**2).sum()
    ess = float(total**2 / squares) if squares > 0 else 0.0
    top = max(1, math.ceil(0.01 * w.size))
    heaviest = np.sort(w)[::-1][:top].sum()
    return {
        "n": int(w.size), "ess": ess, "ess_share": ess / w.size, "mean_weight": float(w.mean()),
        "mean_weight_se": se, "max_weight": float(w.max()),
        "top1_share": float(heaviest / total) if total > 0 else math.nan, "zero_share": float((w == 0).mean()),
    }


class SupportProblem(NamedTuple):
    """What :func:`support_problem` found: ``kind`` is :data:`NOT_IDENTIFIED` or
    :data:`INCONSISTENT`; ``sentence`` says it to the user, with the fix."""

    kind: str
    sentence: str


NOT_IDENTIFIED = "not identified"
INCONSISTENT = "propensities inconsistent"


def support_problem(diagnostics: dict, name: str = "pscore") -> SupportProblem | None:
    """What the mean weight of :func:`weight_diagnostics` says is wrong with the log (module
    docstring), or None: the mean weight is within :data:`SUPPORT_TOLERANCE` of 1, or not
    :data:`SUPPORT_Z` standard errors away. ``name`` names the logged propensity."""
    mean, se = diagnostics["mean_weight"], diagnostics["mean_weight_se"]
    measured = f"the importance weights average {mean:.3g} (standard error {se:.2g})"
    if mean + SUPPORT_Z * se < 1 - SUPPORT_TOLERANCE:
        return SupportProblem(NOT_IDENTIFIED, (
            f"not identified: {measured}, so about {1 - mean:.0%} of the target policy's probability falls on "
            "choices this log does not show (the logging policy never makes them, or too rarely for "
            f"{plural(diagnostics['n'], 'logged choice', spec=',')}), whose rewards no estimator can learn from it "
            "(IPS counts them as 0, DM and DR extrapolate their model to them); log with a policy that also makes "
            "the target's choices, or evaluate a target closer to the logging policy (or, if "
            f"{name} overstates the logging probabilities, correct it)"))
    if mean - SUPPORT_Z * se > 1 + SUPPORT_TOLERANCE:
        return SupportProblem(INCONSISTENT, (
            f"the logged propensities are not the logging policy's: {measured}, but with its true probabilities "
            f"they average at most 1, so {name} is too small: a whole slate's probability logged where the "
            "probability of the item at its position was meant, or the propensities of other rows; "
            f"log {name} as the probability of each row's own logged choice"))
    return None
