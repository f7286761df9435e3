"""Any OpenAI-compatible chat endpoint through the ``openai`` SDK: OpenAI, vLLM, SGLang,
Ollama, llama.cpp's server (``llama-server`` or ``python -m llama_cpp.server``).

Servers disagree on how a JSON schema is passed for constrained decoding, so the way is a
setting (``structured_mode``):

================== =========================================================== ==========================
mode               request                                                     servers
================== =========================================================== ==========================
auto (default)     finds out, see below                                        any
json_schema        ``response_format={"type": "json_schema", "json_schema":    OpenAI, vLLM, SGLang,
                   {"name", "schema", "strict"}}``                             Ollama, llama-server
json_object_schema ``response_format={"type": "json_object", "schema": ...}``  llama_cpp.server (Python)
guided_json        ``extra_body={"guided_json": schema}``                      vLLM (older releases)
json_object        ``response_format={"type": "json_object"}`` (no schema)    most servers
none               nothing; the schema is only in the prompt                   any
================== =========================================================== ==========================

**auto** finds out once, on the model's first structured request, what the server accepts:
it tries ``json_schema``, then ``json_object_schema``, ``json_object`` and ``none``, moving
to the next mode when the server refuses the request with one of the statuses servers use
for a ``response_format`` they do not know (:data:`REFUSAL_STATUSES`: 400, 415, 422 and 501;
and 500 when its message names the structured outputs — ``response_format``, a schema, a
grammar — as llama.cpp's Python server answers a ``response_format`` it does not know). The
first mode that gives a reply is kept for every later request, and a log line names it (a
warning names each refusal). Any other error — a 500 such as "out of memory", a 503, a lost
connection — is the server's, not the mode's: it is retried under the retry policy in the
same mode, and the modes refused before it stay refused for the model's life, so a retry
does not ask them again. When even ``none`` is refused, the fault is not the
``response_format`` (a prompt too long for the model is refused in every mode): the error
is reported as it is, the refusals of that search are forgotten, and the next request finds
out again. Requests that wait for another's finding out wait before their ``timeout_s``
starts, which limits each one's own call. An explicit mode is used as given.

**Several servers.** ``base_url`` may name several servers of the same model (a list, or
URLs separated by commas): requests go to the one with the fewest in flight, and a server
that fails is left out for a backoff and health-checked before it is used again
(:mod:`recoworld.llm.server_pool`). With one server nothing is left out: the retries'
backoff is that server's.

**Concurrency.** ``max_concurrency`` defaults to :data:`REQUESTS_PER_SERVER` per server.
vLLM (and SGLang) batch every request in flight continuously, up to their
``--max-num-seqs``, so a server needs many requests at once to fill its batch; a few would
leave the GPU idle between steps. Raise it toward the server's ``--max-num-seqs`` on a
large GPU; lower it for a hosted API that limits the request rate (its 429s are retried).

Whatever the mode, replies are validated and repaired by :class:`~recoworld.llm.base.ChatModel`.
The SDK's own retries are off: backoff, and its accounting, happen in the base class.

A server that answers something other than a JSON chat completion — an HTML page from a
``base_url`` that points at a web UI, plain text, JSON of another shape — gives
:class:`~recoworld.llm.errors.NotAChatCompletion`, naming the URL and the content type it
sent; a body cut short is a transient error, retried. Every error names the server's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import weakref

from recoworld.llm.accounting import CHARS_PER_TOKEN, estimate_prompt_tokens
from recoworld.llm.base import ChatModel
from recoworld.llm.errors import (
    BackendErrorSummary,
    NotAChatCompletion,
    TransientBackendError,
)
from recoworld.llm.server_pool import (
    SERVER_DOWN_STATUSES,
    Server,
    ServerPool,
    server_urls,
)
from recoworld.llm.types import BackendCall, Completion

logger = logging.getLogger("recoworld.llm")

STRUCTURED_MODES = ("auto", "json_schema", "json_object_schema", "guided_json", "json_object", "none")
#: The modes ``auto`` tries, in order: the strongest constraint first.
AUTO_MODES = ("json_schema", "json_object_schema", "json_object", "none")
#: HTTP statuses with which servers refuse a ``response_format`` they do not support (a 500
#: only when :data:`NAMES_STRUCTURED_OUTPUTS` finds its message naming them).
REFUSAL_STATUSES = frozenset({400, 415, 422, 500, 501})
#: What the message of a 500 refusing structured outputs names (llama_cpp.server's is its
#: request validation error: ``response_format.type  Input should be 'text' or 'json_object'``).
NAMES_STRUCTURED_OUTPUTS = re.compile(r"response_format|schema|grammar|guided", re.IGNORECASE)
#: The endpoint used when neither ``base_url`` nor the environment names one.
OPENAI_URL = "https://api.openai.com/v1"
#: Environment variables searched for a key, first match wins.
API_KEY_ENV = ("RECOWORLD_LLM_API_KEY", "OPENAI_API_KEY")
#: Environment variables searched for a base URL when none is given.
BASE_URL_ENV = ("RECOWORLD_LLM_BASE_URL", "OPENAI_BASE_URL")
#: Key sent to self-hosted servers that ask for none (the SDK refuses an empty one).
NO_KEY = "not-needed"
#: Default ``max_concurrency`` per server (module docstring, "Concurrency").
REQUESTS_PER_SERVER = 64
#: Longest wait for a health check's answer, in seconds.
HEALTH_CHECK_TIMEOUT_S = 10.0


def _first_env(names) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class OpenAIChatModel(ChatModel):
    """Chat through an OpenAI-compatible HTTP endpoint.

    Arguments:
        model: the model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B-Instruct"``).
        base_url: the endpoint, e.g. ``"http://localhost:8000/v1"``, or several servers of
            the model (a list, or URLs separated by commas); default from
            ``RECOWORLD_LLM_BASE_URL`` or ``OPENAI_BASE_URL``, else OpenAI's.
        api_key: the key, from a config; prefer ``api_key_env`` or the environment.
        api_key_env: the environment variable holding the key. Without it and ``api_key``:
            ``RECOWORLD_LLM_API_KEY``, then ``OPENAI_API_KEY``; a self-hosted ``base_url``
            may do without.
        structured_mode: how a schema is sent for constrained decoding (module docstring);
            ``"auto"`` finds out what the server supports.
        json_schema_strict: the ``strict`` flag of ``json_schema`` mode (OpenAI's strict
            mode wants ``additionalProperties: false`` everywhere, which pydantic omits).
        max_tokens_param: ``"max_tokens"``, or ``"max_completion_tokens"`` for OpenAI
            reasoning models.
        extra_body: extra JSON fields sent with every request (e.g. ``{"top_k": 20}`` for vLLM).
        **kwargs: the shared :class:`~recoworld.llm.base.ChatModel` arguments; ``timeout_s``
            defaults to 60 and ``max_concurrency`` to :data:`REQUESTS_PER_SERVER` per server.

    The key lives in the SDK client only: it is not in ``repr``, cache keys, metrics or log
    lines (messages are redacted).
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        structured_mode: str = "auto",
        json_schema_strict: bool = False,
        max_tokens_param: str = "max_tokens",
        extra_body: dict | None = None,
        model_id: str | None = None,
        **kwargs,
    ):
        if structured_mode not in STRUCTURED_MODES:
            raise ValueError(f"structured_mode={structured_mode!r}; choose one of {STRUCTURED_MODES}")
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ValueError(f"max_tokens_param={max_tokens_param!r}; use 'max_tokens' or 'max_completion_tokens'")
        base_url = base_url or _first_env(BASE_URL_ENV)
        urls = server_urls(base_url) if base_url else [OPENAI_URL]
        kwargs.setdefault("timeout_s", 60.0)
        kwargs.setdefault("max_concurrency", REQUESTS_PER_SERVER * len(urls))
        super().__init__(model_id=model_id or model, **kwargs)
        self.model = model
        #: The servers as given (``None``: OpenAI's); several are separated by commas.
        self.base_url = ",".join(urls) if base_url else None
        #: The servers requests are spread over; with one, nothing is ever left out.
        self.pool = ServerPool(urls, backoff_base_s=self.retry.base_delay_s, backoff_max_s=self.retry.max_delay_s)
        self.structured_mode = structured_mode
        self.json_schema_strict = json_schema_strict
        self.max_tokens_param = max_tokens_param
        self.extra_body = dict(extra_body or {})
        self._api_key = self._resolve_key(api_key, api_key_env)
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._discovery_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        #: The mode in use: ``structured_mode``, or what ``auto`` found (``None`` until then).
        self.mode_in_use: str | None = None if structured_mode == "auto" else structured_mode
        #: The modes ``auto`` found refused, with the HTTP status: never asked again.
        self.refused_modes: dict[str, int] = {}
        self._warned_usage = False  # a reply without token counts has been logged

    @property
    def url(self) -> str:
        """The chat completions endpoint, as errors name it (the first server's of a pool)."""
        return _endpoint(self.pool.servers[0].base_url)

    def _resolve_key(self, api_key: str | None, api_key_env: str | None) -> str:
        if api_key:
            return api_key
        if api_key_env:
            if not os.environ.get(api_key_env):
                raise ValueError(f"api_key_env={api_key_env!r} but that environment variable is not set")
            return os.environ[api_key_env]
        key = _first_env(API_KEY_ENV)
        if key:
            return key
        if self.base_url:
            return NO_KEY
        raise ValueError(
            f"no API key for {self.model!r}: set {' or '.join(API_KEY_ENV)} in the environment, name another "
            "variable with api_key_env=, or give base_url= for a self-hosted server that needs no key"
        )

    def cache_identity(self) -> dict:
        return {
            "backend": self.backend,
            "model": self.model_id,
            "structured_mode": self.structured_mode,
            "extra_body": self.extra_body,
        }

    def _client(self, base_url: str):
        import openai

        clients = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = clients.get(base_url)
        if client is None:
            client = clients[base_url] = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=base_url, max_retries=0, timeout=self.timeout_s)
        return client

    def _structured_args(self, json_schema: dict | None, mode: str) -> dict:
        if json_schema is None or mode == "none":
            return {}
        if mode == "json_schema":
            name = re.sub(r"[^a-zA-Z0-9_-]", "_", json_schema.get("title", "reply"))[:64]
            return {"response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": json_schema, "strict": self.json_schema_strict},
            }}
        if mode == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": json_schema}}
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {"extra_body": {"guided_json": json_schema}}

    @contextlib.asynccontextmanager
    async def _generation_turn(self, batch: list[BackendCall]):
        """Before the timer starts: the clients of this event loop are made (the first one
        imports ``openai``, which takes a while, and neither counts as the generation's
        latency nor eats its ``timeout_s``). While ``auto`` has not found the mode, a
        structured call waits, untimed, for the request finding it out, and finds it out
        itself if that one failed: it then holds the discovery lock, so the next ones wait
        for it in turn."""
        for server in self.pool.servers:
            self._client(server.base_url)
        (call,) = batch
        finding_out = False
        if call.json_schema is not None and self.mode_in_use is None:
            lock = self._discovery_lock()
            await lock.acquire()
            finding_out = self.mode_in_use is None
            if not finding_out:
                lock.release()  # found while this request waited: it uses that mode
        try:
            yield
        finally:
            if finding_out:
                lock.release()

    async def _generate(self, calls: list[BackendCall]) -> list[Completion]:
        (call,) = calls
        if call.json_schema is None:
            return [await self._complete(call, "none")]
        if self.mode_in_use is None:  # this call holds the discovery lock (_generation_turn)
            return [await self._discover_mode(call)]
        return [await self._complete(call, self.mode_in_use)]

    def _discovery_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._discovery_locks.get(loop)
        if lock is None:
            lock = self._discovery_locks[loop] = asyncio.Lock()
        return lock

    async def _discover_mode(self, call: BackendCall) -> Completion:
        """``call`` made in each of :data:`AUTO_MODES` not refused yet until the server
        accepts one, which becomes :attr:`mode_in_use` (module docstring)."""
        import openai

        found = {}
        try:
            for mode in (m for m in AUTO_MODES if m not in self.refused_modes):
                try:
                    completion = await self._complete(call, mode)
                except openai.APIStatusError as exc:
                    if not _refuses_structured_outputs(exc):
                        raise  # the server's error, retried in this mode: what it refused so far stays refused
                    if mode == AUTO_MODES[-1]:
                        found.clear()  # refused without a response_format too: the refusals were not about it
                        raise
                    found[mode] = exc.status_code
                    logger.warning(self._redact(f"{self.url} answered HTTP {exc.status_code} to structured outputs "
                                                f"in mode {mode!r} ({_short(exc.message)}); trying the next mode"))
                    continue
                self.mode_in_use = mode
                refused = {**self.refused_modes, **found}
                logger.info(f"{self.url}: structured outputs in mode {mode!r}"
                            + (f" (refused: {', '.join(f'{m} (HTTP {s})' for m, s in refused.items())})"
                               if refused else ""))
                return completion
        finally:
            self.refused_modes.update(found)
        raise AssertionError("unreachable")

    async def _complete(self, call: BackendCall, mode: str) -> Completion:
        """One chat completion of ``call`` with the structured outputs of ``mode``."""
        s = call.sampling()
        args = {"model": self.model, "messages": list(call.messages), "temperature": s["temperature"],
                self.max_tokens_param: s["max_tokens"]}
        for name in ("top_p", "seed", "stop"):
            if s[name] is not None:
                args[name] = s[name]
        structured = self._structured_args(call.json_schema, mode)
        extra_body = {**self.extra_body, **structured.pop("extra_body", {})}
        if extra_body:
            args["extra_body"] = extra_body
        async with self.pool.lease(self._health_check) as server:
            try:
                raw = await self._client(server.base_url).chat.completions.with_raw_response.create(
                    **args, **structured)
                response = raw.parse()
            except json.JSONDecodeError as e:
                # A declared JSON body that does not parse: cut short in transit, most likely.
                self._server_failed(server, e)
                raise TransientBackendError(f"the server at {_endpoint(server.base_url)} sent a JSON body that "
                                            f"does not parse ({e})") from None
            except BaseException as exc:  # CancelledError included: wait_for's timeout
                self._server_failed(server, exc)
                exc.recoworld_server = server.base_url  # errors name the server that failed
                raise
            self.pool.succeeded(server)
        content_type = raw.headers.get("content-type", "(none)")
        choices = getattr(response, "choices", None)
        if isinstance(response, str) or not choices or getattr(choices[0], "message", None) is None:
            body = response if isinstance(response, str) else raw.http_response.text
            raise NotAChatCompletion(self._redact(
                f"the server at {_endpoint(server.base_url)} answered HTTP {raw.status_code} with content type {content_type!r}, "
                f"not an OpenAI-compatible chat completion (body starts {body[:120]!r}); check llm.base_url "
                "(an OpenAI-compatible server's usually ends in /v1)"))
        choice = choices[0]
        text = choice.message.content or ""
        prompt_tokens, completion_tokens = self._token_counts(response, call, text, server)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          finish_reason=choice.finish_reason)

    def _token_counts(self, response, call: BackendCall, text: str, server: Server) -> tuple[int, int]:
        """The prompt and completion tokens ``response`` reports (whole numbers, as some
        servers send them as floats). One count that is missing (no ``usage``, or a field
        missing or null, as some servers send) is ``total_tokens`` less the other where the
        total is given; a count that is still missing is estimated from the text (the
        completion's from the reply, the prompt's as the total less that where a total is
        given), so that token and cost budgets still bind, and counted in the accounting's
        ``llm_usage_estimates`` (logged once per model, naming the fields missing)."""
        usage = getattr(response, "usage", None)
        prompt, completion, total = (_token_count(getattr(usage, name, None))
                                     for name in ("prompt_tokens", "completion_tokens", "total_tokens"))
        if total is not None and (prompt is None) != (completion is None):  # one missing: the total less the other
            derived = total - (completion if prompt is None else prompt)
            if derived < 0:  # a total below the other count: not one to derive from
                total = None
            elif prompt is None:
                prompt = derived
            else:
                completion = derived
        if prompt is not None and completion is not None:
            return prompt, completion
        self.accounting.count("usage_estimates")
        if not self._warned_usage:
            self._warned_usage = True
            missing = " and ".join(name for name, n in (("prompt_tokens", prompt), ("completion_tokens", completion))
                                   if n is None)
            logger.warning(self._redact(
                f"the server at {_endpoint(server.base_url)} sent a reply without {missing} in its usage "
                f"({_short(str(usage))}); tokens and cost are estimated from the text at "
                f"{CHARS_PER_TOKEN} characters a token, counted in llm_usage_estimates"))
        if completion is None:
            completion = -(-len(text) // CHARS_PER_TOKEN)
        if prompt is None:
            prompt = max(total - completion, 0) if total is not None else estimate_prompt_tokens(call)
        return prompt, completion

    def _server_failed(self, server: Server, exc: BaseException) -> None:
        """Leave ``server`` out when ``exc`` says it is away or overloaded (a pool of one
        is never left out: there is nowhere else to go, and the retries back off)."""
        import openai

        if len(self.pool.servers) == 1:
            return
        status = getattr(exc, "status_code", None)
        away = isinstance(exc, (openai.APIConnectionError, asyncio.CancelledError, TimeoutError, json.JSONDecodeError))
        if not away and status not in SERVER_DOWN_STATUSES:
            self.pool.succeeded(server)  # it answered: the fault is the request's
            return
        self.pool.failed(server, self._redact(f"{type(exc).__name__}: {_short(str(exc))}"), _retry_after_s(exc))

    async def _health_check(self, server: Server) -> None:
        """Raise unless ``server`` answers ``GET /models`` (any answer but 429 or a 5xx)."""
        import openai

        try:
            await self._client(server.base_url).with_options(
                timeout=min(HEALTH_CHECK_TIMEOUT_S, self.timeout_s or HEALTH_CHECK_TIMEOUT_S)).models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in SERVER_DOWN_STATUSES or exc.status_code >= 500:
                raise

    def _translate_error(self, exc: BaseException) -> BaseException:
        import openai

        # A timeout is asyncio's TimeoutError raised from the request's cancellation, which
        # names the server that hung.
        server = getattr(exc, "recoworld_server", None) or getattr(exc.__cause__, "recoworld_server", None)
        url = _endpoint(server or self.pool.servers[0].base_url)
        if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
            return TransientBackendError(f"no reply from {url} within timeout_s={self.timeout_s}")
        if isinstance(exc, openai.APIConnectionError):
            detail = exc.__cause__ or "no detail"
            return TransientBackendError(self._redact(f"cannot reach {url}: {exc} ({detail})"))
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            # 429 "insufficient_quota" is a billing state, not a rate limit: retrying won't help.
            if (code == 429 and getattr(exc, "code", None) != "insufficient_quota") or code >= 500 or code == 408:
                return TransientBackendError(self._redact(f"HTTP {code} from {url}: {exc}"), status_code=code,
                                             retry_after_s=_retry_after_s(exc))
            return BackendErrorSummary(type(exc).__name__, self._redact(f"HTTP {code} from {url}: {exc}"),
                                       status_code=code)
        return super()._translate_error(exc)

    def _failure_hint(self, exc: BaseException) -> str:
        code = getattr(exc, "status_code", None)
        where = f"llm.base_url={self.base_url or OPENAI_URL}"
        if isinstance(exc, NotAChatCompletion):
            return f"check {where}: it must be an OpenAI-compatible API, usually ending in /v1"
        if code in (401, 403):
            return (f"the server refused the API key: set it in {' or '.join(API_KEY_ENV)}, or name its variable "
                    "with llm.api_key_env")
        if code == 404:
            return f"check {where} (it usually ends in /v1) and llm.model={self.model!r} (the server's model name)"
        if code == 429:
            return "the server limits the request rate: lower llm.max_concurrency or raise llm.max_retries"
        if code is not None and code >= 500:
            fix = f"the server at {self.url} failed (HTTP {code}): read its log"
            if self.structured_mode != "auto" and code in REFUSAL_STATUSES:
                fix += (f"; if it refuses structured outputs, set llm.structured_mode=auto "
                        f"(it is {self.structured_mode})")
            return fix
        if code is None and isinstance(exc, TransientBackendError):
            return (f"check that an OpenAI-compatible server is running at {self.base_url or OPENAI_URL} "
                    f"(llm.base_url) and answers within llm.timeout_s={self.timeout_s}")
        return ""

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != NO_KEY:
            text = text.replace(self._api_key, "***")
        return text

    async def _aclose_backend(self) -> None:
        for client in self._clients.pop(asyncio.get_running_loop(), {}).values():
            await client.close()

    def __repr__(self) -> str:
        return (f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r}, "
                f"structured_mode={self.structured_mode!r}, mode_in_use={self.mode_in_use!r})")


def _refuses_structured_outputs(exc) -> bool:
    """Whether an ``openai.APIStatusError`` refuses the request's structured outputs rather
    than failing on the server's side (module docstring)."""
    if exc.status_code not in REFUSAL_STATUSES:
        return False
    return exc.status_code != 500 or NAMES_STRUCTURED_OUTPUTS.search(str(exc.message)) is not None


def _retry_after_s(exc: BaseException) -> float | None:
    """The seconds of an HTTP error's ``Retry-After`` header, when it has one in seconds."""
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        return float(retry_after) if retry_after is not None else None
    except ValueError:
        return None


def _endpoint(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


def _token_count(value) -> int | None:
    """``value`` as a token count: a whole number >= 0 (an int, or a float such as 50.0);
    None for anything else (missing, null, negative, fractional, text)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
