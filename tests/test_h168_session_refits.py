"""The session study's refits: an undefined WDR is a NaN row, not a crash, and copies of a
trajectory share a cross-fitting fold of the Q-function."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.cli import main as cli_main
from recoworld.apps.ope.config import StudyConfig, make_policy
from recoworld.apps.ope.sessions import SESSION_ESTIMATORS, SessionStudy, q_function_estimates
from recoworld.catalog import Catalog
from recoworld.ope import FittedQEvaluation
from recoworld.ope.reward_model import cross_fitting_folds

torch.set_num_threads(1)
# a one-step section as small as the study allows: the sessions are what is tested
ONE_STEP = ["--logging", "uniform", "--targets", "greedy", "--log-sizes", "50", "--seeds", "2", "--n-items", "60",
            "--truth-users", "100", "--truth-draws", "1", "--bootstrap", "39", "--refits", "2", "--estimators", "IPS",
            "--no-plots", "--learned"]


def test_wdr_undefined_on_a_uniform_session_log_is_a_nan_row_and_the_study_finishes(tmp_path):
    # uniform logging over 20 slates for 3 steps: no logged trajectory follows the greedy target
    # to the last step, so WDR's weights at that step sum to 0 on the log and on every resample
    sessions = ["--session-logging", "uniform", "--session-log-sizes", "40", "--session-seeds", "2",
                "--session-refits", "2", "--session-truth-users", "100", "--horizon", "3",
                "--session-estimators", "WPDIS", "WDR", "DR"]
    assert cli_main(["ope", "--out", str(tmp_path), *ONE_STEP, *sessions]) == 0
    runs = pd.read_csv(tmp_path / "sessions_runs.csv").set_index(["seed", "estimator"])
    assert runs.loc[(slice(None), "WDR"), ["estimate", "lower", "upper"]].isna().all(axis=None)
    assert np.isfinite(runs.loc[(slice(None), "DR"), ["estimate", "lower", "upper"]]).all(axis=None)
    summary = pd.read_csv(tmp_path / "sessions_summary.csv").set_index("estimator")
    assert summary.loc["WDR", "defined"] == 0 and summary.loc["DR", "defined"] == 2


@pytest.fixture(scope="module")
def session_log():
    config = StudyConfig(n_items=60, horizon=3, session_truth_users=50)
    study = SessionStudy(config, Catalog.synthetic(config.n_items, seed=0))
    target = make_policy("greedy", config, "target")
    target.setup(study.env(1), seed=0)
    data = study.trajectories(study.log(make_policy("epsilon_soft", config, "logging"), 30, 0))
    return data, data.action_distribution(target)


@pytest.fixture
def fitted_on(monkeypatch):
    """The trajectories (row indices) each Q-function of FittedQEvaluation was fitted on."""
    fitted, fit = [], FittedQEvaluation._fit

    def recording(self, steps, trajectories):
        fitted.append(np.array(trajectories))
        return fit(self, steps, trajectories)

    monkeypatch.setattr(FittedQEvaluation, "_fit", recording)
    return fitted


def test_no_copy_of_a_trajectory_is_scored_by_a_q_function_fitted_on_another_copy(session_log, fitted_on):
    data, dist = session_log
    resample = np.random.default_rng(3).integers(0, data.n, data.n)
    assert len(np.unique(resample)) < data.n      # copies to keep together
    q_function_estimates(data, dist, ["DR"], resample)
    assert len(fitted_on) == 2
    for train in fitted_on:
        scored = np.setdiff1d(np.arange(data.n), train)
        assert not set(resample[train]) & set(resample[scored])


def test_ungrouped_folds_are_as_before_and_one_group_per_row_changes_nothing(session_log, fitted_on):
    data, dist = session_log
    fqe = SESSION_ESTIMATORS["FQE"]
    for seed in range(4):
        before = np.array_split(np.random.default_rng(seed).permutation(data.n), 2)
        assert all(np.array_equal(a, b) for a, b in zip(cross_fitting_folds(data.n, 2, seed), before))
    ungrouped = fqe.estimate_q(data.feedback(), dist, n_folds=2)
    before = np.array_split(np.random.default_rng(fqe.seed).permutation(data.n), 2)
    assert [list(train) for train in fitted_on] == [list(np.setdiff1d(np.arange(data.n), fold)) for fold in before]
    # the refits' whole-log estimate, each trajectory its own group, is the ungrouped one to the bit
    grouped = fqe.estimate_q(data.feedback(), dist, n_folds=2, groups=np.arange(data.n))
    for a, b in zip(ungrouped, grouped):
        np.testing.assert_array_equal(a, b)


def test_a_resample_of_one_trajectorys_copies_leaves_the_doubly_robust_estimates_undefined(session_log):
    data, dist = session_log
    values = q_function_estimates(data, dist, ["DR", "WDR", "FQE"], np.full(data.n, 4))
    assert np.isnan(values[:2]).all() and np.isfinite(values[2])


def test_too_few_groups_for_the_folds_is_refused_naming_both():
    with pytest.raises(ValueError, match=re.escape(
            "groups holds 1 distinct group, but cross-fitting (n_folds = 2) keeps a group in one fold and needs one "
            "per fold; give at least 2 distinct groups, or fewer folds")):
        cross_fitting_folds(4, 2, 0, groups=[7, 7, 7, 7])
