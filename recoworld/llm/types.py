"""Requests and replies of a :class:`~recoworld.llm.base.ChatModel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, OPEN_LOW_UNIT, check_number

#: The seeds a request may carry: llama.cpp takes a uint32.
SEED_LIMIT = 2**32
#: The seed llama.cpp reads as "draw a seed at random" (``LLAMA_DEFAULT_SEED``), embedded or
#: behind ``llama-server`` or ``llama_cpp.server``; :meth:`ChatRequest.sampling` passes it on as
#: the seed below it, so that a request seeded with it replays on every backend.
RANDOM_SEED = SEED_LIMIT - 1

#: A chat message as the OpenAI API spells it: ``{"role": "user", "content": "..."}``.
Message = dict[str, str]


@dataclass(frozen=True)
class ChatRequest:
    """One conversation to complete, optionally with a structured reply.

    Attributes:
        messages: the conversation, oldest first. A plain string is one user message.
        schema: a pydantic model the reply must validate against; ``None`` for free text.
        temperature: sampling temperature, a finite number >= 0; ``0`` is greedy decoding.
        max_tokens: most tokens to generate, an integer >= 1. Also the worst case the
            budget reserves.
        top_p: nucleus sampling mass in (0, 1]; ``None`` leaves the backend's default.
        seed: sampling seed, an integer in ``[0, 2**32)`` (llama.cpp takes a uint32), for
            backends that honour one. Every backend samples ``2**32 - 1`` (:data:`RANDOM_SEED`,
            which llama.cpp reads as "draw one at random") as ``2**32 - 2``: the two seeds
            give the same first reply, and share its cache entry.
        stop: strings that end the generation; a single string is one stop string.
    """

    messages: tuple[Message, ...] | list[Message] | str
    schema: type[BaseModel] | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None

    def __post_init__(self):
        messages = self.messages
        if isinstance(messages, str):
            messages = ({"role": "user", "content": messages},)
        messages = tuple(dict(m) for m in messages)
        if not messages:
            raise ValueError("ChatRequest.messages is empty; give at least one message")
        for i, m in enumerate(messages):
            if "role" not in m or "content" not in m:
                raise ValueError(f"messages[{i}] = {m!r} needs a 'role' and a 'content'")
        object.__setattr__(self, "messages", messages)
        if self.stop is not None:
            # tuple("END") would be ("E", "N", "D"): every E, N or D would end the reply.
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            bad = [s for s in stop if not isinstance(s, str) or not s]
            if bad:
                raise ValueError(f"stop={self.stop!r} holds {bad[0]!r}; give non-empty strings")
            object.__setattr__(self, "stop", stop)
        if self.schema is not None and not (isinstance(self.schema, type) and issubclass(self.schema, BaseModel)):
            raise TypeError(f"schema={self.schema!r} is not a pydantic BaseModel subclass")
        # Checked here, once for every backend: a NaN temperature or a float max_tokens would
        # otherwise reach a server (or a cache key) and fail there, or be sampled as given.
        for name, within, integer in (("max_tokens", AT_LEAST_ONE, True), ("temperature", NON_NEGATIVE, False),
                                      ("top_p", OPEN_LOW_UNIT, False), ("seed", NON_NEGATIVE, True)):
            value = getattr(self, name)
            if value is None and name in ("top_p", "seed"):
                continue
            checked = check_number(None, name, value, within, integer=integer)
            if type(value) not in (int, float):  # numpy's scalars as Python's; 0 stays 0 (cache keys)
                object.__setattr__(self, name, checked)
        if self.seed is not None and self.seed >= SEED_LIMIT:
            # Named here: a backend would refuse it, or wrap it to another seed.
            raise ValueError(f"seed={self.seed!r}: must be below {SEED_LIMIT} (2**32): llama.cpp takes a uint32 "
                             "seed; give a smaller one, e.g. seed % 2**32")

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters, as they enter the cache key and the backend call (the
        seed :data:`RANDOM_SEED` as the one below it)."""
        # Here, where every backend and the cache key read it: llama.cpp, embedded or behind a
        # server, would draw a seed of its own for this one, and no rerun would repeat the reply.
        seed = RANDOM_SEED - 1 if self.seed == RANDOM_SEED else self.seed
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": seed,
            "stop": list(self.stop) if self.stop else None,
        }


@dataclass(frozen=True)
class BackendCall:
    """One generation a backend is asked for: the request's sampling, the messages of this
    attempt (a repair attempt has extra messages) and the JSON schema to constrain to."""

    request: ChatRequest
    messages: tuple[Message, ...]
    json_schema: dict | None

    def sampling(self) -> dict[str, Any]:
        return self.request.sampling()


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one :class:`BackendCall`."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@dataclass
class ChatReply:
    """The answer to one :class:`ChatRequest`.

    Attributes:
        text: the final raw text of the model.
        parsed: the validated pydantic object when the request had a schema, else ``None``.
        raw_texts: every generation made, oldest first (more than one after repairs).
        prompt_tokens, completion_tokens: tokens over all its generations (cache hits count
            the tokens they cost when they were first made).
        latency_s: wall time spent in backend calls (0 for a full cache hit).
        cached: whether every generation came from the cache.
    """

    text: str
    parsed: BaseModel | None = None
    raw_texts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False

    @property
    def attempts(self) -> int:
        return len(self.raw_texts)
