"""LLM agents in rollouts: they hear their users when evaluated frozen (``learn=False``),
stop as soon as their fallbacks can no longer end within ``max_fallback_share``, and release
the model they built (``close``). Scripted models stand in for LLMs; the embedded SmolLM2
repairs for real in ``test_h76_repairs.py``."""

import json
import re

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401  (registers the envs)
from recoworld.agents.llm_agents import AgentFallbacksExceeded
from recoworld.agents.llm_bandit import LLMBandit
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.agents.llm_tools import LLMToolAgent
from recoworld.envs.rollout import rollout
from recoworld.llm import ScriptedChatModel, read_data

K = 3
#: Users who voice an instruction at their first step and never leave.
VOICING = {"voice_probability": 1.0, "instruction_threshold": 0.0, "leave_base": -30.0}


def make_env(n=2, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        **{"slate_size": K, "num_candidates": 12, "max_steps": 10, **kwargs})


def offered_ids(call) -> list[int]:
    prompt = call.messages[1]["content"]
    return [item["id"] for item in read_data(re.split(r"\n(?:Proposed movies|Candidates by)", prompt)[1])]


def good_reply(call) -> str:
    return json.dumps({"reasoning": "fits", "slate": offered_ids(call)[:K]})


def voiced(agent) -> list[str]:
    """The quoted instructions of the agent's prompts at rollout step 1."""
    return [re.search(r"User's current instruction: (.*)", t["prompt"]).group(1)
            for t in agent.traces if t["step"] == 1]


@pytest.mark.parametrize("learn", [True, False])
def test_a_frozen_llm_agent_still_hears_what_its_users_say(learn):
    # rollout(learn=False) (the OPE studies' evaluations) used to withhold every feedback,
    # so the agent only ever saw the structured form, "(paraphrased) ...".
    env = make_env(simulator_config=VOICING)
    agent = LLMRerank(llm=ScriptedChatModel(good_reply), n_proposals=5)
    spoken = []
    from recoworld.envs.rollout import Hook

    class Said(Hook):
        def on_step(self, step):
            spoken.extend(step.feedback.info["instruction_text"] if step.t == 0 else [])

    rollout(env, agent, 2, seed=0, hooks=[Said()], learn=learn)
    assert all(spoken)
    assert voiced(agent) == [f"<data>{json.dumps(s, ensure_ascii=False)}</data>" for s in spoken]
    # Hearing is not learning: frozen, the proposer saw no click.
    assert (agent.proposer.ridge.n > 0) == learn


def test_the_tool_agent_plans_from_the_users_words_when_frozen():
    env = make_env(simulator_config=VOICING)
    plan = json.dumps({"reasoning": "plan", "preferences": {"more": [], "less": [], "novelty": "any",
                                                            "exclude_seen": True},
                       "calls": [{"tool": "collaborative_score", "weight": 1.0}]})
    agent = LLMToolAgent(llm=ScriptedChatModel(lambda call: plan))
    rollout(env, agent, 2, seed=0, learn=False)
    assert voiced(agent) and all(v.startswith("<data>") for v in voiced(agent))


@pytest.mark.parametrize("agent_cls", [LLMRerank, LLMBandit])
def test_a_broken_llm_stops_the_rollout_as_soon_as_its_fallback_cap_cannot_be_met(agent_cls):
    # 2 users x 20 steps: at most 40 requests, of which 10% (4) may fall back. The 5th
    # failure, at step 2, makes the cap unreachable: the rollout used to run all 20 steps
    # and fail only in finish().
    llm = ScriptedChatModel(lambda call: "not json", max_repairs=0)
    agent = agent_cls(llm=llm, max_fallback_share=0.1)
    message = (f"6 of 6 LLM requests of agent {agent.name} (100%) fell back to its non-LLM order, more than "
               "max_fallback_share=0.1 allows even if the 34 requests the rollout may still make all succeed "
               "(stopped early, 6 of at most 40 requests in): the results would not be the LLM's. The first "
               "failure: no reply validated")
    with pytest.raises(AgentFallbacksExceeded, match=re.escape(message)) as stop:
        rollout(make_env(n=2), agent, 20, seed=0)
    assert "To accept fallbacks, raise agent.max_fallback_share (1.0 never stops a run)" in str(stop.value)
    assert len(llm.calls) == 6 and agent.step == 2
    assert [t["fallback"] for t in agent.traces] == ["invalid_reply"] * 6  # the last batch was traced too


def test_fallbacks_within_the_cap_never_stop_a_rollout_early():
    # Every other request fails: 50% of at most 8 requests is 4, and the rollout ends with
    # exactly 4 fallbacks; only more than the cap stops it.
    calls = iter(range(100))

    def every_other(call):
        return "not json" if next(calls) % 2 else good_reply(call)

    agent = LLMRerank(llm=ScriptedChatModel(every_other, max_repairs=0), n_proposals=5, max_fallback_share=0.5)
    rollout(make_env(n=2), agent, 4, seed=0)
    agent.finish()
    assert agent.counts["fallbacks"] == 4 and agent.counts["llm_requests"] == 8
    # A share of 1.0 never stops a run, however broken the model.
    never = LLMRerank(llm=ScriptedChatModel(lambda call: "not json", max_repairs=0), max_fallback_share=1.0)
    rollout(make_env(n=2), never, 4, seed=0)
    never.finish()
    assert never.counts["fallbacks"] == 8


def test_the_bound_of_a_continued_rollout_counts_the_requests_already_made():
    # 6 good requests, then a rollout of the same agent (setup=False) that may make 6 more,
    # all failing: 25% of 12 is 3, so the 4th fallback (step 1) stops it, not the 1st.
    agent = LLMRerank(llm=ScriptedChatModel(good_reply), n_proposals=5, max_fallback_share=0.25)
    env = make_env(n=2)
    rollout(env, agent, 3, seed=0)
    agent.llm = ScriptedChatModel(lambda call: "not json", max_repairs=0)
    with pytest.raises(AgentFallbacksExceeded, match=re.escape(
            "4 of 10 LLM requests of agent llm_rerank (40%) fell back to its non-LLM order, more than "
            "max_fallback_share=0.25 allows even if the 2 requests the rollout may still make all succeed "
            "(stopped early, 10 of at most 12 requests in)")):
        rollout(env, agent, 3, seed=0, setup=False)


class Closing(ScriptedChatModel):
    closed = 0

    def close(self):
        type(self).closed += 1
        super().close()


def test_close_releases_a_model_the_agent_built_once_and_leaves_a_given_one_alone(monkeypatch):
    from recoworld.agents import llm_agents

    monkeypatch.setattr(llm_agents, "make_chat_model", lambda *spec: Closing(good_reply))
    Closing.closed = 0
    built = LLMRerank(llm={"backend": "llama_cpp"}, n_proposals=5)
    rollout(make_env(n=2), built, 1, seed=0)
    built.close()
    built.close()
    assert Closing.closed == 1
    assert built.stats()["llm_calls"] == 2  # still reported after close
    rollout(make_env(n=2), built, 1, seed=1)  # used again: a fresh model
    assert Closing.closed == 1 and built.stats()["llm_calls"] == 2
    built.close()
    assert Closing.closed == 2

    given = Closing(good_reply)
    agent = LLMBandit(llm=given)
    rollout(make_env(n=2), agent, 1, seed=0)
    agent.close()
    assert Closing.closed == 2  # the caller's model, the caller's to close
    LLMToolAgent(planner="rules").close()  # never built a model: nothing to release
