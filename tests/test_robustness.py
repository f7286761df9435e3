"""``recoworld robustness``: the sampled worlds, the ranking statistics, the sensitivity and the report."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.cli import COMMANDS
from recoworld.apps.cli import main as cli_main
from recoworld.apps.robustness import DEFAULT_RANGES, ParameterRange, ParameterSpace, RobustnessConfig, run_study
from recoworld.apps.robustness import stability
from recoworld.apps.robustness.app import parse_range
from recoworld.apps.robustness.lineup import Lineup
from recoworld.apps.robustness.report import FILES
from recoworld.apps.robustness.space import world_config
from recoworld.simulators.statistical import StatisticalUserConfig

torch.set_num_threads(1)


def unit(space: ParameterSpace, points: np.ndarray) -> np.ndarray:
    """The points back on [0, 1) of each range, on its scale."""
    out = np.empty_like(points)
    for j, r in enumerate(space.ranges.values()):
        x, low, high = (np.log(points[:, j]), math.log(r.low), math.log(r.high)) if r.scale == "log" else \
            (points[:, j], r.low, r.high)
        out[:, j] = (x - low) / (high - low)
    return out


# ------------------------------------------------------------------ the sampled worlds
def test_latin_hypercube_puts_one_world_in_every_stratum_of_every_range():
    space = ParameterSpace(DEFAULT_RANGES)
    k = 12
    points = space.sample(k, seed=3)
    assert points.shape == (k, len(DEFAULT_RANGES))
    u = unit(space, points)
    assert ((u >= 0) & (u < 1)).all()
    for j in range(u.shape[1]):
        assert sorted(np.floor(u[:, j] * k).astype(int)) == list(range(k)), space.names[j]


def test_sampling_is_deterministic_per_seed():
    space = ParameterSpace(DEFAULT_RANGES)
    for method, k in (("lhs", 6), ("sobol", 8)):
        assert np.array_equal(space.sample(k, 0, method), space.sample(k, 0, method))
        assert not np.allclose(space.sample(k, 0, method), space.sample(k, 1, method))
    u = unit(space, space.sample(16, 5, "sobol"))
    assert ((u >= 0) & (u < 1)).all() and (u.min(0) < 0.25).all() and (u.max(0) > 0.75).all()


def test_bad_ranges_and_sizes_are_named():
    with pytest.raises(ValueError, match=r"unknown parameter 'leave_mindest' \(did you mean 'leave_mindset'\?\)"):
        ParameterSpace({"leave_mindest": ParameterRange(1, 2)})
    with pytest.raises(ValueError, match=r"range of leave_boredom is empty \(low=3.0, high=3.0\); give low < high"):
        ParameterSpace({"leave_boredom": ParameterRange(3.0, 3.0)})
    with pytest.raises(ValueError, match=r"range of gap_days is on a log scale but low=0.0; a log scale needs low > 0"):
        ParameterSpace({"gap_days": ParameterRange(0.0, 3.0, "log")})
    with pytest.raises(ValueError, match=r"range of gap_days is \{'lo': 1\}; give low, high"):
        ParameterSpace({"gap_days": {"lo": 1}})
    with pytest.raises(ValueError, match="no parameter ranges given"):
        ParameterSpace({})
    # Ranges the parameter cannot take fail before any world runs, not when a draw reaches them.
    with pytest.raises(ValueError, match=r"range of satiation_rate reaches -5, which no world can take "
                                         r"\(StatisticalUserConfig.satiation_rate=-5.0: must be >= 0\); give a range"):
        ParameterSpace({"satiation_rate": ParameterRange(-5.0, 5.0)})
    with pytest.raises(ValueError, match=r"range of peak_end_weight reaches 1.5, which no world can take"):
        ParameterSpace({"peak_end_weight": ParameterRange(0.5, 1.5)})
    with pytest.raises(ValueError, match=r"range of exposure_odds reaches 0, which no world can take \(exposure_odds"
                                         r"=0.0; it is a ratio of item counts and must be > 0\)"):
        ParameterSpace({"exposure_odds": ParameterRange(0.0, 2.0)})
    with pytest.raises(ValueError, match=r"range of leave_mindset has low='one'; give a number"):
        ParameterSpace({"leave_mindset": {"low": "one", "high": 8}})
    space = ParameterSpace(DEFAULT_RANGES)
    with pytest.raises(ValueError, match="worlds=1; the stability of a ranking needs at least 2 sampled worlds"):
        space.sample(1, 0)
    with pytest.raises(ValueError, match=r"worlds=12 with sampler='sobol'.*use 8 or 16, or sampler='lhs'"):
        space.sample(12, 0, "sobol")
    with pytest.raises(ValueError, match="worlds=0; the stability of a ranking needs at least 2 sampled worlds"):
        RobustnessConfig(worlds=0).check()
    with pytest.raises(ValueError, match=r"worlds=6 with sampler='sobol'.*use 4 or 8"):
        RobustnessConfig(worlds=6, sampler="sobol").check()  # before the lineup is built, not after
    with pytest.raises(ValueError, match=r"seeds lists \[0\] more than once"):
        RobustnessConfig(seeds=(0, 1, 0)).check()
    with pytest.raises(ValueError, match=r"seed_noise=-1; it counts worlds and must be >= 0"):
        RobustnessConfig(seed_noise=-1).check()
    with pytest.raises(ValueError, match=r"agents=\['random'\]; a ranking needs at least two agents"):
        RobustnessConfig(agents=("random",)).check()
    with pytest.raises(ValueError, match=r"--range 'leave_mindset=1'; write NAME=LOW:HIGH"):
        parse_range("leave_mindset=1")
    name, spec = parse_range("exposure_odds=1:15:log")
    assert (name, spec.low, spec.high, spec.scale) == ("exposure_odds", 1.0, 15.0, "log")


def test_exposure_odds_shift_the_click_threshold_and_keep_ratings_as_fitted():
    base = StatisticalUserConfig()
    world = world_config(base, {"exposure_odds": math.e ** 2, "leave_mindset": 7.0, "instruction_steps": 3.4})
    assert world.click_threshold == pytest.approx(base.click_threshold + 2)
    assert world.rating_center == pytest.approx(base.rating_center + 2 * base.rating_slope)
    assert (world.leave_mindset, world.instruction_steps, world.leave_boredom) == (7.0, 3, base.leave_boredom)
    assert world_config(base, {}) == base


# ------------------------------------------------------------------ ranking statistics
def test_kendall_tau_and_swapped_pairs_on_known_rankings():
    reference = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    assert stability.kendall_tau(reference, {"a": 40, "b": 30, "c": 20, "d": 10}) == pytest.approx(1.0)
    assert stability.kendall_tau(reference, {"a": 1, "b": 2, "c": 3, "d": 4}) == pytest.approx(-1.0)
    one_swap = {"a": 4, "b": 2, "c": 3, "d": 1}
    assert stability.kendall_tau(reference, one_swap) == pytest.approx(1 - 2 * 1 / 6)
    assert stability.swapped_pairs(reference, one_swap) == 1
    assert stability.swapped_pairs(reference, {"a": 1, "b": 2, "c": 3, "d": 4}) == 6
    assert math.isnan(stability.kendall_tau(reference, {"a": 1, "b": 1, "c": 1, "d": 1}))
    assert stability.ranks({"a": 0.5, "b": 0.9, "c": 0.5}) == {"a": 2, "b": 1, "c": 2}
    with pytest.raises(ValueError, match="the rankings hold different agents"):
        stability.kendall_tau(reference, {"a": 1, "b": 2, "c": 3, "e": 4})


def test_bootstrap_interval_of_the_mean_tau():
    taus = [1.0, 0.6, 0.8, 1.0, 0.4, 0.8]
    interval = stability.bootstrap_mean(taus, 0.95, 500, seed=0)
    assert interval == stability.bootstrap_mean(taus, 0.95, 500, seed=0)
    assert interval["mean"] == pytest.approx(np.mean(taus)) and interval["n"] == 6
    assert interval["low"] < interval["mean"] < interval["high"]
    assert min(taus) <= interval["low"] and interval["high"] <= max(taus)
    assert stability.bootstrap_mean([1.0, 1.0, math.nan], 0.95, 500, 0) == {"mean": 1.0, "low": 1.0, "high": 1.0,
                                                                            "n": 2}


def toy_lineup(values, seeds):
    """Three agents whose order reverses when leave_mindset passes 5.2; satiation_rate does nothing."""
    flip = values.get("leave_mindset", 4.0) > 5.2
    scores = {"first": 3.0, "second": 2.0, "third": 1.0}
    return {name: -s if flip else s for name, s in scores.items()}


def test_sensitivity_ranks_the_parameter_that_drives_the_ranking_first():
    ranges = {"satiation_rate": DEFAULT_RANGES["satiation_rate"], "leave_mindset": DEFAULT_RANGES["leave_mindset"]}
    config = RobustnessConfig(agents=("first", "second", "third"), worlds=10, ranges=ranges, resamples=200)
    result = run_study(config, toy_lineup, {"satiation_rate": 0.5, "leave_mindset": 4.0})
    sweep = result["sensitivity"]["one_at_a_time"]
    assert [row["parameter"] for row in sweep] == ["leave_mindset", "satiation_rate"]
    assert (sweep[0]["tau_low"], sweep[0]["tau_high"], sweep[0]["effect"]) == pytest.approx((1.0, -1.0, 2.0))
    assert sweep[1]["effect"] == pytest.approx(0.0) and sweep[0]["swapped_high"] == 3
    correlation = result["sensitivity"]["rank_correlation"]
    assert list(correlation) == ["leave_mindset", "satiation_rate"]
    assert correlation["leave_mindset"] < -0.8 < correlation["satiation_rate"]
    # (8 - 5.2) / (8 - 1) = 4/10 of the leave_mindset range flips the ranking: by stratification, 4 of 10 worlds
    sampled = [w for w in result["worlds"] if w["kind"] == "sampled"]
    assert sum(w["tau"] == pytest.approx(-1.0) for w in sampled) == 4
    assert result["stability"]["tau"]["mean"] == pytest.approx((6 - 4) / 10)
    assert result["agents"]["first"]["best_rank"] == 1 and result["agents"]["first"]["worst_rank"] == 3
    assert result["seed_noise"] == {"worlds": 4, "tau": {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 4}}
    assert [(p["ahead"], p["behind"], p["kept_share"]) for p in result["pairs"]] == [
        ("first", "second", 0.6), ("first", "third", 0.6), ("second", "third", 0.6)]
    assert {p["kept_with_other_users"] for p in result["pairs"]} == {1.0}
    noise_seeds = [w["seeds"] for w in result["worlds"] if w["kind"] == "seed_noise"]
    assert noise_seeds == [[1], [2], [3], [4]]


def test_a_study_folder_taken_before_the_study_began_is_left_alone(tmp_path, capsys):
    """Two studies started in the same second share the default --out: the second study's
    folder goes next to the first, instead of mixing the two."""
    from recoworld.apps.robustness.studydir import StudyDirectory

    out = tmp_path / "12-00-00"
    first = StudyDirectory.create(out, {"study": 1}, {}, 3)
    status = (out / "status.json").read_text()
    second = StudyDirectory.create(out, {"study": 2}, {}, 3)
    assert (first.path, second.path) == (out, tmp_path / "12-00-00-2")
    assert (out / "status.json").read_text() == status, "the first study's folder is left as it was"
    assert json.loads((second.path / "status.json").read_text())["settings"] == {"study": 2}
    assert f"{out} appeared while the report was computed; the report went to {out}-2" in capsys.readouterr().err


def test_a_report_stopped_while_it_is_written_leaves_no_report_file(tmp_path, monkeypatch):
    """The three files are written beside their names and renamed together once all are
    written: a stop in between leaves none of them, and no temporary."""
    from recoworld.apps.robustness import report

    config = RobustnessConfig(agents=("first", "second", "third"), worlds=2, seed_noise=0, resamples=50,
                              ranges={"leave_mindset": DEFAULT_RANGES["leave_mindset"]})
    result = run_study(config, toy_lineup, {"leave_mindset": 4.0})
    (tmp_path / "status.json").write_text("{}")
    written = []

    def stopped(result):
        written.extend(sorted(p.name for p in tmp_path.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "markdown", stopped)
    with pytest.raises(KeyboardInterrupt):
        report.write(tmp_path, result)
    pid = os.getpid()
    assert written == [f".robustness.json.{pid}.tmp", f".worlds.csv.{pid}.tmp", "status.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


# ------------------------------------------------------------------ the simulated lineup and the command
def test_reward_per_step_and_the_logged_ctr_agree():
    small = dict(agents=("random", "most_popular"), users=8, steps=5)
    by_reward = Lineup(RobustnessConfig(**small), ["world=synthetic", "world.n_items=200"])
    by_ctr = Lineup(RobustnessConfig(**small, metric="ctr"), ["world=synthetic", "world.n_items=200"])
    values = {"leave_mindset": 8.0, "exposure_odds": 5.0}
    reward, ctr = by_reward(values, [0, 1]), by_ctr(values, [0, 1])
    slate_size = by_reward.cfg.env.slate_size
    assert reward == pytest.approx({name: slate_size * v for name, v in ctr.items()})
    assert reward == by_reward(values, [0, 1])  # same seeds, same users, same scores
    # the defaults a resumed study's added keys are compared with: the groups chosen, no value set
    default = by_reward.default_identity()
    identity = by_reward.identity()
    assert default["world"]["n_items"] != 200 == identity["world"]["n_items"]
    assert default["world"]["_target_"] == identity["world"]["_target_"]


def test_lineup_refuses_what_the_study_sets_and_other_simulators():
    config = RobustnessConfig(agents=("random", "most_popular"), users=4, steps=2)
    with pytest.raises(ValueError, match=r"'agent=oracle': the lineup is the study's agents setting"):
        Lineup(config, ["agent=oracle"])
    with pytest.raises(ValueError, match=r"'env.num_envs=9': the users served at once are the study's users"):
        Lineup(config, ["env.num_envs=9"])
    with pytest.raises(ValueError, match=r"metric='clicks'; choose reward_per_step or one of return_per_episode"):
        Lineup(RobustnessConfig(agents=("random", "most_popular"), metric="clicks"), ["world=synthetic"])
    with pytest.raises(ValueError, match="simulator recoworld.simulators.llm_user.LLMUsers does not take"):
        Lineup(config, ["world=synthetic", "simulator=llm"])


QUICK = ["--quick", "--users", "8", "--seed-noise", "2", "--agents", "random,most_popular,linucb", "--parameters",
         "exposure_odds,leave_mindset", "world=synthetic", "world.n_items=200"]


def test_quick_run_writes_the_report_folder(tmp_path, capsys):
    assert "robustness" in COMMANDS
    out = tmp_path / "report"
    assert cli_main(["robustness", *QUICK, "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left behind
    # The report's files, the scores, the status and the study's lock (an empty file).
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, ".status.json.lock", "scores", "status.json"])
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["worlds"], status["attempts"]) == ("complete", {"planned": 11, "finished": 11}, 1)
    assert len(list((out / "scores").iterdir())) == 11
    result = json.loads((out / "robustness.json").read_text())
    assert {"settings", "ranges", "default", "seed_noise", "stability", "agents", "pairs", "sensitivity", "worlds",
            "world"} <= set(result)
    assert "seconds" not in result and status["seconds"] > 0  # the wall time is the folder's, not the report's
    assert (result["settings"]["worlds"], result["settings"]["users"], result["settings"]["steps"]) == (4, 8, 10)
    assert list(result["ranges"]) == ["exposure_odds", "leave_mindset"]
    assert result["ranges"]["exposure_odds"]["configured"] == 1.0
    worlds = pd.read_csv(out / "worlds.csv")
    assert list(worlds["kind"]) == ["default", *["seed_noise"] * 2, *["sampled"] * 4, "low", "high", "low", "high"]
    assert {"tau", "exposure_odds", "leave_mindset", "score_linucb", "rank_random"} <= set(worlds.columns)
    assert worlds.loc[0, "tau"] == pytest.approx(1.0) and worlds.loc[0, "leave_mindset"] == 4.0
    assert set(result["agents"]) == {"random", "most_popular", "linucb"} and len(result["pairs"]) == 3
    assert len(result["sensitivity"]["one_at_a_time"]) == 2
    report = (out / "report.md").read_text()
    for heading in ("# Robustness of the agents' ranking", "## Agents", "## Pairs of agents",
                    "## Which parameters move the ranking", "## Ranges"):
        assert heading in report
    assert "Kendall tau against the configured world over 4 sampled worlds" in capsys.readouterr().out


def test_command_refuses_bad_settings_naming_them(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "report.md").write_text("an earlier study")
    cases = [
        (["--worlds", "1"], "worlds=1; the stability of a ranking needs at least 2 sampled worlds"),
        (["--range", "leave_mood=1:2"], "unknown parameter 'leave_mood'"),
        (["--range", "leave_mindset=5:2"], "range of leave_mindset is empty (low=5.0, high=2.0)"),
        (["--parameters", "gap_days"], "--parameters names 'gap_days', which has no range"),
        (["--out", str(tmp_path / "taken")], "already holds files (report.md); choose another --out or remove it"),
    ]
    for flags, message in cases:
        with pytest.raises(SystemExit) as exit_:
            cli_main(["robustness", *flags])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert cli_main(["robustness", "--show-ranges", "--parameters", "leave_mindset"]) == 0
    assert capsys.readouterr().out.startswith("leave_mindset:\n  low: 1.0\n  high: 8.0\n")
    assert cli_main(["robustness", "--quick", "--agents", "random,no_such_agent", "world=synthetic",
                     "--out", str(tmp_path / "x")]) == 2
    assert "no agent config 'no_such_agent'" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_ranges_file_replaces_the_default_ranges(tmp_path, capsys):
    ranges = tmp_path / "ranges.yaml"
    ranges.write_text("return_mindset: {low: 1, high: 12, why: mine}\ngap_days: {low: 0.5, high: 4, scale: log}\n")
    assert cli_main(["robustness", "--show-ranges", "--ranges", str(ranges)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("return_mindset:\n  low: 1\n  high: 12\n  scale: linear\n  why: mine\ngap_days:")
    ranges.write_text("- leave_mindset\n")
    with pytest.raises(SystemExit):
        cli_main(["robustness", "--show-ranges", "--ranges", str(ranges)])
    assert "holds list; it must map parameters to {low, high, scale, why}" in capsys.readouterr().err
    ranges.write_text("leave_mindset: {low: 1, high: 8\n")
    with pytest.raises(SystemExit):
        cli_main(["robustness", "--show-ranges", "--ranges", str(ranges)])
    assert f"--ranges {ranges} is not readable YAML (" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["robustness", "--show-ranges", "--ranges", str(tmp_path / "nowhere.yaml")])
    assert (f"--ranges {tmp_path / 'nowhere.yaml'}: no such file; write one with recoworld robustness --show-ranges"
            in capsys.readouterr().err)


def test_a_study_stopped_before_its_first_world_writes_nothing_and_says_so(tmp_path, capsys, monkeypatch):
    def interrupted(config, overrides):
        raise KeyboardInterrupt  # Ctrl-C while the lineup is built

    monkeypatch.setattr("recoworld.apps.robustness.lineup.Lineup", interrupted)
    out = tmp_path / "report"
    assert cli_main(["robustness", "--quick", "--out", str(out)]) == 130
    assert (f"recoworld robustness: stopped before the first world; nothing was written ({out} is as it was): "
            "run the study again") in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
