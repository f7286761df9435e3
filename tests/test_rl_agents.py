"""Deep and multi-turn RL agents: the SB3 adapters, the sequential formulation, SlateQ,
retention-aware and instruction-following agents.

Worlds are kept tiny (the test host has two shared cores): the learning tests check that
an agent beats a reference clearly on a small world, not how well it does at scale
(``benchmarks/train_throughput.py`` and ``benchmarks/RESULTS.md`` report larger runs).
"""

import itertools
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.utils import LinearSchedule

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents import RandomAgent
from recoworld.agents.linear import LinUCB
from recoworld.agents.retention import EnjoymentLinUCB, InstructionFollowing, RetentionSlateQ
from recoworld.agents.sb3 import SB3Agent, SB3Recommender
from recoworld.agents.sb3_policies import CandidateScoringPolicy, catalog_policy_kwargs
from recoworld.agents.slate_optimizers import choice_probabilities, optimize_slate, slate_value
from recoworld.agents.slateq import SlateQAgent
from recoworld.envs.sb3_vec import SB3SlateVecEnv, make_training_env
from recoworld.envs.rollout import Hook, rollout
from recoworld.envs.slate import SlateEnv
from recoworld.envs.wrappers import SequentialSlateEnv

SMALL = dict(catalog=Catalog.synthetic(200, seed=0), num_candidates=20, slate_size=5, max_steps=40)
# Users who care about being listened to: an instruction's compliance moves their mindset
# strongly, and their mindset decides whether they come back.
LISTENERS = dict(compliance_weight=2.0, return_mindset=8.0, instruction_threshold=0.2)
# SlateQ as these tests were written for it: one update per step at a lower rate keeps them
# fast on a shared host (the class defaults are tuned for the default world's 256 users).
SMALL_SLATEQ = dict(slate_optimizer="exact", epsilon=0.1, learning_rate=1e-3, gradient_steps=1)
# RetentionSlateQ's reward for listening users: retention weighs heavily, compliance counts,
# and the exposure values credit what the whole slate does to the mindset.
LISTENING_RETENTION = dict(retention_weight=5.0, compliance_weight=1.0, gamma=0.95, exposure_value=True)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small networks on a shared 2-core host run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def sb3_logs_in_a_temporary_folder(tmp_path_factory):
    """The tests that call SB3's learn() directly leave its empty log folder there, not in /tmp."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield


def make_vec(n, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        **{**SMALL, **kwargs})


class Totals(Hook):
    """Sums the signals of the real interactions of a rollout."""

    def on_start(self, env, agent, seed, label):
        self.total = dict(interactions=0, clicks=0.0, left=0, returned=0, churned=0, in_force=0, compliance=0.0,
                          enjoyment=0.0)

    def on_step(self, step):
        total, info, valid = self.total, step.feedback.info, step.feedback.valid
        total["interactions"] += int(valid.sum())
        total["clicks"] += float(info["clicked"][valid].sum())
        total["enjoyment"] += float(((info["rating"][valid] - 1) / 4 * info["clicked"][valid]).sum())
        total["left"] += int(info["left_session"][valid].sum())
        total["returned"] += int(info["returned"][valid].sum())
        total["churned"] += int(info["churned"][valid].sum())
        in_force = valid & info["instruction_in_force"]
        total["in_force"] += int(in_force.sum())
        total["compliance"] += float(info["compliance"][in_force].sum())


def run(agent, env, steps, seed, learn=True, setup=True):
    """Serve ``steps`` batched steps (the one rollout loop); returns per-interaction means of the signals."""
    totals = Totals()
    rollout(env, agent, steps, seed, hooks=[totals], setup=setup, learn=learn, env_seed=seed)
    total = totals.total
    return {
        "clicks": total["clicks"] / total["interactions"],
        "return_rate": total["returned"] / max(total["left"], 1),
        "churn": total["churned"] / total["interactions"],
        "compliance": total["compliance"] / max(total["in_force"], 1),
        "enjoyment": total["enjoyment"] / max(total["clicks"], 1),  # (rating - 1) / 4 of what was clicked
    }


def assert_valid_slates(slates, batch, num_candidates, slate_size):
    slates = np.asarray(slates)
    assert slates.shape == (batch, slate_size)
    assert np.issubdtype(slates.dtype, np.integer)
    assert slates.min() >= 0 and slates.max() < num_candidates
    assert all(len(set(row)) == slate_size for row in slates.tolist())


# ------------------------------------------------------------------ SB3 adapters
def test_ppo_trains_on_the_plain_scores_env_without_wrappers():
    model = PPO("MultiInputPolicy", gym.make("RecoWorld/Slate-v0", action_format="scores"),
                n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(128)
    assert model.num_timesteps == 128


def test_sb3_vec_env_lives_the_vector_envs_episodes():
    """Same seeds, same actions: identical rewards, the autoreset one step earlier."""
    n, steps = 3, 40
    kwargs = dict(**SMALL, action_format="scores")
    kwargs["max_steps"] = 12
    sb3 = SB3SlateVecEnv(num_envs=n, **kwargs)
    sb3.seed(5)
    sb3.reset()
    gym_env = gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    gym_env.reset(seed=[5, 6, 7])
    scores = np.linspace(1, -1, SMALL["num_candidates"], dtype=np.float32)
    actions = np.tile(scores, (n, 1))
    sb3_rewards, gym_rewards, dones = [[] for _ in range(n)], [[] for _ in range(n)], 0
    for _ in range(steps):
        _, reward, done, infos = sb3.step(actions)
        for i in range(n):
            sb3_rewards[i].append(reward[i])
            if done[i]:
                dones += 1
                assert set(infos[i]) == {"terminal_observation", "TimeLimit.truncated"}
        _, reward, _, _, info = gym_env.step(actions)
        for i in np.flatnonzero(~info["autoreset"]):
            gym_rewards[i].append(reward[i])
    assert dones >= n  # every slot went through at least one autoreset
    for i in range(n):
        common = min(len(sb3_rewards[i]), len(gym_rewards[i]))
        np.testing.assert_allclose(sb3_rewards[i][:common], gym_rewards[i][:common])


def test_ppo_on_batched_users_and_the_adapter_serves_valid_slates():
    venv = SB3SlateVecEnv(num_envs=8, **SMALL, action_format="scores")
    model = PPO(CandidateScoringPolicy, venv, n_steps=16, batch_size=64, n_epochs=2, seed=0,
                policy_kwargs=catalog_policy_kwargs(venv.catalog))
    model.learn(256)
    assert model.num_timesteps == 256 and venv.env_seconds > 0
    env = make_vec(6, action_format="scores")
    agent = SB3Recommender(model)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=1)
    slates = agent.act(obs)
    assert_valid_slates(slates, 6, SMALL["num_candidates"], SMALL["slate_size"])
    # The slate is the top-K of the policy's mean scores, which the env ranks the same way.
    scores = agent.score(obs)
    assert np.all(np.take_along_axis(scores, slates, 1)[:, -1:] >= np.sort(scores, 1)[:, -SMALL["slate_size"]:][:, :1])
    # A slate-format env serves the same slates: the adapter needs no scores-format env.
    slate_env = make_vec(6)
    agent.setup(slate_env, seed=0)
    obs, _ = slate_env.reset(seed=1)
    slate_env.step(agent.act(obs))


def test_sb3_agent_trains_itself_on_a_twin_of_the_env():
    env = make_vec(4)
    agent = SB3Agent(algo="A2C", total_timesteps=64, num_envs=4, algo_kwargs={"n_steps": 8})
    agent.setup(env, seed=0)
    assert agent.model.num_timesteps == 64 and not agent.learns
    obs, _ = env.reset(seed=0)
    assert_valid_slates(agent.act(obs), 4, SMALL["num_candidates"], SMALL["slate_size"])
    with pytest.raises(ValueError, match="neither in stable_baselines3 nor in sb3_contrib"):
        SB3Agent(algo="PPOO")  # refused when built, before any training or rollout


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_envs=0), "SB3Agent.num_envs=0: must be an integer >= 1"),
    (dict(total_timesteps=2.5), "SB3Agent.total_timesteps=2.5: must be an integer >= 1"),
    (dict(algo_kwargs={"learning_rate": 0.0}), "SB3Agent.algo_kwargs.learning_rate=0.0: must be > 0"),
    (dict(algo="DQN", algo_kwargs={"learning_rate": -1e-3}), "SB3Agent.algo_kwargs.learning_rate=-0.001: must be > 0"),
    (dict(algo_kwargs={"learning_rate": LinearSchedule(-1e-3, 0.0, 1.0)}),  # a schedule's first rate
     "SB3Agent.algo_kwargs.learning_rate=-0.001: must be > 0"),
    (dict(load_path="/nowhere/model.zip"), ("load_path='/nowhere/model.zip': no such file; give the .zip that "
                                            "SB3's model.save wrote (e.g. SB3Agent(save_path=...))")),
])
def test_sb3_agent_refuses_bad_settings_by_name_when_built(kwargs, message):
    with pytest.raises(ValueError) as error:
        SB3Agent(**kwargs)
    assert str(error.value) == message


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Tiny PPO and A2C models trained on SMALL's world and saved: their paths by algorithm."""
    folder = tmp_path_factory.mktemp("models")
    paths = {algo: str(folder / f"{algo}.zip") for algo in ("PPO", "A2C")}
    SB3Agent(algo="PPO", total_timesteps=16, num_envs=4, algo_kwargs={"n_steps": 4, "batch_size": 16, "n_epochs": 1},
             save_path=paths["PPO"]).setup(make_vec(4), seed=0)
    SB3Agent(algo="A2C", total_timesteps=16, num_envs=4, algo_kwargs={"n_steps": 4},
             save_path=paths["A2C"]).setup(make_vec(4), seed=0)
    return paths


def test_a_saved_model_is_refused_when_algo_names_another_algorithm(saved_models):
    ppo, a2c = saved_models["PPO"], saved_models["A2C"]
    env = make_vec(4)
    agent = SB3Agent(algo="A2C", load_path=a2c)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    assert_valid_slates(agent.act(obs), 4, SMALL["num_candidates"], SMALL["slate_size"])
    with pytest.raises(ValueError) as error:  # SB3 loaded it, and it acted as PPO with A2C's weights
        SB3Agent(algo="PPO", load_path=a2c)
    assert str(error.value) == (f"load_path={a2c!r} holds a model saved by A2C (policy CandidateScoringPolicy), "
                                "not by algo='PPO'; give algo=A2C")
    with pytest.raises(ValueError) as error:  # SB3 failed inside DQN's replay buffer
        SB3Agent(algo="DQN", load_path=ppo)
    assert str(error.value) == (f"load_path={ppo!r} holds a model saved by PPO (policy CandidateScoringPolicy), "
                                "not by algo='DQN'; give algo=PPO")


def test_a_saved_model_is_read_once_when_the_agent_is_built(saved_models, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(Path(saved_models["A2C"]).read_bytes())
    agent = SB3Agent(algo="A2C", load_path=str(tmp_path / "model"))  # SB3's name without .zip reads the same
    path.write_bytes(Path(saved_models["PPO"]).read_bytes())  # what setup loads is what was checked
    agent.setup(make_vec(4), seed=0)
    assert type(agent.model).__name__ == "A2C"
    path.unlink()
    agent.setup(make_vec(4), seed=1)  # each rollout's setup loads the same bytes again, not the file
    assert type(agent.model).__name__ == "A2C"


def test_a_sampling_sb3_policy_shows_the_same_slates_for_the_same_seed(saved_models):
    """SB3 samples from torch's global generator; the agent's seed used not to reach it."""
    env = make_vec(4)
    obs, _ = env.reset(seed=0)

    def slates(seed, global_seed):
        agent = SB3Agent(algo="PPO", load_path=saved_models["PPO"], deterministic=False)
        agent.setup(env, seed=seed)
        torch.manual_seed(global_seed)  # whatever the global generator holds, it is not the agent's
        return np.stack([agent.act(obs) for _ in range(3)])

    np.testing.assert_array_equal(slates(3, global_seed=1), slates(3, global_seed=2))
    assert (slates(3, global_seed=1) != slates(4, global_seed=1)).any()


def test_a_file_that_is_not_a_saved_model_is_refused_naming_it(tmp_path):
    path = tmp_path / "model.zip"
    path.write_text("not a zip")
    with pytest.raises(ValueError) as error:
        SB3Agent(algo="PPO", load_path=str(path))
    assert str(error.value) == (f"load_path={str(path)!r} is not a model saved by SB3 (a .zip holding its data); "
                                "give the .zip that SB3's model.save wrote")


def test_a_saved_model_is_refused_on_an_env_whose_observations_differ(saved_models):
    def setup(**env_kwargs):
        agent = SB3Agent(algo="PPO", load_path=saved_models["PPO"])
        agent.setup(make_vec(4, **env_kwargs), seed=0)
        return agent

    with pytest.raises(ValueError) as error:  # was a tensor size mismatch inside the policy
        setup(history_length=5)
    assert str(error.value) == (
        "the model was trained on other observations than this env gives: "
        "history_feedback: the model's Box(0.0, 1.0, (10, 2), float32), the env's Box(0.0, 1.0, (5, 2), float32) "
        "(set by history_length); "
        "history_items: the model's Box(-1, 199, (10,), int64), the env's Box(-1, 199, (5,), int64) "
        "(set by history_length and the catalog's number of items). "
        "Evaluate it on an env built like the one it was trained on")
    with pytest.raises(ValueError) as error:  # was an IndexError in the catalog's feature table
        setup(catalog=Catalog.synthetic(300, seed=0))
    assert ("candidate_ids: the model's Box(0, 199, (20,), int64), the env's Box(0, 299, (20,), int64) "
            "(set by num_candidates and the catalog's number of items)") in str(error.value)
    with pytest.raises(ValueError, match=r"action space Box\(-1.0, 1.0, \(20,\), float32\) fits none"):
        setup(num_candidates=30)
    # The candidate-scoring policy holds the catalog's features: an env that does not send them is served.
    assert setup(candidate_features=False).formulation == "scores"


def test_sb3_agent_without_tensorboard_leaves_no_folder_in_the_temp_dir_and_logs_to_stdout_when_verbose(
        tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SB3_LOGDIR")  # SB3 would make its folder there instead
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = make_vec(4)
    SB3Agent(algo="A2C", total_timesteps=16, num_envs=4, algo_kwargs={"n_steps": 4}).setup(env, seed=0)
    assert list(tmp_path.glob("SB3-*")) == [] and capsys.readouterr().out == ""
    SB3Agent(algo="PPO", total_timesteps=16, num_envs=4,  # PPO logs every rollout, A2C every 100th
             algo_kwargs={"n_steps": 4, "batch_size": 16, "n_epochs": 1, "verbose": 1}).setup(env, seed=0)
    assert list(tmp_path.glob("SB3-*")) == [] and "total_timesteps" in capsys.readouterr().out


def test_candidate_scoring_starts_uniform_and_keeps_its_mean_scores_inside_the_action_box():
    """The untrained policy ranks at random; however large its raw scores grow, the means
    it is frozen with stay inside the box the env clips training samples to."""
    venv = SB3SlateVecEnv(num_envs=4, **SMALL, action_format="scores")
    model = PPO(CandidateScoringPolicy, venv, n_steps=8, batch_size=32, seed=0,
                policy_kwargs={**catalog_policy_kwargs(venv.catalog), "score_bound": 0.5})
    agent = SB3Recommender(model)
    env = make_vec(4, action_format="scores")
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    assert np.abs(agent.score(obs)).max() < 0.05
    with torch.no_grad():
        model.policy.mlp_extractor.score.weight.mul_(300)
        model.policy.mlp_extractor.score.bias.add_(1e4)  # a common shift changes no ranking
    scores = agent.score(obs)
    assert 0.1 < np.abs(scores).max() <= 0.5
    K = SMALL["slate_size"]
    assert np.all(np.take_along_axis(scores, agent.act(obs), 1)[:, -1] >= np.sort(scores, 1)[:, -K])


def test_dqn_scores_each_candidate_with_one_network():
    """DQN's Q-network is the candidate scorer: permuting the candidates permutes their Q-values."""
    env = make_vec(2)
    agent = SB3Agent(algo="DQN", formulation="sequential", total_timesteps=32, num_envs=2,
                     algo_kwargs={"learning_starts": 16, "buffer_size": 100, "batch_size": 8})
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=0)
    order = np.random.default_rng(0).permutation(SMALL["num_candidates"])
    permuted = {**obs, "candidate_ids": obs["candidate_ids"][:, order],
                "candidate_features": obs["candidate_features"][:, order]}
    np.testing.assert_allclose(agent.score(permuted), agent.score(obs)[:, order], rtol=1e-5, atol=1e-6)


def test_single_item_dqn_trains_on_slates_of_one_and_serves_the_top_k_by_q_value():
    env = make_vec(4)
    agent = SB3Agent(algo="DQN", formulation="single_item", total_timesteps=64, num_envs=4,
                     algo_kwargs={"learning_starts": 16, "buffer_size": 100, "batch_size": 8})
    agent.setup(env, seed=0)
    assert agent.model.num_timesteps == 64 and agent.formulation == "single_item"
    assert agent.model.action_space == spaces.Discrete(SMALL["num_candidates"])
    assert agent.train_env.venv.venv.slate_size == 1  # VecMonitor(SingleItemVecEnv(slates of one))
    obs, _ = env.reset(seed=3)
    slates = agent.act(obs)
    assert_valid_slates(slates, 4, SMALL["num_candidates"], SMALL["slate_size"])
    q = agent.score(obs)
    K = SMALL["slate_size"]
    np.testing.assert_array_equal(np.sort(np.take_along_axis(q, slates, 1), 1), np.sort(q, 1)[:, -K:])
    with pytest.raises(ValueError, match=r"formulation='single_item' does not suit algo='PPO'; choose one of \('scores',\)"):
        SB3Agent(algo="PPO", formulation="single_item")
    with pytest.raises(ValueError, match="formulation='pairs'; choose one of"):
        make_training_env(env, 2, "pairs")


# ------------------------------------------------------------ sequential slates
def test_sequential_env_builds_a_slate_pick_by_pick():
    env = SequentialSlateEnv(SlateEnv(**SMALL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded feature boxes draw a generic warning
        sb3_check_env(env)
    obs, _ = env.reset(seed=0)
    K = SMALL["slate_size"]
    for k in range(K - 1):
        obs, reward, terminated, truncated, info = env.step(k)
        assert reward == 0.0 and obs["chosen"][: k + 1].all() and not info["repeated"]
    assert not env.action_masks()[: K - 1].any() and env.action_masks()[K - 1:].all()
    obs, reward, _, _, info = env.step(0)  # already on the slate
    assert reward == -1.0 and info["repeated"]
    obs, reward, _, _, info = env.step(K - 1)  # the K-th pick shows the slate
    assert "clicked" in info and obs["chosen"].sum() == 0
    with pytest.raises(ValueError, match="action_format='slate'"):
        SequentialSlateEnv(SlateEnv(**SMALL, action_format="scores"))


@pytest.mark.parametrize("algo", ["DQN", "MaskablePPO"])
def test_sequential_learners_serve_valid_slates(algo):
    env = make_vec(4)
    kwargs = {"DQN": {"learning_starts": 16, "buffer_size": 1000, "batch_size": 16},
              "MaskablePPO": {"n_steps": 16, "batch_size": 32, "n_epochs": 1}}[algo]
    agent = SB3Agent(algo=algo, formulation="sequential", total_timesteps=64, num_envs=2, algo_kwargs=kwargs)
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=3)
    assert agent.formulation == "sequential"
    assert_valid_slates(agent.act(obs), 4, SMALL["num_candidates"], SMALL["slate_size"])


# ------------------------------------------------------------------------ SlateQ
def test_slate_value_matches_a_hand_computation():
    # v = (2, 1) for the slate, v_null = 1: P = (2/4, 1/4) and 1/4 for no click.
    v, q = torch.tensor([[2.0, 1.0]]), torch.tensor([[3.0, 6.0]])
    v_null, q_null = torch.tensor([1.0]), torch.tensor([0.5])
    torch.testing.assert_close(choice_probabilities(v, v_null), torch.tensor([[0.5, 0.25, 0.25]]))
    # Q = 2/4 * 3 + 1/4 * 6 + 1/4 * 0.5 = 3.125
    torch.testing.assert_close(slate_value(v, q, v_null, q_null), torch.tensor([3.125]))


def test_exact_slate_optimisation_beats_the_top_k_heuristic_where_it_fails():
    # One slot. Candidate 0 is very attractive but worth little (v q = 10 / 11 = 0.91 as a
    # slate); candidates 1 and 2 are worth 5 when chosen (v q = 5, slate value 5 / 2 = 2.5).
    v, q = torch.tensor([[10.0, 1.0, 1.0]]), torch.tensor([[1.0, 5.0, 5.0]])
    v_null, q_null = torch.ones(1), torch.zeros(1)
    assert optimize_slate(v, q, v_null, q_null, 1, "top_k").tolist() == [[0]]
    assert optimize_slate(v, q, v_null, q_null, 1, "exact").tolist() in ([[1]], [[2]])


def test_exact_slate_optimisation_finds_the_brute_force_optimum():
    gen = torch.Generator().manual_seed(0)
    B, C, K = 64, 7, 3
    v = torch.exp(torch.randn(B, C, generator=gen))
    q = torch.randn(B, C, generator=gen) * 2
    v_null, q_null = torch.exp(torch.randn(B, generator=gen)), torch.randn(B, generator=gen)
    best = optimize_slate(v, q, v_null, q_null, K, "exact")
    found = slate_value(v.gather(1, best), q.gather(1, best), v_null, q_null)
    subsets = torch.tensor(list(itertools.combinations(range(C), K)))  # [S, K]
    every = slate_value(v[:, subsets].reshape(-1, K), q[:, subsets].reshape(-1, K),
                        v_null.repeat_interleave(len(subsets)), q_null.repeat_interleave(len(subsets)))
    torch.testing.assert_close(found, every.view(B, -1).max(1).values)


@pytest.fixture(scope="module")
def trained_slateq():
    """SlateQ trained on clicks on a small world (shared by the tests below)."""
    agent = SlateQAgent(gamma=0.5, batch_size=128, device="cpu", **SMALL_SLATEQ)
    run(agent, make_vec(16), steps=150, seed=0)
    agent.epsilon = 0.0
    return agent


def test_slateq_learns_to_beat_random(trained_slateq):
    env = make_vec(32)
    slateq = run(trained_slateq, env, steps=40, seed=100, learn=False, setup=False)
    random = run(RandomAgent(), env, steps=40, seed=100)
    assert slateq["clicks"] > 1.4 * random["clicks"], (slateq, random)


def test_slateq_is_deterministic_for_a_seed():
    def trace():
        agent = SlateQAgent(batch_size=32, learning_starts=32, **SMALL_SLATEQ)
        env = make_vec(8)
        run(agent, env, steps=12, seed=7)
        obs, _ = env.reset(seed=99)
        return agent.act(obs), [p.detach().clone() for p in agent.networks.parameters()]

    (slates_a, params_a), (slates_b, params_b) = trace(), trace()
    np.testing.assert_array_equal(slates_a, slates_b)
    for a, b in zip(params_a, params_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_slateq_serves_each_request_its_own_slate_when_the_candidates_array_is_reused():
    """An env may hand out the same candidate array while the users' histories move on; the
    greedy slate cached for act() and propensities() used to be keyed on that array alone,
    so the next request got the slate computed for the previous one."""
    env = make_vec(4)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(np.tile(np.arange(SMALL["slate_size"]), (4, 1)))
    earlier = {k: np.array(v) for k, v in obs.items()}
    later = {**earlier, "history_items": np.roll(earlier["history_items"], 1, axis=1),
             "history_feedback": np.ones_like(earlier["history_feedback"])}
    later["history_items"][:, 0] = earlier["candidate_ids"][:, 3]  # a new click, same candidates object
    served, fresh = (SlateQAgent(**{**SMALL_SLATEQ, "epsilon": 0.0}) for _ in range(2))
    for agent in (served, fresh):
        agent.setup(env, seed=0)
    served.act(earlier)
    np.testing.assert_array_equal(served.act(later), fresh.act(later))


def test_slateq_propensities_are_those_of_epsilon_greedy(trained_slateq):
    env = make_vec(4)
    obs, _ = env.reset(seed=0)
    greedy = trained_slateq.greedy(obs)
    trained_slateq.epsilon = 0.2
    try:
        p = trained_slateq.propensities(obs, greedy)
    finally:
        trained_slateq.epsilon = 0.0
    C, K = SMALL["num_candidates"], SMALL["slate_size"]
    uniform = 1.0 / np.prod(np.arange(C - K + 1, C + 1))
    np.testing.assert_allclose(p["slate"], 0.8 + 0.2 * uniform)
    np.testing.assert_allclose(p["position"], 0.8 + 0.2 / C)


@pytest.mark.parametrize("make, message", [
    (lambda: SlateQAgent(learning_rate=0.0), "SlateQAgent.learning_rate=0.0: must be > 0"),  # was accepted: no learning
    (lambda: SlateQAgent(learning_rate=-1.0), "SlateQAgent.learning_rate=-1.0: must be > 0"),  # was torch's, at setup
    (lambda: SlateQAgent(learning_rate="abc"), "SlateQAgent.learning_rate='abc': must be a finite number > 0"),
    (lambda: SlateQAgent(gamma=1.0), "SlateQAgent.gamma=1.0: must be in [0, 1)"),
    (lambda: SlateQAgent(epsilon=1.5), "SlateQAgent.epsilon=1.5: must be in [0, 1]"),
    (lambda: SlateQAgent(tau=0.0), "SlateQAgent.tau=0.0: must be in (0, 1]"),
    (lambda: SlateQAgent(batch_size=0), "SlateQAgent.batch_size=0: must be an integer >= 1"),
    (lambda: RetentionSlateQ(learning_rate=0.0), "RetentionSlateQ.learning_rate=0.0: must be > 0"),
])
def test_bad_slateq_settings_are_refused_by_name_when_built(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


def test_slateq_runs_on_cpu_and_names_a_missing_gpu():
    agent = SlateQAgent(device="cpu")
    agent.setup(make_vec(2), seed=0)
    assert all(p.device.type == "cpu" for p in agent.networks.parameters())
    assert SlateQAgent(device="auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SlateQAgent(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_slateq_runs_on_cuda():
    agent = SlateQAgent(device="cuda", batch_size=32, learning_starts=32, **SMALL_SLATEQ)
    run(agent, make_vec(8), steps=8, seed=0)
    assert all(p.device.type == "cuda" for p in agent.networks.parameters())


# --------------------------------------------------- retention and instructions
def test_instruction_following_raises_compliance(trained_slateq):
    env = make_vec(32, simulator_config=LISTENERS)
    plain = run(trained_slateq, env, steps=60, seed=200, learn=False, setup=False)
    following = InstructionFollowing(trained_slateq, setup_base=False)
    following.setup(env, seed=0)
    listened = run(following, env, steps=60, seed=200, learn=False, setup=False)
    assert listened["compliance"] > plain["compliance"] + 0.05, (listened, plain)
    with pytest.raises(TypeError, match=r"^InstructionFollowing needs a base agent with score\(obs\) -> \[B, C\] "
                                        r"candidate scores .*; got RandomAgent$"):
        InstructionFollowing(RandomAgent())


def test_retention_agent_brings_more_users_back_than_a_click_greedy_one():
    """On users who care about being listened to, the long-run agent trades clicks for
    returns: a higher return rate, less churn, fewer clicks. Its gain depends on how its
    training went, which differs between machines (their float rounding): trained for 300
    steps its return rate was 0.010-0.022 above click-greedy SlateQ's over training seeds 0-4
    on one machine, and -0.007 to +0.023 on another. Trained for 600 steps, the gain was
    0.004-0.040 over seeds 0-9 (mean 0.027), and churn fell by 9-22% on every seed; so the
    test trains two seeds and asks for the mean gain, each seed's lower churn and fewer clicks."""
    env_kwargs = dict(simulator_config=LISTENERS)
    gains = []
    for seed in (0, 1):
        click_greedy = SlateQAgent(gamma=0.0, reward="clicks", batch_size=128, **SMALL_SLATEQ)
        long_run = RetentionSlateQ(batch_size=128, **LISTENING_RETENTION, **SMALL_SLATEQ)
        outcomes = {}
        for agent in (click_greedy, long_run):
            run(agent, make_vec(16, **env_kwargs), steps=600, seed=seed)
            agent.epsilon = 0.0
            outcomes[agent.name] = run(agent, make_vec(256, **env_kwargs), steps=60, seed=300, learn=False,
                                       setup=False)
        greedy, retained = outcomes["slateq"], outcomes["retention_slateq"]
        assert retained["churn"] < 0.95 * greedy["churn"], (seed, outcomes)
        assert retained["clicks"] < greedy["clicks"], (seed, outcomes)  # the price: fewer clicks now
        gains.append(retained["return_rate"] - greedy["return_rate"])
    assert np.mean(gains) > 0.005, gains


def test_enjoyment_linucb_learns_each_items_enjoyment_from_ratings_and_weights_clicks_by_it():
    """The estimates are the means of (rating - 1) / 4 over each item's clicks, shrunk towards
    a ridge regression on the items' public attributes, in closed form; the score is
    LinUCB's click score times the enjoyment to the power w."""
    agent, env = EnjoymentLinUCB(enjoyment_prior=3.0, enjoyment_weight=2.0), make_vec(8)
    agent.setup(env, seed=0)
    assert agent.enjoyment(np.array([0, 5])) == pytest.approx([0.5, 0.5])  # no rating yet
    sums, counts, rated_items, enjoyed = np.zeros(200), np.zeros(200), [], []

    class Ratings(Hook):
        def on_step(self, step):
            info = step.feedback.info
            rated = info["clicked"] & step.feedback.valid[:, None]
            np.add.at(sums, info["slate"][rated], (info["rating"][rated] - 1) / 4)
            np.add.at(counts, info["slate"][rated], 1)
            rated_items.append(info["slate"][rated])
            enjoyed.append((info["rating"][rated] - 1) / 4)
            self.last = step.feedback.next_obs

    ratings = Ratings()
    rollout(env, agent, 30, seed=0, hooks=[ratings], setup=False, env_seed=0)
    obs = ratings.last
    assert counts.sum() > 50
    z = agent.item_design[np.concatenate(rated_items)]
    assert z.shape[1] == 2 + 16 + agent.catalog.n_genres  # 1, popularity, features, genres
    beta = np.linalg.solve(np.eye(z.shape[1]) + z.T @ z, z.T @ np.concatenate(enjoyed))  # ridge, l2 = 1
    expected = (sums + 3.0 * np.clip(agent.item_design @ beta, 0, 1)) / (counts + 3.0)  # enjoyment is in [0, 1]
    np.testing.assert_allclose(agent.enjoyment(np.arange(200)), expected)
    x = agent.features(obs)
    click = x @ agent.ridge.theta + agent.alpha * np.sqrt(((x @ agent.ridge.inverse) * x).sum(-1))
    np.testing.assert_allclose(agent.score(obs), np.maximum(click, 1e-6) * expected[obs["candidate_ids"]] ** 2)
    with pytest.raises(ValueError, match=r"^EnjoymentLinUCB.enjoyment_prior=0: must be > 0$"):
        EnjoymentLinUCB(enjoyment_prior=0)  # when built, not at setup


def test_enjoyment_linucb_serves_more_enjoyment_than_linucb_where_clicks_and_enjoyment_part():
    """Users who click by taste and popularity but enjoy by quality (the calibrated
    MovieLens users' pattern, made stark): EnjoymentLinUCB serves films enjoyed more, and
    more enjoyment per step in all, for fewer clicks. Since a step's quality is concave in
    the summed enjoyment and most steps of both agents have no click (quality 0), the
    sessions are remembered about alike (the return rate over seeds 0-3 is in
    benchmarks/RESULTS.md, "The issue-17 dynamics"), so the test asks only that users come
    back no less often."""
    parting = dict(simulator_config=dict(quality_weight=0.0, rating_center=3.0, rating_slope=0.0, rating_quality=2.0,
                                        rating_noise=0.2))
    outcomes = {}
    for agent in (LinUCB(), EnjoymentLinUCB(alpha=0.0)):
        outcomes[agent.name] = run(agent, make_vec(256, **parting), steps=100, seed=0)
    greedy, enjoyed = outcomes["linucb"], outcomes["enjoyment_linucb"]
    assert enjoyed["enjoyment"] > greedy["enjoyment"] + 0.1, outcomes
    served = {name: outcome["enjoyment"] * outcome["clicks"] for name, outcome in outcomes.items()}
    assert served["enjoyment_linucb"] > 1.1 * served["linucb"], served  # summed enjoyment per step
    assert enjoyed["return_rate"] > greedy["return_rate"] - 0.01, outcomes
    assert enjoyed["clicks"] < greedy["clicks"], outcomes  # the price: fewer clicks now


def test_retention_linucb_brings_more_listening_users_back_than_linucb():
    """The leaderboard's retention-aware agent against click-greedy LinUCB, both learning
    online: on seeds 0-2 of this setup its return rate was 0.07-0.10 higher, for 5% fewer clicks."""
    outcomes = {}
    for agent in (LinUCB(), InstructionFollowing(EnjoymentLinUCB(), name="retention_linucb")):
        outcomes[agent.name] = run(agent, make_vec(64, simulator_config=LISTENERS), steps=100, seed=0)
    greedy, retained = outcomes["linucb"], outcomes["retention_linucb"]
    assert retained["return_rate"] > greedy["return_rate"] + 0.03, outcomes
    assert retained["compliance"] > greedy["compliance"], outcomes
