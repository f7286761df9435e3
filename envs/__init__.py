"""Gymnasium environments that put a simulator in front of an agent.

Importing :mod:`recoworld` registers ``RecoWorld/Slate-v0`` (single user) with its native
vector twin, and ``RecoWorld/Instruct-v0`` (text observations for LLM agents); each class
docstring is its env's manual.
"""

from recoworld.envs.instruct import InstructEnv
from recoworld.envs.rewards import RewardWeights
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.envs.world import SlateWorld

__all__ = ["InstructEnv", "RewardWeights", "SlateEnv", "SlateVectorEnv", "SlateWorld"]
