"""Estimators for single-action (optionally per-position) logged feedback.

Every estimator here is called as::

    estimator.estimate_policy_value(feedback, action_dist, estimated_rewards=None)
    estimator.estimate_interval(feedback, action_dist, estimated_rewards=None,
                                n_bootstrap=1000, alpha=0.05, seed=0)

with ``feedback`` a :class:`~recoworld.ope.BanditFeedback`, ``action_dist`` the evaluation
policy's ``[n, n_actions(, n_positions)]`` probabilities and ``estimated_rewards`` a reward
model's predictions of the same shape (required by the model-based estimators, ignored by
the others). Notation: ``w_i = pi(a_i | x_i) / pscore_i`` is the importance weight of the
logged action, ``q(x, a)`` the reward model and ``dm_i = sum_a pi(a | x_i) q(x_i, a)``, all
at the logged position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recoworld.ope import _validation as v
from recoworld.ope.base import BaseEstimator
from recoworld.ope.feedback import BanditFeedback


class _Logged(NamedTuple):
    reward: np.ndarray
    pi: np.ndarray        # pi(a_i | x_i) of the logged action
    weight: np.ndarray    # pi / pscore
    dm: np.ndarray | None        # sum_a pi(a | x_i) q(x_i, a)
    q_logged: np.ndarray | None  # q(x_i, a_i)


class BanditEstimator(BaseEstimator):
    """Checks the inputs once and hands the estimator a :class:`_Logged` view."""

    uses_reward_model = False

    def _round_terms(self, feedback: BanditFeedback, action_dist, estimated_rewards=None) -> np.ndarray:
        if not isinstance(feedback, BanditFeedback):
            raise TypeError(f"{type(self).__name__} needs a BanditFeedback, got {type(feedback).__name__}")
        n = feedback.n_rounds
        position = feedback.position_or_zero
        dist = v.action_distribution(action_dist, n, int(position.max()) + 1)
        action = v.int_array(feedback.action, "feedback.action", (n,), "(n_rounds,)", what="action ids",
                             high=dist.shape[1], source="action_dist")
        rows = np.arange(n)
        pi = dist[rows, action, position]
        dm = q_logged = None
        if self.uses_reward_model:
            if estimated_rewards is None:
                raise ValueError(
                    f"{type(self).__name__} needs estimated_rewards (a reward model's prediction for every "
                    "action, same shape as action_dist); see recoworld.ope.fit_reward_model"
                )
            q = v.to_numpy(estimated_rewards, "estimated_rewards")
            q = q[:, :, None] if q.ndim == 2 else q
            q = v.float_array(q, "estimated_rewards", dist.shape, "action_dist.shape",
                              fix="the reward model must predict a finite reward for every action")
            dm = np.einsum("ij,ij->i", dist[rows, :, position], q[rows, :, position])
            q_logged = q[rows, action, position]
        logged = _Logged(feedback.reward, pi, pi / feedback.pscore, dm, q_logged)
        return np.stack(self._terms(logged), axis=1)

    def _terms(self, logged: _Logged) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


@dataclass
class Replay(BanditEstimator):
    """Replay / direct matching (Li et al., 2011): the mean reward of the matching rounds.

    ``V = sum_i pi(a_i | x_i) r_i / sum_i pi(a_i | x_i)``; for a deterministic evaluation
    policy, the average reward over the rounds where the logged action is the one it would
    have chosen. It ignores the logging propensities and is consistent only when the logging
    policy is uniformly random (the setting of the reference); otherwise prefer SNIPS.

    Reference: L. Li, W. Chu, J. Langford, X. Wang. "Unbiased Offline Evaluation of
    Contextual-bandit-based News Article Recommendation Algorithms", WSDM 2011.
    """

    def _terms(self, logged):
        return logged.pi * logged.reward, logged.pi

    def _combine(self, sums, n_rounds):
        return sums[..., 0] / sums[..., 1]


@dataclass
class IPS(BanditEstimator):
    """Inverse propensity scoring with optional weight clipping.

    ``V = mean_i min(w_i, max_weight) r_i``. Unbiased when ``max_weight`` is infinite (and
    the logging policy covers the evaluation policy's support); clipping trades variance
    for a bias of ``-E[(w - max_weight)_+ r]``.

    Reference: D. G. Horvitz, D. J. Thompson. "A Generalization of Sampling Without
    Replacement from a Finite Universe", JASA 1952; clipping: L. Bottou et al.
    "Counterfactual Reasoning and Learning Systems", JMLR 2013.
    """

    max_weight: float = math.inf

    def __post_init__(self):
        v.check_scalar(self.max_weight, "max_weight", 0, low_inclusive=False)

    def _terms(self, logged):
        return (np.minimum(logged.weight, self.max_weight) * logged.reward,)


@dataclass
class SNIPS(BanditEstimator):
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``.

    Biased but consistent; invariant to rescaling all weights, and bounded by the observed
    rewards.

    Reference: A. Swaminathan, T. Joachims. "The Self-Normalized Estimator for
    Counterfactual Learning", NeurIPS 2015.
    """

    def _terms(self, logged):
        return logged.weight * logged.reward, logged.weight

    def _combine(self, sums, n_rounds):
        return sums[..., 0] / sums[..., 1]


@dataclass
class DM(BanditEstimator):
    """Direct method: ``V = mean_i sum_a pi(a | x_i) q(x_i, a)``.

    Unbiased only if the reward model is; ignores the observed rewards.

    Reference: A. Beygelzimer, J. Langford. "The Offset Tree for Learning with Partial
    Labels", KDD 2009.
    """

    uses_reward_model = True

    def _terms(self, logged):
        return (logged.dm,)


class _ShrunkDoublyRobust(BanditEstimator):
    """``V = mean_i dm_i + s(w_i) (r_i - q(x_i, a_i))`` for a weight transform ``s``."""

    uses_reward_model = True

    def _shrink(self, weight: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _terms(self, logged):
        return (logged.dm + self._shrink(logged.weight) * (logged.reward - logged.q_logged),)


@dataclass
class DR(_ShrunkDoublyRobust):
    """Doubly robust: ``V = mean_i dm_i + min(w_i, max_weight) (r_i - q(x_i, a_i))``.

    Unbiased for any reward model fitted independently of the rows it scores (use
    cross-fitting) when ``max_weight`` is infinite; exact when the model is.

    Reference: M. Dudik, J. Langford, L. Li. "Doubly Robust Policy Evaluation and
    Learning", ICML 2011.
    """

    max_weight: float = math.inf

    def __post_init__(self):
        v.check_scalar(self.max_weight, "max_weight", 0, low_inclusive=False)

    def _shrink(self, weight):
        return np.minimum(weight, self.max_weight)


@dataclass
class SNDR(BanditEstimator):
    """Self-normalised DR: ``V = mean_i dm_i + sum_i w_i (r_i - q_i) / sum_i w_i``.

    Reference: N. Kallus, M. Uehara. "Intrinsically Efficient, Stable, and Bounded
    Off-Policy Evaluation for Reinforcement Learning", NeurIPS 2019.
    """

    uses_reward_model = True

    def _terms(self, logged):
        return logged.dm, logged.weight * (logged.reward - logged.q_logged), logged.weight

    def _combine(self, sums, n_rounds):
        return sums[..., 0] / n_rounds + sums[..., 1] / sums[..., 2]


@dataclass
class SwitchDR(_ShrunkDoublyRobust):
    """Switch-DR: the DR correction only where the weight is at most ``tau``.

    ``V = mean_i dm_i + 1{w_i <= tau} w_i (r_i - q(x_i, a_i))``; ``tau = inf`` is DR and
    ``tau = 0`` is DM. (This is the DR variant used by Open Bandit Pipeline; the paper's
    estimator switches IPS and DM per action.)

    Reference: Y.-X. Wang, A. Agarwal, M. Dudik. "Optimal and Adaptive Off-policy
    Evaluation in Contextual Bandits", ICML 2017.
    """

    tau: float = math.inf

    def __post_init__(self):
        v.check_scalar(self.tau, "tau", 0)

    def _shrink(self, weight):
        return np.where(weight <= self.tau, weight, 0.0)


@dataclass
class DRos(_ShrunkDoublyRobust):
    """DR with optimistic shrinkage: weights ``w_i -> lambda_ w_i / (w_i^2 + lambda_)``.

    ``V = mean_i dm_i + lambda_ w_i / (w_i^2 + lambda_) (r_i - q(x_i, a_i))``;
    ``lambda_ = inf`` is DR and ``lambda_ = 0`` is DM.

    Reference: Y. Su, M. Dimakopoulou, A. Krishnamurthy, M. Dudik. "Doubly Robust
    Off-policy Evaluation with Shrinkage", ICML 2020.
    """

    lambda_: float = math.inf

    def __post_init__(self):
        v.check_scalar(self.lambda_, "lambda_", 0)

    def _shrink(self, weight):
        if math.isinf(self.lambda_):
            return weight
        # at lambda_ = 0 a round the evaluation policy never takes (w = 0) would be 0 / 0;
        # its shrunk weight is 0 for every lambda_ > 0, so it stays 0 in the limit (DM)
        return np.divide(self.lambda_ * weight, weight**2 + self.lambda_,
                         out=np.zeros_like(weight), where=weight > 0)


@dataclass
class SubGaussianIPS(BanditEstimator):
    """Sub-Gaussian IPS: harmonic smoothing of the weights, ``w -> w / (1 - lambda_ + lambda_ w)``.

    ``V = mean_i w_i r_i / (1 - lambda_ + lambda_ w_i)`` with ``lambda_`` in ``[0, 1]``;
    ``lambda_ = 0`` is IPS; a larger ``lambda_`` lowers variance and adds a downward bias.

    Reference: A. M. Metelli, A. Russo, M. Restelli. "Subgaussian and Differentiable
    Importance Sampling for Off-Policy Evaluation and Learning", NeurIPS 2021.
    """

    lambda_: float = 0.0

    def __post_init__(self):
        v.check_scalar(self.lambda_, "lambda_", 0, 1)

    def _terms(self, logged):
        # at lambda_ = 1 a round with w = 0 would be 0 / 0; its smoothed weight is 0 for
        # every lambda_ < 1, so it stays 0 in the limit
        smoothed = np.divide(logged.weight, 1.0 - self.lambda_ + self.lambda_ * logged.weight,
                             out=np.zeros_like(logged.weight), where=logged.weight > 0)
        return (smoothed * logged.reward,)
