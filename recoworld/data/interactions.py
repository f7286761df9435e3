"""Any interaction log, in a documented tabular layout, as the tables the calibration reads.

``recoworld calibrate --data PATH`` fits the statistical users to a team's own log through
:func:`load_interactions`. The files are CSV (``.csv``, comma-separated, with a header
row) or Parquet (``.parquet``, ``.pq``).

**The log** (``PATH``), one row per interaction:

=============  =========  ==================================================================
column         required   meaning
=============  =========  ==================================================================
``user``       yes        the user's id (any text or integer)
``item``       yes        the item's id (any text or integer)
``timestamp``  yes        when: Unix seconds (a number, not milliseconds) or a date and time
                          (ISO 8601 text, or a Parquet timestamp; text of another layout,
                          ``26/11/2023 21:19``, is refused with the format that reads it); a
                          date alone reads as midnight, and a log of dates alone (midnight on
                          the clock of a Parquet column's zone, or of the UTC offset a text
                          writes: ``2024-03-01T00:00:00+02:00``) is read with a warning, as
                          its sessions are whole days, as is a log of times on a grid no finer
                          than the session gap of 30 minutes (times to the hour), whose
                          sessions are cut at the grid's steps; dates written as digits
                          (``20240301``) are refused where all rows but one (or 1 in 100) are, the others
                          (a ``0``, a typo) named, as are times before 1970 or after the
                          year 5000 (``0001-01-01``, ``9999-12-31``: marks of an unknown
                          time), and times that span more than a century (milliseconds
                          counted from the log's start, read as seconds, run from 1970 to 2138)
``rating``     no         stars, an integer 1..5 on every chosen row (map other scales onto
                          whole stars first: half stars 0.5..5 round up, 1..10 halve and
                          round up, 0..10 to ``1 + round(4 * rating / 10)``); true/false
                          values (a like) are refused, not read as 1 star; one rating on
                          every chosen row is read with a warning: it carries no information
``click``      no         1 when the user chose the item, 0 for an impression left unchosen
                          (or true/false); counts of clicks (``0, 1, 2, 5``), in ``click``
                          or in a ``clicks`` column, are refused with the fix,
                          ``click = clicks > 0`` (a choice made again is one choice)
=============  =========  ==================================================================

Other columns are ignored (a column of the layout named twice is refused: which one holds
the users is not for the reader to guess), but one named as an absent optional column but
for case, spaces or an ending (``Click``, ``clicked``, ``ratings``, ``" rating"`` of a
``", "``-separated CSV; not ``clock`` or ``dating``) is refused: ignored, it would read
impressions as choices, or drop the ratings, without a word. So are those of the item and
user tables (``Genre``, ``zipcode``). A Parquet file's
named index (``df.set_index("user")``) reads as a column, and an unnamed one (the row
labels of a filtered or sorted table) is dropped: rows count in the file's order. Rows with
``click = 0`` are checked and then left out: the fit reads what users chose (the click
level stays an assumption, ``exposure_odds``); their ``rating`` is not read, and may be
empty, and they may repeat. A (user, item) pair chosen more than once keeps its first
choice (the choice model is one of first choices, and the world's users never choose an
item twice); the sessions and returns, too, are cut from first choices, so in a log of
repeat consumption (songs played again) a session of replays only is not seen. Two chosen
rows of the same (user, item, timestamp) are refused as a duplicated row. Without
``rating``, the world keeps the simulator's default rating response, and the items'
quality (their mean rating) carries no weight in the choices.

The calibration refuses (:class:`~recoworld.apps.calibrate.folds.CalibrationDataError`) a
catalog of fewer than 50 items, a log in which no user has enough interactions for a
validation fold (6 at the default fractions), a log in which no user's interactions
happened at two different times, choices its model cannot rank above chance, sessions
without returns or whose gaps have no spread or too heavy a tail, and a log too large for the
memory available (all but the choices are refused before any fit runs):
the choice fit holds a dense table of every (user, item) pair, so its memory grows with
users times items (:func:`~recoworld.apps.calibrate.folds.fit_memory`); ``--users N`` fits
a random subset of the users, and the message says how many fit.

**The item table** (``--items PATH``, optional): ``item`` (required), ``title`` and
``genres`` (``|``-separated names, a list in Parquet, or a number: a genre code; a Python
list written as text, ``['Drama', 'War']``, and comma-, semicolon- or tab-separated names,
``Drama, War`` (or ``、``-separated), are refused; a genre whose name holds a comma, ``Arts, Crafts & Sewing``, is
an entry of a Parquet list), read as :func:`recoworld.catalog.read_genres` reads them
(and :meth:`~recoworld.catalog.Catalog.from_dataframe` with them); an item whose cell is
empty has the genre ``unknown``. Every item of the log must be listed; listed items nobody
chose stay in the catalog. Without it, items are titled by their id and share one genre,
``unknown``.

**The user table** (``--user-table PATH``, optional): ``user`` (required), ``age`` (whole
years, 0..150), ``gender``, ``occupation``, ``zip_code`` (text, or numbers read as ids are:
the code ``3``, not ``3.0``, of a float column); population specs select users by these
columns. Missing values read as ``unknown`` (age ``-1``, which the table may also write);
another mark for an unknown age, such as ``999``, is refused: leave the cell empty. Users of
the log that it does not list read as unknown in every column.

In a Parquet file, a binary column (text stored as bytes, as some writers store it) reads
as the UTF-8 text it holds, as the same column of a CSV would (the id ``b"u0"`` is the user
``u0``), and is refused where it is not UTF-8. A list or record (struct) column where a row
holds one value (an id, a title, a gender, ...) is refused, as is a record of genres:
``genres`` alone may be a list, of names.

An id is its text as the file writes it: ``007`` and ``7`` are two users, and the integer
``10`` of a Parquet log is the item ``10`` (or ``10.0``) of a CSV item table. In a CSV, only
an empty cell of an id or text column is missing: the user ``NA`` and the title ``None``
are text, as in Parquet. Ids become dense, 0-based integers in sorted order of the original
ids: as numbers where every id of the column is one (``2`` before ``10``), else as text
(``u10`` before ``u2``). Rows count from 1, after the header, in every error. A log's id
that the item or user table writes otherwise (``00053`` for the log's integer ``53``, ``U7``
for ``u7``), and does not list as written, is refused, both spellings named: write each id
the same way in both files.

The fit depends on the ids through this order only: its random draws (the choice model's
starting vectors, the users whose sessions it simulates, the ``--users N`` subsample) and its
sums run in dense-id order. So the same log gives the same world whichever type its files
give the ids (the integer ``10``, the text ``"10"`` of a Parquet file, ``10.0``), and ids
renamed in their own order (``u01``, ``u02``, ..., ``u10`` for ``1``, ``2``, ..., ``10``)
give the same world too. Ids renamed so that their order changes (``u1``, ``u2``, ...,
``u10``: ``u10`` now sorts before ``u2``) give a world that differs from the first within
the fit's own randomness, as a fit with another seed would: another draw of the same fit,
no better and no worse.

The dense ids are the world's: a run's logs show items by them (``slate``), and its users
are numbered by them (``user_id``). Each keeps its original id, as text (``10``, not
``10.0``), in the ``original_id`` column of the items and users tables, which the world
keeps: :meth:`CalibratedWorld.original_item_id
<recoworld.simulators.calibrated.CalibratedWorld.original_item_id>` and
:meth:`~recoworld.simulators.calibrated.CalibratedWorld.dense_item_id` (and their user
twins) map a run's ids back to the log's, and the log's to the world's.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.catalog import GenreCellError, read_genres

LOG_COLUMNS = ("user", "item", "timestamp")
#: The cells that ``pandas.read_csv`` reads as missing by default (its documented ``na_values``
#: list), kept for the columns that are not ids or text: there ``NA`` or ``None`` is a name.
CSV_MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                         "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
UNKNOWN = "unknown"
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: Field separators that a header read as one column shows, by name.
SEPARATORS = {"\t": "tab", ";": "semicolon", "|": "pipe"}
#: An id written as a whole number with a decimal point (``10.0``), as a CSV float column writes it.
WHOLE_DECIMAL = re.compile(r"-?[0-9]+\.0*")
#: The characters of the texts that ``int`` and ``float`` read as numbers (``" 0053"``, ``"5.3e1"``, ``"5_3"``,
#: any script's digits): an id of another (``u53``) names no number, told without parsing it.
NUMBER_CHARACTERS = re.compile(r"[\d\s+\-._eE]+")
#: Unix seconds of the year 5138: a larger time is in milliseconds (or finer), not seconds.
LATEST_SECONDS = 1e11
#: Unix time 0, in seconds: the unit subtracts from dates of any unit (a Parquet ``timestamp[us]``
#: of the year 1 too, which pandas' nanoseconds, 1677..2262, do not reach).
EPOCH = pd.Timestamp(0, unit="s", tz="UTC")
#: Dates written as integers (``20240301``, ``20240301140500``; to the hour, ``2024030114``, as
#: hourly partitions name them, or to the minute): their strptime format, by digit count. As Unix
#: seconds, the hours are times of 2030..2036, an hour apart 1 second, and the minutes milliseconds.
DIGIT_DATES = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
#: The years (first and last) in which an integer of ``DIGIT_DATES`` is refused as a date, not read as seconds.
DIGIT_DATE_YEARS = (1900, 2100)
#: The endings by which a column's name may differ from an absent optional column's and still be
#: refused as it (``clicks``, ``clicked``; ``genre`` for ``genres`` too, the name less an ``s``):
#: names near in letters alone (``clock``, ``dating``, ``tile``, ``wage``) are other columns.
OPTIONAL_ENDINGS = ("s", "ed", "ing")
#: How near (:func:`difflib.get_close_matches`) a column's name must be to a missing required
#: column to be named in the refusal as the one to rename (advice only: the table is refused anyway).
NEAR_REQUIRED = 0.6
#: The share of a ``timestamp`` column's rows that, written as calendar dates in digits
#: (:data:`DIGIT_DATES`), refuses it as dates (or all rows but one, in a log under 200 rows): a
#: mark such as ``0`` for an unknown time, or a typo (``20240230``), in a few rows does not make
#: the others seconds of 1970. Unix seconds rarely spell dates (4 in 100 of the integers from
#: 19000101 to 21001231 do, 1 in 114 of those from 1900010100 to 2100123123 spell hours).
DIGIT_DATE_SHARE = 0.99
#: What the ``click`` column holds, in the messages that refuse counts of clicks.
CLICK = "'click' is 1 where the user chose the row's item and 0 for an impression left unchosen"
#: The ratings the world's users give (:class:`~recoworld.simulators.statistical.StatisticalUsers`).
STARS = (1, 2, 3, 4, 5)
#: Seconds in a day: a log whose times all fall at one time of day holds dates alone.
DAY_SECONDS = 86_400
#: The longest time a log of interactions may span, in seconds (a century): times that span
#: more, read as Unix seconds, are in another unit (milliseconds counted from the log's start
#: run from 1970 to 2138 as seconds) or hold a mark for "never" (``2999-12-31``).
LONGEST_SPAN_SECONDS = 100 * 365.25 * DAY_SECONDS
#: A year: near rows of a far mark start at least this long after 1970 (:func:`_far_rows_are_a_mark`).
YEAR_SECONDS = 365.25 * DAY_SECONDS
#: The gap (a decade) between a time of Unix 0 (``0``, ``1970-01-01``) and a log's other times
#: that refuses the 0 as a mark for an unknown time: a log counted from its start in seconds
#: (whose first time is 0) goes on within seconds or days.
UNKNOWN_ZERO_GAP_SECONDS = 10 * 365.25 * DAY_SECONDS
#: The calibration's default session gap (``CalibrationConfig.session_gap_minutes``), in
#: seconds: times on a grid this coarse or coarser (to the hour) cannot tell a pause within a
#: session from one between two.
SESSION_GAP_SECONDS = 30 * 60
#: The step of the UTC offsets that clocks write (whole quarter hours: Nepal's ``+05:45``): a
#: grid of :data:`SESSION_GAP_SECONDS` or coarser on any such clock is one of quarter hours in UTC.
OFFSET_STEP_SECONDS = 15 * 60
#: The oldest age a user table may give, in years (an age of 999 is a mark for unknown, not an age).
OLDEST = 150


@dataclass
class InteractionLog:
    """A log in the calibration's layout (that of :class:`~recoworld.data.movielens.MovieLens100K`).

    Attributes:
        ratings: one row per chosen (user, item): ``user_id``, ``item_id`` (dense ints),
            ``rating`` (1..5; 0 when the log has none), ``timestamp`` (Unix seconds).
        items: row ``i`` is item ``i``: ``item_id``, ``title``, ``genres`` (lists),
            ``popularity``, ``quality`` (mean rating, 0 without ratings) and
            ``original_id`` (the item's id in the files, as text).
        users: row ``u`` is user ``u``: ``user_id``, ``age``, ``gender``, ``occupation``,
            ``zip_code`` and ``original_id`` (the user's id in the files, as text).
        has_ratings: whether the log has a ``rating`` column.
        source: where it was read from (the paths), for the artifact's record.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    has_ratings: bool = True
    source: dict = field(default_factory=dict)


def read_table(path: str | Path, what: str, text: tuple[str, ...] = (), layout: tuple[str, ...] = ()) -> pd.DataFrame:
    """The CSV or Parquet file ``path`` (``what`` names it in errors), refused if empty or
    unreadable, or if its header names one of the ``layout``'s columns twice. A CSV's
    ``text`` columns are read as written, not as numbers: ids and zip codes keep their
    leading zeros, and only an empty cell is missing (the user ``NA``, the title ``None``
    are text, as in Parquet); in other columns pandas' marks (``NA``, ``null``) are too."""
    path = Path(path).expanduser()
    if path.is_dir():  # before the suffix: a folder named ``logs`` has none to complain about
        raise FileNotFoundError(f"{path}: is a folder; give the {what}'s file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: the {what} must be CSV (.csv) or Parquet (.parquet, .pq), not {path.suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    with _read_errors(path, what, kind):
        header = _header(path, kind)
    _refuse_twice_named(header, path, what, layout)
    # A Parquet column named twice cannot be read at all; one the layout does not read is left out.
    unique = [name for name in header if header.count(name) == 1]
    table = pd.DataFrame()
    with _read_errors(path, what, kind):
        empty = {name: [""] if name in text else sorted(CSV_MISSING) for name in header}
        table = (pd.read_csv(path, dtype=dict.fromkeys(text, str), keep_default_na=False, na_values=empty)
                 if kind == "csv" else
                 pd.read_parquet(path, columns=None if len(unique) == len(header) else unique))
    if table.empty:
        raise ValueError(f"{path}: the {what} has no rows; it needs a header and at least one row")
    table = _unindexed(table)
    if kind == "parquet":
        for column in layout:
            if column in table.columns:
                table[column] = _decoded(table[column], path, column)
    return table


@contextmanager
def _read_errors(path: Path, what: str, kind: str):
    """Turn a reader's error into one naming the file and the fix; an empty CSV reads as no rows."""
    try:
        yield
    except pd.errors.EmptyDataError:
        pass
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: the {what} is not UTF-8 text ({error}); save it as UTF-8") from None
    except (ValueError, OSError, csv.Error) as error:  # pandas' ParserError, pyarrow's ArrowInvalid: ValueErrors
        fix = ("every row needs the header's number of comma-separated fields, and quotes must close" if kind == "csv"
               else "write it again as Parquet")
        raise ValueError(f"{path}: the {what} cannot be read as {kind.upper()} ({str(error).strip()}); {fix}") from None


def _header(path: Path, kind: str) -> list[str]:
    """The column names as the file writes them: pandas renames a CSV's second ``rating``
    ``rating.1``, and cannot read a Parquet file with two ``user`` columns whole."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    # utf-8-sig: a byte-order mark is not part of the first name (pandas drops it too).
    with path.open(newline="", encoding="utf-8-sig") as file:
        return next(csv.reader(file), [])


def _refuse_twice_named(header: list[str], path: Path, what: str, layout: tuple[str, ...]) -> None:
    """Refuse a header that names a column of the ``layout`` more than once: which of the two
    holds the users (or the ratings) is not the reader's to guess. Other columns are ignored,
    even when named twice."""
    twice = [name for name in layout if header.count(name) > 1]
    if twice:
        name = twice[0]
        places = " and ".join(str(i + 1) for i, column in enumerate(header) if column == name)
        raise ValueError(f"{path}: the {what} has more than one column named {name!r} (columns {places}); rename "
                         "or remove all but one, so that one column holds it")


def _unindexed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` numbered 0, 1, ... in file order, which every message's row counts on. A
    Parquet written from a table indexed by a column (``df.set_index("user")``) holds that
    column as its index: it becomes a column again, unless the table kept it as one too
    (``drop=False``). An unnamed index (a filtered or sorted table's row labels) is dropped."""
    named = [name for name in table.index.names if name is not None and name not in table.columns]
    table = table.reset_index(level=named) if named else table
    return table.reset_index(drop=True)


def _decoded(values: pd.Series, path: Path, column: str) -> pd.Series:
    """A Parquet binary column (or list of binaries) as the UTF-8 text it holds, as a CSV
    would hold it: some writers store text as bytes without marking it, and ``str`` of
    ``b'u0'`` is ``"b'u0'"``, an id no other file writes. Other columns are returned as they are."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        if not any(isinstance(v, bytes) for v in values.cat.categories[:1]):
            return values
        values = values.astype(object)
    if values.dtype != object:
        return values
    first = values.first_valid_index()
    cell = None if first is None else values[first]
    if isinstance(cell, bytes):  # one type throughout: the first cell tells; each distinct value decoded once
        codes, distinct = pd.factorize(values)
        texts = np.array([_utf8(v, path, column, codes, i) for i, v in enumerate(distinct)] + [None],
                         dtype=object)
        return pd.Series(texts[codes], index=values.index)  # code -1 (an empty cell): the None at the end
    if not isinstance(cell, (list, np.ndarray)):  # text, numbers: as they are (no pass over every row)
        return values
    element = next((x for v in values if isinstance(v, (list, np.ndarray)) for x in v if x is not None), None)
    if not isinstance(element, bytes):
        return values
    rows = np.arange(len(values))
    return pd.Series([[_utf8(x, path, column, rows, row) if isinstance(x, bytes) else x for x in v]
                      if isinstance(v, (list, np.ndarray)) else v for row, v in enumerate(values)],
                     index=values.index, dtype=object)


def _utf8(value: bytes, path: Path, column: str, codes: np.ndarray, code: int) -> str:
    """``value`` decoded, or an error naming the first row whose code is ``code``."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        row = int(np.flatnonzero(codes == code)[0])
        raise ValueError(f"{path}: row {row + 1}, column {column!r}: {value!r} is not UTF-8 text; write the "
                         "column as UTF-8 text (a Parquet string column)") from None


def _refuse_booleans(values: pd.Series, path: Path, column: str, expected: str, fix: str) -> None:
    """Refuse a column of true/false values (a Parquet boolean, or a CSV's ``True``/``False``,
    which pandas reads as one) where a number is read: numpy counts True as 1, so a column of
    likes would read as 1 star each, or as times one second apart."""
    if pd.api.types.infer_dtype(values, skipna=True) == "boolean":
        row = values.first_valid_index()
        raise ValueError(f"{path}: row {row + 1}, column {column!r}: {_shown(values[row])} is not {expected}: the "
                         f"column holds true/false values; {fix}")


def _refuse_nested(values: pd.Series, path: Path, column: str, expected: str, fix: str) -> None:
    """Refuse a Parquet list or struct column (one type throughout: its first cell tells)
    where each row holds one value: ``str`` would make ``['Film 0']`` a title."""
    first = values.first_valid_index()
    if first is not None and isinstance(values[first], (dict, list, np.ndarray)):
        raise ValueError(f"{path}: row {first + 1}, column {column!r}: {_shown(values[first])} is not {expected}, and "
                         f"this column holds lists or records (a Parquet list or struct column); {fix}")


def require_columns(table: pd.DataFrame, path: Path, columns, layout: str, optional=()) -> None:
    """Refuse a table without ``columns``, saying which of its columns to rename (a near
    name: ``user_id`` for ``user``), or that its fields are not comma-separated. Refuse, too,
    a column outside the layout whose name is that of an absent ``optional`` column but for
    case, spaces or an ending (``Click``, ``" click"`` of a ``", "``-separated CSV,
    ``clicked``; :func:`_named_like`): it would be ignored, and impressions read as choices
    without a word."""
    header = [str(c) for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    absent = [c for c in optional if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; its columns are {list(table.columns)} "
                         f"and the layout is {layout}{_column_fix(header, missing, absent)}")
    near = _named_likes([c for c in header if c not in (*columns, *optional)], absent)
    if near:
        column, name = next(iter(near.items()))
        values = table.iloc[:, header.index(name)]
        counts = _counted(values) if column == "click" else None  # a count is no click: renamed, it is refused
        fix = (f"; rename it {column!r} (or drop it if it holds something else)" if counts is None else
               f", but holds counts (row {counts + 1}: {_shown(values.iloc[counts])}), and {_from_counts(name)}, "
               "or drop it if it holds something else")
        raise ValueError(f"{path}: column {name!r} looks like {column!r}{fix}: the layout is {layout}, and a column "
                         "outside it is ignored")


def _counted(values: pd.Series) -> int | None:
    """The first row of ``values`` above 1 where they count (whole numbers from 0, one above
    1: ``clicks`` of 0, 1, 2, 5), else None (true/false, a rate, a code of -1)."""
    if pd.api.types.infer_dtype(values, skipna=False) == "boolean":
        return None
    number = pd.to_numeric(values, errors="coerce")
    if not (number.notna() & (number % 1 == 0) & (number >= 0)).all() or not (number > 1).any():
        return None
    return int(np.argmax((number > 1).to_numpy()))


def _from_counts(column: str) -> str:
    """How to write ``click`` from a ``column`` of click counts: a choice made again is one
    choice (the fit reads first choices)."""
    return (f"{CLICK}; if it counts the user's clicks on the item, write log['click'] = (log[{column!r}] > 0)"
            ".astype(int)")


def _column_fix(header: list[str], missing: list[str], optional: list[str] = ()) -> str:
    """How to give ``missing`` columns: the separator to use, or the near names to rename
    (with those of absent ``optional`` columns: each spaced name of a ``", "`` CSV)."""
    separator = next((name for mark, name in SEPARATORS.items() if len(header) == 1 and mark in header[0]), None)
    if separator:
        return f"; the fields look {separator}-separated, and a CSV's are comma-separated: save it with commas"
    near = {**_near_names(header, missing, NEAR_REQUIRED), **_named_likes(header, optional)}
    renames = [f"{name!r} to {column!r}" for column, name in near.items()]
    return f"; rename {', '.join(renames)}" if renames else ""


def _near_names(header: list[str], wanted, cutoff: float) -> dict[str, str]:
    """Each ``wanted`` column that a name of ``header`` comes near (``cutoff``, compared
    stripped and in lower case), with the nearest such name."""
    spare = {c.strip().lower(): c for c in header}
    near = {c: difflib.get_close_matches(c, list(spare), n=1, cutoff=cutoff) for c in wanted}
    return {c: spare[match[0]] for c, match in near.items() if match}


def _named_likes(header: list[str], wanted) -> dict[str, str]:
    """Each ``wanted`` column that a name of ``header`` is named like (:func:`_named_like`),
    with the first such name."""
    like = {c: [name for name in header if _named_like(name, c)] for c in wanted}
    return {c: names[0] for c, names in like.items() if names}


def _named_like(name: str, column: str) -> bool:
    """Whether ``name`` is ``column`` but for case, spaces (``_`` and ``-`` too: ``Zip Code``,
    ``zipcode``) or an ending of :data:`OPTIONAL_ENDINGS` (``clicks``, ``ratings``; ``genre``,
    ``genres`` less its ``s``). ``gender_id``, ``genre_ids`` or ``n_clicks`` add a word: other
    columns."""
    bare, wanted = (re.sub(r"[\s_-]+", "", text.lower()) for text in (name, column))
    return bare in (wanted, *(wanted + ending for ending in OPTIONAL_ENDINGS)) or wanted == bare + "s"


def _first_bad(mask: np.ndarray, path: Path, column: str, values: pd.Series, expected: str, shown=None) -> None:
    """Raise naming the first row where ``mask`` is true (its value as ``shown`` writes it)."""
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        raise ValueError(f"{path}: row {row + 1}, column {column!r}: {(shown or _shown)(values.iloc[row])} is not "
                         f"{expected}")


def _shown(value) -> str:
    """A cell as its file shows it (numpy scalars as plain numbers, a Parquet list as a list)."""
    return repr(_plain(value))


def _plain(value):
    """``value`` with numpy scalars and arrays, at any depth (a list of lists), as Python's."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, np.ndarray)):
        return [_plain(v) for v in value]
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


def _ids(table: pd.DataFrame, path: Path, column: str) -> pd.Series:
    """``table[column]`` as id texts (module docstring), refused where a cell is empty. The
    column is categorical: a log of millions of rows is compared by its integer codes."""
    values = table[column]
    _refuse_nested(values, path, column, "an id: an id is one text or integer", "write each row's id as one value")
    _first_bad(values.isna().to_numpy(), path, column, values, "an id (the cell is empty)")
    codes, distinct = pd.factorize(values)
    text_codes, texts = pd.factorize(np.array([id_text(v) for v in distinct], dtype=object))
    return pd.Series(pd.Categorical.from_codes(text_codes[codes], pd.Index(texts, dtype=object)), index=values.index)


def id_text(value) -> str:
    """An id as its file writes it, but a whole number as its integer digits (``10`` for the
    number 10 of a Parquet file, for 10.0, and for the text ``10.0`` that a float column
    writes in CSV), so that it matches the same id of another file."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text.partition(".")[0] if WHOLE_DECIMAL.fullmatch(text) else text


def _shown_id(text: str) -> str:
    """An id text in a message: bare when it is a plain integer, quoted otherwise."""
    return text if text.lstrip("-").isdigit() and str(int(text)) == text else repr(text)


def _timestamps(table: pd.DataFrame, path: Path) -> np.ndarray:
    """Unix seconds of the ``timestamp`` column: numbers as they are, text as ISO dates."""
    values = table["timestamp"]
    if pd.api.types.is_timedelta64_dtype(values):
        raise ValueError(f"{path}: column 'timestamp' holds durations ({_shown(values.iloc[0])} in row 1), not times; "
                         "give when each interaction happened: a date and time, or Unix seconds (a duration since "
                         "1970-01-01 is Unix seconds once written as a number of seconds)")
    _first_bad(values.isna().to_numpy(), path, "timestamp", values,
               "a time (the cell is empty): give every row its time, or drop the rows without one")
    _refuse_booleans(values, path, "timestamp", "a time", "give when each interaction happened: a date and time, "
                     "or Unix seconds")
    number = np.zeros(len(values), dtype=bool)  # the rows that write Unix seconds, not dates
    if pd.api.types.is_datetime64_any_dtype(values):
        seconds = (pd.to_datetime(values, utc=True) - EPOCH) / pd.Timedelta(seconds=1)
    else:
        seconds = pd.to_numeric(values, errors="coerce").astype(np.float64)
        number = seconds.notna().to_numpy()
        text = ~number & values.notna().to_numpy()
        if text.any():
            dates = pd.to_datetime(values[text].astype(str), errors="coerce", utc=True, format="ISO8601")
            seconds[text] = (dates - EPOCH) / pd.Timedelta(seconds=1)
    seconds = seconds.to_numpy(dtype=np.float64)
    _refuse_unread_times(seconds, path, values)
    if number.any():
        _refuse_digit_dates(seconds, number, path, values)
    _refuse_out_of_range(seconds, number, path, values)
    return np.floor(seconds).astype(np.int64)


def _refuse_unread_times(seconds: np.ndarray, path: Path, values: pd.Series) -> None:
    """Refuse the first row whose time is neither a number nor ISO 8601 text (``NaN`` in
    ``seconds``), with the fix: a date of another layout (``26/11/2023 21:19``) is parsed
    with its format first, which is named where pandas can tell it from the row (both, day or
    month first, where the row leaves the order open: ``05/11/2023``)."""
    unread = ~np.isfinite(seconds)
    if not unread.any():
        return
    row = int(np.flatnonzero(unread)[0])
    value = values.iloc[row]
    forms = _date_formats(value) if isinstance(value, str) else []
    parse = "log['timestamp'] = pd.to_datetime(log['timestamp'], format={!r})".format
    if len(forms) == 1:
        fix = f"it reads as a date of the format {forms[0]!r}: {parse(forms[0])}"
    elif forms:
        fix = (f"it reads as a date of the format {forms[0]!r} (day first) or {forms[1]!r} (month first): "
               f"{parse(forms[0])}, or that of the month first, whichever the file writes")
    else:
        fix = "parse it with its format first: log['timestamp'] = pd.to_datetime(log['timestamp'], format=...)"
    raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(value)} is not a time (Unix seconds or an "
                     f"ISO date); {fix}, or write the times as ISO 8601 (2023-11-26T21:19:00) or Unix seconds")


def _date_formats(text: str) -> list[str]:
    """The formats that read ``text`` as a date, day first, then month first (one where both
    agree, none where pandas cannot tell a format; before pandas 2.2, which made its guess
    public, none)."""
    try:
        from pandas.tseries.api import guess_datetime_format
    except ImportError:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Parsing dates in %d/%m/%Y format when dayfirst=False": told apart here
        forms = [guess_datetime_format(text.strip(), dayfirst=first) for first in (True, False)]
    return [form for form in dict.fromkeys(forms) if form is not None]


def _refuse_digit_dates(seconds: np.ndarray, number: np.ndarray, path: Path, values: pd.Series) -> None:
    """Refuse a column of integers (``number``: the rows written as numbers) that are calendar
    dates written as digits (``20240301``, ``20240301140500``) in all rows but a few marks
    (``0`` for an unknown time) or typos (``20240230``), :data:`DIGIT_DATE_SHARE`: as Unix
    seconds, the first is a day of August 1970, and the second is after the year 5000, which
    the milliseconds advice would misread. The first row that is no date is named, as the
    dates' reading would fail on it. A log of Unix seconds of August 1970 only (the range of
    the 8 digits' dates) is not one of today's."""
    spare = max(1, int(len(seconds) * (1 - DIGIT_DATE_SHARE)))  # rows that may be no date
    for digits, form in DIGIT_DATES.items():
        year = seconds // 10 ** (digits - 4)
        written = number & (seconds % 1 == 0) & (year >= DIGIT_DATE_YEARS[0]) & (year <= DIGIT_DATE_YEARS[1])
        if len(seconds) - written.sum() > spare:  # most logs stop here, before any date is parsed
            continue
        whole = seconds[written].astype(np.int64)
        distinct = np.unique(whole)  # each date parsed once
        dates = pd.to_datetime(pd.Series(distinct.astype(str)), format=form, errors="coerce")
        date = written.copy()
        date[written] = dates.notna().to_numpy()[np.searchsorted(distinct, whole)]
        if not date.any() or len(seconds) - date.sum() > spare:
            continue
        row = int(np.argmax(date))
        example = int(seconds[row])
        when = (f"{pd.Timestamp(example, unit='s'):%Y-%m-%d %H:%M:%S} UTC" if example < LATEST_SECONDS else
                "after the year 5000")
        shown = dates.iloc[int(np.searchsorted(distinct, example))]
        shown = shown.date() if digits == 8 else shown.isoformat(sep=" ")
        no_date = int(np.argmin(date))
        other = ("" if date.all() else
                 f"row {no_date + 1}: {_shown(values.iloc[no_date])} is no date (give that row its time, or drop it); ")
        digits = _as_digits(values[date], seconds[date])
        raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(values.iloc[row])} is the date {shown} "
                         f"written as digits, but a number is read as Unix seconds ({when}); {other}write the times "
                         "as dates: log['timestamp'] = "
                         f"pd.to_datetime(log['timestamp']{digits}, format={form!r})")


def _as_digits(values: pd.Series, seconds: np.ndarray) -> str:
    """How pandas writes the cells ``values`` of the ``timestamp`` column, which hold the
    whole ``seconds``, as those digits (``20240301``), which a date format reads: ``str`` of an
    integer. A float column (one that held an empty cell) writes ``20240301.0``, and a text
    column may hold that too (``"20240301.0"``, or ``" 20240301"``), which the format does not
    read: those go through the number."""
    if pd.api.types.is_integer_dtype(values):
        return ".astype(str)"
    if pd.api.types.is_float_dtype(values):
        return ".astype('int64').astype(str)"
    as_digits = values.astype(str).to_numpy(dtype=object) == seconds.astype(np.int64).astype(str)
    return ".astype(str)" if as_digits.all() else ".astype(float).astype('int64').astype(str)"


def _refuse_out_of_range(seconds: np.ndarray, number: np.ndarray, path: Path, values: pd.Series) -> None:
    """Refuse a time before 1970 (negative Unix seconds, which are not Unix time, or dates
    such as 0001-01-01 and 1900-01-01 that stand for an unknown time; small positive
    seconds stay: times counted from a log's start fit the same gaps), or after the year
    5000: seconds that large are milliseconds (or finer), dates that late a mark for "never"."""
    early, late = seconds < 0, seconds > LATEST_SECONDS
    for mask, when in ((early, "before 1970-01-01"), (late, "after the year 5000")):
        if not mask.any():
            continue
        row = int(np.flatnonzero(mask)[0])
        if late[row] and number[row]:
            raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(values.iloc[row])} is after the "
                             "year 5000 in Unix seconds; the times look like milliseconds (or finer): divide the "
                             "column by 1000 (or 10**6, 10**9) to give seconds")
        unit = " in Unix seconds" if number[row] else ""
        raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(values.iloc[row])} is {when}{unit}, "
                         "not a time of a log of interactions (a mark for an unknown time?); give the row the time "
                         "it happened, or drop it")
    _refuse_unknown_zero(seconds, path, values)
    _refuse_long_span(seconds, number, path, values)


def _refuse_unknown_zero(seconds: np.ndarray, path: Path, values: pd.Series) -> None:
    """Refuse a time of Unix 0 (``0``, ``1970-01-01``) more than :data:`UNKNOWN_ZERO_GAP_SECONDS`,
    and more than the others span, before all the log's other times: a mark for an unknown time,
    which would read as a first session decades before the others. A 0 followed within the
    decade stays (a log counted from its start), as does one of times spread from it on."""
    zero = seconds == 0
    if not zero.any() or zero.all():
        return
    after = seconds[~zero].min()
    if after <= max(UNKNOWN_ZERO_GAP_SECONDS, seconds.max() - after):  # sparse milliseconds spread on from the 0
        return
    row = int(np.argmax(zero))
    raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(values.iloc[row])} is Unix time 0 "
                     f"(1970-01-01 00:00:00 UTC), {after / (DAY_SECONDS * 365.25):.0f} years before the log's "
                     f"other times (from {_utc_date(after)} UTC): a mark for an unknown time? give the row the time "
                     "it happened, or drop it")


def _refuse_long_span(seconds: np.ndarray, number: np.ndarray, path: Path, values: pd.Series) -> None:
    """Refuse times that span more than :data:`LONGEST_SPAN_SECONDS` (a century). Where the
    rows within a century of the median time span less, the others are marks for an unknown
    time (``2999-12-31``, ``32503680000`` for "never"): the first is named, to drop or fill.
    Otherwise the first and the last are named: numbers that spread so are not Unix seconds but
    milliseconds (counted from the log's start: a log of two months runs from 1970 to 2138 read
    as seconds). Milliseconds of a log shorter than 36 days span less than a century as seconds
    and are read as seconds of 1970 onwards: nothing in the times tells them from seconds."""
    first, last = int(np.argmin(seconds)), int(np.argmax(seconds))
    span = seconds[last] - seconds[first]
    if span <= LONGEST_SPAN_SECONDS:
        return
    near = np.abs(seconds - np.median(seconds)) <= LONGEST_SPAN_SECONDS
    if _far_rows_are_a_mark(seconds, near):
        _refuse_far_mark(seconds, number, near, path, values)
    mark = "if one of the two rows is a mark for an unknown time, give that row the time it happened, or drop it"
    if number[first] and number[last]:
        read = (f" in Unix seconds ({_utc_date(seconds[last])} and {_utc_date(seconds[first])} UTC)",
                "; the times look like milliseconds (counted from the log's start?): divide the column by 1000 to give "
                f"seconds (or, {mark})")
    else:
        read = ("", f"; {mark}")
    raise ValueError(f"{path}: row {last + 1}, column 'timestamp': {_shown(values.iloc[last])} is "
                     f"{span / (DAY_SECONDS * 365.25):.0f} years after row {first + 1}'s {_shown(values.iloc[first])}"
                     f"{read[0]}, longer than any log of interactions runs (a century){read[1]}")


def _far_rows_are_a_mark(seconds: np.ndarray, near: np.ndarray) -> bool:
    """Whether the rows of ``seconds`` not ``near`` the median time read as a mark for an
    unknown time: one value, held by fewer rows than the others, which lie within a century,
    and not the early rows of milliseconds counted from a log's start (read as seconds, those
    start in 1970's first year and spread over more than a year: a log of 20 days runs to
    2024), which are told to divide by 1000 instead. Seconds counted from a log's start (days
    from 0) with a "never" mark are a mark."""
    far, kept = seconds[~near], seconds[near]
    from_start_in_milliseconds = kept.min() < YEAR_SECONDS and np.ptp(kept) > YEAR_SECONDS
    return (near.sum() > far.size > 0 and np.ptp(kept) <= LONGEST_SPAN_SECONDS and np.unique(far).size == 1
            and not from_start_in_milliseconds)


def _refuse_far_mark(seconds: np.ndarray, number: np.ndarray, near: np.ndarray, path: Path,
                     values: pd.Series) -> None:
    """Refuse the first row of ``seconds`` not ``near`` the log's median time (more than a
    century from it) as a mark for an unknown time, with the dates of the rows near it."""
    row = int(np.argmin(near))
    low, high = seconds[near].min(), seconds[near].max()
    gap, side = (seconds[row] - high, "after") if seconds[row] > high else (low - seconds[row], "before")
    unit = " in Unix seconds" if number[row] else ""
    more = int((~near).sum()) - 1
    others = f" ({more} more rows are as far)" if more > 1 else " (1 more row is as far)" if more else ""
    raise ValueError(f"{path}: row {row + 1}, column 'timestamp': {_shown(values.iloc[row])}{unit} is "
                     f"{gap / (DAY_SECONDS * 365.25):.0f} years {side} the log's other times ({_utc_date(low)} to "
                     f"{_utc_date(high)} UTC), longer than any log of interactions runs (a century): a mark for an "
                     f"unknown time (\"never\")?{others} give the row the time it happened, or drop it")


def _utc_date(seconds: float) -> str:
    """Unix ``seconds`` as the UTC date they write (``2138-05-02``)."""
    return f"{pd.Timestamp(int(seconds), unit='s'):%Y-%m-%d}"


def _integers(table: pd.DataFrame, path: Path, column: str, allowed: tuple[int, ...], expected: str) -> np.ndarray:
    values = table[column]
    number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    _first_bad(~np.isin(number, allowed), path, column, values, expected)
    return number.astype(np.int64)


def _stars(table: pd.DataFrame, path: Path, chosen: np.ndarray) -> np.ndarray:
    """The ``rating`` of each chosen row, checked (0 on the other rows: an impression's
    rating is not read, and may be empty)."""
    values = table["rating"]
    _refuse_booleans(values, path, "rating", "a rating of 1..5 stars",
                     "if it says whether the user chose the item, name it 'click'; if it says whether the user "
                     "liked it, give each chosen row its stars 1..5, or drop the column to fit on choices alone")
    number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    _first_bad(chosen & values.isna().to_numpy(), path, "rating", values,
               "a rating (the cell is empty): a log with a rating column needs one on every chosen row; drop the "
               "rows without one, or drop the column to fit on choices alone")
    stars = np.isin(number, STARS)
    if not stars[chosen].all():
        seen = number[chosen & np.isfinite(number)]
        scale = f"the column's ratings run {seen.min():g}..{seen.max():g}; " if len(seen) else ""
        _first_bad(chosen & ~stars, path, "rating", values,
                   f"a rating of 1..5 stars: {scale}the world's users give whole stars 1..5, so map another scale "
                   f"onto them first (half stars 0.5..5: round up; 1..10: halve and round up{_scale_map(seen)}), or "
                   "drop the column to fit on choices alone")
    return np.where(chosen, number, 0).astype(np.int64)


def _scale_map(seen: np.ndarray) -> str:
    """A map onto 1..5 stars for ``seen`` ratings that neither common rule maps (halving
    0..10 and rounding up gives 0 stars): linear from the lowest to the highest."""
    if not len(seen) or (seen.min() > 0 and seen.max() <= 10) or seen.min() == seen.max():
        return ""
    low, high = seen.min(), seen.max()
    shifted = "rating" if low == 0 else f"(rating {'-' if low > 0 else '+'} {abs(low):g})"
    return (f"; {low:g}..{high:g}: 1 + round(4 * {shifted} / {high - low:g}), or, where {low:g} marks a missing "
            "rating, drop those rows")


def _dense(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Dense codes of the distinct id texts ``ids`` and the sorted ids they index: by number
    when every id is one (``007`` and ``7`` by their text), else by text."""
    distinct = list(ids)
    numbers = [_number(text) for text in distinct]
    key = (lambda i: (numbers[i], distinct[i])) if None not in numbers else (lambda i: distinct[i])
    ordered = pd.Index([distinct[i] for i in sorted(range(len(distinct)), key=key)], dtype=object)
    return ordered.get_indexer(distinct), ordered


def _positions(ordered: pd.Index, ids: pd.Series) -> np.ndarray:
    """Each row's position in ``ordered``, looked up once per distinct id of the column."""
    return ordered.get_indexer(ids.cat.categories)[ids.cat.codes]


def _number(text: str) -> int | float | None:
    """The number an id text writes (an exact integer where it is one), or None."""
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None


def read_log(path: str | Path) -> tuple[pd.DataFrame, bool]:
    """The log's chosen rows as ``user``, ``item``, ``rating``, ``timestamp`` (checked), with a
    warning where they hold dates alone."""
    path = Path(path).expanduser()
    table = read_table(path, "interaction log", text=("user", "item"), layout=(*LOG_COLUMNS, "rating", "click"))
    require_columns(table, path, LOG_COLUMNS, "user, item, timestamp [, rating] [, click]", ("rating", "click"))
    log = pd.DataFrame({"user": _ids(table, path, "user"), "item": _ids(table, path, "item"),
                        "timestamp": _timestamps(table, path)})
    chosen = np.ones(len(table), dtype=bool)
    if "click" in table.columns:
        counted = "" if _counted(table["click"]) is None else f": the column holds counts, and {_from_counts('click')}"
        chosen = _integers(table, path, "click", (0, 1), f"a click (0 or 1){counted}") == 1
        if not chosen.any():
            raise ValueError(f"{path}: no row has click = 1; the fit needs what users chose")
    has_ratings = "rating" in table.columns
    log["rating"] = _stars(table, path, chosen) if has_ratings else 0
    _refuse_repeated_rows(log, chosen, path)
    log = log[chosen]
    # Repeated choices of one item: the first stands (module docstring).
    log = log.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"], keep="first").sort_index()
    _warn_if_coarse_times(log, table["timestamp"], path)
    if has_ratings:
        _warn_if_constant(log["rating"], path)
    return log, has_ratings


def _warn_if_constant(stars: pd.Series, path: Path) -> None:
    """Warn when every chosen row gives the same rating: the column tells no liked item from
    another, yet the rating response is fitted to it (its slope and noise to nothing)."""
    if stars.nunique() == 1:
        warnings.warn(f"{path}: every chosen row's rating is {stars.iloc[0]} stars, so the column carries no "
                      "information (no rating tells a liked item from another), and the rating response fitted to it "
                      "means nothing; drop the column to fit on choices alone (the world keeps the simulator's "
                      "default rating response), or give each row the stars its user gave", UserWarning,
                      stacklevel=4)  # the caller of load_interactions


def _warn_if_coarse_times(log: pd.DataFrame, times: pd.Series, path: Path) -> None:
    """Warn when every chosen interaction falls on a grid of times no finer than the session
    gap (:data:`SESSION_GAP_SECONDS`, the default of 30 minutes): the sessions, cut where a
    user pauses longer than the gap, are then cut at the grid's steps, not at the users'
    pauses. Dates without a time (``2024-03-01``, read as midnight) are at one time of day,
    and a user's day is one session; times to the hour (``2024-03-01T14:00:00``) make a
    user's hour one session, an hour apart from the next. The grid is read on the clock the
    file writes (``times``, the file's column): that of the column's zone where it has one,
    that of each text's UTC offset where it writes one (``+02:00``). Local midnight in a zone
    with daylight saving is at two times of the day in UTC, and rows of two offsets at one
    UTC time of day (``00:00+02:00``, ``22:00Z``) are at two local ones. A log in which no
    user's interactions happened at two different times is left to the calibration, which
    refuses it."""
    zone = times.dt.tz if pd.api.types.is_datetime64_any_dtype(times) else None
    # A log's first rows most often show a finer time: the whole column's clock is read only when they do not.
    for rows in (log.index[:1_000], log.index):
        seconds = log.loc[rows, "timestamp"]
        # Told apart by their UTC seconds before the offsets are read, which parses each distinct text
        # in turn: a log of times to the second or minute is off the quarter hours the offsets step by.
        if (seconds.to_numpy() % OFFSET_STEP_SECONDS).any():
            return
        offsets = np.zeros(len(rows), dtype=np.int64) if zone else _utc_offsets(times[rows])
        time_of_day = _time_of_day(seconds, times[rows] if zone else None, offsets)
        step = int(np.gcd.reduce(np.append(np.abs(time_of_day - time_of_day[0]), DAY_SECONDS)))
        if step < SESSION_GAP_SECONDS:
            return
    if log.groupby("user", observed=True)["timestamp"].nunique().max() < 2:
        return
    clock = f"{pd.Timestamp(int(time_of_day[0]), unit='s'):%H:%M:%S} {zone or _offsets_named(offsets)}"
    warnings.warn(_coarse_times_message(path, clock, step), UserWarning, stacklevel=4)  # load_interactions' caller


def _coarse_times_message(path: Path, clock: str, step: int) -> str:
    """The warning of :func:`_warn_if_coarse_times`: every time is at ``clock`` or ``step``
    seconds apart from it (a divisor of a day; the day itself for dates alone)."""
    if step == DAY_SECONDS:
        return (f"{path}: every timestamp is at {clock} (dates without a time of day), so no session gap splits a day: "
                "the session dynamics will treat each user's day as one visit (its interactions one session, the "
                "gaps between sessions whole days); give each interaction its time of day (2024-03-01T14:05:00, or "
                "Unix seconds) to fit sessions within days")
    unit = f"{step // 3600}-hour" if step % 3600 == 0 else f"{step // 60}-minute"
    steps = "whole hours" if step == 3600 else f"whole {unit} steps"
    return (f"{path}: every timestamp is on a {unit} grid ({clock} and {steps} from it), no finer than the session "
            f"gap ({SESSION_GAP_SECONDS // 60} minutes by default), so the session dynamics will cut sessions at the "
            "grid's steps, not at the users' pauses (a pause within a step reads as none, one across it as a whole "
            "step or more), and read the gaps between sessions in whole steps; give each interaction its time to the "
            "second or minute (2024-03-01T14:05:37, or Unix seconds) to fit sessions")


def _time_of_day(seconds: pd.Series, times: pd.Series | None, offsets: np.ndarray) -> np.ndarray:
    """Seconds since midnight of each time: on the clock of the zone of ``times`` (a
    tz-aware column) where given, else of Unix ``seconds`` ahead of UTC by ``offsets``."""
    if times is None:
        return (seconds.to_numpy() + offsets) % DAY_SECONDS
    clock = times.dt.tz_localize(None)
    return ((clock - clock.dt.normalize()) // pd.Timedelta(seconds=1)).to_numpy()


def _utc_offsets(times: pd.Series) -> np.ndarray:
    """The UTC offset, in seconds, that each text of ``times`` writes (``+02:00``: 7200), 0
    for a time without one (``2024-03-01``, ``...Z``) and for a number. Each distinct text is
    parsed once: a log of dates has few."""
    if not (times.dtype == object or pd.api.types.is_string_dtype(times)):
        return np.zeros(len(times), dtype=np.int64)
    codes, distinct = pd.factorize(times)
    offsets = [0 if not isinstance(text, str) or _number(text) is not None else
               int((pd.Timestamp(text).utcoffset() or pd.Timedelta(0)).total_seconds()) for text in distinct]
    return np.asarray(offsets, dtype=np.int64)[codes]


def _offsets_named(offsets: np.ndarray) -> str:
    """The clock of times ahead of UTC by ``offsets`` seconds, in a message: ``UTC``,
    ``UTC+02:00``, or local time of several offsets (daylight saving)."""
    names = [f"UTC{'-' if o < 0 else '+'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}" for o in np.unique(offsets)]
    if names == ["UTC+00:00"]:
        return "UTC"
    return names[0] if len(names) == 1 else f"local time ({', '.join(names)})"


def _refuse_repeated_rows(log: pd.DataFrame, chosen: np.ndarray, path: Path) -> None:
    """Refuse two chosen rows of one (user, item, timestamp): a row written twice. Impressions
    (``click = 0``) may repeat, and may share the time of the click on their item."""
    key = ["user", "item", "timestamp"]
    rows = log[chosen]  # labelled by their row in the file, from 0
    again = rows.duplicated(key, keep="first").to_numpy()
    if again.any():
        twin = rows.iloc[int(np.argmax(again))]
        first = rows.index[(rows[key] == twin[key]).all(axis=1).to_numpy()][0]
        raise ValueError(f"{path}: rows {first + 1} and {twin.name + 1} repeat user {_shown_id(twin['user'])}, item "
                         f"{_shown_id(twin['item'])} at the same timestamp; remove the duplicated rows")


def read_items(path: str | Path, log_items: pd.Series) -> pd.DataFrame:
    """The item table as ``item``, ``title``, ``genres`` (lists), covering every item of the log."""
    path = Path(path).expanduser()
    table = read_table(path, "item table", text=("item", "title", "genres"), layout=("item", "title", "genres"))
    require_columns(table, path, ("item",), "item [, title] [, genres]", ("title", "genres"))
    ids = _ids(table, path, "item")
    _first_bad(ids.duplicated().to_numpy(), path, "item", ids, "a new item (it is listed twice)", _shown_id)
    _refuse_unlisted(path, "item", log_items, ids, every=True)
    texts = ids.astype(object)
    if "title" in table.columns:
        _refuse_nested(table["title"], path, "title", "a title: an item's title is one text",
                       "write each row's title as one text")
    titles = table["title"].fillna("").astype(object) if "title" in table.columns else texts
    genres = table["genres"].astype(object) if "genres" in table.columns else pd.Series([None] * len(table))
    try:
        genre_lists = read_genres(genres, no_genre=UNKNOWN)
    except GenreCellError as error:
        raise ValueError(f"{path}: row {error.row + 1}, column 'genres': {_shown(error.value)} is not "
                         f"{error.expected}") from None
    return pd.DataFrame({"item": texts, "title": titles.where(titles != "", texts).to_numpy(), "genres": genre_lists})


def _refuse_unlisted(path: Path, kind: str, log_ids: pd.Series, ids: pd.Series, every: bool) -> None:
    """Refuse the ``kind`` (``"item"``, ``"user"``) table at ``path`` where its ``ids`` do not
    list an id of the log (``log_ids``) that they write otherwise, in spelling alone
    (:func:`_respellings`: ``00053`` for the log's ``53``), naming both spellings: read as
    written, the table would miss that item, or leave that user without their age, without a
    word. Where ``every`` id of the log must be listed (the items), refuse any it does not list.
    Both are categorical (:func:`_ids`): each distinct id is compared once."""
    written, listed = log_ids.cat.categories, ids.cat.categories
    place = written.get_indexer(listed)  # of each id the table lists among the log's, -1 where the log has none
    in_table = np.zeros(len(written), dtype=bool)
    in_table[place[place >= 0]] = True
    missing = ~in_table[log_ids.cat.codes]
    if not missing.any():
        return
    unlisted = list(pd.unique(log_ids[missing]))  # in the log's order
    respelled = _respellings(unlisted, listed[place < 0])
    named = next((text for text in unlisted if text in respelled), None)
    if named is None and not every:
        return
    named = unlisted[0] if named is None else named
    message = f"{path}: the log names {kind} {_shown_id(named)}, which the {kind} table does not list"
    if named not in respelled:
        raise ValueError(f"{message}; list every {kind} of the log")
    twin = respelled[named]
    raise ValueError(f"{message}, though it lists {twin!r}: an id is its text, so write each id the same way in "
                     f"both files (the table's {twin!r} as the log's {_shown_id(named)}, or the reverse)")


def _respellings(unlisted: list[str], others: pd.Index) -> dict[str, str]:
    """Each of the log's ``unlisted`` ids that the table writes otherwise, in spelling alone
    (:func:`_spelling`: ``00053`` for ``53``, ``Item7`` for ``item7``), with the table's
    spelling: one of its ``others``, the ids it lists that the log does not name. A table's id
    that the log names too (its ``53`` and its ``00053``) is that id, not another's spelling."""
    if others.empty:  # every id the table lists is the log's (a table of its users): it respells none
        return {}
    spelled = {}
    for text in others:  # the first in the table's order
        spelled.setdefault(_spelling(text), text)
    twins = {text: spelled.get(_spelling(text)) for text in unlisted}
    return {text: twin for text, twin in twins.items() if twin is not None}


def _spelling(text: str):
    """What an id text names but for its spelling: the number it writes (``00053``, ``53.0``:
    53), else the text stripped of spaces, in one case (``Item7``: ``item7``). Only a text of a
    number's characters (:data:`NUMBER_CHARACTERS`) is parsed: that of another (``u53``) raises
    twice, at several times the match's cost, which a table of a million users pays in seconds."""
    number = _number(text) if NUMBER_CHARACTERS.fullmatch(text) else None
    return text.strip().casefold() if number is None else number


def read_users(path: str | Path, log_users: pd.Series) -> pd.DataFrame:
    """The user table as ``user``, ``age``, ``gender``, ``occupation``, ``zip_code``."""
    path = Path(path).expanduser()
    table = read_table(path, "user table", text=("user", "gender", "occupation", "zip_code"),
                       layout=("user", "age", "gender", "occupation", "zip_code"))
    require_columns(table, path, ("user",), "user [, age] [, gender] [, occupation] [, zip_code]",
                    ("age", "gender", "occupation", "zip_code"))
    ids = _ids(table, path, "user")
    _first_bad(ids.duplicated().to_numpy(), path, "user", ids, "a new user (it is listed twice)", _shown_id)
    _refuse_unlisted(path, "user", log_users, ids, every=False)  # a user it leaves out reads as unknown
    users = pd.DataFrame({"user": ids})
    if "age" in table.columns:
        given = table["age"]
        _refuse_booleans(given, path, "age", "an age", f"give each user's age in years, 0..{OLDEST}")
        age = pd.to_numeric(given, errors="coerce")
        _first_bad((given.notna() & (age.isna() | (age % 1 != 0))).to_numpy(), path, "age", given, "an integer age")
        # Bounded before the int64 cast, which 1e30 overflows; -1 is the world's own mark of an unknown age.
        _first_bad((given.notna() & ~(age.between(0, OLDEST) | (age == -1))).to_numpy(), path, "age", given,
                   f"an age in years (0..{OLDEST}): leave the cell empty where the age is unknown")
        users["age"] = age.fillna(-1).astype(np.int64)
    for column, article, name in (("gender", "a", "gender"), ("occupation", "an", "occupation"),
                                  ("zip_code", "a", "zip code")):
        if column in table.columns:
            _refuse_nested(table[column], path, column, f"{article} {name}: a user's {name} is one text",
                           f"write each row's {name} as one text")
            # Read as ids are (id_text), each distinct value once: a number column with empty cells (a
            # Parquet float column) holds the zip code 90210 as 90210.0, which no population spec selects.
            codes, distinct = pd.factorize(table[column])
            users[column] = np.array([id_text(v) for v in distinct] + [UNKNOWN], dtype=object)[codes]
    missing = ~log_users.isin(ids)
    unlisted = log_users[missing].unique()  # once each, not once per interaction
    extra = users.iloc[:0].reindex(range(len(unlisted)))
    extra["user"] = np.asarray(unlisted, dtype=object)
    return pd.concat([users, extra], ignore_index=True)


def load_interactions(path: str | Path, items: str | Path | None = None,
                      users: str | Path | None = None) -> InteractionLog:
    """Read and check a log (and its optional item and user tables) in the module's layout.

    Raises ``ValueError`` naming the file, row and column of the first problem found:
    a missing column, an empty table, a cell of the wrong type, a duplicated row, an item
    the item table does not list; ``FileNotFoundError`` for a missing file. Warns
    (``UserWarning``) when every timestamp lies on a grid no finer than the session gap: at
    one time of day, as dates alone are (each user's day is then one session), or to the hour
    (sessions are then cut at the hours); and when every chosen row gives one rating, which
    carries no information.
    """
    log, has_ratings = read_log(path)
    chosen = np.asarray(log["item"].unique(), dtype=object)
    item_table = (read_items(items, log["item"]) if items is not None else
                  pd.DataFrame({"item": chosen, "title": chosen, "genres": [[UNKNOWN]] * len(chosen)}))
    chosen_users = np.asarray(log["user"].unique(), dtype=object)
    user_table = read_users(users, log["user"]) if users is not None else pd.DataFrame({"user": chosen_users})
    # Users of the user table who chose nothing have no data to fit: left out.
    user_table = user_table[user_table["user"].astype(object).isin(chosen_users)]
    item_codes, item_ids = _dense(item_table["item"])
    user_codes, user_ids = _dense(user_table["user"])
    item_table = item_table.assign(item_id=item_codes).sort_values("item_id").reset_index(drop=True)
    user_table = user_table.assign(user_id=user_codes).sort_values("user_id").reset_index(drop=True)
    ratings = pd.DataFrame({
        "user_id": _positions(user_ids, log["user"]), "item_id": _positions(item_ids, log["item"]),
        "rating": log["rating"].to_numpy(dtype=np.int64), "timestamp": log["timestamp"].to_numpy(dtype=np.int64),
    }).reset_index(drop=True)
    counts = ratings.groupby("item_id")["rating"].agg(["size", "mean"]).reindex(range(len(item_table)))
    item_frame = pd.DataFrame({
        "item_id": item_table["item_id"], "title": item_table["title"].astype(str), "genres": item_table["genres"],
        "popularity": counts["size"].fillna(0).astype(np.int64).to_numpy(),
        "quality": counts["mean"].fillna(ratings["rating"].mean()).to_numpy(dtype=np.float64),
        "original_id": item_table["item"].astype(str).to_numpy(dtype=object),
    })
    user_frame = pd.DataFrame({
        "user_id": user_table["user_id"],
        "age": user_table["age"].fillna(-1).astype(np.int64) if "age" in user_table else -1,
        **{c: user_table[c].fillna(UNKNOWN).astype(str) if c in user_table else UNKNOWN
           for c in ("gender", "occupation", "zip_code")},
        "original_id": user_table["user"].astype(str).to_numpy(dtype=object),
    })
    source = {"kind": "interactions", "data": str(Path(path).expanduser().resolve()),
              "items": None if items is None else str(Path(items).expanduser().resolve()),
              "users": None if users is None else str(Path(users).expanduser().resolve())}
    return InteractionLog(ratings, item_frame, user_frame, has_ratings, source)
