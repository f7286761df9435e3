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

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recoworld.config_checks import AT_LEAST_ONE, UNIT, Interval, check_number, did_you_mean
from recoworld.wording import plural

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


#: How far from 1 the L2 norm of an item's features may be (float32 rounding); features
#: given in a coarser dtype may be further off (:func:`unit_norm_tolerance`).
UNIT_NORM_TOLERANCE = 1e-3
#: How far from 1 the sum of the popularity shares may be (rounding of float32 shares).
POPULARITY_SUM_TOLERANCE = 1e-3


def _as_table(label: str, table) -> torch.Tensor:
    """A catalog's table as a tensor: a NumPy array or a list is converted, as torch reads it."""
    if isinstance(table, torch.Tensor):
        return table
    try:
        return torch.as_tensor(np.asarray(table))
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{label} is a {type(table).__name__} that is not a table of numbers ({error}); "
                         "give a torch tensor or a NumPy array") from None


class GenreNameError(ValueError):
    """A genre name that :class:`Catalog` refuses. The message is ``"genre_names[C] is NAME,
    PROBLEM; FIX"``; each part is an attribute, so that a reader of a saved catalog (a
    calibrated world) can name the genre its own way.

    Attributes:
        column: the genre's column in ``genres``, from 0.
        name: the name as given.
        problem: what is wrong with it (``"with spaces around it"``).
        fix: what to give instead (``"give 'Drama'"``).
        suggestion: a name to give instead (``"Drama"``), or ``None`` where there is none.
    """

    def __init__(self, column: int, name, problem: str, fix: str, suggestion: str | None = None):
        super().__init__(f"genre_names[{column}] is {name!r}, {problem}; {fix}")
        self.column, self.name, self.problem, self.fix, self.suggestion = column, name, problem, fix, suggestion


def _checked_genre_names(names: tuple) -> tuple[str, ...]:
    """The genre names as plain ``str`` (``numpy.str_`` and other text subclasses converted),
    refusing, with :class:`GenreNameError`, what :meth:`Catalog.to_dataframe` and
    :meth:`Catalog.from_dataframe` would not give back as it was (:func:`read_genres` reads
    names as text without their surrounding spaces, drops empty ones and splits at ``|``)
    and a name given twice (the users' satiation and instructions name genres)."""
    checked: list[str] = []
    first_column: dict[str, int] = {}
    for column, genre in enumerate(names):
        if not isinstance(genre, str):
            raise _not_text(column, genre)
        genre = str(genre)
        if not genre.strip():
            raise GenreNameError(column, genre, "which is blank", "give the genre a name, e.g. 'Unknown'")
        if genre != genre.strip():
            raise GenreNameError(column, genre, "with spaces around it", f"give {genre.strip()!r}", genre.strip())
        if "|" in genre:
            renamed = genre.replace("|", "/")  # a slash separates nothing (read_genres)
            raise GenreNameError(column, genre, "which holds '|', the mark between an item's genres in text "
                                 "(Drama|War)", f"rename the genre without it, e.g. {renamed!r}", renamed)
        if genre in first_column:
            first = first_column[genre]
            raise ValueError(f"genre_names holds {genre!r} twice (columns {first} and {column}); give each genre "
                             f"column its own name, or merge the two: genres[:, {first}] | genres[:, {column}]")
        first_column[genre] = column
        checked.append(genre)
    return tuple(checked)


def _not_text(column: int, genre) -> GenreNameError:
    """The error of a genre name that is not text; the fix gives the name a table of genres
    gives it where there is one (:func:`read_genres` reads a whole number as its digits)."""
    value = genre.item() if isinstance(genre, np.generic) else genre
    if isinstance(value, bytes):
        decoded = value.decode("utf-8", "replace")
        return GenreNameError(column, genre, "which is not text", f"decode it: {decoded!r}", decoded)
    if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer():
        digits = str(int(value))
        # str() of a whole float gives "7.0", not the code's name
        every = " (genre_names=[str(g) for g in genre_names] converts them all)" if isinstance(value, int) else ""
        return GenreNameError(column, genre, "which is not text", f"give the name as text: {digits!r}, as "
                              f"Catalog.from_dataframe names genre code {digits}{every}", digits)
    return GenreNameError(column, genre, "which is not text", "give each genre's name as text, e.g. 'Unknown'")


def _refuse_one_string(label: str, value, give: str) -> None:
    """``ValueError`` naming ``label`` when ``value`` is one ``str`` or ``bytes``: a sequence
    of its characters (or byte values) would pass for one name per entry."""
    if isinstance(value, (str, bytes)):
        kind = "string" if isinstance(value, str) else "bytes object"
        raise ValueError(f"{label}={value!r} is one {kind}; give {give}")


def _check_popularity(popularity: torch.Tensor) -> None:
    """Refuse a negative share, or shares that do not sum to 1."""
    negative = (popularity < 0).nonzero().flatten()
    if len(negative):
        item = int(negative[0])
        raise ValueError(f"popularity[{item}] is {float(popularity[item])!r} (item {item}); popularity holds each "
                         "item's share of all interactions, which is >= 0")
    total = float(popularity.sum())  # float32: torch sums in a cascade, far within the tolerance
    if abs(total - 1.0) > POPULARITY_SUM_TOLERANCE:
        raise ValueError(f"popularity sums to {total:.6g}; it holds each item's share of all interactions and must "
                         "sum to 1: divide it by its sum (popularity / popularity.sum())")


def unit_norm_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 the L2 norm of an item's features given in ``dtype`` may be:
    :data:`UNIT_NORM_TOLERANCE`, or twice the dtype's machine epsilon where that is larger
    (float16, bfloat16). A unit row rounded to the dtype is off by at most half an epsilon,
    and a row normalised in it by about one (the norm's rounding, then each entry's)."""
    if not dtype.is_floating_point:
        return UNIT_NORM_TOLERANCE
    return max(UNIT_NORM_TOLERANCE, 2 * torch.finfo(dtype).eps)


def _check_unit_features(features: torch.Tensor, given: torch.dtype, normalise: str) -> None:
    """Refuse features whose rows are not unit vectors (the docstring's promise, which the
    users' affinity and distance from the familiar rely on). ``features`` is the float32
    table, ``given`` the dtype the caller gave it in (which sets the tolerance), and
    ``normalise`` the expression that normalises the caller's table."""
    if features.shape[1] == 0:
        raise ValueError(f"features has shape {tuple(features.shape)}; give each item at least one feature "
                         "dimension")
    norms = torch.linalg.vector_norm(features, dim=1)
    off = ((norms - 1.0).abs() > unit_norm_tolerance(given)).nonzero().flatten()
    if len(off) == 0:
        return
    item, norm = int(off[0]), float(norms[off[0]])
    where = f"features[{item}] (item {item}" + (f", the first of {len(off)} such rows)" if len(off) > 1 else ")")
    if norm == 0.0:
        raise ValueError(f"{where} is the zero vector; every item's features must have unit L2 norm, so give "
                         f"each item a nonzero feature vector and normalise the rows ({normalise})")
    raise ValueError(f"{where} has L2 norm {norm:.6g}; every item's features must have unit L2 norm: normalise "
                     f"the rows ({normalise})")


@dataclass(eq=False)
class Catalog:
    """Items with ids ``0..n_items-1`` and their attributes.

    Attributes:
        features: ``[N, D]`` float32 dense item features; each row has unit L2 norm.
        genres: ``[N, G]`` bool multi-hot genre (category) membership; every item has at
            least one genre.
        genre_names: the ``G`` distinct genre names (``str``), in column order of ``genres``.
        titles: ``N`` item titles.
        popularity: ``[N]`` float32 share of all interactions, each ``>= 0``, summing to 1.
        quality: ``[N]`` float32 intrinsic appeal, standardised to mean 0 and std 1.
        name: a short label used in logs and reports.

    Built directly, the tables may be torch tensors, NumPy arrays or lists (stored as
    tensors: float32, the genres as bool). A catalog that breaks the rules above is refused
    with a ``ValueError`` naming the first bad entry and the fix, not repaired: features
    whose rows are not of unit norm (within :func:`unit_norm_tolerance` of the dtype they
    are given in: :data:`UNIT_NORM_TOLERANCE` for float32; the users' affinity and distance
    from the familiar read them as unit vectors), popularity with a negative share or not
    summing to 1 (within :data:`POPULARITY_SUM_TOLERANCE`), a genre name given twice, or
    one that would not read back from :meth:`to_dataframe`'s table as it was: a name that is
    not text (``7``, ``None``; give ``"7"``), blank (``""``), with spaces around it
    (``" Drama"``) or holding ``|`` (which separates the names in that table's text); such
    a name raises :class:`GenreNameError`. Names given as text of another type
    (``numpy.str_``, the entries of a NumPy array of names) are stored as ``str``. Features
    given in float16 or bfloat16 are stored with their rows normalised in float32.
    :meth:`from_dataframe` and :meth:`synthetic` build catalogs that keep these rules.
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
        # normalize() takes a float tensor only; for any other table the fix converts first.
        normalise = ("torch.nn.functional.normalize(features, dim=1)"
                     if isinstance(self.features, torch.Tensor) and self.features.dtype == torch.float32 else
                     "torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)")
        self.features, self.genres, self.popularity, self.quality = (
            _as_table(label, table) for label, table in (
                ("features", self.features), ("genres", self.genres), ("popularity", self.popularity),
                ("quality", self.quality)))
        _refuse_one_string("genre_names", self.genre_names, "a sequence of genre names, one per column of genres")
        if isinstance(self.genre_names, (Set, Mapping)):
            # tuple() would take a set in its hashes' order (which changes between runs) and a
            # dict's keys: neither says which column of genres each name is.
            raise ValueError(f"genre_names={self.genre_names!r} is a {type(self.genre_names).__name__}, whose order "
                             "does not say which column each name is; give a list of genre names in the order of "
                             "the columns of genres (sorted() gives an order, but not the columns')")
        try:
            self.genre_names = tuple(self.genre_names)
        except TypeError:  # None, a number: tuple() would say only that it is not iterable
            columns = f" ({self.genres.shape[1]} columns)" if self.genres.ndim == 2 else ""
            raise ValueError(f"genre_names={self.genre_names!r} is not a sequence of genre names; give one name per "
                             f"column of genres{columns}, e.g. ('Drama', 'Comedy')") from None
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
        _refuse_one_string("titles", self.titles, f"a sequence of item titles, one per item ({n} items), "
                                                  f"e.g. [f'item {{i}}' for i in range({n})]")
        try:
            n_titles = len(self.titles)
        except TypeError:  # None, a number: len() would say only that it has no length
            raise ValueError(f"titles={self.titles!r} is not a sequence of item titles; give one title per item "
                             f"({n} items), e.g. [f'item {{i}}' for i in range({n})]") from None
        if n_titles != n:
            raise ValueError(f"titles has {n_titles} entries for {n} items")
        if n == 0:
            raise ValueError("a catalog needs at least one item")
        if self.genres.dtype != torch.bool:
            self.genres = self.genres.bool()
        given = self.features.dtype  # sets how far from unit norm the rows may be
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
        self.genre_names = _checked_genre_names(self.genre_names)
        _check_popularity(self.popularity)
        _check_unit_features(self.features, given, normalise)
        if unit_norm_tolerance(given) > UNIT_NORM_TOLERANCE:
            # Rows rounded to float16 or bfloat16 are unit to that dtype's precision only;
            # normalised in float32 they are unit to float32's, as the users' equations read
            # them, and this catalog moved with to() is judged (in float32) the same.
            self.features = torch.nn.functional.normalize(self.features, dim=1)
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
        """One row per item: id, title, genres, popularity, quality, features;
        :meth:`from_dataframe` reads it back: the same items and genre names (the genres in
        sorted column order; a genre no item has is not in the table).

        An item's genres are ``'|'``-joined text (``"Drama|War"``), or, where a genre's
        name could not be read back from such text (:func:`read_genres`: it holds a comma,
        a semicolon, a tab or another separator that text refuses, or it starts with ``[``
        or ends with ``]``, as text written as a list does), every item's genres are a list
        of names.
        """
        genres = self.genres.cpu().numpy()
        names = np.array(self.genre_names, dtype=object)
        as_lists = any(not _fits_text(name) for name in self.genre_names)
        return pd.DataFrame({
            "item_id": np.arange(self.n_items),
            "title": list(self.titles),
            "genres": [list(names[row]) if as_lists else "|".join(names[row]) for row in genres],
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
            genres: column of genre lists, ``'|'``-separated strings or genre codes, read
                by :func:`read_genres` (``"Drama | War"`` is Drama and War; ``"Drama, War"``
                is refused; ``"Sci-Fi/Fantasy"`` is one genre: a slash separates nothing);
                every item must name a genre.
            title: column of titles.
            popularity: column of non-negative interaction counts or shares; ``None``
                gives every item the same share.
            quality: column of appeal scores (standardised here); ``None`` gives 0.
            features: a column of equal-length vectors, or a list of numeric columns,
                normalised here to unit length (no item's may be all zeros); ``None`` uses
                the normalised genre vector as features.

        ``popularity``, ``quality`` and ``features`` left at their defaults may name
        columns the frame does not have: the default stands in for each (as for ``None``).
        A column named otherwise must exist: a misspelt name raises ``ValueError``, naming
        the frame's columns.
        """
        if len(df) == 0:
            raise ValueError("the DataFrame has no rows; a catalog needs at least one item")
        for column in (genres, title):
            if column not in df.columns:
                raise ValueError(f"column {column!r} is missing; the DataFrame has {list(df.columns)}")
        genre_names, multi_hot = _genre_table(df[genres], genres)
        pop = _popularity_shares(df, _read_column(df, "popularity", popularity, "every item the same share"))
        q = _standardised_quality(df, _read_column(df, "quality", quality, "every item quality 0"))
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

        Args:
            n_items: the number of items, at least 1.
            n_genres: the number of genres, 1 to 16 (:data:`SYNTHETIC_GENRES`).
            feature_dim: the dimension of the item features, at least 1.
            popularity_exponent: Zipf's exponent (any finite number; 0 gives every item
                the same share).
            multi_genre_prob: the probability in ``[0, 1]`` that an item has a second genre.
            seed: the generator's seed, an integer in ``[0, 2**63)``.
            name: the catalog's label (default ``synthetic-<n_items>``).

        Raises:
            ValueError: an argument of the wrong type or out of its range, naming it.
        """
        owner = "Catalog.synthetic"
        n_items = check_number(owner, "n_items", n_items, AT_LEAST_ONE, integer=True)
        n_genres = check_number(owner, "n_genres", n_genres, Interval(1, len(SYNTHETIC_GENRES)), integer=True)
        feature_dim = check_number(owner, "feature_dim", feature_dim, AT_LEAST_ONE, integer=True)
        popularity_exponent = check_number(owner, "popularity_exponent", popularity_exponent)
        multi_genre_prob = check_number(owner, "multi_genre_prob", multi_genre_prob, UNIT)
        seed = check_number(owner, "seed", seed, Interval(0, 2**63 - 1), integer=True)
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
        total = weight.sum()
        if not bool(torch.isfinite(total)):  # a negative exponent raises the last ranks' weights
            raise ValueError(f"{owner}.popularity_exponent={popularity_exponent!r}: with {n_items} items the Zipf "
                             f"weights rank**{-popularity_exponent:g} sum beyond the float32 range; choose an "
                             "exponent closer to 0")
        popularity = weight / total
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


def _read_column(df: pd.DataFrame, argument: str, column: str | None, fallback: str) -> str | None:
    """The column of ``df`` that ``argument`` names, or ``None`` where its default stands in:
    for ``None``, or for the argument's own name (its default) when ``df`` has no such column.
    Any other name missing from ``df`` raises ``ValueError`` naming the columns; ``fallback``
    says what ``None`` gives."""
    if column is None or column in df.columns:
        return column
    if column == argument:
        return None
    raise ValueError(_missing_column(df, argument, column, fallback))


def _missing_column(df: pd.DataFrame, argument: str, column, fallback: str) -> str:
    return (f"{argument}={column!r}: the DataFrame has no such column{did_you_mean(column, df.columns)}; its "
            f"columns are {list(df.columns)} ({argument}=None gives {fallback})")


# ----------------------------------------------------------------- an item's genres
#: Marks that separate names in text but are not the separator ``|``: text holding one
#: would read as one genre named ``"Drama, War"``. Each with its name, an example, and
#: where a name that holds the mark goes (a list entry is not ambiguous).
_OTHER_SEPARATORS = (
    (",", "comma", "Drama, War", "; a genre whose name holds a comma goes in a list of names, one per entry: "
                                 "['Books', 'Arts, Crafts & Sewing'] (in a file, a Parquet list column)"),
    (";", "semicolon", "Drama;War", ""),
    # A tab or a line break is no character of a name, and the CJK and full-width commas and
    # semicolon separate lists in the texts that write them (``ドラマ、戦争``).
    ("\t", "tab", "Drama\\tWar", ""),
    ("\n", "line-break", "Drama\\nWar", ""),
    ("\u3001", "ideographic-comma", "Drama\u3001War", ""),
    ("\uff0c", "full-width-comma", "Drama\uff0cWar", ""),
    ("\uff1b", "full-width-semicolon", "Drama\uff1bWar", ""),
)
#: What a cell that is a record, or a list of lists, is told it should be.
_NOT_RECORDS = ("genre names: an item's genres are |-separated text or a list of names, not records (a Parquet "
                "struct column) or lists of lists; write each row's genres as a list of names, or as Drama|War")


def _fits_text(name: str) -> bool:
    """Whether a genre name reads back from ``'|'``-joined text as itself: it holds none of
    :data:`_OTHER_SEPARATORS`, and no cell it is joined into can look like a Python list
    written as text (``"[Classics]"``, ``"[Drama|War]"``), which :func:`read_genres` refuses."""
    return not (any(mark in name for mark, *_ in _OTHER_SEPARATORS) or name.startswith("[") or name.endswith("]"))


class GenreCellError(ValueError):
    """A cell of genres that :func:`read_genres` cannot read. The message is
    ``"row R: VALUE is not EXPECTED"``; each part is an attribute, so that a reader of a file
    or of a frame can name the cell its own way.

    Attributes:
        row: the cell's position in the column, from 0.
        value: the cell as given.
        expected: what the cell is not, why, and what to write instead (``"|-separated genre
            names (it is comma-separated): write Drama|War, not Drama, War"``).
    """

    def __init__(self, row: int, value, expected: str):
        super().__init__(f"row {row}: {value!r} is not {expected}")
        self.row, self.value, self.expected = row, value, expected


def read_genres(cells, *, no_genre: str | None = None) -> list[list[str]]:
    """Each item's genre names, from its cell of a column of genres (one cell per item).

    RecoWorld reads genres this way wherever it reads them: :meth:`Catalog.from_dataframe`
    and the item table of ``recoworld calibrate --items``
    (:mod:`recoworld.data.interactions`). A cell is

    - text: names separated by ``|`` (``"Drama|War"``, ``"Drama | War"``). Only ``|``
      separates: ``"Sci-Fi/Fantasy"`` is one genre of that name, as real genre names hold
      a slash (``"Drama/War"`` too: write ``"Drama|War"`` for two). Text written as a
      Python list (``"['Drama', 'War']"``), or holding another separator within a name, a
      comma or a semicolon (``"Drama, War"``), a tab or a line break, or the ideographic
      or full-width comma or semicolon (``"ドラマ、戦争"``), is refused: it would read as
      one genre of that name;
    - a list (a tuple, a set, an array, a Parquet list): one name per entry, missing
      entries left out. An entry may hold a comma or a semicolon
      (``["Books", "Arts, Crafts & Sewing"]``): this is how to give such a name. An entry
      holding ``|`` is refused, as are entries that are lists and cells that are records
      (``dict``);
    - a number: a genre code, named by its digits (``7`` and ``7.0`` are genre ``"7"``). A
      number that is not whole, and ``True``/``False``, are refused;
    - a missing value (``None``, ``NaN``): no genre.

    Names are read without their surrounding spaces; a name given twice in one cell counts
    once, and empty names not at all. Bytes are refused (decode them first).

    Args:
        cells: the column (a pandas Series, a list, ...), row ``i`` being item ``i``.
        no_genre: the name an item whose cell names no genre gets (``recoworld calibrate``
            gives ``"unknown"``); ``None`` leaves that item's list empty, for the caller to
            refuse (:meth:`Catalog.from_dataframe` does).

    Raises:
        GenreCellError: a ``ValueError`` naming the first cell that cannot be read.
    """
    lists = []
    for row, value in enumerate(cells):
        names = list(dict.fromkeys(_cell_names(row, value)))
        lists.append(names or ([no_genre] if no_genre is not None else []))
    return lists


def _missing(value) -> bool:
    """Whether a cell or entry is a missing value (None, NaN, pandas' NA or NaT)."""
    return value is None or (np.ndim(value) == 0 and not isinstance(value, (str, bytes, dict))
                             and bool(pd.isna(value)))


def _cell_names(row: int, value) -> list[str]:
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            raise GenreCellError(row, value, "|-separated genre names (it is a Python list written as text): "
                                 "write Drama|War, or a list of names (in a file, a Parquet list column)")
        names = [name.strip() for name in value.split("|")]
        for mark, name, written, as_list in _OTHER_SEPARATORS:
            if any(mark in text for text in names):  # within a name: a tab or line break around one is a space
                raise GenreCellError(row, value, f"|-separated genre names (it is {name}-separated): "
                                     f"write Drama|War, not {written}{as_list}")
        return [name for name in names if name]
    if isinstance(value, (Sequence, np.ndarray, set, frozenset)) and not isinstance(value, bytes):
        names = []
        for entry in value:
            entry = entry.item() if isinstance(entry, np.generic) else entry
            if isinstance(entry, (dict, Sequence, np.ndarray, set, frozenset)) and not isinstance(entry, (str, bytes)):
                raise GenreCellError(row, value, _NOT_RECORDS)
            if isinstance(entry, str):
                # Only "|": it separates names in text and in to_dataframe's column, so such a
                # name would come back as two. A comma or a semicolon is unambiguous here.
                if "|" in entry:
                    raise GenreCellError(row, value, f"a list of genre names (the entry {entry!r} is "
                                         "pipe-separated): give one name per entry: ['Drama', 'War']")
                names.append(entry.strip())
            elif not _missing(entry):
                names.append(_scalar_name(row, value, entry))
        return [name for name in names if name]
    if isinstance(value, dict):
        raise GenreCellError(row, value, _NOT_RECORDS)
    return [] if _missing(value) else [_scalar_name(row, value, value)]


def _scalar_name(row: int, cell, value) -> str:
    """A number as a genre code's name (its digits); anything else that is not text refused."""
    if isinstance(value, bool):
        raise GenreCellError(row, cell, "genre names (it holds a boolean): give each item's genre names, e.g. "
                                        "Drama|War")
    if isinstance(value, bytes):
        raise GenreCellError(row, cell, "genre names as text (it holds bytes): decode the names first, e.g. "
                                        "column.str.decode('utf-8')")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise GenreCellError(row, cell, "a genre code (it is not a whole number): give genre codes as whole "
                                            "numbers, or genre names")
        return str(int(value))
    raise GenreCellError(row, cell, f"genre names (it holds a {type(value).__name__}): give a list of genre names "
                                    "or a '|'-separated string")


def _genre_table(column: pd.Series, name: str) -> tuple[tuple[str, ...], torch.Tensor]:
    """The sorted genre names of a column of genre cells (read by :func:`read_genres`), and
    the items' ``[n_items, n_genres]`` multi-hot genres; every item must name one."""
    try:
        genre_lists = read_genres(column)
    except GenreCellError as error:
        raise ValueError(f"row {error.row} of column {name!r}: {error.value!r} is not "
                         f"{error.expected}") from None
    for row, (value, genres) in enumerate(zip(column, genre_lists)):
        if not genres and _missing(value):
            raise ValueError(f"row {row} of column {name!r} is {value!r}; give a list of genre names or a "
                             "'|'-separated string")
        if not genres:
            raise ValueError(f"row {row} of column {name!r} has no genre; give every item one")
    genre_names = tuple(sorted({g for gs in genre_lists for g in gs}))
    column_of = {g: j for j, g in enumerate(genre_names)}
    multi_hot = torch.zeros(len(column), len(genre_names), dtype=torch.bool)
    for i, gs in enumerate(genre_lists):
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
    if popularity is not None:
        counts = _finite_column(df, popularity, "finite and >= 0", lambda x: x >= 0)
        counts = counts + 1.0  # add-one smoothing: an unseen item is rare, not impossible
    else:
        counts = np.ones(len(df))
    return torch.tensor(counts / counts.sum(), dtype=torch.float32)


def _standardised_quality(df: pd.DataFrame, quality: str | None) -> torch.Tensor:
    if quality is not None:
        q = torch.tensor(_finite_column(df, quality), dtype=torch.float32)
        return (q - q.mean()) / q.std().clamp_min(1e-6) if len(q) > 1 else q * 0
    return torch.zeros(len(df))


def _feature_table(df: pd.DataFrame, features: str | Sequence[str] | None, multi_hot: torch.Tensor) -> torch.Tensor:
    """The items' raw features: a vector column, numeric columns, or else their genres;
    ``ValueError`` for a row of zeros, which has no direction to normalise."""
    fallback = "the normalised genre vectors"
    if isinstance(features, str):
        column = _read_column(df, "features", features, fallback)
        if column is None:
            return multi_hot.float()
        return _nonzero_rows(_vector_column(df[column], column), f"column {column!r}")
    if isinstance(features, Sequence):
        if len(features) == 0:
            raise ValueError(f"features={features!r} names no column; give a column of vectors, a list of numeric "
                             f"columns, or None for {fallback}")
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise ValueError(f"feature columns {missing} are missing; the DataFrame has {list(df.columns)}")
        return _nonzero_rows(np.stack([_finite_column(df, c) for c in features], axis=1),
                             f"the feature columns {list(features)}")
    return multi_hot.float()


def _nonzero_rows(table: np.ndarray, source: str) -> torch.Tensor:
    zero = np.flatnonzero(~table.any(axis=1))
    if len(zero):
        raise ValueError(f"row {int(zero[0])} of {source} is all zeros ({plural(len(zero), 'row')} in all); an item's "
                         "features give it a direction, so give every item a nonzero vector (or features=None "
                         "to use the genres)")
    return torch.tensor(table, dtype=torch.float32)


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
