"""Off-policy evaluation: estimate a policy's value from data logged by another policy.

Three settings, each with one input container checked on construction:

* single actions (optionally per position): :class:`BanditFeedback` and
  :class:`Replay`, :class:`IPS`, :class:`SNIPS`, :class:`DM`, :class:`DR`, :class:`SNDR`,
  :class:`SwitchDR`, :class:`DRos`, :class:`SubGaussianIPS`;
* slates: :class:`SlateFeedback` and :class:`SlateIPS`, :class:`SlateIndependentIPS`,
  :class:`SlateRewardInteractionIPS`, their self-normalised forms, :class:`SlateDM`,
  :class:`SlateCascadeDR`;
* sessions: :class:`SessionFeedback` and :class:`TrajectoryWiseIS`, :class:`PerDecisionIS`,
  :class:`WeightedPerDecisionIS`, :class:`PerDecisionDR`, :class:`TrajectoryWiseDR`,
  :class:`WeightedPerDecisionDR`, :class:`FittedQEvaluation`.

Every estimator has ``estimate_policy_value(...)`` and ``estimate_interval(...,
n_bootstrap, alpha, seed)`` (see :mod:`recoworld.ope.base` for the shared arguments).
A self-normalised estimator raises :class:`UndefinedEstimate` on a log where its weights
sum to 0, and :class:`UndefinedInterval`, which carries the estimate, where too few
bootstrap resamples leave it defined; both are ``ValueError``.
Reward models for DM / DR come from :func:`fit_reward_model` and, per slate position,
:func:`fit_slate_reward_model` (both cross-fitted).
"""

from recoworld.ope.bandit import DM, DR, IPS, SNDR, SNIPS, DRos, Replay, SubGaussianIPS, SwitchDR
from recoworld.ope.base import BaseEstimator, PolicyValueInterval, UndefinedEstimate, UndefinedInterval
from recoworld.ope.feedback import BanditFeedback, SessionFeedback, SlateFeedback
from recoworld.ope.fqe import FittedQEvaluation
from recoworld.ope.reward_model import (
    LogisticRegression,
    RidgeRegression,
    fit_reward_model,
    fit_slate_reward_model,
    per_action_features,
)
from recoworld.ope.session import (
    PerDecisionDR,
    PerDecisionIS,
    TrajectoryWiseDR,
    TrajectoryWiseIS,
    WeightedPerDecisionDR,
    WeightedPerDecisionIS,
)
from recoworld.ope.slate import (
    SelfNormalizedSlateIndependentIPS,
    SelfNormalizedSlateIPS,
    SelfNormalizedSlateRewardInteractionIPS,
    SlateCascadeDR,
    SlateDM,
    SlateIndependentIPS,
    SlateIPS,
    SlateRewardInteractionIPS,
)

__all__ = [
    "BanditFeedback", "SlateFeedback", "SessionFeedback",
    "BaseEstimator", "PolicyValueInterval", "UndefinedEstimate", "UndefinedInterval",
    "Replay", "IPS", "SNIPS", "DM", "DR", "SNDR", "SwitchDR", "DRos", "SubGaussianIPS",
    "SlateIPS", "SlateIndependentIPS", "SlateRewardInteractionIPS",
    "SelfNormalizedSlateIPS", "SelfNormalizedSlateIndependentIPS", "SelfNormalizedSlateRewardInteractionIPS",
    "SlateDM", "SlateCascadeDR",
    "TrajectoryWiseIS", "PerDecisionIS", "WeightedPerDecisionIS",
    "PerDecisionDR", "TrajectoryWiseDR", "WeightedPerDecisionDR", "FittedQEvaluation",
    "fit_reward_model", "fit_slate_reward_model", "per_action_features", "RidgeRegression", "LogisticRegression",
]
