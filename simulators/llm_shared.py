"""What LLM users and hybrid users share: where their model and their users come from, and
what a step without a valid reply leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, fields


from recoworld.catalog import Catalog
from recoworld.llm import ChatModel, LLMConfig, make_chat_model
from recoworld.simulators.persona import MovieLensPopulation
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
