"""Which history representation an LLM user's prompt uses: :class:`RepresentationConfig`,
apart from the representations (:mod:`recoworld.representations.items`) so that the LLM
users' configs, and ``recoworld run``'s schema with them, load without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RepresentationConfig:
    """Which history representation an LLM user's prompt uses.

    Attributes:
        kind: ``"text"``, ``"semantic_id"`` or ``"embedding"``.
        source: the embeddings behind ``semantic_id`` and ``embedding``: ``"features"``
            (the catalog's features), ``"text"`` (sentence-transformers embeddings of
            titles and genres), or a name attached with
            :func:`~recoworld.representations.embeddings.attach_embeddings`.
        levels: semantic-ID levels (before the collision token).
        codebook_size: centroids per level.
        nearest_genres: genres named per item by ``embedding``.
        seed: seed of the quantiser's k-means.
    """

    kind: str = "text"
    source: str = "features"
    levels: int = 3
    codebook_size: int = 64
    nearest_genres: int = 2
    seed: int = 0
