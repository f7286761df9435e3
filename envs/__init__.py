"""Gymnasium environments that put a simulator in front of an agent.

Importing :mod:`recoworld` registers ``RecoWorld/Slate-v0`` (single user) with its native
vector twin, and ``RecoWorld/Instruct-v0`` (text observations for LLM agents); each class
docstring is its env's manual. :mod:`recoworld.envs.rollout` holds the one loop that lets an
agent serve a vector env's users (``from recoworld.envs.rollout import rollout``).
"""

from recoworld.envs.instruct import InstructEnv
from recoworld.rewards import RewardWeights
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.envs.world import SlateWorld

__all__ = ["InstructEnv", "RewardWeights", "SlateEnv", "SlateVectorEnv", "SlateWorld"]
