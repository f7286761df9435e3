"""Bandit and Thompson-sampling agents: each update rule against its closed form, and
learning on small worlds where the answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from recoworld.agents import linear
from recoworld.agents.bandits import BernoulliTS, EpsilonGreedy, UCB1, popularity_design, popularity_line
from recoworld.agents.base import Feedback
from recoworld.agents.examination import impressions, observed_positions
from recoworld.agents.linear import DiagLinUCB, DisjointLinUCB, HybridLinUCB, LinUCB
from recoworld.agents.neural_linear import NeuralLinearTS
from recoworld.agents.sampling import slotwise_top_k
from toy_world import ToyWorld, drive, tiny_catalog
from recoworld.agents.thompson import InSlateThompson, LinearTS
from recoworld.types import CANDIDATE_IDS


class ContextFromObs:
    """Features read straight from ``obs["context"]``: the test chooses them."""

    def __init__(self, dim: int):
        self.dim = self.arm_dim = dim

    def __call__(self, obs):
        return obs["context"]

    arm_context = __call__


def with_context(cls, dim: int, **kwargs):
    """An instance of the contextual agent ``cls`` that learns on ``obs["context"]``."""
    agent = type(f"{cls.__name__}OnContext", (cls,), {"build_features": lambda self: ContextFromObs(dim)})
    return agent(**kwargs)


def feedback(obs, action, clicked, valid=None) -> Feedback:
    """A hand-made batch of feedback for the slates ``action`` shown on ``obs``."""
    action, clicked = np.asarray(action), np.asarray(clicked, dtype=bool)
    B = len(action)
    return Feedback(obs=obs, action=action, slate=np.take_along_axis(obs[CANDIDATE_IDS], action, 1),
                    clicked=clicked, watch_fraction=clicked * 0.5, liked=np.zeros_like(clicked),
                    reward=clicked.sum(1).astype(float), next_obs=obs, terminated=np.zeros(B, bool),
                    truncated=np.zeros(B, bool), valid=np.ones(B, bool) if valid is None else np.asarray(valid),
                    info={})


def two_armed_world(num_envs: int = 8) -> ToyWorld:
    """Arm 0 clicks with probability 0.3, arm 1 with 0.6, for every user."""
    return ToyWorld(tiny_catalog(2), lambda obs: np.where(obs[CANDIDATE_IDS] == 1, 0.6, 0.3), num_envs=num_envs)


def linear_world(theta: np.ndarray, num_envs: int = 16, num_candidates: int = 6, slate_size: int = 3) -> ToyWorld:
    """Candidates carry features ``x = [1, U(0,1), ...]``; a click has probability ``x . theta``."""
    def context(rng, B, C):
        x = rng.random((B, C, len(theta)))
        x[..., 0] = 1.0
        return x

    return ToyWorld(tiny_catalog(num_candidates), lambda obs: obs["context"] @ theta, num_envs=num_envs,
                    slate_size=slate_size, context=context)


# ------------------------------------------------------------------ position handling
def test_last_click_rule_reads_down_to_the_last_click_and_always_the_top():
    clicked = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(observed_positions(clicked, "last_click"),
                                  [[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    assert observed_positions(clicked, "all").all()


def test_impressions_skip_autoreset_rows():
    world = two_armed_world(num_envs=2)
    obs, _ = world.reset(seed=0)
    rows, positions, clicks = impressions(feedback(obs, [[1], [0]], [[True], [False]], valid=[False, True]), "all")
    assert rows.tolist() == [1] and positions.tolist() == [0] and clicks.tolist() == [0.0]


def test_unknown_examination_rule_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="examination='first'.*last_click"):
        UCB1(examination="first")
    with pytest.raises(ValueError, match="epsilon=1.5"):
        EpsilonGreedy(epsilon=1.5)
    with pytest.raises(ValueError, match="interaction='full'.*diagonal"):
        LinearTS(interaction="full")


# ----------------------------------------------------------- non-contextual bandits
@pytest.mark.parametrize("make, share", [
    (UCB1, 0.9),
    (BernoulliTS, 0.9),
    (lambda: BernoulliTS(per_slot=True), 0.9),
    (lambda: EpsilonGreedy(epsilon=0.1), 0.9 * (1 - 0.1)),  # modulo the exploring requests
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_bandits_pull_the_better_of_two_bernoulli_arms(make, share, seed):
    trace = drive(two_armed_world(), make(), n_steps=300, seed=seed)
    late = trace["slate"][-100:]
    assert (late == 1).mean() >= share


def test_beta_posterior_is_prior_plus_observed_clicks_and_skips():
    world = ToyWorld(tiny_catalog(4), lambda obs: np.full(obs[CANDIDATE_IDS].shape, 0.5), num_envs=2, slate_size=3)
    agent = BernoulliTS(prior_clicks=2.0, prior_skips=3.0, examination="last_click")
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    # Candidates are items 0..3 in order. Observed: down to the last click, else the top.
    agent.update(feedback(obs, [[0, 1, 2], [3, 0, 1]], [[0, 1, 0], [0, 0, 0]]))  # 0 skip, 1 click; 3 skip
    agent.update(feedback(obs, [[1, 2, 3], [0, 3, 2]], [[1, 0, 0], [0, 0, 1]]))  # 1 click; 0, 3 skip, 2 click
    alpha, beta = agent.posterior()
    np.testing.assert_array_equal(alpha, 2.0 + np.array([0, 2, 1, 0]))
    np.testing.assert_array_equal(beta, 3.0 + np.array([2, 0, 0, 2]))


def test_thompson_propensities_match_the_beta_race_closed_form():
    world = two_armed_world(num_envs=1)
    agent = BernoulliTS(propensity_samples=20_000)
    agent.setup(world, seed=3)
    obs, _ = world.reset(seed=0)
    agent.pulls[:], agent.clicks[:] = [10, 6], [3, 4]
    (a0, a1), (b0, b1) = agent.posterior()
    # P(theta_1 > theta_0) = integral of the density of theta_1 times the cdf of theta_0.
    exact, _ = integrate.quad(lambda t: stats.beta.pdf(t, a1, b1) * stats.beta.cdf(t, a0, b0), 0, 1)
    p = agent.propensities(obs, np.array([[1]]))
    assert abs(p["position"][0, 0] - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)
    assert p["slate"][0] == p["position"][0, 0] == p["cascade"][0, 0]
    # Seeded apart from acting: estimates repeat, and estimating does not move act's draws.
    np.testing.assert_array_equal(agent.propensities(obs, np.array([[1]]))["slate"], p["slate"])
    twin = BernoulliTS()
    twin.setup(world, seed=3)
    twin.pulls[:], twin.clicks[:] = agent.pulls, agent.clicks
    assert [agent.act(obs)[0, 0] for _ in range(50)] == [twin.act(obs)[0, 0] for _ in range(50)]


def test_epsilon_greedy_propensities_are_exact():
    world = ToyWorld(tiny_catalog(4), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), slate_size=2)
    agent = EpsilonGreedy(epsilon=0.3)
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    agent.pulls[:], agent.clicks[:] = [10, 10, 10, 10], [1, 4, 3, 2]  # greedy slate: items 1, 2
    greedy = agent.propensities(obs, np.array([[1, 2]]))
    assert greedy["slate"][0] == pytest.approx(0.7 + 0.3 / 12)  # 4 x 3 ranked slates
    np.testing.assert_allclose(greedy["position"][0], [0.7 + 0.3 / 4] * 2)
    np.testing.assert_allclose(greedy["cascade"][0], [0.7 + 0.3 / 4, 0.7 + 0.3 / 12])
    other = agent.propensities(obs, np.array([[1, 3]]))
    np.testing.assert_allclose(other["cascade"][0], [0.7 + 0.3 / 4, 0.3 / 12])
    # ... and agree with how often act() shows them.
    draws = np.concatenate([agent.act(obs) for _ in range(5_000)])
    assert (draws == [1, 2]).all(1).mean() == pytest.approx(greedy["slate"][0], abs=0.02)


def popular_catalog(n_items: int = 6):
    """A tiny catalog whose item ``i`` is the ``i``-th least popular (popularity ``∝ 2**i``)."""
    catalog = tiny_catalog(n_items)
    popularity = torch.tensor([2.0**i for i in range(n_items)])
    return replace(catalog, popularity=popularity / popularity.sum())


def test_popularity_prior_shrinks_each_rate_towards_a_weighted_line_in_log_popularity():
    world = ToyWorld(popular_catalog(), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape))
    agent = UCB1(prior_impressions=20.0)
    agent.setup(world, seed=0)
    agent.pulls[:], agent.clicks[:] = [50, 0, 10, 40, 100, 30], [5, 0, 1, 8, 30, 3]
    z = np.arange(6.0)
    z = (z - z.mean()) / z.std()  # log2-popularity is i, so z is i standardised
    seen = agent.pulls > 0
    # Weighted least squares of rates on z, weights n_i: polyfit weights residuals by w, so w = sqrt(n).
    slope, intercept = np.polyfit(z[seen], agent.clicks[seen] / agent.pulls[seen], 1, w=np.sqrt(agent.pulls[seen]))
    prior = intercept + slope * z
    np.testing.assert_allclose(agent.prior_rates(), prior, rtol=1e-6)
    np.testing.assert_allclose(agent.rates(), (agent.clicks + 20.0 * prior) / (agent.pulls + 20.0), rtol=1e-6)
    n = agent.pulls.sum()
    np.testing.assert_allclose(agent.indices(), agent.rates() + 0.1 * np.sqrt(2 * np.log(n) / (agent.pulls + 20.0)))


def test_beta_prior_is_centred_on_the_popularity_line_and_tempered_draws_keep_the_mean():
    world = ToyWorld(popular_catalog(), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape))
    agent = BernoulliTS(prior_impressions=10.0, posterior_scale=0.5)
    agent.setup(world, seed=0)
    agent.pulls[:], agent.clicks[:] = [50, 0, 10, 40, 100, 30], [5, 0, 1, 8, 30, 3]
    prior = 10.0 * agent.prior_rates()
    alpha, beta = agent.posterior()
    np.testing.assert_allclose(alpha, (prior + agent.clicks) / 0.25)
    np.testing.assert_allclose(beta, (10.0 - prior + agent.pulls - agent.clicks) / 0.25)
    np.testing.assert_allclose(alpha / (alpha + beta), agent.rates())


@pytest.mark.parametrize("make, share", [
    (lambda: EpsilonGreedy(prior_impressions=10.0), 0.85 * (1 - 0.1)),  # modulo the exploring requests
    (lambda: UCB1(prior_impressions=10.0), 0.85),
    (lambda: BernoulliTS(prior_impressions=10.0), 0.85),
])
def test_item_bandits_with_a_prior_start_from_popularity_and_find_an_unpopular_favourite(make, share):
    # Clicks follow popularity, except the least popular item, which every user loves.
    rates = np.array([0.7, 0.1, 0.15, 0.2, 0.25, 0.3])
    world = ToyWorld(popular_catalog(), lambda obs: rates[obs[CANDIDATE_IDS]], num_envs=8, slate_size=2)
    agent = make()
    if isinstance(agent, EpsilonGreedy):
        agent.epsilon = 0.0  # its exploring requests aside, a cold agent shows the most popular first
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    most_popular = np.tile([5, 4], (8, 1))
    np.testing.assert_array_equal(agent.act(obs), most_popular)
    np.testing.assert_array_equal(agent.propensities(obs, most_popular)["slate"], 1.0)
    trace = drive(world, make(), n_steps=300, seed=0)
    assert (trace["slate"][-100:, :, 0] == 0).mean() >= share


def test_bad_prior_settings_are_refused():
    with pytest.raises(ValueError, match=r"^UCB1.prior_impressions=-1.0: must be >= 0$"):
        UCB1(prior_impressions=-1.0)
    with pytest.raises(ValueError, match=r"^BernoulliTS.posterior_scale=0.0: must be > 0$"):
        BernoulliTS(posterior_scale=0.0)
    from recoworld.agents.linear import DisjointLinUCB

    with pytest.raises(ValueError, match=r"^DisjointLinUCB.prior_impressions=-1.0: must be >= 0$"):
        DisjointLinUCB(prior_impressions=-1.0)


@pytest.mark.parametrize("make, message", [
    (lambda: LinearTS(posterior_scale=-0.1), "LinearTS.posterior_scale=-0.1: must be > 0"),
    (lambda: InSlateThompson(posterior_scale=0.0), "InSlateThompson.posterior_scale=0.0: must be > 0"),
    (lambda: LinearTS(l2=0.0), "LinearTS.l2=0.0: must be > 0"),
    (lambda: LinearTS(posterior_scale="abc"), "LinearTS.posterior_scale='abc': must be a finite number > 0"),
    (lambda: LinearTS(propensity_matches=0), "LinearTS.propensity_matches=0: must be an integer >= 1"),
    (lambda: BernoulliTS(max_propensity_samples=0), "BernoulliTS.max_propensity_samples=0: must be an integer >= 1"),
    (lambda: NeuralLinearTS(propensity_samples=-1), "NeuralLinearTS.propensity_samples=-1: must be an integer >= 0"),
])
def test_bad_thompson_settings_are_refused_by_name_when_built(make, message):
    """Before any rollout: a negative scale used to act as its absolute value, and a bad
    propensity setting to fail in the middle of a logged rollout."""
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


def test_slotwise_sampling_fills_each_slot_from_its_own_draw():
    draws = iter([np.array([[3.0, 2.0, 1.0]]), np.array([[5.0, 0.0, 1.0]]), np.array([[0.0, 0.0, 9.0]])])
    np.testing.assert_array_equal(slotwise_top_k(lambda: next(draws), 2), [[0, 2]])


# -------------------------------------------------------------- linear contextual
def test_linucb_recovers_a_known_linear_parameter():
    theta = np.array([0.2, 0.5, -0.1])
    agent = with_context(LinUCB, 3, alpha=0.5, examination="all")
    drive(linear_world(theta), agent, n_steps=300, seed=0)
    np.testing.assert_allclose(agent.ridge.theta, theta, atol=0.05)


def test_linucb_scores_are_the_upper_confidence_bounds_of_li_et_al_by_hand():
    world = ToyWorld(tiny_catalog(2), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), num_envs=1, slate_size=2)
    agent = with_context(LinUCB, 2, alpha=0.5, l2=1.0, examination="all")
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    obs = {**obs, "context": np.array([[[1.0, 0.0], [1.0, 1.0]]])}
    agent.update(feedback(obs, [[0, 1]], [[1, 0]]))
    # A = I + [1,0][1,0]' + [1,1][1,1]' = [[3,1],[1,2]], A^-1 = [[2,-1],[-1,3]]/5, b = [1,0],
    # theta = A^-1 b = [0.4, -0.2]; p = x'theta + 0.5 sqrt(x'A^-1 x): 0.4 + 0.5 sqrt(0.4), -0.2 + 0.5 sqrt(0.6)
    scores = agent.score({**obs, "context": np.array([[[1.0, 0.0], [0.0, 1.0]]])})
    np.testing.assert_allclose(scores, [[0.4 + 0.5 * np.sqrt(0.4), -0.2 + 0.5 * np.sqrt(0.6)]])
    np.testing.assert_allclose(scores, [[0.7162278, 0.1872983]], atol=1e-7)


def test_linear_ts_posterior_is_bayesian_linear_regression():
    rng = np.random.default_rng(0)
    world = linear_world(np.array([0.2, 0.5, -0.1]), num_envs=5)
    agent = with_context(LinearTS, 3, posterior_scale=0.3, l2=2.0, examination="all")
    agent.setup(world, seed=0)
    xs, ys = [], []
    for _ in range(3):
        obs, _ = world.reset(seed=int(rng.integers(100)))
        action = np.argsort(rng.random((5, 6)), 1)[:, :3]
        clicked = rng.random((5, 3)) < 0.4
        agent.update(feedback(obs, action, clicked))
        xs.append(np.take_along_axis(obs["context"], action[..., None], 1).reshape(-1, 3))
        ys.append(clicked.reshape(-1).astype(float))
    X, y = np.concatenate(xs), np.concatenate(ys)
    mean, cov = agent.posterior()
    precision = 2.0 * np.eye(3) + X.T @ X  # prior N(0, v^2/l2 I), noise variance v^2
    np.testing.assert_allclose(mean, np.linalg.solve(precision, X.T @ y))
    np.testing.assert_allclose(cov, 0.3**2 * np.linalg.inv(precision))


def test_diag_linucb_keeps_independent_per_coordinate_sums():
    rng = np.random.default_rng(1)
    world = linear_world(np.array([0.2, 0.5, -0.1, 0.1]), num_envs=8, slate_size=3)
    full, shard_a, shard_b = (with_context(DiagLinUCB, 4, l2=0.5, examination="all") for _ in range(3))
    for agent in (full, shard_a, shard_b):
        agent.setup(world, seed=0)
    xs, ys = [], []
    for step in range(4):
        obs, _ = world.reset(seed=step)
        action = np.argsort(rng.random((8, 6)), 1)[:, :3]
        clicked = rng.random((8, 3)) < 0.3
        batch = feedback(obs, action, clicked)
        full.update(batch)
        (shard_a if step % 2 else shard_b).update(batch)  # two servers, each sees half the events
        xs.append(np.take_along_axis(obs["context"], action[..., None], 1).reshape(-1, 4))
        ys.append(clicked.reshape(-1).astype(float))
    X, y = np.concatenate(xs), np.concatenate(ys)
    mean, a, theta = full.coordinates()
    for j in range(4):  # the docstring's formula, one coordinate at a time
        x = X[:, j]
        assert mean[j] == pytest.approx(x.mean())
        assert a[j] == pytest.approx(0.5 + ((x - x.mean()) ** 2).sum())
        assert theta[j] == pytest.approx(((x - x.mean()) * y).sum() / a[j])
    for name in ("S", "Q", "P", "n", "R"):  # sums from shards add up to the whole
        np.testing.assert_allclose(getattr(shard_a, name) + getattr(shard_b, name), getattr(full, name))


def test_disjoint_linucb_keeps_one_ridge_per_item():
    world = ToyWorld(tiny_catalog(3), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), num_envs=2, slate_size=2,
                     context=lambda rng, B, C: rng.random((B, C, 2)))
    agent = with_context(DisjointLinUCB, 2, l2=1.5, examination="all")
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    agent.update(feedback(obs, [[0, 2], [2, 1]], [[1, 0], [1, 1]]))
    x = obs["context"]
    A2 = 1.5 * np.eye(2) + np.outer(x[0, 2], x[0, 2]) + np.outer(x[1, 2], x[1, 2])
    np.testing.assert_allclose(agent.A[2], A2)
    np.testing.assert_allclose(agent.theta[2], np.linalg.solve(A2, x[1, 2]))
    np.testing.assert_allclose(agent.A[0], 1.5 * np.eye(2) + np.outer(x[0, 0], x[0, 0]))


@pytest.mark.parametrize("make", [DisjointLinUCB, HybridLinUCB])
def test_per_item_models_go_by_chunks_of_rows_and_give_what_one_pass_gives(make, small_env, monkeypatch):
    def run():
        agent = make(examination="all")
        trace = drive(small_env, agent, n_steps=6, seed=0)
        obs, _ = small_env.reset(seed=9)
        return trace["slate"], agent.score(obs), agent.A.copy(), agent.b.copy()

    whole = run()
    monkeypatch.setattr(linear, "CHUNK_FLOATS", 1)  # one row (one impression) per chunk
    chunked = run()
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-12)
    np.testing.assert_array_equal(chunked[2], whole[2])
    np.testing.assert_array_equal(chunked[3], whole[3])


@pytest.mark.parametrize("make", [DisjointLinUCB, HybridLinUCB])
def test_per_item_models_score_a_large_batch_in_bounded_memory(make):
    """Gathering each candidate's item matrices for the whole batch at once took 141 MB
    (disjoint) and 335 MB (hybrid) for 1,024 users x 50 candidates, 16x that for 16,384."""
    import tracemalloc

    import gymnasium as gym

    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=1024, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    agent = make()
    agent.setup(env, seed=0)
    tracemalloc.start()
    try:
        agent.score(obs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 80 * 2**20, f"{peak / 2**20:.0f} MB"


def test_disjoint_linucb_popularity_prior_centres_each_intercept_on_the_popularity_line():
    def context(rng, B, C):  # the per-arm context starts with the constant 1, as the real one does
        x = rng.random((B, C, 2))
        x[..., 0] = 1.0
        return x

    world = ToyWorld(popular_catalog(4), lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), num_envs=2,
                     slate_size=2, context=context)
    agent = with_context(DisjointLinUCB, 2, l2=1.5, prior_impressions=4.0, alpha=0.0, examination="all")
    agent.setup(world, seed=0)
    obs, _ = world.reset(seed=0)
    np.testing.assert_array_equal(agent.act(obs), [[3, 2], [3, 2]])  # cold: most popular first
    agent.update(feedback(obs, [[0, 2], [2, 1]], [[1, 0], [1, 1]]))
    # Items 0, 1, 2, 3 were shown 1, 1, 2, 0 times and clicked 1, 1, 1, 0 times.
    prior = popularity_line(popularity_design(agent.catalog), np.array([1.0, 1.0, 2.0, 0.0]),
                            np.array([1.0, 1.0, 1.0, 0.0]))
    x = obs["context"]
    A2 = np.diag([4.0, 1.5]) + np.outer(x[0, 2], x[0, 2]) + np.outer(x[1, 2], x[1, 2])
    np.testing.assert_allclose(agent.A[2], A2)
    np.testing.assert_allclose(agent.theta[2], np.linalg.solve(A2, x[1, 2] + [4.0 * prior[2], 0.0]))
    np.testing.assert_allclose(agent.theta[3], [prior[3], 0.0])  # never shown: at its prior rate


class HybridReference:
    """Li et al. (2010), Algorithm 2, line by line, one impression at a time."""

    def __init__(self, n_arms, d, k, l2):
        self.A0, self.b0 = l2 * np.eye(k), np.zeros(k)
        self.A = [l2 * np.eye(d) for _ in range(n_arms)]
        self.B = [np.zeros((d, k)) for _ in range(n_arms)]
        self.b = [np.zeros(d) for _ in range(n_arms)]

    def score(self, a, z, x, alpha):
        A0i, Ai, B = np.linalg.inv(self.A0), np.linalg.inv(self.A[a]), self.B[a]
        beta = A0i @ self.b0
        theta = Ai @ (self.b[a] - B @ beta)
        s = (z @ A0i @ z - 2 * z @ A0i @ B.T @ Ai @ x + x @ Ai @ x + x @ Ai @ B @ A0i @ B.T @ Ai @ x)
        return z @ beta + x @ theta + alpha * np.sqrt(s)

    def update(self, a, z, x, r):
        Ai = np.linalg.inv(self.A[a])
        self.A0 += self.B[a].T @ Ai @ self.B[a]
        self.b0 += self.B[a].T @ Ai @ self.b[a]
        self.A[a] += np.outer(x, x)
        self.B[a] += np.outer(x, z)
        self.b[a] += r * x
        Ai = np.linalg.inv(self.A[a])
        self.A0 += np.outer(z, z) - self.B[a].T @ Ai @ self.B[a]
        self.b0 += r * z - self.B[a].T @ Ai @ self.b[a]


def test_hybrid_linucb_batch_update_equals_algorithm_2_one_by_one():
    rng = np.random.default_rng(2)
    catalog = tiny_catalog(4)
    world = ToyWorld(catalog, lambda obs: np.zeros(obs[CANDIDATE_IDS].shape), num_envs=3, slate_size=3)

    class Features:  # shared z (3 dims) and per-arm x (2 dims) drawn for the test
        dim, arm_dim = 3, 2

        def __call__(self, obs):
            return obs["z"]

        def arm_context(self, obs):
            return obs["x"]

    agent = type("Hybrid", (HybridLinUCB,), {"build_features": lambda self: Features()})(alpha=0.7, l2=1.3,
                                                                                          examination="all")
    agent.setup(world, seed=0)
    reference = HybridReference(4, 2, 3, 1.3)
    for step in range(3):
        obs, _ = world.reset(seed=step)
        obs["z"], obs["x"] = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 2))
        np.testing.assert_allclose(agent.score(obs), [[reference.score(a, obs["z"][b, c], obs["x"][b, c], 0.7)
                                                         for c, a in enumerate(obs[CANDIDATE_IDS][b])]
                                                        for b in range(3)])
        action = np.argsort(rng.random((3, 4)), 1)[:, :3]  # arms repeat within the batch
        clicked = rng.random((3, 3)) < 0.5
        agent.update(feedback(obs, action, clicked))
        for b in range(3):
            for c, r in zip(action[b], clicked[b]):
                reference.update(obs[CANDIDATE_IDS][b, c], obs["z"][b, c], obs["x"][b, c], float(r))
    np.testing.assert_allclose(agent.A0, reference.A0)
    np.testing.assert_allclose(agent.b0, reference.b0, atol=1e-12)
    np.testing.assert_allclose(agent.B, np.stack(reference.B), atol=1e-12)


# ------------------------------------------------------------------ neural-linear
def test_neural_linear_retrains_on_schedule_and_refits_the_posterior_on_the_buffer():
    world = linear_world(np.array([0.2, 0.5, -0.1]), num_envs=4)
    agent = with_context(NeuralLinearTS, 3, train_every=3, train_steps=5, batch_size=16, hidden_size=8,
                         representation_size=4, examination="all")
    drive(world, agent, n_steps=7, seed=0)
    assert agent.retrainings == 2
    # After the last retraining (step 6) the posterior holds the whole buffer, then step 7.
    assert agent.ridge.n == agent._stored == 7 * 4 * 3
    phi = agent.represent(world.obs)
    assert phi.shape == (4, 6, 4 + 3)
    np.testing.assert_allclose(phi[..., 4:], world.obs["context"], rtol=1e-6)  # the skip connection


# --------------------------------------------------------------------- determinism
ALL_AGENTS = [
    EpsilonGreedy, UCB1, BernoulliTS, LinUCB, DisjointLinUCB, HybridLinUCB, DiagLinUCB, LinearTS, InSlateThompson,
    lambda: NeuralLinearTS(train_every=4, train_steps=3, batch_size=32, hidden_size=8, representation_size=4),
]


@pytest.mark.parametrize("make", ALL_AGENTS)
def test_agents_are_deterministic_for_a_seed(make, small_env):
    runs = [drive(small_env, make(), n_steps=10, seed=5)["slate"] for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("make", [EpsilonGreedy, BernoulliTS, LinearTS, InSlateThompson, NeuralLinearTS])
def test_stochastic_agents_draw_from_their_seed(make, small_env):
    obs, _ = small_env.reset(seed=0)
    slates = []
    for seed in (1, 2):
        agent = make(epsilon=1.0) if make is EpsilonGreedy else make()
        agent.setup(small_env, seed)
        slates.append(np.concatenate([agent.act(obs) for _ in range(3)]))
    assert (slates[0] != slates[1]).any()


@pytest.fixture(scope="module")
def small_env():
    import gymnasium as gym

    return gym.make_vec("RecoWorld/Slate-v0", num_envs=4, vectorization_mode="vector_entry_point")


@pytest.mark.parametrize("make", ALL_AGENTS)
def test_autoreset_rows_teach_nothing(make, small_env):
    obs, _ = small_env.reset(seed=0)
    learner, untouched = make(), make()
    for agent in (learner, untouched):
        agent.setup(small_env, seed=1)
    action = learner.act(obs)
    untouched.act(obs)
    learner.update(feedback(obs, action, np.ones(action.shape, bool), valid=np.zeros(len(action), bool)))
    np.testing.assert_array_equal(learner.act(obs), untouched.act(obs))
