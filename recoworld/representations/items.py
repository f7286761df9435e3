"""How items are written into an LLM user's prompt: the history representations.

Three kinds, chosen with :class:`RepresentationConfig` (``kind``):

- ``text``: title and genres, ``"Heat (1995) [Action, Crime, Thriller]"``. Readable, but
  a long history costs many tokens.
- ``semantic_id``: the item's semantic ID, ``"<a12><b3><c40><d0>"`` (see
  :mod:`recoworld.representations.semantic_ids`), quantised from the embeddings named by
  ``source``. A few tokens per item, for long histories and for models trained on such
  IDs.
- ``embedding``: vectors attached to the catalog (``source``, e.g. image or audio
  embeddings) described in words by their nearest genres in that space,
  ``"an item close to Crime and Thriller"``.

The slate itself is always shown with titles and genres, followed by the item's code when
the representation has one, so that a model can tie history codes to what it sees.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from recoworld.catalog import Catalog
from recoworld.config_checks import from_mapping
from recoworld.representations.config import KINDS, RepresentationConfig
from recoworld.representations.embeddings import get_embeddings
from recoworld.representations.semantic_ids import SemanticIds, check_item


class ItemRepresentation(ABC):
    """Writes items as prompt text."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._genres = catalog.genres.cpu()
        # Filled on first use, so that a catalog of millions costs only the items shown.
        self._genres_of: dict[int, tuple[str, ...]] = {}
        self._text: dict[int, str] = {}

    def item_ids(self, items: Sequence[int]) -> list[int]:
        """``items`` as ints, refusing one outside the catalog: a negative id would
        otherwise read as an item counted from the end."""
        ids = [int(i) for i in items]
        for position, item in enumerate(ids):
            self._check(f"items[{position}]", item)
        return ids

    def _check(self, name: str, item: int) -> None:
        """``IndexError`` naming ``name`` when ``item`` is no id of the catalog."""
        check_item(name, item, self.catalog.n_items, self.catalog.name)

    def genres_of(self, item: int) -> tuple[str, ...]:
        """The genre names of ``item`` (an id in the catalog)."""
        names = self._genres_of.get(item)
        if names is None:  # checked only here: the cache holds ids of the catalog alone
            self._check("item", item)
            names = self._genres_of[item] = tuple(
                self.catalog.genre_names[g] for g in self._genres[item].nonzero().flatten().tolist())
        return names

    def text(self, item: int) -> str:
        """``"Title [Genre, Genre]"`` of ``item`` (an id in the catalog)."""
        text = self._text.get(item)
        if text is None:
            self._check("item", item)
            text = self._text[item] = f"{self.catalog.titles[item]} [{', '.join(self.genres_of(item))}]"
        return text

    @abstractmethod
    def describe(self, items: Sequence[int]) -> list[str]:
        """How each of ``items`` appears in a history."""

    def code(self, items: Sequence[int]) -> list[str]:
        """A compact code shown after each slate item ('' when the representation has none)."""
        return [""] * len(self.item_ids(items))


class TextRepresentation(ItemRepresentation):
    """Titles and genres."""

    def describe(self, items: Sequence[int]) -> list[str]:
        return [self.text(i) for i in self.item_ids(items)]


class SemanticIdRepresentation(ItemRepresentation):
    """Semantic IDs, fitted once per catalog, setting and embeddings, and kept in
    ``catalog.extra`` with a digest of the embeddings they came from (not the embeddings,
    which a cache would keep alive after they are replaced). They are fitted again when the
    embeddings changed: attached again under the same name, changed in place, or a catalog
    copied with other features that shares the ``extra`` of the first."""

    def __init__(self, catalog: Catalog, source: str = "features", levels: int = 3, codebook_size: int = 64,
                 seed: int = 0):
        super().__init__(catalog)
        store = catalog.extra.setdefault("semantic_ids", {})
        key = (source, levels, codebook_size, seed)
        vectors = get_embeddings(catalog, source)
        digest = _digest(vectors)
        if store.get(key, (None,))[0] != digest:
            store[key] = (digest, SemanticIds.fit(vectors, levels, codebook_size, seed))
        self.ids: SemanticIds = store[key][1]

    def describe(self, items: Sequence[int]) -> list[str]:
        return self.ids.render(self.item_ids(items))

    def code(self, items: Sequence[int]) -> list[str]:
        return self.ids.render(self.item_ids(items))


def _digest(vectors: torch.Tensor) -> tuple:
    """The shape and a hash of the bytes of ``vectors``: equal for equal vectors, whatever
    the object. Hashing costs about 0.4 ms per MB (40 ms for 100k x 64 floats), against
    seconds to fit the semantic IDs again."""
    array = vectors.detach().cpu().contiguous().numpy()
    return tuple(array.shape), hashlib.blake2b(array, digest_size=16).hexdigest()


class EmbeddingRepresentation(ItemRepresentation):
    """External embeddings in words: each item's ``nearest_genres`` genres by cosine
    similarity to the genre centroids (mean embedding of each genre's items). A genre no
    item has (no centroid) is never named; an item whose vector is zero (no direction, a
    cosine of 0 with every genre) is refused."""

    def __init__(self, catalog: Catalog, source: str, nearest_genres: int = 2):
        super().__init__(catalog)
        raw = get_embeddings(catalog, source)
        zero = (raw == 0).all(1)
        if bool(zero.any()):
            rows = zero.nonzero().flatten().tolist()
            raise ValueError(f"embeddings {source!r} have {len(rows)} zero vector(s) (rows {rows[:5]}"
                             f"{', ...' if len(rows) > 5 else ''}): a zero vector has no direction, so no nearest "
                             "genre; give those items a vector, or use kind='text'")
        vectors = torch.nn.functional.normalize(raw, dim=1)
        members = catalog.genres.float().cpu()
        centroids = torch.nn.functional.normalize(members.T @ vectors, dim=1)
        similarity = (vectors @ centroids.T).masked_fill(members.sum(0) == 0, -torch.inf)
        k = min(nearest_genres, int((members.sum(0) > 0).sum()))
        self._nearest = similarity.topk(k, dim=1).indices.tolist()

    def describe(self, items: Sequence[int]) -> list[str]:
        names = self.catalog.genre_names
        out = []
        for i in self.item_ids(items):
            near = [names[g] for g in self._nearest[i]]
            out.append(f"an item close to {' and '.join(near) if len(near) < 3 else ', '.join(near)}")
        return out


def make_representation(catalog: Catalog, config: RepresentationConfig | dict | str | None = None) -> ItemRepresentation:
    """The representation named by ``config`` (a :class:`RepresentationConfig`, a mapping of
    its fields, or just the ``kind``)."""
    if config is None:
        config = RepresentationConfig()
    elif isinstance(config, str):
        config = RepresentationConfig(kind=config)
    elif not isinstance(config, RepresentationConfig):
        config = from_mapping(RepresentationConfig, config, "the representation config")
    if config.kind == "text":
        return TextRepresentation(catalog)
    if config.kind == "semantic_id":
        return SemanticIdRepresentation(catalog, config.source, config.levels, config.codebook_size, config.seed)
    if config.kind == "embedding":
        return EmbeddingRepresentation(catalog, config.source, config.nearest_genres)
    raise ValueError(f"RepresentationConfig.kind={config.kind!r}; choose one of {KINDS}")
