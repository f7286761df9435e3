"""Personas: who an LLM user is, in words — and the MovieLens users they can be built from.

A :class:`Persona` is what the system prompt says about the user: demographics when known,
the genres they watch, love and avoid, a few titles they rated high and low, and phrases
for their behavioural traits (patience, taste for novelty, for popular titles, how often
they come back). Two sources:

- a **MovieLens-100K user** (:class:`MovieLensPersonas`): age, gender and occupation from
  ``u.user``; genres and titles from their ratings (see :meth:`MovieLensPersonas.persona`);
- a **population spec** (:func:`persona_from_traits`): the traits a
  :class:`~recoworld.simulators.population.Population` drew, where the favourite genres are
  those whose centroid the user's interest vector is closest to.

:class:`MovieLensPopulation` draws real MovieLens users (optionally a segment of them) as a
:class:`~recoworld.simulators.population.Population`, so that a statistical user and an LLM
user built from the same seed are the same person: the statistical user gets an interest
vector fitted on the ratings, the LLM user the persona of ``source_user``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from recoworld import rng
from recoworld.catalog import Catalog
from recoworld.data.movielens import MovieLens100K, load_movielens_100k
from recoworld.llm import as_data
from recoworld.simulators.population import Population, SyntheticPopulation, UserTraits
from recoworld.wording import listing

S_MOVIELENS_USER = 5  # random stream of a MovieLens user's interest noise

OCCUPATION_WORDS = {"none": "without an occupation", "other": "with an occupation not listed",
                    "homemaker": "homemaker", "retired": "retired"}


@dataclass(frozen=True)
class Persona:
    """A simulated user as the LLM is told about them.

    Attributes:
        age, gender, occupation: demographics, ``None`` when unknown.
        watched_genres: the genres they watch most, most first.
        favourite_genres: genres they rate or like best.
        disliked_genres: genres they rate or like least.
        liked_titles, disliked_titles: example titles from their history.
        traits: phrases for behavioural traits ("patient", "seeks novelty", ...).
        source_user: the real user this persona describes, ``-1`` for a synthetic one.
    """

    age: int | None = None
    gender: str | None = None
    occupation: str | None = None
    watched_genres: tuple[str, ...] = ()
    favourite_genres: tuple[str, ...] = ()
    disliked_genres: tuple[str, ...] = ()
    liked_titles: tuple[str, ...] = ()
    disliked_titles: tuple[str, ...] = ()
    traits: tuple[str, ...] = ()
    source_user: int = -1

    def describe(self) -> str:
        """The persona as second-person sentences for a system prompt; the facts that come
        from data (occupation, genres, titles) are data elements
        (:mod:`recoworld.llm.prompt_data`), so that no title can speak as the prompt."""
        who = "You are a"
        if self.age is not None:
            who += f" {int(self.age)}-year-old"
        who += {"M": " man", "F": " woman"}.get(self.gender or "", " viewer")
        if self.occupation:
            word = OCCUPATION_WORDS.get(self.occupation, None)
            who += f", {word}" if word else f"; your occupation: {as_data(self.occupation)}"
        lines = [who + "."]
        for sentence, values in (("You mostly watch", self.watched_genres), ("You love", self.favourite_genres),
                                 ("You dislike", self.disliked_genres),
                                 ("Titles you rated highly:", self.liked_titles),
                                 ("Titles you rated poorly:", self.disliked_titles)):
            if values:
                lines.append(f"{sentence} {as_data(list(values))}.")
        if self.traits:
            lines.append(f"You are {listing(self.traits)}.")
        return " ".join(lines)


def trait_phrases(patience: float, novelty: float, popularity_bias: float, activity: float) -> tuple[str, ...]:
    """Words for the traits of :class:`~recoworld.simulators.population.UserTraits`
    (thresholds at roughly one spread from the synthetic population's centre)."""
    phrases = []
    if patience >= 0.88:
        phrases.append("patient and look through long lists")
    elif patience <= 0.65:
        phrases.append("impatient and give up on a list quickly")
    if novelty >= 0.4:
        phrases.append("curious about titles unlike what you usually watch")
    elif novelty <= -0.4:
        phrases.append("happiest with titles close to your favourites")
    if popularity_bias >= 0.6:
        phrases.append("drawn to popular hits")
    elif popularity_bias <= 0.0:
        phrases.append("fond of lesser-known titles")
    if activity >= 1.6:
        phrases.append("on the app almost every day")
    elif activity <= 0.6:
        phrases.append("an occasional visitor")
    return tuple(phrases)


def persona_from_traits(traits: UserTraits, index: int, catalog: Catalog, top: int = 3, bottom: int = 2) -> Persona:
    """The persona of the ``index``-th user of ``traits`` drawn from a population spec: the
    ``top`` genres whose centroid (normalised mean feature of the genre's items) is closest
    to the user's interest vector are the favourites, the ``bottom`` farthest the disliked
    (a genre named "unknown" is never either)."""
    centroids = torch.nn.functional.normalize(catalog.genres.float().T @ catalog.features.float(), dim=1)
    affinity = (centroids @ traits.interest[index].float().to(centroids.device)).cpu()
    names = catalog.genre_names
    # MovieLens's "unknown" genre is a missing label, not a taste.
    order = [g for g in torch.argsort(affinity, descending=True).tolist() if names[g].lower() != "unknown"]
    bottom = min(bottom, max(0, len(order) - top))
    return Persona(
        favourite_genres=tuple(names[g] for g in order[:top]),
        disliked_genres=tuple(names[g] for g in order[len(order) - bottom:][::-1]) if bottom else (),
        traits=_traits_of(traits, index),
        source_user=int(traits.source_user[index]),
    )


def _traits_of(traits: UserTraits, index: int) -> tuple[str, ...]:
    return trait_phrases(float(traits.patience[index]), float(traits.novelty_trait[index]),
                         float(traits.popularity_bias[index]), float(traits.activity[index]))


class MovieLensPersonas:
    """Personas of the 943 MovieLens-100K users, from ``u.user`` and their ratings.

    Per user, with :math:`n_g` their ratings in genre :math:`g` and :math:`\\bar r` their
    mean rating, a genre's score is its shrunk mean rating
    :math:`(\\sum_g r + k\\bar r) / (n_g + k)` with :math:`k` = ``shrinkage``. Watched genres
    are the ``top`` most rated; favourites the ``top`` best scored at least ``margin``
    above :math:`\\bar r`; disliked the two worst at least ``margin`` below it. Liked titles
    are the most recent ``examples`` rated 5 (else 4), disliked ones the most recent rated
    1 or 2. The ``unknown`` genre is ignored.
    """

    def __init__(self, data: MovieLens100K | None = None, top: int = 3, examples: int = 3, shrinkage: float = 5.0,
                 margin: float = 0.15):
        self.data = data if data is not None else load_movielens_100k()
        self.top, self.examples, self.shrinkage, self.margin = top, examples, shrinkage, margin
        items, ratings = self.data.items, self.data.ratings
        self.genre_names = tuple(sorted({g for gs in items["genres"] for g in gs} - {"unknown"}))
        column = {g: j for j, g in enumerate(self.genre_names)}
        multi_hot = np.zeros((len(items), len(self.genre_names)))
        for i, gs in enumerate(items["genres"]):
            for g in gs:
                if g in column:
                    multi_hot[i, column[g]] = 1.0
        n_users = len(self.data.users)
        user, item = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
        stars = ratings["rating"].to_numpy(dtype=np.float64)
        # Per user and genre: rating counts and sums, in one scatter-add each.
        self._counts = np.zeros((n_users, len(self.genre_names)))
        self._sums = np.zeros_like(self._counts)
        np.add.at(self._counts, user, multi_hot[item])
        np.add.at(self._sums, user, multi_hot[item] * stars[:, None])
        self._mean = np.bincount(user, stars, n_users) / np.maximum(np.bincount(user, minlength=n_users), 1)
        # Newest first, so the first titles found per user are the most recent.
        self._by_user = ratings.sort_values(["user_id", "timestamp"], ascending=[True, False], kind="stable") \
            .groupby("user_id")
        self._titles = items["title"].tolist()

    @property
    def n_users(self) -> int:
        return len(self.data.users)

    def persona(self, user_id: int, traits: Sequence[str] = ()) -> Persona:
        """The persona of MovieLens user ``user_id`` (0-based), with behavioural ``traits``."""
        if not 0 <= user_id < self.n_users:
            raise ValueError(f"user_id={user_id}; MovieLens-100K has users 0..{self.n_users - 1}")
        row = self.data.users.iloc[user_id]
        counts, mean = self._counts[user_id], self._mean[user_id]
        score = (self._sums[user_id] + self.shrinkage * mean) / (counts + self.shrinkage)
        names = self.genre_names
        watched = [g for g in np.argsort(-counts, kind="stable")[: self.top] if counts[g] > 0]
        rated = counts > 0
        best = [g for g in np.argsort(-score, kind="stable") if rated[g] and score[g] >= mean + self.margin]
        worst = [g for g in np.argsort(score, kind="stable") if rated[g] and score[g] <= mean - self.margin]
        history = self._by_user.get_group(user_id)
        five = history.loc[history["rating"] == 5, "item_id"].tolist()
        liked = five if len(five) >= self.examples else five + history.loc[history["rating"] == 4, "item_id"].tolist()
        disliked = history.loc[history["rating"] <= 2, "item_id"].tolist()
        return Persona(
            age=int(row["age"]), gender=str(row["gender"]), occupation=str(row["occupation"]),
            watched_genres=tuple(names[g] for g in watched),
            favourite_genres=tuple(names[g] for g in best[: self.top]),
            disliked_genres=tuple(names[g] for g in worst[:2]),
            liked_titles=tuple(self._titles[i] for i in liked[: self.examples]),
            disliked_titles=tuple(self._titles[i] for i in disliked[: max(1, self.examples - 1)]),
            traits=tuple(traits), source_user=user_id,
        )


@dataclass
class MovieLensPopulation(Population):
    """Real MovieLens-100K users as a population, optionally a segment of them.

    A new user with key :math:`k` is the eligible user number :math:`k \\bmod n` (keys are
    uniform hashes, so users are drawn uniformly). Their interest vector is the
    normalised mean catalog feature of the movies they rated at least ``like_threshold``
    (all their movies if none), plus Gaussian noise of scale ``interest_noise``; patience,
    novelty seeking, activity and popularity bias are drawn by ``behaviour`` (MovieLens
    records none of them). ``source_user`` is the MovieLens user id, which LLM users turn
    into a persona (:class:`MovieLensPersonas`).

    The segment: ``users`` (ids), ``genders`` (``"M"``/``"F"``), ``occupations``, and ages
    ``min_age..max_age``; an empty segment is an error naming the filters.
    """

    path: str | None = None
    users: list[int] | None = None
    genders: list[str] | None = None
    occupations: list[str] | None = None
    min_age: int = 0
    max_age: int = 200
    like_threshold: int = 4
    interest_noise: float = 0.2
    behaviour: SyntheticPopulation = field(default_factory=SyntheticPopulation)

    def __post_init__(self):
        self._data: MovieLens100K | None = None
        self._personas: MovieLensPersonas | None = None

    @property
    def data(self) -> MovieLens100K:
        if self._data is None:
            self._data = load_movielens_100k(self.path)
        return self._data

    @property
    def personas(self) -> MovieLensPersonas:
        """The persona book of these users (built once)."""
        if self._personas is None:
            self._personas = MovieLensPersonas(self.data)
        return self._personas

    def eligible(self) -> np.ndarray:
        """Ids of the users in the segment."""
        users = self.data.users
        keep = (users["age"] >= self.min_age) & (users["age"] <= self.max_age)
        if self.users is not None:
            keep &= users["user_id"].isin(list(self.users))
        if self.genders is not None:
            keep &= users["gender"].isin(list(self.genders))
        if self.occupations is not None:
            keep &= users["occupation"].isin(list(self.occupations))
        ids = users.loc[keep, "user_id"].to_numpy()
        if len(ids) == 0:
            raise ValueError(f"no MovieLens user matches users={self.users}, genders={self.genders}, "
                             f"occupations={self.occupations}, ages {self.min_age}..{self.max_age}")
        return ids

    def sample(self, keys: torch.Tensor, catalog: Catalog) -> UserTraits:
        n_items = len(self.data.items)
        if catalog.n_items != n_items:
            raise ValueError(f"MovieLensPopulation needs the MovieLens-100K catalog ({n_items} items); the catalog "
                             f"{catalog.name!r} has {catalog.n_items} (use world=movielens)")
        eligible = self.eligible()
        chosen = torch.tensor(eligible, device=keys.device)[keys % len(eligible)]
        profiles = self._profiles(catalog).to(keys.device)
        noise = rng.normal(keys, torch.zeros_like(keys), S_MOVIELENS_USER, catalog.feature_dim)
        behaviour = self.behaviour.sample(keys, catalog)
        return UserTraits(
            interest=torch.nn.functional.normalize(profiles[chosen] + self.interest_noise * noise, dim=1),
            patience=behaviour.patience, novelty_trait=behaviour.novelty_trait, activity=behaviour.activity,
            popularity_bias=behaviour.popularity_bias, source_user=chosen.long(),
        )

    def _profiles(self, catalog: Catalog) -> torch.Tensor:
        """Unit mean feature ``[n_users, D]`` of each user's liked movies (all rated ones
        for users who liked none), computed once per catalog."""
        cached = getattr(self, "_profile_cache", None)
        if cached is not None and cached[0] is catalog:
            return cached[1]
        ratings = self.data.ratings
        user = torch.tensor(ratings["user_id"].to_numpy())
        item = torch.tensor(ratings["item_id"].to_numpy())
        liked = torch.tensor(ratings["rating"].to_numpy() >= self.like_threshold)
        features = catalog.features.float().cpu()[item]
        n_users = len(self.data.users)
        liked_sum = torch.zeros(n_users, features.shape[1]).index_add_(0, user[liked], features[liked])
        all_sum = torch.zeros(n_users, features.shape[1]).index_add_(0, user, features)
        has_liked = torch.zeros(n_users, dtype=torch.bool).index_fill_(0, user[liked], True)
        profiles = torch.nn.functional.normalize(torch.where(has_liked[:, None], liked_sum, all_sum), dim=1)
        self._profile_cache = (catalog, profiles)
        return profiles
