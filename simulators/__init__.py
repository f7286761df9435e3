"""Simulated users: batched statistical users and LLM users behind one contract.

The LLM and hybrid users (and their configs) import the LLM layer, so they load on first
use: ``from recoworld.simulators import LLMUsers`` works, ``import recoworld.simulators``
stays light.
"""

from recoworld.simulators.base import UserSimulator
from recoworld.simulators.population import Population, SyntheticPopulation, UserTraits
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

_LAZY = {
    "HybridSimulatorConfig": "recoworld.simulators.hybrid",
    "HybridUserConfig": "recoworld.simulators.hybrid",
    "HybridUsers": "recoworld.simulators.hybrid",
    "LLMSimulatorConfig": "recoworld.simulators.llm_user",
    "LLMUserConfig": "recoworld.simulators.llm_user",
    "LLMUserError": "recoworld.simulators.llm_user",
    "LLMUsers": "recoworld.simulators.llm_user",
}

__all__ = ["HybridSimulatorConfig", "HybridUserConfig", "HybridUsers", "LLMSimulatorConfig", "LLMUserConfig",
           "LLMUserError", "LLMUsers", "Population", "StatisticalUserConfig", "StatisticalUsers",
           "SyntheticPopulation", "UserSimulator", "UserTraits"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recoworld.simulators' has no attribute {name!r}")
