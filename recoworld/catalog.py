"""The item catalog: what a recommender can show and a simulated user can react to.

Every item has an integer id ``0..n_items-1``. A :class:`Catalog` holds, per item, dense
features (a topic mixture or an embedding), a multi-hot genre vector, a title, a
popularity share and a quality score, all as tensors with the item id as the row index so
that a batch of slates ``[B, K]`` indexes straight into them.

Catalogs come from a pandas DataFrame (:meth:`Catalog.from_dataframe`), the synthetic
generator (:meth:`Catalog.synthetic`), or MovieLens-100K
(:func:`recoworld.data.movielens.load_catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

SYNTHETIC_GENRES = (
    "Action", "Comedy", "Drama", "Documentary", "Sci-Fi", "Horror", "Romance", "Thriller",
    "Animation", "Music", "Cooking", "Sports", "Travel", "News", "Gaming", "Science",
)


class SyntheticTitles(Sequence):
    """Titles computed on demand, so that a million-item catalog holds no million strings."""

    def __init__(self, primary_genre: np.ndarray, genre_names: Sequence[str]):
        self._primary = primary_genre
        self._names = tuple(genre_names)

    def __len__(self) -> int:
        return len(self._primary)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} is outside the catalog (ids 0..{len(self) - 1})")
        i %= len(self)
        return f"{self._names[self._primary[i]]} #{i}"


def lookup(table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Rows of a per-item ``table`` for an index tensor ``items`` of any shape.

    Equal to ``table[items]``, but through ``index_select``, which is faster than advanced
    indexing on CPU (``benchmarks/RESULTS.md``); the simulator's step does this for every
    slate.
    """
    return table.index_select(0, items.reshape(-1)).view(*items.shape, *table.shape[1:])


@dataclass(eq=False)
class Catalog:
    """Items with ids ``0..n_items-1`` and their attributes.

    Attributes:
        features: ``[N, D]`` float32 dense item features; each row has unit L2 norm.
        genres: ``[N, G]`` bool multi-hot genre (category) membership; every item has at
            least one genre.
        genre_names: the ``G`` genre names, in column order of ``genres``.
        titles: ``N`` item titles.
        popularity: ``[N]`` float32 share of all interactions, summing to 1.
        quality: ``[N]`` float32 intrinsic appeal, standardised to mean 0 and std 1.
        name: a short label used in logs and reports.
    """

    features: torch.Tensor
    genres: torch.Tensor
    genre_names: tuple[str, ...]
    titles: Sequence[str]
    popularity: torch.Tensor
    quality: torch.Tensor
    name: str = "catalog"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.features.shape[0]
        if self.features.ndim != 2:
            raise ValueError(f"features must be [n_items, dim], got shape {tuple(self.features.shape)}")
        for label, tensor, shape in (
            ("genres", self.genres, (n, len(self.genre_names))),
            ("popularity", self.popularity, (n,)),
            ("quality", self.quality, (n,)),
        ):
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{label} must have shape {shape} for {n} items, got {tuple(tensor.shape)}")
        if len(self.titles) != n:
            raise ValueError(f"titles has {len(self.titles)} entries for {n} items")
        if n == 0:
            raise ValueError("a catalog needs at least one item")
        if self.genres.dtype != torch.bool:
            self.genres = self.genres.bool()
        # The simulators and kernels compute in float32; a float64 table (what
        # torch.tensor(numpy_array) gives) would otherwise fail deep inside a matmul.
        self.features, self.popularity, self.quality = (
            t.float() if t.dtype != torch.float32 else t for t in (self.features, self.popularity, self.quality))
        for label, tensor in (("features", self.features), ("popularity", self.popularity), ("quality", self.quality)):
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                where = tuple(int(i) for i in (~finite).nonzero()[0])
                raise ValueError(f"{label}{list(where)} is {float(tensor[where])} (item {where[0]}); "
                                 "a catalog holds finite numbers only")
        orphans = (~self.genres.any(dim=1)).nonzero().flatten()
        if len(orphans):
            raise ValueError(
                f"item {int(orphans[0])} has no genre ({len(orphans)} items in all); "
                "give every item at least one genre, e.g. an 'Unknown' genre"
            )
        # Derived once here because the simulator's step reads them for every slate.
        self.log_popularity = torch.log(self.popularity.clamp_min(1e-12))
        self.novelty = -torch.log2(self.popularity.clamp_min(1e-12))
        genre_counts = self.genres.sum(dim=1, keepdim=True).float()
        self.genre_weights = self.genres.float() / genre_counts

    @property
    def n_items(self) -> int:
        return self.features.shape[0]

    @property
    def n_genres(self) -> int:
        return len(self.genre_names)

    @property
    def feature_dim(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: str | torch.device) -> Catalog:
        """The same catalog with its tensors on ``device``."""
        device = torch.device(device)
        if device == self.device:
            return self
        return Catalog(
            features=self.features.to(device), genres=self.genres.to(device),
            genre_names=self.genre_names, titles=self.titles,
            popularity=self.popularity.to(device), quality=self.quality.to(device),
            name=self.name, extra=self.extra,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per item: id, title, genres ('|'-joined), popularity, quality, features."""
        genres = self.genres.cpu().numpy()
        names = np.array(self.genre_names, dtype=object)
        return pd.DataFrame({
            "item_id": np.arange(self.n_items),
            "title": list(self.titles),
            "genres": ["|".join(names[row]) for row in genres],
            "popularity": self.popularity.cpu().numpy(),
            "quality": self.quality.cpu().numpy(),
            "features": list(self.features.cpu().numpy()),
        })

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        genres: str = "genres",
        title: str = "title",
        popularity: str | None = "popularity",
        quality: str | None = "quality",
        features: str | Sequence[str] | None = "features",
        name: str = "dataframe",
    ) -> Catalog:
        """Build a catalog from one row per item, in item-id order.

        Args:
            df: the items; row ``i`` becomes item ``i``.
            genres: column of genre lists or ``'|'``-separated strings.
            title: column of titles.
            popularity: column of non-negative interaction counts or shares; ``None`` or a
                missing column gives every item the same share.
            quality: column of appeal scores (standardised here); ``None`` or missing gives 0.
            features: a column of equal-length vectors, or a list of numeric columns;
                ``None`` or missing uses the normalised genre vector as features.
        """
        if len(df) == 0:
            raise ValueError("the DataFrame has no rows; a catalog needs at least one item")
        for column in (genres, title):
            if column not in df.columns:
                raise ValueError(f"column {column!r} is missing; the DataFrame has {list(df.columns)}")
        genre_names, multi_hot = _genre_table(df[genres], genres)
        pop = _popularity_shares(df, popularity)
        q = _standardised_quality(df, quality)
        feats = torch.nn.functional.normalize(_feature_table(df, features, multi_hot), dim=1)
        return cls(feats, multi_hot, genre_names, list(df[title].astype(str)), pop, q, name=name)

    @classmethod
    def synthetic(
        cls,
        n_items: int = 1000,
        n_genres: int = 12,
        feature_dim: int = 16,
        popularity_exponent: float = 1.0,
        multi_genre_prob: float = 0.3,
        seed: int = 0,
        name: str | None = None,
    ) -> Catalog:
        """A generated catalog: topical features, genres, quality and power-law popularity.

        Each genre has a random unit centroid in feature space; an item takes a primary
        genre (a second one with probability ``multi_genre_prob``) and its features are the
        mean of its genres' centroids plus noise. Popularity follows Zipf's law with
        exponent ``popularity_exponent`` over a random item order, and is correlated with
        quality, as in real catalogs where better items attract more views.

        Sizes from 100 to several million items are fine: everything is vectorised.
        """
        if not 1 <= n_genres <= len(SYNTHETIC_GENRES):
            raise ValueError(f"n_genres={n_genres}; choose 1..{len(SYNTHETIC_GENRES)}")
        if n_items < 1:
            raise ValueError(f"n_items={n_items}; a catalog needs at least one item")
        gen = torch.Generator().manual_seed(seed)
        centroids = torch.nn.functional.normalize(torch.randn(n_genres, feature_dim, generator=gen), dim=1)
        primary = torch.randint(n_genres, (n_items,), generator=gen)
        secondary = torch.randint(n_genres, (n_items,), generator=gen)
        has_second = torch.rand(n_items, generator=gen) < multi_genre_prob
        genres = torch.zeros(n_items, n_genres, dtype=torch.bool)
        genres[torch.arange(n_items), primary] = True
        genres[has_second.nonzero().flatten(), secondary[has_second]] = True
        weights = genres.float() / genres.sum(1, keepdim=True)
        features = weights @ centroids + 0.35 * torch.randn(n_items, feature_dim, generator=gen)
        features = torch.nn.functional.normalize(features, dim=1)
        quality = torch.randn(n_items, generator=gen)
        # Rank items by a noisy quality so that popular items tend to be good ones.
        order = torch.argsort(quality + 1.5 * torch.randn(n_items, generator=gen), descending=True)
        ranks = torch.empty(n_items)
        ranks[order] = torch.arange(1, n_items + 1, dtype=torch.float32)
        weight = ranks.pow(-popularity_exponent)
        popularity = weight / weight.sum()
        names = SYNTHETIC_GENRES[:n_genres]
        return cls(
            features, genres, names, SyntheticTitles(primary.numpy(), names), popularity,
            # One item has no spread (its std is NaN): it stands at the mean, as in from_dataframe.
            (quality - quality.mean()) / quality.std().clamp_min(1e-6) if n_items > 1 else quality * 0,
            name=name or f"synthetic-{n_items}",
        )


# --------------------------------------------------- the columns of Catalog.from_dataframe
class RandomCandidates:
    """Random sets of ``count`` distinct items of a catalog of ``n_items``, from a
    ``torch.Generator``: ``(a + j s) mod n_items`` for ``j < count``, a uniform start ``a``
    and a uniform stride ``s`` coprime with ``n_items`` — distinct items in ``O(count)`` per
    row, as the env draws its candidates (``recoworld.envs.candidates``, from counter-based
    draws instead)."""

    def __init__(self, n_items: int, count: int):
        self.n_items = n_items
        strides = torch.arange(1, max(n_items, 2))
        self.strides = strides[torch.gcd(strides, torch.tensor(n_items)) == 1]
        self.offsets = torch.arange(count)

    def draw(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """``[rows, count]`` item ids (int64, CPU): the start, then the stride, of each row."""
        start = torch.randint(self.n_items, (rows, 1), generator=generator)
        stride = self.strides[torch.randint(len(self.strides), (rows, 1), generator=generator)]
        return (start + self.offsets[None, :] * stride) % self.n_items


def popularity_score(catalog: Catalog) -> torch.Tensor:
    """The standardised log-popularity :math:`\\tilde p_i` ``[N]`` that users' utility reads
    (0 for a catalog of one item)."""
    lp = catalog.log_popularity
    return (lp - lp.mean()) / lp.std().clamp_min(1e-6) if lp.numel() > 1 else lp * 0


def _genre_table(column: pd.Series, name: str) -> tuple[tuple[str, ...], torch.Tensor]:
    """The sorted genre names of a column of genre lists (or ``'|'``-separated strings),
    and the items' ``[n_items, n_genres]`` multi-hot genres."""
    for row, value in enumerate(column):
        if not isinstance(value, (str, Sequence, np.ndarray)):
            raise ValueError(f"row {row} of column {name!r} is {value!r}; give a list of genre names or a "
                             "'|'-separated string")
    genre_lists = [[g for g in (v.split("|") if isinstance(v, str) else list(v)) if g] for v in column]
    genre_names = tuple(sorted({g for gs in genre_lists for g in gs}))
    if not genre_names:
        raise ValueError(f"column {name!r} names no genre at all")
    column_of = {g: j for j, g in enumerate(genre_names)}
    multi_hot = torch.zeros(len(column), len(genre_names), dtype=torch.bool)
    for i, gs in enumerate(genre_lists):
        if not gs:
            raise ValueError(f"row {i} of column {name!r} has no genre; give every item one")
        multi_hot[i, [column_of[g] for g in gs]] = True
    return genre_names, multi_hot


def _finite_column(df: pd.DataFrame, column: str, what: str = "a finite number", valid=None) -> np.ndarray:
    """``df[column]`` as floats; ``ValueError`` naming the first row that is not finite (or
    not ``valid``) and its value as given."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(values) if valid is None else np.isfinite(values) & valid(values)
    if not ok.all():
        row = int(np.argmin(ok))
        number = values[row]
        # the number as read, or the text that is not one
        shown = df[column].iloc[row] if np.isnan(number) and isinstance(df[column].iloc[row], str) else float(number)
        raise ValueError(f"{column} of row {row} is {shown!r}; it must be {what}")
    return values


def _popularity_shares(df: pd.DataFrame, popularity: str | None) -> torch.Tensor:
    if popularity is not None and popularity in df.columns:
        counts = _finite_column(df, popularity, "finite and >= 0", lambda x: x >= 0)
        counts = counts + 1.0  # add-one smoothing: an unseen item is rare, not impossible
    else:
        counts = np.ones(len(df))
    return torch.tensor(counts / counts.sum(), dtype=torch.float32)


def _standardised_quality(df: pd.DataFrame, quality: str | None) -> torch.Tensor:
    if quality is not None and quality in df.columns:
        q = torch.tensor(_finite_column(df, quality), dtype=torch.float32)
        return (q - q.mean()) / q.std().clamp_min(1e-6) if len(q) > 1 else q * 0
    return torch.zeros(len(df))


def _feature_table(df: pd.DataFrame, features: str | Sequence[str] | None, multi_hot: torch.Tensor) -> torch.Tensor:
    """The items' raw features: a vector column, numeric columns, or else their genres."""
    if isinstance(features, str) and features in df.columns:
        return torch.tensor(_vector_column(df[features], features), dtype=torch.float32)
    if isinstance(features, Sequence) and not isinstance(features, str):
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise ValueError(f"feature columns {missing} are missing; the DataFrame has {list(df.columns)}")
        return torch.tensor(np.stack([_finite_column(df, c) for c in features], axis=1), dtype=torch.float32)
    return multi_hot.float()


def _vector_column(column: pd.Series, name: str) -> np.ndarray:
    """A column of equal-length numeric vectors as ``[n_items, dim]``; ``ValueError`` naming
    the first row that is not one, or holds a value that is not finite."""
    vectors = []
    for row, value in enumerate(column):
        try:
            vector = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            vector = None
        if vector is None or vector.ndim != 1 or (vectors and len(vector) != len(vectors[0])):
            raise ValueError(f"row {row} of column {name!r} is {value!r}; every row must be a vector of "
                             f"{len(vectors[0]) if vectors else 'the same number of'} numbers")
        if not np.isfinite(vector).all():
            raise ValueError(f"row {row} of column {name!r} holds {vector[~np.isfinite(vector)][0]} at dimension "
                             f"{int(np.argmin(np.isfinite(vector)))}; features must be finite numbers")
        vectors.append(vector)
    return np.stack(vectors)
