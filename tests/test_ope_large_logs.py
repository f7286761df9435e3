"""A large log is not copied out whole: the reward models score their designs a chunk of
rounds at a time, and a simulated log of many rounds is drawn in parts."""

import tracemalloc

import numpy as np

from recoworld.ope import (
    BanditFeedback,
    LogisticRegression,
    fit_reward_model,
    fit_slate_reward_model,
)


def peak_mb(call) -> float:
    """Peak memory, in MB, that ``call()`` allocates."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_a_broadcast_design_of_many_rounds_is_never_copied_whole():
    from recoworld.apps.ope.sources import features_of

    # 20,000 rounds x 50 actions x 51 indicators: a copy would be 408 MB, one fold of it 82 MB
    n, actions = 20_000, 50
    rng = np.random.default_rng(0)
    feedback = BanditFeedback(rng.integers(0, actions, n), (rng.random(n) < 0.3).astype(float),
                              np.full(n, 1 / actions))
    design = features_of(None, actions, 1, n)(np.arange(n))[:, :, 0]
    assert design.strides[0] == 0 and design.nbytes > 400e6
    result = {}
    assert peak_mb(lambda: result.update(q=fit_reward_model(feedback, design))) < 70
    # the model is the same as on a design held in memory (ridge: one coefficient per action)
    rows = rng.choice(n, 2_000, replace=False)
    small = BanditFeedback(feedback.action[rows], feedback.reward[rows], feedback.pscore[rows])
    held = np.ascontiguousarray(design[rows])
    np.testing.assert_allclose(fit_reward_model(small, design[rows]), fit_reward_model(small, held))
    means = np.bincount(feedback.action, feedback.reward, actions) / np.bincount(feedback.action, minlength=actions)
    assert np.abs(result["q"].mean(0) - means).max() < 0.05


def test_a_slate_click_model_builds_its_design_a_chunk_of_slates_at_a_time():
    # 20,000 slates x 10 candidates x 3 positions x 23 features: the whole design is 110 MB
    n, candidates, k, d = 20_000, 10, 3, 20
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n, candidates, d))
    action = np.argsort(rng.random((n, candidates)), 1)[:, :k]
    reward = (rng.random((n, k)) < 0.2).astype(float)
    assert peak_mb(lambda: fit_slate_reward_model(features, action, reward, regressor=LogisticRegression())) < 70


def test_a_simulated_log_of_many_rounds_is_drawn_in_parts_of_their_own_seeds(monkeypatch):
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft

    from recoworld.apps.ope import slate_evaluation
    from recoworld.apps.ope.config import StudyConfig
    from recoworld.apps.ope.study import Study

    sizes = []
    study = Study(StudyConfig(n_items=50, num_candidates=5, slate_size=2, truth_users=10, learned=(), sessions=False))
    logged = study.log
    monkeypatch.setattr(study, "log", lambda policy, n, seed: sizes.append(n) or logged(policy, n, seed))
    monkeypatch.setattr(slate_evaluation, "SIMULATED_USERS", 40)
    log = slate_evaluation.simulated_log(study, EpsilonSoft(base=MostPopularAgent(), epsilon=0.5), 100, 1, 3)
    assert sizes == [40, 40, 20] and len(log) == 100
    assert log["seed"].tolist() == [1] * 40 + [4] * 40 + [7] * 20      # seed + part x sims: no other sim's seed
