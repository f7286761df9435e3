"""Estimators for sessions: trajectories of up to ``T`` decisions, padded with a mask.

Every estimator here is called as::

    estimator.estimate_policy_value(feedback, evaluation_pscore, q_hat=None, v_hat=None)

(and ``estimate_interval`` with the same arguments plus ``n_bootstrap, alpha, seed``), with
``feedback`` a :class:`~recoworld.ope.SessionFeedback` and ``evaluation_pscore`` the
evaluation policy's ``[n, T]`` probability of each logged action. The doubly robust
estimators also take ``q_hat[i, t]``, a model's value ``Q(s_it, a_it)`` of the logged
action, and ``v_hat[i, t] = sum_a pi(a | s_it) Q(s_it, a)``, e.g. from
:meth:`~recoworld.ope.FittedQEvaluation.estimate_q`.

The policy value is ``E_pi[sum_t discount^t r_t]``. Notation: ``rho_it = pi / mu`` is the
per-step ratio, ``w_i,t = prod_{s <= t} rho_is`` the cumulative weight (``w_i,-1 = 1``).
Padded steps are an absorbing state: reward 0, ratio 1, ``q_hat = v_hat = 0``, so a
finished trajectory keeps its final weight (this is what keeps the weighted estimators
consistent when session length depends on the policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recoworld.ope import _validation as v
from recoworld.ope.base import BaseEstimator
from recoworld.ope.feedback import SessionFeedback

_DIMS = "(n_trajectories, horizon)"


class _Logged(NamedTuple):
    reward: np.ndarray    # [n, T], 0 at padding
    weight: np.ndarray    # [n, T] cumulative weight w_t
    previous: np.ndarray  # [n, T] cumulative weight w_{t-1}
    q_hat: np.ndarray | None
    v_hat: np.ndarray | None


@dataclass
class _SessionEstimator(BaseEstimator):
    discount: float = 1.0
    uses_q_function = False

    def __post_init__(self):
        v.check_scalar(self.discount, "discount", 0, 1)

    def _round_terms(self, feedback: SessionFeedback, evaluation_pscore, q_hat=None, v_hat=None) -> np.ndarray:
        name = type(self).__name__
        if not isinstance(feedback, SessionFeedback):
            raise TypeError(f"{name} needs a SessionFeedback, got {type(feedback).__name__}")
        shape, mask = feedback.reward.shape, feedback.mask
        target = v.probability(evaluation_pscore, "evaluation_pscore", shape, _DIMS, valid=mask)
        with np.errstate(over="ignore"):  # an overflow is named, with its fix, by _checked_sums
            weight = np.cumprod(target / feedback.pscore, axis=1)
        previous = np.concatenate([np.ones((shape[0], 1)), weight[:, :-1]], axis=1)
        models = [None, None]
        if self.uses_q_function:
            for j, (label, value) in enumerate((("q_hat", q_hat), ("v_hat", v_hat))):
                if value is None:
                    raise ValueError(f"{name} needs {label}, a {_DIMS} array; see FittedQEvaluation.estimate_q")
                models[j] = v.float_array(value, label, shape, _DIMS, valid=mask,
                                          fix="the Q-function must give a finite value at every real step")
        terms = self._terms(_Logged(feedback.reward, weight, previous, *models))
        return np.column_stack(terms)

    def _discounts(self, horizon: int) -> np.ndarray:
        return self.discount ** np.arange(horizon, dtype=np.float64)

    def _terms(self, logged: _Logged) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


@dataclass
class TrajectoryWiseIS(_SessionEstimator):
    """Trajectory-wise importance sampling: ``V = mean_i w_i,T-1 sum_t discount^t r_it``.

    Unbiased; its variance grows exponentially with the horizon.

    Reference: D. Precup, R. S. Sutton, S. Singh. "Eligibility Traces for Off-Policy
    Policy Evaluation", ICML 2000.
    """

    def _terms(self, logged):
        return (logged.weight[:, -1] * (logged.reward @ self._discounts(logged.reward.shape[1])),)


@dataclass
class PerDecisionIS(_SessionEstimator):
    """Per-decision importance sampling: ``V = mean_i sum_t discount^t w_i,t r_it``.

    Unbiased; a reward is reweighted only by the decisions taken before it.

    Reference: D. Precup, R. S. Sutton, S. Singh, ICML 2000.
    """

    def _terms(self, logged):
        return ((logged.weight * logged.reward) @ self._discounts(logged.reward.shape[1]),)


@dataclass
class WeightedPerDecisionIS(_SessionEstimator):
    """Weighted per-decision IS: ``V = sum_t discount^t sum_i w_i,t r_it / sum_i w_i,t``.

    Biased but consistent; invariant to rescaling the weights of any step.

    Reference: D. Precup, R. S. Sutton, S. Singh, ICML 2000.
    """

    def _terms(self, logged):
        return (*(logged.weight * logged.reward).T, *logged.weight.T)

    def _combine(self, sums, n_rounds):
        horizon = sums.shape[-1] // 2
        return (sums[..., :horizon] / sums[..., horizon:]) @ self._discounts(horizon)


@dataclass
class PerDecisionDR(_SessionEstimator):
    """Per-decision doubly robust estimator.

    ``V = mean_i sum_t discount^t [ w_i,t (r_it - q_hat_it) + w_i,t-1 v_hat_it ]``.
    Unbiased for any Q-function fitted independently of the trajectories it scores; with
    the exact Q-function, deterministic rewards and transitions it equals ``mean_i v_hat_i0``.

    Reference: N. Jiang, L. Li. "Doubly Robust Off-policy Value Evaluation for
    Reinforcement Learning", ICML 2016.
    """

    uses_q_function = True

    def _terms(self, logged):
        step = logged.weight * (logged.reward - logged.q_hat) + logged.previous * logged.v_hat
        return (step @ self._discounts(logged.reward.shape[1]),)


@dataclass
class TrajectoryWiseDR(_SessionEstimator):
    """Trajectory-wise doubly robust: the whole-trajectory weight on every correction.

    ``V = mean_i v_hat_i0 + w_i,T-1 sum_t discount^t (r_it - q_hat_it + discount v_hat_i,t+1)``
    with ``v_hat_i,T = 0``. Unbiased (future ratios have conditional mean one), but with
    the variance of trajectory-wise IS; prefer :class:`PerDecisionDR` unless for comparison.

    Reference: N. Jiang, L. Li, ICML 2016 (the per-decision form is their estimator).
    """

    uses_q_function = True

    def _terms(self, logged):
        following = np.concatenate([logged.v_hat[:, 1:], np.zeros((len(logged.v_hat), 1))], axis=1)
        residual = logged.reward - logged.q_hat + self.discount * following
        return (logged.v_hat[:, 0] + logged.weight[:, -1] * (residual @ self._discounts(residual.shape[1])),)


@dataclass
class WeightedPerDecisionDR(_SessionEstimator):
    """Weighted doubly robust (WDR): per-decision DR with self-normalised weights.

    ``V = sum_t discount^t [ sum_i w_i,t (r_it - q_hat_it) / sum_i w_i,t
    + sum_i w_i,t-1 v_hat_it / sum_i w_i,t-1 ]``. Biased but consistent, and much more
    stable than per-decision DR when weights are heavy-tailed.

    Reference: P. Thomas, E. Brunskill. "Data-Efficient Off-Policy Policy Evaluation for
    Reinforcement Learning", ICML 2016.
    """

    uses_q_function = True

    def _terms(self, logged):
        correction = logged.weight * (logged.reward - logged.q_hat)
        return (*correction.T, *(logged.previous * logged.v_hat).T, *logged.weight.T)

    def _combine(self, sums, n_rounds):
        horizon = sums.shape[-1] // 3
        correction, baseline, weight = (sums[..., j * horizon:(j + 1) * horizon] for j in range(3))
        previous = np.concatenate([np.full(weight.shape[:-1] + (1,), float(n_rounds)), weight[..., :-1]], axis=-1)
        return (correction / weight + baseline / previous) @ self._discounts(horizon)
