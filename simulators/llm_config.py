"""The configs of LLM users (:class:`~recoworld.simulators.llm_user.LLMUsers`): how they are
prompted and how their replies map to a Response (:class:`LLMUserConfig`), and the Hydra
schema of ``simulator=llm`` (:class:`LLMSimulatorConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recoworld.config_checks import Interval
from recoworld.simulators.llm_shared import ChatModelNode, LLMVoiceConfig
from recoworld.simulators.statistical import StatisticalUserConfig


@dataclass
class LLMUserConfig(LLMVoiceConfig):
    """How LLM users are prompted and how their replies map to a Response.

    Attributes:
        on_failure: ``"fallback"`` (the statistical twin's response for a failed step) or
            ``"fail"`` (raise :class:`~recoworld.simulators.llm_shared.LLMUserError`).
        temperature: sampling temperature of every request (0: greedy).
        max_tokens: reply length limit; ``None`` gives ``256 + 70 * slate_size``, enough for
            the longest reply the schema allows even at one token per character (a cut
            reply is invalid JSON).
        app: how the prompt names the service.
        initial_mindset: the mindset sentence of a new user.
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
              **dict.fromkeys(("click_watch", "like_watch", "dislike_watch"), Interval(0.0, 1.0, closed_low=False))}


@dataclass
class LLMSimulatorConfig:
    """The Hydra schema of ``simulator=llm``:
    :class:`~recoworld.simulators.llm_user.LLMUsers` with its chat model
    (``llm``: ``${llm}``, the root ``llm`` node of ``recoworld run``'s config, a
    :class:`~recoworld.simulators.llm_shared.ChatModelNode`), its prompting and mapping
    (``config``), the statistical twin's parameters (``statistical``) and the population
    (``None``: :func:`~recoworld.simulators.llm_shared.default_population`)."""

    _target_: str = "recoworld.simulators.llm_user.LLMUsers"
    llm: ChatModelNode = "${llm}"  # the root node of recoworld run's config
    config: LLMUserConfig = field(default_factory=LLMUserConfig)
    statistical: StatisticalUserConfig = field(default_factory=StatisticalUserConfig)
    population: Any = None
    device: str = "${device}"
