"""How ``recoworld calibrate --data`` reads a team's log: misnamed optional columns, dates
written as digits, times out of range, CSV text cells that pandas would read as missing,
dates in a zone with daylight saving, ids spelled otherwise and rating scales from 0."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from recoworld.data.interactions import load_interactions

DAY = 86_400


def write(tmp_path, name: str, table: pd.DataFrame):
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path)
    return path


def log(n_users: int = 3, per_user: int = 4, start: int = 1_700_000_000, step: int = 3_700) -> pd.DataFrame:
    """Each user chooses ``per_user`` items, one every ``step`` seconds."""
    rows = [(u, u * per_user + i, start + (u * per_user + i) * step) for u in range(n_users) for i in range(per_user)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


# ------------------------------------------------------------------ optional columns named otherwise
@pytest.mark.parametrize("name, column", [("Click", "click"), ("clicked", "click"), (" click", "click"),
                                          ("Rating", "rating"), ("ratings", "rating"), (" rating", "rating")])
def test_an_optional_column_named_otherwise_is_refused_not_ignored(tmp_path, name, column):
    """Ignored, a ``Click`` column would read each impression as a choice; a ``Rating`` one
    would fit without the ratings."""
    table = log().assign(**{name: 1})
    with pytest.raises(ValueError, match=re.escape(
            f"log.csv: column {name!r} looks like {column!r}; rename it {column!r} (or drop it if it holds something "
            "else): the layout is user, item, timestamp [, rating] [, click], and a column outside it is ignored")):
        load_interactions(write(tmp_path, "log.csv", table))


def test_other_columns_stay_ignored(tmp_path):
    """Columns of other meanings, whatever their names hold of the layout's (``duration``, ``rank``)."""
    table = log().assign(duration=30, rank=1, clip=0, session=7)
    assert len(load_interactions(write(tmp_path, "log.csv", table)).ratings) == len(table)


@pytest.mark.parametrize("table, column", [("users", "Age"), ("users", "Zip Code"), ("users", "zipcode"),
                                           ("items", "titles"), ("items", "Genres")])
def test_a_table_column_named_otherwise_is_refused_not_ignored(tmp_path, table, column):
    optional = {"Age": "age", "Zip Code": "zip_code", "zipcode": "zip_code", "titles": "title", "Genres": "genres"}
    key = "user" if table == "users" else "item"
    path = write(tmp_path, f"{table}.csv", pd.DataFrame({key: range(12), column: "x"}))
    with pytest.raises(ValueError, match=re.escape(f"{table}.csv: column {column!r} looks like {optional[column]!r}; "
                                                   f"rename it {optional[column]!r}")):
        load_interactions(write(tmp_path, "log.csv", log()), **{table: path})


def test_names_near_an_optional_column_in_letters_alone_are_other_columns(tmp_path):
    """Only the name itself but for case, spaces or an ending is refused: ``clock`` is not
    ``click``, nor ``dating`` a ``rating``, nor ``wage`` an ``age`` (difflib finds them near)."""
    table = log().assign(clock=1, dating=2, slick=0, rated=1)
    users = pd.DataFrame({"user": range(3), "wage": 9, "page": 1, "gender_id": 0, "occupation_id": 1, "zip": "x"})
    items = pd.DataFrame({"item": range(12), "tile": "t", "entitle": 1, "genre_ids": "3|4", "title": "a"})
    data = load_interactions(write(tmp_path, "log.csv", table), items=write(tmp_path, "items.csv", items),
                             users=write(tmp_path, "users.csv", users))
    assert len(data.ratings) == len(table) and (data.ratings.rating == 0).all()
    assert (data.users.age == -1).all() and (data.users.zip_code == "unknown").all()
    assert (data.items.title == "a").all() and data.items.genres.map(lambda g: g == ["unknown"]).all()


def test_an_item_table_genre_column_is_refused_as_genres(tmp_path):
    items = pd.DataFrame({"item": range(12), "genre": "Drama"})
    with pytest.raises(ValueError, match=re.escape("items.csv: column 'genre' looks like 'genres'; rename it "
                                                   "'genres'")):
        load_interactions(write(tmp_path, "log.csv", log()), items=write(tmp_path, "items.csv", items))


def test_a_comma_space_csv_is_told_to_rename_every_spaced_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user, item, timestamp, rating\n1, 2, 3, 4\n")
    with pytest.raises(ValueError, match="missing column") as error:
        load_interactions(path)
    assert str(error.value).endswith("; rename ' item' to 'item', ' timestamp' to 'timestamp', ' rating' to 'rating'")


# ------------------------------------------------------------------ dates as digits
@pytest.mark.parametrize("form, written, seconds", [
    ("%Y%m%d", "20231114 is the date 2023-11-14", "1970-08-23 03:45:14 UTC"),
    ("%Y%m%d%H%M%S", "20231114221320 is the date 2023-11-14 22:13:20", "after the year 5000"),
    # An hourly partition's name, read as a time of 2034, the next hour 1 second later (every
    # user's log one session, without a word), and minutes, read as milliseconds.
    ("%Y%m%d%H", "2023111422 is the date 2023-11-14 22:00:00", "2034-02-09 15:23:42 UTC"),
    ("%Y%m%d%H%M", "202311142213 is the date 2023-11-14 22:13:00", "after the year 5000"),
])
def test_dates_written_as_digits_are_refused_saying_how_to_read_them(tmp_path, form, written, seconds):
    """``20231114`` is not a time of August 1970, and ``20231114221320`` not milliseconds."""
    times = pd.to_datetime(log().timestamp, unit="s")
    table = log().assign(timestamp=times.dt.strftime(form).astype(np.int64))
    with pytest.raises(ValueError, match=re.escape(
            f"log.csv: row 1, column 'timestamp': {written} written as digits, but a number is read as Unix "
            f"seconds ({seconds}); write the times as dates: log['timestamp'] = "
            f"pd.to_datetime(log['timestamp'].astype(str), format={form!r})")):
        load_interactions(write(tmp_path, "log.csv", table))
    # The fix it gives reads the same times as the Unix seconds they are.
    table["timestamp"] = pd.to_datetime(table["timestamp"].astype(str), format=form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dates alone are at midnight: warned
        fixed = load_interactions(write(tmp_path, "fixed.csv", table)).ratings.timestamp
    unit = {"%Y%m%d": "D", "%Y%m%d%H": "h", "%Y%m%d%H%M": "min"}.get(form)
    expected = (times.dt.floor(unit) if unit else times) - pd.Timestamp(0)
    assert (fixed.to_numpy() == expected // pd.Timedelta(seconds=1)).all()


@pytest.mark.parametrize("row, mark", [(0, 0), (5, 20240230)])
def test_dates_written_as_digits_are_refused_despite_a_row_that_is_no_date(tmp_path, row, mark):
    """A ``0`` for an unknown time, or a typo, does not make the other rows seconds of 1970:
    the refusal names it, as the dates' reading would fail on it."""
    days = pd.to_datetime(log().timestamp, unit="s").dt.strftime("%Y%m%d").astype(np.int64)
    first = 1 if row == 0 else 0
    date = pd.to_datetime(str(days[first]), format="%Y%m%d")
    when = pd.Timestamp(int(days[first]), unit="s")
    with pytest.raises(ValueError, match=re.escape(
            f"log.csv: row {first + 1}, column 'timestamp': {days[first]} is the date {date.date()} written as digits, "
            f"but a number is read as Unix seconds ({when:%Y-%m-%d %H:%M:%S} UTC); row {row + 1}: {mark} is no date "
            "(give that row its time, or drop it); write the times as dates: log['timestamp'] = "
            "pd.to_datetime(log['timestamp'].astype(str), format='%Y%m%d')")):
        load_interactions(write(tmp_path, "log.csv", log().assign(timestamp=days.where(days.index != row, mark))))


def test_unix_seconds_are_not_taken_for_digit_dates(tmp_path):
    table = log(start=19_000_125, step=1)  # Unix seconds of August 1970, 19000132 no calendar date
    assert len(load_interactions(write(tmp_path, "log.csv", table)).ratings) == len(table)


# ------------------------------------------------------------------ times out of range
@pytest.mark.parametrize("name, value, shown, when", [
    ("log.csv", "0001-01-01T00:00:00Z", "'0001-01-01T00:00:00Z'", "before 1970-01-01"),
    ("log.csv", "9999-12-31", "'9999-12-31'", "after the year 5000"),
    ("log.csv", "1900-01-01 00:00:00", "'1900-01-01 00:00:00'", "before 1970-01-01"),
    ("log.csv", -3_600, "-3600", "before 1970-01-01 in Unix seconds"),
    ("log.parquet", np.datetime64("0001-01-01", "us"), "Timestamp('0001-01-01 00:00:00')", "before 1970-01-01"),
    ("log.parquet", np.datetime64("9999-12-31", "us"), "Timestamp('9999-12-31 00:00:00')", "after the year 5000"),
])
def test_times_no_log_holds_are_refused_naming_the_row(tmp_path, name, value, shown, when):
    """Marks of an unknown time (0001-01-01, 9999-12-31), outside pandas' nanoseconds too."""
    table = log()
    times = (pd.to_datetime(table.timestamp, unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, str)
             else table.timestamp if isinstance(value, int) else
             pd.Series(pd.to_datetime(table.timestamp, unit="s").to_numpy().astype("datetime64[us]")))
    times = times.astype(object)
    times.iloc[5] = value
    if name.endswith(".parquet"):
        times = pd.Series(np.array(list(times), dtype="datetime64[us]"))
    with pytest.raises(ValueError, match=re.escape(
            f"{name}: row 6, column 'timestamp': {shown} is {when}, not a time of a log of interactions (a mark for "
            "an unknown time?); give the row the time it happened, or drop it")):
        load_interactions(write(tmp_path, name, table.assign(timestamp=times)))


def test_milliseconds_are_still_told_to_be_divided(tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            "row 1, column 'timestamp': 1700000000000 is after the year 5000 in Unix seconds; the times look like "
            "milliseconds (or finer): divide the column by 1000")):
        load_interactions(write(tmp_path, "log.csv", log().assign(timestamp=lambda t: t.timestamp * 1000)))


def test_times_counted_from_the_log_start_are_read(tmp_path):
    assert load_interactions(write(tmp_path, "log.csv", log(start=0))).ratings.timestamp.min() == 0


# ------------------------------------------------------------------ CSV text that pandas reads as missing
def test_csv_text_cells_are_read_as_written_as_in_parquet(tmp_path):
    """The user ``NA`` and the titles ``None``, ``NA``, ``null`` are text; an empty title
    still reads as the item's id."""
    names = ["NA", "None", "null"]
    table = log().assign(user=lambda t: [names[u] for u in t.user])
    items = pd.DataFrame({"item": range(12), "title": ["None", "NA", "null", "nan", "N/A", ""] + ["t"] * 6})
    read = {suffix: load_interactions(write(tmp_path, f"log.{suffix}", table),
                                      items=write(tmp_path, f"items.{suffix}", items))
            for suffix in ("csv", "parquet")}
    for data in read.values():
        assert sorted(data.users.original_id) == sorted(names)
        assert list(data.items.title[:6]) == ["None", "NA", "null", "nan", "N/A", "5"]
    assert read["csv"].ratings.equals(read["parquet"].ratings)


def test_csv_numbers_marked_missing_are_still_missing(tmp_path):
    table = log().astype({"timestamp": object})
    table.loc[2, "timestamp"] = "NA"
    with pytest.raises(ValueError, match=re.escape("row 3, column 'timestamp': nan is not a time (the cell is empty)")):
        load_interactions(write(tmp_path, "log.csv", table))


# ------------------------------------------------------------------ dates alone in a zone with daylight saving
def test_local_midnight_in_a_daylight_saving_zone_is_warned_as_dates_alone(tmp_path):
    """Midnight in Paris is 23:00 UTC in winter and 22:00 in summer: the clock of the
    column's zone tells that the log holds dates alone."""
    days = pd.Series(pd.to_datetime("2024-03-20") + pd.to_timedelta(log().index * 3, unit="D"))
    path = write(tmp_path, "log.parquet", log().assign(timestamp=days.dt.tz_localize("Europe/Paris")))
    with pytest.warns(UserWarning, match=re.escape("log.parquet: every timestamp is at 00:00:00 Europe/Paris (dates "
                                                   "without a time of day), so no session gap splits a day")):
        load_interactions(path)
    timed = days + pd.to_timedelta(log().index * 7, unit="min")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timed = log().assign(timestamp=timed.dt.tz_localize("Europe/Paris"))
        load_interactions(write(tmp_path, "timed.parquet", timed))


# ------------------------------------------------------------------ ids and scales
def test_an_item_spelled_otherwise_in_the_item_table_is_named(tmp_path):
    items = pd.DataFrame({"item": [f"{i:05d}" for i in range(12)]})
    with pytest.raises(ValueError, match=re.escape(
            "items.csv: the log names item 0, which the item table does not list, though it lists '00000': an id is "
            "its text, so write each id the same way in both files (the table's '00000' as the log's 0, or the "
            "reverse)")):
        load_interactions(write(tmp_path, "log.parquet", log()), items=write(tmp_path, "items.csv", items))
    items = pd.DataFrame({"item": range(1, 12)})
    with pytest.raises(ValueError, match=re.escape("the log names item 0, which the item table does not list; list "
                                                   "every item of the log")):
        load_interactions(write(tmp_path, "log.parquet", log()), items=write(tmp_path, "items2.csv", items))


def test_a_scale_from_zero_is_told_a_map_that_gives_stars(tmp_path):
    """Halving 0..10 and rounding up gives 0 stars, refused again: the advice for a scale
    from 0 maps it onto 1..5."""
    table = log().assign(rating=np.arange(12) % 11)
    with pytest.raises(ValueError, match=re.escape(
            "row 1, column 'rating': 0 is not a rating of 1..5 stars: the column's ratings run 0..10; the world's "
            "users give whole stars 1..5, so map another scale onto them first (half stars 0.5..5: round up; 1..10: "
            "halve and round up; 0..10: 1 + round(4 * rating / 10), or, where 0 marks a missing rating, drop those "
            "rows), or drop the column to fit on choices alone")):
        load_interactions(write(tmp_path, "log.csv", table))
    mapped = table.assign(rating=1 + np.round(4 * table.rating / 10).astype(int))
    assert load_interactions(write(tmp_path, "mapped.csv", mapped)).ratings.rating.between(1, 5).all()
