"""The time-ordered hold-out split and the sessions cut from rating timestamps.

**Split.** Each user's ratings are ordered by time (ties keep the file order, which is
deterministic); the last ``holdout_fraction`` of them, ``floor(fraction * n)`` ratings, are
held out and the earlier ones are the training split. Every MovieLens-100K user has at
least 20 ratings, so every user has at least 4 held-out ratings at the default 0.2. A
held-out item is always in the user's future: the split measures whether a simulated user
fitted on someone's past chooses what they chose next, not whether it interpolates a
random gap.

A **global time cut** (:func:`time_cut_split`) holds out every rating after one date,
for the users seen before it: the behaviour of a later period, for everyone at once.

**Sessions.** A user's ratings form one session while consecutive timestamps are at most
``session_gap_minutes`` apart (30 minutes, the usual web-analytics rule); a longer pause
starts a new session. MovieLens sessions are bursts of *rating* on the MovieLens site, so a
session's length is counted in ratings, the closest thing the data has to consumed items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

DAY = 86_400.0


@dataclass
class Split:
    """Ratings split per user into an earlier training part and a later held-out part.

    Attributes:
        train, test: rows of the ratings table (``user_id``, ``item_id``, ``rating``,
            ``timestamp``), each sorted by user then time.
        n_users, n_items: sizes of the id spaces (ids are dense, ``0..n-1``).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int


def time_ordered(ratings: pd.DataFrame) -> pd.DataFrame:
    """``ratings`` sorted by user, then timestamp; ties keep the original row order."""
    return ratings.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def holdout_split(ratings: pd.DataFrame, fraction: float, n_users: int, n_items: int) -> Split:
    """Hold out the last ``floor(fraction * n)`` of each user's ``n`` ratings (see the module docstring)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction {fraction}; choose a value in [0, 1)")
    ordered = time_ordered(ratings)
    position = ordered.groupby("user_id").cumcount().to_numpy()
    count = ordered.groupby("user_id")["item_id"].transform("size").to_numpy()
    held = position >= count - np.floor(fraction * count).astype(np.int64)
    return Split(ordered[~held].reset_index(drop=True), ordered[held].reset_index(drop=True), n_users, n_items)


def time_cut(ratings: pd.DataFrame, fraction: float) -> int:
    """The cut date (Unix seconds) that leaves the latest ``fraction`` of all ratings after it."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"time-cut fraction {fraction}; choose a value in (0, 1)")
    return int(np.quantile(ratings["timestamp"].to_numpy(), 1.0 - fraction, method="higher"))


def time_cut_split(ratings: pd.DataFrame, cut: int, n_users: int, n_items: int) -> Split:
    """A global time cut: ratings before ``cut`` train, those at or after it are held out,
    for the users who rated something before it (the others have no past to fit)."""
    ordered = time_ordered(ratings)
    before = ordered["timestamp"].to_numpy() < cut
    seen = np.zeros(n_users, dtype=bool)
    seen[ordered.loc[before, "user_id"].to_numpy()] = True
    after = ~before & seen[ordered["user_id"].to_numpy()]
    return Split(ordered[before].reset_index(drop=True), ordered[after].reset_index(drop=True), n_users, n_items)


def session_ids(ordered: pd.DataFrame, gap_minutes: float) -> np.ndarray:
    """Session number (global, 0-based) of each row of user/time-``ordered`` ratings."""
    gap = ordered.groupby("user_id")["timestamp"].diff().to_numpy()
    starts = np.isnan(gap) | (gap > 60.0 * gap_minutes)
    return np.cumsum(starts) - 1


@dataclass
class Sessions:
    """The sessions of every user.

    Attributes:
        table: one row per session: ``user_id``, ``start`` and ``end`` (Unix seconds),
            ``length`` (ratings in the session), ``next_gap_days`` (days from its end to
            the start of the user's next session; NaN after the user's last session).
        data_end: the timestamp of the last rating in the whole data set; a user's last
            session is followed by ``(data_end - end) / DAY`` days without ratings, which
            is censoring, not proof that the user left for good.
    """

    table: pd.DataFrame
    data_end: float


def cut_sessions(ratings: pd.DataFrame, gap_minutes: float) -> Sessions:
    """Cut each user's ratings into sessions by the gap rule of the module docstring."""
    ordered = time_ordered(ratings)
    sid = session_ids(ordered, gap_minutes)
    table = ordered.assign(session=sid).groupby("session").agg(
        user_id=("user_id", "first"), start=("timestamp", "min"), end=("timestamp", "max"),
        length=("item_id", "size"),
    ).reset_index(drop=True)
    next_start = table.groupby("user_id")["start"].shift(-1)
    table["next_gap_days"] = (next_start - table["end"]) / DAY
    return Sessions(table, float(ratings["timestamp"].max()))


def is_first_session(table: pd.DataFrame) -> np.ndarray:
    """``[n_sessions]`` bool: each user's first session in a session table whose rows are
    in user, then time order (``Sessions.table``, as :func:`cut_sessions` makes it)."""
    return ~table["user_id"].duplicated().to_numpy()


def interaction_matrix(ratings: pd.DataFrame, n_users: int, n_items: int) -> torch.Tensor:
    """Dense ``[n_users, n_items]`` bool tensor, True where the user rated the item."""
    matrix = torch.zeros(n_users, n_items, dtype=torch.bool)
    matrix[torch.tensor(ratings["user_id"].to_numpy()), torch.tensor(ratings["item_id"].to_numpy())] = True
    return matrix
