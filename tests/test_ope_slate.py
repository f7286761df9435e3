"""Slate estimators on synthetic slates whose value is computed by enumerating every slate."""

import itertools

import numpy as np
import pytest

from recoworld.ope import (
    SelfNormalizedSlateIndependentIPS, SelfNormalizedSlateIPS, SelfNormalizedSlateRewardInteractionIPS,
    SlateCascadeDR, SlateFeedback, SlateIndependentIPS, SlateIPS, SlateRewardInteractionIPS,
)

N_ITEMS, SLATE_LENGTH = 3, 3


class World:
    """Each position ``k`` picks one of ``N_ITEMS`` candidates independently, from ``mu[k]``
    (logging) or ``pi[k]`` (evaluation). ``attraction[a, k]`` is the click probability of
    candidate ``a`` at ``k``. An "independent" user clicks each position on its own; a
    "cascade" user scans top-down and stops after the first click."""

    def __init__(self, slate_length=SLATE_LENGTH, seed=0):
        rng = np.random.default_rng(seed)
        self.k = slate_length
        self.mu = rng.dirichlet(np.full(N_ITEMS, 3.0), size=slate_length)
        self.pi = rng.dirichlet(np.full(N_ITEMS, 0.7), size=slate_length)
        self.attraction = rng.uniform(0.1, 0.9, size=(N_ITEMS, slate_length))

    def expected_reward(self, slates, user):
        attraction = self.attraction[slates, np.arange(self.k)]
        if user == "independent":
            return attraction
        not_yet = np.cumprod(np.concatenate([np.ones((len(slates), 1)), 1 - attraction[:, :-1]], axis=1), axis=1)
        return attraction * not_yet

    def value(self, user):
        slates = np.array(list(itertools.product(range(N_ITEMS), repeat=self.k)))
        probability = self.pi[np.arange(self.k), slates].prod(axis=1)
        return float(probability @ self.expected_reward(slates, user).sum(axis=1))

    def sample(self, n, seed, user, noisy=True, pscore_scale=1.0):
        """Feedback, the evaluation policy's three pscore layouts, and the slates."""
        rng = np.random.default_rng(seed)
        u = rng.random((n, self.k, 1))
        slates = (u > np.cumsum(self.mu, axis=1)[None]).sum(axis=2)
        mean = self.expected_reward(slates, user)
        if not noisy:
            reward = mean
        elif user == "independent":
            reward = (rng.random(mean.shape) < mean).astype(float)
        else:  # clicks stop the scan: reward 1 at the first attractive position only
            attractive = rng.random(mean.shape) < self.attraction[slates, np.arange(self.k)]
            first = np.cumsum(attractive, axis=1) == 1
            reward = (attractive & first).astype(float)
        feedback = SlateFeedback(reward, **_layouts(self.mu, slates, pscore_scale))
        evaluation = {f"evaluation_{name}": value for name, value in _layouts(self.pi, slates).items()}
        return feedback, evaluation, slates

    def exact_q(self, slates):
        """Cascade user's ``q_hat`` and ``v_hat`` (rewards from position k on) for noiseless rewards."""
        attraction = self.attraction[slates, np.arange(self.k)]
        mean_attraction = (self.pi * self.attraction.T).sum(axis=1)
        future = np.zeros(self.k + 1)  # expected clicks from k on, given no click before k
        for k in reversed(range(self.k)):
            future[k] = mean_attraction[k] + (1 - mean_attraction[k]) * future[k + 1]
        not_yet = np.cumprod(np.concatenate([np.ones((len(slates), 1)), 1 - attraction[:, :-1]], axis=1), axis=1)
        q_hat = not_yet * (attraction + (1 - attraction) * future[1:])
        v_hat = not_yet * future[:-1]
        return q_hat, v_hat


def _layouts(table, slates, scale=1.0):
    marginal = table[np.arange(slates.shape[1]), slates]
    cascade = np.cumprod(marginal, axis=1)
    return {"pscore": cascade[:, -1] * scale, "pscore_item_position": marginal * scale,
            "pscore_cascade": cascade * scale}


def _mean_and_se(values):
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


ALL_IPS = [SlateIPS, SlateIndependentIPS, SlateRewardInteractionIPS]
SELF_NORMALIZED = [SelfNormalizedSlateIPS, SelfNormalizedSlateIndependentIPS, SelfNormalizedSlateRewardInteractionIPS]


@pytest.mark.parametrize("user, unbiased, biased", [
    ("independent", [SlateIPS, SlateIndependentIPS, SlateRewardInteractionIPS, SlateCascadeDR], []),
    ("cascade", [SlateIPS, SlateRewardInteractionIPS, SlateCascadeDR], [SlateIndependentIPS]),
])
def test_slate_estimators_are_unbiased_exactly_under_their_assumption(user, unbiased, biased):
    world = World(seed=1)
    truth = world.value(user)
    estimates = {cls: [] for cls in unbiased + biased}
    wrong = np.random.default_rng(5).uniform(0, 1, size=(N_ITEMS, SLATE_LENGTH))
    for seed in range(600):
        feedback, evaluation, slates = world.sample(200, seed, user)
        # A poor model, but v_hat is its expectation under pi: DR must stay unbiased anyway.
        q_hat = wrong[slates, np.arange(SLATE_LENGTH)]
        v_hat = np.broadcast_to((world.pi * wrong.T).sum(axis=1), q_hat.shape)
        for cls in estimates:
            estimates[cls].append(cls().estimate_policy_value(feedback, **evaluation, q_hat=q_hat, v_hat=v_hat))
    for cls in unbiased:
        mean, se = _mean_and_se(estimates[cls])
        assert abs(mean - truth) < 4 * se, (cls.__name__, mean, truth, se)
    for cls in biased:
        mean, se = _mean_and_se(estimates[cls])
        assert abs(mean - truth) > 8 * se, (cls.__name__, mean, truth, se)


def test_self_normalised_slate_estimators_are_consistent_and_scale_invariant():
    world = World(seed=2)
    feedback, evaluation, _ = world.sample(100_000, seed=0, user="cascade")
    scaled, _, _ = world.sample(100_000, seed=0, user="cascade", pscore_scale=0.5)
    for cls in [SelfNormalizedSlateIPS, SelfNormalizedSlateRewardInteractionIPS]:
        assert cls().estimate_policy_value(feedback, **evaluation) == pytest.approx(world.value("cascade"), abs=0.01)
    for cls in SELF_NORMALIZED:
        assert cls().estimate_policy_value(scaled, **evaluation) == pytest.approx(
            cls().estimate_policy_value(feedback, **evaluation), rel=1e-12)
    for cls in ALL_IPS:
        assert cls().estimate_policy_value(scaled, **evaluation) == pytest.approx(
            2 * cls().estimate_policy_value(feedback, **evaluation), rel=1e-12)


def test_all_slate_ips_agree_on_slates_of_length_one():
    world = World(slate_length=1, seed=3)
    feedback, evaluation, _ = world.sample(1000, seed=0, user="cascade")
    values = [cls().estimate_policy_value(feedback, **evaluation) for cls in ALL_IPS + SELF_NORMALIZED]
    assert values[:3] == pytest.approx([values[0]] * 3, rel=1e-12)
    assert values[3:] == pytest.approx([values[3]] * 3, rel=1e-12)


def test_cascade_dr_equals_the_direct_method_with_exact_q_and_noiseless_rewards():
    world = World(seed=4)
    feedback, evaluation, slates = world.sample(2000, seed=0, user="cascade", noisy=False)
    q_hat, v_hat = world.exact_q(slates)
    assert v_hat[:, 0].mean() == pytest.approx(world.value("cascade"), rel=1e-12)
    assert SlateCascadeDR().estimate_policy_value(feedback, **evaluation, q_hat=q_hat, v_hat=v_hat) == \
        pytest.approx(v_hat[:, 0].mean(), abs=1e-12)


def test_slate_interval_is_deterministic_and_brackets_the_estimate():
    feedback, evaluation, _ = World(seed=5).sample(3000, seed=0, user="cascade")
    first = SelfNormalizedSlateRewardInteractionIPS().estimate_interval(feedback, **evaluation, n_bootstrap=200, seed=1)
    again = SelfNormalizedSlateRewardInteractionIPS().estimate_interval(feedback, **evaluation, n_bootstrap=200, seed=1)
    assert first == again and first.lower < first.estimate < first.upper
