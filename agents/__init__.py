"""Recommender agents: baselines, bandits, RL and LLM policies, behind one protocol."""

from recoworld.agents.bandits import BernoulliTS, EpsilonGreedy, UCB1
from recoworld.agents.base import AgentNotSetUp, Feedback, Recommender
from recoworld.agents.baselines import MostPopularAgent, Oracle, RandomAgent
from recoworld.agents.linear import DiagLinUCB, DisjointLinUCB, HybridLinUCB, LinUCB
from recoworld.agents.neural_linear import NeuralLinearTS
from recoworld.agents.planning import PlanningOracle
from recoworld.agents.retention import InstructionFollowing, RetentionSlateQ
from recoworld.agents.sb3 import SB3Agent, SB3Recommender
from recoworld.agents.slateq import SlateQAgent
from recoworld.agents.thompson import InSlateThompson, LinearTS

__all__ = ["AgentNotSetUp", "BernoulliTS", "DiagLinUCB", "DisjointLinUCB", "EpsilonGreedy", "Feedback", "HybridLinUCB",
           "InSlateThompson", "InstructionFollowing", "LinUCB", "LinearTS", "MostPopularAgent", "NeuralLinearTS",
           "Oracle", "PlanningOracle", "RandomAgent", "Recommender", "RetentionSlateQ", "SB3Agent", "SB3Recommender", "SlateQAgent",
           "UCB1"]
