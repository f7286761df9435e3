"""Gymnasium environments that put a simulator in front of an agent.

Importing :mod:`recoworld` registers ``RecoWorld/Slate-v0`` (single user) with its native
vector twin, and ``RecoWorld/Instruct-v0`` (text observations for LLM agents); each class
docstring is its env's manual. :mod:`recoworld.envs.rollout` holds the one loop that lets an
agent serve a vector env's users (``from recoworld.envs.rollout import rollout``).
:class:`SB3SlateVecEnv` serves the same batched users to Stable-Baselines3 as its own
``VecEnv`` (one simulator call per step, no ``DummyVecEnv`` loop); it and
``make_training_env`` load Stable-Baselines3 on first use.
"""

from importlib import import_module

from recoworld.envs.instruct import InstructEnv
from recoworld.rewards import RewardWeights
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.envs.world import SlateWorld

#: Names whose module imports Stable-Baselines3, loaded when first asked for.
_LAZY = {"SB3SlateVecEnv": "recoworld.envs.sb3_vec", "make_training_env": "recoworld.envs.sb3_vec"}

__all__ = ["InstructEnv", "RewardWeights", "SB3SlateVecEnv", "SlateEnv", "SlateVectorEnv", "SlateWorld",
           "make_training_env"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recoworld.envs' has no attribute {name!r}")
