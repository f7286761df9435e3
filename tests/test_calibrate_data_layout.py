"""``recoworld calibrate --data``: logs as teams write them — impressions without ratings,
other rating scales, misnamed columns, indexed Parquet, one timestamp for everything — are
read right or refused saying the fix."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.data.interactions import load_interactions


def write(tmp_path, name: str, table: pd.DataFrame):
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path)
    return path


# ------------------------------------------------------------------ impressions
@pytest.mark.parametrize("name", ["log.csv", "log.parquet"])
def test_impressions_need_no_rating_and_the_clicks_keep_theirs(tmp_path, name):
    """An impression log with ratings: the rows left unchosen have no rating to give."""
    log = pd.DataFrame({"user": ["a", "a", "a", "b", "b"], "item": [1, 2, 3, 1, 2],
                        "timestamp": [10, 10, 20, 30, 40], "click": [0, 1, 1, 0, 1],
                        "rating": [np.nan, 4, 2, np.nan, 5]})
    data = load_interactions(write(tmp_path, name, log))
    assert data.has_ratings
    # Items 2 and 3 (item 1 was only shown) are 0 and 1.
    assert data.ratings[["user_id", "item_id", "rating"]].values.tolist() == [[0, 0, 4], [0, 1, 2], [1, 0, 5]]


def test_impressions_may_repeat_and_share_the_time_of_their_click(tmp_path):
    """An item shown twice in one second, and an event log's impression and click rows of one
    (user, item, time): the click stands, nothing is refused as a duplicated row."""
    log = pd.DataFrame({"user": [1, 1, 1, 1, 2], "item": [7, 7, 8, 8, 7], "timestamp": [5, 5, 6, 6, 9],
                        "click": [0, 0, 0, 1, 1]})
    data = load_interactions(write(tmp_path, "log.csv", log))
    assert data.ratings[["user_id", "item_id", "timestamp"]].values.tolist() == [[0, 1, 6], [1, 0, 9]]


def test_a_row_written_twice_is_named_with_its_twin(tmp_path):
    """Interleaved duplicates: the message names two rows that are the same, not the first two
    rows that have a twin somewhere."""
    log = pd.DataFrame({"user": [1, 2, 1, 2], "item": [5, 6, 5, 6], "timestamp": [1, 2, 1, 2]})
    with pytest.raises(ValueError, match=r"log.csv: rows 1 and 3 repeat user 1, item 5 at the same timestamp; "
                                         "remove the duplicated rows"):
        load_interactions(write(tmp_path, "log.csv", log))
    clicked = log.assign(click=[0, 1, 0, 1])  # the impressions may repeat; the clicks may not
    with pytest.raises(ValueError, match=r"rows 2 and 4 repeat user 2, item 6 at the same timestamp"):
        load_interactions(write(tmp_path, "clicked.csv", clicked))


# ------------------------------------------------------------------ ratings
@pytest.mark.parametrize("ratings, message", [
    ([2, 10, 7], (r"row 2, column 'rating': 10 is not a rating of 1..5 stars: the column's ratings run 2..10; the "
                  r"world's users give whole stars 1..5, so map another scale onto them first \(half stars 0.5..5: "
                  r"round up; 1..10: halve and round up\), or drop the column to fit on choices alone")),
    ([4.5, 3, 0.5], r"row 1, column 'rating': 4.5 is not a rating of 1..5 stars: the column's ratings run 0.5..4.5;"),
    ([4, np.nan, 3], (r"row 2, column 'rating': nan is not a rating \(the cell is empty\): a log with a rating "
                      r"column needs one on every chosen row; drop the rows without one, or drop the column to fit "
                      r"on choices alone")),
])
def test_ratings_off_the_five_stars_are_refused_saying_how_to_map_them(tmp_path, ratings, message):
    log = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1], "timestamp": [1, 2, 3], "rating": ratings})
    with pytest.raises(ValueError, match=r"log.csv: " + message):
        load_interactions(write(tmp_path, "log.csv", log))


# ------------------------------------------------------------------ columns
@pytest.mark.parametrize("header, fix", [
    ("user_id,item_id,timestamp", "; rename 'user_id' to 'user', 'item_id' to 'item'"),
    ("User,item,Timestamp", "; rename 'User' to 'user', 'Timestamp' to 'timestamp'"),
    ("user\titem\ttimestamp", "; the fields look tab-separated, and a CSV's are comma-separated: save it with commas"),
    ("user;item;timestamp", ("; the fields look semicolon-separated, and a CSV's are comma-separated: save it "
                             "with commas")),
])
def test_misnamed_columns_and_other_separators_are_refused_saying_the_fix(tmp_path, header, fix):
    separator = "\t" if "\t" in header else ";" if ";" in header else ","
    (tmp_path / "log.csv").write_text(f"{header}\n" + separator.join(["1", "2", "3"]) + "\n")
    with pytest.raises(ValueError, match="missing column") as error:
        load_interactions(tmp_path / "log.csv")
    assert str(error.value).endswith(fix)


def test_a_parquet_indexed_by_a_column_reads_it(tmp_path):
    log = pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "timestamp": [1, 2]}).set_index("user")
    data = load_interactions(write(tmp_path, "log.parquet", log))
    assert data.ratings[["user_id", "item_id"]].values.tolist() == [[0, 0], [1, 1]]


def test_comma_separated_genres_are_refused_not_read_as_one_genre(tmp_path):
    log = write(tmp_path, "log.csv", pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": [1, 2]}))
    items = write(tmp_path, "items.csv", pd.DataFrame({"item": [1, 2], "genres": ["Drama|War", "Action, Comedy"]}))
    with pytest.raises(ValueError, match=r"items.csv: row 2, column 'genres': 'Action, Comedy' is not \|-separated "
                                         r"genre names \(it is comma-separated\): write Drama\|War, not Drama, War"):
        load_interactions(log, items=items)


# ------------------------------------------------------------------ times
@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """A generated log of 40 users and 60 items, in the layout's columns."""
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    return ratings.rename(columns={"user_id": "user", "item_id": "item"})


@pytest.mark.parametrize("times, shared", [
    (lambda log: 1_600_000_000, "every interaction has the timestamp 1600000000"),
    (lambda log: 1_600_000_000 + 86_400 * log["user"],
     "each user's interactions share one timestamp (40 distinct in all)"),
])
def test_a_log_without_times_within_users_is_refused_saying_so(log, tmp_path, capsys, times, shared):
    path = write(tmp_path, "log.csv", log.assign(timestamp=times(log)))
    assert calibrate_main(["--data", str(path), "--out", str(tmp_path / "world"), "--quiet"]) == 2
    assert (f"recoworld calibrate: no user's interactions happened at two different times: {shared}. The held-out "
            "split, the sessions and the returns are read off when each interaction happened: give each one its own "
            "time") in capsys.readouterr().err
    assert not (tmp_path / "world").exists()


def test_a_log_of_dates_alone_is_calibrated_with_one_warning_that_days_are_sessions(log, tmp_path):
    days = log.assign(timestamp=pd.to_datetime(log["timestamp"], unit="s").dt.strftime("%Y-%m-%d"))
    path = write(tmp_path, "days.csv", days)
    with pytest.warns(UserWarning) as caught:
        assert calibrate_main(["--data", str(path), "--out", str(tmp_path / "world"), "--quiet"]) == 0
    # Before: no warning; every day became one session and the 30-minute cut did nothing.
    expected = (f"{path}: every timestamp is at 00:00:00 UTC (dates without a time of day), so no session gap "
                "splits a day: the session dynamics will treat each user's day as one visit (its interactions one "
                "session, the gaps between sessions whole days); give each interaction its time of day "
                "(2024-03-01T14:05:00, or Unix seconds) to fit sessions within days")
    assert [str(w.message) for w in caught if "dates without a time of day" in str(w.message)] == [expected]


def test_a_log_with_times_of_day_reads_without_a_warning(log, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_interactions(write(tmp_path, "log.csv", log))
    assert data.ratings["timestamp"].nunique() > 1
