"""Agents and envs used as a careless researcher would: a device torch does not know, an
algorithm named in lower case, the sequential wrapper under Gymnasium's checker, an agent
set up on a single-user env, a tensor seed, the privileged channel before a reset, a
planner pickled."""

import pickle
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import recoworld  # noqa: F401  (registers the envs)
from recoworld.agents import LinUCB, NeuralLinearTS, PlanningOracle, RandomAgent, SB3Agent, SlateQAgent
from recoworld.agents.llm_bandit import LLMBandit
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.agents.llm_tools import LLMToolAgent
from recoworld.envs import InstructEnv, SlateEnv, SlateVectorEnv
from recoworld.envs.rollout import rollout
from recoworld.envs.wrappers import SequentialSlateEnv
from recoworld.types import Observation

SMALL = dict(slate_size=3, num_candidates=8, max_steps=4)
NOT_A_DEVICE = "device='gpu' is not a torch device; use 'cpu', 'cuda' or 'auto'"


@pytest.mark.parametrize("make", [lambda: SlateQAgent(device="gpu"), lambda: NeuralLinearTS(device="gpu"),
                                  lambda: SB3Agent(device="gpu")], ids=["slateq", "neural_linear", "sb3"])
def test_a_device_torch_does_not_know_is_named_when_the_agent_is_built(make):
    with pytest.raises(ValueError, match="^" + re.escape(NOT_A_DEVICE) + "$"):
        make()


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_sb3_agent_given_cuda_where_there_is_none_trains_on_the_cpu_as_sb3_does(device, monkeypatch):
    # Before: refused when built, "device=cuda but CUDA is not available" (since 4c5bef0;
    # SB3's get_device runs a CUDA device on the CPU where there is none, as this agent did).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    agent = SB3Agent(algo="A2C", total_timesteps=8, num_envs=2, algo_kwargs={"n_steps": 4}, device=device)
    agent.setup(SlateVectorEnv(2, **SMALL), seed=0)
    assert agent.model.device == torch.device("cpu")
    # SlateQ refused it before 4c5bef0, and NeuralLinearTS failed in setup: both still refuse it.
    for make in (SlateQAgent, NeuralLinearTS):
        with pytest.raises(ValueError, match="^" + re.escape(
                f"device={device} but CUDA is not available; use device='cpu' or 'auto'") + "$"):
            make(device=device)


def test_neural_linear_takes_auto_as_slateq_does():
    agent = NeuralLinearTS(device="auto")
    agent.setup(SlateVectorEnv(2, **SMALL), seed=0)
    assert next(agent.net.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("algo, hint", [("ppo", " (did you mean 'PPO'?)"), ("common", "")])
def test_an_algo_that_names_a_submodule_of_sb3_is_refused_with_the_class_meant(algo, hint):
    # stable_baselines3.ppo and stable_baselines3.common are modules, not algorithms.
    with pytest.raises(ValueError, match="^" + re.escape(
            f"algo={algo!r} is neither in stable_baselines3 nor in sb3_contrib{hint}; tested choices: "
            "('PPO', 'A2C', 'DQN', 'MaskablePPO')") + "$"):
        SB3Agent(algo=algo)


def test_the_sequential_wrapper_passes_gymnasiums_checker():
    # Built by gym.make, the env has a spec, from which the checker rebuilds the wrapper with each render mode.
    env = SequentialSlateEnv(gym.make("RecoWorld/Slate-v0", **SMALL).unwrapped, max_picks=5)
    check_env(env)
    assert env.spec.additional_wrappers[-1].kwargs == {"repeat_penalty": 1.0, "max_picks": 5}


def test_each_pick_of_the_sequential_wrapper_is_a_new_observation():
    env = SequentialSlateEnv(SlateEnv(**SMALL))
    first, _ = env.reset(seed=0)
    second = env.step(0)[0]
    assert all(not np.shares_memory(first[key], second[key]) for key in first)
    np.testing.assert_array_equal(first["candidate_ids"], second["candidate_ids"])


@pytest.mark.parametrize("action", [2.7, True, np.array([1, 2]), "3"])
def test_the_sequential_wrapper_refuses_a_pick_that_is_not_one_integer(action):
    env = SequentialSlateEnv(SlateEnv(**SMALL))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"action {action!r} is not a candidate index: pass one integer in 0..7") + "$"):
        env.step(action)
    assert env.step(np.int64(2))[4] == {"repeated": False}  # nothing was picked by the refused one


@pytest.mark.parametrize("setting, message", [
    (dict(max_picks=2), "SequentialSlateEnv.max_picks=2: must be an integer >= 3"),
    (dict(max_picks=-1), "SequentialSlateEnv.max_picks=-1: must be an integer >= 3"),
    (dict(repeat_penalty=float("nan")), "SequentialSlateEnv.repeat_penalty=nan: must be a finite number >= 0"),
    (dict(repeat_penalty=-1.0), "SequentialSlateEnv.repeat_penalty=-1.0: must be >= 0"),
])
def test_the_sequential_wrappers_settings_are_checked_by_name(setting, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        SequentialSlateEnv(SlateEnv(**SMALL), **setting)


def test_the_sequential_wrapper_refuses_a_pick_after_its_episode_ended():
    env = SequentialSlateEnv(SlateEnv(**SMALL), max_picks=3)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    assert env.step(0)[3]  # the third pick repeats again: the build is truncated
    with pytest.raises(RuntimeError, match="^" + re.escape(
            "the episode has ended (truncated after max_picks=3 picks for one slate); call env.reset() before "
            "step()") + "$"):
        env.step(1)
    env.reset(seed=0)
    assert env.step(1)[4] == {"repeated": False}


@pytest.mark.parametrize("make", [RandomAgent, LinUCB, lambda: SB3Agent(total_timesteps=8, num_envs=2)],
                         ids=["random", "linucb", "sb3"])
def test_an_agent_set_up_on_a_single_user_env_asks_for_a_vector_env(make):
    # Its observations have no batch dimension: RandomAgent read them as 8 users of one
    # candidate each, LinUCB failed inside act, and SB3Agent trained first.
    agent = make()
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{type(agent).__name__} serves a batch of users, but SlateEnv serves one, with observations that have "
            "no batch dimension; set it up with a vector env, gymnasium.make_vec('RecoWorld/Slate-v0', num_envs=B, "
            "vectorization_mode='vector_entry_point') (num_envs=1 for one user)") + "$"):
        agent.setup(gym.make("RecoWorld/Slate-v0", **SMALL), seed=0)


def test_a_0d_tensor_seed_is_the_seed_it_holds_on_both_faces():
    vector = SlateVectorEnv(3, **SMALL)
    assert vector.reset(seed=torch.tensor(4))[1]["episode_seed"].tolist() == [4, 5, 6]
    assert SlateEnv(**SMALL).reset(seed=torch.tensor(4))[1]["episode_seed"] == 4


@pytest.mark.parametrize("call", ["click_probabilities", "expected_clicks"])
@pytest.mark.parametrize("make", [lambda: SlateEnv(**SMALL), lambda: SlateVectorEnv(2, **SMALL)],
                         ids=["single", "vector"])
def test_the_privileged_channel_before_a_reset_asks_for_the_envs_reset(make, call):
    env = make()
    arguments = () if call == "click_probabilities" else ([0, 1, 2] if env.single else [[0, 1, 2]] * 2,)
    with pytest.raises(RuntimeError, match="^" + re.escape(
            f"call reset() before {call}(): the env's users start at its first reset") + "$"):
        getattr(env, call)(*arguments)


def test_a_single_envs_expected_clicks_names_a_batch_of_slates_by_its_own_shape():
    env = SlateEnv(**SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="^" + re.escape(
            "slates has shape (1, 3); a single-user env takes one slate of catalog ids, (K,)") + "$"):
        env.expected_clicks([[0, 1, 2]])


def test_a_planner_set_up_pickles_and_its_copy_plans_as_it_does():
    # Its draw scorer was a lambda, which pickle refuses (deepcopy had shared it).
    env = SlateVectorEnv(2, **SMALL)
    planner = PlanningOracle()
    planner.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    planner_copy, _ = pickle.loads(pickle.dumps((planner, env)))  # with the env it plans on
    np.testing.assert_array_equal(planner_copy.act(Observation(obs)), planner.act(Observation(obs)))


@pytest.mark.parametrize("make, message", [
    (lambda: LLMBandit(n_shown=float("nan")), "LLMBandit.n_shown=nan: must be an integer >= 1"),
    (lambda: LLMRerank(n_proposals=-1), "LLMRerank.n_proposals=-1: must be an integer >= 1"),
    (lambda: LLMToolAgent(max_calls=0), "LLMToolAgent.max_calls=0: must be an integer >= 1"),
    (lambda: NeuralLinearTS(l2=0), "NeuralLinearTS.l2=0: must be > 0"),
    (lambda: SB3Agent(reward="clickz"), "reward='clickz' is not a preset; choose one of ['clicks', 'watch_time', "
                                        "'likes', 'retention', 'churn', 'compliance', 'mix'] or give weights such as "
                                        "{'clicks': 1.0, 'retention': 5.0}"),
])
def test_an_agents_size_is_checked_by_name_when_it_is_built_not_at_its_first_act(make, message):
    # Before, a NaN shortlist failed in numpy's partition at the first act, a plan of at most
    # 0 calls in pydantic's schema, NeuralLinearTS's l2 and SB3Agent's reward in setup.
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make()


@pytest.mark.parametrize("argument, meant", [("num_candidate", " (did you mean 'num_candidates'?)"),
                                             ("history_show", " (did you mean 'history_shown'?)")])
def test_the_text_env_names_an_argument_it_does_not_take_as_the_slate_env_does(argument, meant):
    # It was Python's TypeError about SlateWorld.__init__.
    with pytest.raises(ValueError, match="^" + re.escape(
            f"RecoWorld/Instruct-v0 has no argument {argument!r}{meant}; its arguments are invalid_action, "
            "invalid_penalty, history_shown, max_instruction_chars, render_mode, catalog, simulator, simulator_config, "
            "population, slate_size, num_candidates, history_length, max_steps, reward, device, kernel, "
            "check_responses (help(recoworld.envs.InstructEnv) describes each)") + "$"):
        gym.make("RecoWorld/Instruct-v0", **{argument: 5})


def test_the_text_env_renders_nothing_as_the_slate_env_without_a_mode():
    env = InstructEnv(**SMALL)
    env.reset(seed=0)
    assert env.render() is None  # was Gymnasium's bare NotImplementedError


def test_a_rollout_on_gymnasiums_sync_vector_env_asks_for_recoworlds_own():
    # SyncVectorEnv gives no catalog: it was a bare AttributeError in the agent's setup.
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="sync", **SMALL)
    with pytest.raises(ValueError, match="^" + re.escape(
            "RandomAgent reads the world (catalog, slate_size, num_candidates) from the env it is set up with, which "
            "SyncVectorEnv does not give; set it up with RecoWorld's own vector env, gymnasium.make_vec("
            "'RecoWorld/Slate-v0', num_envs=B, vectorization_mode='vector_entry_point') (num_envs=1 for one user)")
            + "$"):
        rollout(env, RandomAgent(), n_steps=2, seed=0)
