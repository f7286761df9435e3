"""The configs of LLM users (:class:`~recoworld.simulators.llm_user.LLMUsers`): how they are
prompted and how their replies map to a Response (:class:`LLMUserConfig`), and the Hydra
schema of ``simulator=llm`` (:class:`LLMSimulatorConfig`); with the part hybrid users share
(:class:`LLMVoiceConfig`) and the chat model's node (:class:`ChatModelNode`).

They load without torch, so that ``recoworld run`` checks a config before it imports the
simulators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recoworld.config_checks import (AT_LEAST_ONE, NON_NEGATIVE, OPEN_LOW_UNIT, UNIT, Interval, check_fields,
                                     check_number, from_mapping)
from recoworld.llm import LLMConfig
from recoworld.representations import RepresentationConfig
from recoworld.simulators.memory import MemoryConfig
from recoworld.simulators.statistical_config import StatisticalUserConfig

FAILURE_POLICIES = ("fail", "fallback")


@dataclass
class LLMVoiceConfig:
    """The fields LLM and hybrid users' configs share (each documents them in its own terms):
    ``on_failure``, ``temperature``, ``app``, ``failures_kept``, ``memory`` and
    ``representation`` (mappings given for these two are read as their configs), and the
    fallback threshold: under ``on_failure="fallback"``, once ``fallback_min_steps`` steps
    are counted, a share of fallen-back steps above ``max_fallback_share`` raises
    :class:`~recoworld.simulators.llm_shared.FallbackShareExceeded` (the minimum keeps one
    early failure from stopping a run); when the rollout ends (``finish``) the share of all
    its steps is checked, however few."""

    on_failure: str = "fallback"
    temperature: float = 0.0
    app: str = "a movie recommendation app"
    failures_kept: int = 1000
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    max_fallback_share: float = 0.05
    fallback_min_steps: int = 20

    #: max_fallback_share is a share of steps (1.0: never stop); the counts start at 1.
    RANGES = {"temperature": NON_NEGATIVE, "failures_kept": NON_NEGATIVE, "max_fallback_share": UNIT,
              "fallback_min_steps": AT_LEAST_ONE}

    def __post_init__(self):
        if isinstance(self.memory, Mapping):
            self.memory = from_mapping(MemoryConfig, self.memory, f"{type(self).__name__}.memory")
        if isinstance(self.representation, Mapping):
            self.representation = from_mapping(RepresentationConfig, self.representation,
                                               f"{type(self).__name__}.representation")
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure={self.on_failure!r}; choose one of {FAILURE_POLICIES}")
        check_fields(self)  # the RANGES of the class and its subclasses (recoworld.config_checks)
        check_words(self, "app")


def check_words(config, name: str) -> None:
    """``ValueError`` naming ``config``'s field ``name`` unless it is a string that says
    something: it enters every prompt, where ``None`` would read "You are using None"."""
    value = getattr(config, name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{type(config).__name__}.{name}={value!r}: must be a non-blank string")


@dataclass
class ChatModelNode(LLMConfig):
    """A Hydra node that builds a chat model: :class:`~recoworld.llm.LLMConfig` with
    :func:`~recoworld.llm.make_chat_model` as its target; the type of ``recoworld run``'s
    root ``llm`` node. Built once per run when a simulator config refers to it, so every
    rollout shares the model and its cache (each simulator reports only its own use)."""

    _target_: str = "recoworld.llm.make_chat_model"


@dataclass
class LLMUserConfig(LLMVoiceConfig):
    """How LLM users are prompted and how their replies map to a Response.

    Attributes:
        on_failure: ``"fallback"`` (the statistical twin's response for a failed step) or
            ``"fail"`` (raise :class:`~recoworld.simulators.llm_shared.LLMUserError`).
        temperature: sampling temperature of every request (0: greedy).
        max_tokens: reply length limit, an integer >= 1; ``None`` gives
            ``256 + 70 * slate_size``, enough for the longest reply the schema allows even at
            one token per character (a cut reply is invalid JSON).
        app: how the prompt names the service (a non-blank string).
        initial_mindset: the mindset sentence of a new user (a non-blank string).
        initial_satisfaction: satisfaction 1..5 of a new user.
        click_watch, like_watch, dislike_watch: watch fraction of each action.
        like_rating, dislike_rating: rating of a like and of a dislike.
        failures_kept: most recent failures kept in :attr:`~recoworld.simulators.llm_user.LLMUsers.failures`.
        max_fallback_share: under ``"fallback"``, the largest share of user-steps that may
            fall back before the run stops with
            :class:`~recoworld.simulators.llm_shared.FallbackShareExceeded` (1.0: never).
        fallback_min_steps: user-steps counted before that share is checked during a
            rollout; at its end the share of all its user-steps is checked, however few.
        memory: bounds of each user's memory.
        representation: how history items are written in the prompt.
    """

    max_tokens: int | None = None
    initial_mindset: str = "Curious to see what the app suggests today."
    initial_satisfaction: int = 3
    click_watch: float = 0.6
    like_watch: float = 1.0
    dislike_watch: float = 0.1
    like_rating: int = 5
    dislike_rating: int = 1

    #: Satisfaction and ratings are on the 1..5 scale; a click's watch fraction is in (0, 1].
    RANGES = {**dict.fromkeys(("initial_satisfaction", "like_rating", "dislike_rating"), Interval(1, 5)),
              **dict.fromkeys(("click_watch", "like_watch", "dislike_watch"), OPEN_LOW_UNIT)}

    def __post_init__(self):
        super().__post_init__()
        # ``int | None`` is no field check_fields knows: checked here, so that 0 is not read
        # as "unset" and a string fails now rather than at the first step.
        if self.max_tokens is not None:
            check_number(type(self).__name__, "max_tokens", self.max_tokens, AT_LEAST_ONE, integer=True)
        check_words(self, "initial_mindset")


@dataclass
class LLMSimulatorConfig:
    """The Hydra schema of ``simulator=llm``:
    :class:`~recoworld.simulators.llm_user.LLMUsers` with its chat model
    (``llm``: ``${llm}``, the root ``llm`` node of ``recoworld run``'s config, a
    :class:`ChatModelNode`), its prompting and mapping
    (``config``), the statistical twin's parameters (``statistical``) and the population
    (``None``: :func:`~recoworld.simulators.llm_shared.default_population`)."""

    _target_: str = "recoworld.simulators.llm_user.LLMUsers"
    llm: ChatModelNode = "${llm}"  # the root node of recoworld run's config
    config: LLMUserConfig = field(default_factory=LLMUserConfig)
    statistical: StatisticalUserConfig = field(default_factory=StatisticalUserConfig)
    population: Any = None
    device: str = "${device}"
