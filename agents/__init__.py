"""Recommender agents: baselines, bandits, RL and LLM policies, behind one protocol."""

from recoworld.agents.base import Feedback, Recommender
from recoworld.agents.baselines import MostPopularAgent, Oracle, RandomAgent

__all__ = ["Feedback", "MostPopularAgent", "Oracle", "RandomAgent", "Recommender"]
