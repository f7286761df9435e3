"""Which history representation an LLM user's prompt uses: :class:`RepresentationConfig`,
apart from the representations (:mod:`recoworld.representations.items`) so that the LLM
users' configs, and ``recoworld run``'s schema with them, load without torch."""

from __future__ import annotations

import string
from dataclasses import dataclass

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, Interval, check_fields, did_you_mean

KINDS = ("text", "semantic_id", "embedding")
#: Semantic-ID levels name their tokens ``<a..>``, ``<b..>``, ...: one letter each, and one
#: more for the collision token.
MAX_LEVELS = len(string.ascii_lowercase) - 1


@dataclass
class RepresentationConfig:
    """Which history representation an LLM user's prompt uses.

    Attributes:
        kind: ``"text"``, ``"semantic_id"`` or ``"embedding"``.
        source: the embeddings behind ``semantic_id`` and ``embedding``: ``"features"``
            (the catalog's features), ``"text"`` (sentence-transformers embeddings of
            titles and genres), or a name attached with
            :func:`~recoworld.representations.embeddings.attach_embeddings`;
            ``embedding`` needs one other than ``"features"``.
        levels: semantic-ID levels (before the collision token), 1 to :data:`MAX_LEVELS`.
        codebook_size: centroids per level (at least 1).
        nearest_genres: genres named per item by ``embedding`` (at least 1).
        seed: seed of the quantiser's k-means (an integer >= 0).
    """

    kind: str = "text"
    source: str = "features"
    levels: int = 3
    codebook_size: int = 64
    nearest_genres: int = 2
    seed: int = 0

    RANGES = {"levels": Interval(1, MAX_LEVELS), "codebook_size": AT_LEAST_ONE, "nearest_genres": AT_LEAST_ONE,
              "seed": NON_NEGATIVE}

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"RepresentationConfig.kind={self.kind!r}; choose one of {KINDS}"
                             f"{did_you_mean(self.kind, KINDS)}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"RepresentationConfig.source={self.source!r}: must be 'features', 'text' or the name "
                             "of embeddings attached with recoworld.representations.attach_embeddings")
        if self.kind == "embedding" and self.source == "features":  # here, before an LLM user loads its model
            raise ValueError("representation kind 'embedding' describes external vectors; set source to 'text' or "
                             "to a name attached with recoworld.representations.attach_embeddings")
        check_fields(self)  # RANGES (recoworld.config_checks)
