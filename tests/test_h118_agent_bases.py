"""An agent may have a second base class: torch.nn.Module (in either order) keeps serving its
submodules and parameters, a cooperative ``super().__init__()`` reaches that base, and the
not-set-up error still names what is missing and how to fix it."""

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn

from recoworld import Catalog
from recoworld.agents.base import AgentNotSetUp, Recommender, top_k
from recoworld.envs import SlateVectorEnv
from recoworld.types import Observation

NOT_SET_UP = ("call agent.setup(env, seed) before act(), update() or propensities() (recoworld.envs.rollout and the "
              "runner do); if its class overrides setup, that setup must call super().setup(env, seed)")


def _env():
    return SlateVectorEnv(2, catalog=Catalog.synthetic(30, seed=0), slate_size=2, num_candidates=5)


class _Scoring:
    """Scores each candidate with a linear layer of its features."""

    def act(self, obs):
        with torch.no_grad():
            scores = self.net(torch.as_tensor(obs.candidate_features, dtype=torch.float32)).squeeze(-1)
        return top_k(scores.numpy(), self.slate_size)


class RecommenderFirst(_Scoring, Recommender, nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()  # cooperative: Recommender's __init__ goes on to nn.Module's
        self.net = nn.Linear(dim, 1)


class ModuleFirst(_Scoring, nn.Module, Recommender):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.net = nn.Linear(dim, 1)


@pytest.mark.parametrize("cls", [RecommenderFirst, ModuleFirst], ids=lambda c: c.__name__)
def test_an_agent_that_is_also_a_module_serves_its_submodules_and_parameters(cls):
    torch.manual_seed(0)
    agent = cls(dim=16)
    assert isinstance(agent.net, nn.Linear)
    assert [name for name, _ in agent.named_parameters()] == ["net.weight", "net.bias"]
    assert list(agent.state_dict()) == ["net.weight", "net.bias"]
    env = _env()
    obs = Observation(env.reset(seed=0)[0])
    agent.setup(env, seed=0)
    action = agent.act(obs)
    assert action.shape == (2, 2)
    assert list(agent.state_dict()) == ["net.weight", "net.bias"]  # setup's catalog and rng are not parameters

    twin = cls(dim=16)
    twin.setup(env, seed=0)
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.add_(1.0)
    twin.load_state_dict(agent.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(agent.parameters(), twin.parameters()))
    np.testing.assert_array_equal(twin.act(obs), action)
    np.testing.assert_array_equal(copy.deepcopy(agent).act(obs), action)


def test_an_agent_that_is_also_a_module_still_asks_for_setup_when_recommender_comes_first():
    agent = RecommenderFirst()
    obs = Observation(_env().reset(seed=0)[0])
    with pytest.raises(AgentNotSetUp, match=re.escape(f"RecommenderFirst is not set up (it has no 'slate_size' yet): "
                                                      f"{NOT_SET_UP}")):
        agent.act(obs)


def test_an_agent_without_its_own_init_runs_its_other_base_init():
    class Bare(Recommender, nn.Module):
        def act(self, obs):
            return None

    agent = Bare()
    agent.net = nn.Linear(2, 1)  # needs nn.Module.__init__ to have run
    assert [name for name, _ in agent.named_parameters()] == ["net.weight", "net.bias"]
    with pytest.raises(TypeError, match=re.escape("Bare() takes no arguments")):
        Bare(1)


def test_a_cooperative_init_reaches_a_mixin_after_recommender():
    class Counted:
        def __init__(self):
            super().__init__()
            self.count = 0

    class Agent(Recommender, Counted):
        def __init__(self, width: int = 1):
            super().__init__()
            self.width = width

        def act(self, obs):
            return None

    agent = Agent(width=3)
    assert (agent.width, agent.count) == (3, 0)


def test_a_base_with_its_own_getattr_answers_before_the_not_set_up_error():
    class Proxy:
        def __getattr__(self, name):
            if name == "served":
                return "by the proxy"
            raise AttributeError(name)

    class Agent(Recommender, Proxy):
        def act(self, obs):
            return None

    agent = Agent()
    assert agent.served == "by the proxy"
    with pytest.raises(AgentNotSetUp, match=re.escape(f"Agent is not set up (it has no 'catalog' yet): {NOT_SET_UP}")):
        agent.catalog  # noqa: B018
    agent.setup(_env(), seed=0)
    assert agent.served == "by the proxy"
    with pytest.raises(AttributeError, match="^'Agent' object has no attribute 'missing'$"):
        agent.missing  # noqa: B018


def test_a_setup_that_does_not_call_super_is_named_as_a_possible_cause():
    class OwnSetup(Recommender):
        def setup(self, env, seed=None):
            self.k = 3

        def act(self, obs):
            return self.slate_size

    agent = OwnSetup()
    agent.setup(_env())
    with pytest.raises(AgentNotSetUp, match=re.escape(
            f"OwnSetup is not set up (it has no 'slate_size' yet): {NOT_SET_UP}")):
        agent.act(None)


def test_a_property_that_raises_attribute_error_runs_once_and_is_named():
    class WithProperty(Recommender):
        calls = 0

        @property
        def width(self):
            WithProperty.calls += 1
            return self.num_candidates + self.not_an_attribute

        def act(self, obs):
            return None

    agent = WithProperty()
    with pytest.raises(AgentNotSetUp, match=re.escape(
            f"WithProperty is not set up (its property 'width' raised AttributeError): {NOT_SET_UP}")):
        agent.width  # noqa: B018
    assert WithProperty.calls == 1
    agent.setup(_env(), seed=0)
    with pytest.raises(AttributeError, match=re.escape(
            "property 'width' of 'WithProperty' object raised AttributeError "
            "(type(agent).width.fget(agent) shows its error)")):
        agent.width  # noqa: B018
    assert WithProperty.calls == 2
    with pytest.raises(AttributeError, match="^'WithProperty' object has no attribute 'not_an_attribute'$"):
        type(agent).width.fget(agent)


def test_agent_not_set_up_is_exported_with_the_agents():
    import recoworld.agents

    assert "AgentNotSetUp" in recoworld.agents.__all__
    assert recoworld.agents.AgentNotSetUp is AgentNotSetUp


def test_an_agent_built_before_its_module_was_reloaded_still_looks_up_attributes(monkeypatch):
    """IPython's autoreload re-runs agents/base.py in the same namespace: the name Recommender
    then holds a new class, absent from the MRO of agents built before. Their failed lookups
    (hasattr) must still answer False, not raise ValueError."""
    import recoworld.agents.base as base

    class Old(base.Recommender):
        def act(self, obs):
            return None

    agent = Old()
    monkeypatch.setattr(base, "Recommender", type("Recommender", (), {}))  # what a reload leaves
    assert not hasattr(agent, "nothing_here")
