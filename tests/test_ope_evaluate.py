"""``recoworld ope evaluate``: estimates, diagnostics and a recommendation on a user's log;
the selection by simulation where the right answer is known."""

import json

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.cli import main as cli
from recoworld.ope import BanditFeedback, per_action_features
from recoworld.ope.diagnostics import weight_diagnostics
from recoworld.ope.evaluation import BanditProblem, evaluate_bandit
from recoworld.ope.selection import simulate_then_select, verdict


def xor_problem(n=1500, seed=0):
    """Uniform logging over 2 actions; the good action is the XOR of two binary features,
    which no per-action linear model of them can fit: IPS is unbiased, DM badly biased."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (n, 2)).astype(float)
    best = (x[:, 0] != x[:, 1]).astype(int)
    action = rng.integers(0, 2, n)
    reward = (rng.random(n) < np.where(action == best, 0.8, 0.2)).astype(float)
    dist = np.zeros((n, 2, 1))
    dist[np.arange(n), best, 0] = 1.0
    return BanditProblem(BanditFeedback(action, reward, np.full(n, 0.5)), dist,
                         lambda rows: per_action_features(x[rows], 2, 1)), x


def rare_action_problem(n=300, seed=0):
    """10 actions, the target's action logged with probability 0.02, rewards exactly
    logistic in the context: DM is right and the weights (up to 50) make IPS erratic."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    logging = np.full(10, 0.98 / 9)
    logging[0] = 0.02
    action = rng.choice(10, size=n, p=logging)
    q = 1 / (1 + np.exp(-(x[:, :1] * np.linspace(-1, 1, 10)[None] + 0.2)))
    reward = (rng.random(n) < q[np.arange(n), action]).astype(float)
    dist = np.zeros((n, 10, 1))
    dist[:, 0, 0] = 1.0
    return BanditProblem(BanditFeedback(action, reward, logging[action]), dist,
                         lambda rows: per_action_features(x[rows], 10, 1))


def test_selection_prefers_weighting_when_the_reward_model_is_misspecified():
    problem, _ = xor_problem()
    selection = simulate_then_select(problem, n_sims=8)
    assert selection.recommended in ("IPS", "SNIPS")
    assert abs(selection.bias["DM"]) > 5 * abs(selection.bias[selection.recommended])
    trusted, sentence = verdict(selection, weight_diagnostics(problem.weights())["ess"])
    assert trusted and sentence.startswith(f"{selection.recommended} is recommended")


def test_selection_prefers_the_direct_method_when_it_is_right_and_weights_are_wild():
    problem = rare_action_problem()
    selection = simulate_then_select(problem, n_sims=8)
    assert selection.recommended == "DM"
    assert selection.rmse["IPS"] > 2 * selection.rmse["DM"]


def test_verdict_refuses_a_weighting_estimate_with_a_tiny_effective_sample():
    problem, _ = xor_problem(n=200)
    selection = simulate_then_select(problem, n_sims=3)
    trusted, sentence = verdict(selection, ess=12.0)
    assert not trusted
    assert sentence.startswith("no estimate is trustworthy: the effective sample size is 12.0 (< 100)")


def test_weight_diagnostics_on_hand_made_weights():
    weights = np.r_[np.zeros(98), 1.0, 99.0]
    d = weight_diagnostics(weights)
    assert d["ess"] == pytest.approx(100**2 / (1 + 99**2))
    assert d["max_weight"] == 99.0 and d["mean_weight"] == 1.0
    assert d["top1_share"] == pytest.approx(0.99)            # top 1 % of 100 rounds is one round
    assert d["zero_share"] == 0.98
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        weight_diagnostics([1.0, -1.0])


def test_model_based_intervals_refit_and_cover_the_xor_truth_with_weighting():
    problem, _ = xor_problem()
    rows = {r["estimator"]: r for r in evaluate_bandit(problem, n_bootstrap=200, n_refits=5)}
    assert {name: r["interval"] for name, r in rows.items()} == {
        "IPS": "rows", "SNIPS": "rows", "DM": "refit", "DR": "refit", "SNDR": "refit"}
    for name in ("IPS", "DR"):
        assert rows[name]["lower"] <= 0.8 <= rows[name]["upper"]
    assert rows["DM"]["upper"] < 0.6                          # its bias: no interval repairs it


class UniformBandit:
    """A bandit policy for table logs: uniform over the actions at every position."""

    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_actions, n_positions), 1.0 / n_actions)


def test_command_on_a_table_writes_estimates_diagnostics_and_a_recommendation(tmp_path):
    problem, x = xor_problem(n=400)
    f = problem.feedback
    table = pd.DataFrame({"action": f.action, "reward": f.reward, "pscore": f.pscore,
                          "context_0": x[:, 0], "context_1": x[:, 1]})
    table.to_csv(tmp_path / "log.csv", index=False)
    status = cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy",
                  "tests.test_ope_evaluate:UniformBandit", "--sims", "3", "--refits", "3", "--bootstrap", "100",
                  "--out", str(tmp_path / "out")])
    assert status == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["format"] == "table" and report["n"] == 400
    assert [r["estimator"] for r in report["estimates"]] == ["IPS", "SNIPS", "DM", "DR", "SNDR"]
    # the target is the logging policy itself: every weight is 1, and IPS is the observed mean reward
    assert report["diagnostics"]["action"]["ess"] == pytest.approx(400)
    ips = report["estimates"][0]
    assert ips["estimate"] == pytest.approx(f.reward.mean()) and ips["lower"] < f.reward.mean() < ips["upper"]
    assert report["selection"]["recommended"] in report["selection"]["rmse"]
    assert isinstance(report["verdict"]["trustworthy"], bool)
    assert pd.read_csv(tmp_path / "out" / "estimates.csv").shape[0] == 5


def test_command_names_a_missing_table_column(tmp_path, capsys):
    pd.DataFrame({"action": [0], "reward": [1.0]}).to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(SystemExit):
        cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.test_ope_evaluate:UniformBandit"])
    assert "lacks the column(s) ['pscore']" in capsys.readouterr().err


def softmax_log(path, users: int):
    """``path``: a one-step RecoWorld log of ``users`` users of the synthetic world, served
    2 of 5 logged candidates by a softmax over MostPopular (its propensities logged)."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import SoftmaxPolicy
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog

    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=users, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    with EpisodeLog(path) as log:
        rollout(env, SoftmaxPolicy(base=MostPopularAgent(), temperature=1.0), n_steps=1, seed=0, logger=log,
                log_candidates=True)


def test_command_on_a_recoworld_log_with_an_agent_config(tmp_path):
    softmax_log(tmp_path / "episodes.parquet", users=150)
    status = cli(["ope", "evaluate", "--log", str(tmp_path / "episodes.parquet"), "--policy", "most_popular",
                  "--world", "synthetic", "--sims", "2", "--refits", "2", "--bootstrap", "50",
                  "--truth-users", "500", "--out", str(tmp_path / "out")])
    assert status == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["kind"] == "slate" and (report["slate_length"], report["candidates"]) == (2, 5)
    names = [r["estimator"] for r in report["estimates"]]
    assert names == ["IPS", "SNIPS", "IIPS", "SNIIPS", "RIPS", "SNRIPS", "DM", "CascadeDR"]
    assert set(report["diagnostics"]) == {"slate", "position", "cascade"}
    assert "RecoWorld users" in report["selection"]["protocol"]


class ShortBandit:
    """A bandit policy that forgets the last action."""

    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_actions - 1), 1.0 / (n_actions - 1))


class NanBandit:
    """A bandit policy with a hole in its distribution."""

    def action_dist(self, rows, n_actions, n_positions):
        dist = np.full((len(rows), n_actions), 1.0 / n_actions)
        dist[4, 1] = np.nan
        return dist


class PositionsFirstBandit:
    """A bandit policy that puts the positions before the actions."""

    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_positions, n_actions), 1.0 / n_actions)


class TemperedBandit(UniformBandit):
    """A bandit policy with a constructor argument, read as a number."""

    def __init__(self, temperature=1.0):
        self.temperature = float(temperature)


def table_log(path, n=60, **columns):
    """A uniform-logging table log of ``n`` rounds over 3 actions, with ``columns`` replaced."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"action": rng.integers(0, 3, n), "reward": rng.integers(0, 2, n).astype(float),
                          "pscore": np.full(n, 1 / 3), "context_0": rng.standard_normal(n)})
    for name, values in columns.items():
        table[name] = values
    table.to_csv(path, index=False)
    return str(path)


def refused(capsys, *argv):
    """The usage error of ``recoworld ope evaluate argv``."""
    with pytest.raises(SystemExit) as exit_:
        cli(["ope", "evaluate", *argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1].removeprefix("recoworld ope evaluate: error: ")


def with_cell(n, row, value, dtype=float):
    """A column of `n` numbers (0, 1, 2, 0, ...) with `value` at `row`."""
    column = np.arange(n, dtype=dtype) % 3
    column[row] = value
    return column


@pytest.mark.parametrize("columns, message", [
    ({"action": with_cell(60, 9, np.nan)},
     "log.csv: action is missing at row 10 (1 of 60 rounds); drop the rounds without a logged action"),
    ({"action": [f"item_{i % 3}" for i in range(60)]},
     ("log.csv: action holds 'item_0' at row 1, but it must hold 0-based integer action ids; map item ids to "
      "0..n_actions-1 (e.g. pandas.factorize)")),
    ({"action": (np.arange(60) % 3) * 1000 + 17},
     ("log.csv: the action ids reach 2017, but only 3 distinct ids appear; map them to 0..n_actions-1 (e.g. "
      "pandas.factorize, and the same map in the policy), or give --n-actions 2018 if the policy really chooses "
      "among 2018 actions")),
    ({"context_0": with_cell(60, 11, np.nan)},
     "log.csv: context_0 is missing at row 12 (1 of 60 rounds); impute it or drop those rounds"),
    ({"context_1": ["red"] * 60},
     ("log.csv: context_1 holds 'red' at row 1, but it must hold numbers; encode it as numbers (e.g. one-hot "
      "columns) or rename it")),
    ({"context_0": with_cell(60, 3, np.inf)},
     "log.csv: context_0 is inf at row 4 (1 of 60 rounds); impute it or drop those rounds"),
    ({"reward": ["1", "0", "0", "1", "yes"] + ["0"] * 55},
     "log.csv: reward holds 'yes' at row 5, but it must hold numbers (true/false reads as 1/0)"),
    ({"pscore": ["0.33"] * 7 + ["unknown"] + ["0.33"] * 52},
     ("log.csv: pscore holds 'unknown' at row 8, but it must hold the logging policy's probability of the logged "
      "action, a number in (0, 1]")),
    ({"pscore": with_cell(60, 7, np.nan)},
     "log.csv: pscore at row 8 is nan; log the probability with which the logging policy chose the action"),
    ({"pscore": np.where(np.arange(60) == 5, 0.0, 1 / 3)},
     ("log.csv: pscore at row 6 = 0.0, but logging propensities must lie in (0, 1]: a choice the logging policy could "
      "not have made cannot be reweighted; drop such rows or log the true probability")),
    ({"position": ["top"] * 60},
     "log.csv: position holds 'top' at row 1, but it must hold 0-based integer positions"),
])
def test_command_names_the_bad_cell_of_a_table_log(tmp_path, capsys, columns, message):
    log = table_log(tmp_path / "log.csv", **columns)
    assert refused(capsys, "--log", log, "--policy", "tests.test_ope_evaluate:UniformBandit") == \
        message.replace("log.csv", log, 1)


def test_command_refuses_a_log_too_small_or_absent_before_any_work(tmp_path, capsys):
    log = table_log(tmp_path / "log.csv", n=3)
    policy = ("--policy", "tests.test_ope_evaluate:UniformBandit")
    assert refused(capsys, "--log", log, *policy) == (
        f"{log} has 3 rounds, but an evaluation needs at least 20 (the reward model behind DM and DR is "
        "cross-fitted over 5 folds of the rounds); log more rounds")
    assert refused(capsys, "--log", str(tmp_path / "none.csv"), *policy) == (
        f"--log {tmp_path / 'none.csv'}: no such file; give a CSV or Parquet table with the columns "
        "['action', 'reward', 'pscore']")
    (tmp_path / "log.tsv").write_text("action\treward\tpscore\n")
    assert refused(capsys, "--log", str(tmp_path / "log.tsv"), *policy) == (
        f"--log {tmp_path / 'log.tsv'}: a file named *.tsv is neither a table log (.csv, .csv.gz or .parquet) "
        "nor a RecoWorld log (a run directory or an episodes .parquet); convert it, or give --format")
    (tmp_path / "taken").write_text("")
    assert refused(capsys, "--log", log, *policy, "--out", str(tmp_path / "taken")) == (
        f"--out {tmp_path / 'taken'} is a file; give a directory (it receives report.json and estimates.csv)")


def test_command_refuses_a_reward_model_no_machine_holds_before_fitting_it(tmp_path, capsys):
    # 60 rounds over 3,000 actions without context: 60 x 3,000 x 3,001 indicators, 4 GB.
    log = table_log(tmp_path / "log.csv")
    pd.read_csv(log).drop(columns="context_0").to_csv(log, index=False)
    assert refused(capsys, "--log", log, "--policy", "tests.test_ope_evaluate:UniformBandit",
                   "--n-actions", "3000") == (
        "the reward model's design would hold 540,180,000 numbers (60 rounds x 3,000 actions x 1 position x "
        "3,001 indicators > 500,000,000): the direct and doubly robust estimators cannot be fitted on this many "
        "actions; evaluate a log of fewer rounds or actions (e.g. the most shown items)")


def test_a_compressed_csv_is_a_table_log(tmp_path):
    from recoworld.apps.ope.sources import guess_format, read_table

    table_log(tmp_path / "log.csv.gz")
    assert guess_format(str(tmp_path / "log.csv.gz")) == "table"
    _, feedback, context, n_actions = read_table(str(tmp_path / "log.csv.gz"), None)
    assert (feedback.n_rounds, context.shape, n_actions) == (60, (60, 1), 3)


@pytest.mark.parametrize("policy, message", [
    ("ShortBandit", ("action_dist gave 2 actions per row, but the log has 3 (ids 0..2); return shape "
                     "(len(rows), n_actions, n_positions), or set n_actions with --n-actions")),
    ("NanBandit", "action_dist[4, 1, 0] is nan; the evaluation policy must give every action a finite probability"),
    ("PositionsFirstBandit", ("action_dist gave 1 action per row, but the log has 3 (ids 0..2); return shape "
                              "(len(rows), n_actions, n_positions), or set n_actions with --n-actions")),
])
def test_command_names_a_policy_that_breaks_the_action_dist_contract(tmp_path, capsys, policy, message):
    spec = f"tests.test_ope_evaluate:{policy}"
    log = table_log(tmp_path / "log.csv")
    assert refused(capsys, "--log", log, "--policy", spec) == f"--policy {spec!r}: {message}"


@pytest.mark.parametrize("args, message", [
    (["temperature=hot"], ("--policy 'tests.test_ope_evaluate:TemperedBandit' with --policy-arg temperature='hot': "
                           "TemperedBandit() raised ValueError: could not convert string to float: 'hot' "
                           f"({__file__}, line {TemperedBandit.__init__.__code__.co_firstlineno + 1}); give "
                           "--policy-arg KEY=VALUE for the arguments of TemperedBandit(temperature=1.0)")),
    (["temprature=0.5"], ("--policy 'tests.test_ope_evaluate:TemperedBandit' with --policy-arg temprature=0.5: "
                          "TemperedBandit() raised TypeError: TemperedBandit.__init__() got an unexpected keyword "
                          "argument 'temprature'; give --policy-arg KEY=VALUE for the arguments of "
                          "TemperedBandit(temperature=1.0)")),
    (["temperature=[1"], ("--policy-arg 'temperature=[1': the value '[1' is not valid YAML (expected ',' or ']', "
                          "but got '<stream end>'); quote a string, write a list as [1, 2]")),
    (["temperature=1", "temperature=2"], "--policy-arg temperature is given twice (1 and '2'); give it once"),
])
def test_command_names_a_bad_policy_arg(tmp_path, capsys, args, message):
    flags = [flag for arg in args for flag in ("--policy-arg", arg)]
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy",
                   "tests.test_ope_evaluate:TemperedBandit", *flags) == message


def test_report_is_strict_json_written_whole(tmp_path):
    from recoworld.apps.ope.evaluate import write

    report = {"estimates": [{"estimator": "SNIPS", "estimate": float("nan"), "lower": np.float64("nan")}],
              "diagnostics": {"slate": {"top1_share": np.nan, "ess": np.float64(3.0)}}}
    write(report, tmp_path / "out")
    text = (tmp_path / "out" / "report.json").read_text()
    assert json.loads(text, parse_constant=lambda constant: pytest.fail(f"{constant} in report.json")) == {
        "estimates": [{"estimator": "SNIPS", "estimate": None, "lower": None}],
        "diagnostics": {"slate": {"top1_share": None, "ess": 3.0}}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["estimates.csv", "report.json"]


def test_an_episodes_part_finds_the_world_of_its_run_directory(tmp_path):
    from recoworld.apps.ope.slate_evaluation import run_folder

    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("world: {}\n")
    part = tmp_path / "run" / "episodes" / "agent=random" / "seed=0.parquet"
    assert run_folder(str(part)) == run_folder(str(tmp_path / "run")) == tmp_path / "run"
    assert run_folder(str(tmp_path / "elsewhere.parquet")) is None


def test_the_printed_report_carries_its_warnings(capsys):
    from recoworld.apps.ope.evaluate import show

    keys = ("n", "ess", "ess_share", "mean_weight", "max_weight", "top1_share", "zero_share")
    show({"policy": "p", "log": "l", "n": 2, "alpha": 0.05, "estimates": [],
          "diagnostics": {"slate": dict.fromkeys(keys, 1.0)}, "selection": {"protocol": "x", "bias": {}, "rmse": {}},
          "verdict": {"sentence": "DM is recommended"}, "warnings": ["1 of 2 rows are later steps of an episode"]})
    assert "warning: 1 of 2 rows are later steps of an episode" in capsys.readouterr().out


def undefined_sniips_report(recommended):
    """A slate report whose SNIIPS is undefined on the log (NaN: at some position no logged
    item has weight) while the weights are otherwise sound, judged with ``recommended``."""
    from types import SimpleNamespace

    from recoworld.apps.ope.judgement import judge
    from recoworld.ope.selection import Selection

    rows = [{"estimator": name, "estimate": value, "lower": value, "upper": value, "interval": "rows"}
            for name, value in (("IIPS", 0.4), ("SNIIPS", float("nan")), ("DM", 0.5))]
    diagnostics = {"position": weight_diagnostics(np.ones(400))}
    selection = Selection({"IIPS": 0.0, "SNIIPS": 0.0, "DM": 0.0}, {"IIPS": 0.02, "SNIIPS": 0.01, "DM": 0.03},
                          recommended, 0.5, 3, "x")
    trusted, sentence, warnings = judge(rows, diagnostics, dict.fromkeys(("IIPS", "SNIIPS", "DM"), "position"),
                                        ("IIPS", "SNIIPS"), selection, SimpleNamespace(min_ess=100, max_relative_rmse=0.25),
                                        {"position": "position_propensity"})
    report = {"policy": "p", "log": "l", "n": 400, "alpha": 0.05, "estimates": rows, "diagnostics": diagnostics,
              "selection": {"protocol": "x", "recommended": recommended, "bias": selection.bias,
                            "rmse": selection.rmse},
              "verdict": {"trustworthy": trusted, "sentence": sentence}, "warnings": warnings}
    return report


def test_an_estimate_the_log_leaves_undefined_is_noted_and_printed_as_no_number(capsys):
    from recoworld.apps.ope.evaluate import show

    report = undefined_sniips_report("DM")
    assert [row["note"] for row in report["estimates"]] == ["", "undefined: its weights sum to 0", ""]
    assert report["verdict"]["trustworthy"]
    show(report)
    printed = capsys.readouterr().out
    sniips = next(line for line in printed.splitlines() if "SNIIPS" in line)
    assert "nan" not in sniips and "-" in sniips and "undefined" in sniips


def test_an_undefined_recommended_estimate_is_not_trusted():
    report = undefined_sniips_report("SNIIPS")
    assert not report["verdict"]["trustworthy"]
    assert report["verdict"]["sentence"].startswith(
        "no estimate is trustworthy: SNIIPS, the least RMSE on simulated logs, is undefined on this log")


def test_selection_leaves_out_an_estimator_undefined_on_every_simulated_log_without_a_warning():
    import warnings

    from recoworld.ope.selection import summarise_errors

    errors = np.array([[0.1, np.nan, -0.3], [-0.1, np.nan, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "Mean of empty slice" would reach the user's terminal
        bias, rmse, recommended = summarise_errors(errors, ["IPS", "SNIPS", "DM"])
    assert np.isnan(bias["SNIPS"]) and np.isnan(rmse["SNIPS"])
    assert rmse["IPS"] == pytest.approx(0.1) and recommended == "IPS"


@pytest.mark.parametrize("flag, message", [
    (["--sims", "1"], "--sims 1; give 2 or more simulated logs, for an RMSE"),
    (["--bootstrap", "0"], "--bootstrap=0 resamples cannot give a 95% interval: without a resample there is no "
                           "replicate to take an interval from; use --bootstrap >= 39, and 1000 or more for stable ends"),
    (["--refits", "1"], "--refits 1; give 2 or more refits, for a standard error"),
    (["--truth-users", "1"], "--truth-users 1; give 2 or more users, for a standard error"),
    (["--min-ess", "-1"], "--min-ess -1.0; give 0 or more (0: no threshold)"),
    (["--max-relative-rmse", "-0.1"], "--max-relative-rmse -0.1; give a share above 0, e.g. 0.25: the largest "
                                      "simulated RMSE trusted, as a share of the simulated value above the floor "
                                      "of the logged rewards (their 1% quantile; 0 for 0/1 rewards)"),
    (["--alpha", "1"], "--alpha 1.0; give a number in (0, 1), e.g. 0.05 for 95% intervals"),
])
def test_command_names_a_flag_out_of_range_before_any_work(tmp_path, capsys, monkeypatch, flag, message):
    from recoworld.apps.ope import sources

    monkeypatch.setattr(sources, "read_table", lambda *a: pytest.fail("the log was read before the flags were checked"))
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy",
                   "tests.test_ope_evaluate:UniformBandit", *flag) == message


def test_command_reads_a_true_false_reward_as_one_zero(tmp_path):
    clicked = np.arange(60) % 4 == 0
    log = table_log(tmp_path / "log.csv", reward=clicked)
    assert "True" in (tmp_path / "log.csv").read_text()
    assert cli(["ope", "evaluate", "--log", log, "--policy", "tests.test_ope_evaluate:UniformBandit", "--sims", "2",
                "--refits", "2", "--bootstrap", "39", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["estimates"][0]["estimate"] == pytest.approx(clicked.mean())     # IPS of the logging policy


def test_command_refuses_an_out_folder_that_holds_files_and_leaves_them(tmp_path, capsys, monkeypatch):
    from recoworld.apps.ope import sources

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"an": "earlier report"}')
    monkeypatch.setattr(sources, "read_table", lambda *a: pytest.fail("the log was read before --out was checked"))
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy",
                   "tests.test_ope_evaluate:UniformBandit", "--out", str(out)) == (
        f"--out {out} already holds files (report.json); choose another --out or remove it")
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert (out / "report.json").read_text() == '{"an": "earlier report"}'


def test_command_warns_of_a_table_log_whose_rows_were_copied(tmp_path):
    log = table_log(tmp_path / "log.csv")
    table = pd.read_csv(log)
    pd.concat([table, table.iloc[:15]], ignore_index=True).to_csv(log, index=False)
    assert cli(["ope", "evaluate", "--log", log, "--policy", "tests.test_ope_evaluate:UniformBandit", "--sims", "2",
                "--refits", "2", "--bootstrap", "39", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n"] == 75
    assert [w for w in report["warnings"] if "repeat" in w] == [(
        f"{log}: 15 of 75 rows repeat an earlier row in every column (the first at row 61), although 'context_0' is "
        "distinct on every other row: the log looks duplicated (a join that matched twice, a part exported twice), "
        "and each copy counts as another round, moving the estimates and narrowing the intervals; drop them (pandas "
        "drop_duplicates) unless they are rounds of their own")]


def test_repeats_in_a_log_of_few_distinct_values_are_not_called_copies():
    from recoworld.apps.ope.sources import repeated_rows

    few = pd.DataFrame({"action": [0, 1, 0, 1] * 10, "reward": [1.0, 0.0] * 20, "pscore": 0.5,
                        "context_0": [0.0, 1.0, 1.0, 0.0] * 10})
    assert repeated_rows(few, "log.csv") is None
