"""One request's way through :class:`~recoworld.llm.base.ChatModel`'s rounds: the
generations made so far, the validation of structured replies, and the repair turn that
follows a reply that fails it.

A repair turn is sampled, not greedy: a model decoding greedily answers the repair prompt
(its bad reply, the exact error, a request to correct it) with the same tokens as often as
not, and the turn is wasted (a small model copies its bad reply even when sampled, unless
the turn leaves it out: ``repair_shows_reply``). Repair ``n`` of a request samples at
``max(request.temperature, repair_temperature)`` with the seed :func:`repair_seed` derives
from the request's own seed, ``n`` and the conversation so far, so a seeded run replays its
repairs (on backends that honour seeds: llama.cpp, vLLM, transformers), the cache serves
them, and identical conversations get identical repairs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from pydantic import BaseModel

from recoworld.llm.errors import StructuredOutputError
from recoworld.llm.structured import json_schema_of, parse_reply, repair_messages, with_schema_instruction
from recoworld.llm.types import BackendCall, ChatReply, ChatRequest, Completion


class Generated:
    """A completion with where it came from."""

    __slots__ = ("cached", "completion", "latency_s")

    def __init__(self, completion: Completion, cached: bool, latency_s: float):
        self.completion, self.cached, self.latency_s = completion, cached, latency_s


class Attempts:
    """The generations made for one request so far, and the conversation of the next one."""

    def __init__(self, request: ChatRequest, schema_in_prompt: bool, repair_temperature: float = 0.0,
                 repair_shows_reply: bool = True):
        self.request = request
        self.repair_temperature, self.repair_shows_reply = repair_temperature, repair_shows_reply
        self.json_schema = json_schema_of(request.schema) if request.schema is not None else None
        messages = request.messages
        if self.json_schema is not None and schema_in_prompt:
            messages = with_schema_instruction(messages, self.json_schema)
        self.messages = messages
        self.generated: list[Generated] = []
        self.errors: list[str] = []
        self.parsed: BaseModel | None = None
        #: Whether a reply that failed validation had been cut at ``max_tokens``.
        self.truncated = False

    @property
    def texts(self) -> list[str]:
        return [g.completion.text for g in self.generated]

    @property
    def n_generated(self) -> int:
        return len(self.generated)

    def next_call(self) -> BackendCall:
        """The next generation: the request itself, or a repair turn sampled as the module
        docstring says."""
        request, repair = self.request, len(self.errors)
        temperature = max(request.temperature, self.repair_temperature)
        if repair and temperature > 0:
            seed = repair_seed(request.seed, repair, self.messages)
            request = dataclasses.replace(request, temperature=temperature, seed=seed)
        return BackendCall(request, self.messages, self.json_schema)

    def take(self, generated: Generated, max_repairs: int) -> bool:
        """Record a generation; True when the request needs a repair turn."""
        self.generated.append(generated)
        if self.request.schema is None:
            return False
        text = generated.completion.text
        try:
            self.parsed = parse_reply(text, self.request.schema)
            return False
        except ValueError as e:
            error = str(e)
            if generated.completion.finish_reason == "length":
                # Cut short, not misunderstood: the repair turn asks for a shorter reply.
                self.truncated = True
                error += (f" (the reply was cut at max_tokens={self.request.max_tokens}: "
                          "finish it within that many tokens)")
            self.errors.append(error)
        if len(self.errors) > max_repairs:
            return False
        self.messages = repair_messages(self.messages, text, self.errors[-1], self.repair_shows_reply)
        return True

    def result(self) -> ChatReply | StructuredOutputError:
        texts = self.texts
        if self.request.schema is not None and self.parsed is None:
            return StructuredOutputError(
                f"no reply validated against {self.request.schema.__name__} after {len(texts)} attempt(s); "
                f"last error: {self.errors[-1]}; last reply: {texts[-1][:200]!r}",
                self.request, texts, self.errors, max_tokens=self.request.max_tokens if self.truncated else None,
            )
        return ChatReply(
            text=texts[-1],
            parsed=self.parsed,
            raw_texts=texts,
            prompt_tokens=sum(g.completion.prompt_tokens for g in self.generated),
            completion_tokens=sum(g.completion.completion_tokens for g in self.generated),
            latency_s=sum(g.latency_s for g in self.generated),
            cached=all(g.cached for g in self.generated),
        )


def repair_seed(seed: int | None, repair: int, messages) -> int:
    """The sampling seed of repair turn ``repair`` (from 1) of a request seeded ``seed``
    (``None`` for an unseeded one) whose conversation is now ``messages``: a fixed function
    of the three, in ``[0, 2**31)``. Distinct conversations get distinct seeds, so a backend
    that seeds a batch at once (transformers) never batches two of them together."""
    conversation = json.dumps([seed, repair, list(messages)], sort_keys=True)
    digest = hashlib.sha256(conversation.encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
