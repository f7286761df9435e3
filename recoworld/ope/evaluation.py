"""Every single-action estimator on one log, with honest intervals and weight diagnostics.

A :class:`BanditProblem` is a log (:class:`~recoworld.ope.BanditFeedback`), the evaluation
policy's action distribution on its rounds, and the features of a reward model.
:func:`evaluate_bandit` reports IPS, SNIPS, DM, DR and SNDR: the weighting estimators
with their percentile bootstrap over rounds, the model-based ones with
:func:`~recoworld.ope.refit.refit_interval`, which refits the reward model (cross-fitted,
copies of a round kept in one fold) on every resample, so the model's own variance is in
the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recoworld.ope.bandit import DM, DR, IPS, SNDR, SNIPS
from recoworld.ope.base import UndefinedEstimate, check_resamples, row_interval
from recoworld.ope.diagnostics import weight_diagnostics
from recoworld.ope.feedback import BanditFeedback
from recoworld.ope.refit import refit_interval, refits_defining
from recoworld.ope.reward_model import (
    LogisticRegression,
    RidgeRegression,
    fit_reward_model,
)

#: The single-action estimators the evaluation reports, by name.
BANDIT_ESTIMATORS = {"IPS": IPS(), "SNIPS": SNIPS(), "DM": DM(), "DR": DR(), "SNDR": SNDR()}
#: Those that use the reward model (their intervals refit it).
MODEL_BASED = ("DM", "DR", "SNDR")
#: Those that reweight logged rounds (their trust depends on the effective sample size).
WEIGHTING = ("IPS", "SNIPS", "DR", "SNDR")


@dataclass
class BanditProblem:
    """A log and what the estimators need besides it.

    Attributes:
        feedback: the logged rounds.
        action_dist: ``[n, n_actions, n_positions]``, the evaluation policy's distribution.
        features_of: ``rows -> [len(rows), n_actions, n_positions, d]`` reward-model
            features of every (action, position) of the rounds ``rows`` (indices, with
            repeats); a callable so that a broadcast view serves a log of many rounds.
        n_folds: cross-fitting folds of the reward model.
    """

    feedback: BanditFeedback
    action_dist: np.ndarray
    features_of: Callable[[np.ndarray], np.ndarray]
    n_folds: int = 5

    @property
    def n(self) -> int:
        return self.feedback.n_rounds

    def weights(self) -> np.ndarray:
        """``[n]`` importance weights ``pi(a_i at p_i | x_i) / pscore_i``."""
        f = self.feedback
        return self.action_dist[np.arange(self.n), f.action, f.position_or_zero] / f.pscore

    def regressor(self):
        """Logistic regression for 0/1 rewards, else ridge regression."""
        binary = np.isin(self.feedback.reward, (0.0, 1.0)).all()
        return LogisticRegression() if binary else RidgeRegression()

    def subset(self, rows: np.ndarray) -> BanditFeedback:
        f = self.feedback
        return BanditFeedback(f.action[rows], f.reward[rows], f.pscore[rows],
                              None if f.position is None else f.position[rows])

    def reward_model(self, rows: np.ndarray, seed: int) -> np.ndarray:
        """Cross-fitted ``[len(rows), n_actions, n_positions]`` predictions on the rounds ``rows``."""
        feedback = self.subset(rows)
        features = self.features_of(rows)
        if feedback.position is None:
            features = features[:, :, 0]
        model = fit_reward_model(feedback, features, self.regressor(), n_folds=self.n_folds, seed=seed, groups=rows)
        return model if model.ndim == 3 else model[:, :, None]

    def estimates(self, names, rows: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """Each estimator of ``names`` on the rounds ``rows`` (all by default), reward model
        refitted on them; NaN where a self-normalised estimator is undefined."""
        rows = np.arange(self.n) if rows is None else rows
        feedback, dist = self.subset(rows), self.action_dist[rows]
        model = self.reward_model(rows, seed) if any(name in MODEL_BASED for name in names) else None
        return np.array([value_or_nan(BANDIT_ESTIMATORS[name], feedback, dist, model) for name in names])


def value_or_nan(estimator, *args, **kwargs) -> float:
    """``estimator.estimate_policy_value(*args, **kwargs)``, or NaN where the data leave it
    undefined (:class:`~recoworld.ope.base.UndefinedEstimate`: a self-normalised estimator
    whose weights sum to 0), so that a refitted interval counts that resample as undefined
    (:func:`~recoworld.ope.refit.refit_interval`) rather than the whole study failing."""
    try:
        return estimator.estimate_policy_value(*args, **kwargs)
    except UndefinedEstimate:
        return np.nan


def evaluate_bandit(problem: BanditProblem, n_bootstrap: int = 1000, n_refits: int = 20, alpha: float = 0.05,
                    seed: int = 0) -> list[dict]:
    """One row per estimator: ``{estimator, estimate, lower, upper, interval, n_replicates}``.

    ``interval`` says how it was drawn (``"rows"`` or ``"refit"``; see the module
    docstring); ``n_replicates`` is the bootstrap replicates the bounds of a ``"rows"``
    interval rest on (:class:`~recoworld.ope.base.PolicyValueInterval`: fewer than
    ``n_bootstrap`` where SNIPS is undefined on some resamples), ``None`` for a refitted
    one and where the estimate is undefined; but where a refitted estimator is undefined on
    some of the ``n_refits`` resamples (SNDR on one without weight; DM, DR and SNDR on one of
    fewer distinct rounds than ``problem.n_folds``, which leaves a fold of the reward model
    empty), ``n_replicates`` counts the refits that defined it, which its
    bounds rest on, and the bounds are NaN where they are too few
    (:func:`~recoworld.ope.refit.refit_interval`: fewer than 95% of the refits), so that a
    report can say why. NaN marks what is
    undefined: all three numbers where SNIPS is undefined on the log
    (:class:`~recoworld.ope.base.UndefinedEstimate`); only the bounds where it is defined
    on too few resamples for a ``1 - alpha`` interval
    (:class:`~recoworld.ope.base.UndefinedInterval`: the estimate stands, and
    ``n_replicates`` says on how many it was defined). ``n_bootstrap`` below
    :func:`~recoworld.ope.base.min_resamples` of ``alpha`` is refused before any estimate."""
    check_resamples(n_bootstrap, alpha)
    rows = []
    for name in ("IPS", "SNIPS"):
        estimate, lower, upper, replicates = row_interval(BANDIT_ESTIMATORS[name], problem.feedback,
                                                          problem.action_dist, n_bootstrap=n_bootstrap, alpha=alpha,
                                                          seed=seed)
        rows.append({"estimator": name, "estimate": estimate, "lower": lower, "upper": upper, "interval": "rows",
                     "n_replicates": replicates})
    defined = []  # per call, the estimators it defines: SNDR is undefined on a resample without weight

    def estimates_on(resample: np.ndarray) -> np.ndarray:
        values = problem.estimates(MODEL_BASED, resample, seed)
        defined.append(np.isfinite(values))
        return values

    estimate, lower, upper = refit_interval(estimates_on, problem.n, n_refits, alpha, seed,
                                            n_folds=problem.n_folds)
    replicates = refits_defining(estimate, defined[1:], n_refits)  # the first call is the whole log's estimate
    for j, name in enumerate(MODEL_BASED):
        rows.append({"estimator": name, "estimate": float(estimate[j]), "lower": float(lower[j]),
                     "upper": float(upper[j]), "interval": "refit", "n_replicates": replicates[j]})
    return rows


def bandit_diagnostics(problem: BanditProblem) -> dict[str, float]:
    """:func:`~recoworld.ope.diagnostics.weight_diagnostics` of the problem's weights."""
    return weight_diagnostics(problem.weights())
