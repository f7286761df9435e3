"""``recoworld calibrate --data`` on a team's own log (review h228): times to the hour, times
counted in milliseconds from the log's start, dates of another layout, genres separated by a
tab, a ``--users`` larger than the log's, and the fidelity report's count of held-out users."""

from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.calibrate import dynamics
from recoworld.apps.calibrate.fit import fitted_on_other_data, ratings_line
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.folds import CalibrationDataError, Folds, fingerprint, subsample, training_catalog
from recoworld.apps.fidelity import page
from recoworld.apps.fidelity.evaluation import HeldOut, held_out_split, split_summary
from recoworld.calibration.split import Split
from recoworld.catalog import Catalog, GenreCellError, read_genres
from recoworld.simulators.statistical import StatisticalUserConfig
from recoworld.data.interactions import load_interactions

#: A time on the hour (22:00:00 UTC, 2023-11-14).
ON_THE_HOUR = 1_699_999_200
HOUR = 3_600
DAY = 86_400


def write(tmp_path, name: str, table: pd.DataFrame):
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path)
    return path


def log(users=(53, 54, 55), per_user: int = 4, start: int = ON_THE_HOUR, step: int = 3_700) -> pd.DataFrame:
    """Each user chooses ``per_user`` items, one every ``step`` seconds."""
    rows = [(u, n * per_user + i, start + (n * per_user + i) * step) for n, u in enumerate(users)
            for i in range(per_user)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


def grid_warning(path, unit: str, clock: str, steps: str) -> str:
    return (f"{path}: every timestamp is on a {unit} grid ({clock} and {steps} from it), no finer than the session "
            "gap (30 minutes by default), so the session dynamics will cut sessions at the grid's steps, not at the "
            "users' pauses (a pause within a step reads as none, one across it as a whole step or more), and read the "
            "gaps between sessions in whole steps; give each interaction its time to the second or minute "
            "(2024-03-01T14:05:37, or Unix seconds) to fit sessions")


def loaded_warnings(path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_interactions(path)
    return [str(w.message) for w in caught]


# ------------------------------------------------------------------ times on a coarse grid (item 1)
@pytest.mark.parametrize("step, unit, steps", [(HOUR, "1-hour", "whole hours"), (1_800, "30-minute",
                                                                                  "whole 30-minute steps"),
                                               (6 * HOUR, "6-hour", "whole 6-hour steps")])
def test_times_on_a_grid_no_finer_than_the_session_gap_are_warned_naming_the_step(tmp_path, step, unit, steps):
    """Before: times to the hour (or the half hour) were read without a word, though each
    user's hour is then one session and the next hour another (the reviewer's log: 1,894
    sessions of 2.3 interactions, 1,514 of 2.9 at the second); only dates alone were warned."""
    path = write(tmp_path, "log.csv", log(step=step))
    assert loaded_warnings(path) == [grid_warning(path, unit, "22:00:00 UTC", steps)]


def test_times_to_the_hour_as_iso_text_with_an_offset_are_read_on_the_files_clock(tmp_path):
    """Whole hours at +05:45 (Nepal) are at 15 minutes past in UTC: the grid is the file's."""
    times = pd.to_datetime(log(step=HOUR)["timestamp"], unit="s", utc=True).dt.tz_convert("Asia/Kathmandu")
    texts = times.dt.floor("h").dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d\d)$", r":\1", regex=True)
    assert texts.iloc[0] == "2023-11-15T03:00:00+05:45"
    path = write(tmp_path, "log.csv", log().assign(timestamp=texts))
    assert loaded_warnings(path) == [grid_warning(path, "1-hour", "03:00:00 UTC+05:45", "whole hours")]


@pytest.mark.parametrize("step", [60, 900, 3_700])
def test_times_finer_than_the_session_gap_are_not_warned(tmp_path, step):
    """Times to the minute, or the quarter hour, still tell pauses of the 30-minute gap apart."""
    assert loaded_warnings(write(tmp_path, "log.csv", log(step=step))) == []


def test_dates_alone_keep_their_own_warning(tmp_path):
    path = write(tmp_path, "log.csv", log(step=DAY))
    assert loaded_warnings(path) == [
        f"{path}: every timestamp is at 22:00:00 UTC (dates without a time of day), so no session gap splits a day: "
        "the session dynamics will treat each user's day as one visit (its interactions one session, the gaps between "
        "sessions whole days); give each interaction its time of day (2024-03-01T14:05:00, or Unix seconds) to fit "
        "sessions within days"]


# ------------------------------------------------------------------ a span of centuries (item 2)
def test_milliseconds_counted_from_the_logs_start_are_refused_with_the_unit_fix(tmp_path):
    """Before: read as Unix seconds of 1970..2298 without a word (every gap a thousand times
    too long)."""
    table = log(start=0, step=10 * DAY + 7).assign(timestamp=lambda t: t["timestamp"] * 1000)
    assert table["timestamp"].max() == 9_504_077_000 < 1e11  # below the milliseconds' "after the year 5000"
    path = write(tmp_path, "log.csv", table)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 12, column 'timestamp': 9504077000 is 301 years after row 1's 0 in Unix seconds (2271-03-04 "
            "and 1970-01-01 UTC), longer than any log of interactions runs (a century); the times look like "
            "milliseconds (counted from the log's start?): divide the column by 1000 to give seconds (or, if one of "
            "the two rows is a mark for an unknown time, give that row the time it happened, or drop it)") + "$"):
        load_interactions(path)
    fixed = table.assign(timestamp=table["timestamp"] // 1000)
    assert len(load_interactions(write(tmp_path, "fixed.csv", fixed)).ratings) == len(table)


def test_a_date_a_millennium_after_the_others_is_refused_as_a_mark(tmp_path):
    texts = pd.to_datetime(log()["timestamp"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    texts.iloc[4] = "2999-12-31 00:00:00"
    path = write(tmp_path, "log.csv", log().assign(timestamp=texts))
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 5, column 'timestamp': '2999-12-31 00:00:00' is 976 years after the log's other times "
            "(2023-11-14 to 2023-11-15 UTC), longer than any log of interactions runs (a century): a mark for an "
            "unknown time (\"never\")? give the row the time it happened, or drop it") + "$"):
        load_interactions(path)


@pytest.mark.parametrize("start", [ON_THE_HOUR, 0])
def test_a_number_for_never_in_unix_seconds_is_refused_as_a_mark_not_as_milliseconds(tmp_path, start):
    """Before (review h241): one 32503680000 (3000-01-01) among seconds of 2023 was told to
    divide the column by 1000, which would put every time in 1970; so was one among seconds
    counted from the log's start."""
    table = log(start=start)
    table.loc[[3, 7], "timestamp"] = 32_503_680_000
    path = write(tmp_path, "log.csv", table)
    others = "2023-11-14 to 2023-11-15" if start else "1970-01-01 to 1970-01-01"
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 4, column 'timestamp': 32503680000 in Unix seconds is {976 if start else 1030} years after "
            f"the log's other times ({others} UTC), longer than any log of interactions runs (a century): a mark for "
            "an unknown time (\"never\")? (1 more row is as far) give the row the time it happened, or drop it")
            + "$"):
        load_interactions(path)


def test_milliseconds_from_the_start_with_a_few_late_rows_are_told_the_unit_not_called_a_mark(tmp_path):
    """Review h243: the late rows of a log in milliseconds counted from its start (most rows in
    its first 20 days, a few at day 300) were named as "never" marks; dropping them left a log
    read 1000 times too slow, without a word."""
    early = [(u, i, i * 2 * DAY * 1000) for i, u in enumerate([53, 54, 55] * 3)]
    late = [(53, 100 + i, 300 * DAY * 1000) for i in range(2)]
    path = write(tmp_path, "log.csv", pd.DataFrame(early + late, columns=["user", "item", "timestamp"]))
    with pytest.raises(ValueError, match="the times look like milliseconds \\(counted from the log's start\\?\\): "
                                         "divide the column by 1000"):
        load_interactions(path)


@pytest.mark.parametrize("zero, shown", [(0, "0"), ("1970-01-01", "'1970-01-01'")])
def test_unix_time_0_decades_before_the_other_times_is_refused_as_a_mark(tmp_path, zero, shown):
    """Before (review h241): a 0 (or 1970-01-01) for an unknown time among times of 2023 was
    read, as a session 54 years before the others."""
    table = log()
    if isinstance(zero, str):
        table["timestamp"] = pd.to_datetime(table["timestamp"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    table.loc[2, "timestamp"] = zero
    path = write(tmp_path, "log.csv", table)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 3, column 'timestamp': {shown} is Unix time 0 (1970-01-01 00:00:00 UTC), 54 years before "
            "the log's other times (from 2023-11-14 UTC): a mark for an unknown time? give the row the time it "
            "happened, or drop it") + "$"):
        load_interactions(path)


def test_seconds_counted_from_the_logs_start_from_0_are_read(tmp_path):
    table = log(start=0)
    assert table["timestamp"].min() == 0
    assert load_interactions(write(tmp_path, "log.csv", table)).ratings["timestamp"].min() == 0


def test_a_log_of_nearly_a_century_is_read(tmp_path):
    table = log(start=0, step=int(99 * 365.25 * DAY) // 11 + 7)
    assert len(load_interactions(write(tmp_path, "log.csv", table)).ratings) == len(table)


# ------------------------------------------------------------------ dates of another layout, --users (item 12)
needs_guess = pytest.mark.skipif(not hasattr(pd.tseries.api, "guess_datetime_format"),
                                 reason="pandas < 2.2 does not tell a date's format")


@needs_guess
def test_a_date_of_another_layout_is_refused_with_the_format_that_reads_it(tmp_path):
    """Before: "... is not a time (Unix seconds or an ISO date)", and no fix."""
    texts = pd.to_datetime(log()["timestamp"], unit="s").dt.strftime("%d/%m/%Y %H:%M")
    assert texts.iloc[0] == "14/11/2023 22:00"
    path = write(tmp_path, "log.csv", log().assign(timestamp=texts))
    fix = "pd.to_datetime(log['timestamp'], format='%d/%m/%Y %H:%M')"
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 1, column 'timestamp': '14/11/2023 22:00' is not a time (Unix seconds or an ISO date); it "
            f"reads as a date of the format '%d/%m/%Y %H:%M': log['timestamp'] = {fix}, or write the times as ISO 8601 "
            "(2023-11-26T21:19:00) or Unix seconds") + "$"):
        load_interactions(path)
    refused = pd.read_csv(path)
    refused["timestamp"] = eval(fix, {"pd": pd, "log": refused})
    fixed = load_interactions(write(tmp_path, "fixed.csv", refused)).ratings["timestamp"]
    assert (fixed == log()["timestamp"] // 60 * 60).all()  # to the minute, as the file writes them


@needs_guess
def test_a_date_whose_day_and_month_may_be_either_way_round_names_both_formats(tmp_path):
    texts = ["05/11/2023 21:19"] + list(pd.to_datetime(log()["timestamp"], unit="s").dt.strftime("%d/%m/%Y")[1:])
    path = write(tmp_path, "log.csv", log().assign(timestamp=texts))
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 1, column 'timestamp': '05/11/2023 21:19' is not a time (Unix seconds or an ISO date); it "
            "reads as a date of the format '%d/%m/%Y %H:%M' (day first) or '%m/%d/%Y %H:%M' (month first): "
            "log['timestamp'] = pd.to_datetime(log['timestamp'], format='%d/%m/%Y %H:%M'), or that of the month "
            "first, whichever the file writes, or write the times as ISO 8601 (2023-11-26T21:19:00) or Unix "
            "seconds") + "$"):
        load_interactions(path)


def test_text_that_is_no_date_is_refused_with_the_general_fix(tmp_path):
    path = write(tmp_path, "log.csv", log().assign(timestamp=["soon"] * 12))
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 1, column 'timestamp': 'soon' is not a time (Unix seconds or an ISO date); parse it with its "
            "format first: log['timestamp'] = pd.to_datetime(log['timestamp'], format=...), or write the times as ISO "
            "8601 (2023-11-26T21:19:00) or Unix seconds") + "$"):
        load_interactions(path)


def test_more_users_than_the_log_has_are_refused_naming_the_flag(tmp_path):
    """Before: "users=1000; the data has 3 users: choose 1..3", the flag unnamed."""
    data = load_interactions(write(tmp_path, "log.csv", log()))
    with pytest.raises(CalibrationDataError, match="^" + re.escape(
            "--users 1000 (users=1000): the data has 3 users; choose 1..3") + "$"):
        subsample(data, 1000, 0)


def test_more_users_than_the_data_has_are_refused_by_fidelity_naming_the_worlds_setting(tmp_path):
    """Before (review h241): ``recoworld fidelity`` said "--users 100 (users=100)", though its
    own ``--users`` names the kinds of users to evaluate."""
    data = load_interactions(write(tmp_path, "log.csv", log()))
    world = SimpleNamespace(meta={"calibration": {"users": 100, "seed": 0}, "split": {}})
    with pytest.raises(CalibrationDataError, match="^" + re.escape(
            "the world was calibrated on 100 users drawn from its data (its calibration setting users=100), but the "
            "data has 3 users: give the data the world was fitted on, or calibrate a world on this data (`recoworld "
            "calibrate --users` 1..3, or every user)") + "$"):
        held_out_split(world, data)


# ------------------------------------------------------------------ genres separated otherwise (item 9)
@pytest.mark.parametrize("cell, name, written", [
    ("Comedy\tAction", "tab", "Drama\\tWar"),
    ("Comedy\nAction", "line-break", "Drama\\nWar"),
    ("Comedy\u3001Action", "ideographic-comma", "Drama\u3001War"),
    ("Comedy\uff0cAction", "full-width-comma", "Drama\uff0cWar"),
    ("Comedy\uff1bAction", "full-width-semicolon", "Drama\uff1bWar"),
])
def test_genres_separated_by_a_tab_or_a_cjk_comma_are_refused(cell, name, written):
    """Before: read as one genre named ``'Comedy\\tAction'``; only a comma and a semicolon were refused."""
    with pytest.raises(GenreCellError, match="^" + re.escape(
            f"row 1: {cell!r} is not |-separated genre names (it is {name}-separated): write Drama|War, not "
            f"{written}") + "$"):
        read_genres(pd.Series(["Drama", cell]), no_genre="unknown")


def test_a_tab_around_a_name_is_space_and_a_slash_is_part_of_one():
    assert read_genres(pd.Series([" Drama\t| War\t", "Sci-Fi/Fantasy"])) == [["Drama", "War"], ["Sci-Fi/Fantasy"]]


def test_an_item_table_of_tab_separated_genres_is_refused_naming_the_file_and_row(tmp_path):
    items = pd.DataFrame({"item": range(12), "genres": ["Drama"] * 11 + ["Comedy\tAction"]})
    path = write(tmp_path, "items.parquet", items)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{path}: row 12, column 'genres': 'Comedy\\tAction' is not |-separated genre names (it is tab-separated): "
            "write Drama|War, not Drama\\tWar") + "$"):
        load_interactions(write(tmp_path, "log.csv", log()), items=path)


# ------------------------------------------------------------------ the report's held-out users (item 8)
def test_the_reports_opening_counts_the_users_who_hold_a_rating_out():
    """Before: every user of the data ("768 held-out interactions of 300 users"), where the
    split section counts those who hold one out (290): a user of 2 ratings holds none."""
    rows = [(u, i, 4, 1_000_000_000 + DAY * i) for u, n in {0: 10, 1: 10, 2: 2}.items() for i in range(n)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    held = ratings.groupby("user_id")["timestamp"].rank(ascending=False) <= (
        ratings.groupby("user_id")["item_id"].transform("size") // 5)
    split = Split(ratings[~held].reset_index(drop=True), ratings[held].reset_index(drop=True), 3, 10)
    summary = split_summary(HeldOut.of(split, 3, 10))
    assert summary == {"train": 18, "held_out": 4, "users": 2}
    opening = page.introduction({"split": summary, "data": {"name": "log.csv", "has_ratings": True}})[2]
    assert opening.startswith("Held-out: each user's latest 20% of ratings (4 ratings of 2 users); training: the rest "
                              "(18).")


# ------------------------------------------------------------------ one rating throughout (item 11)
def test_a_rating_column_of_one_value_is_warned_as_carrying_no_information(tmp_path):
    """Before: fitted without a word (the reviewer's log of 5 stars throughout: a rating
    center of 8.85 stars)."""
    path = write(tmp_path, "log.csv", log().assign(rating=5))
    assert loaded_warnings(path) == [
        f"{path}: every chosen row's rating is 5 stars, so the column carries no information (no rating tells a liked "
        "item from another), and the rating response fitted to it means nothing; drop the column to fit on choices "
        "alone (the world keeps the simulator's default rating response), or give each row the stars its user gave"]
    assert loaded_warnings(write(tmp_path, "two.csv", log().assign(rating=[5] * 11 + [4]))) == []


def test_one_rating_on_the_chosen_rows_is_warned_whatever_the_impressions_hold(tmp_path):
    table = pd.concat([log().assign(rating=4, click=1), log().assign(item=99, rating=pd.NA, click=0)])
    path = write(tmp_path, "log.csv", table)
    expected = f"{path}: every chosen row's rating is 4 stars, so"
    assert [m[:len(expected)] for m in loaded_warnings(path)] == [expected]


# ------------------------------------------------------------------ a world's record of its data (items 5, 7)
def world_of(data) -> SimpleNamespace:
    """A saved world's record of ``data`` (what :func:`fitted_on_other_data` reads)."""
    folds = Folds.cut(data, 0.2, 0.2)
    recorded, _ = folds.describe()
    return SimpleNamespace(meta={"data": {**recorded, "source": data.source}, "calibration": {"split": "latest"}})


def test_the_same_log_sorted_otherwise_is_the_same_log(tmp_path):
    """Before: refused as "an earlier version of log.csv" (the record hashed the rows in file
    order), though the world fitted on it is the same."""
    table = log(users=range(20), per_user=8).assign(rating=lambda t: 1 + t["item"] % 5)
    data = load_interactions(write(tmp_path, "log.csv", table))
    shuffled = load_interactions(write(tmp_path, "log.csv", table.sample(frac=1, random_state=0)))
    assert fitted_on_other_data(world_of(data), shuffled) is None
    edited = load_interactions(write(tmp_path, "log.csv", table.assign(rating=lambda t: 1 + (t["item"] + 1) % 5)))
    assert fitted_on_other_data(world_of(data), edited) == (
        f"an earlier version of {tmp_path / 'log.csv'} (its interactions have changed since)")


def test_a_world_recorded_in_the_logs_row_order_is_still_read_so(tmp_path):
    """Worlds saved before hashed the ratings in the file's order, without ``fingerprint_of``:
    an unchanged log still reads its world, and a changed one is still refused."""
    table = log(users=range(20), per_user=8).assign(rating=lambda t: 1 + t["item"] % 5)
    data = load_interactions(write(tmp_path, "log.csv", table))
    old = world_of(data)
    old.meta["data"] = {"fingerprint": fingerprint(data.ratings), "source": data.source}
    assert fitted_on_other_data(old, data) is None
    shuffled = load_interactions(write(tmp_path, "log.csv", table.sample(frac=1, random_state=0)))
    assert fitted_on_other_data(old, shuffled) == (
        f"an earlier version of {tmp_path / 'log.csv'} (its interactions have changed since)")


@pytest.mark.parametrize("option", ["items", "users"])
def test_a_changed_item_or_user_table_is_not_answered_with_the_old_world(tmp_path, option):
    """Before: the world of the old table was kept, exit 0 (the record hashed the ratings only)."""
    table = log(users=range(20), per_user=8)
    path = write(tmp_path, "log.csv", table)
    tables = {"items": pd.DataFrame({"item": sorted(table["item"].unique()), "genres": "Drama"}),
              "users": pd.DataFrame({"user": range(20), "age": 30})}
    first = write(tmp_path, f"{option}.csv", tables[option])
    data = load_interactions(path, **{option: first})
    changed = tables[option].assign(**({"genres": "Comedy"} if option == "items" else {"age": 40}))
    again = load_interactions(path, **{option: write(tmp_path, f"{option}2.csv", changed)})
    what = "item" if option == "items" else "user"
    assert fitted_on_other_data(world_of(data), again) == (
        f"{path.resolve()} with the {what} table {first.resolve()}")
    assert fitted_on_other_data(world_of(data), load_interactions(path, **{option: first})) is None


def test_an_item_tables_genres_written_in_another_order_are_the_same_table(tmp_path):
    """Before (review h241): ``War|Drama`` for ``Drama|War`` (the same catalog) was refused as
    "an earlier version of its item table"."""
    table = log(users=range(20), per_user=8)
    path = write(tmp_path, "log.csv", table)
    items = pd.DataFrame({"item": sorted(table["item"].unique()), "genres": "Drama|War"})
    data = load_interactions(path, items=write(tmp_path, "items.csv", items))
    again = load_interactions(path, items=write(tmp_path, "items.csv", items.assign(genres="War|Drama")))
    assert fitted_on_other_data(world_of(data), again) is None
    assert (Catalog.from_dataframe(data.items).genres == Catalog.from_dataframe(again.items).genres).all()


@pytest.mark.parametrize("column, what", [("item", "item"), ("user", "user")])
def test_a_log_whose_ids_changed_without_tables_is_told_so(tmp_path, column, what):
    """Before (review h241): the same log with its item (user) ids renamed, given without
    ``--items`` (``--user-table``) as the world was fitted, was "the log without an item
    table": the world's table is the log's ids, which changed."""
    table = log(users=range(20), per_user=8)
    path = write(tmp_path, "log.csv", table)
    data = load_interactions(path)
    renamed = table.assign(**{column: table[column] + 1000})
    again = load_interactions(write(tmp_path, "log.csv", renamed))
    assert fitted_on_other_data(world_of(data), again) == (
        f"an earlier version of {path.resolve()} (its {what} ids have changed since)")
    other = load_interactions(write(tmp_path, "renamed.csv", renamed))
    assert fitted_on_other_data(world_of(data), other) == f"{path.resolve()}, whose {what} ids differ"


def test_a_log_without_ratings_says_its_rating_response_is_the_defaults(tmp_path):
    """Before: "ratings: center 3.00, ..." as if fitted."""
    data = load_interactions(write(tmp_path, "log.csv", log(users=range(20), per_user=8)))
    world = world_of(data)
    assert world.meta["data"]["has_ratings"] is False
    world.config = StatisticalUserConfig()
    c = world.config
    figures = f"center {c.rating_center:.2f}, slope {c.rating_slope:.3f}, quality {c.rating_quality:.3f}, " \
              f"noise {c.rating_noise:.3f}"
    assert ratings_line(world) == f"ratings: defaults (no ratings in the log): {figures}"
    world.meta["data"]["has_ratings"] = True
    assert ratings_line(world) == f"ratings: {figures}"
    del world.meta["data"]["has_ratings"]  # a world saved before: read as fitted, as it was shown
    assert ratings_line(world) == f"ratings: {figures}"


# ------------------------------------------------------------------ items of no genre (item 3)
def test_items_of_no_genre_share_none_and_their_pairs_are_left_out(tmp_path):
    """Before: the placeholder genre ``unknown`` of genre-less items counted as a genre two
    of them share (the reviewer's log, a third of its items without genres: 0.299, against
    0.441 for its items with genres alone)."""
    items = pd.DataFrame({"item": range(6), "genres": ["Drama", "Drama", "", "", "Comedy", "Drama|Comedy"]})
    catalog = Catalog.from_dataframe(pd.DataFrame({"item_id": range(6), "title": list("abcdef"),
                                                   "genres": read_genres(items["genres"], no_genre="unknown")}))
    assert list(catalog.genre_names) == ["Comedy", "Drama", "unknown"]
    known = dynamics.known_genres(catalog)
    assert known.tolist() == [[False, True, False], [False, True, False], [False, False, False],
                              [False, False, False], [True, False, False], [True, True, False]]
    # One session: 0 1 2 3 4 5; pairs (0,1) shared, (1,2) (2,3) (3,4) left out, (4,5) shared.
    ratings = pd.DataFrame({"user_id": 0, "item_id": range(6), "rating": 4, "timestamp": 1_000 + 60 * np.arange(6)})
    assert dynamics.genre_repetition(ratings, known, 30) == 1.0
    assert dynamics.genre_repetition(ratings, catalog.genres.numpy(), 30) == 0.6  # before: (2,3) shared as unknown
    # A session of genre-less items alone has no pair to read: left out, not a share of 0.
    two = pd.concat([ratings, ratings.assign(user_id=1, item_id=[2, 3, 2, 3, 2, 3])])
    assert dynamics.genre_repetition(two.drop_duplicates(["user_id", "item_id"]), known, 30) == 1.0


def test_calibrate_refuses_a_world_fitted_without_the_item_table_now_given(log_world, tmp_path, capsys):
    """Before: exit 0 and the world of the log without its genres, "already holds a calibrated world"."""
    world, path = log_world
    before = (world / "world.json").read_text()
    items = write(tmp_path, "items.csv", pd.DataFrame({"item": range(60), "genres": "Drama"}))
    assert calibrate_main(["--data", str(path), "--items", str(items), "--out", str(world), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"recoworld calibrate: --out {world} holds a world calibrated on {path.resolve()} without an item table, not "
        f"on the log of --data {path} with --items {items}; --force fits it again on --data (replacing that world once "
        "the fit ends), or give another --out\n")
    assert (world / "world.json").read_text() == before
    assert calibrate_main(["--data", str(path), "--out", str(world), "--quiet"]) == 0  # the log alone: its world
