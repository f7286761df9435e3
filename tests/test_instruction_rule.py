"""The latest instruction in the contextual agents' features (1/age, across sessions too: a
taste signal, unlike ``Observation.instruction_in_force``), and the LLM agents passing the
start of each rollout on to the agent they build on (their proposer or guide)."""

import numpy as np
import pytest

from recoworld.agents.bandits import UCB1
from recoworld.agents.features import SCALAR_FEATURES, UserItemFeatures
from recoworld.agents.linear import LinUCB
from recoworld.agents.llm_bandit import LLMBandit
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.agents.llm_tools import LLMToolAgent
from recoworld.agents.slateq import SlateQAgent
from recoworld.envs.rollout import rollout
from recoworld.llm import ScriptedChatModel
from recoworld.types import Observation
from tests.test_h169_slateq_review import CATALOG, NO_TRAINING, instructed, links, make_vec
from tests.test_llm_agents import K, listed_ids, make_env, reply
from tests.test_rl_agents import one_torch_thread  # noqa: F401  (an autouse fixture: one torch thread)

INSTRUCTION_FEATURES = [SCALAR_FEATURES.index(name) for name in ("more", "less", "novelty")]


# ------------------------------------------------- the contextual agents' features
@pytest.fixture(scope="module")
def first_obs():
    env = make_vec()
    obs, _ = env.reset(seed=0)
    env.close()
    return obs


def test_an_instruction_of_an_earlier_session_keeps_its_one_over_age_weight(first_obs):
    """Voiced 3 steps ago, before a new session began (``session=[1, 0, 3]``): no longer in
    force, but still a third of the instruction's features (agents/features.py says why)."""
    features = UserItemFeatures(CATALOG)
    stale = features(instructed(first_obs, [1, 0, 3]))
    in_force = features(instructed(first_obs, [0, 3, 3]))
    assert not Observation(session=np.array([[1, 0, 3]])).instruction_in_force.any()
    assert (stale[..., INSTRUCTION_FEATURES] != 0).any()
    np.testing.assert_allclose(stale[..., INSTRUCTION_FEATURES], in_force[..., INSTRUCTION_FEATURES], rtol=1e-12)


@pytest.mark.parametrize("session, age", [([0, 3, 1], 1), ([2, 5, 2], 2), ([0, 4, 4], 4)])
def test_an_instruction_in_force_weighs_one_over_its_age(first_obs, session, age):
    """More of genre 0, less of genre 1, something new: ``<more, w_c>/age``,
    ``<less, w_c>/age`` and ``(1 - affinity)/age``."""
    features = UserItemFeatures(CATALOG)
    obs = instructed(first_obs, session)
    x = features(obs)
    genre_weights = features.genre_weights[obs["candidate_ids"]]
    affinity = x[..., SCALAR_FEATURES.index("affinity")]
    expected = np.stack([genre_weights[..., 0], genre_weights[..., 1], 1.0 - affinity], -1) / age
    np.testing.assert_allclose(x[..., INSTRUCTION_FEATURES], expected, rtol=1e-12)


# ------------------------------------------------- the LLM agents' inner agent
class RecordsRollouts:
    """Records the ``(n_steps, num_envs)`` of every ``begin_rollout`` it hears."""

    def begin_rollout(self, n_steps: int, num_envs: int) -> None:
        self.begun = [*getattr(self, "begun", []), (n_steps, num_envs)]


class RecordingLinUCB(RecordsRollouts, LinUCB):
    pass


class RecordingUCB1(RecordsRollouts, UCB1):
    pass


def first_listed(call):
    """Stands in for an LLM that takes the first ``K`` items it is offered."""
    return reply(listed_ids(call.messages[1]["content"])[:K])


LLM_AGENTS = {
    "rerank": lambda: LLMRerank(proposer=RecordingLinUCB(), llm=ScriptedChatModel(first_listed)),
    "bandit": lambda: LLMBandit(guide=RecordingUCB1(), llm=ScriptedChatModel(first_listed)),
    "tools": lambda: LLMToolAgent(proposer=RecordingLinUCB(), planner="rules"),
}


@pytest.mark.parametrize("build", LLM_AGENTS.values(), ids=LLM_AGENTS.keys())
def test_the_agent_an_llm_agent_builds_on_hears_the_start_of_every_rollout(build):
    agent = build()
    env = make_env(n=2)
    rollout(env, agent, 3, seed=0)
    rollout(env, agent, 2, seed=1, setup=False)
    inner = agent.guide if isinstance(agent, LLMBandit) else agent.proposer
    assert inner.begun == [(3, 2), (2, 2)]


def test_a_slateq_proposer_does_not_link_the_last_rollouts_users_to_the_new_ones():
    """Before the fix, the LLM agent kept the start of the second rollout from SlateQ, which
    linked the last rollout's final rows to the new users' first ones (n-step returns over
    another user's rewards): 6 of 29 links were broken)."""
    slateq = SlateQAgent(n_step=2, **NO_TRAINING)
    agent = LLMToolAgent(proposer=slateq, planner="rules")
    env = make_vec()
    rollout(env, agent, 3, seed=0)
    rollout(env, agent, 2, seed=1, setup=False)
    broken, linked = links(slateq)
    assert broken == 0 and linked > 0, (broken, linked)
