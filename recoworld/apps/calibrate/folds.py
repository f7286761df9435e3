"""The data the calibration reads: a user subsample, the ratings cut in time, the catalog of
the training split, and fingerprints that tie an artifact to its data.

Two cuts in time (:data:`SPLITS`): ``"latest"`` holds out each user's latest ratings
(:func:`~recoworld.calibration.split.holdout_split`), ``"time"`` every rating after one
date (:func:`~recoworld.calibration.split.time_cut_split`; users first seen after it are
left out). The validation fold is cut off the training ratings the same way: each user's
latest ratings, or every training rating after an earlier date, so that it asks of the
model fitted before it what the held-out ratings ask of the world. ``held_out_users``
folds a share of the users in: the item side of the choice model never sees them
(:func:`~recoworld.calibration.choice.fit_choice`).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

import torch

from recoworld.calibration.split import Split, holdout_split, time_cut, time_cut_split, time_ordered
from recoworld.catalog import Catalog
from recoworld.data.movielens import MovieLens100K

SPLITS = ("latest", "time")
#: Peak bytes the choice fit holds per (user, item) pair — it works on dense float32
#: ``[users, items]`` tables: the rating weights, the factorised logits, the item-to-item
#: terms and their sum, the validation fold's logits, and the scores that the simulator's
#: terms are regressed from (float64); the rest (Platt's scaling, the AUC, the truncated SVD's
#: Gram matrix, the EASE product) goes a chunk of users at a time — and per (item, item)
#: pair, for the item-to-item term's one float64 table (EASE's Gram matrix, then in place its
#: Cholesky factor, inverse and item weights) and what the fit holds beside it then.
#: Both are rounded up from the peak memory of fits of several shapes, tall, square and wide,
#: with either split (``benchmarks/RESULTS.md``); the larger of the two bounds every one of
#: them (the item pairs' table is made while user-item tables are held: on a wide catalog its
#: bound's margin covers them).
BYTES_PER_PAIR = 55
BYTES_PER_ITEM_PAIR = 24
#: A cgroup's memory limit and use: v2's files, then v1's.
CGROUP_MEMORY = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


#: How ``meta["data"]["fingerprint"]`` hashes the ratings (:func:`data_fingerprints`): a
#: world without this mark hashed them in the log's row order, and is read that way.
FINGERPRINT_OF = "time-ordered rows"
#: The columns of the item and user tables that a world's record hashes (the users' and items'
#: own, not the counts the ratings give them).
ITEM_COLUMNS = ("original_id", "title", "genres")
USER_COLUMNS = ("original_id", "age", "gender", "occupation", "zip_code")


class CalibrationDataError(ValueError):
    """The data cannot be calibrated on (too small, or too little structure); the message
    says what is missing. ``recoworld calibrate`` prints it without a traceback."""


def subsample(data: MovieLens100K, n_users: int, seed: int) -> MovieLens100K:
    """``n_users`` random users of ``data`` with their ratings, ids made dense again (items kept)."""
    total = len(data.users)
    if not 1 <= n_users <= total:
        raise CalibrationDataError(f"--users {n_users} (users={n_users}): the data has {total} users; choose "
                                   f"1..{total}")
    return keep_users(data, np.sort(np.random.default_rng(seed).choice(total, n_users, replace=False)))


def keep_users(data: MovieLens100K, chosen: np.ndarray) -> MovieLens100K:
    """The users at rows ``chosen`` (sorted) of ``data`` with their ratings, ids made dense
    again; ``source_id`` keeps each one's row in the data as first read."""
    new_id = pd.Series(np.arange(len(chosen)), index=chosen)
    ratings = data.ratings[data.ratings["user_id"].isin(chosen)]
    ratings = ratings.assign(user_id=new_id[ratings["user_id"]].to_numpy())
    users = data.users.iloc[chosen].reset_index(drop=True)
    users = users.assign(source_id=users.get("source_id", users["user_id"]).to_numpy(), user_id=np.arange(len(chosen)))
    # replace() keeps the data's own type (MovieLens-100K or any interaction log).
    return replace(data, ratings=ratings.reset_index(drop=True), users=users)


def training_catalog(items: pd.DataFrame, train: pd.DataFrame, name: str) -> Catalog:
    """The items with popularity and quality (mean rating) from ``train`` only."""
    n_items = len(items)
    counts = np.bincount(train["item_id"], minlength=n_items)
    sums = np.bincount(train["item_id"], weights=train["rating"].to_numpy(dtype=np.float64), minlength=n_items)
    # An item without training ratings gets the mean rating: unknown, not bad.
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), train["rating"].mean())
    table = pd.DataFrame({"title": items["title"], "genres": items["genres"], "popularity": counts, "quality": mean})
    return Catalog.from_dataframe(table, features=None, name=name)


@dataclass
class Folds:
    """The ratings cut in time (step 1): ``split`` holds each user's latest ratings (or
    every rating after ``cut_time``) out for the fidelity report; ``inner`` cuts the
    validation fold off ``split.train`` the same way (after ``inner_cut_time``)."""

    data: MovieLens100K
    split: Split
    inner: Split
    kind: str = "latest"
    cut_time: int | None = None
    fold_in: torch.Tensor | None = None
    inner_cut_time: int | None = None

    @classmethod
    def cut(cls, data: MovieLens100K, holdout_fraction: float, validation_fraction: float,
            users: int | None = None, seed: int = 0, kind: str = "latest", held_out_users: float = 0.0) -> Folds:
        """The folds of ``data`` (of ``users`` of its users drawn with ``seed``, if given),
        cut as ``kind`` (:data:`SPLITS`), with a share ``held_out_users`` folded in."""
        if users is not None:
            data = subsample(data, users, seed)
        cut_time = None
        if kind == "time":
            cut_time = time_cut(data.ratings, holdout_fraction)
            data = keep_users(data, np.unique(data.ratings.loc[data.ratings["timestamp"] < cut_time, "user_id"]))
        elif kind != "latest":
            raise ValueError(f"split={kind!r}; choose one of {SPLITS}")
        n_users, n_items = len(data.users), len(data.items)
        split = (holdout_split(data.ratings, holdout_fraction, n_users, n_items) if cut_time is None
                 else time_cut_split(data.ratings, cut_time, n_users, n_items))
        inner_cut_time = None if cut_time is None else time_cut(split.train, validation_fraction)
        inner = (holdout_split(split.train, validation_fraction, n_users, n_items) if cut_time is None
                 else time_cut_split(split.train, inner_cut_time, n_users, n_items))
        return cls(data, split, inner, kind, cut_time, fold_in_mask(n_users, held_out_users, seed), inner_cut_time)

    def check_enough(self, min_items: int, holdout_fraction: float, validation_fraction: float) -> None:
        """Refuse, with a :class:`CalibrationDataError` that says what is missing, data the
        fit cannot run on: fewer than ``min_items`` items, no two times within any user, an
        empty validation fold (the fractions are those the folds were cut with), or more
        (user, item) pairs than the memory available holds (:meth:`check_memory`)."""
        if self.n_items < min_items:
            raise CalibrationDataError(
                f"the catalog has {self.n_items} items; the calibration needs at least {min_items}: its leave fit "
                f"serves slates picked from {min_items} distinct random candidates. List the items nobody chose in "
                "an item table (--items PATH): every listed item stays in the catalog")
        self.check_times()
        if len(self.inner.test) == 0:
            per_user = np.bincount(self.data.ratings["user_id"], minlength=self.n_users)
            need = min_interactions(holdout_fraction, validation_fraction)
            rule = ("the interactions after an earlier cut date validate the fit" if self.kind == "time" else
                    f"the latest {validation_fraction:g} of each user's interactions before their held-out "
                    f"{holdout_fraction:g} validate the fit" + (f", so a user needs at least {need}" if need else ""))
            raise CalibrationDataError(
                f"the validation fold is empty ({self.n_users} users, {len(self.data.ratings)} interactions, at most "
                f"{per_user.max()} per user): {rule}. Calibrate on a longer log")
        self.check_memory(available_memory())

    def check_memory(self, available: int | None) -> None:
        """Refuse, before the fit starts, data whose choice fit needs more than ``available``
        bytes of memory (``None``: not known, not checked), saying how many users fit: the
        fit would otherwise be killed by the operating system minutes later, without a word."""
        if available is None or fit_memory(self.n_users, self.n_items) <= available:
            return
        users = available // (BYTES_PER_PAIR * self.n_items) if fit_memory(1, self.n_items) <= available else 0
        fix = (f"fit a random subset of the users (--users {users} or fewer), or " if users >= 1 else "") + \
            "keep the log's most chosen items only"
        item_pairs = BYTES_PER_ITEM_PAIR * self.n_items ** 2
        # Say why fewer users would not help: the table of the item pairs is the same for any number.
        alone = (f" (the table of every pair of items alone takes {_memory_size(item_pairs)}, whatever the number "
                 "of users)" if item_pairs > available else "")
        raise CalibrationDataError(
            f"the choice fit holds a dense table of every (user, item) pair: {self.n_users:,} users x "
            f"{self.n_items:,} items need about {_memory_size(fit_memory(self.n_users, self.n_items))} of "
            f"memory{alone}, and {_memory_size(available)} is available; {fix}")

    def check_times(self) -> None:
        """Refuse a log in which no user's interactions happened at two different times (one
        timestamp for every row, or an import date per user): the held-out split would
        follow the file's order, and no session could be told from the next. Users of one
        interaction tell nothing either way (a log of only those is refused for its empty
        validation fold)."""
        ratings = self.data.ratings
        per_user = ratings.groupby("user_id")["timestamp"].agg(["size", "nunique"])
        several = per_user[per_user["size"] > 1]
        if len(several) and several["nunique"].max() == 1:
            times = ratings["timestamp"].unique()
            shared = (f"every interaction has the timestamp {times[0]}" if len(times) == 1 else
                      f"each user's interactions share one timestamp ({len(times)} distinct in all)")
            raise CalibrationDataError(
                f"no user's interactions happened at two different times: {shared}. The held-out split, the "
                "sessions and the returns are read off when each interaction happened: give each one its own time "
                "(when the event happened, not when it was exported)")

    @property
    def n_users(self) -> int:
        return len(self.data.users)

    @property
    def n_items(self) -> int:
        return len(self.data.items)

    @property
    def held_out_users(self) -> list[int]:
        """Rows of the folded-in users (none unless ``held_out_users`` was given)."""
        return [] if self.fold_in is None else self.fold_in.nonzero().flatten().tolist()

    def describe(self) -> tuple[dict, dict]:
        """The artifact's ``meta["data"]`` and ``meta["split"]``: sizes and fingerprints."""
        ratings, users = self.data.ratings, self.data.users
        data = {"n_users": self.n_users, "n_items": self.n_items, "n_ratings": len(ratings),
                "has_ratings": self.data.has_ratings, **data_fingerprints(self.data),
                "source_user_ids": [int(x) for x in users.get("source_id", users["user_id"])]}
        split = {"kind": self.kind, "cut_time": self.cut_time, "held_out_users": self.held_out_users,
                 "train": len(self.split.train), "test": len(self.split.test), "validation": len(self.inner.test),
                 "test_fingerprint": fingerprint(self.split.test)}
        return data, split


def fit_memory(n_users: int, n_items: int) -> int:
    """About the peak bytes of the choice fit on ``n_users`` x ``n_items``: the larger of
    :data:`BYTES_PER_PAIR` per (user, item) pair and :data:`BYTES_PER_ITEM_PAIR` per pair of
    items, not their sum.

    The fit's memory peaks at one of two steps: where it holds the most (user, item) tables,
    or where it makes the item pairs' table (EASE's) beside fewer of them. The second step's
    peak is a sum, of the table and the (user, item) tables held then, but the sum of the two
    constants would count the latter twice over: :data:`BYTES_PER_ITEM_PAIR` is rounded up
    from that whole step's peak on catalogs where it is the larger bound, and
    :data:`BYTES_PER_PAIR` covers that step wherever the (user, item) bound is the larger.
    """
    return max(BYTES_PER_PAIR * n_users * n_items, BYTES_PER_ITEM_PAIR * n_items ** 2)


def available_memory() -> int | None:
    """Bytes of memory this process can take without swapping: Linux's ``MemAvailable``, or
    less where the process's control group (a container's memory limit) leaves less; else
    the machine's physical memory; else ``None`` (unknown)."""
    machine = _meminfo_available()
    if machine is None:
        try:
            machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
            return None
    room = _container_room()
    return machine if room is None else min(machine, room)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _container_room() -> int | None:
    """The memory limit of the process's cgroup less its use (v2, else v1); ``None`` without one."""
    for limit, usage in CGROUP_MEMORY:
        try:
            with open(limit) as limit_file, open(usage) as usage_file:
                cap, used = limit_file.read().strip(), usage_file.read().strip()
        except OSError:
            continue
        # v2 writes "max" for no limit; v1 a number near 2**63.
        if not (cap.isdigit() and used.isdigit()) or int(cap) >= 2 ** 60:
            return None
        return max(int(cap) - int(used), 0)
    return None


def _memory_size(size: int) -> str:
    """``size`` bytes in GiB, or MiB below one GiB."""
    return f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.1f} MiB"


def min_interactions(holdout_fraction: float, validation_fraction: float) -> int | None:
    """The fewest interactions that leave a user one held out and one validating
    (:func:`~recoworld.calibration.split.holdout_split` keeps ``floor(fraction * n)``);
    ``None`` if no count up to 10,000 does."""
    for n in range(1, 10_001):
        held = math.floor(holdout_fraction * n)
        if held >= 1 and math.floor(validation_fraction * (n - held)) >= 1:
            return n
    return None


def fold_in_mask(n_users: int, share: float, seed: int) -> torch.Tensor | None:
    """``[n_users]`` mask of a random ``share`` of the users (``None`` for 0)."""
    if share == 0:
        return None
    count = int(round(share * n_users))
    if not 0 < share < 1 or not 1 <= count < n_users:
        raise ValueError(f"held_out_users={share}; choose a share in (0, 1) that leaves at least one user on "
                         f"each side of {n_users} users")
    mask = torch.zeros(n_users, dtype=torch.bool)
    # A stream of its own (seed + 1), apart from the user subsample's.
    mask[torch.as_tensor(np.random.default_rng(seed + 1).choice(n_users, count, replace=False))] = True
    return mask


def fingerprint(ratings: pd.DataFrame) -> str:
    """A short hash of ``ratings``' ids, stars and times: the artifact records the data and
    the held-out split it was fitted on, and the fidelity report checks them against it."""
    table = ratings[["user_id", "item_id", "rating", "timestamp"]].to_numpy(dtype=np.int64)
    return hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()[:16]


def data_fingerprints(data: MovieLens100K) -> dict[str, str]:
    """The record of the data a world fitted, which ``recoworld calibrate`` compares a log
    given again against (``meta["data"]``): the hash of its ratings in time order
    (:data:`FINGERPRINT_OF`: as the fit reads them, so the same log sorted otherwise is the
    same; ties keep the file's order, which the held-out split reads), and those of the item
    and user tables' own columns (titles and genres; age, gender, occupation, zip code)."""
    return {"fingerprint": fingerprint(time_ordered(data.ratings)), "fingerprint_of": FINGERPRINT_OF,
            **tables_fingerprints(data)}


def tables_fingerprints(data: MovieLens100K) -> dict[str, str]:
    """The hashes of the item and user tables' own columns in ``data`` (:func:`data_fingerprints`)."""
    return {"items_fingerprint": table_fingerprint(data.items, ITEM_COLUMNS),
            "users_fingerprint": table_fingerprint(data.users, USER_COLUMNS)}


def table_fingerprint(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """A short hash of the ``columns`` of ``table`` it has, row by row as text (a list of
    genres as its sorted names, ``|``-joined: ``War|Drama`` is the catalog of ``Drama|War``),
    with the columns' names."""
    digest = hashlib.sha256()
    for column in (c for c in columns if c in table.columns):
        values = table[column].map(lambda v: "|".join(sorted(map(str, v))) if isinstance(v, (list, np.ndarray))
                                   else str(v))
        digest.update(f"{column}\x1e{chr(31).join(values)}\x1e".encode())
    return digest.hexdigest()[:16]
