"""What LLM users and hybrid users share: the common part of their config, where their model
and their users come from, and what a step without a valid reply leaves behind."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from recoworld.catalog import Catalog
from recoworld.llm import ChatModel, LLMConfig, make_chat_model
from recoworld.representations import RepresentationConfig, make_representation
from recoworld.simulators.memory import MemoryConfig
from recoworld.simulators.persona import MovieLensPersonas, MovieLensPopulation
from recoworld.simulators.base import resolve_seeds  # noqa: F401  (re-exported for the LLM users)
from recoworld.simulators.population import Population, SyntheticPopulation

FAILURE_POLICIES = ("fail", "fallback")
MOVIELENS_ITEMS = 1682


@dataclass(frozen=True)
class StepFailure:
    """A user-step for which the model gave no valid reply.

    Attributes:
        slot: the user slot.
        seed: the user's seed.
        step: the user's step count (from its start) at the failure.
        error: what went wrong (the LLM layer's message).
        raw_texts: every text the model produced for the request, oldest first.
        handled: ``"fallback"`` or ``"fail"``.
    """

    slot: int
    seed: int
    step: int
    error: str
    raw_texts: tuple[str, ...]
    handled: str


class LLMUserError(RuntimeError):
    """Raised under ``on_failure="fail"`` when some user got no valid reply; ``failures``
    lists them (their raw texts included)."""

    def __init__(self, failures: list[StepFailure]):
        self.failures = failures
        first = failures[0]
        raw = first.raw_texts[-1][:300] if first.raw_texts else None
        super().__init__(
            f"{len(failures)} LLM user(s) got no valid reply; the first, slot {first.slot} (seed {first.seed}) at "
            f"step {first.step}: {first.error}; last raw text: {raw!r}. Use a stronger model or constrained "
            "decoding, or set on_failure='fallback' to use the statistical twin's response for such steps"
        )


@dataclass
class LLMVoiceConfig:
    """The fields LLM and hybrid users' configs share (each documents them in its own terms):
    ``on_failure``, ``temperature``, ``app``, ``failures_kept``, ``memory`` and
    ``representation``; mappings given for the last two are read as their configs."""

    on_failure: str = "fallback"
    temperature: float = 0.0
    app: str = "a movie recommendation app"
    failures_kept: int = 1000
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)

    def __post_init__(self):
        if isinstance(self.memory, Mapping):
            self.memory = MemoryConfig(**self.memory)
        if isinstance(self.representation, Mapping):
            self.representation = RepresentationConfig(**self.representation)
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure={self.on_failure!r}; choose one of {FAILURE_POLICIES}")


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

    def close(self) -> None:
        """Release the chat model when this simulator built it."""
        if self._owns_llm:
            self.llm.close()


@dataclass
class ChatModelNode(LLMConfig):
    """A Hydra node that builds a chat model: :class:`~recoworld.llm.LLMConfig` with
    :func:`~recoworld.llm.make_chat_model` as its target; the type of ``recoworld run``'s
    root ``llm`` node. Built once per run when a simulator config refers to it, so every
    rollout shares the model and its cache (each simulator reports only its own use)."""

    _target_: str = "recoworld.llm.make_chat_model"


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


def satisfaction_stars(satisfaction: float) -> int:
    """Satisfaction in ``[0, 1]`` on the 1..5 scale."""
    return int(min(5, max(1, round(1 + 4 * satisfaction))))
