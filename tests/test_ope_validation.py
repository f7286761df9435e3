"""Every bad input is refused with a message that names the argument, the value and the fix."""

import re

import numpy as np
import pytest

from recoworld.ope import (
    DR, IPS, SNIPS, BanditFeedback, DRos, PerDecisionIS, SessionFeedback, SlateCascadeDR, SlateFeedback,
    SlateIndependentIPS, SubGaussianIPS, SwitchDR,
)


def exactly(message):
    return f"^{re.escape(message)}$"


def _bandit(n=4, **overrides):
    arrays = dict(action=np.array([0, 1, 2, 1])[:n], reward=np.array([1.0, 0.0, 1.0, 0.5])[:n],
                  pscore=np.full(n, 0.25))
    arrays.update(overrides)
    return arrays


UNIFORM = np.full((4, 3), 1 / 3)


@pytest.mark.parametrize("overrides, error, message", [
    (dict(pscore=np.array([0.2, 0.0, 0.5, 0.5])), ValueError,
     "pscore[1] = 0.0, but logging propensities must lie in (0, 1]: a choice the logging policy could not have "
     "made cannot be reweighted; drop such rows or log the true probability"),
    (dict(pscore=np.array([0.2, 0.3, -0.5, 0.5])), ValueError,
     "pscore[2] = -0.5, but logging propensities must lie in (0, 1]: a choice the logging policy could not have "
     "made cannot be reweighted; drop such rows or log the true probability"),
    (dict(pscore=np.array([0.2, 0.3, 0.5, 2.0])), ValueError,
     "pscore[3] = 2.0 exceeds 1; pass probabilities, not importance weights or unnormalised scores"),
    (dict(reward=np.array([1.0, np.nan, 0.0, 1.0])), ValueError,
     "reward[1] is nan; drop or impute rounds with missing rewards before estimating"),
    (dict(pscore=np.full(3, 0.25)), ValueError, "pscore has shape (3,), but (n_rounds,) = (4,) was expected"),
    (dict(action=np.array([0.0, 1.5, 2.0, 1.0])), ValueError, "action[1] = 1.5 is not an integer; action holds action ids"),
    (dict(action=np.array([0, -1, 2, 1])), ValueError, "action[1] = -1, but action ids start at 0"),
    (dict(reward=np.array(["a", "b", "c", "d"])), TypeError, "reward must hold numbers, got dtype <U1"),
])
def test_bandit_feedback_refuses_bad_logs(overrides, error, message):
    with pytest.raises(error, match=exactly(message)):
        BanditFeedback(**_bandit(**overrides))


@pytest.mark.parametrize("action_dist, message", [
    (np.full((3, 3), 1 / 3),
     "action_dist has 3 rows, but the feedback has 4 logged rounds; pass one row per logged round, in log order"),
    (np.array([[0.5, 0.4, 0.0]] + [[1 / 3] * 3] * 3),
     "action_dist[0, :, 0] sums to 0.9, but it must be a probability distribution over the 3 actions (sum to 1); "
     "normalise it, e.g. with a softmax"),
    (np.array([[1.5, -0.5, 0.0]] + [[1 / 3] * 3] * 3),
     "action_dist[0, 1, 0] = -0.5 is negative; probabilities lie in [0, 1]"),
    (np.full((4, 2), 0.5),
     "feedback.action[2] = 2, but action_dist covers only 2 action ids (0..1); "
     "pass action_dist over all action ids the logging policy could choose"),
    (np.full((4, 3, 2, 1), 1 / 3),
     "action_dist has 4 dimensions, but (n_rounds, n_actions) or (n_rounds, n_actions, n_positions) was expected"),
])
def test_action_dist_is_checked_against_the_feedback(action_dist, message):
    with pytest.raises(ValueError, match=exactly(message)):
        IPS().estimate_policy_value(BanditFeedback(**_bandit()), action_dist)


def test_positions_beyond_the_action_dist_are_refused():
    feedback = BanditFeedback(**_bandit(), position=np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=exactly(
            "feedback.position reaches 2, but action_dist covers only 1 position; "
            "pass action_dist with shape (n_rounds, n_actions, n_positions)")):
        IPS().estimate_policy_value(feedback, UNIFORM)


def test_model_based_estimators_need_matching_reward_estimates():
    feedback = BanditFeedback(**_bandit())
    with pytest.raises(ValueError, match=exactly(
            "DR needs estimated_rewards (a reward model's prediction for every action, same shape as action_dist); "
            "see recoworld.ope.fit_reward_model")):
        DR().estimate_policy_value(feedback, UNIFORM)
    with pytest.raises(ValueError, match=exactly(
            "estimated_rewards has shape (4, 2, 1), but action_dist.shape = (4, 3, 1) was expected")):
        DR().estimate_policy_value(feedback, UNIFORM, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=exactly(
            "estimated_rewards[3, 0, 0] is inf; the reward model must predict a finite reward for every action")):
        DR().estimate_policy_value(feedback, UNIFORM, np.array([[0.0] * 3] * 3 + [[np.inf, 0, 0]]))


def test_self_normalised_estimate_without_overlap_is_refused():
    feedback = BanditFeedback(**_bandit())
    never_logged = np.zeros((4, 3))
    never_logged[np.arange(4), (feedback.action + 1) % 3] = 1.0
    with pytest.raises(ValueError, match=re.escape("SNIPS is undefined on this data: its normalising weights sum to 0")):
        SNIPS().estimate_policy_value(feedback, never_logged)


@pytest.mark.parametrize("make, message", [
    (lambda: IPS(max_weight=0), "max_weight = 0, but it must lie in (0, inf]"),
    (lambda: SwitchDR(tau=-1.0), "tau = -1.0, but it must lie in [0, inf]"),
    (lambda: DRos(lambda_=-2), "lambda_ = -2, but it must lie in [0, inf]"),
    (lambda: SubGaussianIPS(lambda_=1.5), "lambda_ = 1.5, but it must lie in [0, 1]"),
    (lambda: PerDecisionIS(discount=1.1), "discount = 1.1, but it must lie in [0, 1]"),
    (lambda: IPS().estimate_interval(BanditFeedback(**_bandit()), UNIFORM, alpha=1.0),
     "alpha = 1.0, but it must lie in (0, 1)"),
])
def test_hyperparameters_out_of_range_are_refused(make, message):
    with pytest.raises(ValueError, match=exactly(message)):
        make()


def test_slate_feedback_checks_each_propensity_layout():
    reward = np.zeros((2, 3))
    cascade = np.array([[0.5, 0.25, 0.1], [0.5, 0.6, 0.1]])
    with pytest.raises(ValueError, match=exactly(
            "pscore_cascade[1, 1] = 0.6 exceeds pscore_cascade[1, 0] = 0.5, but the probability of a longer prefix "
            "cannot exceed that of a shorter one; pscore_cascade[:, k] must be the probability of the whole prefix "
            "(positions 0..k), not of position k alone")):
        SlateFeedback(reward, pscore_cascade=cascade)
    cascade[1, 1] = 0.2
    with pytest.raises(ValueError, match=exactly(
            "pscore_cascade[0, -1] = 0.1 differs from pscore[0] = 0.2, but the probability of the full prefix is the "
            "probability of the whole slate; one of the two was logged wrongly")):
        SlateFeedback(reward, pscore=np.array([0.2, 0.1]), pscore_cascade=cascade)
    with pytest.raises(ValueError, match=exactly(
            "SlateFeedback needs at least one logging propensity: pscore (whole slate), "
            "pscore_item_position (marginals) or pscore_cascade (prefixes)")):
        SlateFeedback(reward)
    with pytest.raises(ValueError, match=exactly(
            "pscore_item_position has shape (2, 2), but (n_slates, slate_length) = (2, 3) was expected")):
        SlateFeedback(reward, pscore_item_position=np.full((2, 2), 0.5))


def test_slate_estimators_name_the_inputs_they_miss():
    feedback = SlateFeedback(np.zeros((2, 3)), pscore_cascade=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=exactly(
            "SlateIndependentIPS needs feedback.pscore_item_position, but the SlateFeedback was built without it")):
        SlateIndependentIPS().estimate_policy_value(feedback, evaluation_pscore_item_position=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=exactly(
            "SlateCascadeDR needs evaluation_pscore_cascade, the evaluation policy's probability in the layout of "
            "feedback.pscore_cascade")):
        SlateCascadeDR().estimate_policy_value(feedback)
    with pytest.raises(ValueError, match=exactly(
            "SlateCascadeDR needs v_hat, a (n_slates, slate_length) array; see the class docstring")):
        SlateCascadeDR().estimate_policy_value(feedback, evaluation_pscore_cascade=np.full((2, 3), 0.5),
                                               q_hat=np.zeros((2, 3)))


def test_session_masks_must_be_left_aligned_prefixes():
    reward, pscore = np.zeros((2, 3)), np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match=exactly(
            "mask[1] is 0 at step 1 and 1 again at step 2; padding must come after the last real step of a "
            "trajectory (left-align each trajectory)")):
        SessionFeedback(reward, pscore, mask=np.array([[1, 1, 0], [1, 0, 1]]))
    with pytest.raises(ValueError, match=exactly(
            "mask[0, 0] is 0, but every trajectory needs at least one step; drop empty trajectories")):
        SessionFeedback(reward, pscore, mask=np.array([[0, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match=exactly(
            "reward[1, 2] is nan; drop or impute rounds with missing rewards before estimating")):
        SessionFeedback(np.array([[0, 0, np.nan], [0, 0, np.nan]]), pscore, mask=np.array([[1, 1, 0], [1, 1, 1]]))
    feedback = SessionFeedback(reward, pscore)
    with pytest.raises(ValueError, match=exactly(
            "evaluation_pscore[0, 1] = 1.5 exceeds 1; pass probabilities, not importance weights or unnormalised "
            "scores")):
        PerDecisionIS().estimate_policy_value(feedback, np.array([[0.5, 1.5, 0.5], [0.5, 0.5, 0.5]]))


def test_wrong_feedback_type_is_refused():
    with pytest.raises(TypeError, match=exactly("IPS needs a BanditFeedback, got SessionFeedback")):
        IPS().estimate_policy_value(SessionFeedback(np.zeros((2, 3)), np.full((2, 3), 0.5)), UNIFORM)
