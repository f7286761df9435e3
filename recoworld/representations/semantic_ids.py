"""Semantic IDs: each item named by a few discrete tokens such as ``<a12><b3><c40>``.

Items with similar embeddings share their leading tokens, so a long history reads in a few
tokens per item and a model can generalise across neighbours. Codes come from a
:class:`~recoworld.representations.quantization.ResidualQuantizer`; as in TIGER (Rajput et
al., NeurIPS 2023), items that share every level get one more token (``<d0>``, ``<d1>``, ...)
so that every item's ID is unique.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from recoworld.config_checks import NON_NEGATIVE, Interval, check_number
from recoworld.representations.config import MAX_LEVELS
from recoworld.representations.quantization import ResidualQuantizer


@dataclass(eq=False)
class SemanticIds:
    """The semantic ID of every item of a catalog.

    Attributes:
        codes: int64 ``[N, L]``; the last column is the collision index when
            ``disambiguated``.
        quantizer: the fitted residual quantiser the first levels come from.
        disambiguated: whether a collision level was appended.
    """

    codes: torch.Tensor
    quantizer: ResidualQuantizer
    disambiguated: bool = True

    @classmethod
    def fit(cls, embeddings: torch.Tensor, levels: int = 3, codebook_size: int = 64, seed: int = 0,
            disambiguate: bool = True) -> SemanticIds:
        """Quantise ``embeddings`` ``[N, D]`` into ``levels`` tokens per item (plus one
        collision token when ``disambiguate`` and two items would otherwise share an ID);
        ``levels`` is at most :data:`~recoworld.representations.config.MAX_LEVELS`, one
        letter per token."""
        check_number("SemanticIds", "levels", levels, Interval(1, MAX_LEVELS), integer=True)
        check_number("SemanticIds", "seed", seed, NON_NEGATIVE, integer=True)
        quantizer = ResidualQuantizer.fit(embeddings, levels, codebook_size, seed=seed)
        codes = quantizer.encode(embeddings)
        if disambiguate:
            codes = torch.cat([codes, _collision_index(codes)[:, None]], 1)
        return cls(codes, quantizer, disambiguate)

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    def tokens(self, item: int) -> str:
        """The ID of ``item`` (an id ``0..n_items-1``), e.g. ``"<a12><b3><c40><d0>"``."""
        item = int(item)
        check_item("item", item, self.n_items)
        return self._tokens(item)

    def render(self, items: Sequence[int] | torch.Tensor) -> list[str]:
        """The IDs of ``items`` (ids ``0..n_items-1``)."""
        ids = [int(i) for i in items]
        for position, item in enumerate(ids):
            check_item(f"items[{position}]", item, self.n_items)
        return [self._tokens(item) for item in ids]

    def _tokens(self, item: int) -> str:
        return "".join(f"<{string.ascii_lowercase[level]}{int(c)}>" for level, c in enumerate(self.codes[item]))

    def collisions(self) -> int:
        """Items whose ID (all levels) is shared with another item."""
        _, counts = torch.unique(self.codes, dim=0, return_counts=True)
        return int(counts[counts > 1].sum())


def check_item(name: str, item: int, n_items: int, catalog: str | None = None) -> None:
    """``IndexError`` naming ``name`` when ``item`` is no id ``0..n_items-1`` of the catalog
    (called ``catalog``, if given): a negative id would otherwise read as an item counted
    from the end, through Python's and torch's indexing."""
    if not 0 <= item < n_items:
        where = "the catalog" if catalog is None else f"the catalog {catalog!r}"
        raise IndexError(f"{name}={item} is outside {where} (ids 0..{n_items - 1})")


def _collision_index(codes: torch.Tensor) -> torch.Tensor:
    """For each row, how many earlier rows have the same codes (0 for the first)."""
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    order = torch.argsort(group, stable=True)
    sorted_group = group[order]
    starts = torch.ones_like(sorted_group, dtype=torch.bool)
    starts[1:] = sorted_group[1:] != sorted_group[:-1]
    position = torch.arange(len(codes))
    first = torch.cummax(torch.where(starts, position, 0), 0).values
    index = torch.empty_like(group)
    index[order] = position - first
    return index
