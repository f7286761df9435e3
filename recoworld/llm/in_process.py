"""What the in-process backends (llama.cpp, ``transformers``) share: one generation at a time,
in a worker thread, that stops when its caller stops waiting for it.

A generation runs in a thread (``asyncio.to_thread``) under the model's lock, since a model's
context serves one generation at a time. A caller stops waiting when ``timeout_s`` runs out
or its task is cancelled; a thread cannot be killed, so the generation learns it from a
:class:`threading.Event`: one still queued for the lock is skipped, and one running stops at
its backend's next check (llama.cpp: before the next token, or within the prompt's
evaluation; ``transformers``: after the current token), which raises
:class:`GenerationAbandoned`. Left running, it would hold the lock up to its ``max_tokens``,
and every later request would spend its own ``timeout_s`` queued behind it.

A timeout is not retried here, unlike a server's: an in-process generation's time is set by
its prompt, its ``max_tokens`` and this machine, so the same call would take as long again,
and each retry would cost a whole generation's compute for nothing. The failure's hint names
the settings to change.
"""

from __future__ import annotations

import abc
import asyncio
import threading

from recoworld.llm.base import ChatModel
from recoworld.llm.errors import LOWER_MAX_TOKENS, BackendErrorSummary
from recoworld.llm.types import BackendCall, Completion


class GenerationAbandoned(Exception):
    """Raised in a worker thread to stop a generation whose caller stopped waiting; nobody
    awaits that thread any more, so no caller ever sees it."""


class InProcessChatModel(ChatModel):
    """A :class:`~recoworld.llm.base.ChatModel` that generates in this process (module
    docstring). A subclass implements :meth:`_generate_locked` and stops a running generation
    when :meth:`_abandoned` turns true."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lock = threading.Lock()  # a model's context serves one generation at a time
        self._current: threading.Event | None = None  # set when the running generation's caller gave up

    @abc.abstractmethod
    def _generate_locked(self, calls: list[BackendCall]) -> list[Completion]:
        """The completions of ``calls``, made in the calling thread, under the model's lock."""

    async def _generate(self, calls: list[BackendCall]) -> list[Completion]:
        gave_up = threading.Event()
        try:
            return await asyncio.to_thread(self._generate_in_turn, calls, gave_up)
        finally:
            gave_up.set()  # a reply, a timeout or a cancellation: nobody waits for this generation any more

    def _generate_in_turn(self, calls: list[BackendCall], gave_up: threading.Event) -> list[Completion]:
        with self._lock:
            if gave_up.is_set():
                raise GenerationAbandoned("skipped: its caller stopped waiting while it queued for the model")
            self._current = gave_up
            try:
                return self._generate_locked(calls)
            finally:
                self._current = None

    def _abandoned(self) -> bool:
        """Whether the caller of the generation running now has stopped waiting for it
        (called from the generation's own thread, between tokens)."""
        current = self._current
        return current is not None and current.is_set()

    def _translate_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, TimeoutError):  # not transient here (module docstring): not retried
            return BackendErrorSummary("TimeoutError", f"the generation took longer than timeout_s={self.timeout_s} "
                                                       "and was stopped")
        return super()._translate_error(exc)

    def _failure_hint(self, exc: BaseException) -> str:
        if getattr(exc, "error_type", None) == "TimeoutError":
            return (f"raise llm.timeout_s (now {self.timeout_s}), or {LOWER_MAX_TOKENS}; an in-process generation "
                    "that runs out of time is not retried, since it would take as long again")
        return super()._failure_hint(exc)
