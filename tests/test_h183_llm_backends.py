"""Timeouts and cache keys of the LLM backends (review h180).

- ``structured_mode=auto``: requests that wait for the first one's finding out of the mode
  waited inside their own ``timeout_s``, and timed out (or were sent again) though the
  server answered each within it.
- llama.cpp: the cache key ignored ``chat_format``, so a model reading another chat
  template got that template's replies from a shared cache; transformers: the weights'
  dtype, which changes replies.
- In-process backends: a generation whose caller timed out went on to its ``max_tokens``
  holding the model, each retry queued one more, and later requests timed out behind them.

The servers are fake ones on 127.0.0.1; the llama.cpp tests run the embedded SmolLM2-135M,
with a hook in its per-token evaluation that holds a generation until its caller has given
up, so that nothing depends on how fast this machine generates.
"""

from __future__ import annotations

import gc
import itertools
import json
import threading
import weakref

import pytest
from pydantic import BaseModel

from fake_openai_server import Answer, FakeOpenAIServer, FakeSleep
from recoworld.llm import BackendCallError, ChatRequest, RetryPolicy
from recoworld.llm.in_process import GenerationAbandoned
from recoworld.llm.openai_backend import OpenAIChatModel
from tests.test_llm_transformers import make as transformers_model
from tests.test_llm_transformers import tiny  # noqa: F401  (a fixture: a tiny random Llama and its tokenizer)


class Decision(BaseModel):
    action: str


REPLY = json.dumps({"action": "click"})


def structured(body: dict) -> bool:
    return bool(body.get("response_format"))


def run_sync_threads_out(llm) -> None:
    """Wait until every generation thread of ``llm``'s sync loop has ended (its last use)."""
    loop = llm._loop_thread.loop
    llm._loop_thread.run(loop.shutdown_default_executor())


# ================================================================ auto structured mode
def queued_one_times_out_then_the_model_serves(llm, caller_gave_up: threading.Event, queued: tuple[str, int],
                                               last: tuple[str, int]) -> None:
    """A request ``(prompt, max_tokens)`` queued behind a stopped generation times out too;
    once ``caller_gave_up`` is set, ``last`` is served without a timeout and the model's
    threads have run out."""
    with pytest.raises(BackendCallError, match="timeout_s=1.0"):
        llm.chat(queued[0], max_tokens=queued[1])
    caller_gave_up.set()
    llm.timeout_s = None
    llm.chat(last[0], max_tokens=last[1])
    run_sync_threads_out(llm)


def test_requests_waiting_for_the_mode_to_be_found_do_not_spend_their_timeout():
    # The first structured reply takes 4.5 s, the others 3 s, all well within timeout_s=7 (a
    # loaded machine adds seconds); a request that waited for the first one inside its own
    # timeout had 2.5 s left for its own 3 s, and timed out.
    delays = iter([4.5])

    def answer(body):
        return Answer.chat(REPLY, delay_s=next(delays, 3.0) if structured(body) else 0.0)

    with FakeOpenAIServer([answer]) as server:
        llm = OpenAIChatModel("m", base_url=server.base_url, timeout_s=7.0, retry=RetryPolicy(max_retries=2),
                              sleep=FakeSleep())
        llm.chat("warm up the client")
        replies = llm.chat_many([ChatRequest(f"q{i}", schema=Decision) for i in range(4)], return_exceptions=True)
        assert [getattr(r, "parsed", r) for r in replies] == [Decision(action="click")] * 4
        assert sum(map(structured, server.requests)) == 4  # none sent again
        assert llm.metrics()["llm_retries"] == 0 and llm.mode_in_use == "json_schema"
        llm.close()


def test_a_request_that_waited_finds_the_mode_out_when_the_first_one_failed():
    # The first structured request fails (a 503, not a refusal; no retries); the next one
    # that waited finds the mode out, and the last one uses it.
    script = [Answer.chat("warm"), Answer.error(503, "overloaded", delay_s=0.3), Answer.chat(REPLY)]
    with FakeOpenAIServer(script) as server:
        llm = OpenAIChatModel("m", base_url=server.base_url, retry=RetryPolicy(max_retries=0), sleep=FakeSleep())
        llm.chat("warm up the client")
        replies = llm.chat_many([ChatRequest(f"q{i}", schema=Decision) for i in range(3)], return_exceptions=True)
        assert [type(r).__name__ for r in replies].count("BackendCallError") == 1
        assert sum(not isinstance(r, Exception) for r in replies) == 2
        assert sum(map(structured, server.requests)) == 3 and llm.mode_in_use == "json_schema"
        llm.close()


# ============================================================================ llama.cpp
@pytest.fixture(scope="module")
def gguf():
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    from embedded_model import embedded_gguf

    return embedded_gguf()


def llama(gguf, **kwargs):
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    return LlamaCppChatModel(gguf, n_threads=1, n_ctx=512, **kwargs)


def test_llama_cpp_models_reading_another_chat_template_do_not_share_replies(gguf, tmp_path):
    question = ChatRequest("Name one colour.", max_tokens=4)
    with llama(gguf, cache=tmp_path / "llm.sqlite") as own_template:
        assert not own_template.chat(question).cached
        identity = own_template.cache_identity()
    with llama(gguf, cache=tmp_path / "llm.sqlite", chat_format="llama-2") as llama_2:
        assert not llama_2.chat(question).cached  # its own generation, not the GGUF template's
        assert llama_2.chat(question).cached  # and its own cache entry
        assert llama_2.cache_identity()["chat_format"] == "llama-2"
    # the file's size and the model's own name tell it from another GGUF of the same file name
    assert identity["gguf"] == {"bytes": gguf.stat().st_size, "name": "Smollm2 135M 8k Lc100K Mix1 Ep2"}


def test_a_llama_cpp_generation_whose_caller_timed_out_stops_and_the_next_queued_one_is_skipped(gguf):
    llm = llama(gguf, timeout_s=1.0, retry=RetryPolicy(max_retries=2), sleep=FakeSleep())
    caller_gave_up = threading.Event()
    evaluations = itertools.count()
    real_eval = llm._llama.eval

    def evaluate(tokens):
        if next(evaluations) == 0:  # the first generation's prompt waits until its caller has given up
            caller_gave_up.wait(timeout=300)
        return real_eval(tokens)

    ran = []  # (max_tokens, completion tokens or what stopped it) of each generation started
    real_create = llm._llama.create_chat_completion

    def create(**args):
        try:
            response = real_create(**args)
        except Exception as exc:
            ran.append((args["max_tokens"], type(exc).__name__))
            raise
        ran.append((args["max_tokens"], response["usage"]["completion_tokens"]))
        return response

    llm._llama.eval, llm._llama.create_chat_completion = evaluate, create
    with pytest.raises(BackendCallError, match=r"after 0 generation\(s\): TimeoutError: the generation took longer "
                                               r"than timeout_s=1.0 and was stopped") as info:
        llm.chat("Write a long story about a cat.", max_tokens=40)
    assert info.value.hint.startswith("raise llm.timeout_s (now 1.0), or lower max_tokens (LLM users: "
                                      "simulator.config.max_tokens; LLM agents: agent.max_tokens)")
    # The first generation still holds the model: this one queues, and its caller gives up too.
    queued_one_times_out_then_the_model_serves(llm, caller_gave_up, ("Write a long story about a dog.", 40),
                                               ("Say hi.", 3))
    assert [max_tokens for max_tokens, _ in ran] == [40, 3]  # neither timeout retried; the queued one skipped
    assert ran[0][1] == "GenerationAbandoned"
    assert llm.metrics()["llm_retries"] == 0 and llm.metrics()["llm_backend_failures"] == 2
    llm.close()


def test_a_llama_cpp_evaluation_stops_midway_and_leaves_the_model_usable(gguf):
    # A long prompt takes seconds to evaluate: ggml's abort callback stops it between operations.
    with llama(gguf) as llm:
        model = llm._llama
        checks = iter([False])  # the check before the evaluation passes; the abort callback's stop it
        model.should_stop = lambda: next(checks, True)
        model.reset()
        with pytest.raises(GenerationAbandoned, match="its caller stopped waiting"):
            model.eval(model.tokenize(b"Write a long story about a cat and a dog who live by the sea."))
        assert model.n_tokens == 0  # nothing counted as evaluated
        model.should_stop = llm._abandoned
        question = ChatRequest("Name one colour.", max_tokens=4)
        first = llm.chat(question).text
        assert llm.chat(question).text == first  # the same greedy reply as from a fresh context



def test_a_dropped_llama_cpp_model_frees_its_weights_at_once(gguf):
    # Neither the abort callback nor the model's stop check may tie the Llama and the model
    # into a reference cycle: the weights and context would wait for a garbage collection.
    gc.disable()
    try:
        llm = llama(gguf)
        llm.chat("Say hi.", max_tokens=2)
        run_sync_threads_out(llm)  # a worker thread lets go of its last task a moment after replying
        weights = weakref.ref(llm._llama)
        del llm
        assert weights() is None
    finally:
        gc.enable()


def test_only_a_prompts_llama_cpp_evaluation_asks_to_stop_from_within(gguf):
    # A token's evaluation is checked before it; ggml's abort callback, which takes the GIL
    # some 600 times an evaluation, is registered for the prompt's only.
    with llama(gguf) as llm:
        model = llm._llama
        checks = []
        model.should_stop = lambda: checks.append(1) or False
        model.reset()
        model.eval(model.tokenize(b"Name one colour."))
        assert len(checks) > 1  # the check before it, then the abort callback's
        checks.clear()
        model.eval([model.token_eos()])
        assert len(checks) == 1  # the check before it only


# ========================================================================= transformers
def test_transformers_cache_keys_name_the_weights_dtype(tiny):
    import torch

    model, tokenizer = tiny
    half = transformers_model((type(model)(model.config).to(torch.bfloat16).eval(), tokenizer), model_id="tiny")
    full = transformers_model(tiny, model_id="tiny")
    assert full.cache_identity()["dtype"] == "torch.float32" and half.cache_identity()["dtype"] == "torch.bfloat16"


def test_a_transformers_generation_whose_caller_timed_out_stops_and_the_next_queued_one_is_skipped(tiny):
    llm = transformers_model(tiny, timeout_s=1.0, retry=RetryPolicy(max_retries=2), sleep=FakeSleep())
    caller_gave_up = threading.Event()
    forwards = []

    def hold_first_forward(module, args):
        forwards.append(module)
        if len(forwards) == 1:  # the first generation's prefill waits until its caller has given up
            caller_gave_up.wait(timeout=300)

    ran = []  # (forward passes, what stopped it) of each generation started
    real_batch = llm._generate_batch

    def generate_batch(calls):
        before = len(forwards)
        try:
            completions = real_batch(calls)
        except Exception as exc:
            ran.append((len(forwards) - before, type(exc).__name__))
            raise
        ran.append((len(forwards) - before, None))
        return completions

    llm._generate_batch = generate_batch
    hook = llm.model.register_forward_pre_hook(hold_first_forward)
    try:
        with pytest.raises(BackendCallError, match="TimeoutError: the generation took longer than timeout_s=1.0"):
            llm.chat("Would you click or skip this movie?", max_tokens=20)
        queued_one_times_out_then_the_model_serves(llm, caller_gave_up, ("Reply with JSON only.", 20),
                                                   ("user assistant system", 2))
    finally:
        hook.remove()
    # The first stopped after its prefill's token, the queued one never started, nothing was retried.
    assert ran[0] == (1, "GenerationAbandoned") and len(ran) == 2 and ran[1][1] is None
    assert llm.metrics()["llm_retries"] == 0
    llm.close()
