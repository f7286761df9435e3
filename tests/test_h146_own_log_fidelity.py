"""``recoworld fidelity`` on worlds fitted from a team's own log: a heavy user who rated
nearly every item, users too light to hold a rating out, a handful of held-out users —
each figure the report prints is defined, or says n/a and why; none is a traceback, a NaN,
or a verdict on an undefined number."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.apps.fidelity import page
from recoworld.apps.fidelity.evaluation import segment_scores, targets
from recoworld.apps.fidelity.ranking import RankingConfig, replay_rounds
from recoworld.apps.fidelity.report import main as fidelity_main
from recoworld.apps.fidelity.sessions import compare
from recoworld.apps.fidelity.splits import split_targets
from recoworld.calibration.metrics import one_to_m_lists
from recoworld.calibration.split import Split


def _split(rated: dict[int, int], n_items: int = 30) -> Split:
    """A split of users rating ``rated[u]`` items each (items 0.., a day apart), the latest
    fifth of each user's held out."""
    rows = [(u, i, 4, 1_000_000_000 + 86_400 * i) for u, n in rated.items() for i in range(n)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    held = ratings.groupby("user_id")["timestamp"].rank(ascending=False) <= (
        ratings.groupby("user_id")["item_id"].transform("size") // 5)
    return Split(ratings[~held].reset_index(drop=True), ratings[held].reset_index(drop=True), len(rated), n_items)


# ------------------------------------------------------------------ policy ranking
def test_a_user_who_rated_nearly_every_item_sits_the_replay_out():
    # Before: ValueError "num_candidates=8 needs 7 never-rated items per user; choose fewer
    # candidates" raised after every other section, with a traceback and no report.
    split = _split({0: 25, 1: 10, 2: 10})
    rounds = replay_rounds(split, RankingConfig(num_candidates=8, rounds=2))
    assert rounds.left_out == 1
    assert (rounds.item[:, 0] == -1).all(), "the heavy user has no rounds"
    assert (rounds.item[:, 1:] >= 0).all(), "the others are replayed"
    assert all(len(set(c)) == 8 for c in rounds.candidates.reshape(-1, 8)), "every row's candidates are distinct"


def test_a_replay_no_user_can_fill_is_not_scored_and_the_page_says_why():
    with pytest.raises(CalibrationDataError, match=re.escape(
            "no user has the 7 never-rated items a replayed request shows beside the held-out one "
            "(num_candidates=8): every user with a held-out rating rated all but at most 5 of the 30 items")):
        replay_rounds(_split({0: 25, 1: 28}), RankingConfig(num_candidates=8, rounds=2))
    text = "\n".join(page.ranking_section(None, "ratings", "no user has the 19 never-rated items"))
    assert text.startswith("## Policy ranking") and "Not scored: no user has the 19 never-rated items." in text


def test_a_replay_whose_only_user_who_can_fill_a_request_held_nothing_out_is_not_scored():
    # User 0 sits out (5 never-rated items); user 1 fills a request but rated 4 items, too few
    # to hold one out, so has no round. Before: no error, 0 rounds, every agent's replay
    # click-through 0 and the page's "a replay of 0 held-out ratings".
    with pytest.raises(CalibrationDataError, match="^" + re.escape(
            "no user has the 7 never-rated items a replayed request shows beside the held-out one "
            "(num_candidates=8): every user with a held-out rating rated all but at most 5 of the 30 items; "
            "1 of the 2 users held nothing out (too few ratings to hold one out)") + "$"):
        replay_rounds(_split({0: 25, 1: 4}), RankingConfig(num_candidates=8, rounds=2))
    rounds = replay_rounds(_split({0: 25, 1: 4, 2: 10}), RankingConfig(num_candidates=8, rounds=2))
    assert (rounds.item[:, 2] >= 0).all() and (rounds.item[:, :2] == -1).all(), "a user who can be replayed is"


def test_the_page_counts_the_users_who_sat_the_replay_out():
    agents = {"random": {"simulator_ctr": 0.1, "simulator_rank": 1, "replay_ctr": 0.2, "replay_rank": 1}}
    ranking = {"replay_rounds": 40, "settings": {"num_candidates": 20, "slate_size": 5}, "chance_ctr": 0.05,
               "kendall_tau": 0.0, "p_value": 1.0, "agents": agents}
    assert "sat out" not in "\n".join(page.ranking_section(ranking))
    text = "\n".join(page.ranking_section({**ranking, "replay_left_out_users": 3}))
    assert "chance 0.050; sat out: 3 users with fewer than 19 never-rated items)." in text


def test_the_report_of_a_log_with_a_heavy_user_finishes_with_its_ranking(log_world, tmp_path, capsys):
    world, _ = log_world
    # The log: 60 items, users rating 20 to 60 of them, so some leave fewer than 19 unrated.
    assert fidelity_main(["--world", str(world), "--out", str(tmp_path / "report"), "--splits", "",
                          "--no-sessions", "--agents", "random,most_popular", "--quiet"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    ranking = report.split("## Policy ranking")[1]
    assert re.search(r"sat out: \d+ users? with fewer than 19 never-rated items\)", ranking)
    assert "| random |" in ranking and "| most_popular |" in ranking


# ------------------------------------------------------------------ sessions
def _sessions(users: int, seed: int) -> pd.DataFrame:
    """A session table (as ``sessions.session_table`` makes it) of ``users`` users, four sessions each."""
    gen = np.random.default_rng(seed)
    n = 4 * users
    first, last = np.tile([True, False, False, False], users), np.tile([False, False, False, True], users)
    return pd.DataFrame({"user_id": np.repeat(np.arange(users), 4), "first": first, "length": gen.integers(1, 20, n),
                         "next_gap_days": np.where(last, np.nan, gen.exponential(3.0, n)),
                         "mean_rating": gen.uniform(1, 5, n), "pairs": np.zeros(n), "same_genre": np.zeros(n)})


@pytest.mark.parametrize("held_out_users", [2, 3])
def test_two_or_three_held_out_users_give_no_noise_and_no_verdict(held_out_users):
    # Before, with two users: the noise of the one halving there is (one user against the
    # other) as a point "interval", e.g. 0.333 [0.333, 0.333], and a verdict read off it.
    out = compare(_sessions(held_out_users, 0), _sessions(10, 1), draws=20, names=("session_length", "gap_days"))
    for entry in out.values():
        assert all(math.isnan(noise["value"]) and math.isnan(noise["high"]) for noise in entry["noise"].values())
        assert set(entry["within_noise"].values()) == {None}
        assert not math.isnan(entry["distance"]["ks"]["value"]), "the distance itself is still measured"
    four = compare(_sessions(4, 0), _sessions(10, 1), draws=20, names=("session_length",))["session_length"]
    assert four["within_noise"]["ks"] is not None, "two users in each half give a noise"


def test_the_page_says_why_the_noise_of_few_held_out_users_is_n_a():
    section = {"statistics": compare(_sessions(2, 0), _sessions(10, 1), draws=20, names=("session_length",)),
               "held_out_users": 2, "fitted_users": 10, "config": {k: 0.0 for k in (
                   "leave_base", "leave_length", "leave_patience", "return_base", "gap_days", "gap_shape")}}
    text = "\n".join(page.sessions_section(section, {"session_length: KS within the half-split noise": None}))
    row = text.split("| session length (ratings)")[1].splitlines()[0]
    # KS, its noise and verdict, W1, its noise and verdict: the distances stand, the rest is n/a.
    assert re.fullmatch(r".* \| [\d.]+ \[[\d., ]+\] \| n/a \| n/a \| [\d.]+ \[[\d., ]+\] \| n/a \| n/a \|", row), row
    assert ("The noise is n/a: 2 users held out, fewer than 2 in each half (a half of one user is that user, not a "
            "sample of users), so no verdict.") in text
    assert "- session_length: KS within the half-split noise: n/a (undefined)" in text


# ------------------------------------------------------------------ segments
def test_a_segment_without_held_out_ratings_has_no_auc_and_no_f1():
    # Users 0-1 rated too little to hold anything out; users 2-3 hold items 0-1 out.
    positive = torch.zeros(4, 6, dtype=torch.bool)
    positive[2:, :2] = True
    never = ~positive
    never[:2, :] = True
    probability = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    from recoworld.calibration.metrics import user_auc

    auc = user_auc(probability, positive, never)
    members = {"light": torch.tensor([True, True, False, False]), "heavy": torch.tensor([False, False, True, True])}
    scores = segment_scores(probability, auc, members, one_to_m_lists(positive, never, 1))
    # Before: the light segment's F1 read 0.000 (no list to decide on scored as all wrong).
    assert math.isnan(scores["light"]["auc"]) and math.isnan(scores["light"]["f1_1to1"])
    assert math.isfinite(scores["heavy"]["auc"]) and math.isfinite(scores["heavy"]["f1_1to1"])
    entry = {"auc": 0.8, "auc_users": 2, **{f"1:{m}": {"f1": 0.5, "accuracy": 0.5, "precision": 0.5, "recall": 0.5}
                                             for m in (1, 3, 9)},
             **{f"1:{m} (Bernoulli draws)": {"f1": 0.5} for m in (1, 3, 9)}}
    results = {"models": {"calibrated user": entry},
               "segments": {name: {"users": 2, "calibrated user": s} for name, s in scores.items()}}
    text = "\n".join(page.discrimination_section(results, ["calibrated user"]))
    # Before: "| light | 2 | nan | 0.000 |".
    assert "| light | 2 | n/a | n/a |" in text and "nan" not in text
    assert "n/a: none of the segment's users has held-out ratings (too few ratings to hold one out)." in text


def test_an_undefined_auc_reads_n_a_in_the_headline_and_the_discrimination_table():
    def entry(auc):
        return {"auc": auc, "auc_users": 0, **{f"1:{m}": {"f1": 0.5, "accuracy": 0.5, "precision": 0.5, "recall": 0.5}
                                                for m in (1, 3, 9)},
                **{f"1:{m} (Bernoulli draws)": {"f1": 0.5} for m in (1, 3, 9)}}

    results = {"models": {"calibrated user": entry(float("nan")), "MF baseline": entry(0.7)}, "ratings": None}
    # Before: "| AUC | nan | 0.7000 |" and "| calibrated user | nan | 0.500 ...".
    assert "| AUC | n/a | 0.7000 |" in page.headline(results)
    text = "\n".join(page.discrimination_section(results, list(results["models"])))
    assert "| calibrated user | n/a | 0.500 |" in text and "| MF baseline | 0.7000 | 0.500 |" in text
    assert "nan" not in text


# ------------------------------------------------------------------ targets
def test_an_undefined_figure_meets_no_target_and_misses_none():
    nan = float("nan")
    models = {"calibrated user": {"auc": nan, "1:1": {"f1": 0.8}}, "MF baseline": {"auc": 0.7, "1:1": {"f1": 0.5}}}
    # Before: "auc >= 0.90: **not met**" on an AUC no user had.
    assert targets(models) == {"auc >= 0.90": None, "auc >= MF baseline": None, "F1 at 1:1 >= 0.75": True}
    undefined = {"value": nan, "low": nan, "high": nan}
    defined = {"value": 0.7, "low": 0.6, "high": 0.8}
    split = {"models": {"calibrated user": {"auc": undefined, "f1_1to1_at_validation_threshold": defined},
                        **{b: {"auc": defined} for b in ("popularity", "recent popularity", "MF", "EASE")}}}
    verdicts = split_targets({"latest": split, "time": split}, auc=0.92, f1=0.8, margin=0.05)
    assert verdicts == {"latest: AUC >= 0.92": None, "latest: F1 at 1:1 (validation-chosen threshold) >= 0.8": False,
                        "time cut: AUC >= popularity baselines + 0.05": None, "time cut: AUC >= best baseline": None}


# ------------------------------------------------------------------ LLM section
def test_the_llm_section_names_the_sampled_users_by_the_logs_own_ids(log_world):
    from recoworld.simulators.calibrated import CalibratedWorld

    world = CalibratedWorld.load(log_world[0])
    dense = [int(u) for u in world.users["user_id"].iloc[[0, 3]]]
    entry = {"auc": 0.8, **{f"1:{m}": {"f1": 0.5, "accuracy": 0.5} for m in (1, 3, 9)}}
    text = "\n".join(page.user_kinds_section({"users": dense, "statistical": entry}, world, "log.csv"))
    # Before: "MovieLens ids" and each dense id plus one, ids the log never had.
    originals = world.original_user_id(np.asarray(dense))
    assert f"2 sampled users (log.csv ids {originals[0]}, {originals[1]})" in text
    assert "MovieLens" not in text


def test_the_llm_section_of_a_world_made_without_the_datas_ids_names_the_worlds_own(log_world):
    from recoworld.simulators.calibrated import ORIGINAL_ID, CalibratedWorld

    fitted = CalibratedWorld.load(log_world[0])
    # Made in Python without the data's ids, which CalibratedWorld allows (it still runs).
    world = CalibratedWorld(fitted.catalog, fitted.config, fitted.users.drop(columns=ORIGINAL_ID), fitted.interest,
                            fitted.meta)
    dense = [int(u) for u in world.users["user_id"].iloc[[0, 3]]]
    entry = {"auc": 0.8, **{f"1:{m}": {"f1": 0.5, "accuracy": 0.5} for m in (1, 3, 9)}}
    # Before: ValueError "this calibrated world has no map between its user ids and the
    # data's", after every section was computed, and no report.md.
    text = "\n".join(page.user_kinds_section({"users": dense, "statistical": entry}, world, "data given in Python"))
    assert (f"2 sampled users (the world's own user ids {dense[0]}, {dense[1]}: it was made without the data's), "
            "the same lists for every kind.") in text
    assert "| statistical | 0.8000 |" in text


# ------------------------------------------------------------------ durations
def test_the_gaps_of_a_log_spanning_a_day_read_in_hours_or_minutes_not_zero_days():
    from dataclasses import replace
    from types import SimpleNamespace

    from recoworld.simulators.statistical import StatisticalUserConfig

    def world(gap_days):
        return SimpleNamespace(config=replace(StatisticalUserConfig(), gap_days=gap_days))

    # Before: "gap 0.0 days" for a fitted gap of 46 minutes (a one-day log's sessions).
    assert "gap 46.1 minutes." in page.world_section(world(0.032))[2]
    assert "gap 2.4 hours." in page.world_section(world(0.099))[2]
    assert "gap 15.2 days." in page.world_section(world(15.23))[2], "days as before"
    # Before: "60.0 minutes" just under an hour, and "nan minutes" for an undefined gap.
    assert "gap 1.0 hours." in page.world_section(world(1 / 24))[2]
    assert "gap 1.0 hours." in page.world_section(world(1 / 24 - 1e-7))[2]
    assert "gap 59.9 minutes." in page.world_section(world(59.9 / 1440))[2]
    # A refitted gap or a Weibull mean in the session section can be undefined; a world's cannot.
    assert page._duration(float("nan")) == page._duration(None) == "n/a"


# ------------------------------------------------------------------ held-out users' fold-in
def test_users_folded_in_on_a_log_of_few_chosen_items_get_vectors(monkeypatch):
    """The ``users`` split folds users into a fit whose scores have fewer dimensions than its
    rank (a log whose users chose among 5 of 30 items). Whether a null direction's item
    vector comes out exactly 0 or a rounding error away depends on the maths library
    (LAPACK), so neither is assumed; what the fold-in gives on any is asserted."""
    from recoworld.calibration import choice
    from recoworld.calibration.choice import ChoiceFitConfig, fit_choice, rating_weights

    def fold_in_fit(users: int, items: int, chosen: int, per_user: int, config: ChoiceFitConfig):
        gen = np.random.default_rng(0)
        rows = [(u, i, 4, t) for u in range(users) for t, i in enumerate(gen.choice(chosen, per_user, replace=False))]
        ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
        fold_in = torch.arange(users) < 3
        return fit_choice(rating_weights(ratings, users, items, None), config, fold_in=fold_in), fold_in

    # Before: torch.linalg.solve "The solver failed because the input matrix is singular".
    model, fold_in = fold_in_fit(12, 30, 5, 4, ChoiceFitConfig(dim=4, rank=8))
    assert torch.isfinite(model.user_vectors).all() and torch.isfinite(model.logits()).all()
    empty = ~model.item_vectors.any(0)
    assert (model.user_vectors[fold_in][:, empty] == 0).all(), "a direction with no item vector is left at 0"

    # A fit whose item vectors span every direction folds users in exactly as before the fix:
    # the least-squares solve on all of them, from the scores fit_choice factorised.
    original, tables = choice.item_to_item_scores, []

    def recorded(*args):
        tables.append(original(*args))
        return tables[-1]

    monkeypatch.setattr(choice, "item_to_item_scores", recorded)
    model, fold_in = fold_in_fit(40, 30, 30, 12, ChoiceFitConfig(dim=4, rank=8))
    items = model.item_vectors
    assert items.any(0).all(), "every direction has an item vector"
    scores = tables[0]  # completed in place by fit_choice
    before = torch.linalg.solve(items.T @ items, items.T @ scores[fold_in].T).T
    assert torch.equal(model.user_vectors[fold_in], before)


# ------------------------------------------------------------------ 1:m lists of a small catalog
def test_lists_a_small_catalog_cannot_fill_say_the_mix_they_hold():
    from recoworld.apps.fidelity.evaluation import short_lists

    # Two users, 4 held-out items each; one left 40 items unrated, the other 6.
    positive = torch.zeros(2, 50, dtype=torch.bool)
    positive[:, :4] = True
    never = torch.zeros(2, 50, dtype=torch.bool)
    never[0, 10:50] = True
    never[1, 10:16] = True
    lists = {m: one_to_m_lists(positive, never, m) for m in (1, 3, 9)}
    # 1:1 holds 8 never-rated items for 8 held-out; 1:3: 12 + 6; 1:9: 36 + 6.
    assert short_lists(lists) == {"1:3": 18 / 8, "1:9": 42 / 8}
    text = "\n".join(page.short_lists_note(short_lists(lists)))
    # Before: the columns read "F1 1:9" on lists of 5.25 never-rated items per held-out one, unsaid.
    assert ("Too few never-rated items for the full mixes: the 1:3 lists 2.2, the 1:9 lists 5.2 never-rated items "
            "per held-out one") in text
    assert page.short_lists_note(short_lists({1: lists[1]})) == []
