"""One step of LLM users' replies, read: what each user did with each item of its slate, what it
felt and said, and the feedback tensors of the :class:`~recoworld.Response` they make.

============  ========  =======  ==================  =====  ==================
action        examined  clicked  watch_fraction      liked  rating
============  ========  =======  ==================  =====  ==================
``skip``      yes       no       0                   no     0
``click``     yes       yes      ``click_watch``     no     0 (none given)
``like``      yes       yes      ``like_watch``      yes    ``like_rating``
``dislike``   yes       yes      ``dislike_watch``   no     ``dislike_rating``
============  ========  =======  ==================  =====  ==================

(the watch fractions and ratings are fields of
:class:`~recoworld.simulators.llm_config.LLMUserConfig`). The user reacts to every item, so
every position is examined. A like or a dislike is an explicit judgement, hence a rating;
a dislike means the user opened the item and regretted it (the only way a negative
judgement reaches the ``Response``, which rates clicked items only).

A user without a valid reply this step has a blank row here; under ``on_failure="fallback"``
:func:`stand_in` puts the statistical twin's response in its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from recoworld.llm import ChatReply
from recoworld.types import Instruction, Response
from recoworld.simulators.llm_config import LLMUserConfig

#: An action's code is its index here: 0 is a skip, any other code opened the item.
ACTION_CODES = ("skip", "click", "like", "dislike")
SKIP, CLICK, LIKE, DISLIKE = range(4)
#: The reason remembered for a reaction that the statistical twin stood in for.
STAND_IN_REASON = "no reply from the model; statistical stand-in"


@dataclass
class StepReplies:
    """What the ``B`` users' replies of one step say (blank rows for users without a valid
    reply, ``answered`` false).

    Attributes:
        answered: bool ``[B]``, whether the user's reply was valid.
        actions: ``[B, K]`` codes of :data:`ACTION_CODES`, in slate order.
        reasons: each user's reason per item.
        stars: float ``[B]``, the satisfaction 1..5 the user states.
        leaves: bool ``[B]``, whether the user closes the app.
        mindsets: each user's mindset sentence (``None`` without a reply).
        voiced: the instructions the users voiced this step.
        voiced_text: their sentences (``None`` when silent).
    """

    answered: torch.Tensor
    actions: torch.Tensor
    reasons: list[list[str]]
    stars: torch.Tensor
    leaves: torch.Tensor
    mindsets: list[str | None]
    voiced: Instruction
    voiced_text: list[str | None]


def one_line(text: str) -> str:
    """``text`` with its runs of whitespace as single spaces."""
    return " ".join(text.split())


def read_replies(replies: Sequence, slates: list[list[int]], genre_names: Sequence[str],
                 device: torch.device) -> StepReplies:
    """The :class:`StepReplies` of ``replies`` (a :class:`~recoworld.llm.ChatReply` per user,
    or a failure) to ``slates`` (item ids per user, in slate order)."""
    B, K = len(slates), len(slates[0])
    column = {g: j for j, g in enumerate(genre_names)}
    answered = [isinstance(r, ChatReply) for r in replies]
    actions = [[SKIP] * K for _ in range(B)]
    reasons = [[""] * K for _ in range(B)]
    stars, leaves, mindsets = [0] * B, [False] * B, [None] * B
    voiced, voiced_text = Instruction.none(B, len(genre_names), device), [None] * B
    for b in (b for b in range(B) if answered[b]):
        parsed = replies[b].parsed
        for k, item in enumerate(slates[b]):
            reaction = parsed.reactions[str(item)]
            actions[b][k], reasons[b][k] = ACTION_CODES.index(reaction.action), reaction.reason
        stars[b], leaves[b], mindsets[b] = parsed.satisfaction, parsed.leave, one_line(parsed.mindset)
        if parsed.instruction is not None:
            ins = parsed.instruction
            voiced.active[b] = True
            voiced.more[b, [column[g] for g in ins.more]] = True
            voiced.less[b, [column[g] for g in ins.less]] = True
            voiced.novelty[b] = ins.novelty
            voiced_text[b] = one_line(ins.text)
    return StepReplies(
        answered=torch.tensor(answered, device=device), actions=torch.tensor(actions, dtype=torch.long, device=device),
        reasons=reasons, stars=torch.tensor(stars, dtype=torch.float32, device=device),
        leaves=torch.tensor(leaves, dtype=torch.bool, device=device), mindsets=mindsets, voiced=voiced,
        voiced_text=voiced_text)


@dataclass
class SlateFeedback:
    """The step's feedback of every user, as the :class:`~recoworld.Response` carries it:
    ``examined``, ``clicked``, ``watch``, ``liked``, ``rating`` ``[B, K]``, ``satisfaction``
    in ``[0, 1]``, ``hazard`` and ``leaves`` ``[B]``."""

    examined: torch.Tensor
    clicked: torch.Tensor
    watch: torch.Tensor
    liked: torch.Tensor
    rating: torch.Tensor
    satisfaction: torch.Tensor
    hazard: torch.Tensor
    leaves: torch.Tensor


def slate_feedback(step: StepReplies, config: LLMUserConfig) -> SlateFeedback:
    """The feedback of the users' replies by the action table (``config``'s watch fractions
    and ratings). Every item is examined; the hazard is 1 for a user who decided to leave,
    else 0."""
    actions = step.actions
    watch = torch.zeros(actions.shape, device=actions.device)
    for action, fraction in ((CLICK, config.click_watch), (LIKE, config.like_watch), (DISLIKE, config.dislike_watch)):
        watch[actions == action] = fraction
    rating = torch.zeros(actions.shape, dtype=torch.int8, device=actions.device)
    rating[actions == LIKE] = config.like_rating
    rating[actions == DISLIKE] = config.dislike_rating
    return SlateFeedback(
        examined=torch.ones(actions.shape, dtype=torch.bool, device=actions.device), clicked=actions > SKIP,
        watch=watch, liked=actions == LIKE, rating=rating, satisfaction=((step.stars - 1) / 4).clamp(0, 1),
        hazard=step.leaves.float(), leaves=step.leaves)


def stand_in(feedback: SlateFeedback, step: StepReplies, twin: Response) -> SlateFeedback:
    """``feedback`` with the statistical twin's response in the rows of users without a valid
    reply; their voiced instructions (``step.voiced``, ``step.voiced_text``) become the
    twin's too."""
    fallback = ~step.answered
    f = fallback[:, None]
    for b in fallback.nonzero().flatten().tolist():
        if bool(twin.instruction.active[b]):
            step.voiced.active[b] = True
            step.voiced.more[b], step.voiced.less[b] = twin.instruction.more[b], twin.instruction.less[b]
            step.voiced.novelty[b] = twin.instruction.novelty[b]
            step.voiced_text[b] = twin.instruction_text[b]
    return SlateFeedback(
        examined=torch.where(f, twin.examined, feedback.examined),
        clicked=torch.where(f, twin.clicked, feedback.clicked),
        watch=torch.where(f, twin.watch_fraction, feedback.watch),
        liked=torch.where(f, twin.liked, feedback.liked),
        rating=torch.where(f, twin.rating, feedback.rating),
        satisfaction=torch.where(fallback, twin.satisfaction, feedback.satisfaction),
        hazard=torch.where(fallback, twin.leave_hazard, feedback.hazard),
        leaves=torch.where(fallback, twin.left_session, feedback.leaves))


def remembered_reactions(slates: list[list[int]], step: StepReplies,
                         feedback: SlateFeedback) -> list[list[tuple[int, str, str]]]:
    """Each user's ``(item, action, reason)`` reactions of the step, for its memory: every
    item of a reply; for a user the twin stood in for, the positions the twin examined, as a
    skip, a click or a like."""
    actions = step.actions.tolist()
    # Twin rows: 0 skip, 1 click, 2 like.
    acted = (feedback.clicked.long() + feedback.liked.long()).tolist()
    seen = feedback.examined.tolist()
    answered = step.answered.tolist()
    out = []
    for b, row in enumerate(slates):
        if answered[b]:
            out.append([(item, ACTION_CODES[a], why) for item, a, why in zip(row, actions[b], step.reasons[b])])
        else:
            out.append([(item, ACTION_CODES[a], STAND_IN_REASON) for item, a, s in zip(row, acted[b], seen[b]) if s])
    return out
