"""How ``recoworld calibrate --data`` reads a large log with its tables without a Python loop
per row or per id where no answer can come of it, and how the fix it gives for digit dates
reads the very column it refused."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from recoworld.data import interactions
from recoworld.data.interactions import load_interactions
from test_h194_log_tables import log, write


def calls(monkeypatch, name: str) -> list:
    """The first argument of each call of the module's function ``name``, recorded as it runs."""
    given, function = [], getattr(interactions, name)

    def recorded(texts, *args, **kwargs):
        given.append(texts)
        return function(texts, *args, **kwargs)

    monkeypatch.setattr(interactions, name, recorded)
    return given


# ------------------------------------------------------------------ offsets of a large log
def test_a_log_whose_first_rows_are_dates_alone_is_not_parsed_text_by_text(tmp_path, monkeypatch):
    """A backfill of dates alone first, then times of day: the whole column's clock is read,
    and before, its offsets too, one parse per distinct text (21 s for a million). Its UTC
    times of day, more than any log writes offsets, tell it holds no dates alone."""
    first = [f"2023-12-{1 + i % 28:02d}T00:00:00+01:00" for i in range(1_000)]
    later = (pd.Timestamp("2024-01-01", tz="Europe/Berlin") + pd.to_timedelta(np.arange(200) * 3_607, unit="s"))
    table = pd.DataFrame({"user": np.arange(1_200) % 7, "item": np.arange(1_200),
                          "timestamp": first + list(later.strftime("%Y-%m-%dT%H:%M:%S%z"))})
    parsed = calls(monkeypatch, "_utc_offsets")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_interactions(write(tmp_path, "log.csv", table))
    assert len(data.ratings) == 1_200
    assert [len(texts) for texts in parsed] == [1_000]  # the first rows' only: before, [1_000, 1_200]


def test_dates_alone_at_every_offset_in_use_are_still_warned(tmp_path):
    """The bound on UTC times of day stands above the offsets clocks write: local midnight
    at 40 offsets, past the first 1,000 rows, is still warned as dates alone."""
    offsets = [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in range(-570, 630, 30)]
    assert len(offsets) == 40 and offsets[:2] == ["-09:30", "-09:00"]
    texts = [f"2024-03-{1 + i % 28:02d}T00:00:00{'+01:00' if i < 1_000 else offsets[i % 40]}" for i in range(1_200)]
    table = pd.DataFrame({"user": np.arange(1_200) % 7, "item": np.arange(1_200), "timestamp": texts})
    with pytest.warns(UserWarning, match=re.escape("log.csv: every timestamp is at 00:00:00 local time (UTC-09:30, "
                                                   "UTC-09:00,")):
        load_interactions(write(tmp_path, "log.csv", table))


# ------------------------------------------------------------------ digit dates of a float column
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("dtype", ["int64", "float64"])
@pytest.mark.parametrize("form", ["%Y%m%d", "%Y%m%d%H"])
def test_the_fix_the_digit_date_refusal_gives_reads_the_refused_column(tmp_path, suffix, dtype, form):
    """A float column (one that held an empty cell) writes ``2024030114.0``, which before, the
    fix given (``.astype(str)``) failed on: "unconverted data remains: .0". The fix, run on the
    file as pandas reads it, gives the times the digits write."""
    times = pd.to_datetime(log().timestamp, unit="s")
    path = write(tmp_path, f"log.{suffix}", log().assign(timestamp=times.dt.strftime(form).astype(dtype)))
    refused = pd.read_csv(path) if suffix == "csv" else pd.read_parquet(path)
    assert refused["timestamp"].dtype == dtype
    with pytest.raises(ValueError, match="write the times as dates") as error:
        load_interactions(path)
    fix = re.search(r"log\['timestamp'\] = (pd\.to_datetime\(.*\))$", str(error.value)).group(1)
    refused["timestamp"] = eval(fix, {"pd": pd, "log": refused})
    digits = ".astype(str)" if dtype == "int64" else ".astype('int64').astype(str)"
    assert fix == f"pd.to_datetime(log['timestamp']{digits}, format={form!r})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dates alone are at midnight: warned
        fixed = load_interactions(write(tmp_path, f"fixed.{suffix}", refused)).ratings.timestamp
    expected = times.dt.floor("D" if form == "%Y%m%d" else "h") - pd.Timestamp(0)
    assert (fixed.to_numpy() == expected // pd.Timedelta(seconds=1)).all()


# ------------------------------------------------------------------ user tables of a large log
@pytest.mark.parametrize("prefix", ["u", ""])
def test_a_user_table_of_the_logs_own_users_parses_no_id(tmp_path, monkeypatch, prefix):
    """A table that lists some of the log's users and no one else writes no user otherwise:
    before, each user it left out was parsed as a number, in turn (3 s for a million)."""
    log_users = interactions._ids(pd.DataFrame({"user": [f"{prefix}{u}" for u in range(10)]}), "log", "user")
    users = write(tmp_path, "users.csv", pd.DataFrame({"user": [f"{prefix}{u}" for u in range(5)], "age": 30}))
    parsed = calls(monkeypatch, "_number")
    table = interactions.read_users(users, log_users)
    assert dict(zip(table.user, table.age.fillna(-1))) == {f"{prefix}{u}": 30 if u < 5 else -1 for u in range(10)}
    assert parsed == []  # before: one per user it leaves out


def test_a_user_table_with_users_of_its_own_parses_no_text_id_as_a_number(tmp_path, monkeypatch):
    """A table of every customer (the log's users, the unlisted ``u7`` among them, and others)
    is read for another's spelling of a log's user, and refused for ``U7``; ids that hold no
    number's characters are not parsed as numbers (before: each of both sides')."""
    table = log(users=[f"u{u}" for u in range(10)], per_user=2)
    users = pd.DataFrame({"user": [*(f"u{u}" for u in range(7)), "U7", "u10", " u11"], "age": 30})
    parsed = calls(monkeypatch, "_number")
    with pytest.raises(ValueError, match=re.escape("users.csv: the log names user 'u7', which the user table does not "
                                                   "list, though it lists 'U7'")):
        load_interactions(write(tmp_path, "log.csv", table), users=write(tmp_path, "users.csv", users))
    assert parsed == []  # before: 6, the table's U7, u10, " u11" and the log's u7, u8, u9


@pytest.mark.parametrize("listed, log_id, twin", [
    (["00053", "7"], "53", "00053"),
    (["5_3", "x"], "53", "5_3"),
    (["\u0665\u0663"], "53", "\u0665\u0663"),  # 53 in Arabic-Indic digits, which int() reads
    (["5.3e1"], "53", "5.3e1"),
    ([" Item7 "], "item7", " Item7 "),
    (["u53"], "53", None),
    (["inf"], "INF", "inf"),  # no number (float() reads it, but it is no id's): the same text in another case
])
def test_the_ids_parsed_as_numbers_are_those_int_and_float_read(tmp_path, listed, log_id, twin):
    """Only the ids of a number's characters are parsed as numbers: still every number that
    Python's ``int`` and ``float`` read, in any script, is found under its other spelling."""
    table = log().assign(user=[log_id, "other"] * 6)
    users = write(tmp_path, "users.parquet", pd.DataFrame({"user": listed, "age": 30}))
    if twin is None:  # read: the log's 53 is unknown to the table
        data = load_interactions(write(tmp_path, "log.parquet", table), users=users)
        assert (data.users.age == -1).all()
        return
    shown = log_id if log_id.isdigit() else repr(log_id)
    with pytest.raises(ValueError, match=re.escape(f"users.parquet: the log names user {shown}, which the user table "
                                                   f"does not list, though it lists {twin!r}")):
        load_interactions(write(tmp_path, "log.parquet", table), users=users)
