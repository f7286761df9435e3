"""Which agents of a lineup the run's simulator can serve: privileged agents need a channel.

A privileged agent reads the simulator's ground truth through a documented channel of the
env (the Oracle: ``env.unwrapped.click_probabilities()``, which asks the simulator's
:meth:`~recoworld.simulators.base.UserSimulator.click_probabilities`). A plug-in simulator
need not implement it; then a lineup skips the agent with a note instead of crashing after
the other agents ran. An agent class declares its channel with a class attribute
``privileged_channel = "click_probabilities"`` (the name of a
:class:`~recoworld.simulators.base.UserSimulator` method); the built-in Oracle's is known here.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_object
from omegaconf import DictConfig

from recoworld.simulators.base import UserSimulator

#: Built-in privileged agents and the simulator method each needs.
KNOWN_CHANNELS = {"recoworld.agents.baselines.Oracle": "click_probabilities"}


def privileged_channel(agent: DictConfig) -> str | None:
    """The simulator method the agent of config ``agent`` needs (``None``: an ordinary agent)."""
    target = agent.get("_target_")
    if target in KNOWN_CHANNELS:
        return KNOWN_CHANNELS[target]
    try:
        return getattr(get_object(target), "privileged_channel", None) if target else None
    except Exception:  # noqa: BLE001 - an unimportable target fails later, where its error is clearer
        return None


def simulator_lacks(simulator: DictConfig, channel: str) -> bool:
    """Whether the simulator of config ``simulator`` is a :class:`UserSimulator` subclass that
    leaves ``channel`` unimplemented (factories such as ``calibrated_users`` are trusted)."""
    try:
        built = get_object(simulator.get("_target_"))
    except Exception:  # noqa: BLE001 - as above
        return False
    if not (inspect.isclass(built) and issubclass(built, UserSimulator)):
        return False
    return getattr(built, channel, None) is getattr(UserSimulator, channel, None)


def unserved(cfg: DictConfig, lineup: dict[str, DictConfig]) -> dict[str, str]:
    """The agents of ``lineup`` whose privileged channel ``cfg``'s simulator lacks, with a note on each."""
    notes = {}
    for name, agent in lineup.items():
        channel = privileged_channel(agent)
        if channel is not None and simulator_lacks(cfg.simulator, channel):
            notes[name] = (f"{name} is privileged and reads the simulator's {channel}(), which "
                           f"{cfg.simulator.get('_target_')} does not implement")
    return notes
