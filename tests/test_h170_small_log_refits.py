"""A small log's refits: a bootstrap resample with fewer distinct rounds than the reward
model's cross-fitting folds is an undefined refit (NaN), counted by the interval's
defined-refits rule, never an error that ends the run (``recoworld ope``, ``recoworld ope
evaluate``, :func:`~recoworld.ope.evaluation.evaluate_bandit`)."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.cli import main as cli
from recoworld.apps.ope import study
from recoworld.apps.ope.judgement import judge
from recoworld.calibration.bootstrap import least_defined
from recoworld.ope import BanditFeedback, per_action_features
from recoworld.ope.diagnostics import weight_diagnostics
from recoworld.ope.evaluation import BanditProblem, evaluate_bandit
from recoworld.ope.refit import refit_interval
from recoworld.ope.reward_model import cross_fitting_folds
from recoworld.ope.selection import Selection
from tests.test_ope_evaluate import softmax_log

torch.set_num_threads(1)
TINY = ["--logging", "epsilon_soft", "--targets", "greedy", "--seeds", "2", "--refits", "3", "--no-sessions",
        "--learned", "--n-items", "60", "--truth-users", "200", "--truth-draws", "1", "--bootstrap", "39",
        "--no-plots", "--threads", "1"]


def refits_defined(n_rows: int, n_refits: int, seed: int, n_folds: int) -> int:
    """The refits of :func:`refit_interval` (resamples drawn from ``default_rng(seed)``) whose
    resample holds at least ``n_folds`` distinct rows."""
    rng = np.random.default_rng(seed)
    return sum(len(np.unique(rng.integers(0, n_rows, n_rows))) >= n_folds for _ in range(n_refits))


def test_a_study_of_logs_smaller_than_a_resample_needs_finishes_and_its_refit_bounds_follow_the_rule(tmp_path):
    # 5 slates and 5 folds: a resample holds 5 distinct slates only if it is a permutation
    assert cli(["ope", "--log-sizes", "5", "30", *TINY, "--out", str(tmp_path / "out")]) == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    refitted = runs[runs["estimator"].isin(["DM", "CascadeDR"])]
    assert len(refitted) == 2 * 2 * 2 and refitted["estimate"].notna().all()  # the estimates stand
    for row in refitted.itertuples():
        defined = refits_defined(row.n, 3, row.seed, 5)
        bounded = defined >= least_defined(3)
        assert np.isfinite([row.lower, row.upper]).tolist() == [bounded, bounded], row
        # the refits behind the bounds, counted where some are undefined (empty where all are defined)
        assert (row.n_replicates == defined) if defined < 3 else np.isnan(row.n_replicates), row
    assert set(refitted.loc[refitted["n"] == 5, "n_replicates"]) <= {0, 1, 2}
    assert refitted.loc[refitted["n"] == 30, ["lower", "upper"]].notna().all().all()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    small = summary[(summary["n"] == 5) & summary["estimator"].isin(["DM", "CascadeDR"])]
    assert small["coverage"].isna().all() and (small["defined"] == 2).all()  # no interval, not one that missed


def test_a_refit_of_too_few_distinct_rows_is_undefined_not_an_error():
    def cross_fitted_mean(rows):
        # a model cross-fitted over 5 folds, copies of a row in one fold, as the reward models are
        folds = cross_fitting_folds(len(rows), 5, 0, groups=rows)
        return np.array([np.mean([rows[fold].mean() for fold in folds]), 1.0])

    with pytest.raises(ValueError, match="groups holds 4 distinct groups, but cross-fitting"):
        refit_interval(cross_fitted_mean, 5, 4, 0.05, seed=0)
    estimate, lower, upper = refit_interval(cross_fitted_mean, 5, 4, 0.05, seed=0, n_folds=5)
    assert estimate.tolist() == [2.0, 1.0] and np.isnan([lower, upper]).all()


def test_a_small_bandit_log_gives_nan_refits_counted_in_its_rows():
    rng = np.random.default_rng(1)
    n = 7
    action, reward = rng.integers(0, 2, n), rng.integers(0, 2, n).astype(float)
    problem = BanditProblem(BanditFeedback(action, reward, np.full(n, 0.5)), np.full((n, 2, 1), 0.5),
                            lambda rows: per_action_features(np.ones((len(rows), 1)), 2, 1))
    rows = {row["estimator"]: row for row in evaluate_bandit(problem, n_bootstrap=50, n_refits=20, seed=2)}
    defined = refits_defined(n, 20, 2, problem.n_folds)
    assert 0 < defined < least_defined(20)
    for name in ("DM", "DR", "SNDR"):
        assert np.isfinite(rows[name]["estimate"]) and rows[name]["n_replicates"] == defined
        assert np.isnan([rows[name]["lower"], rows[name]["upper"]]).all()


def test_evaluate_on_a_tiny_recoworld_log_finishes_with_its_refits_counted(tmp_path):
    softmax_log(tmp_path / "episodes.parquet", users=6)
    assert cli(["ope", "evaluate", "--log", str(tmp_path / "episodes.parquet"), "--policy", "most_popular",
                "--world", "synthetic", "--sims", "2", "--refits", "20", "--bootstrap", "39", "--truth-users", "200",
                "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    defined = refits_defined(6, 20, 0, 5)
    assert 0 < defined < least_defined(20)
    for row in report["estimates"]:
        if row["interval"] == "refit":
            assert row["estimate"] is not None and (row["lower"], row["upper"]) == (None, None)
            assert row["n_replicates"] == defined
            assert row["note"].startswith(f"interval undefined: defined on {defined} of 20 resamples")


def test_a_recommended_refit_without_an_interval_says_why_in_refits():
    rows = [{"estimator": "IPS", "estimate": 0.4, "lower": 0.3, "upper": 0.5, "interval": "rows", "n_replicates": 50},
            {"estimator": "DM", "estimate": 0.5, "lower": float("nan"), "upper": float("nan"), "interval": "refit",
             "n_replicates": 6}]
    selection = Selection({"IPS": 0.0, "DM": 0.0}, {"IPS": 0.02, "DM": 0.01}, "DM", 0.5, 3, "x")
    args = SimpleNamespace(min_ess=0, max_relative_rmse=0.25, bootstrap=50, refits=20, alpha=0.05)
    trusted, sentence, _ = judge(rows, {"action": weight_diagnostics(np.ones(400))},
                                 dict.fromkeys(("IPS", "DM"), "action"), ("IPS",), selection, args,
                                 {"action": "pscore"})
    assert rows[1]["note"] == "interval undefined: defined on 6 of 20 resamples"
    assert not trusted
    assert sentence == ("no estimate is trustworthy: DM, the least RMSE on simulated logs, has no interval on this "
                        "log: it is defined on only 6 of the 20 refits of its reward model (a resample of fewer "
                        "distinct rounds than the model's cross-fitting folds has no estimate, nor, for a "
                        "self-normalised estimator, one that draws no round with weight); log more rounds")


def test_a_normal_log_is_estimated_as_before_to_the_last_bit(tmp_path, monkeypatch):
    # the SMALL study of tests/test_ope_study.py, with and without the check of distinct slates
    small = ["--log-sizes", "150", "--seeds", "2", "--n-items", "60", "--truth-users", "400", "--truth-draws", "1",
             "--bootstrap", "39", "--targets", "greedy", "--logging", "epsilon_soft", "softmax", "--refits", "3",
             "--learned", "--no-sessions", "--no-plots"]
    assert cli(["ope", *small, "--out", str(tmp_path / "checked")]) == 0
    monkeypatch.setattr(study, "refit_interval", lambda *args, n_folds=None: refit_interval(*args))
    assert cli(["ope", *small, "--out", str(tmp_path / "unchecked")]) == 0
    checked, unchecked = (pd.read_csv(tmp_path / name / "runs.csv") for name in ("checked", "unchecked"))
    pd.testing.assert_frame_equal(checked, unchecked, check_exact=True)
    assert checked.loc[checked["estimator"].isin(["DM", "CascadeDR"]), "n_replicates"].isna().all()
