"""Cross-fitted reward models for DM / DR."""

import re

import numpy as np
import pytest

from recoworld.ope import (
    DM, DR, BanditFeedback, LogisticRegression, RidgeRegression, fit_reward_model, per_action_features,
)


class Memoriser:
    """Remembers every training row exactly and returns -1 for rows it never saw."""

    fitted_on = []  # shared across the deep copies made per fold

    def fit(self, X, y):
        self.table = {tuple(row): target for row, target in zip(X, y)}
        Memoriser.fitted_on.append({int(row[0]) for row in X})
        return self

    def predict(self, X):
        return np.array([self.table.get(tuple(row), -1.0) for row in X])


def _logged(n=400, n_actions=3, seed=0):
    rng = np.random.default_rng(seed)
    context = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, size=n)
    coef = rng.normal(size=(n_actions, 2))
    mean = 1.0 / (1.0 + np.exp(-(context * coef[action]).sum(axis=1)))
    reward = (rng.random(n) < mean).astype(float)
    return context, action, reward, coef


def test_cross_fitting_never_scores_a_round_with_a_model_trained_on_it():
    n, n_actions = 200, 3
    _, action, reward, _ = _logged(n, n_actions)
    reward = reward + 10.0  # a remembered reward is easy to tell from the -1 of an unseen row
    feedback = BanditFeedback(action, reward, np.full(n, 1 / n_actions))
    row_id = np.broadcast_to(np.arange(n)[:, None, None], (n, n_actions, 1))
    action_id = np.broadcast_to(np.arange(n_actions)[None, :, None], (n, n_actions, 1))
    features = np.concatenate([row_id, action_id], axis=2).astype(float)
    Memoriser.fitted_on = []
    estimated = fit_reward_model(feedback, features, Memoriser(), n_folds=4, seed=0)
    assert (estimated == -1.0).all()
    assert len(Memoriser.fitted_on) == 4
    held_out = [set(range(n)) - trained for trained in Memoriser.fitted_on]
    assert sorted(i for fold in held_out for i in fold) == list(range(n))  # each round held out exactly once
    # without cross-fitting the same memoriser would have reproduced the logged rewards
    in_sample = Memoriser().fit(features[np.arange(n), action], reward)
    assert np.array_equal(in_sample.predict(features[np.arange(n), action]), reward)


def test_ridge_recovers_a_linear_reward_per_action():
    rng = np.random.default_rng(1)
    n, n_actions = 2000, 3
    context = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, size=n)
    coef = rng.normal(size=(n_actions, 2))
    reward = (context * coef[action]).sum(axis=1) + 0.5
    feedback = BanditFeedback(action, reward, np.full(n, 1 / n_actions))
    estimated = fit_reward_model(feedback, per_action_features(context, n_actions), RidgeRegression(alpha=1e-6))
    truth = context @ coef.T + 0.5
    np.testing.assert_allclose(estimated, truth, atol=1e-4)


def test_logistic_regression_predicts_click_probabilities_and_dr_stays_on_target():
    n, n_actions = 4000, 3
    context, action, reward, coef = _logged(n, n_actions, seed=2)
    feedback = BanditFeedback(action, reward, np.full(n, 1 / n_actions))
    features = per_action_features(context, n_actions)
    estimated = fit_reward_model(feedback, features, LogisticRegression(alpha=1e-3), n_folds=3)
    truth = 1.0 / (1.0 + np.exp(-(context[:, None, :] * coef[None]).sum(axis=2)))
    assert np.abs(estimated - truth).mean() < 0.05
    action_dist = np.eye(n_actions)[truth.argmax(axis=1)]
    value = (action_dist * truth).sum(axis=1).mean()
    assert DM().estimate_policy_value(feedback, action_dist, estimated) == pytest.approx(value, abs=0.03)
    assert DR().estimate_policy_value(feedback, action_dist, estimated) == pytest.approx(value, abs=0.03)


def test_per_position_features_give_per_position_estimates():
    rng = np.random.default_rng(3)
    n, n_actions, n_positions = 600, 2, 3
    context = rng.normal(size=(n, 2))
    action, position = rng.integers(0, n_actions, size=n), rng.integers(0, n_positions, size=n)
    reward = 1.0 - 0.3 * position + context[:, 0] * (action == 1)
    feedback = BanditFeedback(action, reward, np.full(n, 1 / n_actions), position=position)
    features = per_action_features(context, n_actions, n_positions)
    estimated = fit_reward_model(feedback, features, RidgeRegression(alpha=1e-8))
    assert estimated.shape == (n, n_actions, n_positions)
    truth = 1.0 - 0.3 * np.arange(n_positions)[None, None, :] + (context[:, :1] * np.array([0, 1]))[:, :, None]
    np.testing.assert_allclose(estimated, truth, atol=1e-4)


def test_reward_model_errors_name_the_problem():
    context, action, reward, _ = _logged(50, 3)
    feedback = BanditFeedback(action, reward, np.full(50, 1 / 3))
    features = per_action_features(context, 3)
    with pytest.raises(ValueError, match=re.escape("n_folds = 1, but it must lie in [2, inf]")):
        fit_reward_model(feedback, features, n_folds=1)
    with pytest.raises(ValueError, match=re.escape(
            "features has shape (50, 3, 1, 9), but (n_rounds, n_actions, n_features) with n_rounds = 50 was expected")):
        fit_reward_model(feedback, features[:, :, None, :])
    with pytest.raises(TypeError, match="regressor must have fit"):
        fit_reward_model(feedback, features, regressor=object())
    with pytest.raises(ValueError, match="LogisticRegression needs 0/1 rewards"):
        LogisticRegression().fit(context, reward + 0.5)
