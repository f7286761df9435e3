"""Gymnasium environments that put a simulator in front of an agent.

Importing :mod:`recoworld` registers ``RecoWorld/Slate-v0`` (single user) with its native
vector twin; see :class:`recoworld.envs.slate.SlateEnv` for the manual.
"""

from recoworld.envs.rewards import RewardWeights
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.envs.world import SlateWorld

__all__ = ["RewardWeights", "SlateEnv", "SlateVectorEnv", "SlateWorld"]
