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
    # the target is the logging policy itself: every weight is 1
    assert report["diagnostics"]["action"]["ess"] == pytest.approx(400)
    assert report["selection"]["recommended"] in report["selection"]["rmse"]
    assert isinstance(report["verdict"]["trustworthy"], bool)
    assert pd.read_csv(tmp_path / "out" / "estimates.csv").shape[0] == 5


def test_command_names_a_missing_table_column(tmp_path, capsys):
    pd.DataFrame({"action": [0], "reward": [1.0]}).to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(SystemExit):
        cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.test_ope_evaluate:UniformBandit"])
    assert "lacks the column(s) ['pscore']" in capsys.readouterr().err


def test_command_on_a_recoworld_log_with_an_agent_config(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import SoftmaxPolicy
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog

    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=150, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    with EpisodeLog(tmp_path / "episodes.parquet") as log:
        rollout(env, SoftmaxPolicy(base=MostPopularAgent(), temperature=1.0), n_steps=1, seed=0, logger=log,
                log_candidates=True)
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
