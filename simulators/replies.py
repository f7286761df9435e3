"""The JSON an LLM user must reply with, as pydantic schemas.

A step reply reads::

    {"reactions": {"12": {"action": "click", "reason": "I love Alien"},
                   "45": {"action": "skip", "reason": "too sweet for me"}},
     "mindset": "Happy to find a classic, tired of comedies.",
     "satisfaction": 4,
     "leave": false,
     "instruction": null}

``reactions`` is keyed by the ids of the items shown, one entry per item, in slate order;
``instruction``, when the user is about to lose interest, is
``{"text": "...", "more": ["Sci-Fi"], "less": ["Comedy"], "novelty": 1}`` with genre names
from the catalog. Validation normalises two things a grammar cannot rule out: a genre
named twice in a list counts once, and a genre in both lists is dropped from both. An
instruction may be a sentence with no structured wish at all (the simulators voice it but
put nothing in force). It rejects, for repair, what pydantic's lax mode would
otherwise guess: a mindset or a sentence of blanks, and ``true``/``false`` given as a
satisfaction or a novelty.

The item ids differ at every step, so each slate gets its own schema class
(:func:`slate_reply_model`): its JSON schema names exactly the slate's ids as required keys
(so a backend with constrained decoding cannot produce any other), and its validation
rejects a reply about an item that was not shown, or that leaves one out — a malformed
reply that the LLM layer sends back for repair. A full pydantic model built per slate
would be slow at every user-step; the per-slate class instead defers its own schema
build and validates through the catalog's base model, then checks the ids.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from functools import lru_cache
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from recoworld.simulators.memory import ACTIONS

#: Most characters of each free-text field; they bound the tokens a reply can take (up to one
#: token per character when a small model degenerates into "1. 1. 1. ...").
REASON_CHARS, MINDSET_CHARS, INSTRUCTION_CHARS = 40, 60, 100
#: Per-slate schema classes kept for reuse (repairs and repeated slates).
SLATE_MODELS_KEPT = 4096


def _in_words(text: str) -> str:
    # ``min_length`` counts whitespace: a mindset or a sentence of blanks would pass it and
    # reach the Response as an empty string (a hybrid user "voicing" nothing).
    if not text.strip():
        raise ValueError("is blank; say it in a sentence")
    return text


#: Free text that must say something: blank replies go back for repair.
Words = Annotated[str, AfterValidator(_in_words)]


def _not_a_bool(value):
    # pydantic's lax mode reads true as 1 and false as 0: "satisfaction": true would become
    # the unhappiest 1/5 and "novelty": true a wish for the unfamiliar, guessed, not said.
    # (A ValueError, not a TypeError: pydantic turns only the former into a validation error.)
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number; give one of the numbers allowed")  # noqa: TRY004
    return value


def _scale(*levels: int):
    """A ``Literal`` of integer ``levels`` that a JSON ``true``/``false`` does not pass."""
    return Annotated[Literal[levels], BeforeValidator(_not_a_bool)]


class Reaction(BaseModel):
    # (no docstring: it would enter the JSON schema shown in every prompt)
    action: Literal[ACTIONS]
    reason: str = Field(max_length=REASON_CHARS)


class _InstructionChecks(BaseModel):
    """Checks of a structured instruction; :func:`instruction_model` adds the fields."""

    @field_validator("more", "less", mode="after", check_fields=False)
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))  # a genre named twice is named once

    @model_validator(mode="after")
    def _says_something(self):
        if not self.text.strip():
            raise ValueError("instruction.text is blank; say what you want in a sentence")
        # A genre asked for both more and less carries no wish either way (small models do
        # this, and no grammar can forbid it): it is dropped from both lists.
        both = set(self.more) & set(self.less)
        if both:
            self.more = [g for g in self.more if g not in both]
            self.less = [g for g in self.less if g not in both]
        return self


@lru_cache(maxsize=32)
def instruction_model(genre_names: tuple[str, ...]) -> type[BaseModel]:
    """The structured instruction for a catalog's genres."""
    genre = Literal[genre_names]
    return create_model(
        "InstructionReply", __base__=_InstructionChecks,
        text=(str, Field(min_length=1, max_length=INSTRUCTION_CHARS)),
        more=(list[genre], Field(max_length=2)), less=(list[genre], Field(max_length=2)),
        novelty=(_scale(-1, 0, 1), ...),
    )


class VoiceReply(BaseModel):
    # What a hybrid user's LLM says when the statistical core decides the user speaks. (No
    # docstring, and no titles in the schema: small models copy them into their answers.)
    mindset: Words = Field(min_length=1, max_length=MINDSET_CHARS)
    instruction: Words = Field(min_length=1, max_length=INSTRUCTION_CHARS)

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict:
        return _strip_titles(super().model_json_schema(*args, **kwargs))


@lru_cache(maxsize=32)
def step_reply_model(genre_names: tuple[str, ...]) -> type[BaseModel]:
    """The step reply for a catalog's genres, with ``reactions`` keyed by any string
    (:func:`slate_reply_model` narrows the keys to one slate's ids)."""
    return create_model(
        "StepReply",
        reactions=(dict[str, Reaction], ...),
        mindset=(Words, Field(min_length=1, max_length=MINDSET_CHARS)),
        satisfaction=(_scale(1, 2, 3, 4, 5), ...),
        leave=(bool, ...),
        instruction=(Optional[instruction_model(genre_names)], ...),
    )


@lru_cache(maxsize=32)
def _base_json_schema(genre_names: tuple[str, ...]) -> dict:
    schema = _strip_titles(step_reply_model(genre_names).model_json_schema())
    # The genre list once, as a definition both lists refer to: a shorter prompt.
    instruction = schema["$defs"]["InstructionReply"]["properties"]
    schema["$defs"]["Genre"] = instruction["more"]["items"]
    for name in ("more", "less"):
        instruction[name]["items"] = {"$ref": "#/$defs/Genre"}
    return schema


def _strip_titles(schema):
    # Titles repeat the field names; dropping them shortens every prompt that shows the schema.
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


class _SlateReply(BaseModel):
    """Template of the per-slate classes; never validated itself."""

    model_config = ConfigDict(defer_build=True)
    slate: ClassVar[tuple[int, ...]] = ()
    base: ClassVar[type[BaseModel]]
    genre_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def model_validate(cls, obj, **kwargs):
        reply = cls.base.model_validate(obj, **kwargs)
        shown = {str(i): i for i in cls.slate}
        errors = [
            _error("not_shown", f"item {key} was not in the slate; react only to the items shown: "
                                f"{', '.join(shown)}", ("reactions", key), key)
            for key in reply.reactions if key not in shown
        ]
        errors += [_error("missing", f"no reaction to item {key}; react to every item shown", ("reactions",), key)
                   for key in shown if key not in reply.reactions]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return reply

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict:
        schema = copy.deepcopy(_base_json_schema(cls.genre_names))
        keys = [str(i) for i in cls.slate]
        reaction = schema["properties"]["reactions"]["additionalProperties"]
        schema["properties"]["reactions"] = {
            "type": "object", "properties": {k: reaction for k in keys}, "required": keys,
            "additionalProperties": False,
        }
        return schema


def _error(kind: str, message: str, loc: tuple, value) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


_SLATE_MODELS: OrderedDict = OrderedDict()


def slate_reply_model(genre_names: tuple[str, ...], slate: tuple[int, ...]) -> type[BaseModel]:
    """The step-reply schema for one slate (item ids in the order shown)."""
    key = (genre_names, slate)
    model = _SLATE_MODELS.get(key)
    if model is None:
        model = type(_SlateReply)("StepReply", (_SlateReply,), {
            "__module__": __name__, "__qualname__": "StepReply",
            "slate": slate, "base": step_reply_model(genre_names), "genre_names": genre_names,
        })
        _SLATE_MODELS[key] = model
        if len(_SLATE_MODELS) > SLATE_MODELS_KEPT:
            _SLATE_MODELS.popitem(last=False)
    return model
