"""Session dynamics against held-out users (``recoworld.apps.fidelity.sessions``): the
statistics on hand-made ratings, the distances and their half-split noise, the
Kaplan–Meier quantiles of the leave fit, the simulated lives, and the report section."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.calibrate import dynamics
from recoworld.apps.fidelity.sessions import (
    STATISTICS,
    compare,
    distances,
    session_table,
)
from recoworld.calibration.split import DAY

MINUTE = 60


def test_session_table_on_hand_made_ratings():
    # Items 0 and 1 share genre 0; item 2 has genre 1 only; item 3 has genres 0 and 1.
    genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    ratings = pd.DataFrame({
        "user_id": [0, 0, 0, 0, 0, 1, 1],
        "item_id": [0, 1, 2, 3, 2, 2, 0],
        "rating": [5, 3, 4, 0, 2, 1, 1],
        # user 0: a session of 3 (minutes 0, 10, 35: pauses of 10 and 25 minutes), then one
        # of 2 two days later; user 1: two sessions of 1, an hour apart.
        "timestamp": [0, 10 * MINUTE, 35 * MINUTE, 2 * DAY, 2 * DAY + 60, 0, 60 * MINUTE],
    })
    table = session_table(ratings, genres)
    assert table["user_id"].tolist() == [0, 0, 1, 1]
    assert table["length"].tolist() == [3, 2, 1, 1]
    assert table["first"].tolist() == [True, False, True, False]
    assert STATISTICS["first_session_length"].of(table).tolist() == [3, 1]
    assert STATISTICS["return_session_length"].of(table).tolist() == [2, 1]
    gaps = table["next_gap_days"].to_numpy()
    assert gaps[0] == pytest.approx((2 * DAY - 35 * MINUTE) / DAY)
    assert gaps[2] == pytest.approx(1 / 24) and np.isnan(gaps[1]) and np.isnan(gaps[3])
    assert STATISTICS["first_gap_days"].of(table).tolist() == pytest.approx([gaps[0], gaps[2]])
    assert STATISTICS["return_gap_days"].of(table).tolist() == []  # no later session is followed by another
    # Pairs 0-1 (genre 0: shared), 1-2 (none); 3-2 (genre 1: shared); none across sessions.
    assert table["pairs"].tolist() == [2, 1, 0, 0]
    assert table["same_genre"].tolist() == [1, 1, 0, 0]
    # A rating of 0 is an unrated click: left out of the mean.
    assert table["mean_rating"].tolist() == [4.0, 2.0, 1.0, 1.0]
    assert STATISTICS["genre_repetition"].of(table).tolist() == [0.5, 1.0]
    assert STATISTICS["gap_days"].of(table).tolist() == pytest.approx([gaps[0], gaps[2]])


def _sessions(n_users: int, mean_length: float, seed: int) -> pd.DataFrame:
    """A session table of ``n_users`` users with 1-5 sessions each, geometric lengths,
    exponential gaps and genre shares."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), rng.integers(1, 6, n_users))
    n = len(user)
    pairs = rng.geometric(1 / mean_length, n) - 1
    return pd.DataFrame({"user_id": user, "first": np.r_[True, user[1:] != user[:-1]], "length": pairs + 1, "next_gap_days": rng.exponential(5.0 * mean_length, n),
                         "mean_rating": rng.uniform(1, 5, n), "pairs": pairs,
                         "same_genre": rng.binomial(pairs, 0.5)})


def test_distances_are_zero_for_identical_samples_and_grow_with_a_shift():
    table = _sessions(200, 10.0, seed=0)
    for statistic in STATISTICS.values():
        assert all(d == 0 for d in distances(statistic, table, table).values())
    length = STATISTICS["session_length"]
    shifted = [distances(length, table, table.assign(length=table["length"] + shift)) for shift in (1, 5, 20)]
    assert [d["wasserstein"] for d in shifted] == pytest.approx([1, 5, 20])
    assert shifted[0]["ks"] < shifted[1]["ks"] < shifted[2]["ks"] <= 1


def test_half_split_noise_is_comparable_with_the_distance_between_samples_of_one_law():
    held_out = _sessions(300, 10.0, seed=1)
    same_law = compare(held_out, _sessions(300, 10.0, seed=2), draws=40, seed=0)
    other_law = compare(held_out, _sessions(300, 20.0, seed=3), draws=40, seed=0)
    for name in ("session_length", "gap_days"):
        for metric in ("ks", "wasserstein"):
            entry = same_law[name]
            assert entry["within_noise"][metric], (name, metric)
            # Two samples of one law differ about as much as two halves of one sample.
            assert entry["noise"][metric]["low"] <= entry["distance"][metric]["value"] <= entry["noise"][metric]["high"]
            assert entry["distance"][metric]["low"] <= entry["distance"][metric]["value"] \
                <= entry["distance"][metric]["high"]
            assert not other_law[name]["within_noise"][metric], (name, metric)
    quantiles = same_law["session_length"]["held_out"]
    assert quantiles["p50"]["value"] == np.quantile(held_out["length"], 0.5)
    assert quantiles["p50"]["value"] <= quantiles["p80"]["value"] <= quantiles["p95"]["value"]


def test_an_undefined_statistic_gets_no_verdict_and_compare_takes_the_statistics_asked_for():
    """Sessions of a log without ratings have no mean rating: the correlation with the next
    gap is undefined, which is neither within nor outside the noise."""
    unrated = [_sessions(100, 10.0, seed=s).assign(mean_rating=np.nan) for s in (4, 5)]
    entry = compare(*unrated, draws=10, seed=0)["gap_vs_mean_rating"]
    assert np.isnan(entry["distance"]["abs_difference"]["value"]) and entry["within_noise"] == {"abs_difference": None}
    assert list(compare(*unrated, draws=10, seed=0, names=["gap_days", "gap_vs_length"])) == [
        "gap_days", "gap_vs_length"]


def test_kaplan_meier_quantiles_count_censored_values_as_lower_bounds():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    done = np.zeros(4, dtype=bool)
    assert dynamics.kaplan_meier_quantiles(values, done, np.ones(4), (0.25, 0.5, 1.0)) == (1.0, 2.0, 4.0)
    # 3 and 4 still running: half the mass ends by 2, the rest is unknown.
    censored = np.array([False, False, True, True])
    assert dynamics.kaplan_meier_quantiles(values, censored, np.ones(4), (0.5, 0.75)) == (2.0, np.inf)
    # Censored at 1, the other three share the rest: 2 reaches 1/3, 3 reaches 2/3.
    assert dynamics.kaplan_meier_quantiles(values, np.array([True, False, False, False]), np.ones(4),
                                           (0.3, 0.6, 0.7)) == (2.0, 3.0, 4.0)


def test_simulated_lives_stay_in_their_windows_and_repeat_with_the_seed(small_world):
    world, _ = small_world
    rows = np.arange(12)
    windows = np.linspace(1.0, 60.0, 12)

    def lives():
        return dynamics.simulate_lives(world.catalog, world.config, world.population().pinned(rows, rows), rows,
                                       windows, max_steps=60, seed=3)

    first = lives()
    pd.testing.assert_frame_equal(first, lives())
    assert (first["timestamp"].to_numpy() < windows[first["user_id"].to_numpy()] * DAY).all()
    assert first.groupby("user_id")["timestamp"].is_monotonic_increasing.all()
    assert len(first) > 0 and first["rating"].between(0, 5).all()
    # The reference recommender never shows a film again that the user clicked: one rating per film.
    assert not first.duplicated(["user_id", "item_id"]).any()


def test_genre_repetition_is_the_mean_share_of_consecutive_ratings_sharing_a_genre():
    genres = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=bool)
    ratings = pd.DataFrame({"user_id": [0, 0, 0, 0, 1, 1, 2],
                            "item_id": [0, 1, 2, 0, 0, 3, 2],
                            "rating": [4, 4, 4, 4, 4, 4, 4],
                            "timestamp": [0, 60, 120, 10_000, 0, 60, 0]})
    # User 0: a session 0, 1, 2 (pairs 0-1 and 1-2 share a genre: 1), then item 0 alone;
    # user 1: 0, 3 (nothing shared: 0); user 2: one rating. Mean over sessions with pairs: 1/2.
    assert dynamics.genre_repetition(ratings, genres, 30.0) == pytest.approx(0.5)
    assert np.isnan(dynamics.genre_repetition(ratings[ratings["user_id"] == 2], genres, 30.0))


def test_report_section_holds_every_statistic_and_the_targets(small_world):
    from recoworld.apps.fidelity.page import sessions_section
    from recoworld.apps.fidelity.sessions import session_dynamics, targets

    world, data = small_world
    # The section refits the dynamics with the world's settings; what is asserted here is the
    # section's shape, not how well the lives fit converges (its own test below), so the refit
    # takes two rounds of it rather than twenty.
    settings = {**world.meta["calibration"], "lives_iterations": 2}
    world = replace(world, meta={**world.meta, "calibration": settings})
    section = session_dynamics(world, data, draws=20, max_steps=150)
    assert section["held_out_users"] == 40 and section["fitted_users"] == 40
    assert set(section["statistics"]) == set(STATISTICS)
    for entry in section["statistics"].values():
        assert set(entry) == {"title", "kind", "held_out", "simulated", "distance", "noise", "within_noise"}
        assert set(entry["distance"]) == set(entry["noise"]) == set(entry["within_noise"])
    assert set(section["statistics"]["session_length"]["held_out"]) >= {"n", "mean", "p50", "p80", "p95"}
    assert section["gap_law"]["exponential"]["log_likelihood"] <= section["gap_law"]["weibull"]["log_likelihood"]
    assert set(targets(section)) == {"session_length: KS within the half-split noise",
                                     "gap_days: KS within the half-split noise"}
    text = "\n".join(sessions_section(section, targets(section)))
    assert "## Session dynamics against held-out users" in text
    assert "| Spearman: next gap ~ session length |" in text
    assert "| session length (ratings) (p50 / p80 / p95 / mean) |" in text
    assert json.loads(json.dumps(section))["statistics"]["gap_days"]["noise"]["ks"]["high"] >= 0


def test_fit_lives_recovers_the_gaps_returns_and_longer_first_session_of_simulated_lives(small_world):
    from recoworld.calibration.split import cut_sessions

    world, _ = small_world
    # Each of the 80 fitted users lives four times (seeds apart), for enough newcomers' gaps.
    users, seeds = np.tile(np.arange(80), 4), np.arange(320)
    windows = np.full(320, 40.0)
    population = world.population().pinned(users, seeds)
    # Newcomers: long first sessions, after which fewer come back, 70% of those who do
    # within hours (e^-3 times the later gap), the others as regulars; a third of the later
    # visits for one thing.
    truth = replace(world.config, gap_days=2.0, leave_first_session=-2.0, return_first_session=-0.5,
                    gap_first_session=-3.0, gap_first_share=0.7, quick_visit_share=0.35, theme_weight=3.0)
    clicks = dynamics.simulate_lives(world.catalog, truth, population, seeds, windows, max_steps=160)
    genres = world.catalog.genres.numpy()
    lives = cut_sessions(clicks, 30.0).table
    targets = replace(dynamics.LifeTargets.of(lives), genre_repetition=dynamics.genre_repetition(clicks, genres, 30.0))
    assert targets.first_length > targets.return_length, "the world's first sessions are the longer"
    assert targets.first_return_share < targets.return_share and targets.first_gap_days < targets.gap_days
    # Later sessions too short, first sessions like them, gaps three times too long, and
    # every session alike at the start.
    start = replace(truth, leave_base=truth.leave_base + 1.0, leave_first_session=0.0, gap_days=6.0,
                    return_first_session=0.0, gap_first_session=0.0, gap_first_share=1.0, quick_visit_share=0.0,
                    theme_weight=0.0)
    fitted, factor = dynamics.fit_lives(world.catalog, start, population, seeds, windows, targets, max_steps=160)
    assert fitted.gap_days == pytest.approx(6.0 * factor)
    assert fitted.gap_days == pytest.approx(2.0, rel=0.35)
    assert fitted.leave_base < start.leave_base, "longer sessions wanted: the base comes down"
    assert fitted.leave_first_session < -0.5, "first sessions longer than later ones: a negative shift"
    assert fitted.return_first_session == pytest.approx(-0.5, abs=0.75)
    # Gaps under the 30-minute pause join two sessions, so the first-session law's scale is
    # read less sharply than the share that takes it.
    assert fitted.gap_first_share == pytest.approx(0.7, abs=0.15)
    assert fitted.gap_first_session < -1.5, "most newcomers come back far sooner than regulars"
    assert fitted.quick_visit_share == pytest.approx(0.35, abs=0.15)
    assert fitted.theme_weight == pytest.approx(3.0, abs=1.0)
    clicks = dynamics.simulate_lives(world.catalog, fitted, population, seeds, windows, max_steps=160)
    table = cut_sessions(clicks, 30.0).table
    refitted, below = dynamics.LifeTargets.of(table), targets.position(table)
    assert refitted.first_return_share == pytest.approx(targets.first_return_share, abs=0.1)
    assert refitted.return_share == pytest.approx(targets.return_share, abs=0.1)
    assert below["first_gap_days"] == pytest.approx(0.5, abs=0.1)
    assert below["first_gap_quartile"] == pytest.approx(0.25, abs=0.1)
    assert refitted.single_share == pytest.approx(targets.single_share, abs=0.08)
    assert dynamics.genre_repetition(clicks, genres, 30.0) == pytest.approx(targets.genre_repetition, abs=0.03)


def test_life_targets_split_first_sessions_from_later_ones_and_count_ties_at_the_median_half():
    table = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 2],
                          "length": [40, 3, 4, 30, 4, 20],
                          "next_gap_days": [0.5, 6.0, np.nan, 1.5, np.nan, np.nan]})
    targets = dynamics.LifeTargets.of(table)
    assert (targets.first_length, targets.return_length) == (30.0, 4.0)
    assert (targets.first_gap_days, targets.gap_days) == (1.0, 6.0)
    assert targets.first_return_share == pytest.approx(2 / 3) and targets.return_share == pytest.approx(1 / 3)
    assert (targets.first_returns, targets.later_sessions) == (2, 3)
    assert dynamics.LifeTargets(30.0, 3.0, 6.0).first_returns is None, "not taken of a table: not counted"
    # Later lengths 3, 4, 4 against their median 4: one below, two tied: (1 + 2 / 2) / 3.
    assert targets.at_quantile["return_length"] == pytest.approx(2 / 3)
    shorter = dynamics.LifeTargets(30.0, 3.0, 6.0).position(table)  # against 3: none below, one tied
    assert shorter["return_length"] == pytest.approx(1 / 6) and np.isnan(shorter["first_gap_days"])


def test_first_session_patience_follows_how_first_sessions_rank_with_later_ones():
    users = np.repeat(np.arange(6), 3)  # each user: a first session, then two later ones
    later = np.array([2, 4, 6, 8, 10, 12])  # each user's later sessions' length
    def table(first_lengths):
        length = np.stack([first_lengths, later, later], axis=1).ravel()
        return pd.DataFrame({"user_id": users, "length": length})
    assert dynamics.first_session_patience(table(10 * later)) == 1.0  # ranked as the later ones
    assert dynamics.first_session_patience(table(10 * later[::-1])) == 0.0  # reversed: floored at 0
    assert dynamics.first_session_patience(table(np.array([30, 5, 40, 10, 60, 20]))) == pytest.approx(0.2)
    one_user = pd.DataFrame({"user_id": [0, 0], "length": [40, 3]})
    assert dynamics.first_session_patience(one_user) == 1.0, "too few returning users: every session alike"
