"""Session estimators on a small MDP whose value is computed exactly by dynamic programming."""

import warnings

import numpy as np
import pytest

from recoworld.ope import (
    FittedQEvaluation, PerDecisionDR, PerDecisionIS, SessionFeedback, TrajectoryWiseDR, TrajectoryWiseIS,
    WeightedPerDecisionDR, WeightedPerDecisionIS,
)

N_STATES, N_ACTIONS, HORIZON, DISCOUNT = 3, 2, 4, 0.9


class World:
    """Sessions of at most ``HORIZON`` steps; after each step the user leaves with
    probability ``leave[s, a]``. ``deterministic`` makes rewards, moves and leaving certain."""

    def __init__(self, seed=0, deterministic=False):
        rng = np.random.default_rng(seed)
        self.initial = rng.dirichlet(np.ones(N_STATES))
        self.mean_reward = rng.uniform(0, 1, size=(N_STATES, N_ACTIONS))
        self.mu = rng.dirichlet(np.full(N_ACTIONS, 3.0), size=N_STATES)
        self.pi = rng.dirichlet(np.full(N_ACTIONS, 0.8), size=N_STATES)
        self.deterministic = deterministic
        if deterministic:
            moves = (np.arange(N_STATES)[:, None] + np.arange(N_ACTIONS)[None, :] + 1) % N_STATES
            self.transition = np.eye(N_STATES)[moves]
            self.leave = np.zeros((N_STATES, N_ACTIONS))
            self.leave[0, 1] = 1.0
        else:
            self.transition = rng.dirichlet(np.ones(N_STATES), size=(N_STATES, N_ACTIONS))
            self.leave = rng.uniform(0.1, 0.4, size=(N_STATES, N_ACTIONS))

    def q_values(self, discount=DISCOUNT):
        """``Q[t, s, a]`` of the evaluation policy, by backward induction."""
        q = np.zeros((HORIZON + 1, N_STATES, N_ACTIONS))
        for t in reversed(range(HORIZON)):
            following = (self.pi * q[t + 1]).sum(axis=1)
            q[t] = self.mean_reward + discount * (1 - self.leave) * (self.transition @ following)
        return q[:HORIZON]

    def value(self, discount=DISCOUNT):
        return float(self.initial @ (self.pi * self.q_values(discount)[0]).sum(axis=1))

    def sample(self, n, seed):
        """Feedback (with one-hot state + step features), evaluation pscore, states."""
        rng = np.random.default_rng(seed)
        state = np.zeros((n, HORIZON), dtype=np.int64)
        action = np.zeros((n, HORIZON), dtype=np.int64)
        reward, mask = np.zeros((n, HORIZON)), np.zeros((n, HORIZON), dtype=bool)
        s = _draw(rng, np.broadcast_to(self.initial, (n, N_STATES)))
        alive = np.ones(n, dtype=bool)
        for t in range(HORIZON):
            a = _draw(rng, self.mu[s])
            state[:, t], action[:, t], mask[:, t] = s, a, alive
            mean = self.mean_reward[s, a]
            reward[:, t] = mean if self.deterministic else (rng.random(n) < mean)
            alive = alive & (rng.random(n) >= self.leave[s, a])
            s = _draw(rng, self.transition[s, a])
        features = np.concatenate([np.eye(N_STATES)[state], np.broadcast_to(np.eye(HORIZON), (n, HORIZON, HORIZON))],
                                  axis=2)
        reward[~mask] = np.nan  # padding must be ignored
        feedback = SessionFeedback(reward, self.mu[state, action], mask=mask, action=action, features=features)
        return feedback, self.pi[state, action], state

    def exact_q_hat(self, feedback, state):
        q = self.q_values()
        steps = np.arange(HORIZON)
        q_hat = q[steps, state, feedback.action]
        v_hat = (self.pi[state] * q[steps, state]).sum(axis=2)
        return q_hat * feedback.mask, v_hat * feedback.mask


def _draw(rng, probabilities):
    return (rng.random(len(probabilities))[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)


def _mean_and_se(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


def test_importance_sampling_and_dr_are_unbiased(world):
    truth = world.value()
    wrong_q = np.random.default_rng(1).uniform(0, 3, size=(HORIZON, N_STATES, N_ACTIONS))
    estimators = [TrajectoryWiseIS, PerDecisionIS, PerDecisionDR, TrajectoryWiseDR]
    estimates = {cls: [] for cls in estimators}
    for seed in range(500):
        feedback, evaluation_pscore, state = world.sample(200, seed)
        steps = np.arange(HORIZON)
        q_hat = wrong_q[steps, state, feedback.action]  # a poor model, with v_hat its expectation under pi
        v_hat = (world.pi[state] * wrong_q[steps, state]).sum(axis=2)
        for cls in estimators:
            estimates[cls].append(cls(discount=DISCOUNT).estimate_policy_value(feedback, evaluation_pscore, q_hat, v_hat))
    for cls in estimators:
        mean, se = _mean_and_se(estimates[cls])
        assert abs(mean - truth) < 4 * se, (cls.__name__, mean, truth, se)


def test_weighted_estimators_are_consistent(world):
    feedback, evaluation_pscore, state = world.sample(100_000, seed=0)
    q_hat, v_hat = world.exact_q_hat(feedback, state)
    for estimator in [WeightedPerDecisionIS(DISCOUNT), WeightedPerDecisionDR(DISCOUNT)]:
        assert estimator.estimate_policy_value(feedback, evaluation_pscore, q_hat + 0.3, v_hat + 0.3) == \
            pytest.approx(world.value(), abs=0.02)


def test_dr_estimators_equal_the_direct_method_when_everything_is_exact_and_deterministic():
    world = World(seed=2, deterministic=True)
    feedback, evaluation_pscore, state = world.sample(500, seed=0)
    q_hat, v_hat = world.exact_q_hat(feedback, state)
    direct = v_hat[:, 0].mean()
    for cls in [PerDecisionDR, TrajectoryWiseDR, WeightedPerDecisionDR]:
        assert cls(DISCOUNT).estimate_policy_value(feedback, evaluation_pscore, q_hat, v_hat) == \
            pytest.approx(direct, abs=1e-12)


def test_weighted_per_decision_is_invariant_to_scaling_one_steps_weights(world):
    feedback, evaluation_pscore, _ = world.sample(1000, seed=3)
    pscore = feedback.pscore.copy()
    pscore[:, 0] *= 0.5  # step 0 is real in every trajectory (padding keeps ratio 1)
    scaled = SessionFeedback(feedback.reward, pscore, feedback.mask)
    assert WeightedPerDecisionIS(DISCOUNT).estimate_policy_value(scaled, evaluation_pscore) == pytest.approx(
        WeightedPerDecisionIS(DISCOUNT).estimate_policy_value(feedback, evaluation_pscore), rel=1e-12)
    assert PerDecisionIS(DISCOUNT).estimate_policy_value(scaled, evaluation_pscore) != pytest.approx(
        PerDecisionIS(DISCOUNT).estimate_policy_value(feedback, evaluation_pscore), rel=1e-3)


def test_discount_zero_keeps_only_the_first_step(world):
    feedback, evaluation_pscore, _ = world.sample(1000, seed=4)
    ratio = np.where(feedback.mask, evaluation_pscore / feedback.pscore, 1.0)
    first_reward = feedback.reward[:, 0]
    assert PerDecisionIS(discount=0.0).estimate_policy_value(feedback, evaluation_pscore) == \
        pytest.approx(np.mean(ratio[:, 0] * first_reward), rel=1e-12)
    # the trajectory-wise weight still multiplies the first reward by every later ratio
    assert TrajectoryWiseIS(discount=0.0).estimate_policy_value(feedback, evaluation_pscore) == \
        pytest.approx(np.mean(ratio.prod(axis=1) * first_reward), rel=1e-12)


def test_padding_values_are_ignored(world):
    feedback, evaluation_pscore, _ = world.sample(500, seed=5)
    garbage = np.where(feedback.mask, evaluation_pscore, 7.0)  # > 1: would be rejected at a real step
    assert PerDecisionIS(DISCOUNT).estimate_policy_value(feedback, garbage) == \
        PerDecisionIS(DISCOUNT).estimate_policy_value(feedback, evaluation_pscore)


def test_fitted_q_evaluation_is_accurate_deterministic_and_feeds_dr(world):
    feedback, _, state = world.sample(3000, seed=6)
    action_dist = world.pi[state]
    fqe = FittedQEvaluation(discount=DISCOUNT, hidden_sizes=(32,), seed=0)
    value = fqe.estimate_policy_value(feedback, action_dist)
    assert value == pytest.approx(world.value(), abs=0.05)
    assert value == fqe.estimate_policy_value(feedback, action_dist)  # same seed, same network, same value
    q_hat, v_hat = fqe.estimate_q(feedback, action_dist, n_folds=2)
    exact_q, _ = world.exact_q_hat(feedback, state)
    assert np.abs(q_hat - exact_q)[feedback.mask].mean() < 0.1
    evaluation_pscore = world.pi[state, feedback.action]
    dr = PerDecisionDR(DISCOUNT).estimate_policy_value(feedback, evaluation_pscore, q_hat, v_hat)
    assert dr == pytest.approx(world.value(), abs=0.05)


def test_weights_that_overflow_float64_are_reported_as_overflow_not_as_zero_weights():
    # a deterministic target over 1,000 uniformly logged items: the trajectory-wise weight
    # of a 120-step session is 1e360, beyond float64
    horizon = 120
    feedback = SessionFeedback(np.ones((3, horizon)), np.full((3, horizon), 1e-3))
    target = np.ones((3, horizon))
    for estimator in (TrajectoryWiseIS(), PerDecisionIS(), WeightedPerDecisionIS()):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # the error says it; numpy's warning would only add noise
            with pytest.raises(ValueError, match=r"overflows float64 \(first at logged round 0\).*clip the weights"):
                estimator.estimate_policy_value(feedback, target)
            with pytest.raises(ValueError, match="overflows float64"):
                estimator.estimate_interval(feedback, target, n_bootstrap=39)
