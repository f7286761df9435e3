"""The LLM layer: one :class:`ChatModel` interface over OpenAI-compatible endpoints,
in-process llama.cpp (GGUF) and local ``transformers`` models.

Structured replies are validated against pydantic models and repaired, never guessed; calls
are cached on disk, run concurrently under a limit, retried with backoff, held to a budget
and accounted. Backends import their heavy dependencies (``openai``, ``llama_cpp``,
``transformers``) only when built.

    from recoworld.llm import ChatRequest, make_chat_model

    llm = make_chat_model(backend="openai", model="Qwen/Qwen2.5-7B-Instruct",
                          base_url="http://localhost:8000/v1", cache_dir="runs/llm_cache")
    reply = llm.chat("Click or skip 'Heat (1995)'?", schema=Decision)
    replies = llm.chat_many([ChatRequest(m, schema=Decision) for m in prompts])
    metrics.update(llm.metrics())

Item text enters prompts as data (:mod:`recoworld.llm.prompt_data`: JSON inside ``<data>``).
"""

from recoworld.llm.accounting import Accounting, Budget, Pricing, UsageMark
from recoworld.llm.base import ChatModel
from recoworld.llm.cache import ChatCache
from recoworld.llm.embedded import default_gguf_path
from recoworld.llm.errors import (
    BackendCallError,
    BackendErrorSummary,
    BudgetExceeded,
    ChatCacheError,
    ChatFailure,
    LLMError,
    NotAChatCompletion,
    StructuredOutputError,
    TransientBackendError,
)
from recoworld.llm.factory import LLMConfig, make_chat_model
from recoworld.llm.prompt_data import DATA_RULE, as_data, data_block, outside_data, read_data
from recoworld.llm.retry import RetryPolicy
from recoworld.llm.scripted import ScriptedChatModel
from recoworld.llm.types import BackendCall, ChatReply, ChatRequest, Completion

__all__ = [
    "Accounting",
    "BackendCall",
    "BackendCallError",
    "BackendErrorSummary",
    "Budget",
    "BudgetExceeded",
    "ChatCache",
    "ChatCacheError",
    "ChatFailure",
    "ChatModel",
    "ChatReply",
    "ChatRequest",
    "Completion",
    "DATA_RULE",
    "LLMConfig",
    "LLMError",
    "NotAChatCompletion",
    "Pricing",
    "RetryPolicy",
    "ScriptedChatModel",
    "StructuredOutputError",
    "TransientBackendError",
    "UsageMark",
    "as_data",
    "data_block",
    "default_gguf_path",
    "make_chat_model",
    "outside_data",
    "read_data",
]


def __getattr__(name):
    # Backend classes on demand, so that `import recoworld.llm` stays free of heavy imports.
    lazy = {
        "OpenAIChatModel": "recoworld.llm.openai_backend",
        "LlamaCppChatModel": "recoworld.llm.llama_cpp_backend",
        "TransformersChatModel": "recoworld.llm.transformers_backend",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'recoworld.llm' has no attribute {name!r}")
