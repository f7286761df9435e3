"""Simulated users: batched statistical users and LLM users behind one contract."""

from recoworld.simulators.base import UserSimulator
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

__all__ = ["StatisticalUserConfig", "StatisticalUsers", "UserSimulator"]
