"""Reflective instructions: the structured form rendered as the sentence a user would say.

A user who senses they are about to leave tells the recommender what would keep them:
``{"more": ["Sci-Fi"], "less": ["Comedy"], "novelty": +1}`` becomes
"Too much Comedy lately — show me something different, maybe some Sci-Fi. Surprise me
with things I haven't seen." Several phrasings exist so that text-reading agents cannot
key on one template; the phrasing is chosen by the caller (from the user's random stream).
:func:`instruction_compliance` scores how well later slates follow an instruction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recoworld.types import Instruction

LESS_AND_MORE = (
    "Too much {less} lately — show me something different, maybe some {more}.",
    "I'm getting tired of {less}. Could you mix in some {more}?",
    "Enough {less} for now; I'd rather watch {more}.",
)
LESS_ONLY = (
    "Too much {less} lately — show me something different.",
    "I'm bored of {less}; please show me other things.",
    "Less {less}, please.",
)
MORE_ONLY = (
    "I'd like to see more {more}.",
    "Show me some {more}, please.",
    "I'm in the mood for {more}.",
)
NOVELTY = {
    1: (" Surprise me with things I haven't seen.", " Something new, please.", " Show me things off my usual path."),
    -1: (" Stick to what I usually like.", " Nothing too unfamiliar, please.", " Keep it close to my favourites."),
}
NOVELTY_ONLY = {
    1: "These all feel the same — surprise me with something new.",
    -1: "This is too far from what I like — show me more familiar things.",
}


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render_instruction(more: Sequence[str], less: Sequence[str], novelty: int, variant: int = 0) -> str:
    """The sentence for a structured instruction; ``variant`` picks the phrasing.

    Raises ``ValueError`` for an empty instruction (nothing to say).
    """
    pick = variant % 3
    if more and less:
        text = LESS_AND_MORE[pick].format(less=_join(less), more=_join(more))
    elif less:
        text = LESS_ONLY[pick].format(less=_join(less))
    elif more:
        text = MORE_ONLY[pick].format(more=_join(more))
    elif novelty in NOVELTY_ONLY:
        return NOVELTY_ONLY[novelty]
    else:
        raise ValueError("the instruction is empty: give at least one of more, less, or a non-zero novelty")
    if novelty in NOVELTY:
        text += NOVELTY[novelty][pick]
    return text


def instruction_compliance(instruction: Instruction, genres: torch.Tensor, novel: torch.Tensor,
                           more_share: float) -> torch.Tensor:
    """Compliance ``[R]`` of slates with instructions, as the statistical user scores it:
    the mean of the applicable parts — share of items outside ``less``, share of items in
    ``more`` relative to ``more_share`` (capped at 1), share of ``novel`` items for
    ``novelty=+1`` or of familiar ones for ``-1``.

    Args:
        instruction: ``R`` instructions.
        genres: bool ``[R, K, G]`` genres of the slates' items.
        novel: bool ``[R, K]`` items far from the user's recent consumption.
    """
    has_less, has_more = instruction.less.any(1), instruction.more.any(1)
    in_less = (genres & instruction.less[:, None, :]).any(-1).float().mean(1)
    in_more = (genres & instruction.more[:, None, :]).any(-1).float().mean(1)
    share_novel = novel.float().mean(1)
    wants = instruction.novelty.float()
    parts = torch.stack([
        torch.where(has_less, 1.0 - in_less, 0.0),
        torch.where(has_more, (in_more / more_share).clamp(max=1.0), 0.0),
        torch.where(wants > 0, share_novel, torch.where(wants < 0, 1.0 - share_novel, 0.0)),
    ], 1)
    count = torch.stack([has_less, has_more, wants != 0], 1).float().sum(1)
    return parts.sum(1) / count.clamp_min(1.0)
