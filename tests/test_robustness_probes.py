"""``recoworld robustness`` on lineups and scores that cannot be ranked as they are: an
undefined score, a configured world that ties every agent, ties between two agents,
worlds without a tau; an integer range that cannot vary."""

from __future__ import annotations

import math

import pytest

from recoworld.apps.robustness import (
    DEFAULT_RANGES,
    ParameterRange,
    RobustnessConfig,
    report,
    run_study,
)

AGENTS = ("first", "second", "third")


def _config(**kwargs) -> RobustnessConfig:
    return RobustnessConfig(agents=AGENTS, worlds=4, resamples=100,
                            ranges={"leave_mindset": DEFAULT_RANGES["leave_mindset"]}, **kwargs)


def test_an_undefined_score_stops_the_study_naming_the_world_agent_and_fix():
    recorded = []

    def undefined_in_sampled_worlds(values, seeds):
        return {"first": 1.0, "second": math.nan if values else 0.5, "third": 0.0}

    # Before: NaN was ranked (sorting NaN is arbitrary) and the means dropped it silently.
    with pytest.raises(ValueError, match=r"evaluate's scores of world 5 \(sampled, leave_mindset=[0-9.]+\) give "
                                         r"second=nan; a ranking needs a number for every agent: rank by a metric "
                                         r"defined for every agent \(not reward_per_step\), or serve more users"):
        run_study(_config(), undefined_in_sampled_worlds, record=lambda i, w, s: recorded.append(i))
    assert recorded == [0, 1, 2, 3, 4], "the undefined scores are not recorded as a finished world"


def test_a_configured_world_that_ties_every_agent_is_refused_before_the_other_worlds():
    calls = []

    def all_alike(values, seeds):
        calls.append(values)
        return dict.fromkeys(AGENTS, 0.25)

    # Before: every tau was NaN, "same ranking in 100% of worlds" and every parameter's effect 2.
    with pytest.raises(ValueError, match=r"the configured world scores every agent alike \(reward_per_step = 0.25 "
                                         r"for first, second, third\): there is no ranking whose robustness to test"):
        run_study(_config(), all_alike)
    assert calls == [{}]


def test_a_pair_the_configured_world_ties_is_reported_tied():
    def two_tied(values, seeds):
        return {"first": 1.0, "second": 1.0, "third": 0.1 * values.get("leave_mindset", 4.0) / 8}

    result = run_study(_config(), two_tied)
    pair = next(p for p in result["pairs"] if {p["ahead"], p["behind"]} == {"first", "second"})
    # Before: "first ahead of second, margin 0.0000, kept in 0% of worlds".
    assert pair["tied"] and pair["kept_share"] == 1.0 and pair["kept_with_other_users"] == 1.0
    assert not next(p for p in result["pairs"] if p["behind"] == "third")["tied"]
    rows = report._markdown_table(report.pairs_table(result)).splitlines()
    assert any(row.startswith("| first | second | tied | 100% |") for row in rows)


def test_agents_tied_on_top_of_the_configured_world_are_all_named():
    def tie_broken_by_mindset(values, seeds):
        """first and second tie on top, except at a low mindset (first leads) or a high one (second does)."""
        mindset = values.get("leave_mindset", 4.0)
        return {"first": 1.0 + (mindset <= 2), "second": 1.0 + (mindset > 5), "third": 0.1}

    result = run_study(_config(seed_noise=0, one_at_a_time=False), tie_broken_by_mindset)
    mindsets = [w["values"]["leave_mindset"] for w in result["worlds"] if w["kind"] == "sampled"]
    tied = [2 < m <= 5 for m in mindsets]
    assert 0 < sum(tied) and any(m <= 2 for m in mindsets) and any(m > 5 for m in mindsets)
    # Before: "first on top in 50%": the first of the tied agents named alone, and on top
    # where it led alone as where the tie held.
    assert f"first and second (tied) on top in {sum(tied) / len(tied):.0%}." in report.summary_line(result)


def test_worlds_without_a_tau_are_counted_and_a_tie_is_not_the_same_ranking():
    def tied_at_high_mindset(values, seeds):
        if values.get("leave_mindset", 4.0) > 5:
            return dict.fromkeys(AGENTS, 0.5)
        if values:
            return {"first": 1.0, "second": 0.5, "third": 0.5}
        return {"first": 1.0, "second": 0.5, "third": 0.0}

    result = run_study(_config(seed_noise=0, one_at_a_time=False), tied_at_high_mindset)
    sampled = [w for w in result["worlds"] if w["kind"] == "sampled"]
    undefined = sum(math.isnan(w["tau"]) for w in sampled)
    assert 0 < undefined < len(sampled)
    line = report.summary_line(result)
    # Before: "over 2 sampled worlds" for 4 drawn, and "same ranking in 100% of worlds" for worlds that tie agents.
    assert f"over {4 - undefined} of 4 sampled worlds ({undefined} scored every agent alike: no tau)" in line
    assert result["stability"]["same_ranking_share"] == 0.0
    assert "same ranking in 0% of worlds" in line


def test_the_report_says_whether_tau_is_within_the_seed_noise():
    def steady(values, seeds):
        return {"first": 1.0, "second": 0.5, "third": 0.1 * seeds[0]}

    within = run_study(_config(), steady)
    assert report.noise_verdict(within).startswith("Within noise: the sampled worlds' mean tau +1.000 is at or "
                                                   "above the lower end")

    def reversed_by_mindset(values, seeds):
        flip = values.get("leave_mindset", 4.0) > 2
        return {"first": 0.0 if values and flip else 1.0, "second": 0.5, "third": 1.0 if values and flip else 0.0}

    beyond = run_study(_config(), reversed_by_mindset)
    assert report.noise_verdict(beyond).startswith("Beyond noise: the sampled worlds' mean tau")
    assert report.noise_verdict(run_study(_config(seed_noise=0), steady)).startswith("No seed-noise worlds")
    assert "Score: reward_per_step, the env's reward per user-step" in report.markdown(within)


def test_an_integer_range_that_rounds_to_one_value_is_refused():
    with pytest.raises(ValueError, match=r"range of instruction_steps is \[1.2, 1.4\], but instruction_steps is an "
                                         r"integer and every value in it rounds to 1: no world would differ"):
        ParameterRange(1.2, 1.4).check("instruction_steps")
    ParameterRange(1, 3).check("instruction_steps")


def test_return_per_episode_with_steps_below_max_steps_names_the_steps_to_give(tmp_path, capsys):
    from recoworld.apps import cli

    # Before: "e.g. no session ended; run more steps", which named neither cause nor number.
    assert cli.main(["robustness", "--quick", "--metric", "return_per_episode", "--agents", "random,oracle",
                     "--out", str(tmp_path / "out"), "world=synthetic"]) != 0
    assert ("metric return_per_episode is undefined for agent random (seed 0, 16 users, 10 steps): --steps 10 is "
            "below the env's max_steps (100), which cuts first episodes; give --steps 100 or more, or rank by "
            "another metric") in capsys.readouterr().err
