"""Return per episode, watch time, session length and returns.png count whole lives: on a
synthetic log whose long lives and long sessions earn more, and whose rollout cuts some of
them, the means are the population's, worked out from how the log was made."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from recoworld import metrics
from recoworld.apps.run import report

MAX_STEPS = 6
# Two kinds of user, drawn half and half. A short life: one session of one slate, watch 0.2,
# then churn. A long life (env.max_steps of them): two sessions of three slates, watch 1.0
# each slate, the user returning after the first and churning after the second. Reward 1 a slate.
SHORT = [(0.2, "churn")]
LONG = [(1.0, None), (1.0, None), (1.0, "return"), (1.0, None), (1.0, None), (1.0, "churn")]
# The population's means, whatever the rollout: per life, and per session users end (a
# session's mean over an unending rollout is a life's total over a life's session count).
TRUE_RETURN = (len(SHORT) + len(LONG)) / 2
TRUE_WATCH_TIME = (0.2 + 6 * 1.0) / (1 + 2)
TRUE_SESSION_LENGTH = (1 + 6) / (1 + 2)
# Every sequence of five lives, one user slot each, then short lives to the rollout's end:
# whether a slot's k-th life starts by step steps - MAX_STEPS depends on its k earlier lives
# only, and among the slots that share them the k-th is short in half and long in half. (A
# sixth life starts at step 10 at the earliest, after every steps - MAX_STEPS tested here.)
SLOTS = [list(kinds) for kinds in itertools.product((SHORT, LONG), repeat=5)]


def lives_log(steps: int, seeds=(0,)) -> pd.DataFrame:
    """The log of a rollout of ``steps`` steps over :data:`SLOTS`, as the runner writes it:
    a slot's next life starts after an autoreset step (no row), and the rollout's end cuts
    the lives still going."""
    rows = []
    for user, kinds in enumerate(SLOTS):
        t, episode = 0, 0
        while t < steps:
            life = kinds[episode] if episode < len(kinds) else SHORT
            session, session_step = 0, 0
            for step, (watch, end) in enumerate(life[: steps - t]):
                rows.append({"user": user, "episode": episode, "step": step, "rollout_step": t + step,
                             "session": session, "session_step": session_step, "reward": 1.0,
                             "clicked": np.array([True, False]), "watch_fraction": np.array([watch, 0.0], np.float32),
                             "slate": np.array([0, 1]), "left_session": end is not None,
                             "returned": end == "return", "churned": end == "churn", "terminated": end == "churn",
                             "truncated": False, "instruction_in_force": False, "compliance": np.nan})
                session, session_step = (session + 1, 0) if end else (session, session_step + 1)
            t, episode = t + len(life) + 1, episode + 1
    log = pd.DataFrame(rows)
    return pd.concat([log.assign(seed=seed, agent="a") for seed in seeds], ignore_index=True)


def run_metrics(log, max_steps=MAX_STEPS):
    return metrics.run_metrics(log, np.eye(2), np.array([0.5, 0.5]), max_steps)


def test_means_over_ended_lives_and_sessions_lean_short_on_this_log():
    # What the metrics counted before: the lives and sessions that happened to end in the log.
    log = lives_log(steps=12)
    episodes, sessions = metrics.episode_table(log), metrics.session_table(log)
    ended = sessions[sessions["completed"]]
    assert episodes.loc[episodes["completed"], "return"].mean() < TRUE_RETURN
    assert ended["watch_time"].mean() < TRUE_WATCH_TIME
    assert ended["steps"].mean() < TRUE_SESSION_LENGTH


def test_whole_lives_are_those_that_started_by_steps_minus_max_steps():
    log = lives_log(steps=12)
    lives = metrics.whole_lives(metrics.episode_table(log), MAX_STEPS)
    assert lives["completed"].all()
    assert lives["start"].max() == 12 - MAX_STEPS
    started = log[log["step"] == 0]
    assert sorted(map(tuple, lives[["user", "episode"]].values)) == \
        sorted(map(tuple, started.loc[started["rollout_step"] <= 12 - MAX_STEPS, ["user", "episode"]].values))
    assert len(lives) > len(SLOTS)  # later users too, not only each slot's first


@pytest.mark.parametrize("steps", [MAX_STEPS, 12, 15])
def test_return_watch_time_and_session_length_are_the_populations_means(steps):
    result = run_metrics(lives_log(steps))
    assert result["return_per_episode"] == pytest.approx(TRUE_RETURN)
    assert result["watch_time"] == pytest.approx(TRUE_WATCH_TIME)
    assert result["session_length"] == pytest.approx(TRUE_SESSION_LENGTH)


def test_without_max_steps_the_first_users_are_counted_and_are_fair_too():
    result = run_metrics(lives_log(steps=12), max_steps=None)
    assert (result["return_per_episode"], result["watch_time"], result["session_length"]) == \
        pytest.approx((TRUE_RETURN, TRUE_WATCH_TIME, TRUE_SESSION_LENGTH))


def test_a_rollout_shorter_than_max_steps_that_cut_a_first_user_leaves_them_undefined():
    result = run_metrics(lives_log(steps=MAX_STEPS - 1))  # every long first life is cut
    assert all(math.isnan(result[name]) for name in ("return_per_episode", "watch_time", "session_length"))
    assert result["ctr"] == pytest.approx(0.5)  # the step metrics stay defined
    summary = metrics.summarize(lives_log(steps=MAX_STEPS - 1), np.eye(2), np.array([0.5, 0.5]), max_steps=MAX_STEPS)
    assert summary["a"]["metrics"]["watch_time"]["per_seed"] == [None]


def test_a_max_steps_below_the_envs_is_refused_naming_the_life_that_outlived_it():
    with pytest.raises(ValueError, match=r"seed 0, user \d+, episode \d+ started at rollout step \d+ and had not ended "
                                         r"after \d+ steps, at the rollout's last step 11: longer than max_steps=3; "
                                         r"give the env.max_steps the rollout ran with"):
        run_metrics(lives_log(steps=12), max_steps=3)
    with pytest.raises(ValueError, match=r"max_steps=0; give the env's env.max_steps, at least 1"):
        run_metrics(lives_log(steps=12), max_steps=0)


def test_returns_png_draws_each_index_over_whole_lives_only(tmp_path):
    log = lives_log(steps=12, seeds=(0, 1))
    # The user of index k starts by step 6 only after k short lives: indices 0..3, each fair.
    points = report.returns_by_index(log, MAX_STEPS, min_episodes=1)["a"]
    assert points["episode"].tolist() == [0, 1, 2, 3]
    assert points["mean"].tolist() == pytest.approx([TRUE_RETURN] * 4)
    # 32 first users, 16 second ones, 8 third ones: the default min_episodes=10 stops at index 1.
    assert report.returns_by_index(log, MAX_STEPS)["a"]["episode"].tolist() == [0, 1]
    report.plot_returns(log, tmp_path / "returns.png", MAX_STEPS, min_episodes=1)
    assert (tmp_path / "returns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("metric", ["watch_time", "session_length"])
def test_a_robustness_study_ranking_on_sessions_names_the_steps_they_need(tmp_path, capsys, metric):
    from recoworld.apps import cli

    assert cli.main(["robustness", "--quick", "--metric", metric, "--agents", "random,oracle",
                     "--out", str(tmp_path / "out"), "world=synthetic"]) != 0
    assert (f"metric {metric} is undefined for agent random (seed 0, 16 users, 10 steps): --steps 10 is below the "
            "env's max_steps (100), which cuts first episodes; give --steps 100 or more, or rank by another "
            "metric") in capsys.readouterr().err


def summary_with(watch_per_seed, max_steps=100):
    """A metrics.json of a 10-step run of one agent whose metrics are all 1.0 but watch time, per seed as given."""
    defined = [v for v in watch_per_seed if v is not None]
    cell = {"mean": 1.0, "ci_low": None, "ci_high": None, "per_seed": [1.0] * len(watch_per_seed)}
    watch = {"mean": (sum(defined) / len(defined)) if defined else None, "ci_low": None, "ci_high": None,
             "per_seed": list(watch_per_seed)}
    return {"world": {"name": "w"}, "num_envs": 4, "steps": 10, "max_steps": max_steps,
            "seeds": list(range(len(watch_per_seed))),
            "agents": {"a": {"metrics": {name: watch if name == "watch_time" else cell for name in metrics.METRICS}}}}


def printed_summary(metrics_json) -> str:
    from rich.console import Console

    console = Console(record=True, width=400)
    report.print_summary(metrics_json, console)
    return console.export_text()


def test_the_summary_says_why_a_whole_life_metric_is_undefined():
    assert ("(watch time per session: '-' or 'k of N seeds' where a seed has no value; these count whole lives "
            "(recoworld.metrics.whole_lives), and a seed's first users did not all end within its 10 steps: give "
            "experiment.steps at least env.max_steps (100))") in printed_summary(summary_with([None, 2.0]))
    # Long enough for whole lives, yet none of their sessions ended by a user: not the steps' fault.
    assert ("(watch time per session: '-' or 'k of N seeds' where a seed has no value; no user ended a session "
            "within the whole lives of the rollout (recoworld.metrics.whole_lives), e.g. every one was cut by "
            "env.max_steps first: run more steps, or raise env.max_steps)") in printed_summary(
        summary_with([None, 2.0], max_steps=5))
    assert "whole lives" not in printed_summary(summary_with([2.0, 2.0]))


def test_the_rollout_s_steps_fix_the_bound_whatever_the_log_s_last_row():
    # One slot whose lives fill the rollout but for its last step (an autoreset step is not
    # logged): read from the log, the bound would move a step earlier.
    episodes = pd.DataFrame({"seed": 0, "user": 0, "episode": [0, 1, 2], "return": [1.0, 2.0, 3.0],
                             "steps": [3, 3, 2], "start": [0, 4, 8], "completed": True})
    assert metrics.whole_lives(episodes, max_steps=3)["episode"].tolist() == [0, 1]
    assert metrics.whole_lives(episodes, max_steps=3, steps=11)["episode"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"^the log holds rollout step 9, beyond steps=9; give the experiment.steps "
                                         r"the rollout ran with$"):
        metrics.whole_lives(episodes, max_steps=3, steps=9)
