"""MovieLens-100K: 100,000 ratings (1..5) by 943 users of 1,682 movies.

F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context",
ACM TiiS 5(4), 2015.

:func:`load_movielens_100k` reads either of the two common layouts, found from the files
present in the folder:

* GroupLens' original ``ml-100k.zip``, unzipped: ``u.data``, ``u.item``, ``u.user`` (and
  ``u.genre``);
* RecBole's atomic files ``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user``, which is
  what ``recoworld data fetch movielens-100k`` downloads.

Both give the same tables. Each file read is compared with the release's (its SHA-256):
the cache's copy must match (:func:`recoworld.data.fetch.fetch` refuses one that does not),
while a folder given as ``path`` is read whatever it holds, a copy you changed on purpose
included, and its tables' :attr:`MovieLens100K.source` says whether it is the release.

Ids are dense and 0-based in the original order, so that
``item_id = movie_id - 1`` and ``user_id = user_id - 1`` for the published files; each
table's ``original_id`` keeps the published id, as text (``"1"`` for ``item_id`` 0), which a
world calibrated on MovieLens keeps too.
:func:`load_catalog` turns the items into a :class:`recoworld.catalog.Catalog`.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.catalog import Catalog
from recoworld.data.tables import integer_column

# Genre names in the order of u.genre and of u.item's 19 flag columns.
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
GROUPLENS_FILES = ("u.data", "u.item", "u.user")
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
_YEAR = re.compile(r"\((\d{4})\)")
# RecBole's conversion wrote this misspelling for fields the original leaves empty.
_RECBOLE_MISSING = "unkonwn"
_FIX = "the file is damaged: fetch it again (recoworld data fetch movielens-100k) or unzip ml-100k.zip again"


@dataclass
class MovieLens100K:
    """The three MovieLens-100K tables.

    Attributes:
        ratings: one row per rating, in file order: ``user_id``, ``item_id`` (0-based
            ints), ``rating`` (1..5), ``timestamp`` (Unix seconds).
        items: one row per movie, row ``i`` is ``item_id == i``: ``title`` (with the
            year, e.g. ``"Toy Story (1995)"``), ``release_year`` (from the title; ``<NA>``
            when it has none), ``genres`` (list of names from :data:`GENRES`),
            ``popularity`` (number of ratings), ``quality`` (mean rating) and
            ``original_id`` (the movie id of the files, as text).
        users: one row per user, row ``u`` is ``user_id == u``: ``age``, ``gender``
            (``"M"``/``"F"``), ``occupation``, ``zip_code`` (a string; some are Canadian)
            and ``original_id`` (the user id of the files, as text).
        has_ratings: always true here; a log read by
            :func:`~recoworld.data.interactions.load_interactions` may have none.
        source: what the tables are, which a world calibrated on them records as its data
            source (``meta["data"]["source"]``): ``{"kind": "movielens-100k"}`` when every file
            read is the release's, byte for byte; otherwise ``{"kind": "given", "read_from":
            FOLDER, "altered": {FILE: its SHA-256, ...}}``, naming each file that differs.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    has_ratings: bool = True
    source: dict = field(default_factory=dict)


def load_movielens_100k(path: str | Path | None = None) -> MovieLens100K:
    """Read MovieLens-100K from ``path``, or from RecoWorld's cache when ``path`` is None.

    With ``path=None`` the data set is fetched first if the cache lacks it (see
    :func:`recoworld.data.fetch.fetch`, which refuses a copy whose files are not the
    release's). A ``path`` of yours is read as it is, even where its files differ from the
    release's (a copy you changed on purpose); the tables' ``source`` then names the files
    that differ, and so does a world calibrated on them. Raises ``ValueError`` when ``path``
    holds neither layout.
    """
    if path is None:
        from recoworld.data.fetch import fetch

        path = fetch("movielens-100k")
    path = Path(path).expanduser()
    if _holds(path, GROUPLENS_FILES):
        ratings, items, users = _read_grouplens(path)
        read = (*GROUPLENS_FILES, "u.genre")
    elif _holds(path, RECBOLE_FILES):
        ratings, items, users = _read_recbole(path)
        read = RECBOLE_FILES
    else:
        raise ValueError(_no_layout(path))
    data = _assemble(ratings, items, users)
    data.source = _source(path, read)
    return data


def _source(path: Path, read: tuple[str, ...]) -> dict:
    """:attr:`MovieLens100K.source` of the tables read from files ``read`` of ``path``."""
    from recoworld.data.fetch import MOVIELENS_100K, differing_files

    release = {**MOVIELENS_100K.sha256, **MOVIELENS_100K.by_hand_sha256}
    altered = differing_files(path, {name: release[name] for name in read})
    if not altered:
        return {"kind": "movielens-100k"}
    return {"kind": "given", "read_from": str(path.resolve()), "altered": altered}


def _holds(folder: Path, files: tuple[str, ...]) -> bool:
    return all((folder / f).is_file() for f in files)


def _no_layout(path: Path) -> str:
    """Why ``path`` is not a MovieLens-100K folder, naming the one meant where it can tell:
    the zip itself, or the folder it was unzipped into, are the usual slips."""
    expected = (f"expected GroupLens' files {', '.join(GROUPLENS_FILES)} (ml-100k.zip, unzipped) or RecBole's "
                f"files {', '.join(RECBOLE_FILES)} (recoworld data fetch movielens-100k)")
    if not path.exists():
        return f"{path} does not exist: {expected}"
    if path.is_file():
        unzip = "; unzip it and pass the folder ml-100k it holds" if zipfile.is_zipfile(path) else ""
        return f"{path} is a file, not a folder: {expected}{unzip}"
    try:
        nested = [sub for sub in sorted(path.iterdir())
                  if sub.is_dir() and (_holds(sub, GROUPLENS_FILES) or _holds(sub, RECBOLE_FILES))]
    except OSError:
        nested = []
    if nested:
        return f"{path} holds neither MovieLens-100K layout, but its folder {nested[0]} does: pass that folder"
    return f"{path} holds neither MovieLens-100K layout: {expected}"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """MovieLens-100K's 1,682 movies as a catalog.

    Features are the normalised genre multi-hot vectors (19 genres), popularity is the
    share of ratings and quality the standardised mean rating. ``path`` is as for
    :func:`load_movielens_100k`.
    """
    items = load_movielens_100k(path).items
    return Catalog.from_dataframe(items, features=None, name="movielens-100k")


@dataclass
class _Rows:
    """A file's rows, every field as text, and the line number of each row for messages."""

    file: Path
    table: pd.DataFrame
    lines: list[int]


def _read_table(path: Path, sep: str, names: list[str] | None = None, encoding: str = "utf-8",
                what: str = "rows") -> _Rows:
    """Every row of ``path`` as text: ``names`` its fields, or ``None`` for a header line.

    Each line must have the header's number of fields (a row cut short would otherwise lose
    its last fields, e.g. a movie's genres); a file without rows is refused too, naming
    ``what`` it should hold.
    """
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not {encoding} text ({err}); {_FIX}") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    numbered = [n for n, line in enumerate(lines, start=1) if line]  # pandas skips blank lines too
    header = names is None
    if header and not numbered:
        raise ValueError(f"{path} is empty: it holds no header and no {what}; {_FIX}")
    fields = names or lines[numbered[0] - 1].split(sep)
    for n in numbered:
        count = lines[n - 1].count(sep) + 1
        if count != len(fields):
            raise ValueError(f"{path}: line {n} has {count} fields separated by {sep!r}, expected {len(fields)} "
                             f"({_listed(fields)}); {_FIX}")
    if len(numbered) == int(header):
        raise ValueError(f"{path} holds no {what}; {_FIX}")
    # Every field as text, no quoting and no NA guessing: titles hold quotes and apostrophes,
    # and zip codes like "00000" or "T8H1N" must survive untouched.
    table = pd.read_csv(
        io.StringIO(text), sep=sep, header=0 if header else None, names=names, dtype=str,
        quoting=csv.QUOTE_NONE, keep_default_na=False,
    )
    return _Rows(path, table, numbered[int(header):])


def _listed(fields: list[str]) -> str:
    return ", ".join(fields) if len(fields) <= 6 else f"{', '.join(fields[:5])}, ..., {fields[-1]}"


def _integers(rows: _Rows, column: str, what: str, low: int | None = None, high: int | None = None) -> np.ndarray:
    """A column of whole numbers in ``low..high``; a bad value is named by file, column and line."""
    return integer_column(rows.table, column, rows.file, what, low, high, where=lambda row: f"line {rows.lines[row]}",
                          fix=_FIX)


def _checked_ratings(rows: _Rows) -> pd.DataFrame:
    """The ratings as ints, each in range, one per user and item."""
    ratings = pd.DataFrame({
        "user_id": _integers(rows, "user_id", "a user id (a whole number)"),
        "item_id": _integers(rows, "item_id", "an item id (a whole number)"),
        "rating": _integers(rows, "rating", "a rating in 1..5 (whole stars)", 1, 5),
        "timestamp": _integers(rows, "timestamp", "a time in Unix seconds (a whole number >= 0)", 0),
    })
    repeated = ratings.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if repeated.any():
        first = int(np.argmax(repeated))
        user, item = ratings.iloc[first][["user_id", "item_id"]]
        same = (ratings["user_id"] == user).to_numpy() & (ratings["item_id"] == item).to_numpy()
        twice = np.flatnonzero(same)
        at = " and ".join(str(rows.lines[r]) for r in twice[:2])
        raise ValueError(f"{rows.file}: user {user} rates item {item} twice, at lines {at}; MovieLens-100K holds "
                         f"one rating per user and item; {_FIX}")
    return ratings


def _read_grouplens(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_table(path / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"], what="ratings")
    genres = list(GENRES)
    if (path / "u.genre").is_file():
        table = _read_table(path / "u.genre", "|", ["genre", "index"], encoding="latin-1", what="genres")
        genres = list(table.table.loc[table.table["genre"] != "", "genre"])
    columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    items = _read_table(path / "u.item", "|", columns, encoding="latin-1", what="movies")
    flags = np.stack([_integers(items, g, "a genre flag, 0 or 1", 0, 1) for g in genres], axis=1) == 1
    items = pd.DataFrame({"item_id": _integers(items, "item_id", "an item id (a whole number)"),
                          # three of the release's titles end in a space, which RecBole's copy drops
                          "title": items.table["title"].str.strip().to_numpy(),
                          "genres": [[g for g, on in zip(genres, row) if on] for row in flags]})
    users = _read_table(path / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"], what="users")
    return _checked_ratings(ratings), items, _checked_users(users)


def _checked_users(users: _Rows) -> pd.DataFrame:
    return users.table.assign(user_id=_integers(users, "user_id", "a user id (a whole number)"),
                        age=_integers(users, "age", "an age in years (a whole number >= 0)", 0))


def _read_recbole(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    def atomic(name: str, wanted: list[str], what: str) -> _Rows:
        rows = _read_table(path / name, "\t", what=what)
        # Headers read "field:type", e.g. "user_id:token".
        rows.table.columns = [c.split(":")[0] for c in rows.table.columns]
        missing = [c for c in wanted if c not in rows.table.columns]
        if missing:
            raise ValueError(f"{path / name} lacks column(s) {missing}; its columns are {list(rows.table.columns)}")
        return rows

    ratings = _checked_ratings(atomic("ml-100k.inter", ["user_id", "item_id", "rating", "timestamp"], "ratings"))
    items = atomic("ml-100k.item", ["item_id", "movie_title", "release_year", "class"], "movies")
    # RecBole split GroupLens' "Title (1995)" into a title and the last parenthesised part,
    # which is not always a year ("... (1995) (V)"); joining them restores the original.
    titles = items.table["movie_title"].replace(_RECBOLE_MISSING, "unknown")
    suffix = items.table["release_year"].map(lambda y: "" if y in ("", _RECBOLE_MISSING) else f" ({y})")
    items = pd.DataFrame({
        "item_id": _integers(items, "item_id", "an item id (a whole number)"),
        "title": titles + suffix,
        # token_seq: space-separated; multi-word genres are hyphenated ("Film-Noir").
        "genres": [sorted(v.split(), key=GENRES.index) for v in items.table["class"]],
    })
    users = atomic("ml-100k.user", ["user_id", "age", "gender", "occupation", "zip_code"], "users")
    return ratings, items, _checked_users(users)


def _release_year(title: str) -> int | None:
    # Taken from the title ("... (1995)"), the one place both layouts carry it: RecBole's
    # files drop GroupLens' release-date column.
    years = _YEAR.findall(title)
    return int(years[-1]) if years else None


def _dense_ids(original: pd.Series, table: str) -> dict[int, int]:
    ids = original.astype("int64")
    if ids.duplicated().any():
        raise ValueError(f"{table} lists id {int(ids[ids.duplicated()].iloc[0])} twice")
    return {old: new for new, old in enumerate(sorted(ids))}


def _remap(original: pd.Series, dense: dict[int, int], what: str) -> pd.Series:
    ids = original.astype("int64")
    unknown = ~ids.isin(list(dense))
    if unknown.any():
        first = int(ids[unknown].iloc[0])
        raise ValueError(f"a rating names {what} {first}, which the {what} table does not list")
    return ids.map(dense).astype("int64")


def _assemble(ratings: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> MovieLens100K:
    item_ids = _dense_ids(items["item_id"], "the item table")
    user_ids = _dense_ids(users["user_id"], "the user table")
    ratings = pd.DataFrame({
        "user_id": _remap(ratings["user_id"], user_ids, "user"),
        "item_id": _remap(ratings["item_id"], item_ids, "item"),
        "rating": ratings["rating"].astype("int64"),
        "timestamp": ratings["timestamp"].astype("int64"),
    })

    items = items.assign(original_id=items["item_id"].astype("int64"),
                         item_id=items["item_id"].astype("int64").map(item_ids)).sort_values("item_id")
    counts = ratings.groupby("item_id")["rating"].agg(["size", "mean"]).reindex(range(len(items)))
    items = pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "title": items["title"].to_numpy(),
        "release_year": pd.array([_release_year(t) for t in items["title"]], dtype="Int64"),
        "genres": items["genres"].to_numpy(),
        "popularity": counts["size"].fillna(0).astype("int64").to_numpy(),
        # An unrated movie gets the average rating: unknown, not bad.
        "quality": counts["mean"].fillna(ratings["rating"].mean()).to_numpy(),
        "original_id": items["original_id"].astype(str).to_numpy(dtype=object),
    })

    users = users.assign(original_id=users["user_id"].astype("int64"),
                         user_id=users["user_id"].astype("int64").map(user_ids)).sort_values("user_id")
    users = pd.DataFrame({
        "user_id": users["user_id"].to_numpy(),
        "age": users["age"].astype("int64").to_numpy(),
        "gender": users["gender"].to_numpy(),
        "occupation": users["occupation"].to_numpy(),
        "zip_code": users["zip_code"].to_numpy(),
        "original_id": users["original_id"].astype(str).to_numpy(dtype=object),
    })
    return MovieLens100K(ratings=ratings, items=items, users=users)
