"""``recoworld ope evaluate`` on a RecoWorld log with an agent whose own code raises: one line
naming ``--policy``, the method, the step of the evaluation and the agent's error with its
file and line, in place of a traceback; no report is written."""

from __future__ import annotations

import numpy as np
import pytest
from test_ope_evaluate import refused

from agents.base import Recommender

QUICK = ("--world", "synthetic", "--sims", "2", "--refits", "2", "--bootstrap", "39", "--truth-users", "200")
LOG_USERS = 150


@pytest.fixture(scope="module")
def slate_log(tmp_path_factory):
    """A one-step RecoWorld log of a softmax logger (slates of 2 from 5 candidates)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import SoftmaxPolicy
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog

    GlobalHydra.instance().clear()
    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=LOG_USERS, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    path = tmp_path_factory.mktemp("log") / "episodes.parquet"
    with EpisodeLog(path) as log:
        rollout(env, SoftmaxPolicy(base=MostPopularAgent(), temperature=1.0), n_steps=1, seed=0, logger=log,
                log_candidates=True)
    return str(path)


class FirstCandidates(Recommender):
    """Shows the first candidates, in order."""

    def act(self, obs):
        return np.tile(np.arange(self.slate_size), (len(obs["candidate_ids"]), 1))


class SetupFails(FirstCandidates):
    """An agent whose model file is missing."""

    def setup(self, env, seed=None):
        raise FileNotFoundError("weights.pt")


class ActFails(Recommender):
    """An agent with a bug in act (a ValueError: not to be taken for one of RecoWorld's checks)."""

    def act(self, obs):
        return np.asarray(obs["candidate_ids"])[:, : int("two")]


class FailsOnManyUsers(FirstCandidates):
    """An agent that serves the log's rows but fails on a batch of another size (the simulated users)."""

    def act(self, obs):
        if len(obs["candidate_ids"]) != LOG_USERS:
            raise MemoryError("batch too large")
        return super().act(obs)


def line_of(function, offset: int) -> int:
    return function.__code__.co_firstlineno + offset


@pytest.mark.parametrize("agent, method, error, line, step", [
    (SetupFails, "setup", "FileNotFoundError: weights.pt", line_of(SetupFails.setup, 1),
     "being set up for the log's catalog (1000 items; slates of 2 from 5 candidates)"),
    (ActFails, "act", "ValueError: invalid literal for int() with base 10: 'two'", line_of(ActFails.act, 1),
     f"asked about the log's {LOG_USERS} rows"),
    (FailsOnManyUsers, "act", "MemoryError: batch too large", line_of(FailsOnManyUsers.act, 2),
     "serving 200 simulated users for its true value (simulate-then-select)"),
])
def test_an_agent_that_raises_is_named_with_the_step_and_its_error(slate_log, tmp_path, capsys, agent, method, error,
                                                                   line, step):
    spec = f"tests.test_h77_ope_agent_errors:{agent.__name__}"
    message = refused(capsys, "--log", slate_log, "--policy", spec, *QUICK, "--out", str(tmp_path / "out"))
    assert message == (f"--policy {spec!r}: {method} raised {error} ({__file__}, line {line}) while {step}; fix the "
                       f"agent (call its {method} in Python for the traceback)")
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_guarded_agent_is_the_agent_but_for_its_errors():
    from recoworld.apps.ope.slate_evaluation import GuardedAgent

    agent = ActFails()
    guarded = GuardedAgent(agent)
    assert (guarded.name, guarded.learns) == (agent.name, agent.learns)
    assert getattr(guarded, "action_distribution", None) is None, "a method the agent lacks stays missing"
    assert guarded.propensities(None, None) is None


@pytest.mark.parametrize("flags, reason", [
    (["--world", "nosuch"],
     "In 'config': Could not find 'world/nosuch' Available options in 'world': movielens synthetic"),
    (["--override", "agent.alpah=1"], "Could not override 'agent.alpah'. To append to your config use +agent.alpah=1"),
])
def test_a_world_or_override_the_config_refuses_is_a_usage_error(slate_log, tmp_path, capsys, flags, reason):
    message = refused(capsys, "--log", slate_log, "--policy", "linucb", *flags, "--out", str(tmp_path / "out"))
    assert message == (f"--policy 'linucb' with {' '.join(flags)}: the config does not compose ({reason}); give a "
                       "world of conf/world and overrides of keys it has")
    assert not (tmp_path / "out").exists()
