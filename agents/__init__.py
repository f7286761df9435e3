"""Recommender agents: baselines, bandits, RL and LLM policies, behind one protocol."""

from recoworld.agents.base import Feedback, Recommender
from recoworld.agents.baselines import MostPopularAgent, Oracle, RandomAgent
from recoworld.agents.retention import InstructionFollowing, RetentionSlateQ
from recoworld.agents.sb3 import SB3Agent, SB3Recommender
from recoworld.agents.slateq import SlateQAgent

__all__ = ["Feedback", "InstructionFollowing", "MostPopularAgent", "Oracle", "RandomAgent", "Recommender",
           "RetentionSlateQ", "SB3Agent", "SB3Recommender", "SlateQAgent"]
