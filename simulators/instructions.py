"""Reflective instructions: the structured form rendered as the sentence a user would say.

A user who senses they are about to leave tells the recommender what would keep them:
``{"more": ["Sci-Fi"], "less": ["Comedy"], "novelty": +1}`` becomes
"Too much Comedy lately — show me something different, maybe some Sci-Fi. Surprise me
with things I haven't seen." Several phrasings exist so that text-reading agents cannot
key on one template; the phrasing is chosen by the caller (from the user's random stream).
:func:`~recoworld.simulators.equations.instruction_compliance` (re-exported here) scores how
well later slates follow an instruction.
"""

from __future__ import annotations

from collections.abc import Sequence

from recoworld.simulators.equations import instruction_compliance
from recoworld.wording import listing

__all__ = ["instruction_compliance", "render_instruction"]

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


def render_instruction(more: Sequence[str], less: Sequence[str], novelty: int, variant: int = 0) -> str:
    """The sentence for a structured instruction; ``variant`` picks the phrasing.

    Raises ``ValueError`` for an empty instruction (nothing to say).
    """
    pick = variant % 3
    if more and less:
        text = LESS_AND_MORE[pick].format(less=listing(less), more=listing(more))
    elif less:
        text = LESS_ONLY[pick].format(less=listing(less))
    elif more:
        text = MORE_ONLY[pick].format(more=listing(more))
    elif novelty in NOVELTY_ONLY:
        return NOVELTY_ONLY[novelty]
    else:
        raise ValueError("the instruction is empty: give at least one of more, less, or a non-zero novelty")
    if novelty in NOVELTY:
        text += NOVELTY[novelty][pick]
    return text
