"""How a vector of scores becomes a ranking: the one rule the env applies to a scores action,
which an agent that hands the env scores of its own must follow to know what will be shown."""

from __future__ import annotations

import torch


def best_first(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The positions ``[B, k]`` of the ``k`` best of ``scores`` ``[B, C]`` (read as float32, as
    the env reads actions) in each row, best first, equal scores in the order of their
    positions (the lower first; ``-0.0`` equals ``0.0``): what
    ``torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]`` gives, on any
    device and build, without a host sync. ``torch.topk`` of the scores alone leaves the order
    of equal values, and which of them make the cut, to its implementation; here it ranks keys
    that are all distinct: each score's order-preserving integer in the high 32 bits, its
    reversed position in the low ones (one topk, where a sort of each row costs more, the more
    so the more candidates).

    NaN has no place in this order and :class:`ActionDecoder` refuses it before ranking; here a
    NaN ranks above ``+inf`` or below ``-inf`` by its sign bit (the positions stay in range)."""
    C = scores.shape[1]
    bits = (scores.detach().float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0, whose bits differ
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats' bits count the wrong way
    reversed_positions = torch.arange(C - 1, -1, -1, device=scores.device)
    return ((ordered.long() << 32) + reversed_positions).topk(k, dim=1).indices
