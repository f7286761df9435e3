"""The estimator base class: point estimates and bootstrap intervals from per-round terms.

Every estimator in :mod:`recoworld.ope` is a ratio of sums over logged rounds. It computes
an ``[n, m]`` array of per-round terms once (``_round_terms``) and maps the column sums to
a value (``_combine``): a plain mean has ``m = 1`` and divides by ``n``; a self-normalised
estimator also sums its weights and divides by them. Resampling rows and recombining the
sums gives a bootstrap replicate, so one implementation serves every estimator.

Shared arguments of ``estimate_policy_value`` / ``estimate_interval``:
    feedback: the logged data, a :class:`~recoworld.ope.BanditFeedback`,
        :class:`~recoworld.ope.SlateFeedback` or :class:`~recoworld.ope.SessionFeedback`.
    action_dist: ``[n, n_actions]`` or ``[n, n_actions, n_positions]``, the evaluation
        policy's probability of every action in every logged round (and position).
    estimated_rewards: same shape as ``action_dist``, a reward model's prediction for every
        action (see :func:`~recoworld.ope.fit_reward_model`; fit it with cross-fitting).
    evaluation_pscore*: the evaluation policy's probability of what was logged, in the
        same layout as the logging propensity of the same name in the feedback.
    q_hat, v_hat: a model's value of the logged choice and its expectation under the
        evaluation policy (slates and sessions; see each estimator).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from recoworld.ope._validation import check_count, check_scalar
from recoworld.wording import plural

#: Replicates x rounds drawn per bootstrap chunk: bounds the scratch memory at about 200 MB.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 23


def min_resamples(alpha: float) -> int:
    """The fewest bootstrap resamples ``B`` whose percentile interval can claim ``1 - alpha``:
    the smallest ``B >= 2`` with ``(B - 1) / (B + 1) >= 1 - alpha``, i.e. ``B >= 2 / alpha - 1``
    (39 for ``alpha = 0.05``, 19 for 0.1). The widest interval ``B`` replicates give, from
    the smallest to the largest, holds a further replicate with probability
    ``(B - 1) / (B + 1)`` (the ``B`` draws cut the line into ``B + 1`` equally likely gaps),
    so with fewer no interval of them covers ``1 - alpha`` of the bootstrap distribution."""
    check_scalar(alpha, "alpha", 0, 1, low_inclusive=False, high_inclusive=False)
    # rounded first: 2 / 0.05 - 1 is 39 in exact arithmetic and must not become 40
    return max(2, math.ceil(round(2 / alpha - 1, 9)))


def check_resamples(n_bootstrap: int, alpha: float, name: str = "n_bootstrap") -> None:
    """Refuse ``n_bootstrap`` resamples too few for a ``1 - alpha`` percentile interval
    (:func:`min_resamples`), 0 and negative counts included; ``name`` is how the caller's
    user gives the count (an argument, a flag). Callers check it before any work, so that a
    long evaluation never ends on it."""
    number = not isinstance(n_bootstrap, bool) and isinstance(n_bootstrap, (int, float, np.integer, np.floating))
    if not number or math.isnan(n_bootstrap):
        check_scalar(n_bootstrap, name, 1)  # raises: not a number, or NaN
    if not float(n_bootstrap).is_integer():  # 39.5 would be cut to 39 unseen, and infinity fail in int()
        raise ValueError(f"{name}={n_bootstrap} is not a whole number of resamples; give an integer, e.g. 1000")
    least = min_resamples(alpha)
    if n_bootstrap < least:
        if n_bootstrap >= 1:
            # rounded down: the coverage it could claim is never shown as the level it lacks
            covers = math.floor(1000 * (n_bootstrap - 1) / (n_bootstrap + 1)) / 10
            why = f"the widest percentile interval of {plural(n_bootstrap, 'resample')} covers about {covers:g}%"
        else:
            why = "without a resample there is no replicate to take an interval from"
        raise ValueError(
            f"{name}={plural(n_bootstrap, 'resample')} cannot give a {_level(alpha)} interval: {why}; use "
            f"{name} >= {least}, and 1000 or more for stable ends"
        )


def _level(alpha: float) -> str:
    """``"95%"`` for ``alpha = 0.05``: the confidence level as messages give it."""
    return f"{100 * (1 - alpha):.4g}%"


class UndefinedEstimate(ValueError):
    """A self-normalised estimator asked about a log on which its normalising weights sum
    to 0 (the evaluation policy gives no logged choice, or none at some position or step,
    any probability): it has no estimate there, and no interval. A ``ValueError``, so code
    that catches those keeps working; catch this one to tell an estimator the log leaves
    undefined from an input that is wrong."""


class UndefinedInterval(ValueError):
    """A bootstrap interval refused because the estimator is defined on too few of its
    resamples (:meth:`BaseEstimator.estimate_interval`, *Undefined replicates*), while its
    estimate on the whole log is defined: a caller that reports the estimate without its
    interval finds it here. Not an :class:`UndefinedEstimate`: the estimate is not.

    Attributes:
        estimate: the estimate on the whole log.
        n_replicates: the resamples on which the estimator is defined, fewer than
            :func:`min_resamples` of ``alpha``.
        n_bootstrap: the resamples drawn.
        alpha: one minus the confidence level asked for.
    """

    def __init__(self, message: str, estimate: float, n_replicates: int, n_bootstrap: int, alpha: float):
        super().__init__(message)
        self.estimate = estimate
        self.n_replicates = n_replicates
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha

    def __reduce__(self):
        # pickled whole, so that a refusal raised in a worker process reaches the caller
        return type(self), (str(self), self.estimate, self.n_replicates, self.n_bootstrap, self.alpha)


@dataclass(frozen=True)
class PolicyValueInterval:
    """A point estimate and its percentile-bootstrap ``1 - alpha`` confidence interval
    (see :meth:`BaseEstimator.estimate_interval` for when it covers less than promised).

    Attributes:
        estimate: the estimate on the whole log.
        lower, upper: the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the replicates.
        alpha: one minus the confidence level.
        n_bootstrap: the resamples drawn.
        n_replicates: the replicates the bounds are quantiles of: ``n_bootstrap`` less the
            resamples on which a self-normalised estimator is undefined (its normalising
            weights sum to 0 there). Fewer than ``n_bootstrap`` says that the log has few
            rounds with weight, and that the interval describes only the resamples that drew
            one of them. Left out (``None``), it is ``n_bootstrap``: every resample counted.
    """

    estimate: float
    lower: float
    upper: float
    alpha: float
    n_bootstrap: int
    n_replicates: int | None = None

    def __post_init__(self):
        if self.n_replicates is None:  # built from the five fields alone: every resample counted
            object.__setattr__(self, "n_replicates", self.n_bootstrap)


class BaseEstimator(ABC):
    """An off-policy estimator: hyperparameters as dataclass fields, data as call arguments."""

    @abstractmethod
    def _round_terms(self, *args, **kwargs) -> np.ndarray:
        """``[n, m]`` per-round terms whose column sums determine the estimate."""

    def _combine(self, sums: np.ndarray, n_rounds: int) -> np.ndarray:
        """Estimates from column sums ``[..., m]``; the default is the mean of column 0."""
        return sums[..., 0] / n_rounds

    def estimate_policy_value(self, *args, **kwargs) -> float:
        """The estimated value of the evaluation policy (arguments: see the estimator)."""
        return self._value(self._round_terms(*args, **kwargs))

    def _checked_sums(self, terms: np.ndarray) -> np.ndarray:
        """The per-round terms summed over rounds. The inputs are checked finite, so a
        non-finite sum is float64 overflow of the importance weights (e.g. a trajectory-wise
        product over a long session), not the undefined 0 / 0 of a self-normalised
        estimator: it is refused as such."""
        with np.errstate(invalid="ignore", over="ignore"):
            sums = terms.sum(axis=0)
        if not np.isfinite(sums).all():
            bad_rows = ~np.isfinite(terms).all(axis=1)
            where = f" (first at logged round {int(np.argmax(bad_rows))})" if bad_rows.any() else ""
            raise ValueError(
                f"{type(self).__name__} overflows float64{where}: its importance weights exceed about 1e308; "
                "clip the weights, use a per-decision or self-normalised estimator, shorten the horizon, "
                "or evaluate a policy closer to the logging policy"
            )
        return sums

    def _value(self, terms: np.ndarray) -> float:
        sums = self._checked_sums(terms)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = float(self._combine(sums, len(terms)))
        if not np.isfinite(value):
            raise UndefinedEstimate(
                f"{type(self).__name__} is undefined on this data: its normalising weights sum to 0 "
                "(the evaluation policy gives probability 0 to every logged choice); "
                "use an estimator without self-normalisation or log more overlapping data"
            )
        return value

    def estimate_interval(self, *args, n_bootstrap: int = 1000, alpha: float = 0.05,
                          seed: int = 0, **kwargs) -> PolicyValueInterval:
        """Percentile bootstrap interval over logged rounds (slates, trajectories).

        Rounds are resampled with replacement ``n_bootstrap`` times from
        ``numpy.random.default_rng(seed)``; the same seed gives the same interval, and two
        estimators given the same seed see the same resamples. Models fitted beforehand
        (reward models, Q-functions) are held fixed, so their fitting variance is not
        included. The bounds are the replicates' ``alpha / 2`` and ``1 - alpha / 2``
        quantiles (the percentile method: B. Efron, R. Tibshirani, *An Introduction to the
        Bootstrap*, 1993, ch. 13).

        Undefined replicates: a self-normalised estimator (SNIPS, SNDR, Replay, the
        self-normalised slate and weighted session estimators) is undefined on a resample
        whose normalising weights sum to 0, one that draws no round the evaluation policy
        gives weight to (at some position or step, for the per-position and per-step forms).
        Those replicates are left out, and the result's ``n_replicates`` says how many the
        bounds rest on; below ``n_bootstrap``, the interval describes only the resamples
        that drew a round with weight, so read it with the weight diagnostics. If fewer than
        :func:`min_resamples` of ``alpha`` remain (none, at worst), no ``1 - alpha`` interval
        can rest on them (see *Resamples*): :class:`UndefinedInterval` (a ``ValueError``)
        naming the count and carrying the estimate, which the whole log defines. An estimate
        undefined on the whole log is :class:`UndefinedEstimate`, before any resample.

        Resamples: at least ``2 / alpha - 1`` (39 for ``alpha = 0.05``, 19 for 0.1;
        :func:`min_resamples`), else ``ValueError`` before any work. With fewer ``B``, even
        the range from the smallest to the largest replicate, wider than the interval, covers
        only ``(B - 1) / (B + 1)`` of the bootstrap distribution, less than the ``1 - alpha``
        claimed (0.905 for ``B = 20`` at 0.95). The minimum only makes the claim possible:
        the ends of a 95% interval need about 1000 resamples to be stable (ibid.).

        Coverage: close to ``1 - alpha`` when the effective sample size of the weights
        (:func:`~recoworld.ope.diagnostics.weight_diagnostics`) is in the hundreds or more;
        below it when a few heavily weighted rounds dominate the log (effective sample size under
        :data:`~recoworld.ope.diagnostics.MIN_ESS`): a log that holds too few of the rare
        heavy rounds underestimates and also looks precise, and no resampling of its own
        rounds can show what it lacks. BCa and the studentized bootstrap were measured on
        such logs and are not better across the estimators (they help IPS and cover less
        for DR and the weighted estimators): ``benchmarks/ope_interval_coverage.py`` and
        ``benchmarks/RESULTS.md``.
        """
        check_resamples(n_bootstrap, alpha)  # before the terms: FQE fits its Q-function there
        check_count(seed, "seed", 0)
        terms = self._round_terms(*args, **kwargs)
        # refuses weights beyond float64, and an estimator undefined on the whole log, before any resample
        estimate = self._value(terms)
        n_rounds, n_terms = terms.shape
        rng = np.random.default_rng(int(seed))
        chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n_rounds)
        sums = np.empty((int(n_bootstrap), n_terms))
        for start in range(0, int(n_bootstrap), chunk):
            stop = min(start + chunk, int(n_bootstrap))
            rows = rng.integers(0, n_rounds, size=(stop - start, n_rounds))
            # how often each round is drawn, per replicate: one matrix product sums them all
            rows += np.arange(stop - start)[:, None] * n_rounds
            counts = np.bincount(rows.ravel(), minlength=(stop - start) * n_rounds)
            sums[start:stop] = counts.reshape(stop - start, n_rounds).astype(np.float64) @ terms
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = self._combine(sums, n_rounds)
        replicates = replicates[np.isfinite(replicates)]
        self._check_defined(replicates.size, int(n_bootstrap), alpha, estimate)
        lower, upper = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
        return PolicyValueInterval(
            estimate=estimate, lower=float(lower), upper=float(upper), alpha=float(alpha),
            n_bootstrap=int(n_bootstrap), n_replicates=int(replicates.size),
        )

    def _check_defined(self, n_defined: int, n_bootstrap: int, alpha: float, estimate: float) -> None:
        """Refuse an interval whose defined replicates are too few for its level: the
        count :func:`check_resamples` asks of ``n_bootstrap`` holds for what is left of it.
        The refusal carries ``estimate``, the whole log's, for callers that report it alone."""
        least = min_resamples(alpha)
        if n_defined < least:
            raise UndefinedInterval(
                f"{type(self).__name__} is undefined on {n_bootstrap - n_defined} of the {n_bootstrap} bootstrap "
                f"resamples and defined on {n_defined}, fewer than the {least} a {_level(alpha)} interval needs: "
                "a resample is undefined when its normalising weights sum to 0, and the log has very few rounds "
                "with non-zero weight (the evaluation policy rarely makes the logged choices); log more rounds, or "
                "with a logging policy that overlaps more with the evaluation policy, or use an estimator defined "
                "on every resample, such as IPS or DM",
                estimate=estimate, n_replicates=n_defined, n_bootstrap=n_bootstrap, alpha=alpha,
            )


def row_interval(estimator, *args, **kwargs) -> tuple[float, float, float, int | None]:
    """``(estimate, lower, upper, n_replicates)`` from ``estimator.estimate_interval(*args,
    **kwargs)``, ``n_replicates`` being the bootstrap replicates the bounds rest on
    (:class:`PolicyValueInterval`). Where the estimator is undefined on
    the log (no logged choice has weight: :class:`UndefinedEstimate`),
    ``(nan, nan, nan, None)``; where it is defined on the log but on fewer resamples than a
    ``1 - alpha`` interval needs (:class:`UndefinedInterval`), the
    estimate with NaN bounds and the count of resamples it was defined on: the estimate
    counts, the interval does not exist."""
    try:
        interval = estimator.estimate_interval(*args, **kwargs)
    except UndefinedInterval as refused:
        return refused.estimate, np.nan, np.nan, refused.n_replicates
    except UndefinedEstimate:
        return np.nan, np.nan, np.nan, None
    return interval.estimate, interval.lower, interval.upper, interval.n_replicates
