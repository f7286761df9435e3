"""The learning agents' class defaults are the tuned settings of ``conf/agent``, and agents
and envs speak one reward vocabulary (``recoworld.rewards``)."""

from pathlib import Path

import gymnasium as gym
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents.retention import RetentionSlateQ
from recoworld.agents.sb3 import TUNED, SB3Agent
from recoworld.agents.slateq import SlateQAgent
from recoworld.rewards import PRESETS, SIGNALS, RewardWeights

CONF = Path(__file__).resolve().parents[1] / "conf" / "agent"


def agent_from_config(name: str):
    config = OmegaConf.load(CONF / f"{name}.yaml")
    config.device = "cpu"  # ``${device}`` comes from the top-level config
    return instantiate(config)


def test_slateq_defaults_are_the_tuned_config():
    assert agent_from_config("slateq").config == SlateQAgent().config


def test_retention_slateq_defaults_are_the_tuned_config():
    configured, default = agent_from_config("retention_slateq"), RetentionSlateQ()
    assert configured.config == default.config
    assert configured.reward_weights == default.reward_weights == RewardWeights(watch_time=1.0, retention=1.0)


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn", "maskable_ppo"])
def test_sb3_agent_defaults_are_each_algorithms_tuned_config(name):
    configured = agent_from_config(name)
    default = SB3Agent(algo=configured.algo)
    assert configured.algo in TUNED
    for setting in ("training_formulation", "total_timesteps", "num_envs", "policy"):
        assert getattr(configured, setting) == getattr(default, setting), setting
    for setting in ("algo_kwargs", "policy_kwargs"):
        # Learning-rate schedules are compared by what they give along the run.
        as_configured, as_default = getattr(configured, setting), getattr(default, setting)
        assert as_configured.keys() == as_default.keys(), setting
        for key, value in as_default.items():
            if callable(value):
                assert [value(p) for p in (1.0, 0.5, 0.0)] == [as_configured[key](p) for p in (1.0, 0.5, 0.0)]
            else:
                assert as_configured[key] == value, (setting, key)


def test_dqn_trains_on_single_items_unless_told_otherwise():
    assert SB3Agent(algo="DQN").training_formulation == "single_item"
    assert SB3Agent(algo="DQN", formulation="sequential").training_formulation == "sequential"
    assert SB3Agent(algo="MaskablePPO").training_formulation == "sequential"


def test_every_signal_is_a_preset_and_slateq_reads_the_shared_vocabulary():
    assert set(SIGNALS) <= set(PRESETS)
    assert SlateQAgent(reward="likes").reward_weights == RewardWeights(likes=1.0)
    assert SlateQAgent(reward="mix").reward_weights == PRESETS["mix"]
    with pytest.raises(ValueError, match=r"reward weights name unknown signals \['clickz'\]; known signals"):
        SlateQAgent(reward={"clickz": 1.0})
    with pytest.raises(ValueError, match=r"reward='click' is not a preset"):
        SlateQAgent(reward="click")


def test_slateq_learns_what_the_env_pays_through_its_reward_weights():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       catalog=Catalog.synthetic(100, seed=0), num_candidates=10, slate_size=3,
                       reward={"watch_time": 1.0, "churn": 2.0})
    agent = SlateQAgent()
    agent.setup(env, seed=0)
    assert agent.reward_weights == env.unwrapped.reward_weights == RewardWeights(watch_time=1.0, churn=2.0)
