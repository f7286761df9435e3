"""``recoworld robustness`` and ``recoworld fidelity`` as commands: flags refused before any
work, and report files that agree with themselves."""

from __future__ import annotations

import json
import math

import pytest

from recoworld.apps.cli import main as cli_main
from recoworld.apps.robustness import DEFAULT_RANGES, RobustnessConfig, report, run_study

AGENTS = ("first", "second", "third")


# ------------------------------------------------------------------ robustness
def test_a_negative_seed_is_refused_before_the_study_folder_is_made(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"seeds lists -1; a seed is an integer >= 0"):
        RobustnessConfig(seeds=(0, -1)).check()
    with pytest.raises(ValueError, match=r"sample_seed=-2; the seed of the draw of the worlds is an integer >= 0"):
        RobustnessConfig(sample_seed=-2).check()
    # Before: NumPy's "expected non-negative integer", once the lineup was built, and a folder left "failed".
    for flag, message in (("--seeds=-1", "seeds lists -1; a seed is an integer >= 0"),
                          ("--sample-seed=-1", "sample_seed=-1; the seed of the draw of the worlds is an integer")):
        out = tmp_path / "study"
        with pytest.raises(SystemExit) as exit_:
            cli_main(["robustness", "--quick", flag, "world=synthetic", "--out", str(out)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
        assert not out.exists()


def test_a_range_that_parameters_leaves_out_is_refused_not_dropped(capsys):
    # Before: the --range of a parameter --parameters leaves out was dropped without a word.
    with pytest.raises(SystemExit):
        cli_main(["robustness", "--show-ranges", "--range", "leave_boredom=1:3", "--parameters", "leave_mindset"])
    assert ("--range sets leave_boredom, but --parameters leave_mindset leaves it out; add leave_boredom to "
            "--parameters, or drop that --range") in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a misspelt name is named as such
        cli_main(["robustness", "--show-ranges", "--range", "leave_mindest=1:8", "--parameters", "leave_mindset"])
    assert "unknown parameter 'leave_mindest' (did you mean 'leave_mindset'?)" in capsys.readouterr().err
    # The README's command: a range set for a parameter the study varies.
    assert cli_main(["robustness", "--show-ranges", "--parameters", "leave_mindset,return_mindset",
                     "--range", "return_mindset=1:12"]) == 0
    assert "return_mindset:\n  low: 1.0\n  high: 12.0\n" in capsys.readouterr().out


def test_the_report_counts_every_drawn_world_also_those_without_a_tau(tmp_path):
    def tied_at_high_mindset(values, seeds):
        if values.get("leave_mindset", 4.0) > 5:
            return dict.fromkeys(AGENTS, 0.5)
        return {"first": 1.0, "second": 0.5, "third": 0.0}

    config = RobustnessConfig(agents=AGENTS, worlds=4, resamples=100, seed_noise=0, one_at_a_time=False,
                              ranges={"leave_mindset": DEFAULT_RANGES["leave_mindset"]})
    result = run_study(config, tied_at_high_mindset)
    with_tau = result["stability"]["tau"]["n"]
    assert result["stability"]["worlds"] == 4 and 0 < with_tau < 4
    # The rank columns read every drawn world: their count is the settings' K, not the worlds with a tau.
    ranks = [w["ranks"]["first"] for w in result["worlds"] if w["kind"] == "sampled"]
    assert result["agents"]["first"]["mean_rank"] == pytest.approx(sum(ranks) / 4)
    text = report.markdown(result)
    # Before: "in 2 worlds drawn by lhs" and "Ranking by ... across 2 sampled worlds" for 4 drawn.
    assert "in the configured world and in 4 worlds drawn by lhs (seed 0)" in text
    assert report.agents_table(result).title == "Ranking by reward_per_step across 4 sampled worlds"
    assert f"over {with_tau} of 4 sampled worlds ({4 - with_tau} scored every agent alike: no tau)" in text
    assert f"Spearman(parameter, tau), {with_tau} worlds" in text  # a correlation reads the worlds with a tau


def test_the_markdown_tables_hold_the_json_numbers(tmp_path):
    def steady(values, seeds):
        mindset = values.get("leave_mindset", 4.0)
        return {"first": 1.0 + 0.01 * seeds[0], "second": 0.5 + 0.1 * mindset, "third": 0.8}

    config = RobustnessConfig(agents=AGENTS, worlds=6, resamples=200,
                              ranges={"leave_mindset": DEFAULT_RANGES["leave_mindset"]})
    report.write(tmp_path, run_study(config, steady, {"leave_mindset": 4.0}), console=report.wide_console())
    result = json.loads((tmp_path / "robustness.json").read_text())
    text = (tmp_path / "report.md").read_text()
    tau = result["stability"]["tau"]
    assert f": {tau['mean']:+.3f} [{tau['low']:+.3f}, {tau['high']:+.3f}] (95% bootstrap)" in text
    for name, a in result["agents"].items():
        assert (f"| {name} | {a['default_score']:.4f} | {a['default_rank']} | {a['mean_rank']:.2f} | "
                f"{a['best_rank']}-{a['worst_rank']} | {a['kept_rank_share']:.0%} |") in text
    for row in result["sensitivity"]["one_at_a_time"]:
        assert f"| {row['tau_low']:+.3f} | {row['tau_high']:+.3f} | {row['effect']:+.3f} |" in text


# ------------------------------------------------------------------ fidelity
def test_fidelity_refuses_a_negative_seed_before_any_work(tmp_path, capsys):
    from recoworld.apps.fidelity.report import main

    # Before: accepted, then NumPy's "expected non-negative integer" as a traceback minutes in.
    with pytest.raises(SystemExit) as exit_:
        main(["--seed", "-1", "--out", str(tmp_path / "report"), "--world", str(tmp_path / "no-world")])
    assert exit_.value.code == 2 and "--seed -1; give an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


class _KeptFigures:
    """``matplotlib.pyplot`` whose figures stay open, so that a test reads what was drawn."""

    def __init__(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt, self.axes = plt, []

    def subplots(self, *args, **kwargs):
        fig, axes = self.plt.subplots(*args, **kwargs)
        self.axes += list(axes.flat)
        return fig, axes

    def close(self, fig):
        pass


def test_calibration_plot_titles_name_the_log_s_rows(tmp_path):
    from recoworld.apps.fidelity.page import plot_calibration

    point = {"predicted": 0.5, "observed": {"value": 0.5, "low": 0.4, "high": 0.6}}
    splits = {kind: {"models": {"calibrated user": {"calibration": {"curve": [point]}}}}
              for kind in ("latest", "time", "users")}
    plt = _KeptFigures()
    plot_calibration(plt, splits, tmp_path, "interactions")
    # Before: "each user's latest {noun}", the template's placeholder, on the plot.
    assert [ax.get_title() for ax in plt.axes] == [
        "each user's latest interactions", "a global time cut", "held-out users (folded in on their early "
                                                                 "interactions)"]
    plt.plt.close("all")


def test_the_policy_ranking_names_tau_b_and_an_undefined_tau(tmp_path):
    from recoworld.apps.fidelity.page import headline, ranking_section

    ranking = {"replay_rounds": 40, "settings": {"num_candidates": 20, "slate_size": 5}, "chance_ctr": 0.05,
               "kendall_tau": math.nan, "p_value": math.nan,
               "agents": {n: {"simulator_ctr": 0.1, "simulator_rank": i + 1, "replay_ctr": 0.2, "replay_rank": i + 1}
                          for i, n in enumerate(("random", "most_popular"))}}
    section = "\n".join(ranking_section(ranking))
    # Before: "Kendall's tau between the rankings: **nan** (p = nan)".
    assert "Kendall's tau-b between the rankings" in section and "**n/a** (p = n/a)" in section
    results = {"models": {"calibrated user": {"auc": 0.9, **{f"1:{m}": {"f1": 0.5} for m in (1, 3, 9)}}},
               "ratings": None, "policy_ranking": ranking}
    assert headline(results)[-1] == "| Kendall tau-b, policy ranking | n/a |"


def test_one_value_has_no_bootstrap_interval_and_one_seed_noise_world_is_refused():
    from recoworld.apps.robustness import stability

    # Before: [0.6, 0.6], a "95% interval" of width 0 read off one world.
    one = stability.bootstrap_mean([0.6, math.nan], 0.95, 200, seed=0)
    assert (one["mean"], one["n"]) == (0.6, 1) and math.isnan(one["low"]) and math.isnan(one["high"])
    assert stability.bootstrap_mean([0.6, 0.6], 0.95, 200, seed=0) == {"mean": 0.6, "low": 0.6, "high": 0.6, "n": 2}
    # Before: the noise floor was that one world's tau, and the verdict read it as an interval's lower end.
    with pytest.raises(ValueError, match=r"seed_noise=1; one world with other users has no spread to read as a "
                                         r"noise floor .*: give 2 or more, or 0 for none"):
        RobustnessConfig(seed_noise=1).check()
