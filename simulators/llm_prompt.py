"""What an LLM-played user reads: the chat messages of an LLM user's step
(:class:`~recoworld.simulators.llm_user.LLMUsers`) and of a hybrid user's voice
(:class:`~recoworld.simulators.hybrid.HybridUsers`).

Both open with the persona as the system message; the user message gathers what the user
remembers and how it feels, then asks for the reply its schema
(:mod:`~recoworld.simulators.replies`) describes.

Item text is data (:mod:`recoworld.llm.prompt_data`): titles, genres, persona facts, the
user's earlier words and the model's own earlier reasons enter as JSON inside ``<data>``,
never as prompt lines of their own, and the system message says that such text is to be
judged, not obeyed. The slate is a data block, one item per line:
``{"id": 12, "item": "Heat (1995) [Action, Crime]"}`` (with ``"code"`` when the history
representation has one).
"""

from __future__ import annotations

from collections.abc import Sequence

from recoworld.llm import DATA_RULE, as_data, data_block
from recoworld.types import Instruction

STEP_TASK = (
    'React to each item by its id: "click" (watch it), "like" (watch and love it), "dislike" (watch and '
    'regret it) or "skip", with a short reason. Then your mindset in one sentence, your satisfaction from '
    '1 (very unhappy) to 5 (very happy), and "leave": true if you close the app now. Only if you are '
    'losing interest, set "instruction" to what you would tell the app: a sentence, the genres you want '
    'more or less of, and novelty 1 (unfamiliar titles), -1 (familiar ones) or 0; else null.'
)
VOICE_TASK = ('Tell the app what you want in one sentence of your own ("instruction"), and describe your '
              'mindset in one sentence ("mindset").')


def chat(system: str, parts: Sequence[str]) -> list[dict]:
    """A system message and a user message of ``parts`` (paragraphs)."""
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def step_messages(persona: str, app: str, remembered: str, session: int, step: int, mindset: str, stars: int,
                  instruction: str | None, slate: Sequence[int], representation) -> list[dict]:
    """The messages of an LLM user's step.

    Args:
        persona: the persona's description.
        app: how the service is named.
        remembered: the user's memory as text (may be empty).
        session, step: the session's number and the step's within it, from 0.
        mindset: the mindset sentence; ``stars``: the satisfaction 1..5.
        instruction: the sentence of the instruction in force, if any.
        slate: the item ids shown, in order, written by ``representation``
            (:mod:`recoworld.representations`).
    """
    system = (f"{persona}\nYou are using {app}. Stay in character: react as this person "
              f"would, honestly, including boredom and annoyance. {DATA_RULE} Answer with JSON only.")
    parts = ["What you remember:\n" + remembered] if remembered else []
    parts.append(f"Session {session + 1}, step {step + 1}. Your mindset: {as_data(mindset)} "
                 f"Your satisfaction: {stars}/5.")
    if instruction:
        parts.append(f"You asked the app earlier: {as_data(instruction)}")
    codes = representation.code(slate)
    shown = [{"id": int(item), "item": representation.text(item), **({"code": code} if code else {})}
             for item, code in zip(slate, codes)]
    parts.append("The app now shows you, in order, one item per line:\n" + data_block(shown))
    parts.append(STEP_TASK)
    return chat(system, parts)


def wish_in_words(instruction: Instruction, b: int, genre_names: Sequence[str]) -> str:
    """User ``b``'s structured instruction as a phrase ("less Comedy, more Drama, ...")."""
    wish = []
    more = [genre_names[g] for g in instruction.more[b].nonzero().flatten().tolist()]
    less = [genre_names[g] for g in instruction.less[b].nonzero().flatten().tolist()]
    if less:
        wish.append(f"less {' and '.join(less)}")
    if more:
        wish.append(f"more {' and '.join(more)}")
    novelty = int(instruction.novelty[b])
    if novelty:
        wish.append("titles unlike what you usually watch" if novelty > 0 else "titles close to your favourites")
    return ", ".join(wish)


def voice_messages(persona: str, app: str, remembered: str, recent: Sequence[str], earlier_mindset: str | None,
                   stars: int, wish: str) -> list[dict]:
    """The messages asking a hybrid user to voice its instruction.

    Args:
        persona, app, remembered: as for :func:`step_messages`.
        recent: the recent clicks, written, newest first.
        earlier_mindset: the mindset the user last put in words, if any.
        stars: the satisfaction 1..5.
        wish: the structured instruction in words (:func:`wish_in_words`).
    """
    system = (f"{persona}\nYou are using {app}. Stay in character and speak as this person "
              f"would. {DATA_RULE} Answer with JSON only.")
    parts = ["What you remember:\n" + remembered] if remembered else []
    if recent:
        parts.append(f"Your recent clicks, newest first: {as_data(list(recent))}")
    if earlier_mindset:
        parts.append(f"Earlier you felt: {as_data(earlier_mindset)}")
    parts.append(f"Your satisfaction is {stars}/5 and you are losing interest in what the app shows you. "
                 f"What you want now: {as_data(wish)}.")
    parts.append(VOICE_TASK)
    return chat(system, parts)
