"""Defects found by running every agent against every simulator and world through
``recoworld run`` (session s40, h160): each test holds one fix."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import pytest
from omegaconf import OmegaConf

import recoworld  # noqa: F401  (registers the envs)
from recoworld.agents.llm_agents import AgentFallbacksExceeded
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import check_action_format
from recoworld.llm import ScriptedChatModel, read_data
from run_support import TINY_RUN


def _offered(prompt: str) -> list[int]:
    return [item["id"] for item in read_data(prompt.split("\nProposed movies")[1])]


def test_an_llm_agents_fallback_error_names_the_agents_model_settings_not_the_users():
    # The LLM layer's hint names the run's root `llm` node (the users' model); for an agent
    # that fix would be taken by `recoworld run` and change nothing: it must say agent.llm.*.
    def repeats_an_item(call):
        offered = _offered(call.messages[1]["content"])
        return json.dumps({"reasoning": "same again", "slate": [offered[0], offered[0], offered[1]]})

    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       slate_size=3, num_candidates=12, max_steps=10)
    agent = LLMRerank(llm=ScriptedChatModel(repeats_an_item, max_repairs=0), n_proposals=5)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    agent.act(obs)
    with pytest.raises(AgentFallbacksExceeded, match=re.escape(
            "Fix: the model's replies did not follow the schema: use a stronger model, constrained decoding "
            "(agent.llm.structured_mode), or more repair turns (agent.llm.max_repairs). To accept fallbacks, "
            "raise agent.max_fallback_share")):
        agent.finish()


# ------------------------------------------------- env.action_format=scores with a slate agent

def test_scores_actions_with_recoworld_agents_are_refused_before_the_run_begins(tmp_path, capsys):
    """It used to start the run and end at the first step in a traceback from the env's action
    decoder ("action has shape (4, 10); expected one score per candidate, (4, 50)")."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app([*TINY_RUN, "experiment.agents=[random,linucb]", "env.action_format=scores", f"hydra.run.dir={out}"])
    assert capsys.readouterr().err.strip() == (
        "recoworld run: error: env.action_format=scores makes the env take one score per candidate, but agent=random "
        "returns a slate of env.slate_size candidate positions, as every RecoWorld agent does; leave "
        "env.action_format=slate (SB3 agents train on scores in an env of their own whatever it is)")
    assert sorted(p.name for p in out.iterdir()) == [".hydra", "recoworld.log"]  # no run was begun


def test_scores_actions_are_left_to_a_plug_in_agent_and_slates_pass():
    cfg = OmegaConf.create({"env": {"action_format": "scores"}})
    check_action_format(cfg, {"mine": OmegaConf.create({"_target_": "my_pkg.ScoringAgent"})})
    cfg.env.action_format = "slate"
    check_action_format(cfg, {"random": OmegaConf.create({"_target_": "recoworld.agents.baselines.RandomAgent"})})
