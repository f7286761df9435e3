"""Simulated users: batched statistical users and LLM users behind one contract."""

from recoworld.simulators.base import UserSimulator
from recoworld.simulators.population import Population, SyntheticPopulation, UserTraits
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

__all__ = ["Population", "StatisticalUserConfig", "StatisticalUsers", "SyntheticPopulation", "UserSimulator",
           "UserTraits"]
