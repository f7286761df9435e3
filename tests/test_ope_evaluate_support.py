"""``recoworld ope evaluate`` on logs that cannot answer the question: a target the logger
never covered is *not identified*, propensities that are not the logger's are named, and
neither prints a confident number; RecoWorld logs with copied or half-logged rows are refused."""

import json

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.cli import main as cli
from recoworld.ope.diagnostics import (
    INCONSISTENT,
    NOT_IDENTIFIED,
    support_problem,
    weight_diagnostics,
)

FAST = ["--sims", "2", "--refits", "2", "--bootstrap", "50"]


class HalfOnUnlogged:
    """Half its probability on action 3, which the logger of :func:`three_of_four` never takes."""

    def action_dist(self, rows, n_actions, n_positions):
        dist = np.zeros((len(rows), n_actions))
        dist[:, [0, 3]] = 0.5
        return dist


class NeverTheLogged:
    """Probability 0 on every logged action: each row's next action instead."""

    def action_dist(self, rows, n_actions, n_positions):
        dist = np.zeros((len(rows), n_actions))
        dist[np.arange(len(rows)), (rows["action"].to_numpy() + 1) % n_actions] = 1.0
        return dist


class Uniform:
    def action_dist(self, rows, n_actions, n_positions):
        return np.full((len(rows), n_actions, n_positions), 1.0 / n_actions)


def three_of_four(path, n=400):
    """A table log of 4 actions whose logger is uniform over actions 0..2 only."""
    rng = np.random.default_rng(0)
    action = rng.integers(0, 3, n)
    x = rng.standard_normal(n)
    reward = (rng.random(n) < 0.2 + 0.2 * action).astype(float)
    pd.DataFrame({"action": action, "reward": reward, "pscore": 1 / 3, "context_0": x}).to_csv(path, index=False)
    return str(path)


def evaluate(tmp_path, log, policy, *flags):
    assert cli(["ope", "evaluate", "--log", log, "--policy", policy, *FAST, *flags,
                "--out", str(tmp_path / "out")]) == 0
    return json.loads((tmp_path / "out" / "report.json").read_text())


@pytest.mark.parametrize("policy, covered", [("HalfOnUnlogged", 0.5), ("NeverTheLogged", 0.0)])
def test_a_target_outside_the_logs_support_is_not_identified(tmp_path, capsys, policy, covered):
    report = evaluate(tmp_path, three_of_four(tmp_path / "log.csv"), f"tests.test_ope_evaluate_support:{policy}",
                      "--n-actions", "4")
    weights = report["diagnostics"]["action"]
    assert weights["mean_weight"] == pytest.approx(covered, abs=0.1)    # the share of the target the log reaches
    verdict = report["verdict"]
    assert not verdict["trustworthy"]
    assert verdict["sentence"].startswith("no estimate is trustworthy: ")
    assert (f"is not identified: the importance weights average {weights['mean_weight']:.3g} (standard error "
            f"{weights['mean_weight_se']:.2g}), so about {1 - weights['mean_weight']:.0%} of the target policy's "
            "probability falls on choices this log does not show") in verdict["sentence"]
    assert {row["estimator"]: row["note"] for row in report["estimates"]} == dict.fromkeys(
        ["IPS", "SNIPS", "DM", "DR", "SNDR"], NOT_IDENTIFIED)
    # no number is printed for them: IPS's confident 0.25 (or 0) would be the value of half the policy
    printed = capsys.readouterr().out
    ips = next(line for line in printed.splitlines() if line.startswith("│ IPS"))
    assert ips.split("│")[2:5] == [" " * (len(cell) - 2) + "- " for cell in ips.split("│")[2:5]]
    assert "not identified" in ips


def test_propensities_smaller_than_the_loggers_are_named(tmp_path, capsys):
    # two positions, each an independent uniform draw of 3 actions; pscore holds the whole
    # slate's probability (1/9) where the action's at its position (1/3) was meant
    rng = np.random.default_rng(1)
    n = 300
    table = pd.DataFrame({"action": rng.integers(0, 3, n), "position": np.arange(n) % 2,
                          "reward": rng.integers(0, 2, n).astype(float), "context_0": rng.standard_normal(n)})
    table.assign(pscore=1 / 9).to_csv(tmp_path / "slate.csv", index=False)
    report = evaluate(tmp_path, str(tmp_path / "slate.csv"), "tests.test_ope_evaluate_support:Uniform")
    assert report["verdict"] == {"trustworthy": False, "sentence": (
        "no estimate is trustworthy: the logged propensities are not the logging policy's: the importance weights "
        "average 3 (standard error 0), but with its true probabilities they average at most 1, so pscore is too "
        "small: a whole slate's probability logged where the probability of the item at its position was meant, or "
        "the propensities of other rows; log pscore as the probability of each row's own logged choice")}
    notes = {row["estimator"]: row["note"] for row in report["estimates"]}
    assert notes == {"IPS": INCONSISTENT, "SNIPS": INCONSISTENT, "DM": "", "DR": INCONSISTENT, "SNDR": INCONSISTENT}
    # the same log with the right propensities raises nothing
    table.assign(pscore=1 / 3).to_csv(tmp_path / "right.csv", index=False)
    capsys.readouterr()
    assert cli(["ope", "evaluate", "--log", str(tmp_path / "right.csv"), "--policy",
                "tests.test_ope_evaluate_support:Uniform", *FAST, "--out", str(tmp_path / "right")]) == 0
    right = json.loads((tmp_path / "right" / "report.json").read_text())
    assert right["diagnostics"]["action"]["mean_weight"] == pytest.approx(1.0)
    assert all(row["note"] == "" for row in right["estimates"])
    assert "propensities" not in right["verdict"]["sentence"] and right["warnings"] == []


def test_support_problem_reads_the_mean_weight():
    assert support_problem(weight_diagnostics(np.full(50, 0.75))).kind == NOT_IDENTIFIED
    assert support_problem(weight_diagnostics(np.full(50, 3.0)), "position_propensity").sentence.startswith(
        "the logged propensities are not the logging policy's: the importance weights average 3 (standard error 0)")
    # a logger that covers the target, with heavy weights (10 on a tenth of the rounds): never
    # called unsupported nor inconsistent over 200 logs
    rng = np.random.default_rng(0)
    flagged = [support_problem(weight_diagnostics(np.where(rng.random(500) < 0.1, 10.0, 0.0))) for _ in range(200)]
    assert flagged == [None] * 200
    # positions of one slate are one draw: the standard error is over slates
    per_position = np.array([[0.0, 2.0], [2.0, 0.0]] * 50)
    assert weight_diagnostics(per_position)["mean_weight_se"] == 0.0


def recoworld_log(path, agent, n=150):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv

    from recoworld.logs import EpisodeLog

    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=n, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    with EpisodeLog(path) as log:
        rollout(env, agent, n_steps=1, seed=0, logger=log, log_candidates=True)
    return str(path)


def rewrite(log, path, frame):
    """``frame`` written as an episodes log, as :class:`~recoworld.logs.EpisodeLog` would."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recoworld.logs import SCHEMA

    pq.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), path)
    return str(path)


SLATE_FLAGS = ["--world", "synthetic", "--truth-users", "300"]


def test_a_deterministic_loggers_slates_do_not_identify_another_policy(tmp_path):
    from recoworld.agents.baselines import MostPopularAgent

    log = recoworld_log(tmp_path / "episodes.parquet", MostPopularAgent())
    report = evaluate(tmp_path, log, "random", *SLATE_FLAGS)
    assert not report["verdict"]["trustworthy"]
    assert "is not identified: the importance weights average" in report["verdict"]["sentence"]
    assert all(row["note"] == NOT_IDENTIFIED for row in report["estimates"])


def test_slate_probabilities_in_the_position_column_are_named(tmp_path):
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft

    from recoworld.logs import read_log

    frame = read_log(recoworld_log(tmp_path / "episodes.parquet", EpsilonSoft(base=MostPopularAgent(), epsilon=0.5),
                                   n=300))
    frame["position_propensity"] = [[p, p] for p in frame["propensity"]]
    frame["cascade_propensity"] = None
    log = rewrite(frame, tmp_path / "mixed.parquet", frame)
    report = evaluate(tmp_path, log, "most_popular", *SLATE_FLAGS)
    assert not report["verdict"]["trustworthy"]
    assert report["verdict"]["sentence"].startswith(
        "no estimate is trustworthy: the logged propensities are not the logging policy's: the importance weights "
        "average ")
    assert "so position_propensity is too small" in report["verdict"]["sentence"]
    notes = {row["estimator"]: row["note"] for row in report["estimates"]}
    assert notes["IIPS"] == notes["SNIIPS"] == INCONSISTENT
    assert notes["IPS"] != INCONSISTENT                       # the whole-slate column is right


def test_the_top_positions_probability_logged_as_the_slates_is_refused(tmp_path, capsys):
    """Its weights average about 0.93 for most_popular, too close to 1 for the mean-weight
    check: the position column shows it, a slate being more probable than an item at its position."""
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft

    from recoworld.logs import read_log

    frame = read_log(recoworld_log(tmp_path / "episodes.parquet", EpsilonSoft(base=MostPopularAgent(), epsilon=0.5),
                                   n=300))
    positions = np.stack(frame["position_propensity"].to_numpy())
    assert (frame["propensity"] <= positions.min(1)).all()  # the logger's own: a slate within each position
    frame["propensity"] = np.stack(frame["cascade_propensity"].to_numpy())[:, 0]
    frame["cascade_propensity"] = None
    log = rewrite(frame, tmp_path / "top.parquet", frame)
    above = np.flatnonzero(frame["propensity"] > positions.min(1))
    with pytest.raises(SystemExit):
        cli(["ope", "evaluate", "--log", log, "--policy", "most_popular", *FAST, *SLATE_FLAGS,
             "--out", str(tmp_path / "out")])
    row = above[0]
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"recoworld ope evaluate: error: {log}: propensity exceeds position_propensity on {len(above)} of 300 rows "
        f"(row {row}: propensity {frame['propensity'][row]:.6g}, but position_propensity[1] is "
        f"{positions[row].min():.6g}); a whole slate is never more probable than one of its items at its position, "
        "so propensity is not the whole ranked slate's probability (the top position's, logged in its place?): log "
        "propensity as the probability of the whole slate, or leave it null to evaluate with position_propensity "
        "alone")
    assert not (tmp_path / "out").exists()


def test_a_recoworld_log_with_a_rollout_twice_or_half_its_propensities_is_refused(tmp_path, capsys):
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft

    from recoworld.logs import read_log

    frame = read_log(recoworld_log(tmp_path / "episodes.parquet", EpsilonSoft(base=MostPopularAgent(), epsilon=0.5)))
    twice = rewrite(frame, tmp_path / "twice.parquet", pd.concat([frame, frame.iloc[:40]], ignore_index=True))
    half = frame.copy()
    half.loc[[5, 9], "propensity"] = np.nan
    half = rewrite(frame, tmp_path / "half.parquet", half)
    for log, message in (
        (twice, (f"{twice}: row 151 repeats seed 0, user 0, episode 0, step 0 of an earlier row (40 of 190 rows are "
                 "repeats): the log holds a rollout twice (a part copied or read twice, or a seed repeated in "
                 "experiment.seeds); read each rollout once")),
        (half, (f"{half}: propensity is missing at row 6 (2 of 150 rows) but logged on the others; drop the rows "
                "without it, or log them again with an agent that states its propensities"))):
        with pytest.raises(SystemExit):
            cli(["ope", "evaluate", "--log", log, "--policy", "most_popular", *FAST, *SLATE_FLAGS,
                 "--out", str(tmp_path / "out")])
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"recoworld ope evaluate: error: {message}"
