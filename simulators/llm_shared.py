"""What LLM users and hybrid users share: where their model and their users come from, and
what a step without a valid reply leaves behind (the common part of their config,
:class:`~recoworld.simulators.llm_config.LLMVoiceConfig`, is re-exported here)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, fields

from recoworld.catalog import Catalog
from recoworld.llm import ChatModel, make_chat_model
from recoworld.llm.structured import clipped_reply
from recoworld.representations import make_representation
from recoworld.simulators.persona import MovieLensPersonas, MovieLensPopulation
from recoworld.simulators.base import resolve_seeds  # noqa: F401  (re-exported for the LLM users)
# The shared config lives with the LLM users' configs, which load without torch; re-exported here.
from recoworld.simulators.llm_config import ChatModelNode, LLMVoiceConfig  # noqa: F401
from recoworld.simulators.population import Population, SyntheticPopulation

logger = logging.getLogger(__name__)

MOVIELENS_ITEMS = 1682


@dataclass(frozen=True)
class StepFailure:
    """A user-step for which the model gave no valid reply.

    Attributes:
        slot: the user slot.
        seed: the user's seed.
        step: the user's step count (from its start) at the failure.
        error: what went wrong (the LLM layer's message).
        raw_texts: every text the model produced for the request, oldest first, each cut by
            :func:`~recoworld.llm.structured.clipped_reply` (a server that ignores
            ``max_tokens`` would otherwise fill the memory with the kept failures).
        handled: ``"fallback"`` or ``"fail"``.
        hint: what to check or change (the LLM layer's :attr:`~recoworld.llm.ChatFailure.hint`).
    """

    slot: int
    seed: int
    step: int
    error: str
    raw_texts: tuple[str, ...]
    handled: str
    hint: str = ""


class LLMUserError(RuntimeError):
    """Raised under ``on_failure="fail"`` when some user got no valid reply; ``failures``
    lists them (their raw texts included)."""

    def __init__(self, failures: list[StepFailure]):
        self.failures = failures
        first = failures[0]
        raw = first.raw_texts[-1][:300] if first.raw_texts else None
        super().__init__(
            f"{len(failures)} LLM user(s) got no valid reply; the first, slot {first.slot} (seed {first.seed}) at "
            f"step {first.step}: {first.error}; last raw text: {raw!r}. Fix: {first.hint or 'use a stronger model'}; "
            "or set on_failure='fallback' to use the statistical response for such steps"
        )


class FallbackShareExceeded(LLMUserError):
    """Raised under ``on_failure="fallback"`` when more than ``max_fallback_share`` of the
    steps fell back to the statistical response: the run would measure statistical users
    while claiming LLM ones. ``failures`` holds the first failure, whose error and fix the
    message shows.

    The message names ``recoworld run``'s keys; another caller, with flags of its own
    (``recoworld fidelity``), words its fix with :meth:`explained`.

    Attributes:
        fallbacks, steps: the steps that fell back, of those counted.
        unit: what a step is (``"LLM user-steps"``, ``"hybrid voice calls"``).
        max_fallback_share: the share that was exceeded.
    """

    def __init__(self, first: StepFailure, fallbacks: int, steps: int, config: LLMVoiceConfig, unit: str):
        self.failures = [first]
        self.fallbacks, self.steps, self.unit = fallbacks, steps, unit
        self.max_fallback_share = config.max_fallback_share
        RuntimeError.__init__(self, self.explained())

    def explained(self, setting: str = "max_fallback_share",
                  accept: str = "raise simulator.config.max_fallback_share (1.0 never stops a run)",
                  hint: str | None = None) -> str:
        """The message, with the caller's ``setting`` of the share, how to ``accept`` more
        fallbacks, and ``hint`` in place of the first failure's fix (the LLM layer's, worded
        in ``recoworld run``'s ``llm.*`` keys)."""
        first = self.failures[0]
        fix = first.hint if hint is None else hint
        return (f"{self.fallbacks} of {self.steps} {self.unit} ({self.fallbacks / self.steps:.0%}) fell back to the "
                f"statistical response, more than {setting}={self.max_fallback_share} allows: the results would "
                f"not be the LLM's. The first failure (slot {first.slot}, step {first.step}): {first.error}. Fix: "
                f"{fix or 'see the error above'}. To accept fallbacks, {accept}")


class LLMVoice:
    """What LLM and hybrid users share of their wiring to a chat model (a mixin of both)."""

    def _connect(self, llm, config: LLMVoiceConfig, population, personas: MovieLensPersonas | None) -> None:
        """Take the persona book, the item representation, the chat model and the failure log;
        ``self.catalog`` must be set."""
        self.persona_book = personas if personas is not None else (
            population.personas if isinstance(population, MovieLensPopulation) else None)
        self.representation = make_representation(self.catalog, config.representation)
        self.llm, self._owns_llm = build_chat_model(llm)
        # A model shared by several simulators (the runner's rollouts, one after the
        # other) reports to each only its use since this simulator was built.
        self._llm_mark = self.llm.accounting.mark()
        self.failures: deque[StepFailure] = deque(maxlen=config.failures_kept)
        self.first_failure: StepFailure | None = None

    def _keep_failures(self, records: list[StepFailure]) -> None:
        """Keep (and log) failed requests; the very first is kept for the fallback error."""
        if records and self.first_failure is None:
            self.first_failure = records[0]
        self.failures.extend(records)
        for record in records:
            logger.warning("%s slot %d step %d: no valid reply (%s); %s", type(self).__name__, record.slot,
                           record.step, record.error[:300], "the statistical response stands in"
                           if record.handled == "fallback" else "failing the run")

    def _check_fallback_share(self, fallbacks: int, steps: int, unit: str, ended: bool = False) -> None:
        """Raise :class:`FallbackShareExceeded` when the share of ``fallbacks`` among ``steps``
        exceeds ``config.max_fallback_share`` (see :class:`LLMVoiceConfig`): during a rollout
        once ``fallback_min_steps`` are counted, and when it has ``ended`` whatever their
        number (a short run whose every step fell back is not an LLM run either)."""
        config = self.config
        if (config.on_failure == "fallback" and steps >= (1 if ended else config.fallback_min_steps)
                and fallbacks > config.max_fallback_share * steps):
            raise FallbackShareExceeded(self.first_failure, fallbacks, steps, config, unit)

    def close(self) -> None:
        """Release the chat model when this simulator built it."""
        if self._owns_llm:
            self.llm.close()


def default_population(catalog: Catalog) -> Population:
    """Real MovieLens users for the MovieLens-100K catalog, synthetic users otherwise."""
    if catalog.n_items == MOVIELENS_ITEMS and "movielens" in catalog.name.lower():
        return MovieLensPopulation()
    return SyntheticPopulation()


def build_chat_model(llm) -> tuple[ChatModel, bool]:
    """A chat model from an instance, an :class:`~recoworld.llm.LLMConfig`, a mapping of its
    fields, or ``None`` (the embedded SmolLM2 in process); and whether it was built here."""
    if isinstance(llm, ChatModel):
        return llm, False
    return make_chat_model(llm), True


def config_from(config_type, value):
    """``value`` as a ``config_type`` dataclass: itself, a mapping of its fields (unknown
    fields are an error naming them), or ``None`` for the defaults."""
    if value is None:
        return config_type()
    if isinstance(value, config_type):
        return value
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise TypeError(f"unknown {config_type.__name__} field(s) {unknown}; valid: {sorted(known)}")
    return config_type(**dict(value))


def step_failure(slot: int, seed: int, step: int, failure, handled: str) -> StepFailure:
    """The :class:`StepFailure` of a :class:`~recoworld.llm.ChatFailure`."""
    kept = tuple(clipped_reply(text) for text in failure.raw_texts)
    return StepFailure(slot, seed, step, str(failure), kept, handled, failure.hint)


def satisfaction_stars(satisfaction: float) -> int:
    """Satisfaction in ``[0, 1]`` on the 1..5 scale."""
    return int(min(5, max(1, round(1 + 4 * satisfaction))))
