"""LLM recommenders: prompts, validation of replies, fallbacks, traces and batching.

Most tests drive the agents with ``ScriptedChatModel``, each standing in for an LLM with a
given behaviour (named in the test); one test runs a real step of the embedded SmolLM2.
"""

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import recoworld  # noqa: F401  (registers the envs)
from recoworld.agents.base import Feedback
from recoworld.agents.bandits import UCB1
from recoworld.agents.llm_agents import AgentFallbacksExceeded
from recoworld.agents.llm_bandit import LLMBandit
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.agents.llm_tools import LLMToolAgent
from recoworld.envs.rollout import rollout
from recoworld.llm import ScriptedChatModel, read_data
from recoworld.types import CANDIDATE_IDS, INSTRUCTION, SESSION

K = 3


def make_env(n=2, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        **{"slate_size": K, "num_candidates": 12, "max_steps": 10, **kwargs})


def listed_ids(prompt: str) -> list[int]:
    """The item ids an agent's prompt offers, in order (the data block after the history)."""
    offered = re.split(r"\n(?:Proposed movies|Candidates by upper confidence bound)", prompt)[1]
    return [item["id"] for item in read_data(offered)]


def reply(slate, reasoning="fits the request"):
    return json.dumps({"reasoning": reasoning, "slate": [int(i) for i in slate]})


class CountingModel(ScriptedChatModel):
    """Counts ``chat_many`` calls, to check that an agent fans out a batch in one call."""

    def __init__(self, script, **kw):
        super().__init__(script, **kw)
        self.batches = []

    def chat_many(self, requests, **kw):
        requests = list(requests)
        self.batches.append(len(requests))
        return super().chat_many(requests, **kw)


def test_rerank_fans_out_one_chat_many_per_step_and_uses_the_llms_order():
    # Stands in for an LLM that always answers well: the last three proposals, reversed.
    llm = CountingModel(lambda call: reply(listed_ids(call.messages[-1]["content"])[::-1][:K]))
    env = make_env(n=4)
    agent = LLMRerank(llm=llm, n_proposals=6)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    assert llm.batches == [4]
    for b in range(4):
        offered = listed_ids(agent.traces[b]["prompt"])
        assert len(offered) == 6
        assert obs[CANDIDATE_IDS][b, action[b]].tolist() == offered[::-1][:K]
    assert agent.counts["llm_slates"] == 4 and agent.counts["fallbacks"] == 0


def test_rerank_rejects_ids_outside_the_proposals_and_repairs():
    # Stands in for an LLM that first names an item that was not proposed, then corrects itself.
    def answer(call):
        offered = listed_ids(call.messages[1]["content"])
        if len(call.messages) == 2:  # first attempt
            return reply([offered[0], offered[1], 99999])
        assert "That reply is invalid" in call.messages[-1]["content"]  # the repair turn
        return reply(offered[:K])

    llm = ScriptedChatModel(answer)
    env = make_env(n=1)
    agent = LLMRerank(llm=llm, n_proposals=5)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    assert llm.metrics()["llm_repairs"] == 1
    assert 99999 not in obs[CANDIDATE_IDS][0, action[0]]
    assert agent.counts["fallbacks"] == 0
    assert len(agent.traces[0]["replies"]) == 2


def test_rerank_falls_back_to_the_collaborative_order_and_counts_it():
    # Stands in for an LLM that keeps repeating an item, whatever it is told.
    def answer(call):
        offered = listed_ids(call.messages[1]["content"])
        return reply([offered[0], offered[0], offered[1]])

    env = make_env(n=2)
    agent = LLMRerank(llm=ScriptedChatModel(answer, max_repairs=1), n_proposals=5)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    proposer_top = np.argsort(-agent.proposer.score(obs), axis=1, kind="stable")[:, :K]
    assert np.array_equal(np.sort(action, 1), np.sort(proposer_top, 1))
    assert agent.counts["fallbacks"] == 2 and agent.counts.get("llm_slates", 0) == 0
    trace = agent.traces[0]
    assert trace["fallback"] == "invalid_reply" and "more than once" in trace["error"]
    assert len(trace["replies"]) == 2
    # The rollout's end refuses to pass the collaborative order off as the LLM's.
    with pytest.raises(AgentFallbacksExceeded, match=re.escape(
            "2 of 2 LLM requests of agent llm_rerank (100%) fell back to its non-LLM order, more than "
            "max_fallback_share=0.05 allows")):
        agent.finish()
    assert agent.stats()["fallbacks"] == 2 and agent.stats()["llm_requests"] == 2


def test_an_llm_agent_whose_requests_succeed_finishes_and_reports_its_counters():
    agent = LLMRerank(llm=ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[:K])),
                      n_proposals=5, max_fallback_share=0.0)
    env = make_env(n=2)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    agent.act(obs)
    agent.finish()  # no fallback: nothing to refuse, even at a share of 0
    assert agent.stats()["llm_slates"] == 2 and agent.stats()["fallbacks"] == 0
    with pytest.raises(ValueError, match="max_fallback_share"):
        LLMRerank(max_fallback_share=1.5)


def test_agents_quote_the_users_own_words_heard_in_feedback():
    # Stands in for any LLM: the test reads the prompt it was sent.
    env = make_env(n=1)
    agent = LLMRerank(llm=ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[:K])),
                      n_proposals=5)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    G = env.unwrapped.catalog.n_genres
    said = "Too much Comedy lately — show me something different, maybe some Sci-Fi."
    obs[INSTRUCTION][0, :] = 0.0
    obs[INSTRUCTION][0, 4] = 1.0  # more Sci-Fi
    obs[INSTRUCTION][0, G + 1] = -1.0  # less Comedy
    obs[SESSION][0] = [0.0, 3.0, 0.0]
    agent.act(obs)
    assert "User's current instruction: none." in agent.traces[-1]["prompt"]
    obs[SESSION][0] = [0.0, 3.0, 1.0]
    agent.act(obs)
    assert '(paraphrased) <data>"more Sci-Fi; less Comedy"</data>' in agent.traces[-1]["prompt"]
    info = {"instruction_text": np.array([said], dtype=object)}
    agent.update(Feedback(obs, np.zeros((1, K), int), np.zeros((1, K), int), np.zeros((1, K), bool),
                          np.zeros((1, K)), np.zeros((1, K), bool), np.zeros(1), obs, np.zeros(1, bool),
                          np.zeros(1, bool), np.ones(1, bool), info))
    agent.act(obs)
    assert f"User's current instruction: <data>{json.dumps(said, ensure_ascii=False)}</data>" \
        in agent.traces[-1]["prompt"]


def plan(calls, more=(), less=(), novelty="any"):
    return json.dumps({"reasoning": "plan", "calls": calls,
                       "preferences": {"more": list(more), "less": list(less), "novelty": novelty, "exclude_seen": True}})


def instructed_obs(env, agent, more=None, less=None):
    obs, _ = env.reset(seed=0)
    G = len(agent.genre_names)
    obs[INSTRUCTION][:] = 0.0
    if more is not None:
        obs[INSTRUCTION][:, agent.genre_names.index(more)] = 1.0
    if less is not None:
        obs[INSTRUCTION][:, G + agent.genre_names.index(less)] = -1.0
    obs[SESSION][:] = [0.0, 2.0, 1.0]
    return obs


def test_tool_agent_executes_the_llms_plan():
    # Stands in for an LLM that writes a sensible plan: drop Comedy, boost Drama, diversify.
    # The collaborative scores weigh 0.1 (standardised over 40 candidates they span at most
    # 2 sqrt(39) x 0.1 = 1.25), so the boost of 5 puts every Drama ahead of every other
    # candidate, with a margin in relevance that diversifying at 0.2 cannot overturn.
    calls = [{"tool": "category_filter", "exclude": ["Comedy"]}, {"tool": "collaborative_score", "weight": 0.1},
             {"tool": "category_boost", "genres": ["Drama"], "weight": 5.0}, {"tool": "diversify", "strength": 0.2}]
    llm = CountingModel(lambda call: plan(calls, more=["Drama"], less=["Comedy"]))
    env = make_env(n=3, num_candidates=40)
    agent = LLMToolAgent(llm=llm)
    agent.setup(env, seed=0)
    obs = instructed_obs(env, agent, more="Drama", less="Comedy")
    action = agent.act(obs)
    assert llm.batches == [3]
    comedy, drama = agent.genre_names.index("Comedy"), agent.genre_names.index("Drama")
    for b in range(3):
        ids = obs[CANDIDATE_IDS][b]
        shown = agent.genres[ids[action[b]]]
        assert not shown[:, comedy].any()
        n_drama = int((agent.genres[ids][:, drama] & ~agent.genres[ids][:, comedy]).sum())
        assert shown[:, drama].sum() == min(K, n_drama)
        assert agent.traces[b]["plan"]["preferences"]["less"] == ["Comedy"]
    # The plan is reused while the same instruction is current: no new request.
    obs[SESSION][:, 2] = 2.0
    obs[SESSION][:, 1] = 3.0
    agent.act(obs)
    assert llm.batches == [3] and agent.counts["plan_reused"] == 3


def test_tool_agent_skips_a_filter_that_would_empty_the_pool():
    # Stands in for an LLM that over-filters: keep only a genre of which there are too few candidates.
    env = make_env(n=1)
    obs, _ = env.reset(seed=0)
    catalog = env.unwrapped.catalog
    counts = catalog.genres.numpy()[obs[CANDIDATE_IDS][0]].sum(0)
    rare = list(catalog.genre_names)[int(np.argmin(counts))]
    assert counts.min() < K
    agent = LLMToolAgent(llm=ScriptedChatModel(lambda c: plan([{"tool": "category_filter", "include": [rare]}])))
    agent.setup(env, seed=0)
    obs = instructed_obs(env, agent, more=rare)
    action = agent.act(obs)
    assert len(set(action[0])) == K
    assert "category_filter skipped" in agent.traces[0]["notes"][0]


def test_tool_agent_refuses_unknown_genres_and_falls_back():
    # Stands in for an LLM that invents a genre the catalog does not have.
    bad = plan([{"tool": "category_boost", "genres": ["Westerns"], "weight": 1.0}])
    env = make_env(n=1)
    agent = LLMToolAgent(llm=ScriptedChatModel(lambda c: bad, max_repairs=1))
    agent.setup(env, seed=0)
    obs = instructed_obs(env, agent, more="Drama")
    action = agent.act(obs)
    assert agent.counts["fallbacks"] == 1
    top = np.argsort(-agent.proposer.score(obs)[0], kind="stable")[:K]
    assert sorted(action[0]) == sorted(top)
    assert "Westerns" in agent.traces[0]["error"] or "calls" in agent.traces[0]["error"]


def test_rule_planner_follows_the_structured_instruction_without_an_llm():
    env = make_env(n=2, num_candidates=40)
    agent = LLMToolAgent(planner="rules")
    agent.setup(env, seed=0)
    obs = instructed_obs(env, agent, more="Drama", less="Comedy")
    action = agent.act(obs)
    assert agent.llm is None and agent.name == "rule_tools"
    comedy = agent.genre_names.index("Comedy")
    for b in range(2):
        assert not agent.genres[obs[CANDIDATE_IDS][b, action[b]]][:, comedy].any()


def test_bandit_prompt_carries_the_ucb_statistics():
    # Stands in for an LLM that always explores: it picks the shortlist's last items.
    llm = ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[-K:]))
    env = make_env(n=2, num_candidates=20)
    agent = LLMBandit(guide=UCB1(c=0.5), llm=llm, n_shown=8)
    result = rollout(env, agent, 3, seed=0)
    assert result.interactions > 0 and agent.counts["llm_slates"] == 6
    assert "never shown (n 0, bonus unbounded)" in agent.traces[0]["prompt"]
    # Give every item a history, then read the prompt's statistics against UCB1's formula.
    guide = agent.guide
    rng = np.random.default_rng(0)
    guide.pulls[:] = rng.integers(1, 50, guide.pulls.shape)
    guide.clicks[:] = np.floor(guide.pulls * rng.random(guide.pulls.shape))
    obs, _ = env.reset(seed=1)
    agent.act(obs)
    n = guide.pulls.sum()
    rows = [(item["id"], re.match(r"mean ([\d.]+), n (\d+), bonus ([\d.]+)", item["statistics"]))
            for item in read_data(agent.traces[-1]["prompt"]) if "statistics" in item]
    assert len(rows) == 8 and all(r for _, r in rows)
    ucb = []
    for item, r in rows:
        mean, count, bonus = r.groups()
        assert float(mean) == pytest.approx(guide.clicks[item] / guide.pulls[item], abs=0.005)
        assert int(count) == guide.pulls[item]
        assert float(bonus) == pytest.approx(0.5 * np.sqrt(2 * np.log(n) / guide.pulls[item]), abs=0.005)
        ucb.append(guide.indices()[item])
    assert ucb == sorted(ucb, reverse=True)  # the shortlist is the top of UCB1's ranking


def test_bandit_rejects_items_off_the_shortlist():
    # Stands in for an LLM that picks items the bandit did not shortlist.
    def answer(call):
        prompt = call.messages[1]["content"]
        offered = listed_ids(prompt)
        return reply([offered[0], offered[1], 123456])

    env = make_env(n=1)
    agent = LLMBandit(llm=ScriptedChatModel(answer, max_repairs=0), n_shown=5)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    agent.act(obs)
    assert agent.counts["fallbacks"] == 1


def test_traces_go_to_a_jsonl_file(tmp_path):
    path = tmp_path / "traces" / "rerank.jsonl"
    env = make_env(n=2)
    agent = LLMRerank(llm=ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[:K])),
                      n_proposals=4, trace_path=str(path), keep_traces=False)
    rollout(env, agent, 2, seed=0)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 4 and agent.traces == []
    assert {r["user"] for r in records} == {0, 1} and all(len(r["slate"]) == K for r in records)


@pytest.mark.slow
def test_one_step_against_the_embedded_smollm2():
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    llm = LlamaCppChatModel(n_ctx=1024, n_threads=1, max_repairs=1)
    env = make_env(n=1)
    agent = LLMRerank(llm=llm, n_proposals=4, reason_chars=60, max_tokens=80)
    result = rollout(env, agent, 1, seed=0)
    assert result.interactions == 1
    trace = agent.traces[0]
    offered = listed_ids(trace["prompt"])
    assert len(set(trace["slate"])) == K and set(trace["slate"]) <= set(offered)
    assert agent.counts["llm_slates"] + agent.counts["fallbacks"] == 1
    assert trace["replies"] and llm.metrics()["llm_calls"] >= 1


@pytest.mark.parametrize("name", ["llm_rerank", "llm_bandit", "llm_tools"])
def test_the_fallback_limit_of_an_llm_agent_is_a_key_of_its_config(name):
    # The stop message and the README tell users to set agent.max_fallback_share; Hydra
    # refuses an override of a key the agent's YAML lacks, so each LLM agent's file holds it.
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        default = compose(config_name="config", overrides=[f"agent={name}"])
        raised = compose(config_name="config", overrides=[f"agent={name}", "agent.max_fallback_share=0.5"])
    scripted = ScriptedChatModel(lambda call: reply([0, 1, 2]))
    assert instantiate(default.agent, llm=scripted).max_fallback_share == 0.05
    assert instantiate(raised.agent, llm=scripted).max_fallback_share == 0.5


def sampled_seeds(agent_cls, seed, temperature, **kwargs):
    """The sampling seeds of every request a seeded rollout of 2 users x 2 steps makes."""
    llm = ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[:K]))
    agent = agent_cls(llm=llm, temperature=temperature, **kwargs)
    rollout(make_env(n=2), agent, 2, seed=seed)
    return [call.request.seed for call in llm.calls]


@pytest.mark.parametrize("agent_cls, kwargs", [(LLMRerank, {"n_proposals": 5}), (LLMBandit, {"n_shown": 5})])
def test_sampled_requests_carry_seeds_drawn_from_the_agents_seed(agent_cls, kwargs):
    # Without a seed, a sampling backend (llama.cpp, vLLM) draws a fresh one per call and a
    # seeded rollout would not replay its slates.
    first = sampled_seeds(agent_cls, 0, 0.8, **kwargs)
    assert len(first) == 4 and None not in first and len(set(first)) == 4  # one per user and step
    assert sampled_seeds(agent_cls, 0, 0.8, **kwargs) == first
    assert set(sampled_seeds(agent_cls, 1, 0.8, **kwargs)).isdisjoint(first)
    # Greedy decoding needs no seed, and without one its cache entries serve every seed.
    assert sampled_seeds(agent_cls, 0, 0.0, **kwargs) == [None] * 4


def test_tool_agent_plans_sampled_with_seeds_too():
    llm = ScriptedChatModel(lambda c: plan([{"tool": "collaborative_score", "weight": 1.0}], more=["Drama"]))
    env = make_env(n=2)
    agent = LLMToolAgent(llm=llm, temperature=0.5)
    agent.setup(env, seed=3)
    agent.act(instructed_obs(env, agent, more="Drama"))
    assert [c.request.seed for c in llm.calls] == [
        int(np.random.SeedSequence([3, 0, b]).generate_state(1)[0]) for b in range(2)]


@pytest.mark.parametrize("key, value, message", [
    ("history_shown", -1, "LLMRerank.history_shown=-1: must be an integer >= 0"),
    ("temperature", -0.5, "LLMRerank.temperature=-0.5: must be >= 0"),
    ("max_tokens", 0, "LLMRerank.max_tokens=0: must be an integer >= 1"),
    ("reason_chars", 0, "LLMRerank.reason_chars=0: must be an integer >= 1"),
])
def test_sampling_and_prompt_sizes_out_of_range_are_refused_when_the_agent_is_built(key, value, message):
    # history_shown=-1 used to slice the history from the end; the others failed only at
    # the first request, without the agent's name.
    with pytest.raises(ValueError, match=re.escape(message)):
        LLMRerank(**{key: value})


@pytest.mark.slow
def test_a_seeded_sampled_rollout_against_the_embedded_smollm2_replays_its_replies():
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    llm = LlamaCppChatModel(n_ctx=1024, n_threads=1, max_repairs=0)
    replies = []
    for _ in range(2):
        # 30 tokens, two dozen of them sampled at temperature 1 (the grammar writes the
        # opening): unseeded, two runs would not agree on them. SmolLM2's reasoning runs past
        # any budget here, so the reply is cut and falls back either way (hence the share of 1).
        agent = LLMRerank(llm=llm, n_proposals=4, reason_chars=60, max_tokens=30, temperature=1.0,
                          max_fallback_share=1.0)
        rollout(make_env(n=1), agent, 1, seed=5)
        replies.append((agent.traces[0]["replies"], agent.traces[0]["slate"]))
    assert replies[0] == replies[1]


def test_stats_hold_every_counter_in_every_rollout_and_only_that_rollouts_use_of_the_llm():
    # The runner averages each key of stats() over seeds: a key missing from one seed's
    # (no fallback there, or an LLM never asked) read NaN in metrics.json.
    llm = ScriptedChatModel(lambda c: reply(listed_ids(c.messages[1]["content"])[:K]))
    agent = LLMRerank(llm=llm, n_proposals=5)
    rollout(make_env(n=2), agent, 2, seed=0)
    first = agent.stats()
    assert first["fallbacks"] == 0 and first["llm_slates"] == 4 and first["llm_calls"] == 4
    rollout(make_env(n=2), agent, 1, seed=1)  # the same model serves a second rollout
    second = agent.stats()
    assert set(second) == set(first)
    assert second["llm_requests"] == second["llm_calls"] == second["llm_slates"] == 2
    # No user speaks in one step: the tool agent never builds its LLM, yet reports its counters.
    tools = LLMToolAgent(llm={"backend": "llama_cpp", "model": "/nonexistent.gguf"})
    rollout(make_env(n=2), tools, 1, seed=0)
    assert tools.llm is None
    stats = tools.stats()
    assert stats["no_instruction"] == 2 and stats["fallbacks"] == stats["plan_reused"] == stats["llm_calls"] == 0
