"""The embedded SmolLM2-135M-Instruct (GGUF), for real: served by ``python -m
llama_cpp.server`` and driven through the openai backend, and run in process by the
llama_cpp backend. Needs the ``llm`` extra; skipped only when llama-cpp-python is absent."""

from __future__ import annotations

import json
import logging
from typing import Literal

import pytest
from pydantic import BaseModel

pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')

from embedded_model import embedded_gguf  # noqa: E402
from embedded_model import llama_server as embedded_server  # noqa: E402
from recoworld.llm import BackendCallError, ChatRequest, make_chat_model  # noqa: E402

SECRET = "sk-recoworld-test-0123456789-DO-NOT-LEAK"


class Decision(BaseModel):
    action: Literal["click", "skip"]
    reason: str


def prompts(n: int) -> list[ChatRequest]:
    titles = ["Heat (1995)", "Toy Story (1995)", "Fargo (1996)"]
    return [
        ChatRequest(
            [{"role": "system", "content": "You like thrillers."},
             {"role": "user", "content": f"Click or skip '{titles[i % 3]}'?"}],
            schema=Decision, max_tokens=40,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def gguf():
    return embedded_gguf()


@pytest.fixture(scope="module")
def llama_server(gguf, tmp_path_factory):
    """A llama_cpp.server on a free local port; yields its base URL, stopped at teardown."""
    with embedded_server(gguf, tmp_path_factory.mktemp("llama_server") / "server.log") as base_url:
        yield base_url


def test_openai_backend_against_llama_server_gives_schema_valid_replies(llama_server, tmp_path, caplog):
    llm = make_chat_model(backend="openai", model="smollm2", base_url=llama_server, api_key=SECRET,
                          structured_mode="json_object_schema", cache_dir=str(tmp_path / "cache"), max_concurrency=2)
    with caplog.at_level(logging.DEBUG):
        replies = llm.chat_many(prompts(2))
    assert all(isinstance(r.parsed, Decision) for r in replies)
    assert all(r.parsed.action in ("click", "skip") for r in replies)
    m = llm.metrics()
    assert m["llm_requests"] == 2 and m["llm_replies"] == 2 and m["llm_failures"] == 0
    assert m["llm_calls"] == 2 + m["llm_repairs"] and m["llm_cache_hits"] == 0
    assert m["llm_prompt_tokens"] > 2 * 20 and m["llm_completion_tokens"] >= 2 * 5
    assert m["llm_latency_s_total"] > 0

    again = llm.chat_many(prompts(2))  # a re-run is served from the cache
    assert [r.parsed for r in again] == [r.parsed for r in replies] and all(r.cached for r in again)
    assert llm.metrics()["llm_calls"] == m["llm_calls"]
    llm.close()

    # the key reached the server, and nowhere else
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    for text in (repr(llm), json.dumps(llm.metrics()), caplog.text):
        assert SECRET not in text
    assert SECRET.encode() not in stored


def test_json_schema_mode_is_refused_by_llama_cpp_server_with_a_clear_error(llama_server):
    """llama_cpp.server knows only response_format type json_object (structured_mode
    "json_object_schema"). It reports the refusal as HTTP 500, so the call is retried as a
    server error before it fails; the failure names the problem."""
    llm = make_chat_model(backend="openai", model="smollm2", base_url=llama_server, structured_mode="json_schema",
                          max_retries=1, backoff_base_s=0.01)
    with pytest.raises(BackendCallError, match="(?s)HTTP 500.*Input should be 'text' or 'json_object'"):
        llm.chat(prompts(1)[0])
    m = llm.metrics()
    assert m["llm_retries"] == 1 and m["llm_backend_failures"] == 1 and m["llm_calls"] == 0
    llm.close()


def test_in_process_llama_cpp_backend_on_the_embedded_model(gguf):
    llm = make_chat_model(backend="llama_cpp", n_ctx=1024)
    assert llm.model_id == gguf.name
    (reply,) = llm.chat_many(prompts(1))
    assert isinstance(reply.parsed, Decision)
    m = llm.metrics()
    assert m["llm_replies"] == 1 and m["llm_prompt_tokens"] > 0 and m["llm_completion_tokens"] > 0

    sampled = ChatRequest("Name a thriller from the 1990s.", temperature=0.9, seed=11, max_tokens=8)
    assert llm.chat(sampled).text == llm.chat(sampled).text  # seeded sampling repeats without a cache
    llm.close()
