"""``recoworld ope evaluate`` and ``recoworld.ope`` used carelessly: a team's own log and policy,
with the mistakes a first try makes, each refused naming the value and the fix, and every
printed estimate a number or a reason."""

import json
import math
import re
import sys

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.cli import main as cli
from recoworld.ope import BanditFeedback, IPS, fit_reward_model, fit_slate_reward_model, per_action_features
from recoworld.ope.evaluation import BanditProblem, evaluate_bandit
from recoworld.ope.selection import simulate_then_select

POLICY = """
import numpy as np

class Uniform:
    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_actions, n_positions), 1.0 / n_actions)
"""
FAST = ["--sims", "2", "--refits", "2", "--bootstrap", "39"]


class Uniform:
    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_actions, n_positions), 1.0 / n_actions)


class FirstAction:
    def action_dist(self, rows, n_actions, n_positions):
        dist = np.zeros((len(rows), n_actions, n_positions))
        dist[:, 0] = 1.0
        return dist


def table(n=200, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"action": rng.integers(0, 4, n), "reward": rng.integers(0, 2, n).astype(float),
                         "pscore": 0.25, "context_0": rng.standard_normal(n)})


def evaluate(tmp_path, frame_or_path, *flags, policy="tests.test_h142_ope_careless:Uniform", capsys=None):
    """Run the command on a table; the usage error's last line when it refuses, else the report."""
    log = frame_or_path
    if isinstance(frame_or_path, pd.DataFrame):
        log = tmp_path / "log.csv"
        frame_or_path.to_csv(log, index=False)
    out = tmp_path / "out"
    try:
        cli(["ope", "evaluate", "--log", str(log), "--policy", policy, "--out", str(out), *FAST, *flags])
    except SystemExit:
        return capsys.readouterr().err.strip().splitlines()[-1]
    return json.loads((out / "report.json").read_text())


def test_simulated_worlds_keep_rewards_in_the_logged_range():
    # ratings 1..5: clipped to [0, 1], every simulated action was worth 1 and the truth 1
    rng = np.random.default_rng(0)
    n, x = 400, rng.standard_normal(400)
    action = rng.integers(0, 4, n)
    reward = np.clip(np.round(3 + x * (action - 1.5) * 0.5 + rng.normal(0, 1, n)), 1, 5)
    dist = np.full((n, 4, 1), 0.25)
    problem = BanditProblem(BanditFeedback(action, reward, np.full(n, 0.25)), dist,
                            lambda rows: per_action_features(x[rows, None], 4, 1))
    selection = simulate_then_select(problem, n_sims=3)
    assert abs(selection.value - reward.mean()) < 0.3          # the uniform target's value: the mean rating
    assert max(selection.rmse.values()) < 0.5


def rare_log(n=100) -> pd.DataFrame:
    """The target's action logged twice with probability 0.02: SNDR is undefined on refits that miss both."""
    frame = table(n)
    frame["action"] = np.where(np.isin(np.arange(n), [7, 50]), 0, 1 + np.arange(n) % 3)
    frame["pscore"] = np.where(frame["action"] == 0, 0.02, 0.98 / 3)
    return frame


def test_a_refitted_interval_left_undefined_says_why(tmp_path, capsys):
    frame = rare_log()
    rows = {r["estimator"]: r for r in evaluate_bandit(
        BanditProblem(BanditFeedback(frame["action"], frame["reward"], frame["pscore"]),
                      FirstAction().action_dist(frame, 4, 1), lambda r: per_action_features(
                          frame["context_0"].to_numpy()[r, None], 4, 1)), n_bootstrap=39, n_refits=20)}
    sndr = rows["SNDR"]
    assert math.isfinite(sndr["estimate"]) and math.isnan(sndr["lower"]) and 0 < sndr["n_replicates"] < 20
    assert rows["DR"]["n_replicates"] is None                    # defined on every refit: nothing to count
    report = evaluate(tmp_path, frame, "--refits", "20", "--min-ess", "0", "--n-actions", "4",
                      policy="tests.test_h142_ope_careless:FirstAction", capsys=capsys)
    sndr = next(r for r in report["estimates"] if r["estimator"] == "SNDR")
    assert sndr["lower"] is None
    assert sndr["note"] == f"interval undefined: defined on {sndr['n_replicates']} of 20 resamples"


def test_a_policy_module_of_the_current_folder_or_a_py_file_loads(tmp_path, monkeypatch, capsys):
    # the recoworld script puts its own folder first on sys.path, not the current one
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h142_here.py").write_text(POLICY)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "h142_file.py").write_text(POLICY)
    table().to_csv(tmp_path / "log.csv", index=False)
    for n, policy in enumerate(("h142_here:Uniform", "team/h142_file.py:Uniform")):
        assert cli(["ope", "evaluate", "--log", "log.csv", "--policy", policy, "--out", f"out{n}", *FAST]) == 0
        assert json.loads((tmp_path / f"out{n}" / "report.json").read_text())["n"] == 200
    monkeypatch.delitem(sys.modules, "h142_here")
    monkeypatch.delitem(sys.modules, "h142_file")
    assert evaluate(tmp_path, tmp_path / "log.csv", policy="team/nope.py:Uniform", capsys=capsys) == (
        "recoworld ope evaluate: error: --policy 'team/nope.py:Uniform': no such file team/nope.py; give the path of "
        "the policy's .py file, or module:Attribute of an importable module")


def test_out_below_a_file_is_refused_before_any_work(tmp_path, capsys):
    # it failed with FileExistsError when the report was written, after all the work
    (tmp_path / "notes.txt").write_text("x")
    table().to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(SystemExit):
        cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.test_h142_ope_careless:Uniform",
             "--out", str(tmp_path / "notes.txt" / "report"), *FAST])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"recoworld ope evaluate: error: --out {tmp_path / 'notes.txt' / 'report'}: {tmp_path / 'notes.txt'} is a "
        "file, not a folder; give a folder for the report")


@pytest.mark.parametrize("flags, message", [
    (["--min-ess", "nan"], "--min-ess nan; give 0 or more (0: no threshold)"),
    (["--n-actions", "2"], "--n-actions 2, but the log's actions reach 3; give --n-actions 4 or more (the actions "
                           "the policy chooses among), or leave it out"),
])
def test_flags_out_of_range_are_refused(tmp_path, capsys, flags, message):
    assert evaluate(tmp_path, table(), *flags, capsys=capsys) == f"recoworld ope evaluate: error: {message}"


def test_table_columns_misnamed_or_misseparated_are_named(tmp_path, capsys):
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("action, reward, pscore\n" + "0, 1, 0.5\n" * 30)
    assert evaluate(tmp_path, spaced, capsys=capsys).endswith(
        "its columns are ['action', ' reward', ' pscore']; rename ' reward' to 'reward', ' pscore' to 'pscore'")
    semicolons = tmp_path / "semicolons.csv"
    table().to_csv(semicolons, sep=";", index=False)
    assert evaluate(tmp_path, semicolons, capsys=capsys).endswith(
        "the fields look semicolon-separated, and a CSV's are comma-separated: save it with commas")


def test_unreadable_tables_are_refused_naming_the_file(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert evaluate(tmp_path, empty, capsys=capsys) == (
        f"recoworld ope evaluate: error: {empty} is empty; a table log needs a header row with the columns "
        "['action', 'reward', 'pscore'] and a row per logged round")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    assert evaluate(tmp_path, broken, capsys=capsys).startswith(
        f"recoworld ope evaluate: error: --log {broken} cannot be read as Parquet (")


def test_a_missing_position_is_said_missing(tmp_path, capsys):
    frame = table()
    frame["position"] = 0.0
    frame.loc[5, "position"] = np.nan
    assert evaluate(tmp_path, frame, capsys=capsys) == (
        f"recoworld ope evaluate: error: {tmp_path / 'log.csv'}: position is missing at row 6 (1 of 200 rounds); "
        "drop the rounds without a logged position")


def test_undefined_simulated_errors_print_a_dash(capsys):
    from recoworld.apps.ope.evaluate import show

    row = {"estimate": 0.5, "lower": 0.4, "upper": 0.6, "interval": "rows", "note": ""}
    report = {"policy": "p", "log": "l", "n": 10, "alpha": 0.05, "warnings": [],
              "estimates": [{**row, "estimator": "IPS"}, {**row, "estimator": "SNIPS"}],
              "selection": {"recommended": "IPS", "protocol": "x", "bias": {"IPS": 0.0, "SNIPS": float("nan")},
                            "rmse": {"IPS": 0.1, "SNIPS": float("nan")}},
              "diagnostics": {"action": {"n": 10, "ess": 0.0, "ess_share": 0.0, "mean_weight": 0.0, "max_weight": 0.0,
                                         "top1_share": float("nan"), "zero_share": 1.0}},
              "verdict": {"sentence": "s"}}
    show(report)
    assert "nan" not in capsys.readouterr().out


@pytest.mark.parametrize("n_bootstrap", [39.5, math.inf])
def test_a_fractional_or_infinite_resample_count_is_refused(n_bootstrap):
    feedback = BanditFeedback([0, 1] * 10, [1.0, 0.0] * 10, [0.5] * 20)
    with pytest.raises(ValueError, match=re.escape(f"n_bootstrap={n_bootstrap} is not a whole number of resamples; "
                                                   "give an integer, e.g. 1000")):
        IPS().estimate_interval(feedback, np.full((20, 2), 0.5), n_bootstrap=n_bootstrap)


def test_a_fractional_seed_is_refused():
    feedback = BanditFeedback([0, 1] * 10, [1.0, 0.0] * 10, [0.5] * 20)
    with pytest.raises(ValueError, match=re.escape("seed = 0.5, but it must be a whole number")):
        IPS().estimate_interval(feedback, np.full((20, 2), 0.5), seed=0.5)


class ShortRegressor:
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(3)


def test_reward_models_refuse_what_they_cannot_fit():
    feedback = BanditFeedback([0, 1] * 10, [1.0, 0.0] * 10, [0.5] * 20)
    with pytest.raises(ValueError, match=re.escape("ShortRegressor.predict gave shape (3,) for 8 rows, but one "
                                                   "prediction per row, shape (8,), was expected")):
        fit_reward_model(feedback, np.zeros((20, 2, 1)), ShortRegressor())
    with pytest.raises(ValueError, match=re.escape("the log has 1 round, but cross-fitting over n_folds = 5 folds "
                                                   "needs one round per fold: log at least 5 rounds, or at least 2 "
                                                   "with n_folds = 2")):
        fit_reward_model(BanditFeedback([0], [1.0], [0.5]), np.zeros((1, 2, 1)))


def test_a_slate_that_repeats_a_candidate_is_refused():
    features, reward = np.zeros((30, 4, 2)), np.zeros((30, 3))
    action = np.tile([0, 1, 2], (30, 1))
    action[5] = [3, 1, 3]
    with pytest.raises(ValueError, match=re.escape("action[5] shows candidate 3 at positions [0, 2] (1 of 30 slates "
                                                   "repeat a candidate); a slate shows each candidate once")):
        fit_slate_reward_model(features, action, reward)
    with pytest.raises(ValueError, match=re.escape("action has 3 positions per slate, but features has only 2 "
                                                   "candidates")):
        fit_slate_reward_model(features[:, :2], np.tile([0, 1, 0], (30, 1)), reward)


def recoworld_log(path, n_users: int):
    """A RecoWorld log of ``n_users`` first steps, slates of 2 from 5 candidates, with propensities."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import SoftmaxPolicy
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog

    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=n_users, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    with EpisodeLog(path) as log:
        rollout(env, SoftmaxPolicy(base=MostPopularAgent(), temperature=1.0), n_steps=1, seed=0, logger=log,
                log_candidates=True)
    return path


def test_a_bandit_policy_on_a_recoworld_log_is_refused_by_name(tmp_path, capsys):
    # it failed with AttributeError: 'Uniform' object has no attribute 'setup', and a traceback
    log = recoworld_log(tmp_path / "episodes.parquet", 30)
    assert evaluate(tmp_path, log, "--world", "synthetic", capsys=capsys) == (
        "recoworld ope evaluate: error: --policy 'tests.test_h142_ope_careless:Uniform' is Uniform, which has no setup "
        "nor act: a RecoWorld log is evaluated with a Recommender (its action_dist(rows, n_actions, n_positions) is "
        "what a table or Open Bandit log asks of a policy); subclass recoworld.agents.base.Recommender, or give an "
        "agent config name or an SB3 .zip")


def test_a_recoworld_log_of_too_few_slates_is_refused_in_its_terms(tmp_path, capsys):
    # it was refused as "log_sizes=[3]; each log needs at least n_folds=5 rounds", the study's settings
    log = recoworld_log(tmp_path / "episodes.parquet", 3)
    assert evaluate(tmp_path, log, "--world", "synthetic", policy="most_popular", capsys=capsys) == (
        f"recoworld ope evaluate: error: {log} holds 3 logged slates, but an evaluation needs at least 5 (the click "
        "model behind DM and cascade DR is cross-fitted over 5 folds of the slates); log more rounds")


def test_a_parquet_indexed_by_a_column_reads_it_as_a_column(tmp_path):
    # it was refused as lacking the column: pandas keeps a set_index column as the Parquet's index
    frame = table()
    frame.set_index("action").to_parquet(tmp_path / "log.parquet")
    frame.to_csv(tmp_path / "log.csv", index=False)
    reports = []
    for n, log in enumerate(("log.parquet", "log.csv")):
        assert cli(["ope", "evaluate", "--log", str(tmp_path / log), "--policy", "tests.test_h142_ope_careless:Uniform",
                    "--out", str(tmp_path / f"out{n}"), *FAST]) == 0
        reports.append(json.loads((tmp_path / f"out{n}" / "report.json").read_text())["estimates"])
    assert reports[0] == reports[1]

