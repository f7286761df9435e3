"""``recoworld ope``: the estimator study against the simulator's true values."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import ope
from recoworld.agents.off_policy import LoggedSlates
from recoworld.apps.cli import COMMANDS
from recoworld.apps.cli import main as cli_main
from recoworld.apps.ope import report
from recoworld.apps.ope.config import StudyConfig, make_policy
from recoworld.apps.ope.intervals import refit_interval
from recoworld.apps.ope.open_bandit import obd_rows
from recoworld.apps.ope.sessions import SessionStudy
from recoworld.apps.ope.study import Study, target_inputs
from recoworld.types import CANDIDATE_IDS

torch.set_num_threads(1)
SMALL = ["--log-sizes", "150", "--seeds", "2", "--n-items", "60", "--truth-users", "400", "--truth-draws", "1",
         "--bootstrap", "39", "--targets", "greedy", "--logging", "epsilon_soft", "softmax", "--refits", "3",
         "--learned", "--no-sessions"]
SESSIONS = ["--session-log-sizes", "40", "--session-seeds", "2", "--session-truth-users", "300", "--session-refits", "2",
            "--horizon", "3", "--session-logging", "epsilon_soft"]


def test_ope_writes_the_table_csv_markdown_and_plots(tmp_path, capsys):
    assert "ope" in COMMANDS
    assert cli_main(["ope", "--out", str(tmp_path), *SMALL]) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["logging", "target", "n", "estimator", "truth", "truth_se", "bias", "rmse",
                                     "coverage", "ci_width", "defined", "runs"]
    assert not (tmp_path / "sessions_summary.csv").exists() and not (tmp_path / "learning.csv").exists()
    assert len(summary) == 2 * 8 and set(summary["runs"]) == {2}
    assert summary["truth_se"].gt(0).all()
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2 * 2 * 8 and (runs["lower"] <= runs["upper"]).all()
    for name in ("summary.md", "truths.csv", "rmse.png", "coverage.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| epsilon_soft | greedy | 150 | IPS |" in (tmp_path / "summary.md").read_text()
    assert "## Sessions" not in (tmp_path / "summary.md").read_text()
    assert "Estimator study" in capsys.readouterr().out


def test_truth_of_a_greedy_target_is_the_exact_expected_clicks_of_its_slates():
    study = Study(StudyConfig(n_items=60, truth_users=300))
    target = make_policy("greedy", study.config, "target")
    value, error = study.true_value(target)
    env = study.env(300)
    obs, _ = env.reset(seed=10**9)
    slates = np.take_along_axis(obs[CANDIDATE_IDS], target.act(obs), 1)
    per_user = env.expected_clicks(slates).astype(np.float64)
    assert value == pytest.approx(per_user.mean(), rel=1e-6)
    assert error == pytest.approx(per_user.std(ddof=1) / np.sqrt(300), rel=1e-6)


def test_on_its_own_log_every_importance_weight_is_one_and_cascade_dr_is_exact_where_the_model_is():
    config = StudyConfig(n_items=60, truth_users=300)
    study = Study(config)
    policy = make_policy("softmax", config, "logging")
    data = LoggedSlates.from_log(study.log(policy, 200, seed=0))
    feedback = ope.SlateFeedback(data.reward, pscore=data.propensity, pscore_item_position=data.position_propensity,
                                 pscore_cascade=data.cascade_propensity)
    model = np.full((200, config.num_candidates, config.slate_size), 0.1)
    inputs = target_inputs(policy, data.observation(study.catalog), data.action, model)
    logged_mean = data.reward.sum(1).mean()
    for estimator in (ope.SlateIPS(), ope.SlateIndependentIPS(), ope.SlateRewardInteractionIPS(),
                      ope.SelfNormalizedSlateIPS(), ope.SlateCascadeDR()):
        assert estimator.estimate_policy_value(feedback, **inputs) == pytest.approx(logged_mean)
    assert ope.SlateDM().estimate_policy_value(feedback, **inputs) == pytest.approx(0.1 * config.slate_size)


def test_obd_flag_adds_the_open_bandit_section(tmp_path, monkeypatch):
    calls = []

    def obd_study(cache_dir=None, n_mc=10_000, seed=0):
        calls.append((cache_dir, n_mc, seed))
        return {"rows": [{"estimator": "IPS", "estimate": 0.0051, "on_policy": 0.0050}]}

    monkeypatch.setitem(sys.modules, "recoworld.data.obd", types.SimpleNamespace(obd_study=obd_study))
    assert cli_main(["ope", "--out", str(tmp_path), *SMALL, "--estimators", "IPS", "--no-plots",
                     "--obd", "--obd-mc", "77", "--obd-cache-dir", str(tmp_path / "cache")]) == 0
    assert calls == [(tmp_path / "cache", 77, 0)]
    assert pd.read_csv(tmp_path / "obd.csv").to_dict("records") == [
        {"estimator": "IPS", "estimate": 0.0051, "on_policy": 0.0050}]
    assert "## Open Bandit Dataset" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "rmse.png").exists()


def test_obd_rows_reads_a_flat_result_and_refuses_other_types():
    assert obd_rows({"ts_estimate": 0.005, "ts_on_policy": 0.0049, "n_rounds": 10}).to_dict("records") == [
        {"ts_estimate": 0.005, "ts_on_policy": 0.0049, "n_rounds": 10}]
    with pytest.raises(TypeError, match=r"^obd_study returned list; expected a dict$"):
        obd_rows([1, 2])


def test_bad_settings_are_refused_with_the_fix(capsys):
    for settings, message in (
            ({"seeds": 1}, "StudyConfig.seeds=1; bias and RMSE need at least 2 logs per cell, e.g. "
                           "StudyConfig.seeds=10"),
            ({"log_sizes": (3,)}, "StudyConfig.log_sizes=[3]; each log needs at least as many rounds as "
                                  "StudyConfig.n_folds=5, one per fold of the click model: give sizes of 5 or more, or "
                                  "a smaller StudyConfig.n_folds"),
            ({"slate_size": 4, "num_candidates": 3}, "StudyConfig.slate_size=4 > StudyConfig.num_candidates=3; a slate "
                                                     "shows distinct candidates: give StudyConfig.slate_size <= 3 or a "
                                                     "larger StudyConfig.num_candidates"),
            ({"session_seeds": 1}, "StudyConfig.session_seeds=1; bias and RMSE need at least 2 logs per cell, e.g. "
                                   "StudyConfig.session_seeds=5"),
            ({"session_refits": 1}, "StudyConfig.session_refits=1; a standard error needs at least 2 refits, e.g. "
                                    "StudyConfig.session_refits=6"),
            ({"learned": ("snips",)}, "StudyConfig.learned=['snips']; choose none or more of ['ips', 'dr']"),
            ({"horizon": 0}, "StudyConfig.horizon=0: must be an integer >= 1"),
            ({"session_log_sizes": (1,)}, "StudyConfig.session_log_sizes=[1]; each session log needs at least 2 "
                                          "trajectories (2 folds of the Q-function), e.g. "
                                          "StudyConfig.session_log_sizes=[500]")):
        with pytest.raises(ValueError) as refused:
            StudyConfig(**settings)
        assert str(refused.value) == message
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["ope", "--seeds", "1"])
    assert exit_info.value.code == 2
    assert "--seeds 1; bias and RMSE need at least 2 logs per cell, e.g. --seeds 10" in capsys.readouterr().err


def test_session_section_and_learned_policies_write_their_tables(tmp_path, capsys):
    argv = [arg for arg in SMALL if arg not in ("--learned", "--no-sessions")]
    assert cli_main(["ope", "--out", str(tmp_path), *argv, "--learned", "dr", "--no-plots", *SESSIONS]) == 0
    sessions = pd.read_csv(tmp_path / "sessions_summary.csv")
    assert list(sessions.columns) == list(pd.read_csv(tmp_path / "summary.csv").columns)
    assert list(sessions["estimator"]) == ["IS", "PDIS", "WPDIS", "DR", "WDR", "FQE"]
    assert set(sessions["runs"]) == {2} and sessions["truth_se"].gt(0).all()
    truths = pd.read_csv(tmp_path / "sessions_truths.csv")
    assert truths[["logging", "target"]].to_dict("records") == [{"logging": "epsilon_soft", "target": "greedy"}]
    learning = pd.read_csv(tmp_path / "learning.csv")
    assert learning[["logging", "policy"]].to_dict("records") == [
        {"logging": "epsilon_soft", "policy": "learned_dr"}, {"logging": "softmax", "policy": "learned_dr"}]
    np.testing.assert_allclose(learning["gain"], learning["truth"] - learning["logging_truth"])
    assert {"IPS", "DM", "CascadeDR"} <= set(learning.columns)
    text = (tmp_path / "summary.md").read_text()
    assert "## Sessions" in text and "## Off-policy learning" in text
    se = truths["truth_se"].iloc[0]
    assert f"greedy V = {truths['truth'].iloc[0]:.4f} (s.e. {se:.4f})" in text
    out = capsys.readouterr().out
    assert "session truth (H = 3): greedy V =" in out and "Off-policy learning" in out


def test_on_its_own_session_log_per_decision_is_is_the_on_policy_mean():
    config = StudyConfig(n_items=60, horizon=4)
    study = SessionStudy(config, Study(config).catalog)
    policy = make_policy("softmax", config, "logging")
    data = study.trajectories(study.log(policy, 60, seed=0))
    assert data.mask.sum(1).max() == 4 and data.reward.sum() > 0
    dist = data.action_distribution(policy)
    np.testing.assert_allclose(dist.sum(-1), 1.0, atol=1e-12)
    own = np.take_along_axis(dist, data.action[:, :, None], 2)[:, :, 0]
    np.testing.assert_allclose(own[data.mask], data.pscore[data.mask], rtol=1e-12)
    on_policy = data.reward.sum(1).mean()
    assert ope.PerDecisionIS().estimate_policy_value(data.feedback(), own) == pytest.approx(on_policy, rel=1e-12)
    assert ope.WeightedPerDecisionIS().estimate_policy_value(data.feedback(), own) == pytest.approx(on_policy)


def test_session_truth_is_the_mean_expected_return_with_its_standard_error():
    config = StudyConfig(n_items=60, horizon=3, session_truth_users=200)
    study = SessionStudy(config, Study(config).catalog)
    value, error = study.true_value(make_policy("greedy", config, "target"))
    assert 0 < error < value
    realised, _ = study.true_value(make_policy("greedy", config, "target"))
    assert realised == value  # seeded: the same held-out users each time


def test_refit_interval_is_the_normal_interval_of_the_refitted_estimates():
    values = np.arange(10.0)
    estimate, lower, upper = refit_interval(lambda rows: values[rows].mean(), 10, n_refits=400, alpha=0.05, seed=0)
    assert estimate == pytest.approx(4.5)
    assert upper - estimate == pytest.approx(estimate - lower)
    # the bootstrap standard error of a mean is close to sd / sqrt(n)
    assert (upper - lower) / (2 * 1.96) == pytest.approx(values.std() / np.sqrt(10), rel=0.15)


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "1.5"], "--alpha 1.5: must be in (0, 1)"),
    (["--epsilon", "2"], "--epsilon 2.0: must be in [0, 1]"),
    (["--truth-users", "1"], "--truth-users 1: must be an integer >= 2"),
    (["--bootstrap", "0"], "--bootstrap 0 resamples cannot give a 95% interval: without a resample there is no "
                           "replicate to take an interval from; use --bootstrap >= 39, and 1000 or more for stable "
                           "ends"),
    (["--folds", "1"], "--folds 1: must be an integer >= 2"),
    (["--logging-temperature", "0"], "--logging-temperature 0.0: must be > 0"),
    (["--log-sizes", "150", "150"], "--log-sizes 150 150 names 150 more than once; give each once"),
    (["--logging", "softmax", "softmax"], "--logging softmax softmax names softmax more than once; give each once"),
    (["--threads", "0"], "--threads 0; give 1 or more"),
])
def test_bad_flags_are_refused_before_the_study_runs(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        cli_main(["ope", "--out", str(tmp_path / "out"), *SMALL, *argv])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"recoworld ope: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_out_must_be_new_or_empty_and_the_report_is_whole(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "summary.md").write_text("my last study")
    for out, message in (("file", "is a file; give a folder for the report"),
                         ("old", "already holds files (summary.md); choose another --out or remove it")):
        with pytest.raises(SystemExit):
            cli_main(["ope", "--out", str(tmp_path / out), *SMALL])
        assert capsys.readouterr().err.splitlines()[-1] == f"recoworld ope: error: --out {tmp_path / out} {message}"
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "old" / "summary.md").read_text() == \
        "my last study"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Interrupted while writing (after the runs were written): no folder, no temporary left.
    monkeypatch.setattr(report, "coverage_plot", interrupted)
    assert cli_main(["ope", "--out", str(tmp_path / "new"), *SMALL]) == 130
    assert "recoworld ope: stopped before the report was complete; nothing was written to" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "old"]


def test_same_seeds_same_study(tmp_path, capsys):
    for name in ("a", "b"):
        assert cli_main(["ope", "--out", str(tmp_path / name), *SMALL, "--no-plots"]) == 0
    for name in ("runs.csv", "truths.csv", "summary.csv", "summary.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_an_out_folder_with_brackets_is_printed_as_it_is(tmp_path, capsys):
    out = tmp_path / "[/exp]"  # read as rich markup, a closing tag without its opening one
    assert cli_main(["ope", "--out", str(out), *SMALL, "--no-plots"]) == 0
    assert f"Written to {out} in " in " ".join(capsys.readouterr().out.split())
