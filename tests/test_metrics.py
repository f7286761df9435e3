"""Metrics on tiny hand-made logs whose answers are worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from recoworld import metrics


def hand_log() -> pd.DataFrame:
    """Two user slots of one seed.

    Slot 0, episode 0: session 0 (2 steps, the user returns), session 1 (1 step, churns).
    Slot 0, episode 1: one step, cut by the end of the rollout (incomplete).
    Slot 1, episode 0: one step, truncated by max_steps mid-session (complete episode,
    incomplete session).
    """
    rows = [
        # user, episode, session, reward, clicked, watch, left, returned, churned, terminated, truncated
        (0, 0, 0, 1.0, [1, 0], [0.5, 0.0], False, False, False, False, False),
        (0, 0, 0, 0.0, [0, 0], [0.0, 0.0], True, True, False, False, False),
        (0, 0, 1, 2.0, [1, 1], [1.0, 0.25], True, False, True, True, False),
        (0, 1, 0, 1.0, [1, 0], [0.2, 0.0], False, False, False, False, False),
        (1, 0, 0, 3.0, [1, 1], [0.5, 0.5], False, False, False, False, True),
    ]
    columns = ["user", "episode", "session", "reward", "clicked", "watch_fraction", "left_session", "returned",
               "churned", "terminated", "truncated"]
    log = pd.DataFrame(rows, columns=columns)
    log["seed"] = 0
    log["step"] = [0, 1, 2, 0, 0]
    log["rollout_step"] = [0, 1, 2, 4, 0]  # slot 0's second user after its autoreset step
    log["clicked"] = [np.array(c, dtype=bool) for c in log["clicked"]]
    log["watch_fraction"] = [np.array(w, dtype=np.float32) for w in log["watch_fraction"]]
    log["slate"] = [np.array(s) for s in ([0, 1], [1, 2], [0, 2], [0, 1], [3, 0])]
    log["instruction_in_force"] = [False, True, True, False, False]
    log["compliance"] = [np.nan, 0.5, 1.0, np.nan, np.nan]
    return log


def test_episode_table_sums_rewards_and_marks_episodes_that_ended():
    table = metrics.episode_table(hand_log())
    assert table[["user", "episode"]].values.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert table["return"].tolist() == [3.0, 1.0, 3.0]
    assert table["steps"].tolist() == [3, 1, 1]
    assert table["completed"].tolist() == [True, False, True]


def test_session_table_counts_steps_watch_time_and_how_sessions_ended():
    table = metrics.session_table(hand_log())
    assert table[["user", "episode", "session"]].values.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert table["steps"].tolist() == [2, 1, 1, 1]
    assert table["watch_time"].tolist() == pytest.approx([0.5, 1.25, 0.2, 1.0])
    assert table["completed"].tolist() == [True, True, False, False]
    assert table["returned"].tolist() == [True, False, False, False]
    assert table["churned"].tolist() == [False, True, False, False]


def test_run_metrics_counts_only_completed_episodes_and_sessions():
    features = np.eye(4)
    popularity = np.array([0.5, 0.25, 0.125, 0.125])
    result = metrics.run_metrics(hand_log(), features, popularity)
    assert set(result) == set(metrics.METRICS)
    assert result["return_per_episode"] == pytest.approx(3.0)  # (3 + 3) / 2; the cut episode is left out
    assert result["ctr"] == pytest.approx(6 / 10)
    assert result["watch_time"] == pytest.approx((0.5 + 1.25) / 2)
    assert result["session_length"] == pytest.approx(1.5)
    assert result["return_rate"] == pytest.approx(0.5)
    assert result["compliance"] == pytest.approx(0.75)
    assert result["coverage"] == pytest.approx(1.0)
    assert result["diversity"] == pytest.approx(1.0)  # orthogonal features: every pair is at distance 1
    assert result["novelty"] == pytest.approx(np.mean([1, 2, 2, 3, 1, 3, 1, 2, 3, 1]))


def test_click_through_rate_is_clicks_per_item_shown():
    assert metrics.click_through_rate(np.array([[1, 0], [0, 0]], dtype=bool)) == 0.25


def test_return_rate_is_the_share_of_session_ends_followed_by_a_return():
    left = np.array([True, False, True, True])
    returned = np.array([True, False, False, True])
    assert metrics.return_rate(left, returned) == pytest.approx(2 / 3)
    assert math.isnan(metrics.return_rate(np.zeros(3, bool), np.zeros(3, bool)))


def test_instruction_compliance_averages_steps_with_an_instruction_in_force_only():
    compliance = np.array([0.5, 0.0, 1.0, np.nan])
    in_force = np.array([True, False, True, False])
    assert metrics.instruction_compliance(compliance, in_force) == pytest.approx(0.75)
    assert math.isnan(metrics.instruction_compliance(compliance, np.zeros(4, bool)))


def test_catalog_coverage_is_the_share_of_items_ever_shown():
    assert metrics.catalog_coverage(np.array([[0, 1], [1, 2]]), n_items=10) == pytest.approx(0.3)


def test_intra_slate_diversity_is_the_mean_pairwise_cosine_distance():
    # Item 2 lies at 45 degrees between items 0 and 1; norms must not matter.
    features = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    d02 = 1 - math.cos(math.pi / 4)
    assert metrics.intra_slate_diversity(np.array([[0, 1]]), features) == pytest.approx(1.0)
    assert metrics.intra_slate_diversity(np.array([[0, 1], [0, 2]]), features) == pytest.approx((1 + d02) / 2)
    assert metrics.intra_slate_diversity(np.array([[0, 1, 2]]), features) == pytest.approx((1 + 2 * d02) / 3)
    assert math.isnan(metrics.intra_slate_diversity(np.array([[0], [1]]), features))


def test_intra_slate_diversity_counts_an_item_without_features_as_dissimilar_to_all():
    # A catalog may hold an all-zero feature row (numeric columns all 0): its cosine with any
    # item is taken as 0, so each of its pairs is at distance 1 — and the other pairs unchanged.
    features = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    d01 = 1 - math.cos(math.pi / 4)
    assert metrics.intra_slate_diversity(np.array([[0, 1, 2]]), features) == pytest.approx((d01 + 1 + 1) / 3)
    assert metrics.intra_slate_diversity(np.array([[2, 2]]), features) == pytest.approx(1.0)


def test_novelty_is_the_mean_self_information_of_shown_items():
    popularity = np.array([0.5, 0.25, 0.25])
    assert metrics.novelty(np.array([[0, 1]]), popularity) == pytest.approx(1.5)


def test_retention_curve_is_kaplan_meier_over_sessions():
    # Four users end session 0 (one churns), the three who returned end session 1 (one
    # churns); one of the two left ends session 2 and churns, the other is censored.
    session = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    churned = np.array([True, False, False, False, True, False, False, True])
    curve = metrics.retention_curve(session, churned)
    assert curve.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert metrics.retention_curve(np.array([], dtype=int), np.array([], dtype=bool)).tolist() == [1.0]


def test_mean_interval_is_a_student_t_interval():
    interval = metrics.mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    assert (interval.mean, interval.n) == (2.0, 3)
    assert (interval.low, interval.high) == pytest.approx((2 - half, 2 + half))
    single = metrics.mean_interval([5.0, math.nan])
    assert single.mean == 5.0 and math.isnan(single.low) and single.n == 1


def test_summarize_gives_interval_and_per_seed_values_per_agent():
    first, second = hand_log(), hand_log()
    second["seed"] = 1
    second["reward"] = second["reward"] * 2
    log = pd.concat([first, second], ignore_index=True).assign(agent="a")
    summary = metrics.summarize(log, np.eye(4), np.array([0.5, 0.25, 0.125, 0.125]))
    returns = summary["a"]["metrics"]["return_per_episode"]
    assert returns["per_seed"] == pytest.approx([3.0, 6.0])
    assert returns["mean"] == pytest.approx(4.5)
    assert returns["ci_low"] < 4.5 < returns["ci_high"]
    assert summary["a"]["seeds"] == [0, 1]
    assert summary["a"]["retention"] == pytest.approx([1.0, 1.0, 0.0])  # returns after session 0, churns after 1
    assert summary["a"]["retention_at_risk"] == [2, 2]
    assert summary["a"]["episodes"] == {"completed": 4, "all": 6}


def test_summarize_refuses_a_log_whose_rows_were_logged_twice():
    log = hand_log().assign(agent="a")
    twice = pd.concat([log, log.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"agent 'a'.*seed 0, user 0, episode 1, step 0 more than once.*"
                                         r"repeated in experiment.seeds"):
        metrics.summarize(twice, np.eye(4), np.array([0.5, 0.25, 0.125, 0.125]))


def test_every_run_metric_has_a_title_in_the_summary():
    from recoworld.apps.run.report import TITLES
    from recoworld.metrics import METRICS

    assert set(METRICS) <= set(TITLES), f"metrics without a summary title: {sorted(set(METRICS) - set(TITLES))}"
