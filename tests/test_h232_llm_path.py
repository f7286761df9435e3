"""The LLM path's loose ends (h232): a cache whose disk fills up keeps the paid answers and
says so once; an LLM agent's fixes name its own keys, which its config declares, so they are
set without Hydra's ``+``; ``recoworld fidelity`` stops on a spent budget with one line that
names its own flag."""

from __future__ import annotations

import logging
from dataclasses import fields

import pytest

from fake_openai_server import Answer, FakeOpenAIServer, FakeSleep
from recoworld.apps.run.app import main as run_app
from recoworld.llm import Budget, ChatCache, LLMConfig
from recoworld.llm.openai_backend import OpenAIChatModel
from recoworld.llm.types import Completion
from tests.test_h182_fidelity_llm_fallbacks import fidelity, openai, own_cache, watches_everything  # noqa: F401
from tests.test_h216_llm_findings import composed
from tests.test_probe_reports import world_dir  # noqa: F401  (a fixture: the small world and its log file)

LLM_AGENTS = ["llm_rerank", "llm_bandit", "llm_tools"]


# ============================================================== 1. a cache on a full disk
def full_disk(path) -> str:
    return (f"the LLM cache {path} is on a full disk (SQLITE_FULL): from now on the generations made are used but "
            "not stored, so a re-run pays for them again, while those stored are still replayed; free space on that "
            "disk, or set llm.cache_dir (an LLM agent's own cache: agent.llm.cache_dir) to a directory on another")


def echo(body: dict) -> Answer:
    """A server that repeats the question, padded to a reply that needs new pages in the cache."""
    return Answer.chat(body["messages"][-1]["content"] + " " + "x" * 20_000)


def test_a_cache_that_fills_up_keeps_the_paid_answers_and_says_so_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("recoworld.llm.cache.BUSY_TIMEOUT_S", 2.0)  # a writers' lock left held fails fast
    path = tmp_path / "cache.sqlite"
    with FakeOpenAIServer([echo]) as server:
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, cache=path, sleep=FakeSleep())
        assert llm.chat("one").text.startswith("one ")
        # A real SQLITE_FULL from now on: the file may grow by no more pages.
        db = llm.cache._connection()
        db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
        with caplog.at_level(logging.WARNING, "recoworld.llm"):
            assert llm.chat("two").text.startswith("two ") and llm.chat("three").text.startswith("three ")
            again = llm.chat("one")  # what it holds is still replayed
        assert [r.getMessage() for r in caplog.records if r.name == "recoworld.llm"] == [full_disk(path)]
        assert again.cached and again.text.startswith("one ")
        usage = llm.metrics()
        assert (usage["llm_calls"], usage["llm_cache_hits"], usage["llm_replies"]) == (3, 1, 4)
        assert len(server.requests) == 3 and llm.cache.full
        llm.close()
    other = ChatCache(path)  # no transaction was left open: another connection writes at once
    other.put("k", Completion("z", 1, 1, "stop"))
    assert len(other) == 2 and other.get("k").text == "z" and not other.full
    other.close()


# ============================================================== 2. and 3. an LLM agent's own keys
@pytest.mark.parametrize("agent", LLM_AGENTS)
def test_the_llm_agents_declare_the_keys_their_fixes_name_at_the_codes_defaults(agent):
    named = {"timeout_s", "max_retries", "structured_mode", "api_key_env", "n_ctx", "base_url", "model",
             "max_concurrency", "max_repairs", *(f.name for f in fields(Budget)), "prompt_usd_per_1m",
             "completion_usd_per_1m"}
    llm = composed(f"agent={agent}").agent.llm
    assert named <= set(llm)
    defaults = LLMConfig()
    # Their own, not the users': max_repairs and the shared cache are the agents' deliberate choices.
    assert {key: llm[key] for key in named - {"max_repairs"}} == {key: getattr(defaults, key)
                                                                   for key in named - {"max_repairs"}}
    moved = composed(f"agent={agent}", "agent.llm.max_calls=3", "agent.llm.max_total_tokens=900",
                     "agent.llm.max_cost_usd=0.5", "agent.llm.timeout_s=5", "agent.llm.prompt_usd_per_1m=0.15")
    assert (moved.agent.llm.max_calls, moved.agent.llm.max_total_tokens, moved.agent.llm.max_cost_usd,
            moved.agent.llm.timeout_s, moved.agent.llm.prompt_usd_per_1m) == (3, 900, 0.5, 5, 0.15)
    assert moved.llm.get("max_calls") is None  # the users' budget is left alone


def stopped_run(tmp_path, capsys, *overrides: str) -> str:
    """The last line an LLM agent's small run on the embedded model printed; it must stop."""
    with pytest.raises(SystemExit) as exit_info:
        run_app(["agent=llm_rerank", "world=synthetic", "experiment=llm", f"llm.cache_dir={tmp_path / 'cache'}",
                 f"hydra.run.dir={tmp_path / 'run'}", *overrides])
    assert exit_info.value.code == 1
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_an_llm_agents_budget_is_set_without_a_plus_and_stops_the_run(tmp_path, capsys):
    assert stopped_run(tmp_path, capsys, "agent.llm.max_calls=0") == (
        "recoworld run: stopped: call budget reached: 0 calls made and 0 in flight of max_calls=0; raise max_calls "
        "(recoworld run: llm.max_calls for the LLM users' model, agent.llm.max_calls for an LLM agent's; recoworld "
        "fidelity: --llm max_calls=...; Python: LLMConfig.max_calls) to continue")


def test_an_llm_agents_timeout_names_its_own_key_which_is_set_without_a_plus(tmp_path, capsys):
    line = stopped_run(tmp_path, capsys, "agent.llm.timeout_s=0.001")
    assert line.startswith("recoworld run: stopped: AgentFallbacksExceeded: 2 of 2 LLM requests of agent llm_rerank")
    assert ("TimeoutError: the generation took longer than timeout_s=0.001 and was stopped. Fix: raise "
            "agent.llm.timeout_s (now 0.001), or lower max_tokens (LLM users: simulator.config.max_tokens; LLM "
            "agents: agent.max_tokens); an in-process generation that runs out of time is not retried") in line


# ============================================================== 4. fidelity on a spent budget
def test_a_spent_budget_stops_fidelity_in_one_line_naming_its_flag(world_dir, tmp_path, capsys):
    out = tmp_path / "report"
    with FakeOpenAIServer([watches_everything]) as server:
        assert fidelity(world_dir, out, "--llm-users", "2", *openai(server.base_url), "--llm", "max_calls=4") == 1
        assert len(server.requests) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"recoworld fidelity: stopped before the report was complete, nothing was written to {out}: "
                       "call budget reached: 4 calls made and 0 in flight of max_calls=4; raise --llm max_calls=... "
                       "to continue")
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()
