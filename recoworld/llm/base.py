"""The :class:`ChatModel` interface: one way to ask any LLM backend for replies.

A backend implements a single coroutine, :meth:`ChatModel._generate`, that turns a batch of
:class:`~recoworld.llm.types.BackendCall` into completions. Everything else lives here and is
shared by every backend: the on-disk cache, the concurrency limit, timeouts, backoff on
transient errors, the budget, structured-output validation with repair turns, and accounting.

A batch of requests runs in *rounds*: round 1 makes every request's first generation
(cache first, then concurrently under the semaphore — or in batches, for backends that
generate several sequences at once); requests whose reply fails validation get a repair turn
in the next round, up to ``max_repairs`` times. Rounds keep batched backends batched and
make the cache replay a whole run, repairs included.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from recoworld.llm.accounting import Accounting, Budget, Pricing, UsageMark
from recoworld.llm.attempts import Attempts, Generated
from recoworld.llm.cache import ChatCache, cache_key
from recoworld.llm.errors import (
    BackendCallError, BackendErrorSummary, BudgetExceeded, ChatFailure, TransientBackendError,
)
from recoworld.llm.retry import RetryPolicy
from recoworld.llm.types import BackendCall, ChatReply, ChatRequest, Completion, Message

logger = logging.getLogger("recoworld.llm")

#: What ``chat``/``chat_many`` accept for one request.
RequestLike = ChatRequest | str | list[Message] | tuple[Message, ...]


class ChatModel(abc.ABC):
    """An LLM that answers chat requests, with or without a pydantic schema.

    Arguments (shared by every backend; keyword-only):
        model_id: the model's name in cache keys, logs and metrics.
        cache: a :class:`~recoworld.llm.cache.ChatCache`, or a path for one; ``None`` disables caching.
        budget: a :class:`~recoworld.llm.accounting.Budget`; the run raises
            :class:`~recoworld.llm.errors.BudgetExceeded` before a call that could exceed it.
        pricing: a :class:`~recoworld.llm.accounting.Pricing` to turn tokens into dollars.
        retry: a :class:`~recoworld.llm.retry.RetryPolicy` for transient errors (429, 5xx,
            connection errors, timeouts).
        max_concurrency: most backend calls in flight at once (per event loop).
        timeout_s: wall-clock limit of one backend call; ``None`` for no limit. What a call
            waits for before it starts (the concurrency limit, another request finding out
            what a server supports) does not count. An in-process generation (llama.cpp,
            ``transformers``) that overruns it stops, and is not retried: it would take as
            long again (:mod:`recoworld.llm.in_process`).
        max_repairs: repair turns after a reply that fails validation.
        repair_temperature: the least temperature of a repair turn, sampled with a seed
            derived from the request's (see :mod:`recoworld.llm.attempts`): a greedy repair
            mostly repeats the bad reply. ``0`` keeps greedy requests greedy in repairs.
        repair_shows_reply: whether a repair turn shows the model its bad reply (clipped)
            besides the exact error; small models copy a reply they are shown, errors and
            all, so the in-process llama.cpp backend (the embedded SmolLM2-135M) defaults to
            False.
        schema_in_prompt: append the JSON schema to the last user message of structured
            requests (models need the field meanings even under constrained decoding).
        sleep: the coroutine used to wait between retries (tests inject a fake one).
        seed: seed of the backoff jitter.

    Use ``chat``/``chat_many`` from synchronous code and ``achat``/``achat_many`` from
    coroutines. Failures of single requests raise (or, with ``return_exceptions=True``, are
    returned as) :class:`~recoworld.llm.errors.ChatFailure`; the accounting counts them.
    """

    backend: ClassVar[str] = "abstract"
    #: Most calls a backend generates in one ``_generate`` invocation.
    max_batch_size: int = 1

    def __init__(
        self,
        *,
        model_id: str,
        cache: ChatCache | str | Path | None = None,
        budget: Budget | None = None,
        pricing: Pricing | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        timeout_s: float | None = None,
        max_repairs: int = 2,
        repair_temperature: float = 0.7,
        repair_shows_reply: bool = True,
        schema_in_prompt: bool = True,
        sleep=None,
        seed: int = 0,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency}; it must be >= 1")
        if max_repairs < 0:
            raise ValueError(f"max_repairs={max_repairs}; it must be >= 0")
        if not repair_temperature >= 0:
            raise ValueError(f"repair_temperature={repair_temperature}; it must be >= 0 (0: greedy repairs)")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s}; it must be > 0 seconds, or None for no limit")
        self.model_id = model_id
        self._owns_cache = isinstance(cache, (str, Path))
        self.cache = ChatCache(cache) if self._owns_cache else cache
        self.accounting = Accounting(budget, pricing)
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_repairs = max_repairs
        self.repair_temperature, self.repair_shows_reply = repair_temperature, repair_shows_reply
        self.schema_in_prompt = schema_in_prompt
        self._sleep = sleep or asyncio.sleep
        self._jitter = random.Random(seed)
        self._semaphores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._loop_thread: _LoopThread | None = None
        self._loop_thread_lock = threading.Lock()

    # --- what a backend provides ----------------------------------------------------------

    @abc.abstractmethod
    async def _generate(self, calls: list[BackendCall]) -> list[Completion]:
        """One completion per call, in order. ``len(calls) <= self.max_batch_size``, and all
        calls of a batch share their sampling parameters. Raise
        :class:`~recoworld.llm.errors.TransientBackendError` (or an exception that
        :meth:`_translate_error` maps to it) for errors worth retrying."""

    def _generation_turn(self, batch: list[BackendCall]) -> contextlib.AbstractAsyncContextManager:
        """What a try of ``batch`` waits for before ``timeout_s`` starts, and holds while it
        runs: a turn that depends on other calls, not on this one (the OpenAI backend's: the
        end of another request's finding out of the structured mode). Default: none."""
        return contextlib.nullcontext()

    def cache_identity(self) -> dict:
        """What names this model's outputs in cache keys: never secrets, never addresses."""
        return {"backend": self.backend, "model": self.model_id}

    def _translate_error(self, exc: BaseException) -> BaseException:
        """Map a backend's exception to :class:`TransientBackendError` when worth retrying."""
        if isinstance(exc, TimeoutError):
            return TransientBackendError(f"no reply within timeout_s={self.timeout_s}")
        return exc

    def _redact(self, text: str) -> str:
        """``text`` with any secret of this backend masked (backends with keys override)."""
        return text

    async def _aclose_backend(self) -> None:
        """Release backend resources bound to the running event loop."""

    # --- public API -----------------------------------------------------------------------

    def chat(self, messages: RequestLike, schema: type[BaseModel] | None = None, **sampling) -> ChatReply:
        """Reply to one conversation; raises :class:`ChatFailure` when it cannot."""
        return self._run_sync(self.achat(messages, schema, **sampling))

    def chat_many(self, requests: Iterable[RequestLike], *, return_exceptions: bool = False) -> list:
        """Replies to many requests, in order, made concurrently. See :meth:`achat_many`."""
        return self._run_sync(self.achat_many(requests, return_exceptions=return_exceptions))

    async def achat(self, messages: RequestLike, schema: type[BaseModel] | None = None, **sampling) -> ChatReply:
        """Coroutine version of :meth:`chat`."""
        if isinstance(messages, ChatRequest):
            if schema is not None or sampling:
                raise TypeError("pass schema and sampling parameters inside the ChatRequest, not beside it")
            request = messages
        else:
            request = ChatRequest(messages, schema=schema, **sampling)
        (reply,) = await self.achat_many([request])
        return reply

    async def achat_many(self, requests: Iterable[RequestLike], *, return_exceptions: bool = False) -> list:
        """Replies to ``requests`` in their order.

        With ``return_exceptions=False`` the first :class:`ChatFailure` (in request order) is
        raised once every request has finished, so the successful ones are cached. With
        ``True`` failures take their request's place in the list. :class:`BudgetExceeded`
        always raises, after the calls in flight have finished.
        """
        requests = [r if isinstance(r, ChatRequest) else ChatRequest(r) for r in requests]
        self.accounting.count("requests", len(requests))
        attempts = [Attempts(r, self.schema_in_prompt, self.repair_temperature, self.repair_shows_reply)
                    for r in requests]
        results: list = [None] * len(requests)
        pending = list(range(len(requests)))
        budget_error = None
        while pending and budget_error is None:
            outcomes = await self._generate_round([attempts[i].next_call() for i in pending])
            still_pending = []
            for i, outcome in zip(pending, outcomes):
                if isinstance(outcome, BudgetExceeded):
                    budget_error = outcome
                elif isinstance(outcome, BaseException):
                    results[i] = self._backend_failure(attempts[i], outcome)
                elif attempts[i].take(outcome, max_repairs=self.max_repairs):
                    still_pending.append(i)
                    self.accounting.count("repairs")
                else:
                    results[i] = attempts[i].result()
                    self.accounting.count("replies" if isinstance(results[i], ChatReply) else "structured_failures")
            pending = still_pending
        if budget_error is not None:
            raise budget_error
        if not return_exceptions:
            for r in results:
                if isinstance(r, ChatFailure):
                    raise r
        return results

    def metrics(self, since: UsageMark | None = None) -> dict[str, float | int]:
        """Accounting counters, ready for ``metrics.json``; with ``since`` (from
        ``self.accounting.mark()``), only the use after that mark."""
        return self.accounting.as_dict(since)

    def close(self) -> None:
        """Release clients, the sync event-loop thread, and a cache this model opened."""
        with self._loop_thread_lock:
            if self._loop_thread is not None:
                try:  # bounded: the loop's thread may be held by a backend's synchronous call
                    self._loop_thread.run(self._aclose_backend(), timeout=CLOSE_WAIT_S)
                except concurrent.futures.TimeoutError:
                    logger.warning("the LLM backend did not close within %g s (its event loop is busy); closing "
                                   "the loop without it", CLOSE_WAIT_S)
                self._loop_thread.close()
                self._loop_thread = None
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    async def aclose(self) -> None:
        """Release backend resources bound to the running loop (for async users)."""
        await self._aclose_backend()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"

    # --- machinery ------------------------------------------------------------------------

    def _backend_failure(self, attempt: Attempts, exc: BaseException) -> BackendCallError:
        self.accounting.count("backend_failures")
        what = str(exc) if isinstance(exc, BackendErrorSummary) else f"{type(exc).__name__}: {exc}"
        failure = BackendCallError(
            self._redact(f"{self.model_id}: the backend failed after {attempt.n_generated} generation(s): {what}"),
            attempt.request, attempt.texts, attempt.n_generated,
            status_code=getattr(exc, "status_code", None), hint=self._failure_hint(exc),
        )
        # A summary, not the exception: an SDK's exception holds the request and its API key.
        failure.__cause__ = exc if isinstance(exc, BackendErrorSummary) else BackendErrorSummary(
            type(exc).__name__, self._redact(str(exc)), getattr(exc, "status_code", None))
        return failure

    def _failure_hint(self, exc: BaseException) -> str:
        """What to check after the backend failed with ``exc`` (backends name their settings)."""
        return ""

    async def _generate_round(self, calls: list[BackendCall]) -> list:
        """A completion (or the exception) per call: cache hits first, the rest generated in
        batches of equal sampling parameters, concurrently under the semaphore."""
        outcomes: list = [None] * len(calls)
        identity = self.cache_identity()
        keys = [cache_key(identity, c) for c in calls] if self.cache is not None else [None] * len(calls)
        misses = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                outcomes[i] = Generated(hit, cached=True, latency_s=0.0)
                self.accounting.count("cache_hits")
            else:
                misses.append(i)

        async def run(batch: list[int]):
            try:
                completions, latency_s = await self._call_backend([calls[i] for i in batch])
            except Exception as exc:  # noqa: BLE001 - handed back to the requests it belongs to
                for i in batch:
                    outcomes[i] = exc
                return
            for i, completion in zip(batch, completions):
                outcomes[i] = Generated(completion, cached=False, latency_s=latency_s)
                if keys[i] is not None:
                    self.cache.put(keys[i], completion)

        await asyncio.gather(*(run(b) for b in self._batches(misses, calls)))
        return outcomes

    def _batches(self, indices: list[int], calls: list[BackendCall]) -> list[list[int]]:
        if self.max_batch_size == 1:
            return [[i] for i in indices]
        groups: dict[str, list[int]] = {}
        for i in indices:
            groups.setdefault(json.dumps(calls[i].sampling(), sort_keys=True), []).append(i)
        return [g[s : s + self.max_batch_size] for g in groups.values() for s in range(0, len(g), self.max_batch_size)]

    async def _call_backend(self, batch: list[BackendCall]) -> tuple[list[Completion], float]:
        """One backend invocation under the semaphore, the budget, the timeout and retries."""
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        async with semaphore:
            reservation = self.accounting.reserve(batch)
            try:
                for retry in range(self.retry.max_retries + 1):
                    try:
                        async with self._generation_turn(batch):
                            start = time.perf_counter()
                            if self.timeout_s is None:
                                completions = await self._generate(batch)
                            else:
                                completions = await asyncio.wait_for(self._generate(batch), self.timeout_s)
                    except Exception as raw:
                        exc = self._translate_error(raw)
                        if not isinstance(exc, TransientBackendError) or retry == self.retry.max_retries:
                            if exc is raw:
                                raise
                            # The translation's message says what `raw` said, redacted; `raw`
                            # itself may hold the request and its key, so it is not chained.
                            raise exc from None
                        delay = self.retry.delay_s(retry + 1, self._jitter, exc.retry_after_s)
                        self.accounting.count("retries")
                        logger.warning(self._redact(f"{self.model_id}: {exc}; retry {retry + 1}/"
                                                    f"{self.retry.max_retries} in {delay:.2f}s"))
                        await self._sleep(delay)
                        continue
                    latency_s = time.perf_counter() - start
                    if len(completions) != len(batch):
                        raise RuntimeError(f"{type(self).__name__}._generate returned {len(completions)} "
                                           f"completions for {len(batch)} calls")
                    for c in completions:
                        self.accounting.record_call(c.prompt_tokens, c.completion_tokens, latency_s)
                    return completions, latency_s
            finally:
                self.accounting.release(reservation)
        raise AssertionError("unreachable")

    def _run_sync(self, coroutine):
        with self._loop_thread_lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            runner = self._loop_thread
        return runner.run(coroutine)


class _LoopThread:
    """A private event loop on a daemon thread, so that synchronous callers (from any thread,
    or from inside someone else's running loop) share one loop and its clients."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="recoworld-llm", daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float | None = None):
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout=timeout)
        except BaseException:
            # Interrupted while waiting (Ctrl-C, or a kill that recoworld run turns into one):
            # the calls would go on, spending the budget, on the loop's thread. Done, it is a no-op.
            future.cancel()
            raise

    def close(self):
        # A task still pending when the loop closes is destroyed with asyncio's "Task was
        # destroyed but it is pending!" on stderr: end them first, for CLOSE_WAIT_S at most.
        ending = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(CLOSE_WAIT_S), self.loop)
        try:
            left = ending.result(timeout=CLOSE_WAIT_S + 1.0)  # + 1: the loop's own wait ends first
        except concurrent.futures.TimeoutError:  # the loop's thread is blocked (a backend's synchronous call)
            left = ["(the loop's thread is blocked)"]
        if left:
            logger.warning("closing the LLM event loop with %d call(s) still running %g s after they were "
                           "cancelled (a backend that does not end on cancellation): %s", len(left), CLOSE_WAIT_S,
                           ", ".join(map(str, left)))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=CLOSE_WAIT_S)
        if not self.thread.is_alive():  # a loop still running cannot be closed: the daemon thread keeps it
            self.loop.close()


#: Seconds :meth:`_LoopThread.close` waits for the calls it cancels to end: a backend that
#: swallows its ``CancelledError`` (a retry loop of its own) would otherwise hold ``close()``,
#: and the ``recoworld run`` it ends, for ever; past it the loop stops with a warning.
CLOSE_WAIT_S = 5.0


async def _cancel_other_tasks(wait_s: float) -> list[str]:
    """Cancel the running loop's tasks but this one (calls an interrupt left running), wait
    up to ``wait_s`` seconds until each has ended, and name those that have not."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=wait_s)
    return [task.get_name() for task in pending]
