"""``recoworld fidelity``'s fix for an in-process generation that ran out of time names what
its user can do: its LLM users' ``max_tokens`` is their default, which it has no flag for,
so "lower max_tokens (...)" becomes a faster model or a GPU, in ``--llm`` flags."""

from __future__ import annotations

import re
from dataclasses import fields
from types import SimpleNamespace

from recoworld.llm import LLMConfig
from recoworld.llm.errors import LOWER_MAX_TOKENS
from recoworld.llm.in_process import InProcessChatModel
from test_h196_fidelity_hints import fidelity_fix


def timeout_hint() -> str:
    model = SimpleNamespace(timeout_s=30.0)
    return InProcessChatModel._failure_hint(model, InProcessChatModel._translate_error(model, TimeoutError()))


def test_recoworld_runs_timeout_hint_keeps_its_keys():
    assert timeout_hint() == ("raise llm.timeout_s (now 30.0), or lower max_tokens (LLM users: "
                              "simulator.config.max_tokens; LLM agents: agent.max_tokens); an in-process generation "
                              "that runs out of time is not retried, since it would take as long again")
    assert LOWER_MAX_TOKENS in timeout_hint()


def test_fidelitys_timeout_fix_is_worded_in_its_own_flags():
    fix = fidelity_fix(timeout_hint())
    assert fix == ("raise --llm timeout_s=... (now 30.0), or generate faster, with a smaller model (--llm "
                   "model=NAME) or on a GPU (llama_cpp: --llm n_gpu_layers=-1; transformers takes one when "
                   "present): the LLM users' limit fits the longest reply their schema allows; an in-process "
                   "generation that runs out of time is not retried, since it would take as long again")
    assert "max_tokens" not in fix
    assert {name for name in re.findall(r"--llm (\w+)=", fix)} <= {f.name for f in fields(LLMConfig)}
