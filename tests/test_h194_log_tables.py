"""How ``recoworld calibrate --data`` reads a team's log with its tables: a user table that
writes the log's ids otherwise or its codes as floats, dates written with a UTC offset, and
hours written as digits."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest

from recoworld.data.interactions import load_interactions


def write(tmp_path, name: str, table: pd.DataFrame):
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path)
    return path


def log(users=(53, 54, 55), per_user: int = 4, start: int = 1_700_000_000, step: int = 3_700) -> pd.DataFrame:
    """Each user chooses ``per_user`` items, one every ``step`` seconds."""
    rows = [(u, n * per_user + i, start + (n * per_user + i) * step) for n, u in enumerate(users)
            for i in range(per_user)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


# ------------------------------------------------------------------ user tables
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_user_table_that_writes_the_logs_ids_otherwise_is_refused_naming_both(tmp_path, suffix):
    """Before: ``00053`` matched no user of the log, and every user was fitted without the
    table's age, silently; the item table already refused the same spelling."""
    users = pd.DataFrame({"user": ["00053", "00054", "00055"], "age": [30, 40, 50]})
    with pytest.raises(ValueError, match=re.escape(
            f"users.{suffix}: the log names user 53, which the user table does not list, though it lists '00053': an "
            "id is its text, so write each id the same way in both files (the table's '00053' as the log's 53, or "
            "the reverse)")):
        load_interactions(write(tmp_path, f"log.{suffix}", log()), users=write(tmp_path, f"users.{suffix}", users))


def test_a_user_table_that_writes_a_text_id_in_another_case_is_refused(tmp_path):
    table = log().assign(user=lambda t: "u" + t["user"].astype(str))
    users = pd.DataFrame({"user": ["u53", "U54"], "gender": ["F", "M"]})
    with pytest.raises(ValueError, match=re.escape("the log names user 'u54', which the user table does not list, "
                                                   "though it lists 'U54'")):
        load_interactions(write(tmp_path, "log.csv", table), users=write(tmp_path, "users.csv", users))


def test_a_user_table_may_leave_users_out_and_list_its_own_spelling_of_another_user(tmp_path):
    """Unlisted users read as unknown. ``00053`` is a user of the log too, not a spelling
    of its ``53``: the table lists one user, and the other stays unknown."""
    table = log(users=("53", "00053", "7"))
    users = write(tmp_path, "users.csv", pd.DataFrame({"user": ["00053", "8"], "age": [30, 40]}))
    data = load_interactions(write(tmp_path, "log.csv", table), users=users)
    assert dict(zip(data.users.original_id, data.users.age)) == {"7": -1, "00053": 30, "53": -1}


def test_an_item_table_that_lists_the_logs_own_spelling_asks_for_every_item(tmp_path):
    """The log names the items ``00000`` and ``0``; the table lists the first only: its
    ``00000`` is no spelling of ``0`` to suggest."""
    table = log().astype({"item": str})
    table.loc[1, "item"] = "00000"
    items = pd.DataFrame({"item": ["00000", *map(str, range(2, 12))]})
    with pytest.raises(ValueError, match=re.escape("items.csv: the log names item 0, which the item table does not "
                                                   "list; list every item of the log")):
        load_interactions(write(tmp_path, "log.csv", table), items=write(tmp_path, "items.csv", items))



def test_codes_of_a_number_column_with_empty_cells_read_as_written_not_as_floats(tmp_path):
    """A Parquet number column with empty cells is a float column: before, the zip code
    90210 read as ``'90210.0'`` and the occupation 3 as ``'3.0'``, which no population
    spec selects (with a pandas warning about the fill value)."""
    users = pd.DataFrame({"user": [53, 54, 55], "occupation": [3, None, 12], "zip_code": [90210, 2134, None]})
    assert users["zip_code"].dtype == "float64"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_interactions(write(tmp_path, "log.parquet", log()), users=write(tmp_path, "users.parquet", users))
    assert data.users[["occupation", "zip_code"]].values.tolist() == [["3", "90210"], ["unknown", "2134"],
                                                                     ["12", "unknown"]]
    assert [str(w.message) for w in caught] == []

# ------------------------------------------------------------------ dates written with a UTC offset
def midnights(zone: str) -> list[str]:
    """Local midnight every third day from 2024-03-20, across Europe's change to summer time
    (2024-03-31), written as ISO text with the day's UTC offset."""
    days = pd.Series(pd.to_datetime("2024-03-20") + pd.to_timedelta(log().index * 3, unit="D"))
    return [day.isoformat() for day in days.dt.tz_localize(zone)]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("zone, clock", [
    ("Europe/Paris", "00:00:00 local time (UTC+01:00, UTC+02:00)"),  # before: no warning (22:00 and 23:00 UTC)
    ("Asia/Kolkata", "00:00:00 UTC+05:30"),  # before: "18:30:00 UTC"
])
def test_dates_with_a_utc_offset_are_warned_as_dates_alone_on_their_own_clock(tmp_path, suffix, zone, clock):
    table = log().assign(timestamp=midnights(zone))
    assert table["timestamp"].iloc[0] in ("2024-03-20T00:00:00+01:00", "2024-03-20T00:00:00+05:30")
    with pytest.warns(UserWarning, match=re.escape(f"log.{suffix}: every timestamp is at {clock} (dates without a "
                                                   "time of day), so no session gap splits a day")):
        load_interactions(write(tmp_path, f"log.{suffix}", table))


def test_dates_alone_without_an_offset_are_still_warned_in_utc(tmp_path):
    table = log().assign(timestamp=[text[:10] for text in midnights("Europe/Paris")])
    with pytest.warns(UserWarning, match=re.escape("log.csv: every timestamp is at 00:00:00 UTC (dates without")):
        load_interactions(write(tmp_path, "log.csv", table))


def test_times_that_meet_in_utc_only_are_not_warned_as_dates(tmp_path):
    """Midnight at +02:00 and 22:00 UTC are one time of day in UTC, but the file writes two
    (before: warned as dates alone). They are two hours apart on the file's clock, which the
    warning of times on a grid coarser than the session gap names (h235)."""
    texts = [text if i % 2 else text[:10] + "T22:00:00Z" for i, text in enumerate(midnights("Etc/GMT-2"))]
    assert texts[:2] == ["2024-03-20T22:00:00Z", "2024-03-23T00:00:00+02:00"]
    with pytest.warns(UserWarning) as caught:
        data = load_interactions(write(tmp_path, "log.csv", log().assign(timestamp=texts)))
    assert [str(w.message).split(": ", 1)[1][:62] for w in caught] == [
        "every timestamp is on a 2-hour grid (22:00:00 local time (UTC+"]
    assert (data.ratings["timestamp"] % 86_400 == 22 * 3600).all()


# ------------------------------------------------------------------ hours written as digits
def test_unix_seconds_of_the_2030s_are_not_taken_for_hours(tmp_path):
    table = log(start=2_023_111_400, step=3_700)  # a time of 2034 that spells 2023-11-14 00:00, and others
    assert len(load_interactions(write(tmp_path, "log.csv", table)).ratings) == len(table)
