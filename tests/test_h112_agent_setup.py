"""Agents: a misspelt hyperparameter is named with the nearest one, and an agent used
before setup(env) says so instead of failing on a missing attribute."""

import re

import pytest

from recoworld import Catalog
from recoworld.agents import LinUCB, MostPopularAgent, RandomAgent, SlateQAgent
from recoworld.envs import SlateVectorEnv
from recoworld.types import Observation


def test_a_misspelt_argument_is_named_with_the_nearest_one():
    with pytest.raises(TypeError, match=re.escape(
            "LinUCB has no argument 'alpah' (did you mean 'alpha'?); its arguments are interaction, examination, "
            "alpha, l2")):
        LinUCB(alpah=1)
    with pytest.raises(TypeError, match=re.escape("RandomAgent() takes no arguments, not 'seed'")):
        RandomAgent(seed=1)
    with pytest.raises(TypeError, match=re.escape("RandomAgent() takes no arguments")):
        RandomAgent(1)
    assert LinUCB(alpha=1.0).alpha == 1.0


@pytest.mark.parametrize("agent", [RandomAgent(), MostPopularAgent(), LinUCB(), SlateQAgent()],
                         ids=lambda a: type(a).__name__)
def test_acting_before_setup_asks_for_setup(agent):
    env = SlateVectorEnv(2, catalog=Catalog.synthetic(30, seed=0), slate_size=2, num_candidates=5)
    obs = Observation(env.reset(seed=0)[0])
    with pytest.raises(RuntimeError, match=rf"^{type(agent).__name__} is not set up \(it has no '\w+' yet\): call "
                       + re.escape("agent.setup(env, seed) before act(), update() or propensities() "
                                   "(recoworld.envs.rollout and the runner do); if its class overrides "
                                   "setup, that setup must call super().setup(env, seed)") + "$"):
        agent.act(obs)
    assert not hasattr(agent, "catalog")  # AgentNotSetUp is an AttributeError too
    agent.setup(env, seed=0)
    assert agent.act(obs).shape == (2, 2)
    with pytest.raises(AttributeError, match=f"^'{type(agent).__name__}' object has no attribute 'missing'$"):
        agent.missing  # noqa: B018


def test_agent_classes_keep_their_constructors_signature():
    # recoworld run's plug-in check and help() read it: the argument check must not hide it
    import inspect

    assert str(inspect.signature(RandomAgent)) == "() -> 'None'"
    assert list(inspect.signature(LinUCB).parameters) == ["interaction", "examination", "alpha", "l2"]
