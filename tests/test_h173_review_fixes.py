"""The review of today's commits (h171): the trust verdict's floor is a quantile of the logged
rewards that one outlier cannot move; a log smaller than the cross-fitting folds is refused
with its size and both fixes. (Every wrapper passing ``begin_rollout`` on to its base is
checked in tests/test_h169_slateq_review.py.)"""

import re

import numpy as np
import pytest

from recoworld.ope import BanditFeedback, fit_reward_model, fit_slate_reward_model
from recoworld.ope.selection import Selection, reward_floor, simulate_then_select, verdict
from tests.test_h163_ope_review import clicks_problem

CLICKS = (np.random.default_rng(1).random(400) < 0.03).astype(float)


# ------------------------------------------------- the verdict's floor
def test_one_dislike_in_a_log_of_rare_clicks_is_judged_against_the_value_as_the_clicks_are():
    # the floor was the lowest reward: -1, and a value of 0.0275 with an RMSE of 29% of it was
    # judged against 1.0275 and trusted ("1% of the value above -1, the lowest logged reward")
    for reward in (CLICKS, np.where(np.arange(400) == 0, -1.0, CLICKS)):
        selection = simulate_then_select(clicks_problem(reward), n_sims=20)
        share = selection.rmse[selection.recommended] / selection.value
        trusted, sentence = verdict(selection, ess=400.0)
        assert selection.r_min == 0.0
        assert f"{share:.0%} of the value" in sentence and "floor" not in sentence
        assert trusted == (share <= 0.25)
    assert not trusted and share > 0.25  # the log with the dislike: 29%


@pytest.mark.parametrize("reward, floor", [
    (np.r_[0.0, np.ones(399)], 0.0),                       # 0/1: 0, even where nearly all are clicks
    (np.r_[-1.0, CLICKS[1:]], 0.0),                        # one dislike of -1 in 400 rounds
    (np.r_[1.0, np.tile([2.0, 3.0, 4.0, 5.0], 100)], 2.0),  # one rating of 1 in 401
    (np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 80), 1.0),           # ratings of 1 in a fifth of the rounds
    (np.r_[-1.0, CLICKS[1:100]], -1.0),                    # a quantile of 100 rounds is their lowest
])
def test_the_floor_is_the_logged_rewards_one_percent_quantile_and_0_for_clicks(reward, floor):
    assert reward_floor(reward) == floor


def test_a_value_below_the_floor_is_said_to_be_below_it():
    assert verdict(Selection({}, {"DM": 0.1}, "DM", 0.5, 3, "x", r_min=1.0), ess=400.0) == (True, (
        "DM (reward-model based) is recommended: the least RMSE on 3 simulated logs of this shape (20% of the value "
        "below 1, the floor of the logged rewards (their 1% quantile))"))


# ------------------------------------------------- a log smaller than the folds
@pytest.mark.parametrize("n, n_folds, message", [
    (1, 5, "the log has 1 round, but cross-fitting over n_folds = 5 folds needs one round per fold: log at least 5 "
           "rounds, or at least 2 with n_folds = 2"),
    (1, 2, "the log has 1 round, but cross-fitting over n_folds = 2 folds needs one round per fold: log at least 2 "
           "rounds"),
    (2, 5, "the log has 2 rounds, but cross-fitting over n_folds = 5 folds needs one round per fold: log at least 5 "
           "rounds, or give n_folds <= 2"),
    (4, 5, "the log has 4 rounds, but cross-fitting over n_folds = 5 folds needs one round per fold: log at least 5 "
           "rounds, or give n_folds <= 4"),
])
def test_a_log_smaller_than_the_folds_is_refused_with_its_size_and_both_fixes(n, n_folds, message):
    # was "needs at least 2, one per fold" (1 round) or "n_folds = 5, but it must lie in [2, 4]"
    feedback = BanditFeedback(np.arange(n) % 2, np.ones(n), np.full(n, 0.5))
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_reward_model(feedback, np.zeros((n, 2, 1)), n_folds=n_folds)
    if n >= 2:  # the fix it names works
        assert fit_reward_model(feedback, np.zeros((n, 2, 1)), n_folds=n).shape == (n, 2)


def test_a_slate_log_smaller_than_the_folds_counts_slates():
    with pytest.raises(ValueError, match=re.escape(
            "the log has 3 slates, but cross-fitting over n_folds = 5 folds needs one slate per fold: log at least 5 "
            "slates, or give n_folds <= 3")):
        fit_slate_reward_model(np.zeros((3, 3, 2)), [[0, 1]] * 3, [[1.0, 0.0]] * 3)
    with pytest.raises(ValueError, match=re.escape("the log has 1 slate, but cross-fitting over n_folds = 2 folds needs "
                                                   "one slate per fold: log at least 2 slates")):
        fit_slate_reward_model(np.zeros((1, 3, 2)), [[0, 1]], [[1.0, 0.0]], n_folds=2)
