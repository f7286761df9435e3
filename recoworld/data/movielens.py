"""MovieLens-100K: 100,000 ratings (1..5) by 943 users of 1,682 movies.

F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context",
ACM TiiS 5(4), 2015.

:func:`load_movielens_100k` reads either of the two common layouts, found from the files
present in the folder:

* GroupLens' original ``ml-100k.zip``, unzipped: ``u.data``, ``u.item``, ``u.user`` (and
  ``u.genre``);
* RecBole's atomic files ``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user``, which is
  what ``recoworld data fetch movielens-100k`` downloads.

Both give the same tables. Ids are dense and 0-based in the original order, so that
``item_id = movie_id - 1`` and ``user_id = user_id - 1`` for the published files.
:func:`load_catalog` turns the items into a :class:`recoworld.catalog.Catalog`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recoworld.catalog import Catalog

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


@dataclass
class MovieLens100K:
    """The three MovieLens-100K tables.

    Attributes:
        ratings: one row per rating, in file order: ``user_id``, ``item_id`` (0-based
            ints), ``rating`` (1..5), ``timestamp`` (Unix seconds).
        items: one row per movie, row ``i`` is ``item_id == i``: ``title`` (with the
            year, e.g. ``"Toy Story (1995)"``), ``release_year`` (from the title; ``<NA>``
            when it has none), ``genres`` (list of names from :data:`GENRES`),
            ``popularity`` (number of ratings) and ``quality`` (mean rating).
        users: one row per user, row ``u`` is ``user_id == u``: ``age``, ``gender``
            (``"M"``/``"F"``), ``occupation``, ``zip_code`` (a string; some are Canadian).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame


def load_movielens_100k(path: str | Path | None = None) -> MovieLens100K:
    """Read MovieLens-100K from ``path``, or from RecoWorld's cache when ``path`` is None.

    With ``path=None`` the data set is fetched first if the cache lacks it (see
    :func:`recoworld.data.fetch.fetch`). Raises ``ValueError`` when ``path`` holds
    neither layout.
    """
    if path is None:
        from recoworld.data.fetch import fetch

        path = fetch("movielens-100k")
    path = Path(path).expanduser()
    if all((path / f).is_file() for f in GROUPLENS_FILES):
        ratings, items, users = _read_grouplens(path)
    elif all((path / f).is_file() for f in RECBOLE_FILES):
        ratings, items, users = _read_recbole(path)
    else:
        where = "does not exist" if not path.exists() else "holds neither MovieLens-100K layout"
        raise ValueError(
            f"{path} {where}: expected GroupLens' files {', '.join(GROUPLENS_FILES)} "
            f"(ml-100k.zip, unzipped) or RecBole's files {', '.join(RECBOLE_FILES)} "
            "(recoworld data fetch movielens-100k)"
        )
    return _assemble(ratings, items, users)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """MovieLens-100K's 1,682 movies as a catalog.

    Features are the normalised genre multi-hot vectors (19 genres), popularity is the
    share of ratings and quality the standardised mean rating. ``path`` is as for
    :func:`load_movielens_100k`.
    """
    items = load_movielens_100k(path).items
    return Catalog.from_dataframe(items, features=None, name="movielens-100k")


def _read_table(path: Path, sep: str, names: list[str] | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    # Every field as text, no quoting and no NA guessing: titles hold quotes and apostrophes,
    # and zip codes like "00000" or "T8H1N" must survive untouched.
    return pd.read_csv(
        path, sep=sep, header=None if names else 0, names=names, dtype=str, encoding=encoding,
        quoting=csv.QUOTE_NONE, keep_default_na=False,
    )


def _read_grouplens(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_table(path / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"])
    genres = list(GENRES)
    if (path / "u.genre").is_file():
        table = _read_table(path / "u.genre", "|", ["genre", "index"], encoding="latin-1")
        genres = list(table.loc[table["genre"] != "", "genre"])
    columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    items = _read_table(path / "u.item", "|", columns, encoding="latin-1")
    flags = items[genres].to_numpy() == "1"
    items["genres"] = [[g for g, on in zip(genres, row) if on] for row in flags]
    users = _read_table(path / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"])
    return ratings, items[["item_id", "title", "genres"]], users


def _read_recbole(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    def atomic(name: str, wanted: list[str]) -> pd.DataFrame:
        table = _read_table(path / name, "\t")
        # Headers read "field:type", e.g. "user_id:token".
        table.columns = [c.split(":")[0] for c in table.columns]
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise ValueError(f"{path / name} lacks column(s) {missing}; its columns are {list(table.columns)}")
        return table[wanted]

    ratings = atomic("ml-100k.inter", ["user_id", "item_id", "rating", "timestamp"])
    items = atomic("ml-100k.item", ["item_id", "movie_title", "release_year", "class"])
    # RecBole split GroupLens' "Title (1995)" into a title and the last parenthesised part,
    # which is not always a year ("... (1995) (V)"); joining them restores the original.
    titles = items["movie_title"].replace(_RECBOLE_MISSING, "unknown")
    suffix = items["release_year"].map(lambda y: "" if y in ("", _RECBOLE_MISSING) else f" ({y})")
    items = pd.DataFrame({
        "item_id": items["item_id"],
        "title": titles + suffix,
        # token_seq: space-separated; multi-word genres are hyphenated ("Film-Noir").
        "genres": [sorted(v.split(), key=GENRES.index) for v in items["class"]],
    })
    users = atomic("ml-100k.user", ["user_id", "age", "gender", "occupation", "zip_code"])
    return ratings, items, users


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
        "rating": ratings["rating"].astype(float).astype("int64"),
        "timestamp": ratings["timestamp"].astype(float).astype("int64"),
    })

    items = items.assign(item_id=items["item_id"].astype("int64").map(item_ids)).sort_values("item_id")
    counts = ratings.groupby("item_id")["rating"].agg(["size", "mean"]).reindex(range(len(items)))
    items = pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "title": items["title"].to_numpy(),
        "release_year": pd.array([_release_year(t) for t in items["title"]], dtype="Int64"),
        "genres": items["genres"].to_numpy(),
        "popularity": counts["size"].fillna(0).astype("int64").to_numpy(),
        # An unrated movie gets the average rating: unknown, not bad.
        "quality": counts["mean"].fillna(ratings["rating"].mean()).to_numpy(),
    })

    users = users.assign(user_id=users["user_id"].astype("int64").map(user_ids)).sort_values("user_id")
    users = pd.DataFrame({
        "user_id": users["user_id"].to_numpy(),
        "age": users["age"].astype("int64").to_numpy(),
        "gender": users["gender"].to_numpy(),
        "occupation": users["occupation"].to_numpy(),
        "zip_code": users["zip_code"].to_numpy(),
    })
    return MovieLens100K(ratings=ratings, items=items, users=users)
