"""``recoworld fidelity`` on logs and worlds a researcher brings: what the report cannot
compute is said, not printed as a perfect score, a NaN or a traceback."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.apps.fidelity import page
from recoworld.apps.fidelity.evaluation import evaluate, has_genres
from recoworld.apps.fidelity.sessions import measurable
from recoworld.apps.fidelity.splits import (
    bootstrap_draws,
    evaluate_split,
    without_intervals,
)
from recoworld.calibration.choice import ChoiceFitConfig
from recoworld.data.interactions import load_interactions


def _genreless(world):
    """``world`` with every item in the placeholder genre, as a log without an item table calibrates."""
    catalog = world.catalog
    return replace(world, catalog=replace(catalog, genres=torch.ones(catalog.n_items, 1, dtype=torch.bool),
                                          genre_names=("unknown",)))


def test_a_world_without_genres_reports_no_genre_distance_and_no_genre_repetition(small_world, tmp_path):
    world, data = small_world
    genreless = _genreless(world)
    assert has_genres(world.catalog) and not has_genres(genreless.catalog)
    results = evaluate(genreless, data=data)
    # Before: every model's genre shares were {unknown: 1.0}, a total-variation distance of 0.000.
    assert results["genre_shares"] is None
    assert all("genre_total_variation" not in a for a in results["aggregate"].values())
    assert "genre_repetition" not in measurable(True, False)
    assert measurable(False, True)[-1] != "gap_vs_mean_rating"
    report = page.write_report(results, tmp_path / "report", genreless).read_text()
    assert "The log's items have no genres" in report and "genre_shares.png" not in report
    assert not (tmp_path / "report" / "genre_shares.png").exists()


def test_split_bootstrap_resamples_the_scored_users_alone():
    scored = torch.tensor([False, True, False, True, True])
    weights = bootstrap_draws(scored, draws=50, seed=0)
    assert (weights[:, [0, 2]] == 0).all(), "users a split does not score weigh nothing"
    assert (weights.sum(1) == 3).all(), "every resample holds as many scored users as the split"


def test_a_split_of_one_user_has_no_interval_and_the_page_says_so():
    entry = {"value": 0.87, "low": 0.87, "high": 0.87}
    split = {"models": {"calibrated user": {
        "auc": entry, "calibration": {"ece": entry, "curve": [{"observed": entry, "predicted": 0.5}]},
        "decision_threshold": {"1:1": -0.08, "1:3": 0.45, "1:9": 0.5},
        **{f"f1_1to{m}": entry for m in (1, 3, 9)},
        **{f"f1_1to{m}_at_validation_threshold": entry for m in (1, 3, 9)}}},
        "users": 1, "held_out": 4, "train": 300}
    bare = without_intervals(split)
    assert math.isnan(bare["models"]["calibrated user"]["calibration"]["curve"][0]["observed"]["low"])
    text = "\n".join(page.splits_section({"users": bare}, None))
    # Before: "0.870 [0.870, 0.870]" (a resample of one user is that user) and "of 1 users".
    assert "0.8700 [n/a]" in text and "of 1 user;" in text and "[0.870, 0.870]" not in text
    assert "| all yes |" in text, "a threshold below 0 says yes to every item"


def test_undefined_numbers_read_n_a_not_nan():
    assert page._with_interval({"value": float("nan"), "low": float("nan"), "high": float("nan")}) == "n/a"
    assert page._with_interval({"value": 0.25, "low": None, "high": None}) == "0.250 [n/a]"
    assert page._with_interval({"value": 0.25, "low": 0.1, "high": 0.4}) == "0.250 [0.100, 0.400]"


def _sequential(data):
    """``data`` with each user's ratings moved into a window of their own: most at one instant,
    the last three days apart, so that the time cut falls at a user's first instant."""
    ratings = data.ratings.sort_values(["user_id", "timestamp"], kind="stable")
    moved = []
    for k, (_, group) in enumerate(ratings.groupby("user_id")):
        start = 1_000_000_000 + k * 86400 * 30
        stamps = np.full(len(group), start, dtype=np.int64)
        stamps[-3:] = start + 5 * 86400 + np.arange(3) * 2 * 86400
        moved.append(group.assign(timestamp=stamps))
    return replace(data, ratings=pd.concat(moved, ignore_index=True))


def test_a_time_cut_that_no_user_spans_is_not_scored_and_the_page_says_why(small_world):
    world, data = small_world
    with pytest.raises(CalibrationDataError, match=r"split time \(cut at .*\) holds out nothing to score: no user "
                                                   "rated something both before and after the cut"):
        evaluate_split(world, _sequential(data), "time")
    text = "\n".join(page.splits_section(None, None, "ratings", {"time": "split time holds out nothing to score"}))
    assert "### Split: a global time cut" in text and "Not scored: split time holds out nothing to score." in text


def test_a_section_the_data_cannot_give_is_reported_not_raised(capsys):
    from recoworld.apps.fidelity.report import _unless_refused

    def refused():
        raise CalibrationDataError("no user comes back within the log")

    results: dict = {}
    assert _unless_refused(refused, results, "sessions", quiet=False) is None
    assert results["not_scored"] == {"sessions": "no user comes back within the log"}
    assert "sessions not scored: no user comes back" in capsys.readouterr().err
    text = "\n".join(page.sessions_section(None, None, "ratings", results["not_scored"]["sessions"]))
    assert "Not scored: no user comes back within the log." in text


def _without_ratings(data, folder):
    """``data``'s choices as a click log (no ``rating`` column) with its item table, read as
    ``recoworld calibrate --data`` reads them."""
    r = data.ratings
    pd.DataFrame({"user": r["user_id"], "item": r["item_id"], "timestamp": r["timestamp"]}).to_csv(
        folder / "clicks.csv", index=False)
    pd.DataFrame({"item": data.items["item_id"], "genres": ["|".join(g) for g in data.items["genres"]]}).to_csv(
        folder / "items.csv", index=False)
    return load_interactions(folder / "clicks.csv", folder / "items.csv")


def test_the_report_of_a_log_without_ratings_names_no_fitted_rating_response(small_world, tmp_path):
    _, data = small_world
    clicks = _without_ratings(data, tmp_path)
    assert not clicks.has_ratings
    world = calibrate(CalibrationConfig(choice=ChoiceFitConfig(dim=6, l2=0.03), leave_steps=20, leave_users=40),
                      data=clicks, progress=False)
    report = page.write_report(evaluate(world, data=clicks), tmp_path / "report", world).read_text()
    calibrated = report.split("## The calibrated world")[1]
    # Before: "ratings: center 3.00, slope 0.900, ..." (the defaults, printed as if fitted) and
    # "a biased MF (ratings)" in the introduction, though no rating MF was fitted.
    assert "ratings: none in the log, so the rating response keeps the simulator's defaults;" in calibrated
    assert not any(word in calibrated for word in ("center", "slope", "noise"))
    assert "the MF baseline is a plain logistic MF (choices) on the same split." in report
    assert "biased MF" not in report and "rating MF" not in report
