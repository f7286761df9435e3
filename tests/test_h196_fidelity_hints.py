"""``recoworld fidelity``'s fix for LLM users' failures names what its user can set: its own
``--llm KEY=VALUE`` fields, never ``recoworld run``'s simulator or agent keys, which it has
no flag for (a cut reply's ``max_tokens``, a too-long prompt's memory)."""

from __future__ import annotations

import re
from dataclasses import fields
from types import SimpleNamespace

import pytest

from recoworld.apps.fidelity.report import _fallback_message
from recoworld.llm import LLMConfig
from recoworld.llm.errors import StructuredOutputError
from recoworld.llm.llama_cpp_backend import LlamaCppChatModel
from recoworld.simulators.llm_shared import FallbackShareExceeded, LLMVoiceConfig, StepFailure


def cut_reply_hint() -> str:
    return StructuredOutputError("m: no valid reply", None, ['{"watch": ['], ["cut"], max_tokens=956).hint


def long_prompt_hint() -> str:
    exceeded = ValueError("Requested tokens (5000) exceed context window of 4096")
    return LlamaCppChatModel._failure_hint(SimpleNamespace(n_ctx=4096), exceeded)


def fidelity_fix(hint: str) -> str:
    error = FallbackShareExceeded(StepFailure(0, 7, 0, "boom", (), "fallback", hint), 3, 4,
                                  LLMVoiceConfig(max_fallback_share=0.05), "LLM user-steps")
    message = _fallback_message(error)
    return message[message.index("Fix: ") + 5:message.index(". To accept fallbacks")]


@pytest.mark.parametrize("hint, fix", [
    (cut_reply_hint, "the model's reply was cut at max_tokens=956 before its JSON was complete: the LLM users' limit "
                     "fits the longest reply their schema allows, so the model wrote past it: use a stronger model "
                     "(--llm model=NAME) or constrained decoding (--llm structured_mode=json_schema, with the openai "
                     "and llama_cpp backends)"),
    (long_prompt_hint, "the prompt and its reply do not fit the context window: raise --llm n_ctx=... (now 4096, at "
                       "most the model's own), or use a model with a longer context window (--llm model=NAME): the "
                       "prompt holds one user's persona and one list, with nothing remembered"),
])
def test_a_fix_in_run_keys_is_worded_in_fidelitys_flags(hint, fix):
    run_hint = hint()
    assert re.search(r"\b(simulator|agent)\.", run_hint)  # recoworld run's message keeps its own keys
    assert fidelity_fix(run_hint) == fix
    assert {name for name in re.findall(r"--llm (\w+)=", fix)} <= {f.name for f in fields(LLMConfig)}
