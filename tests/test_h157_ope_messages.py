"""Offline evaluation's messages: flags named as typed, counts in their number, the fix named;
and contexts of any finite size fitted by the reward models."""

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from recoworld.agents.bandits import EpsilonGreedy
from recoworld.apps.cli import main as cli
from recoworld.apps.ope.config import StudyConfig
from recoworld.apps.ope.options import as_flags
from recoworld.ope import (
    BanditFeedback,
    LogisticRegression,
    RidgeRegression,
    fit_reward_model,
    fit_slate_reward_model,
)
from recoworld.ope._validation import action_distribution, check_count
from recoworld.wording import plural
from recoworld.ope.base import check_resamples
from tests.test_ope_evaluate import refused, table_log

POLICY = "tests.test_ope_evaluate:UniformBandit"


# ------------------------------------------------- recoworld ope: the flags, not the fields
@pytest.mark.parametrize("argv, message", [
    (["--bootstrap", "0"], "--bootstrap 0 resamples cannot give a 95% interval: without a resample there is no "
                           "replicate to take an interval from; use --bootstrap >= 39, and 1000 or more for stable "
                           "ends"),
    (["--bootstrap", "1"], "--bootstrap 1 resample cannot give a 95% interval: the widest percentile interval of 1 "
                           "resample covers about 0%; use --bootstrap >= 39, and 1000 or more for stable ends"),
    (["--log-sizes", "3", "500"], "--log-sizes 3 500; each log needs at least as many rounds as --folds 5, one per "
                                  "fold of the click model: give sizes of 5 or more, or a smaller --folds"),
    (["--seeds", "1"], "--seeds 1; bias and RMSE need at least 2 logs per cell, e.g. --seeds 10"),
    (["--refits", "1"], "--refits 1; a standard error needs at least 2 refits, e.g. --refits 20"),
    (["--session-log-sizes", "1"], "--session-log-sizes 1; each session log needs at least 2 trajectories (2 folds "
                                   "of the Q-function), e.g. --session-log-sizes 500"),
    (["--slate-size", "4", "--candidates", "3"], "--slate-size 4 > --candidates 3; a slate shows distinct "
                                                 "candidates: give --slate-size <= 3 or a larger --candidates"),
    (["--candidates", "300"], "--candidates 300 > --n-items 200; the candidates are distinct items of the catalog: "
                              "give --candidates <= 200 or a larger --n-items"),
    (["--session-slate-size", "6"], "--session-slate-size 6 > --session-candidates 5; a slate shows distinct "
                                    "candidates: give --session-slate-size <= 5 or a larger --session-candidates"),
    (["--horizon", "0"], "--horizon 0: must be an integer >= 1"),
    (["--alpha", "nan"], "--alpha nan: must be a finite number in (0, 1)"),
    (["--session-estimators", "DR", "DR"], "--session-estimators DR DR names DR more than once; give each once"),
])
def test_the_study_names_the_flag_as_typed_and_the_fix(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        cli(["ope", "--out", str(tmp_path / "out"), *argv])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"recoworld ope: error: {message}"
    assert not (tmp_path / "out").exists()


def test_the_python_api_names_the_fields_the_command_line_rewrites():
    with pytest.raises(ValueError) as refused_config:
        StudyConfig(log_sizes=(3, 500), n_folds=4)
    said = str(refused_config.value)
    assert said == ("StudyConfig.log_sizes=[3, 500]; each log needs at least as many rounds as StudyConfig.n_folds=4, "
                    "one per fold of the click model: give sizes of 4 or more, or a smaller StudyConfig.n_folds")
    assert as_flags(said) == ("--log-sizes 3 500; each log needs at least as many rounds as --folds 4, one per fold "
                              "of the click model: give sizes of 4 or more, or a smaller --folds")
    # a list of names reads as typed; a message without settings is left alone
    assert as_flags("StudyConfig.logging=['softmax', 'softmax'] names softmax") == \
        "--logging softmax softmax names softmax"
    assert as_flags("choose one or more of ['uniform']") == "choose one or more of ['uniform']"


# ------------------------------------------------- recoworld ope evaluate --max-relative-rmse
@pytest.mark.parametrize("value", ["-0.1", "0", "nan"])
def test_max_relative_rmse_says_what_it_is_a_share_of(tmp_path, capsys, value):
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy", POLICY, "--max-relative-rmse",
                   value) == (
        f"--max-relative-rmse {float(value)}; give a share above 0, e.g. 0.25: the largest simulated RMSE trusted, as "
        "a share of the simulated value above the floor of the logged rewards (their 1% quantile; 0 for 0/1 "
        "rewards)")


# ------------------------------------------------- check_count's example
def test_a_count_that_is_not_whole_is_refused_with_an_example():
    feedback = BanditFeedback([0, 1] * 10, [1.0, 0.0] * 10, [0.5] * 20)
    with pytest.raises(ValueError, match=r"^n_folds = 2\.5, but it must be a whole number; give an integer, e\.g\. "
                                         r"n_folds=2$"):
        fit_reward_model(feedback, np.zeros((20, 2, 1)), n_folds=2.5)
    with pytest.raises(ValueError, match=r"^n_sims = inf, but it must be a whole number; give an integer, e\.g\. "
                                         r"n_sims=2$"):
        check_count(math.inf, "n_sims", 2)


# ------------------------------------------------- counts in their number
def test_plural_counts_in_the_number_of_the_count():
    assert [plural(n, "round") for n in (0, 1, 2)] == ["0 rounds", "1 round", "2 rounds"]
    assert plural(1, "candidate index", "candidate indices") == "1 candidate index"
    assert plural(12000, "round", spec=",") == "12,000 rounds"


def test_one_of_a_thing_is_said_in_the_singular(tmp_path, capsys):
    with pytest.raises(ValueError, match=re.escape("the log has 1 round, but cross-fitting over n_folds = 5 folds "
                                                   "needs one round per fold: log at least 5 rounds, or at least 2 "
                                                   "with n_folds = 2")):
        fit_reward_model(BanditFeedback([0], [1.0], [0.5]), np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match=re.escape("the log has 1 slate, but cross-fitting")):
        fit_slate_reward_model(np.zeros((1, 3, 2)), [[0, 1]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match=re.escape("n_bootstrap=1 resample cannot give a 95% interval: the widest "
                                                   "percentile interval of 1 resample covers about 0%")):
        check_resamples(1, 0.05)
    with pytest.raises(ValueError, match=r"^action_dist has 1 dimension, but"):
        action_distribution(np.ones(3), 3, 1)
    with pytest.raises(ValueError, match=r"^action_dist has 1 row, but the feedback has 2 logged rounds; "):
        action_distribution(np.ones((1, 1)), 2, 1)
    with pytest.raises(ValueError, match=re.escape("over the 1 action (sum to 1)")):
        action_distribution(np.full((2, 1), 0.5), 2, 1)
    with pytest.raises(ValueError, match=r"features has only 1 candidate; "):
        fit_slate_reward_model(np.zeros((10, 1, 2)), np.zeros((10, 2), dtype=int), np.zeros((10, 2)))
    log = str(tmp_path / "one.csv")
    pd.DataFrame({"action": [0], "reward": [1.0], "pscore": [0.5]}).to_csv(log, index=False)
    assert refused(capsys, "--log", log, "--policy", POLICY).startswith(
        f"{log} has 1 round, but an evaluation needs at least 20")


# ------------------------------------------------- contexts of any finite size
def contexts(n=300, seed=0):
    """Features of a logged action ``[n, 3]``, one column a context, and 0/1 and real rewards."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    action = rng.integers(0, 2, n)
    features = np.column_stack([x * action, action, 1 - action])
    clicked = (rng.random(n) < 1 / (1 + np.exp(-x * action))).astype(float)
    return features, clicked, features @ [1.0, 2.0, 0.5] + rng.standard_normal(n)


def predicted(model, X):
    return model.predict_proba(X)[:, 1] if isinstance(model, LogisticRegression) else model.predict(X)


@pytest.mark.parametrize("scale", [1e200, 1e307])
@pytest.mark.parametrize("regressor", [LogisticRegression, RidgeRegression])
def test_reward_models_fit_a_feature_of_any_finite_size(regressor, scale):
    # Unpenalised, a linear model does not care for a column's unit: the same predictions at
    # any scale. Before: 1e200 squared overflowed the Gram matrix (inf, then a column silently
    # dropped, or LAPACK's "SVD did not converge").
    features, clicked, reward = contexts()
    y = clicked if regressor is LogisticRegression else reward
    scaled = features * [scale, 1.0, 1.0]
    expected = predicted(regressor(alpha=0.0).fit(features, y), features)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = predicted(regressor(alpha=0.0).fit(scaled, y), scaled)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("regressor", [LogisticRegression, RidgeRegression])
def test_the_penalty_is_on_the_coefficients_of_the_features_as_given(regressor):
    # alpha ||coef||^2 whatever the rescaling inside: features c times larger under a penalty
    # c^2 times larger are the same model, with coefficients c times smaller
    features, clicked, reward = contexts()
    y, c = (clicked if regressor is LogisticRegression else reward), 1e10
    given = regressor(alpha=3.0).fit(features, y)
    larger = regressor(alpha=3.0 * c**2).fit(features * c, y)
    np.testing.assert_allclose(larger.coef_ * c, given.coef_, rtol=1e-8)
    assert larger.intercept_ == pytest.approx(given.intercept_, rel=1e-8)


@pytest.mark.parametrize("binary", [True, False], ids=["clicks", "ratings"])
def test_a_table_log_with_a_context_near_1e200_is_evaluated(tmp_path, binary):
    rng = np.random.default_rng(0)
    n = 200
    x, action = rng.standard_normal(n), rng.integers(0, 3, n)
    p = 1 / (1 + np.exp(-x * (action - 1)))
    reward = (rng.random(n) < p).astype(float) if binary else 1 + 4 * p + rng.standard_normal(n)
    other, estimates = rng.standard_normal(n), {}
    for scale in (1e100, 1e200):
        log = tmp_path / f"log{scale:g}.csv"
        pd.DataFrame({"action": action, "reward": reward, "pscore": np.full(n, 1 / 3), "context_0": x * scale,
                      "context_1": other}).to_csv(log, index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            assert cli(["ope", "evaluate", "--log", str(log), "--policy", POLICY, "--sims", "3", "--refits", "3",
                        "--bootstrap", "100", "--out", str(tmp_path / f"out{scale:g}")]) == 0
        estimates[scale] = pd.read_csv(tmp_path / f"out{scale:g}" / "estimates.csv").set_index("estimator")
    # both contexts are far above the penalty's reach: the same reward model, the same estimates
    for name in ("DM", "DR", "SNDR"):
        assert estimates[1e200].loc[name, "estimate"] == pytest.approx(estimates[1e100].loc[name, "estimate"],
                                                                       rel=1e-6)


# ------------------------------------------------- EpsilonGreedy's range
def test_epsilon_greedy_names_its_range_as_the_other_agents_do():
    with pytest.raises(ValueError) as refused_epsilon:
        EpsilonGreedy(epsilon=1.5)
    assert str(refused_epsilon.value) == "EpsilonGreedy.epsilon=1.5: must be in [0, 1]"
