"""Bootstrap intervals that refit the model behind a model-based estimate on every resample."""

from __future__ import annotations

import warnings

import numpy as np

from recoworld.ope import _validation as v


def refit_interval(estimate_on, n_rows: int, n_refits: int, alpha: float, seed: int, n_folds: int | None = None):
    r"""``(estimate, lower, upper)`` of a model-based estimator, refitting its model on every resample.

    ``estimate_on(rows)`` runs the whole estimator, model fit included, on the logged rows
    ``rows`` (indices, with repeats) and returns one value or an array of them (e.g. one per
    target). The estimate is ``estimate_on(all rows)``; the interval is
    ``estimate +- t_{1-alpha/2, n_refits-1} sd``, with ``sd`` the standard deviation over
    ``n_refits`` bootstrap resamples drawn from ``numpy.random.default_rng(seed)`` (Student's
    quantile, since ``sd`` is estimated from few replicates). A replicate that is NaN or
    infinite (a self-normalised estimator, SNDR, undefined on a resample without weight) lies
    in no interval: ``sd`` is taken over the defined replicates, ``t`` has their number less
    one degrees of freedom, and the bounds are NaN, the estimate kept, where fewer than
    :func:`~recoworld.calibration.bootstrap.least_defined` of the ``n_refits`` are defined
    (95% of them, rounded up: the fidelity bootstrap's rule for draws left undefined).

    ``n_folds``: the folds over which ``estimate_on`` cross-fits its model, the copies of a
    row in one fold (:func:`~recoworld.ope.reward_model.cross_fitting_folds`). A resample of
    fewer distinct rows than that leaves a fold without a row, and is such an undefined
    replicate, ``estimate_on`` not called on it: a small log gets NaN bounds where too few
    refits are defined, never an error. None: every resample is refitted.

    Why refit: the direct method and fitted Q evaluation are smooth functions of a fitted
    model, and most of their sampling variance is the model's; resampling their per-round
    terms with the model held fixed (:meth:`~recoworld.ope.BaseEstimator.estimate_interval`)
    leaves it out, and covers the truth far less often than the nominal level
    (``benchmarks/RESULTS.md``). Refitting is
    the bootstrap of the whole procedure (Efron & Tibshirani, *An Introduction to the
    Bootstrap*, 1993, ch. 6). Refits are costly, so the interval is the normal one from the
    bootstrap standard error, which 20-50 replicates estimate well (ibid., sec. 6.4), where
    percentile tails would need about a thousand. The doubly robust estimators' models are
    cross-fitted and their error is first-order insensitive to the model's (Chernozhukov et
    al., "Double/debiased machine learning", Econometrics
    Journal 2018), so their per-round terms carry the most variance; but with few rounds, or
    a model that moves much between resamples, the model's share is not negligible, so the
    doubly robust estimators refit too wherever this library reports them. No interval
    repairs a misspecified model's bias: what coverage DM still lacks is its bias.
    """
    v.check_count(n_refits, "n_refits", 2)
    v.check_count(seed, "seed", 0)
    v.check_scalar(alpha, "alpha", 0, 1, low_inclusive=False, high_inclusive=False)
    rng = np.random.default_rng(int(seed))
    estimate = np.asarray(estimate_on(np.arange(n_rows)), dtype=np.float64)
    undefined = np.full_like(estimate, np.nan)
    resamples = (rng.integers(0, n_rows, n_rows) for _ in range(n_refits))  # drawn whether refitted or not
    replicates = np.array([estimate_on(rows) if n_folds is None or len(np.unique(rows)) >= n_folds else undefined
                           for rows in resamples], dtype=np.float64)
    from scipy.stats import t as student_t

    from recoworld.calibration.bootstrap import least_defined

    defined = np.isfinite(replicates)
    n_defined = defined.sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # "Degrees of freedom <= 0": NaN, refused below
        # where every replicate is defined, the plain standard deviation, as before to the last bit
        sd = np.where(n_defined == n_refits, replicates.std(axis=0, ddof=1),
                      np.std(replicates, axis=0, ddof=1, where=defined))
    # Student's t with one degree of freedom fewer than the defined replicates: the standard
    # error is itself estimated from few replicates, and z would understate the interval's width
    spread = np.where(n_defined >= least_defined(n_refits),
                      student_t.ppf(1 - alpha / 2, np.maximum(n_defined - 1, 1)) * sd, np.nan)
    return estimate, estimate - spread, estimate + spread


def refits_defining(estimate: np.ndarray, refitted: list[np.ndarray], n_refits: int) -> list[int | None]:
    """Per value of ``estimate`` (the whole log's, of a :func:`refit_interval`
    of ``n_refits``), the refits that defined it: ``refitted`` holds ``np.isfinite`` of each
    refit's values, and a refit left out for too few distinct rounds (``n_folds``) defines
    none. None where nothing is counted: every refit defined it, or the whole log leaves it
    undefined (as SNIPS); the ``n_replicates`` of a refitted row."""
    counts = np.sum([np.zeros(np.shape(estimate), dtype=int), *refitted], axis=0)
    return [int(count) if np.isfinite(value) and count < n_refits else None
            for value, count in zip(np.ravel(estimate), np.ravel(counts))]


def bias_aware_interval(estimate: float, se: float, bias_bound: float, alpha: float) -> tuple[float, float]:
    r"""``(lower, upper)``: the shortest interval ``estimate +- c se`` that covers with
    probability ``1 - alpha`` whatever the estimator's bias ``b``, as long as ``|b| <= bias_bound``.

    With a normal estimate, the worst case is ``|b| = bias_bound``, so ``c`` is
    ``cv_alpha(t)``, the ``1 - alpha`` quantile of ``|N(t, 1)|`` at ``t = bias_bound / se``:
    the root of ``Phi(c - t) - Phi(-c - t) = 1 - alpha``. It is ``z_{1-alpha/2}`` at ``t = 0``
    and about ``t + z_{1-alpha}`` for large ``t``. Reference: T. Armstrong, M. Kolesár,
    "Simple and honest confidence intervals in nonparametric regression", Quantitative
    Economics 11(1), 2020 (eq. 5).
    """
    v.check_scalar(alpha, "alpha", 0, 1, low_inclusive=False, high_inclusive=False)
    if not (np.isfinite(se) and se >= 0 and np.isfinite(bias_bound) and bias_bound >= 0):
        raise ValueError(f"se={se}, bias_bound={bias_bound}; both must be finite and >= 0")
    if se == 0:
        return estimate - bias_bound, estimate + bias_bound
    from scipy.optimize import brentq
    from scipy.stats import norm

    t = bias_bound / se
    critical = brentq(lambda c: norm.cdf(c - t) - norm.cdf(-c - t) - (1 - alpha), 0.0, t + 10.0)
    return estimate - critical * se, estimate + critical * se
