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

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from recoworld.catalog import Catalog
from recoworld.representations.config import RepresentationConfig
from recoworld.representations.embeddings import get_embeddings
from recoworld.representations.semantic_ids import SemanticIds

KINDS = ("text", "semantic_id", "embedding")


class ItemRepresentation(ABC):
    """Writes items as prompt text."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._genres = catalog.genres.cpu()
        # Filled on first use, so that a catalog of millions costs only the items shown.
        self._genres_of: dict[int, tuple[str, ...]] = {}
        self._text: dict[int, str] = {}

    def genres_of(self, item: int) -> tuple[str, ...]:
        """The genre names of ``item``."""
        names = self._genres_of.get(item)
        if names is None:
            names = self._genres_of[item] = tuple(
                self.catalog.genre_names[g] for g in self._genres[item].nonzero().flatten().tolist())
        return names

    def text(self, item: int) -> str:
        """``"Title [Genre, Genre]"``."""
        text = self._text.get(item)
        if text is None:
            text = self._text[item] = f"{self.catalog.titles[item]} [{', '.join(self.genres_of(item))}]"
        return text

    @abstractmethod
    def describe(self, items: Sequence[int]) -> list[str]:
        """How each of ``items`` appears in a history."""

    def code(self, items: Sequence[int]) -> list[str]:
        """A compact code shown after each slate item ('' when the representation has none)."""
        return [""] * len(items)


class TextRepresentation(ItemRepresentation):
    """Titles and genres."""

    def describe(self, items: Sequence[int]) -> list[str]:
        return [self.text(int(i)) for i in items]


class SemanticIdRepresentation(ItemRepresentation):
    """Semantic IDs, fitted once per catalog and setting and kept in ``catalog.extra``."""

    def __init__(self, catalog: Catalog, source: str = "features", levels: int = 3, codebook_size: int = 64,
                 seed: int = 0):
        super().__init__(catalog)
        store = catalog.extra.setdefault("semantic_ids", {})
        key = (source, levels, codebook_size, seed)
        if key not in store:
            store[key] = SemanticIds.fit(get_embeddings(catalog, source), levels, codebook_size, seed)
        self.ids: SemanticIds = store[key]

    def describe(self, items: Sequence[int]) -> list[str]:
        return self.ids.render(items)

    def code(self, items: Sequence[int]) -> list[str]:
        return self.ids.render(items)


class EmbeddingRepresentation(ItemRepresentation):
    """External embeddings in words: each item's ``nearest_genres`` genres by cosine
    similarity to the genre centroids (mean embedding of each genre's items)."""

    def __init__(self, catalog: Catalog, source: str, nearest_genres: int = 2):
        super().__init__(catalog)
        vectors = torch.nn.functional.normalize(get_embeddings(catalog, source), dim=1)
        centroids = torch.nn.functional.normalize(catalog.genres.float().cpu().T @ vectors, dim=1)
        k = min(nearest_genres, catalog.n_genres)
        self._nearest = (vectors @ centroids.T).topk(k, dim=1).indices.tolist()

    def describe(self, items: Sequence[int]) -> list[str]:
        names = self.catalog.genre_names
        out = []
        for i in items:
            near = [names[g] for g in self._nearest[int(i)]]
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
        config = RepresentationConfig(**dict(config))
    if config.kind == "text":
        return TextRepresentation(catalog)
    if config.kind == "semantic_id":
        return SemanticIdRepresentation(catalog, config.source, config.levels, config.codebook_size, config.seed)
    if config.kind == "embedding":
        if config.source == "features":
            raise ValueError("representation kind 'embedding' describes external vectors; set source to 'text' or "
                             "to a name attached with recoworld.representations.attach_embeddings")
        return EmbeddingRepresentation(catalog, config.source, config.nearest_genres)
    raise ValueError(f"representation kind={config.kind!r}; choose one of {KINDS}")
