"""Structured replies: find the JSON in a model's text, validate it, and ask for a repair.

Constrained decoding (a grammar or a JSON schema enforced by the server) makes most replies
valid by construction; a model that still answers badly — or a backend without constrained
decoding — gets a repair turn: its own reply (or, for small models that would copy it, a
placeholder), the exact validation error, and a request for the corrected JSON only.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ValidationError

from recoworld.llm.types import Message

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
#: Most characters of a bad reply shown back in its repair turn or kept with a failure: a
#: runaway reply (a server that ignores ``max_tokens``) would otherwise be sent back whole,
#: the repair request outgrowing the model's context, and kept whole in memory.
REPLY_CHARS = 4000


def json_schema_of(schema: type[BaseModel]) -> dict:
    """The JSON schema of a pydantic model, as sent to backends and hashed into cache keys."""
    return schema.model_json_schema()


def _distinct_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of two equal keys: {"12": click, "12": skip} would be read as a
    # skip, a guess between two answers the model gave. Repeating the same value says nothing new.
    out: dict = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise ValueError(f"the JSON gives key {key!r} twice in one object, with different values "
                             f"({json.dumps(out[key])[:60]} and {json.dumps(value)[:60]}); give each key once")
        out[key] = value
    return out


def extract_json(text: str):
    """The JSON value in ``text``: the whole text, else a fenced block, else the span from the
    first ``{`` to the last ``}``. Raises :class:`ValueError` naming the problem otherwise, and
    for an object that gives one key two different values (which one was meant is not known)."""
    stripped = text.strip()
    candidates = [stripped]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(stripped)]
    first, last = stripped.find("{"), stripped.rfind("}")
    if 0 <= first < last:
        candidates.append(stripped[first : last + 1])
    error = None
    for candidate in candidates:
        try:
            return json.loads(candidate, object_pairs_hook=_distinct_keys)
        except json.JSONDecodeError as e:
            error = error or e
    if not stripped:
        raise ValueError("the reply is empty; expected a JSON object")
    raise ValueError(f"the reply is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})")


def parse_reply(text: str, schema: type[BaseModel]) -> BaseModel:
    """Validate ``text`` against ``schema``. Raises :class:`ValueError` with a short message
    listing each offending field — the message that the repair prompt shows the model."""
    value = extract_json(text)
    try:
        return schema.model_validate(value)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in e.errors(include_url=False)
        )
        raise ValueError(f"the JSON does not match the schema: {problems}") from None


def schema_instruction(json_schema: dict) -> str:
    """The sentence appended to the last user message when a reply must follow a schema."""
    return (
        "\n\nReply with a single JSON object that conforms to this JSON schema, and nothing else:\n"
        + json.dumps(json_schema, separators=(",", ":"))
    )


def with_schema_instruction(messages: tuple[Message, ...], json_schema: dict) -> tuple[Message, ...]:
    """``messages`` with :func:`schema_instruction` appended to the last user message (a
    system message would break chat templates that allow none)."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = m["content"] + schema_instruction(json_schema)
            return tuple(out)
    return tuple(out) + ({"role": "user", "content": schema_instruction(json_schema).strip()},)


def clipped_reply(text: str) -> str:
    """``text`` cut to its first :data:`REPLY_CHARS` characters, saying how many more it had
    (short replies as they are)."""
    if len(text) <= REPLY_CHARS:
        return text
    return f"{text[:REPLY_CHARS]}[... {len(text) - REPLY_CHARS} more characters]"


#: The assistant turn of a repair that does not show the model its bad reply.
REPLY_NOT_SHOWN = "(an invalid reply, not repeated here)"


def repair_messages(messages: tuple[Message, ...], bad_reply: str, error: str,
                    show_reply: bool = True) -> tuple[Message, ...]:
    """The conversation continued by the bad reply (:func:`clipped_reply`) — or, without
    ``show_reply``, :data:`REPLY_NOT_SHOWN` in its place: small models copy a reply they are
    shown, errors and all — and a request to correct it, naming the exact error."""
    return tuple(messages) + (
        {"role": "assistant", "content": clipped_reply(bad_reply) if show_reply else REPLY_NOT_SHOWN},
        {
            "role": "user",
            "content": f"That reply is invalid: {error}. "
            "Reply again with only the corrected JSON object, following the schema given above.",
        },
    )
