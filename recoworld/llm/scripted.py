"""A ChatModel that replays scripted replies: a stand-in for a real LLM in tests and demos.

It exercises everything a real backend goes through — cache, budget, retries, repairs,
accounting — without a model. Each script entry is either the text of the next generation or
an exception to raise in its place (e.g. ``TransientBackendError("429", status_code=429)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from recoworld.llm.base import ChatModel
from recoworld.llm.types import BackendCall, Completion


class ScriptedChatModel(ChatModel):
    """Replies from a script, in the order generations are made.

    Arguments:
        script: texts or exceptions, consumed one per generation; or a function
            ``call -> text`` that answers any call.
        delay_s: simulated latency of each generation.
        **kwargs: the shared :class:`~recoworld.llm.base.ChatModel` arguments.

    ``calls`` records every :class:`~recoworld.llm.types.BackendCall` that reached it.
    Token counts are words, so budgets and accounting have something to count.
    """

    backend = "scripted"

    def __init__(
        self,
        script: Iterable[str | BaseException] | Callable[[BackendCall], str],
        *,
        model_id: str = "scripted",
        delay_s: float = 0.0,
        **kwargs,
    ):
        super().__init__(model_id=model_id, **kwargs)
        self._answer = script if callable(script) else None
        self._script = None if callable(script) else list(script)
        self.delay_s = delay_s
        self.calls: list[BackendCall] = []

    async def _generate(self, calls: list[BackendCall]) -> list[Completion]:
        out = []
        for call in calls:
            self.calls.append(call)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self._answer is not None:
                text = self._answer(call)
            elif not self._script:
                raise RuntimeError(f"ScriptedChatModel ran out of script at call {len(self.calls)}")
            else:
                text = self._script.pop(0)
            if isinstance(text, BaseException):
                raise text
            prompt_words = sum(len(m["content"].split()) for m in call.messages)
            out.append(Completion(text, prompt_words, len(text.split()), "stop"))
        return out
