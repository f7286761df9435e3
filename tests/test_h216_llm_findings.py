"""The LLM path's loose ends (review h214): a sound cache file refused by its surroundings is
not called damaged; the cost guard counts the LLM agents' requests and their cache is the
users'; a server without token counts still feeds the budgets; a user's sentence without a
wish keeps the wish in force for the agent as for the simulator; a timeout names the server
that hung; the client is made before the timer starts; hybrid users count no idle slot; a
llama.cpp model left open exits quietly."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from fake_openai_server import Answer, FakeOpenAIServer, FakeSleep
from test_cost_guard import refused_run
from recoworld.apps.run.cost import HYBRID_CALL_RATE, estimated_llm_calls
from recoworld.catalog import Catalog
from recoworld.llm import (
    BackendCallError, Budget, BudgetExceeded, ChatCache, ChatCacheError, ChatRequest, RetryPolicy, ScriptedChatModel,
)
from recoworld.llm.accounting import estimate_prompt_tokens
from recoworld.llm.openai_backend import OpenAIChatModel
from recoworld.llm.types import BackendCall, Completion
from recoworld.simulators.hybrid import HybridUsers
from recoworld.simulators.llm_user import LLMUsers


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(200, n_genres=6, seed=0)


# ============================================================== 1. the cache's surroundings
def cache_with(path, *keys):
    cache = ChatCache(path)
    for key in keys:
        cache.put(key, Completion(f"reply {key}", 1, 1, "stop"))
    return cache


def intact(path, why, fix):
    return (f"the LLM cache {path} cannot be used (SQLite says: {why}), but the file is not damaged, so keep it: "
            f"{fix}, or set llm.cache_dir to another directory")


def test_a_full_disk_keeps_the_cache_and_says_to_free_space(tmp_path, caplog):
    """A real SQLITE_FULL: the connection may grow the file by no more pages. The write is
    skipped with a warning, not raised (test_h232: the generation was paid for)."""
    cache = cache_with(tmp_path / "cache.sqlite", "a")
    cache._connection().execute("PRAGMA max_page_count=3")
    with caplog.at_level(logging.WARNING, "recoworld.llm"):
        cache.put("b", Completion("x" * 100_000, 1, 1, "stop"))
    assert cache.full and "free space on that disk" in caplog.text
    assert cache.get("a").text == "reply a"  # nothing was lost, and the cache still serves
    cache._connection().execute("PRAGMA max_page_count=1000000")  # space freed: this cache stores no more
    cache.put("b", Completion("x" * 100_000, 1, 1, "stop"))
    assert len(cache) == 1


def test_a_cache_that_cannot_be_written_says_so_not_that_it_is_damaged(tmp_path):
    """A real SQLITE_READONLY (the connection set read-only, as a read-only mount makes it)."""
    cache = cache_with(tmp_path / "cache.sqlite", "a")
    cache._connection().execute("PRAGMA query_only=1")
    with pytest.raises(ChatCacheError) as info:
        cache.put("b", Completion("y", 1, 1, "stop"))
    assert str(info.value) == intact(
        cache.path, "attempt to write a readonly database (SQLITE_READONLY)",
        "it or its directory cannot be written (a read-only mount, or its permissions); make them writable")
    assert cache.get("a").text == "reply a"


def test_a_cache_that_cannot_be_opened_is_named_when_built(tmp_path):
    """A real SQLITE_CANTOPEN (a directory where the file should be), when the cache is built,
    not at its first read."""
    (tmp_path / "llm_cache.sqlite").mkdir()
    with pytest.raises(ChatCacheError) as info:
        ChatCache(tmp_path)
    assert str(info.value) == (  # not "the file is not damaged, so keep it" (review h220: test_h224)
        f"the LLM cache {tmp_path / 'llm_cache.sqlite'} is a directory, where the cache file should be; move it "
        "away, or set llm.cache_dir to another directory")


def test_someone_elses_database_is_not_offered_for_deletion(tmp_path):
    path = tmp_path / "theirs.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE generations (id INTEGER)")
    with pytest.raises(ChatCacheError) as info:
        ChatCache(path).get("k")
    assert str(info.value) == (f"the LLM cache {path} cannot be used (SQLite says: no such column: value "
                               "(SQLITE_ERROR)); set llm.cache_dir to another directory")


@pytest.mark.parametrize(("said", "damaged"), [("database or disk is full", False),
                                              ("database disk image is malformed", True)])
def test_python_3_10_errors_are_told_apart_by_sqlites_words(tmp_path, said, damaged):
    """Python 3.10's sqlite3 errors lack ``sqlite_errorname`` (as this one, made by hand)."""
    cache = cache_with(tmp_path / "cache.sqlite")
    with pytest.raises(ChatCacheError) as info, cache._reading():
        raise sqlite3.OperationalError(said)
    assert ("delete it" in str(info.value)) is damaged
    assert ("free space there" in str(info.value)) is not damaged


def test_a_damaged_file_is_still_offered_for_deletion(tmp_path):
    path = tmp_path / "llm_cache.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ChatCacheError, match=r"cannot be read \(SQLite says: file is not a database\); delete it"):
        ChatCache(path)


# ============================================================ 2. the cost guard and agents
def composed(*overrides):
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        return compose("config", overrides=["world=synthetic", *overrides])


def alone(cfg):
    return {"agent": cfg.agent}


@pytest.mark.parametrize(("overrides", "per_user_step"), [
    (["agent=llm_rerank"], 1.0),                                   # llm_when: always
    (["agent=llm_bandit"], 1.0),
    (["agent=llm_rerank", "agent.llm_when=instruction"], 1.0),     # an upper bound
    (["agent=llm_tools"], HYBRID_CALL_RATE),                       # one plan per instruction voiced
    (["agent=llm_tools", "agent.llm_when=always"], 1.0),
    (["agent=llm_tools", "agent.planner=rules"], 0.0),             # no LLM
    (["agent=llm_rerank", "simulator=llm"], 2.0),                  # the users' and the agent's
    (["agent=llm_tools", "simulator=hybrid"], 2 * HYBRID_CALL_RATE),
    (["agent=linucb"], 0.0),
])
def test_the_cost_guard_counts_the_agents_requests(overrides, per_user_step):
    cfg = composed(*overrides, "env.num_envs=10", "experiment.steps=20", "experiment.seeds=[0,1]")
    assert estimated_llm_calls(cfg, alone(cfg)) == round(10 * 20 * 2 * per_user_step)


def test_a_lineup_counts_each_agents_requests_once():
    cfg = composed("simulator=llm", "env.num_envs=10", "experiment.steps=20", "experiment.seeds=[0]")
    lineup = {"llm_rerank": composed("agent=llm_rerank").agent, "random": OmegaConf.create(
        {"_target_": "recoworld.agents.baselines.RandomAgent"})}
    assert estimated_llm_calls(cfg, lineup) == 10 * 20 * (2 + 1)


def test_an_llm_agents_default_run_is_refused_with_its_requests(tmp_path, capsys):
    assert refused_run(tmp_path, capsys, "agent=llm_rerank") == (
        "recoworld run: error: this run would make about 76,800 LLM calls (256 users x 100 steps x 3 seeds x 1 call "
        "per user-step: 1 of agent llm_rerank), above experiment.max_llm_calls=20,000. Try a small run first with "
        "experiment=llm (e.g. recoworld run agent=llm_rerank experiment=llm), or confirm the cost with "
        "experiment.max_llm_calls=76800\n")


def test_the_refusal_adds_up_the_users_and_the_agents_calls():
    from recoworld.apps.run.cost import check_llm_cost
    from recoworld.apps.run.runner import ExperimentConfigError

    cfg = composed("agent=llm_rerank", "simulator=llm", "env.num_envs=10", "experiment.steps=20",
                   "experiment.seeds=[0]", "experiment.max_llm_calls=100")
    with pytest.raises(ExperimentConfigError, match=r"^this run would make about 400 LLM calls \(10 users x 20 steps "
                                                    r"x 1 seeds x 2 calls per user-step: 1 of the users, 1 of agent "
                                                    r"agent\), .* \(e\.g\. recoworld run simulator=llm agent=agent "
                                                    r"experiment=llm\)"):
        check_llm_cost(cfg, alone(cfg))


@pytest.mark.parametrize("agent", ["llm_rerank", "llm_bandit", "llm_tools"])
def test_the_agents_cache_in_the_users_file(agent):
    assert composed(f"agent={agent}").agent.llm.cache_dir == composed().llm.cache_dir == "outputs/llm_cache"
    moved = composed(f"agent={agent}", "llm.cache_dir=/shared/cache")
    assert moved.agent.llm.cache_dir == "/shared/cache"
    assert composed(f"agent={agent}", "agent.llm.cache_dir=null").agent.llm.cache_dir is None


# ================================================================== 3. no token counts
def chat_body(usage):
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                           "content": "hello there"}}]}
    if usage != "absent":
        body["usage"] = usage
    return Answer(body=json.dumps(body))


@pytest.mark.parametrize("usage", ["absent", None, {"prompt_tokens": None, "completion_tokens": None,
                                                    "total_tokens": None}])  # a total alone: test_h224
def test_a_reply_without_token_counts_is_estimated_and_counted(usage, caplog):
    request = ChatRequest("how are you?", max_tokens=10)
    prompt = estimate_prompt_tokens(BackendCall(request, request.messages, None))
    with FakeOpenAIServer([chat_body(usage)]) as server, caplog.at_level(logging.WARNING, "recoworld.llm"):
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, timeout_s=60.0, sleep=FakeSleep())
        replies = [llm.chat(request), llm.chat(ChatRequest("how are you?", max_tokens=11))]
        llm.close()
    assert [r.text for r in replies] == ["hello there"] * 2  # the reply is kept, whatever usage says
    m = llm.metrics()
    assert m["llm_usage_estimates"] == 2
    assert m["llm_prompt_tokens"] == 2 * prompt and m["llm_completion_tokens"] == 2 * 3  # 11 characters: 3 tokens
    warned = [r.getMessage() for r in caplog.records if "without prompt_tokens" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(
        f"the server at {llm.url} sent a reply without prompt_tokens and completion_tokens in its usage")


def test_estimated_tokens_bind_the_token_budget():
    with FakeOpenAIServer([chat_body("absent")]) as server:
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, timeout_s=60.0, sleep=FakeSleep(),
                              budget=Budget(max_total_tokens=40))
        with pytest.raises(BudgetExceeded, match="token budget reached"):
            for i in range(20):
                llm.chat(f"question {i}", max_tokens=10)
        llm.close()
    assert 0 < llm.metrics()["llm_total_tokens"] <= 40


def test_reported_token_counts_are_not_estimated():
    with FakeOpenAIServer([Answer.chat("hello there")]) as server:
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, timeout_s=60.0, sleep=FakeSleep())
        llm.chat("hi")
        llm.close()
    m = llm.metrics()
    assert (m["llm_usage_estimates"], m["llm_prompt_tokens"], m["llm_completion_tokens"]) == (0, 3, 2)


# ============================================= 4. a sentence without a wish keeps the wish
def test_a_sentence_without_a_wish_restates_the_wish_in_force(catalog):
    """The probe's user: a wish for more of a genre, then a sentence with none. The agent
    hears the wish the simulator keeps scoring against, with the new sentence."""
    genre = catalog.genre_names[1]
    said = iter([None, {"text": f"More {genre}, please", "more": [genre], "less": [], "novelty": 1},
                 {"text": "I am getting bored", "more": [], "less": [], "novelty": 0}, None])

    def model(call):
        ids = call.json_schema["properties"]["reactions"]["required"]
        return json.dumps({"reactions": {i: {"action": "skip", "reason": "meh"} for i in ids}, "mindset": "Fine.",
                           "satisfaction": 3, "leave": False, "instruction": next(said)})

    users = LLMUsers(catalog, ScriptedChatModel(model))
    users.reset(1, seed=0)
    slate = torch.tensor([[0, 1, 2]])
    users.respond(slate)
    wished = users.respond(slate)
    restated = users.respond(slate)
    assert restated.instruction_text == ["I am getting bored"] and restated.instruction.active.tolist() == [True]
    for field in ("more", "less", "novelty"):  # the wish in force, as first voiced and as the simulator holds it
        assert torch.equal(getattr(restated.instruction, field), getattr(wished.instruction, field))
        assert torch.equal(getattr(restated.instruction, field), getattr(users.instruction, field))
    assert restated.instruction.more[0].nonzero().flatten().tolist() == [1]
    assert restated.instruction_in_force.tolist() == [True] and users.instruction.active.tolist() == [True]


# =========================================================== 5. and 6. the pool of servers
def test_a_timeout_names_the_server_that_hung():
    with FakeOpenAIServer([Answer.chat("fine")]) as good, \
            FakeOpenAIServer([Answer.chat("late", delay_s=3.0)]) as hung:
        llm = OpenAIChatModel("fake-model", base_url=f"{good.base_url},{hung.base_url}", timeout_s=0.5,
                              retry=RetryPolicy(max_retries=0), sleep=FakeSleep())
        replies = llm.chat_many(["q0", "q1"], return_exceptions=True)
        llm.close()
    failed = [r for r in replies if isinstance(r, BaseException)]
    assert len(hung.requests) == 1 and len(failed) == 1 and isinstance(failed[0], BackendCallError)
    assert f"no reply from {hung.base_url}/chat/completions within timeout_s=0.5" in str(failed[0])
    assert good.base_url not in str(failed[0])


def test_the_clients_are_made_before_the_generation_is_timed():
    """``_generate`` runs under the timer and the timeout: the client of every server (and
    the first import of openai) is ready before it starts."""
    ready = []

    class Watched(OpenAIChatModel):
        async def _generate(self, calls):
            clients = self._clients.get(asyncio.get_running_loop(), {})
            ready.append(sorted(clients) == sorted(s.base_url for s in self.pool.servers))
            return await super()._generate(calls)

    with FakeOpenAIServer([Answer.chat("a")]) as one, FakeOpenAIServer([Answer.chat("b")]) as two:
        llm = Watched("fake-model", base_url=f"{one.base_url},{two.base_url}", timeout_s=60.0, sleep=FakeSleep())
        llm.chat("first")
        llm.close()
    assert ready == [True]


# ================================================================ 7. hybrid users, idle
def test_hybrid_users_count_no_idle_slot_as_a_user_step(catalog):
    voice = ScriptedChatModel(lambda call: json.dumps({"mindset": "Bored.", "instruction": "Something else."}))
    slates = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]])
    idle = torch.tensor([True, True, True, False])
    hybrid = HybridUsers(catalog, voice)
    hybrid.reset(4, seed=[1, 2, 3, 4])
    hybrid.respond_valid(slates, idle=idle)
    llm = LLMUsers(catalog, ScriptedChatModel(lambda call: json.dumps({
        "reactions": {i: {"action": "click", "reason": "ok"} for i in call.json_schema["properties"]["reactions"][
            "required"]}, "mindset": "Fine.", "satisfaction": 4, "leave": False, "instruction": None})))
    llm.reset(4, seed=[1, 2, 3, 4])
    llm.respond_valid(slates, idle=idle)
    assert hybrid.metrics()["hybrid_user_steps"] == llm.metrics()["llm_user_user_steps"] == 1


# ================================================================== 8. llama.cpp at exit
@pytest.mark.slow
def test_a_llama_cpp_model_left_open_exits_quietly(catalog):
    """LLM users on the embedded model, never closed: the model is freed at exit while
    llama_cpp is whole, not by Llama.__del__ in the interpreter's teardown (a traceback)."""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    from embedded_model import embedded_gguf

    embedded_gguf()
    script = ("from recoworld.catalog import Catalog; from recoworld.simulators.llm_user import LLMUsers; "
              "users = LLMUsers(Catalog.synthetic(50, n_genres=4, seed=0), "
              "{'backend': 'llama_cpp', 'n_ctx': 512, 'n_threads': 1}); print('built')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "built\n", "")
