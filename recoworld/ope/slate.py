"""Estimators for slates: ``K`` items shown together, a reward observed at each position.

Every estimator here is called as::

    estimator.estimate_policy_value(feedback, evaluation_pscore=None,
                                    evaluation_pscore_item_position=None,
                                    evaluation_pscore_cascade=None, q_hat=None, v_hat=None)

(and ``estimate_interval`` with the same arguments plus ``n_bootstrap, alpha, seed``), with
``feedback`` a :class:`~recoworld.ope.SlateFeedback`. The ``evaluation_*`` arrays are the
evaluation policy's probabilities of what was logged, in the layout of the logging
propensity of the same name; each estimator uses the one it names and ignores the rest,
so one set of keyword arguments can be handed to a whole bank of estimators.
The policy value is the expected sum of per-position rewards, ``E_pi[sum_k r_k]``.

Weights, per slate ``i`` and position ``k`` (0-based):
    standard: ``w_i = pi(s_i) / mu(s_i)``, the whole-slate ratio, the same at every position;
    independent (item-position): ``w_ik = pi(a_ik at k) / mu(a_ik at k)``;
    reward interaction (cascade): ``w_i,0:k = pi(a_i0..a_ik) / mu(a_i0..a_ik)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.ope import _validation as v
from recoworld.ope.base import BaseEstimator
from recoworld.ope.feedback import SlateFeedback

_DIMS = "(n_slates, slate_length)"


def _evaluation_probability(value, layout: str, feedback: SlateFeedback, estimator: str) -> np.ndarray:
    name = f"evaluation_{layout}"
    if value is None:
        raise ValueError(f"{estimator} needs {name}, the evaluation policy's probability in the layout of feedback.{layout}")
    n, k = feedback.reward.shape
    if layout == "pscore":
        return v.probability(value, name, (n,), "(n_slates,)")[:, None]
    probability = v.probability(value, name, (n, k), _DIMS)
    if layout == "pscore_cascade":
        v.non_increasing(probability, name)
    return probability


class _SlateWeighting(BaseEstimator):
    """IPS over positions with the weights of ``layout``, optionally self-normalised per position."""

    layout = "pscore"
    self_normalized = False

    def _round_terms(self, feedback: SlateFeedback, evaluation_pscore=None, evaluation_pscore_item_position=None,
                     evaluation_pscore_cascade=None, q_hat=None, v_hat=None) -> np.ndarray:
        name = type(self).__name__
        if not isinstance(feedback, SlateFeedback):
            raise TypeError(f"{name} needs a SlateFeedback, got {type(feedback).__name__}")
        given = {"pscore": evaluation_pscore, "pscore_item_position": evaluation_pscore_item_position,
                 "pscore_cascade": evaluation_pscore_cascade}
        logging = feedback.require(self.layout, name)
        logging = logging[:, None] if logging.ndim == 1 else logging
        weight = _evaluation_probability(given[self.layout], self.layout, feedback, name) / logging
        weight = np.broadcast_to(weight, feedback.reward.shape)
        if self.self_normalized:
            return np.concatenate([weight * feedback.reward, weight], axis=1)
        return np.einsum("ik,ik->i", weight, feedback.reward)[:, None]

    def _combine(self, sums, n_rounds):
        if not self.self_normalized:
            return sums[..., 0] / n_rounds
        k = sums.shape[-1] // 2
        return (sums[..., :k] / sums[..., k:]).sum(axis=-1)


@dataclass
class SlateIPS(_SlateWeighting):
    """Standard slate IPS: ``V = mean_i w_i sum_k r_ik`` with the whole-slate weight.

    Unbiased for any reward structure; its variance grows with the number of slates.

    Reference: A. Swaminathan et al. "Off-policy Evaluation for Slate Recommendation",
    NeurIPS 2017 (as the baseline); D. G. Horvitz, D. J. Thompson, JASA 1952.
    """

    layout = "pscore"


@dataclass
class SlateIndependentIPS(_SlateWeighting):
    """Independent (item-position) IPS: ``V = mean_i sum_k w_ik r_ik``.

    Unbiased when the reward at position ``k`` depends only on the item at ``k`` (no
    interaction between positions).

    Reference: S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay, Z. Wen.
    "Offline Evaluation of Ranking Policies with Click Models", KDD 2018.
    """

    layout = "pscore_item_position"


@dataclass
class SlateRewardInteractionIPS(_SlateWeighting):
    """Reward-interaction IPS: ``V = mean_i sum_k w_i,0:k r_ik`` with prefix weights.

    Unbiased when the reward at position ``k`` depends only on the items at ``0..k``
    (cascade-like browsing: later items cannot change earlier rewards).

    Reference: J. McInerney, B. Brost, P. Chandar, R. Mehrotra, B. Carterette.
    "Counterfactual Evaluation of Slate Recommendations with Sequential Reward
    Interactions", KDD 2020.
    """

    layout = "pscore_cascade"


@dataclass
class SelfNormalizedSlateIPS(SlateIPS):
    """:class:`SlateIPS`, self-normalised: ``V = sum_i w_i sum_k r_ik / sum_i w_i``.

    Reference: A. Swaminathan, T. Joachims, NeurIPS 2015 (self-normalisation).
    """

    self_normalized = True


@dataclass
class SelfNormalizedSlateIndependentIPS(SlateIndependentIPS):
    """:class:`SlateIndependentIPS`, self-normalised per position:
    ``V = sum_k (sum_i w_ik r_ik / sum_i w_ik)``.
    """

    self_normalized = True


@dataclass
class SelfNormalizedSlateRewardInteractionIPS(SlateRewardInteractionIPS):
    """:class:`SlateRewardInteractionIPS`, self-normalised per position:
    ``V = sum_k (sum_i w_i,0:k r_ik / sum_i w_i,0:k)`` (McInerney et al., 2020).
    """

    self_normalized = True


@dataclass
class SlateCascadeDR(BaseEstimator):
    """Cascade doubly robust: reward-interaction IPS with a Q-function control variate.

    ``V = mean_i sum_k [ w_i,0:k (r_ik - q_hat_ik) + w_i,0:k-1 v_hat_ik ]`` with
    ``w_i,0:-1 = 1``, where ``q_hat_ik`` estimates ``E[sum_{l >= k} r_il | x_i, a_i0..a_ik]``
    (the rewards from position ``k`` on, given the logged prefix, later positions drawn
    from the evaluation policy) and ``v_hat_ik`` is its expectation over the evaluation
    policy's choice at ``k`` given the logged items ``0..k-1``. Unbiased under the
    reward-interaction assumption for any ``q_hat`` fitted independently of the rows it
    scores; with exact ``q_hat`` and noiseless rewards it equals ``mean_i v_hat_i0`` (the
    direct method).

    Needs ``feedback.pscore_cascade``, ``evaluation_pscore_cascade``, ``q_hat`` and
    ``v_hat`` (each ``[n_slates, slate_length]``).

    Reference: H. Kiyohara, Y. Saito, T. Matsuhiro, Y. Narita, N. Shimizu, Y. Yamamoto.
    "Doubly Robust Off-Policy Evaluation for Ranking Policies under the Cascade Behavior
    Model", WSDM 2022.
    """

    def _round_terms(self, feedback: SlateFeedback, evaluation_pscore=None, evaluation_pscore_item_position=None,
                     evaluation_pscore_cascade=None, q_hat=None, v_hat=None) -> np.ndarray:
        name = type(self).__name__
        if not isinstance(feedback, SlateFeedback):
            raise TypeError(f"{name} needs a SlateFeedback, got {type(feedback).__name__}")
        logging = feedback.require("pscore_cascade", name)
        weight = _evaluation_probability(evaluation_pscore_cascade, "pscore_cascade", feedback, name) / logging
        shape = feedback.reward.shape
        models = []
        for label, value in (("q_hat", q_hat), ("v_hat", v_hat)):
            if value is None:
                raise ValueError(f"{name} needs {label}, a {_DIMS} array; see the class docstring")
            models.append(v.float_array(value, label, shape, _DIMS, fix="the model must give a finite value"))
        q, value = models
        previous = np.concatenate([np.ones((shape[0], 1)), weight[:, :-1]], axis=1)
        terms = np.einsum("ik,ik->i", weight, feedback.reward - q) + np.einsum("ik,ik->i", previous, value)
        return terms[:, None]


@dataclass
class SlateDM(BaseEstimator):
    """Direct method for slates: ``V = mean_i v_hat_i0``, the model's value of the whole slate
    under the evaluation policy.

    Uses only ``v_hat`` (``[n_slates, slate_length]``, as for :class:`SlateCascadeDR`; column
    0 is the expected sum of rewards of a slate drawn from the evaluation policy). Unbiased
    only if the model is; ignores the observed rewards and the propensities.

    Reference: A. Beygelzimer, J. Langford. "The Offset Tree for Learning with Partial
    Labels", KDD 2009 (the direct method); Kiyohara et al., WSDM 2022 (for slates).
    """

    def _round_terms(self, feedback: SlateFeedback, evaluation_pscore=None, evaluation_pscore_item_position=None,
                     evaluation_pscore_cascade=None, q_hat=None, v_hat=None) -> np.ndarray:
        name = type(self).__name__
        if not isinstance(feedback, SlateFeedback):
            raise TypeError(f"{name} needs a SlateFeedback, got {type(feedback).__name__}")
        if v_hat is None:
            raise ValueError(f"{name} needs v_hat, a {_DIMS} array; see the class docstring")
        value = v.float_array(v_hat, "v_hat", feedback.reward.shape, _DIMS, fix="the model must give a finite value")
        return value[:, :1]
