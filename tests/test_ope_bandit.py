"""Single-action estimators on a synthetic contextual bandit whose value is known exactly."""

import numpy as np
import pytest
import torch

from recoworld.ope import (
    DM, DR, IPS, SNDR, SNIPS, BanditFeedback, DRos, Replay, SubGaussianIPS, SwitchDR,
)

N_CONTEXTS, N_ACTIONS, N_POSITIONS = 5, 4, 2


class World:
    """Discrete contexts; expected reward ``q[x, a, p]``; softmax logging and evaluation tables."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.p_context = rng.dirichlet(np.ones(N_CONTEXTS))
        self.q = rng.uniform(0.05, 0.95, size=(N_CONTEXTS, N_ACTIONS, N_POSITIONS))
        self.logging = _softmax(rng.normal(size=(N_CONTEXTS, N_ACTIONS, N_POSITIONS)))
        self.target = _softmax(2.0 * rng.normal(size=(N_CONTEXTS, N_ACTIONS, N_POSITIONS)))

    def value(self, n_positions=1):
        """Exact value, positions drawn uniformly from ``0..n_positions-1``."""
        per_position = np.einsum("x,xap,xap->p", self.p_context, self.target, self.q)
        return per_position[:n_positions].mean()

    def sample(self, n, seed, n_positions=1, noisy=True):
        """Feedback, action_dist, the context of each round, and the true ``q`` per action."""
        rng = np.random.default_rng(seed)
        x = rng.choice(N_CONTEXTS, size=n, p=self.p_context)
        position = rng.integers(0, n_positions, size=n)
        mu = self.logging[x, :, position]
        action = (rng.random(n)[:, None] > np.cumsum(mu, axis=1)).sum(axis=1)
        mean = self.q[x, action, position]
        reward = (rng.random(n) < mean).astype(float) if noisy else mean
        feedback = BanditFeedback(action, reward, mu[np.arange(n), action],
                                  position=position if n_positions > 1 else None)
        action_dist = self.target[x][:, :, :n_positions]
        return feedback, action_dist, x, self.q[x][:, :, :n_positions]


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _mean_and_se(estimates):
    estimates = np.asarray(estimates)
    return estimates.mean(), estimates.std(ddof=1) / np.sqrt(len(estimates))


@pytest.fixture(scope="module")
def world():
    return World(seed=3)


@pytest.mark.parametrize("n_positions", [1, N_POSITIONS])
def test_unbiased_estimators_average_to_the_true_value(world, n_positions):
    truth = world.value(n_positions)
    wrong = np.random.default_rng(99).uniform(0, 1, size=(N_CONTEXTS, N_ACTIONS, N_POSITIONS))
    estimators = {"IPS": IPS(), "DR (wrong model)": DR(), "SwitchDR(inf)": SwitchDR(), "DRos(inf)": DRos()}
    estimates = {name: [] for name in estimators}
    # Shrinking the DR correction keeps it unbiased only when the model is exact.
    with_exact_model = {"DM": DM(), "SwitchDR(3)": SwitchDR(tau=3.0), "DRos(2)": DRos(lambda_=2.0)}
    exact = {name: [] for name in with_exact_model}
    dm_wrong = []
    for seed in range(400):
        feedback, action_dist, x, q = world.sample(200, seed, n_positions)
        for name, estimator in estimators.items():
            estimates[name].append(estimator.estimate_policy_value(feedback, action_dist, wrong[x][:, :, :n_positions]))
        for name, estimator in with_exact_model.items():
            exact[name].append(estimator.estimate_policy_value(feedback, action_dist, q))
        dm_wrong.append(DM().estimate_policy_value(feedback, action_dist, wrong[x][:, :, :n_positions]))
    for name, values in {**estimates, **exact}.items():
        mean, se = _mean_and_se(values)
        assert abs(mean - truth) < 4 * se + 1e-12, (name, mean, truth, se)
    mean, se = _mean_and_se(dm_wrong)
    assert abs(mean - truth) > 10 * se, "the wrong model must really be wrong for the DR test to mean anything"


def test_consistent_estimators_approach_the_true_value_on_a_large_log(world):
    truth = world.value(N_POSITIONS)
    feedback, action_dist, x, q = world.sample(200_000, seed=1, n_positions=N_POSITIONS)
    wrong = q + 0.2
    for estimator in [SNIPS(), SNDR(), SubGaussianIPS(lambda_=0.001)]:
        assert estimator.estimate_policy_value(feedback, action_dist, wrong) == pytest.approx(truth, abs=0.01)


def test_replay_matches_deterministic_target_under_uniform_logging():
    rng = np.random.default_rng(0)
    n = 100_000
    x = rng.integers(0, 3, size=n)
    action = rng.integers(0, N_ACTIONS, size=n)
    q = rng.uniform(size=(3, N_ACTIONS))
    reward = (rng.random(n) < q[x, action]).astype(float)
    best = q.argmax(axis=1)
    action_dist = np.eye(N_ACTIONS)[best[x]]
    feedback = BanditFeedback(action, reward, np.full(n, 1 / N_ACTIONS))
    matched = action == best[x]
    assert Replay().estimate_policy_value(feedback, action_dist) == pytest.approx(reward[matched].mean(), rel=1e-12)
    assert Replay().estimate_policy_value(feedback, action_dist) == pytest.approx(q.max(axis=1).mean(), abs=0.01)


def test_dr_family_equals_dm_with_perfect_model_and_noiseless_rewards(world):
    feedback, action_dist, _, q = world.sample(500, seed=5, n_positions=N_POSITIONS, noisy=False)
    dm = DM().estimate_policy_value(feedback, action_dist, q)
    for estimator in [DR(), SNDR(), SwitchDR(tau=2.0), DRos(lambda_=1.0), DR(max_weight=1.5)]:
        assert estimator.estimate_policy_value(feedback, action_dist, q) == pytest.approx(dm, abs=1e-12)


def test_self_normalised_estimators_are_invariant_to_scaling_the_weights(world):
    feedback, action_dist, _, q = world.sample(1000, seed=7)
    halved = BanditFeedback(feedback.action, feedback.reward, feedback.pscore * 0.5)
    for estimator in [SNIPS(), SNDR()]:
        assert estimator.estimate_policy_value(halved, action_dist, q + 0.1) == pytest.approx(
            estimator.estimate_policy_value(feedback, action_dist, q + 0.1), rel=1e-12)
    assert IPS().estimate_policy_value(halved, action_dist) == pytest.approx(
        2 * IPS().estimate_policy_value(feedback, action_dist), rel=1e-12)


def test_clipping_caps_each_weight_and_is_inactive_above_the_largest(world):
    feedback, action_dist, _, _ = world.sample(2000, seed=11)
    weight = action_dist[np.arange(2000), feedback.action, 0] / feedback.pscore
    cap = float(np.quantile(weight, 0.8))
    clipped = IPS(max_weight=cap).estimate_policy_value(feedback, action_dist)
    assert clipped == pytest.approx(np.mean(np.minimum(weight, cap) * feedback.reward), rel=1e-12)
    assert clipped < IPS().estimate_policy_value(feedback, action_dist)  # rewards >= 0: clipping biases down
    assert IPS(max_weight=weight.max()).estimate_policy_value(feedback, action_dist) == \
        IPS().estimate_policy_value(feedback, action_dist)


def test_hyperparameter_limits_recover_the_named_special_cases(world):
    feedback, action_dist, _, q = world.sample(1000, seed=13)
    model = q + 0.1
    dm = DM().estimate_policy_value(feedback, action_dist, model)
    dr = DR().estimate_policy_value(feedback, action_dist, model)
    assert SwitchDR(tau=0.0).estimate_policy_value(feedback, action_dist, model) == pytest.approx(dm, rel=1e-12)
    assert DRos(lambda_=0.0).estimate_policy_value(feedback, action_dist, model) == pytest.approx(dm, rel=1e-12)
    assert DRos(lambda_=1e12).estimate_policy_value(feedback, action_dist, model) == pytest.approx(dr, rel=1e-9)
    assert SubGaussianIPS(lambda_=0.0).estimate_policy_value(feedback, action_dist) == pytest.approx(
        IPS().estimate_policy_value(feedback, action_dist), rel=1e-12)


def test_shrinkage_limits_are_defined_on_rounds_the_target_never_takes(world):
    feedback, action_dist, _, q = world.sample(1000, seed=13)
    action_dist = action_dist.copy()
    action_dist[:, :, 0] = np.eye(N_ACTIONS)[(feedback.action + 1) % N_ACTIONS]  # every logged weight is 0
    action_dist[:50, :, 0] = np.eye(N_ACTIONS)[feedback.action[:50]]            # except 50 rounds
    weight = action_dist[np.arange(1000), feedback.action, 0] / feedback.pscore
    assert (weight == 0).any()
    model = q + 0.1
    assert DRos(lambda_=0.0).estimate_policy_value(feedback, action_dist, model) == pytest.approx(
        DM().estimate_policy_value(feedback, action_dist, model), rel=1e-12)
    # lambda_ = 1 gives every round the target may take the weight 1, and the others 0
    assert SubGaussianIPS(lambda_=1.0).estimate_policy_value(feedback, action_dist) == pytest.approx(
        np.mean((weight > 0) * feedback.reward), rel=1e-12)


def test_torch_tensors_give_the_same_estimate_as_numpy(world):
    feedback, action_dist, _, q = world.sample(300, seed=17)
    as_torch = BanditFeedback(torch.as_tensor(feedback.action), torch.as_tensor(feedback.reward),
                              torch.as_tensor(feedback.pscore, dtype=torch.float32))
    assert DR().estimate_policy_value(as_torch, torch.as_tensor(action_dist), torch.as_tensor(q)) == pytest.approx(
        DR().estimate_policy_value(feedback, action_dist, q), rel=1e-6)


def test_bootstrap_interval_is_deterministic_for_a_seed(world):
    feedback, action_dist, _, q = world.sample(500, seed=19)
    first = SNDR().estimate_interval(feedback, action_dist, q, n_bootstrap=300, seed=4)
    assert first == SNDR().estimate_interval(feedback, action_dist, q, n_bootstrap=300, seed=4)
    assert first != SNDR().estimate_interval(feedback, action_dist, q, n_bootstrap=300, seed=5)
    assert first.lower < first.estimate < first.upper
    assert first.estimate == SNDR().estimate_policy_value(feedback, action_dist, q)


def test_bootstrap_intervals_cover_the_truth_about_as_often_as_promised(world):
    truth = world.value()
    covered = []
    for seed in range(200):
        feedback, action_dist, _, _ = world.sample(400, seed=1000 + seed)
        interval = IPS().estimate_interval(feedback, action_dist, n_bootstrap=200, alpha=0.1, seed=seed)
        covered.append(interval.lower <= truth <= interval.upper)
    assert 0.82 <= np.mean(covered) <= 0.97


def test_vectorised_bootstrap_matches_resampling_rounds_one_by_one(world):
    feedback, action_dist, _, q = world.sample(300, seed=23)
    interval = SNDR().estimate_interval(feedback, action_dist, q, n_bootstrap=50, alpha=0.2, seed=8)
    rows = np.random.default_rng(8).integers(0, 300, size=(50, 300))
    replicates = [
        SNDR().estimate_policy_value(
            BanditFeedback(feedback.action[r], feedback.reward[r], feedback.pscore[r]), action_dist[r], q[r])
        for r in rows
    ]
    assert [interval.lower, interval.upper] == pytest.approx(np.quantile(replicates, [0.1, 0.9]), rel=1e-10)
