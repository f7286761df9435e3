"""The data the calibration reads: a user subsample, the ratings cut in time, the catalog of
the training split, and fingerprints that tie an artifact to its data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recoworld.calibration.split import Split, holdout_split
from recoworld.catalog import Catalog
from recoworld.data.movielens import MovieLens100K

def subsample(data: MovieLens100K, n_users: int, seed: int) -> MovieLens100K:
    """``n_users`` random users of ``data`` with their ratings, ids made dense again (items kept)."""
    total = len(data.users)
    if not 1 <= n_users <= total:
        raise ValueError(f"users={n_users}; choose 1..{total}")
    chosen = np.sort(np.random.default_rng(seed).choice(total, n_users, replace=False))
    new_id = pd.Series(np.arange(n_users), index=chosen)
    ratings = data.ratings[data.ratings["user_id"].isin(chosen)]
    ratings = ratings.assign(user_id=new_id[ratings["user_id"]].to_numpy())
    users = data.users.iloc[chosen].reset_index(drop=True).assign(source_id=chosen)
    return MovieLens100K(ratings.reset_index(drop=True), data.items, users.assign(user_id=np.arange(n_users)))


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
    """The ratings cut in time (step 1): ``split`` holds each user's latest ratings out for
    the fidelity report; ``inner`` cuts the validation fold off ``split.train``."""

    data: MovieLens100K
    split: Split
    inner: Split

    @classmethod
    def cut(cls, data: MovieLens100K, holdout_fraction: float, validation_fraction: float,
            users: int | None = None, seed: int = 0) -> Folds:
        """The folds of ``data`` (of ``users`` of its users drawn with ``seed``, if given)."""
        if users is not None:
            data = subsample(data, users, seed)
        n_users, n_items = len(data.users), len(data.items)
        split = holdout_split(data.ratings, holdout_fraction, n_users, n_items)
        return cls(data, split, holdout_split(split.train, validation_fraction, n_users, n_items))

    @property
    def n_users(self) -> int:
        return len(self.data.users)

    @property
    def n_items(self) -> int:
        return len(self.data.items)

    def describe(self) -> tuple[dict, dict]:
        """The artifact's ``meta["data"]`` and ``meta["split"]``: sizes and fingerprints."""
        ratings, users = self.data.ratings, self.data.users
        data = {"n_users": self.n_users, "n_items": self.n_items, "n_ratings": len(ratings),
                "fingerprint": fingerprint(ratings),
                "source_user_ids": [int(x) for x in users.get("source_id", users["user_id"])]}
        split = {"train": len(self.split.train), "test": len(self.split.test), "validation": len(self.inner.test),
                 "test_fingerprint": fingerprint(self.split.test)}
        return data, split


def fingerprint(ratings: pd.DataFrame) -> str:
    """A short hash of ``ratings``' ids, stars and times: the artifact records the data and
    the held-out split it was fitted on, and the fidelity report checks them against it."""
    table = ratings[["user_id", "item_id", "rating", "timestamp"]].to_numpy(dtype=np.int64)
    return hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()[:16]
