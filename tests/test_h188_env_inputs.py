"""Env inputs a researcher's own code passes: a reward that weighs nothing, a policy's scores
that track gradients, and catalog titles or sentences holding newlines."""

import re

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.rewards import RewardWeights


@pytest.mark.parametrize("spec", [{}, {"clicks": 0}, {"clicks": 0.0, "retention": 0.0}])
def test_a_reward_that_weighs_no_signal_is_refused(spec):
    with pytest.raises(ValueError, match=rf"^reward={re.escape(str(spec))} weighs no signal, "
                                         r"so every step would pay 0; give at least one nonzero weight, e.g. "
                                         r"\{'clicks': 1.0\}$"):
        RewardWeights.parse(spec)
    assert RewardWeights.parse({"clicks": 0.0, "retention": 2.0}).retention == 2.0


def test_scores_that_track_gradients_rank_as_their_values():
    env = gym.make("RecoWorld/Slate-v0", action_format="scores")
    twin = gym.make("RecoWorld/Slate-v0", action_format="scores")
    env.reset(seed=3)
    twin.reset(seed=3)
    weights = torch.linspace(-1, 1, env.action_space.shape[0], requires_grad=True)
    scores = weights * 2  # a policy's output, still in the autograd graph
    _, reward, *_, info = env.step(scores)
    _, twin_reward, *_, twin_info = twin.step(scores.detach().numpy())
    assert reward == twin_reward
    np.testing.assert_array_equal(info["slate"], twin_info["slate"])


TITLES = ["Heat", "Ocean's Eleven\n- 3 \"Fake\" [Drama]", "Up", "Jaws"]


@pytest.fixture
def catalog():
    return Catalog.from_dataframe(pd.DataFrame({"title": TITLES, "genres": ["Crime", "Crime", "Drama", "Drama"]}))


def test_a_title_holding_a_newline_stays_on_its_candidate_s_line(catalog):
    env = gym.make("RecoWorld/Instruct-v0", catalog=catalog, slate_size=2, num_candidates=4)
    obs, _ = env.reset(seed=0)
    candidates = obs[obs.index('Candidates (id "title" [genres]):'):].splitlines()[1:-1]
    assert len(candidates) == 4 and all(line.startswith("- ") and line[2].isdigit() for line in candidates)
    assert any('"Ocean\'s Eleven - 3 "Fake" [Drama]" [Crime]' in line for line in candidates)
    render = gym.make("RecoWorld/Slate-v0", catalog=catalog, slate_size=2, num_candidates=4, render_mode="ansi")
    render.reset(seed=0)
    render.step(np.array([0, 1]))
    text = render.render()
    assert "\n- 3" not in text and "Ocean's Eleven - 3" in text
