"""The configs of hybrid users (:class:`~recoworld.simulators.hybrid.HybridUsers`): how their
LLM is asked to speak (:class:`HybridUserConfig`), and the Hydra schema of
``simulator=hybrid`` (:class:`HybridSimulatorConfig`). They load without torch, so that
``recoworld run`` checks a config before it imports the simulators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE
from recoworld.simulators.llm_config import ChatModelNode, LLMVoiceConfig
from recoworld.simulators.statistical_config import StatisticalUserConfig


@dataclass
class HybridUserConfig(LLMVoiceConfig):
    """How the hybrid user's LLM is asked to speak.

    Attributes:
        on_failure: ``"fallback"`` (keep the core's template sentence) or ``"fail"``.
        temperature: sampling temperature (0: greedy).
        max_tokens: reply length limit (the longest reply the schema allows, at one token
            per character).
        app: how the prompt names the service.
        history_items: recent clicks shown in the prompt (at most the core's 10).
        failures_kept: most recent failures kept in
            :attr:`~recoworld.simulators.hybrid.HybridUsers.failures`.
        memory: bounds of each user's session memory.
        representation: how history items are written in the prompt.
        max_fallback_share: under ``"fallback"``, the largest share of calls that may fail
            before the run stops (1.0: never).
        fallback_min_steps: calls counted before that share is checked during a rollout; at its
            end the share of all its calls is checked, however few.
    """

    max_tokens: int = 200
    history_items: int = 5

    #: A reply needs a token; -1 recent clicks would silently drop the oldest one shown.
    RANGES = {"max_tokens": AT_LEAST_ONE, "history_items": NON_NEGATIVE}


@dataclass
class HybridSimulatorConfig:
    """The Hydra schema of ``simulator=hybrid``:
    :class:`~recoworld.simulators.hybrid.HybridUsers` with its chat model (``llm``:
    ``${llm}``, the root ``llm`` node of ``recoworld run``'s config), how it speaks
    (``config``), the statistical core's parameters (``statistical``) and the population
    (``None``: the default for the catalog)."""

    _target_: str = "recoworld.simulators.hybrid.HybridUsers"
    llm: ChatModelNode = "${llm}"  # the root node of recoworld run's config
    config: HybridUserConfig = field(default_factory=HybridUserConfig)
    statistical: StatisticalUserConfig = field(default_factory=StatisticalUserConfig)
    population: Any = None
    device: str = "${device}"
