"""How ``recoworld calibrate --data`` tells how to read digit dates held as text, refuses
counts of clicks with the ``click`` column they give, and spells a large table's ids
without a Python call per id."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest

from recoworld.data import interactions
from recoworld.data.interactions import load_interactions
from test_h194_log_tables import log, write

LAYOUT = "the layout is user, item, timestamp [, rating] [, click], and a column outside it is ignored"
CLICK = "'click' is 1 where the user chose the row's item and 0 for an impression left unchosen"


# ------------------------------------------------------------------ digit dates held as text
@pytest.mark.parametrize("written", [
    lambda days: days + ".0",  # a float column written as text: "20231114.0"
    lambda days: " " + days,  # with a space
    lambda days: (days + ".0").astype("category"),  # a Parquet dictionary of such texts
])
def test_the_fix_for_digit_dates_held_as_text_reads_them(tmp_path, written):
    """Text that reads as the number 20231114 but is not its digits: before, the fix given
    (``.astype(str)``) failed on it ("unconverted data remains: .0")."""
    times = pd.to_datetime(log().timestamp, unit="s")
    path = write(tmp_path, "log.parquet", log().assign(timestamp=written(times.dt.strftime("%Y%m%d"))))
    refused = pd.read_parquet(path)
    with pytest.raises(ValueError, match="write the times as dates") as error:
        load_interactions(path)
    fix = re.search(r"log\['timestamp'\] = (pd\.to_datetime\(.*\))$", str(error.value)).group(1)
    assert fix == "pd.to_datetime(log['timestamp'].astype(float).astype('int64').astype(str), format='%Y%m%d')"
    refused["timestamp"] = eval(fix, {"pd": pd, "log": refused})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dates alone are at midnight: warned
        fixed = load_interactions(write(tmp_path, "fixed.parquet", refused)).ratings.timestamp
    assert (fixed.to_numpy() == (times.dt.floor("D") - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).all()


def test_digit_dates_held_as_their_digits_keep_the_short_fix(tmp_path):
    days = pd.to_datetime(log().timestamp, unit="s").dt.strftime("%Y%m%d")
    with pytest.raises(ValueError, match=re.escape("log['timestamp'] = pd.to_datetime(log['timestamp'].astype(str), "
                                                   "format='%Y%m%d')")):
        load_interactions(write(tmp_path, "log.parquet", log().assign(timestamp=days)))


# ------------------------------------------------------------------ counts of clicks
COUNTS = [0, 1, 2, 5]  # per user: an impression, a click, two clicks, five


@pytest.mark.parametrize("column", ["clicks", "click"])
def test_counts_of_clicks_are_refused_with_the_click_column_to_write(tmp_path, column):
    """Before: ``clicks`` was told to be renamed ``click``, which then refused the count 2 as
    no click (0 or 1), without a fix. The fix given reads a row clicked twice as one choice."""
    table = log().assign(**{column: COUNTS * 3})
    fix = f"if it counts the user's clicks on the item, write log['click'] = (log[{column!r}] > 0).astype(int)"
    message = (f"log.csv: column 'clicks' looks like 'click', but holds counts (row 3: 2), and {CLICK}; {fix}, or "
               f"drop it if it holds something else: {LAYOUT}" if column == "clicks" else
               f"log.csv: row 3, column 'click': 2 is not a click (0 or 1): the column holds counts, and {CLICK}; "
               f"{fix}")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_interactions(write(tmp_path, "log.csv", table))
    table["click"] = (table[column] > 0).astype(int)
    data = load_interactions(write(tmp_path, "fixed.csv", table))
    assert len(data.ratings) == 9  # the clicked rows, each once


@pytest.mark.parametrize("values", [[0, 1] * 6, [0.5, 1, 2, 5] * 3, [-1, 1, 2, 5] * 3, [True, False] * 6])
def test_a_clicks_column_that_counts_nothing_is_told_to_be_renamed(tmp_path, values):
    """Clicks of 0 and 1 (or true/false) are the ``click`` column misnamed; a rate or a code of
    -1 is no count: renamed or dropped, as before."""
    with pytest.raises(ValueError, match=re.escape("log.csv: column 'clicks' looks like 'click'; rename it 'click' "
                                                   f"(or drop it if it holds something else): {LAYOUT}")):
        load_interactions(write(tmp_path, "log.csv", log().assign(clicks=values)))


# ------------------------------------------------------------------ a table's respellings
SPELLINGS = [
    # (the log's unlisted ids, the table's other ids, the respellings found)
    (["53", "u7", "x"], ["00053", "53.0", "U7 ", "y"], {"53": "00053", "u7": "U7 "}),
    (["0.5", "Straße", "٥٣"], ["5e-1", "STRASSE", "53"], {"0.5": "5e-1", "Straße": "STRASSE", "٥٣": "53"}),
    (["0", "1e400", "10"], ["-0.0", "1E400", "1_0", "+10"], {"0": "-0.0", "1e400": "1E400", "10": "1_0"}),
    # " 7\x1c" is no number (int() strips no \x1c, which str.strip does): the name "7", not the number 7.
    (["12345678901234567890", "7"], ["012345678901234567890", " 7\x1c", "7.000"],
     {"12345678901234567890": "012345678901234567890", "7": "7.000"}),
    (["1" * 4_301], ["01" + "1" * 4_300], {}),  # past int()'s digits: a name, which "0111..." is not
]


@pytest.mark.parametrize("unlisted, others, respelled", SPELLINGS)
def test_respellings_are_those_of_each_ids_number_or_name(unlisted, others, respelled):
    """The first of the table's ids (in its order) that writes the same number (``00053``,
    ``53.0``, ``5e-1``, any script's digits), or the same name but for case and edge spaces."""
    assert interactions._respellings(unlisted, pd.Index(others, dtype=object)) == respelled
