"""The planning oracle (agents/planning.py): valid, deterministic slates; a lookahead that
never touches the real users; and, where clicks and enjoyment part, better-enjoyed
sessions than the click-greedy oracle's."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents import MostPopularAgent
from recoworld.agents.baselines import Oracle
from recoworld.agents.planning import RULES, PlanningOracle
from recoworld.envs.rollout import Hook, StepTrace, rollout
from recoworld.types import Observation

CATALOG = Catalog.synthetic(200, seed=0)
SMALL = dict(catalog=CATALOG, num_candidates=20, slate_size=5, max_steps=40)
QUICK = dict(horizon=3, rollouts=2)
# Clickbait: the higher an item's quality, the likelier a click (quality_weight) and the
# lower its rating (rating_quality outweighs it; rating_center keeps the rest of the scale):
# the click-greedy slate is the least enjoyed one, and users who enjoy little leave.
CLICKBAIT = dict(quality_weight=3.0, rating_quality=-5.0, rating_center=6.0)


def make_vec(n, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        **{**SMALL, **kwargs})


@pytest.mark.parametrize("setting, message", [
    (dict(horizon=0), "PlanningOracle.horizon=0: must be an integer >= 1"),
    (dict(rollouts=1.5), "PlanningOracle.rollouts=1.5: must be an integer >= 1"),
    (dict(future_steps=-1), "PlanningOracle.future_steps=-1: must be an integer >= 0"),
    (dict(diversity=2.0), "PlanningOracle.diversity=2.0: must be in [0, 1]"),
    (dict(rating_prior=0.0), "PlanningOracle.rating_prior=0.0: must be > 0"),
    (dict(rules=("clicks", "clickbait")),
     "PlanningOracle.rules=['clicks', 'clickbait']: must be distinct names among ['clicks', 'enjoyment', 'diverse']"),
    (dict(rules=()), "PlanningOracle.rules=[]: must be distinct names among ['clicks', 'enjoyment', 'diverse']"),
])
def test_bad_hyperparameters_are_refused_by_name(setting, message):
    with pytest.raises(ValueError) as error:
        PlanningOracle(**setting)
    assert str(error.value) == message


def test_every_rule_proposes_a_valid_slate_and_the_planner_shows_one_of_them():
    env, planner = make_vec(6), PlanningOracle(**QUICK)
    planner.setup(env, seed=0)
    obs = Observation(env.reset(seed=3)[0])
    ids = torch.as_tensor(obs["candidate_ids"])
    proposals = planner.proposals(torch.as_tensor(env.unwrapped.click_probabilities()), ids)
    assert proposals.shape == (6, len(RULES), 5)
    for slate in proposals.reshape(-1, 5).tolist():
        assert len(set(slate)) == 5 and 0 <= min(slate) and max(slate) < 20
    # The clicks rule is the click-greedy oracle's slate.
    oracle = Oracle()
    oracle.setup(env, seed=0)
    assert np.array_equal(proposals[:, 0].numpy(), oracle.act(obs))
    action = planner.act(obs)
    assert action.shape == (6, 5)
    assert planner.rule_counts.sum() == 6  # one rule served each request
    assert all(any(np.array_equal(row, p) for p in proposal) for row, proposal in zip(action, proposals.numpy()))


def test_the_same_seed_gives_the_same_slates():
    def slates(seed):
        trace = StepTrace()
        rollout(make_vec(4), PlanningOracle(**QUICK), 6, seed, hooks=[trace])
        return trace.arrays()["slate"]

    first = slates(1)
    assert np.array_equal(first, slates(1))
    assert first.shape == (6, 4, 5)


class Reactions(Hook):
    """The real users' reactions at every step, and a planner that looks at each request."""

    def __init__(self, planner=None):
        self.planner, self.rows = planner, []

    def on_start(self, env, agent, seed, label):
        if self.planner is not None:
            self.planner.setup(env, seed)
        self.env = env

    def on_action(self, t, obs, action):
        if self.planner is not None:
            before = self.env.unwrapped.user_model().state
            self.planner.act(obs)
            after = self.env.unwrapped.user_model().state
            assert torch.equal(before.key, after.key) and torch.equal(before.counter, after.counter)
            assert torch.equal(before.satisfaction, after.satisfaction)

    def on_step(self, step):
        info = step.feedback.info
        self.rows.append([step.feedback.clicked, info["rating"], info["left_session"], info["returned"],
                          info["satisfaction"]])


def test_planning_leaves_the_real_users_trajectories_untouched():
    # A fixed policy acts; the planner only looks (and simulates) before every step.
    alone, watched = Reactions(), Reactions(PlanningOracle(**QUICK))
    rollout(make_vec(6), MostPopularAgent(), 12, 0, hooks=[alone])
    rollout(make_vec(6), MostPopularAgent(), 12, 0, hooks=[watched])
    assert len(alone.rows) == 12
    for mine, theirs in zip(alone.rows, watched.rows):
        for a, b in zip(mine, theirs):
            assert np.array_equal(a, b)


class Service(Hook):
    """The enjoyment per click ``(rating - 1) / 4`` and the mean mindset (``satisfaction``, the
    running quality of the users' steps, which their leaving and returning follow)."""

    def on_start(self, env, agent, seed, label):
        self.enjoyment, self.clicks, self.mindset = 0.0, 0, []

    def on_step(self, step):
        info, valid = step.feedback.info, step.feedback.valid
        clicked = step.feedback.clicked.astype(bool) & valid[:, None]
        self.enjoyment += float(((info["rating"] - 1) / 4 * clicked).sum())
        self.clicks += int(clicked.sum())
        self.mindset.append(info["satisfaction"][valid])


def test_where_clicks_and_enjoyment_part_the_planner_serves_users_a_better_session():
    outcomes = {}
    for agent in (Oracle(), PlanningOracle()):
        hook = Service()
        rollout(make_vec(24, simulator_config=CLICKBAIT, max_steps=30), agent, 30, 0, hooks=[hook])
        outcomes[agent.name] = (hook.enjoyment / hook.clicks, float(np.concatenate(hook.mindset).mean()))
    (greedy_enjoyment, greedy_mindset), (planned_enjoyment, planned_mindset) = (
        outcomes["oracle"], outcomes["planning_oracle"])
    # A planner that chose the click-greedy slate would tie on both.
    assert planned_enjoyment > greedy_enjoyment + 0.03, outcomes
    assert planned_mindset > greedy_mindset + 0.015, outcomes


def test_the_config_holds_the_class_defaults():
    from dataclasses import fields
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "agent" / "planning_oracle.yaml"
    configured, default = instantiate(OmegaConf.load(conf), _convert_="object"), PlanningOracle()
    assert [getattr(configured, f.name) for f in fields(default)] == [getattr(default, f.name) for f in fields(default)]
