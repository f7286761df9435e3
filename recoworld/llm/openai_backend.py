"""Any OpenAI-compatible chat endpoint through the ``openai`` SDK: OpenAI, vLLM, SGLang,
Ollama, llama.cpp's server (``llama-server`` or ``python -m llama_cpp.server``).

Servers disagree on how a JSON schema is passed for constrained decoding, so the way is a
setting (``structured_mode``):

================== =========================================================== ==========================
mode               request                                                     servers
================== =========================================================== ==========================
json_schema        ``response_format={"type": "json_schema", "json_schema":    OpenAI, vLLM, SGLang,
                   {"name", "schema", "strict"}}``                             Ollama, llama-server
json_object_schema ``response_format={"type": "json_object", "schema": ...}``  llama_cpp.server (Python)
guided_json        ``extra_body={"guided_json": schema}``                      vLLM (older releases)
json_object        ``response_format={"type": "json_object"}`` (no schema)    most servers
none               nothing; the schema is only in the prompt                   any
================== =========================================================== ==========================

Whatever the mode, replies are validated and repaired by :class:`~recoworld.llm.base.ChatModel`.
The SDK's own retries are off: backoff, and its accounting, happen in the base class.
"""

from __future__ import annotations

import os
import re
import weakref

from recoworld.llm.base import ChatModel
from recoworld.llm.errors import TransientBackendError
from recoworld.llm.types import BackendCall, Completion

STRUCTURED_MODES = ("json_schema", "json_object_schema", "guided_json", "json_object", "none")
#: Environment variables searched for a key, first match wins.
API_KEY_ENV = ("RECOWORLD_LLM_API_KEY", "OPENAI_API_KEY")
#: Environment variables searched for a base URL when none is given.
BASE_URL_ENV = ("RECOWORLD_LLM_BASE_URL", "OPENAI_BASE_URL")
#: Key sent to self-hosted servers that ask for none (the SDK refuses an empty one).
NO_KEY = "not-needed"


def _first_env(names) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class OpenAIChatModel(ChatModel):
    """Chat through an OpenAI-compatible HTTP endpoint.

    Arguments:
        model: the model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B-Instruct"``).
        base_url: the endpoint, e.g. ``"http://localhost:8000/v1"``; default from
            ``RECOWORLD_LLM_BASE_URL`` or ``OPENAI_BASE_URL``, else OpenAI's.
        api_key: the key, from a config; prefer ``api_key_env`` or the environment.
        api_key_env: the environment variable holding the key. Without it and ``api_key``:
            ``RECOWORLD_LLM_API_KEY``, then ``OPENAI_API_KEY``; a self-hosted ``base_url``
            may do without.
        structured_mode: how a schema is sent for constrained decoding (module docstring).
        json_schema_strict: the ``strict`` flag of ``json_schema`` mode (OpenAI's strict
            mode wants ``additionalProperties: false`` everywhere, which pydantic omits).
        max_tokens_param: ``"max_tokens"``, or ``"max_completion_tokens"`` for OpenAI
            reasoning models.
        extra_body: extra JSON fields sent with every request (e.g. ``{"top_k": 20}`` for vLLM).
        **kwargs: the shared :class:`~recoworld.llm.base.ChatModel` arguments; ``timeout_s``
            defaults to 60 and ``max_concurrency`` to 8.

    The key lives in the SDK client only: it is not in ``repr``, cache keys, metrics or log
    lines (messages are redacted).
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        structured_mode: str = "json_schema",
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
        kwargs.setdefault("timeout_s", 60.0)
        super().__init__(model_id=model_id or model, **kwargs)
        self.model = model
        self.base_url = base_url or _first_env(BASE_URL_ENV)
        self.structured_mode = structured_mode
        self.json_schema_strict = json_schema_strict
        self.max_tokens_param = max_tokens_param
        self.extra_body = dict(extra_body or {})
        self._api_key = self._resolve_key(api_key, api_key_env)
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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

    def _client(self):
        import asyncio

        import openai

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
            )
            self._clients[loop] = client
        return client

    def _structured_args(self, json_schema: dict | None) -> dict:
        if json_schema is None or self.structured_mode == "none":
            return {}
        if self.structured_mode == "json_schema":
            name = re.sub(r"[^a-zA-Z0-9_-]", "_", json_schema.get("title", "reply"))[:64]
            return {"response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": json_schema, "strict": self.json_schema_strict},
            }}
        if self.structured_mode == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": json_schema}}
        if self.structured_mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {"extra_body": {"guided_json": json_schema}}

    async def _generate(self, calls: list[BackendCall]) -> list[Completion]:
        (call,) = calls
        s = call.sampling()
        args = {"model": self.model, "messages": list(call.messages), "temperature": s["temperature"],
                self.max_tokens_param: s["max_tokens"]}
        for name in ("top_p", "seed", "stop"):
            if s[name] is not None:
                args[name] = s[name]
        structured = self._structured_args(call.json_schema)
        extra_body = {**self.extra_body, **structured.pop("extra_body", {})}
        if extra_body:
            args["extra_body"] = extra_body
        response = await self._client().chat.completions.create(**args, **structured)
        choice = response.choices[0]
        usage = response.usage
        return [Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )]

    def _translate_error(self, exc: BaseException) -> BaseException:
        import openai

        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return TransientBackendError(self._redact(f"{type(exc).__name__}: {exc}"))
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            # 429 "insufficient_quota" is a billing state, not a rate limit: retrying won't help.
            if (code == 429 and getattr(exc, "code", None) != "insufficient_quota") or code >= 500 or code == 408:
                retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
                try:
                    retry_after_s = float(retry_after) if retry_after is not None else None
                except ValueError:
                    retry_after_s = None
                return TransientBackendError(self._redact(f"HTTP {code}: {exc}"), status_code=code,
                                             retry_after_s=retry_after_s)
            return exc
        return super()._translate_error(exc)

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != NO_KEY:
            text = text.replace(self._api_key, "***")
        return text

    async def _aclose_backend(self) -> None:
        import asyncio

        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def __repr__(self) -> str:
        return (f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r}, "
                f"structured_mode={self.structured_mode!r})")
