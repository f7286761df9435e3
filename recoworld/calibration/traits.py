"""Per-user traits read off a user's training ratings: descriptive statistics, no model.

* **Genre straying** (-> novelty seeking): the mean, over the user's rated items, of the
  cosine distance between the item's genre vector and the genre profile of the user's
  *other* rated items. A user who keeps to a few genres scores near 0; one whose every
  next movie is of a genre they rarely watch scores near 1.
* **Conformity**: how close the user's ratings sit to what everyone else thinks, from the
  mean absolute gap between their rating and the item's average rating by the *other*
  users (items nobody else rated are skipped). Reported as a percentile in ``(0, 1)``:
  1 for the user whose ratings follow the crowd most closely.
* **Favourite genre**: the genre the user watches most *relative to the catalog's
  consumption as a whole*, with ``prior`` pseudo-ratings at the population's genre mix so
  that a single Film-Noir rating does not make a Film-Noir fan. (Drama and Comedy lead
  almost everyone's raw counts, so raw counts would make nearly everyone a Drama fan.)
* **Rating offset**: the user's mean gap between their rating and the item average,
  shrunk towards 0 by ``prior`` pseudo-ratings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats


def normal_scores(values) -> np.ndarray:
    """Rank-based normal scores: ``Phi^-1((rank - 1/2) / n)``, ties averaged; NaN stays NaN."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    ok = ~np.isnan(x)
    out[ok] = stats.norm.ppf((stats.rankdata(x[ok]) - 0.5) / ok.sum())
    return out


def percentiles(values) -> np.ndarray:
    """Rank-based percentiles ``(rank - 1/2) / n`` in ``(0, 1)``, ties averaged."""
    x = np.asarray(values, dtype=np.float64)
    return (stats.rankdata(x) - 0.5) / len(x)


def _genre_profiles(train: pd.DataFrame, genre_weights: torch.Tensor, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    weights = genre_weights.cpu().numpy().astype(np.float64)
    per_rating = weights[train["item_id"].to_numpy()]
    profile = np.zeros((n_users, weights.shape[1]))
    np.add.at(profile, train["user_id"].to_numpy(), per_rating)
    return profile, per_rating


def genre_straying(train: pd.DataFrame, genre_weights: torch.Tensor, n_users: int) -> np.ndarray:
    """``[n_users]`` mean leave-one-out genre distance of the user's ratings (module docstring)."""
    profile, per_rating = _genre_profiles(train, genre_weights, n_users)
    users = train["user_id"].to_numpy()
    others = profile[users] - per_rating
    cosine = (others * per_rating).sum(1) / np.maximum(
        np.linalg.norm(others, axis=1) * np.linalg.norm(per_rating, axis=1), 1e-12)
    distance = pd.Series(1.0 - cosine).groupby(users).mean()
    return distance.reindex(range(n_users)).to_numpy()


def item_means(train: pd.DataFrame, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item rating sums and counts (for leave-one-out means)."""
    items = train["item_id"].to_numpy()
    sums = np.bincount(items, weights=train["rating"].to_numpy(dtype=np.float64), minlength=n_items)
    return sums, np.bincount(items, minlength=n_items).astype(np.float64)


def conformity_gap(train: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """``[n_users]`` mean |rating - other users' average for the item| (NaN if no item qualifies)."""
    sums, counts = item_means(train, n_items)
    items, ratings = train["item_id"].to_numpy(), train["rating"].to_numpy(dtype=np.float64)
    others = counts[items] - 1
    keep = others > 0
    gap = np.abs(ratings[keep] - (sums[items][keep] - ratings[keep]) / others[keep])
    return pd.Series(gap).groupby(train["user_id"].to_numpy()[keep]).mean().reindex(range(n_users)).to_numpy()


def conformity(train: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """``[n_users]`` conformity percentiles (module docstring). A user none of whose items
    another user rated has no gap and sits at the mean gap; where no user has one (a log
    of one user, or of users who share no item), every user sits in the middle, 0.5."""
    gap = conformity_gap(train, n_users, n_items)
    known = ~np.isnan(gap)
    return percentiles(-np.where(known, gap, gap[known].mean() if known.any() else 0.0))


def favourite_genres(train: pd.DataFrame, genre_weights: torch.Tensor, genre_names, n_users: int,
                     prior: float = 20.0) -> list[str]:
    """Each user's favourite genre by smoothed lift over the population's mix (module docstring)."""
    profile, _ = _genre_profiles(train, genre_weights, n_users)
    mix = profile.sum(0) / profile.sum()
    smoothed = (profile + prior * mix) / (profile.sum(1, keepdims=True) + prior)
    lift = smoothed / np.maximum(mix, 1e-12)
    return [genre_names[j] for j in lift.argmax(1)]


def rating_offsets(train: pd.DataFrame, n_users: int, n_items: int, prior: float = 5.0) -> np.ndarray:
    """``[n_users]`` shrunk mean of (rating - item mean), the item mean over all training ratings."""
    sums, counts = item_means(train, n_items)
    items = train["item_id"].to_numpy()
    residual = train["rating"].to_numpy(dtype=np.float64) - sums[items] / counts[items]
    users = train["user_id"].to_numpy()
    total = np.bincount(users, weights=residual, minlength=n_users)
    n = np.bincount(users, minlength=n_users)
    return total / (n + prior)
