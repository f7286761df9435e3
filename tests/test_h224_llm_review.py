"""The LLM path's loose ends (review h220): the cost guard counts a subclass of an LLM agent
as one, and the tool agent's planner at one call per user-step on LLM users; token counts
given as whole floats or through ``total_tokens`` are not estimated; a cache directory that
cannot be made, or a directory where the cache file should be, is a ChatCacheError that says
so; a cache used after close() says that; closing the LLM loop does not wait for ever on a
call that ignores its cancellation."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sqlite3
import sys
import textwrap
import threading
import warnings

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from fake_openai_server import Answer, FakeOpenAIServer, FakeSleep
from recoworld.apps.run.cost import HYBRID_CALL_RATE, agent_call_rate, check_copied_users, estimated_llm_calls
from recoworld.apps.run.runner import ExperimentConfigError
from recoworld.llm import ChatCache, ChatCacheError, ChatRequest
from recoworld.llm import base as llm_base
from recoworld.llm.accounting import estimate_prompt_tokens
from recoworld.llm.openai_backend import OpenAIChatModel
from recoworld.llm.types import BackendCall, Completion


# ============================================================ 1-2. the cost guard
@pytest.fixture
def plugin_agents(tmp_path, monkeypatch):
    """A module of LLM agent subclasses, as a plug-in package would hold them."""
    (tmp_path / "h224_llm_agents.py").write_text(textwrap.dedent('''
        from recoworld.agents.llm_rerank import LLMRerank
        from recoworld.agents.llm_tools import LLMToolAgent
        from recoworld.agents.planning import PlanningOracle

        class MyRerank(LLMRerank):
            """A house prompt: the same requests, one per user-step."""

        class MyTools(LLMToolAgent):
            """The tool agent, renamed: llm_when defaults to instruction, as its base's."""

        class RulesTools(LLMToolAgent):
            def __init__(self, planner="rules", **kwargs):
                super().__init__(planner=planner, **kwargs)

        class MyOracle(PlanningOracle):
            pass

        def make_rerank(**kwargs):
            return MyRerank(**kwargs)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "h224_llm_agents"
    sys.modules.pop("h224_llm_agents", None)


def composed(*overrides):
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        return compose("config", overrides=["world=synthetic", "env.num_envs=10", "experiment.steps=20",
                                            "experiment.seeds=[0]", *overrides])


def agent(target, **settings):
    return OmegaConf.create({"_target_": target, **settings})


@pytest.mark.parametrize(("name", "settings", "per_user_step"), [
    ("MyRerank", {}, 1.0),                                  # llm_when: always, from LLMRerank
    ("MyTools", {}, HYBRID_CALL_RATE),                      # the planner rule, llm_when from LLMToolAgent
    ("MyTools", {"llm_when": "always"}, 1.0),
    ("RulesTools", {}, 0.0),                                # its class's planner default: no LLM
    ("make_rerank", {}, 0.0),                               # a factory: its class is unknown before the run
])
def test_a_subclass_of_an_llm_agent_is_counted_as_one(plugin_agents, name, settings, per_user_step):
    cfg = composed()
    assert estimated_llm_calls(cfg, {"mine": agent(f"{plugin_agents}.{name}", **settings)}) == round(
        10 * 20 * per_user_step)


def test_a_target_that_does_not_import_is_left_to_the_run():
    assert agent_call_rate(agent("recoworld.agents.llm_rerank.NoSuchAgent")) == 0.0
    assert agent_call_rate(agent("no_such_package_h224.Agent")) == 0.0


def test_a_subclass_of_the_planning_oracle_is_refused_on_llm_users(plugin_agents):
    with pytest.raises(ExperimentConfigError, match=r"agent=mine plans on copies of the run's users"):
        check_copied_users(composed("simulator=llm"), {"mine": agent(f"{plugin_agents}.MyOracle")})


@pytest.mark.parametrize(("simulator", "planner_rate"), [
    ("statistical", HYBRID_CALL_RATE), ("hybrid", HYBRID_CALL_RATE),  # the statistical core's voicing rate
    ("llm", 1.0),                                                      # LLM users voice about every other step
])
def test_the_tool_planner_is_counted_at_the_users_voicing_rate(simulator, planner_rate):
    cfg = composed("agent=llm_tools", f"simulator={simulator}")
    users = {"statistical": 0.0, "hybrid": HYBRID_CALL_RATE, "llm": 1.0}[simulator]
    assert estimated_llm_calls(cfg, {"llm_tools": cfg.agent}) == round(10 * 20 * (users + planner_rate))


# ============================================================ 3. token counts
def chat_body(usage):
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                           "content": "hello there"}}],
            "usage": usage}
    return Answer(body=json.dumps(body))


REQUEST = ChatRequest("how are you?", max_tokens=10)
PROMPT_ESTIMATE = estimate_prompt_tokens(BackendCall(REQUEST, REQUEST.messages, None))
COMPLETION_ESTIMATE = 3  # "hello there": 11 characters


@pytest.mark.parametrize(("usage", "counts", "missing"), [
    ({"prompt_tokens": 50.0, "completion_tokens": 7.0}, (50, 7, 0), None),              # whole floats
    ({"prompt_tokens": None, "completion_tokens": 7, "total_tokens": 60}, (53, 7, 0), None),
    ({"prompt_tokens": 50, "total_tokens": 60}, (50, 10, 0), None),
    ({"total_tokens": 15}, (15 - COMPLETION_ESTIMATE, COMPLETION_ESTIMATE, 1), "prompt_tokens and completion_tokens"),
    ({"total_tokens": 2}, (0, COMPLETION_ESTIMATE, 1), "prompt_tokens and completion_tokens"),
    ({"prompt_tokens": 50}, (50, COMPLETION_ESTIMATE, 1), "completion_tokens"),
    ({"completion_tokens": 7}, (PROMPT_ESTIMATE, 7, 1), "prompt_tokens"),
    ({"prompt_tokens": 50.5, "completion_tokens": 7}, (PROMPT_ESTIMATE, 7, 1), "prompt_tokens"),
    ({"completion_tokens": 7, "total_tokens": 5}, (PROMPT_ESTIMATE, 7, 1), "prompt_tokens"),  # a total below: no use
])
def test_token_counts_are_taken_as_reported_derived_or_estimated(usage, counts, missing, caplog):
    with FakeOpenAIServer([chat_body(usage)]) as server, caplog.at_level(logging.WARNING, "recoworld.llm"):
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, timeout_s=60.0, sleep=FakeSleep())
        llm.chat(REQUEST)
        llm.close()
    m = llm.metrics()
    assert (m["llm_prompt_tokens"], m["llm_completion_tokens"], m["llm_usage_estimates"]) == counts
    warned = [r.getMessage() for r in caplog.records if "in its usage" in r.getMessage()]
    if missing is None:
        assert warned == []
    else:
        assert len(warned) == 1 and f"sent a reply without {missing} in its usage" in warned[0]


# ============================================================ 4, 6. the cache
def test_a_cache_directory_under_a_file_is_a_cache_error(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(ChatCacheError, match=(
            rf"^the LLM cache directory {tmp_path}/afile/cache cannot be made \(Not a directory: {tmp_path}/afile/"
            r"cache\); set llm.cache_dir to a writable directory \(for an LLM agent's own cache, "
            r"agent.llm.cache_dir\)$")):
        ChatCache(tmp_path / "afile" / "cache")
    with pytest.raises(ChatCacheError, match=rf"directory {tmp_path}/afile cannot be made"):
        ChatCache(tmp_path / "afile" / "llm.sqlite")  # a file's parent


def test_a_directory_where_the_cache_file_should_be_is_named(tmp_path):
    (tmp_path / "llm_cache.sqlite").mkdir()
    with pytest.raises(ChatCacheError) as info:
        ChatCache(tmp_path)
    assert str(info.value) == (f"the LLM cache {tmp_path}/llm_cache.sqlite is a directory, where the cache file "
                               "should be; move it away, or set llm.cache_dir to another directory")
    assert "not damaged" not in str(info.value)


def test_a_cache_file_that_is_not_there_is_not_called_intact(tmp_path):
    cache = ChatCache(tmp_path)
    cache.path.unlink()  # as if its directory had refused to make it
    with pytest.raises(ChatCacheError) as info, cache._reading():
        raise sqlite3.OperationalError("unable to open database file")
    assert str(info.value) == (
        f"the LLM cache {cache.path} cannot be created (SQLite says: unable to open database file (SQLITE_CANTOPEN)): "
        "it or its directory cannot be opened (a read-only mount, its permissions, or a directory where the file "
        "should be); make it openable, or set llm.cache_dir to another directory")
    cache.close()


def test_a_cache_used_after_close_says_so(tmp_path):
    cache = ChatCache(tmp_path)
    cache.put("k", Completion(text="hi", prompt_tokens=1, completion_tokens=1))
    cache.close()
    for use in (lambda: cache.get("k"), lambda: cache.put("k", Completion(text="hi")), lambda: len(cache)):
        with pytest.raises(RuntimeError, match=rf"^the LLM cache {tmp_path}/llm_cache.sqlite was used after "
                                               r"close\(\)"):
            use()
    cache.close()  # twice: nothing to do


def test_a_programming_error_is_not_called_an_unusable_cache(tmp_path):
    cache = ChatCache(tmp_path)
    with pytest.raises(sqlite3.ProgrammingError), cache._reading():
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
    cache.close()


# ============================================================ 5. closing the loop
def test_closing_the_loop_does_not_wait_for_ever_on_a_call_that_ignores_cancellation(monkeypatch, caplog):
    monkeypatch.setattr(llm_base, "CLOSE_WAIT_S", 0.2, raising=False)
    released = threading.Event()

    async def stubborn():
        while not released.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass  # a backend's retry loop that swallows its cancellation

    loop_thread = llm_base._LoopThread()
    asyncio.run_coroutine_threadsafe(stubborn(), loop_thread.loop)
    closing = threading.Thread(target=loop_thread.close, daemon=True)
    with caplog.at_level(logging.WARNING, "recoworld.llm"):
        closing.start()
        closing.join(timeout=60)  # without the bound: never
    released.set()
    assert not closing.is_alive()
    assert not loop_thread.thread.is_alive() and loop_thread.loop.is_closed()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(
        "closing the LLM event loop with 1 call(s) still running 0.2 s after they were cancelled")


def test_closing_a_model_does_not_wait_for_ever_on_a_backend_that_holds_its_loop(monkeypatch, caplog):
    """A backend's synchronous call holds the loop's thread: the backend's own close cannot
    run there, and close() goes on without it after CLOSE_WAIT_S."""
    from recoworld.llm.openai_backend import OpenAIChatModel

    monkeypatch.setattr(llm_base, "CLOSE_WAIT_S", 0.2, raising=False)
    released = threading.Event()

    async def holding():
        released.wait(60)  # synchronous: the loop cannot run anything else meanwhile

    model = OpenAIChatModel("stub", base_url="http://127.0.0.1:9/v1", timeout_s=5.0)
    model._loop_thread = loop_thread = llm_base._LoopThread()
    asyncio.run_coroutine_threadsafe(holding(), loop_thread.loop)
    closing = threading.Thread(target=model.close, daemon=True)
    with caplog.at_level(logging.WARNING, "recoworld.llm"):
        closing.start()
        closing.join(timeout=30)  # without the bound: until the call returns
    done = not closing.is_alive()
    released.set()
    loop_thread.thread.join(timeout=30)  # released, the loop stops
    # The calls close() queued on the held loop never ran: dropped here, not in a later test.
    del model, loop_thread
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        gc.collect()
    assert done
    assert any(r.getMessage().startswith("the LLM backend did not close within 0.2 s") for r in caplog.records)

