"""Registers RecoWorld's environments with Gymnasium (entry points are strings: no import)."""

import gymnasium as gym

ENV_IDS = ("RecoWorld/Slate-v0", "RecoWorld/Instruct-v0")


def register_envs() -> None:
    if "RecoWorld/Slate-v0" not in gym.registry:
        gym.register(
            id="RecoWorld/Slate-v0",
            entry_point="recoworld.envs.slate:SlateEnv",
            vector_entry_point="recoworld.envs.slate:SlateVectorEnv",
        )
    if "RecoWorld/Instruct-v0" not in gym.registry:
        gym.register(id="RecoWorld/Instruct-v0", entry_point="recoworld.envs.instruct:InstructEnv")
