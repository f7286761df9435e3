"""Three loose ends: semantic IDs refuse ids outside the catalog (a negative id read the last
item); a sharded env checks the slates of ``expected_clicks`` against the whole population
before it splits them; a trained SB3 agent pickles and deep-copies, and its copy acts as it."""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import torch

from recoworld.agents.sb3 import SB3Agent, SB3Recommender
from recoworld.envs.slate import SlateVectorEnv
from recoworld.representations import SemanticIds

SMALL = {"slate_size": 3, "num_candidates": 10}


# ------------------------------------------------------------------ semantic IDs
@pytest.fixture(scope="module")
def semantic_ids():
    """The semantic IDs of 40 items."""
    return SemanticIds.fit(torch.randn(40, 8, generator=torch.Generator().manual_seed(0)), levels=2,
                           codebook_size=4)


@pytest.mark.parametrize("item", [-1, -40, 40, 10**6])
def test_semantic_ids_refuse_an_id_outside_the_catalog(semantic_ids, item):
    with pytest.raises(IndexError, match="^" + re.escape(f"item={item} is outside the catalog (ids 0..39)") + "$"):
        semantic_ids.tokens(item)
    for items in ([0, item], torch.tensor([0, item]), np.array([0, item])):
        with pytest.raises(IndexError, match="^" + re.escape(f"items[1]={item} is outside the catalog (ids 0..39)")
                           + "$"):
            semantic_ids.render(items)


def test_semantic_ids_of_ids_in_the_catalog_are_unchanged(semantic_ids):
    last = semantic_ids.tokens(39)
    assert last == "".join(f"<{letter}{int(c)}>" for letter, c in zip("abc", semantic_ids.codes[39]))
    assert semantic_ids.render(torch.tensor([0, 39])) == [semantic_ids.tokens(0), last]
    assert semantic_ids.render([]) == []


# ------------------------------------------------------------------ sharded expected_clicks
@pytest.mark.parametrize("shape", [(4, 3), (6, 3), (5, 2), (3,)])
def test_sharded_expected_clicks_names_the_whole_population_as_the_unsharded_env(sharded_twins, shape):
    whole, sharded = sharded_twins  # five users, shards of users 0-2 and 3-4
    whole.reset(seed=0)
    sharded.reset(seed=0)
    slates = np.zeros(shape, dtype=np.int64)
    # Six rows were cut into the shards' five, the sixth dropped in silence; four named the
    # second shard's single row against its two users.
    message = "^" + re.escape(f"slates has shape {shape}; expected (5, 3): a slate per user of slate_size=3 "
                              "catalog ids") + "$"
    for env in (whole, sharded):
        with pytest.raises(ValueError, match=message) as refused:
            env.expected_clicks(slates)
        assert type(refused.value) is ValueError  # the env's own error, not Ray's wrapper of it
    valid = np.tile(np.arange(3), (5, 1))
    np.testing.assert_allclose(sharded.expected_clicks(valid), whole.expected_clicks(valid), rtol=1e-5)


# ------------------------------------------------------------------ SB3 agents pickle
def _round_trips(agent):
    """``agent`` through pickle and through ``copy.deepcopy``."""
    return pickle.loads(pickle.dumps(agent)), copy.deepcopy(agent)


@pytest.fixture(scope="module")
def trained():
    """A tiny trained A2C agent (deterministic) and an env of its world, reset."""
    env = SlateVectorEnv(4, **SMALL)
    agent = SB3Agent(algo="A2C", total_timesteps=16, num_envs=4, algo_kwargs={"n_steps": 4})
    agent.setup(env, seed=0)
    obs, _ = env.reset(seed=1)
    return agent, obs


def test_a_trained_sb3_agent_pickles_and_its_copies_act_as_it(trained):
    agent, obs = trained
    slates, scores = agent.act(obs), agent.score(obs)
    for copied in _round_trips(agent):
        assert copied.model is not agent.model and type(copied.model) is type(agent.model)
        np.testing.assert_array_equal(copied.act(obs), slates)
        np.testing.assert_array_equal(copied.score(obs), scores)
        assert copied.train_env is None  # the training twin is the original's, and does not pickle
    # The original is untouched by being pickled: it acts as before and still has its twin.
    np.testing.assert_array_equal(agent.act(obs), slates)
    np.testing.assert_array_equal(agent.score(obs), scores)
    assert agent.train_env is not None
    # The frozen adapter of a model pickles the same way.
    frozen = SB3Recommender(agent.model)
    frozen.setup(SlateVectorEnv(4, **SMALL), seed=0)
    for copied in _round_trips(frozen):
        np.testing.assert_array_equal(copied.act(obs), slates)


def test_an_untrained_sb3_agent_pickles_with_its_settings_and_trains_as_the_original():
    agent = SB3Agent(algo="A2C", total_timesteps=16, num_envs=4, algo_kwargs={"n_steps": 4})
    agent.training_progress = lambda steps: None  # as `recoworld run` sets it: a lambda does not pickle
    for copied in _round_trips(agent):
        assert copied.model is None and copied.training_progress is None
        assert (copied.algo, copied.total_timesteps, copied.num_envs) == ("A2C", 16, 4)
    copied = pickle.loads(pickle.dumps(agent))
    env = SlateVectorEnv(4, **SMALL)
    agent.setup(env, seed=0)
    copied.setup(env, seed=0)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(copied.score(obs), agent.score(obs))
