"""Edges of the agents and envs: a learner's repeated candidate, a 1-item catalog's popularity,
SB3Agent's load_path beside training settings and its seed range, expected_clicks' slate length."""

import re

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from recoworld import Catalog
from recoworld.agents.sb3 import SB3Agent
from recoworld.agents.sb3_policies import CandidateScoringPolicy, SlateFeaturesExtractor, catalog_policy_kwargs
from recoworld.agents.slateq_networks import CandidateFeaturizer
from recoworld.envs.slate import SlateEnv, SlateVectorEnv

SMALL = {"slate_size": 3, "num_candidates": 10}


@pytest.mark.parametrize("single", [True, False])
def test_a_repeated_candidate_names_the_scores_format_for_learners(single):
    env = SlateEnv(**SMALL) if single else SlateVectorEnv(2, **SMALL)
    env.reset(seed=0)
    where = "action" if single else "action[1]"
    with pytest.raises(ValueError, match="^" + re.escape(
            f"{where} repeats candidate index 4 at positions [0, 2]; each action must list 3 distinct candidate "
            "indices; a learner that samples each index (e.g. SB3's PPO) should use action_format='scores' instead "
            "(a score per candidate, the top 3 shown)") + "$"):
        env.step(np.array([4, 1, 4]) if single else np.array([[0, 1, 2], [4, 1, 4]]))


def test_a_repeated_item_of_a_simulators_slate_names_no_env_option():
    env = SlateVectorEnv(2, **SMALL)
    env.reset(seed=0)
    users = env.unwrapped.user_model()
    with pytest.raises(ValueError, match="^" + re.escape(
            "slate[1] repeats item 3 at positions [0, 1]; each slate must list 3 distinct items") + "$"):
        users.expected_clicks(torch.tensor([[0, 1, 2], [3, 3, 5]]))


def test_one_items_popularity_standardises_to_zero_in_slateq_and_the_sb3_policy():
    catalog = Catalog.synthetic(n_items=1, n_genres=2, feature_dim=4, seed=0)
    table = CandidateFeaturizer(catalog, torch.device("cpu")).candidate_table
    assert torch.isfinite(table).all() and table[0, catalog.feature_dim] == 0  # the popularity column
    env = SlateEnv(catalog=catalog, slate_size=1, num_candidates=1)
    obs, _ = env.reset(seed=0)
    extractor = SlateFeaturesExtractor(env.observation_space, **catalog_policy_kwargs(catalog))
    assert torch.equal(extractor.item_popularity, torch.zeros(1))
    batch = {key: torch.as_tensor(np.asarray(value))[None].float() for key, value in obs.items()}
    assert torch.isfinite(extractor(batch)).all()


@pytest.mark.parametrize("n", [2, 3, 1682])
def test_standardised_is_the_former_formula_bit_for_bit_from_two_values(n):
    from recoworld.agents.features import standardised  # new with it

    values = torch.randn(n, generator=torch.Generator().manual_seed(n)) * 3 + 1
    assert torch.equal(standardised(values), (values - values.mean()) / values.std().clamp_min(1e-6))


@pytest.fixture(scope="module")
def saved_ppo(tmp_path_factory):
    """A PPO model as SB3Agent saves one (untrained: only its file matters here)."""
    env = SlateVectorEnv(2, **SMALL)
    venv = env.unwrapped.training_env(2, "scores", seed=0)
    path = str(tmp_path_factory.mktemp("sb3") / "model.zip")
    PPO(CandidateScoringPolicy, venv, n_steps=4, batch_size=8,
        policy_kwargs=catalog_policy_kwargs(env.unwrapped.catalog)).save(path)
    return path


@pytest.mark.parametrize("given, named", [
    (dict(total_timesteps=1000), "total_timesteps=1000 would do nothing; leave it out"),
    (dict(save_path="again.zip"), "save_path='again.zip' would do nothing; leave it out"),
    (dict(total_timesteps=1000, num_envs=4, save_path="again.zip"),
     "total_timesteps=1000, num_envs=4 and save_path='again.zip' would do nothing; leave them out"),
    # Values the training would refuse are refused as settings to drop, not as values to fix.
    (dict(total_timesteps=0), "total_timesteps=0 would do nothing; leave it out"),
    (dict(formulation="sequential"), "formulation='sequential' would do nothing; leave it out"),
])
def test_a_loaded_model_refuses_training_settings_beside_it(given, named, saved_ppo):
    SB3Agent(algo="PPO", load_path=saved_ppo)  # the model alone loads
    with pytest.raises(ValueError, match="^" + re.escape(
            f"SB3Agent(load_path={saved_ppo!r}) evaluates the saved model frozen, without training, so " + named
            + " (recoworld run: agent=sb3_model sets none); to train a saved model further, load it with PPO.load "
            "and call its learn") + "$"):
        SB3Agent(algo="PPO", load_path=saved_ppo, **given)


@pytest.mark.parametrize("seed", [2**62, 2**32, -1, 1.5, "7", True])
def test_a_seed_sb3_cannot_take_is_refused_naming_it_before_training(seed):
    env = SlateVectorEnv(2, **SMALL)
    agent = SB3Agent(total_timesteps=8, num_envs=2)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"seed={seed!r}: SB3Agent trains with Stable-Baselines3, which takes integer seeds in 0..2**32-1 (4294967295); "
            "give a seed in that range") + "$"):
        agent.setup(env, seed=seed)
    assert agent.train_env is None  # refused before the training users were built


def test_the_seed_range_ends_at_sb3s_last_seed():
    from recoworld.agents.sb3 import check_training_seed  # new with it

    check_training_seed(2**32 - 1)
    check_training_seed(0)
    with pytest.raises(ValueError, match=r"^seed=4294967296: "):
        check_training_seed(2**32)


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("length", [0, 2, 4])
def test_expected_clicks_refuses_a_slate_of_another_length_than_k(single, length):
    env = SlateEnv(**SMALL) if single else SlateVectorEnv(2, **SMALL)
    env.reset(seed=0)
    shape = (length,) if single else (2, length)
    slates = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if length == 0:  # as a user writes it: numpy reads an empty list as float64
        slates = [] if single else [[], []]
    got = f"is empty, shape {shape}" if length == 0 else f"has shape {shape}"
    expected = "(3,): one slate" if single else "(2, 3): a slate per user"
    with pytest.raises(ValueError, match="^" + re.escape(
            f"slates {got}; expected {expected} of slate_size=3 catalog ids") + "$"):
        env.expected_clicks(slates)


def test_expected_clicks_of_k_items_is_unchanged():
    env = SlateVectorEnv(2, **SMALL)
    env.reset(seed=0)
    slates = env.unwrapped.world.candidates[:, :3]
    truth = env.unwrapped.user_model().expected_clicks(slates).numpy()
    np.testing.assert_array_equal(env.expected_clicks(slates.numpy()), truth)
