"""An interval refused because too few bootstrap resamples leave a self-normalised estimator
defined keeps the estimate, which the whole log defines: the refusal is an
:class:`~recoworld.ope.UndefinedInterval` carrying it, told apart from an
:class:`~recoworld.ope.UndefinedEstimate` by type rather than by the words of a message, and
``recoworld ope evaluate`` and the estimator study report the estimate with no bounds, a
note that says why, and the count of replicates each resampled interval rests on."""

import json
import pickle
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recoworld.agents.off_policy import LoggedSlates
from recoworld.apps.cli import main as cli
from recoworld.apps.ope.config import StudyConfig, make_policy
from recoworld.apps.ope.judgement import UNDEFINED, judge
from recoworld.apps.ope.study import Study
from recoworld.apps.ope.summary import summarise
from recoworld.ope import SNIPS, BanditFeedback, UndefinedEstimate, UndefinedInterval, per_action_features
from recoworld.ope.diagnostics import weight_diagnostics
from recoworld.ope.evaluation import BanditProblem, evaluate_bandit
from recoworld.ope.selection import Selection

#: h104's refusal, unchanged: callers that read the message keep reading it
REFUSED = ("SNIPS is undefined on 15 of the 50 bootstrap resamples and defined on 35, fewer than the 39 a 95% "
           "interval needs: a resample is undefined when its normalising weights sum to 0, and the log has very few "
           "rounds with non-zero weight (the evaluation policy rarely makes the logged choices); log more rounds, or "
           "with a logging policy that overlaps more with the evaluation policy, or use an estimator defined on every "
           "resample, such as IPS or DM")


class AlwaysOne:
    """A bandit policy for table logs that always takes action 1."""

    def action_dist(self, rows, n_actions, n_positions):
        dist = np.zeros((len(rows), n_actions, n_positions))
        dist[:, 1] = 1.0
        return dist


def one_agreeing_round(n=40, agreeing=1):
    """``(action, reward, pscore)`` of a log whose logger took action 1 (probability
    ``1 / n``, so that the weights average 1 as they should) in its first ``agreeing``
    rounds only; rewards 1 on every third round, the first included."""
    action = np.zeros(n, dtype=int)
    action[:agreeing] = 1
    reward = (np.arange(n) % 3 == 0).astype(float)
    return action, reward, np.where(action == 1, 1 / n, 1 - 1 / n)


def test_an_interval_on_too_few_defined_resamples_is_refused_with_the_estimate_it_leaves_standing():
    action, reward, pscore = one_agreeing_round()
    feedback, target = BanditFeedback(action, reward, pscore), AlwaysOne().action_dist(action, 2, 1)[:, :, 0]
    with pytest.raises(UndefinedInterval) as refused:
        SNIPS().estimate_interval(feedback, target, n_bootstrap=50)
    assert str(refused.value) == REFUSED
    assert isinstance(refused.value, ValueError) and not isinstance(refused.value, UndefinedEstimate)
    assert refused.value.estimate == SNIPS().estimate_policy_value(feedback, target) == 1.0
    assert (refused.value.n_replicates, refused.value.n_bootstrap, refused.value.alpha) == (35, 50, 0.05)
    # whole across processes: a worker's refusal reaches its caller with the estimate
    copied = pickle.loads(pickle.dumps(refused.value))
    assert (str(copied), copied.estimate, copied.n_replicates) == (REFUSED, 1.0, 35)


def test_an_estimator_undefined_on_the_whole_log_is_an_undefined_estimate():
    action, reward, pscore = one_agreeing_round(agreeing=0)
    feedback, target = BanditFeedback(action, reward, pscore), AlwaysOne().action_dist(action, 2, 1)[:, :, 0]
    for ask in (SNIPS().estimate_policy_value, SNIPS().estimate_interval):
        with pytest.raises(UndefinedEstimate, match=r"^SNIPS is undefined on this data: its normalising weights sum "
                                                    r"to 0") as refused:
            ask(feedback, target)
        assert isinstance(refused.value, ValueError) and not isinstance(refused.value, UndefinedInterval)


def test_ope_evaluate_keeps_the_estimate_of_an_interval_too_few_resamples_define(tmp_path, capsys, monkeypatch):
    action, reward, pscore = one_agreeing_round()
    pd.DataFrame({"action": action, "reward": reward, "pscore": pscore}).to_csv(tmp_path / "log.csv", index=False)
    monkeypatch.setitem(sys.modules, "h108_policies", SimpleNamespace(AlwaysOne=AlwaysOne))
    assert cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "h108_policies:AlwaysOne",
                "--bootstrap", "50", "--sims", "2", "--refits", "2", "--out", str(tmp_path / "out")]) == 0
    rows = {row["estimator"]: row for row in json.loads((tmp_path / "out" / "report.json").read_text())["estimates"]}
    # the one agreeing round's reward is 1: SNIPS's estimate stands, its bounds do not
    assert rows["SNIPS"] == {"estimator": "SNIPS", "estimate": 1.0, "lower": None, "upper": None, "interval": "rows",
                             "n_replicates": 35,
                             "note": "interval undefined: defined on 35 of 50 resamples; ESS 1 < 100"}
    assert rows["IPS"]["n_replicates"] == 50 and rows["IPS"]["lower"] <= 1.0 <= rows["IPS"]["upper"]
    assert all(rows[name]["n_replicates"] is None for name in ("DM", "DR", "SNDR"))
    table = pd.read_csv(tmp_path / "out" / "estimates.csv", index_col="estimator")
    assert table.loc["SNIPS", "estimate"] == 1.0 and table.loc[["SNIPS"], ["lower", "upper"]].isna().all(axis=None)
    assert table["n_replicates"].tolist()[:2] == [50, 35] and table["n_replicates"].iloc[2:].isna().all()
    assert "\nIPS,1.0,0.0,3.0,rows,50,ESS 1 < 100\n" in (tmp_path / "out" / "estimates.csv").read_text()
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("│ SNIPS"))
    assert printed.split("│")[2:5] == ["   1.0000 ", "       - ", "      - "]


def test_an_estimate_undefined_on_the_whole_log_stays_undefined_in_the_evaluation():
    action, reward, pscore = one_agreeing_round(agreeing=0)
    problem = BanditProblem(BanditFeedback(action, reward, pscore), AlwaysOne().action_dist(action, 2, 1),
                            lambda rows: per_action_features(np.ones((len(rows), 1)), 2, 1))
    rows = {row["estimator"]: row for row in evaluate_bandit(problem, n_bootstrap=50, n_refits=2)}
    assert np.isnan([rows["SNIPS"][key] for key in ("estimate", "lower", "upper")]).all()
    assert rows["SNIPS"]["n_replicates"] is None and rows["IPS"]["n_replicates"] == 50
    # weights judged sound here, so that no support problem's note stands in for this one
    selection = Selection(dict.fromkeys(rows, 0.0), dict.fromkeys(rows, 0.1), "DM", 1.0, 2, "x")
    judge(list(rows.values()), {"action": weight_diagnostics(np.ones(40))}, dict.fromkeys(rows, "action"),
          ("IPS", "SNIPS", "DR", "SNDR"), selection,
          SimpleNamespace(min_ess=0, max_relative_rmse=1.0, bootstrap=50, alpha=0.05), {"action": "pscore"})
    assert rows["SNIPS"]["note"] == UNDEFINED


def judged(recommended, min_ess=0):
    """A report whose SNIPS has an estimate and no interval (defined on 35 of 50
    resamples), judged with ``recommended``."""
    rows = [{"estimator": "IPS", "estimate": 0.4, "lower": 0.3, "upper": 0.5, "interval": "rows", "n_replicates": 50},
            {"estimator": "SNIPS", "estimate": 0.45, "lower": float("nan"), "upper": float("nan"), "interval": "rows",
             "n_replicates": 35},
            {"estimator": "DM", "estimate": 0.5, "lower": 0.4, "upper": 0.6, "interval": "refit", "n_replicates": None}]
    selection = Selection({"IPS": 0.0, "SNIPS": 0.0, "DM": 0.0}, {"IPS": 0.02, "SNIPS": 0.01, "DM": 0.03},
                          recommended, 0.5, 3, "x")
    trusted, sentence, _ = judge(rows, {"action": weight_diagnostics(np.ones(400))},
                                 dict.fromkeys(("IPS", "SNIPS", "DM"), "action"), ("IPS", "SNIPS"), selection,
                                 SimpleNamespace(min_ess=min_ess, max_relative_rmse=0.25, bootstrap=50, alpha=0.05),
                                 {"action": "pscore"})
    return rows, trusted, sentence


def test_an_estimate_without_an_interval_is_noted_and_not_trusted_when_recommended():
    rows, trusted, sentence = judged("SNIPS")
    assert [row["note"] for row in rows] == ["", "interval undefined: defined on 35 of 50 resamples", ""]
    assert not trusted
    assert sentence == ("no estimate is trustworthy: SNIPS, the least RMSE on simulated logs, has no interval on this "
                        "log: it is defined on only 35 of the 50 bootstrap resamples (the log has very few rounds with "
                        "weight, and a resample that draws none of them has no estimate); log more rounds, or with a "
                        "policy that also makes the target's choices")
    # another recommendation is judged as before
    assert judged("IPS")[1:] == (True, "IPS is recommended: the least RMSE on 3 simulated logs of this shape (4% of "
                                       "the value)")


class OneItemPerPosition:
    """A slate target that gives probability only to the logged item at position ``j`` of
    slate ``j`` (``j < K``): the self-normalised independent estimator is defined on the log,
    but only on the resamples that draw all of those ``K`` slates."""

    def __init__(self, n, n_candidates, slate_size):
        self.n, self.c, self.k = n, n_candidates, slate_size

    def propensities(self, obs, action):
        position = np.zeros((self.n, self.k))
        position[np.arange(self.k), np.arange(self.k)] = 1.0
        return {"slate": np.zeros(self.n), "position": position, "cascade": np.zeros((self.n, self.k))}

    def action_distribution(self, obs):
        return np.zeros((self.n, self.c, self.k))

    def next_item_distribution(self, obs, action):
        return np.zeros((self.n, self.k, self.c))


def test_the_study_keeps_the_estimate_of_an_interval_too_few_resamples_define():
    config = StudyConfig(n_items=60, estimators=("IIPS", "SNIIPS"), n_bootstrap=100, learned=())
    study = Study(config)
    log = study.log(make_policy("epsilon_soft", config, "logging"), 50, seed=0)
    target = OneItemPerPosition(50, config.num_candidates, config.slate_size)
    rows = {row["estimator"]: row for row in study.estimate(log, {"one": target}, seed=0)}
    snips = rows["SNIIPS"]
    # one weighted slate per position: the estimate is the clicks at (slate j, position j)
    reward = LoggedSlates.from_log(log).reward
    assert snips["estimate"] == reward[np.arange(3), np.arange(3)].sum()
    assert np.isnan([snips["lower"], snips["upper"]]).all() and 0 <= snips["n_replicates"] < 39
    assert rows["IIPS"]["n_replicates"] == 100 and rows["IIPS"]["lower"] <= rows["IIPS"]["upper"]


def test_the_study_summary_counts_an_estimate_without_an_interval_as_defined_but_not_as_a_miss():
    runs = pd.DataFrame({"logging": "uniform", "target": "greedy", "n": 50, "estimator": "SNIIPS",
                         "estimate": [0.5, 0.7, 0.6, np.nan], "lower": [0.4, np.nan, 0.0, np.nan],
                         "upper": [0.6, np.nan, 0.1, np.nan], "n_replicates": [100, 20, 100, None]})
    truths = pd.DataFrame({"logging": ["uniform"], "target": ["greedy"], "truth": [0.5], "truth_se": [0.01]})
    row = summarise(runs, truths, ["SNIIPS"]).iloc[0]
    assert (row["defined"], row["runs"]) == (3, 4)
    assert row["bias"] == pytest.approx(0.1)                 # (0 + 0.2 + 0.1) / 3: the kept estimate counts
    assert row["coverage"] == 0.5 and row["ci_width"] == pytest.approx(0.15)  # over the 2 runs with an interval
