"""Accounting of LLM use — tokens, calls, cache hits, failures, retries, latency, cost — and
the budget that stops a run before it spends more than allowed.

:meth:`Accounting.as_dict` is flat and JSON-ready, meant for ``metrics.json``.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass

from recoworld.llm.errors import BudgetExceeded
from recoworld.llm.types import BackendCall

#: Characters per token used to estimate a prompt's size before it is sent. Four is the usual
#: figure for English under BPE vocabularies; the estimate only sizes budget reservations.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Pricing:
    """US dollars per million prompt and completion tokens (0 for local models)."""

    prompt_usd_per_1m: float = 0.0
    completion_usd_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_usd_per_1m + completion_tokens * self.completion_usd_per_1m) / 1e6


@dataclass(frozen=True)
class Budget:
    """Limits on a model's spend; ``None`` means no limit.

    A call is made only when it fits with its worst case — the estimated prompt tokens plus
    its ``max_tokens`` — on top of what is spent and what calls in flight have reserved.
    Cache hits are free.
    """

    max_total_tokens: int | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None


def raise_limit(limit: str) -> str:
    """The fix of a :class:`Budget` ``limit`` reached, in the keys of each application that
    sets it: the accounting does not know whose model it counts (``recoworld run``'s LLM
    users' or an LLM agent's, ``recoworld fidelity``'s, a script's)."""
    return (f"raise {limit} (recoworld run: llm.{limit} for the LLM users' model, agent.llm.{limit} for an LLM "
            f"agent's; recoworld fidelity: --llm {limit}=...; Python: LLMConfig.{limit})")


#: The other fix of a budget that a call's worst case would pass, its ``max_tokens``, in the keys
#: of each application, as :func:`raise_limit`'s. ``recoworld fidelity`` has no flag for it: its
#: LLM users' limit is their default, room for the longest reply their schema allows.
BUDGET_LOWER_MAX_TOKENS = (
    "lower max_tokens (recoworld run: simulator.config.max_tokens for the LLM users, agent.max_tokens for an LLM "
    "agent; recoworld fidelity: no flag, its LLM users' limit is their default, room for the longest reply their "
    "schema allows; Python: LLMUserConfig.max_tokens, or an LLM agent's max_tokens argument)")


def _refusal(reached: str, limit: str, fix: str) -> BudgetExceeded:
    """The :class:`BudgetExceeded` of ``limit`` reached: ``reached``, then ``fix``."""
    return BudgetExceeded(f"{reached}; {fix}", limit=limit, reached=reached)


def estimate_prompt_tokens(call: BackendCall) -> int:
    """A rough prompt size in tokens, for reservations only (see :data:`CHARS_PER_TOKEN`)."""
    chars = sum(len(m["content"]) + len(m["role"]) + 4 for m in call.messages)
    return chars // CHARS_PER_TOKEN + 1


#: The counters of :class:`Accounting` that :meth:`Accounting.mark` records.
COUNTERS = ("requests", "replies", "structured_failures", "backend_failures", "calls", "cache_hits", "retries",
            "repairs", "prompt_tokens", "completion_tokens", "cost_usd", "usage_estimates")


@dataclass(frozen=True)
class UsageMark:
    """The counters of an :class:`Accounting` at one moment, and how many latencies it held:
    :meth:`Accounting.as_dict` ``(since=mark)`` reports only what came after."""

    counters: dict
    latencies: int


class Accounting:
    """Counters of one :class:`~recoworld.llm.base.ChatModel`, safe to update from threads."""

    def __init__(self, budget: Budget | None = None, pricing: Pricing | None = None):
        self.budget = budget or Budget()
        self.pricing = pricing or Pricing()
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self.requests = 0
        self.replies = 0
        self.structured_failures = 0
        self.backend_failures = 0
        self.calls = 0
        self.cache_hits = 0
        self.retries = 0
        self.repairs = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        #: Calls whose server reported no token counts: their tokens are estimated from the text.
        self.usage_estimates = 0
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        self._reserved_calls = 0

    # --- budget -------------------------------------------------------------------------

    def reserve(self, calls: list[BackendCall]) -> tuple[int, float, int]:
        """Reserve the worst case of ``calls`` or raise :class:`BudgetExceeded`."""
        prompt = sum(estimate_prompt_tokens(c) for c in calls)
        completion = sum(c.request.max_tokens for c in calls)
        tokens, cost, n = prompt + completion, self.pricing.cost(prompt, completion), len(calls)
        b = self.budget
        with self._lock:
            if b.max_calls is not None and self.calls + self._reserved_calls + n > b.max_calls:
                raise _refusal(f"call budget reached: {self.calls} calls made and {self._reserved_calls} in flight "
                               f"of max_calls={b.max_calls}", "max_calls", f"{raise_limit('max_calls')} to continue")
            spent = self.prompt_tokens + self.completion_tokens
            if b.max_total_tokens is not None and spent + self._reserved_tokens + tokens > b.max_total_tokens:
                raise _refusal(
                    f"token budget reached: the next call may use up to {tokens} tokens (about {prompt} prompt + "
                    f"max_tokens {completion}), but {spent} of max_total_tokens={b.max_total_tokens} are spent and "
                    f"{self._reserved_tokens} reserved by calls in flight", "max_total_tokens",
                    f"{raise_limit('max_total_tokens')}, or {BUDGET_LOWER_MAX_TOKENS}")
            if b.max_cost_usd is not None and self.cost_usd + self._reserved_cost + cost > b.max_cost_usd:
                raise _refusal(
                    f"cost budget reached: the next call may cost up to ${cost:.6f}, but ${self.cost_usd:.6f} of "
                    f"max_cost_usd={b.max_cost_usd} is spent and ${self._reserved_cost:.6f} reserved by calls in "
                    "flight", "max_cost_usd", f"{raise_limit('max_cost_usd')}, or {BUDGET_LOWER_MAX_TOKENS}")
            self._reserved_tokens += tokens
            self._reserved_cost += cost
            self._reserved_calls += n
        return tokens, cost, n

    def release(self, reservation: tuple[int, float, int]) -> None:
        tokens, cost, n = reservation
        with self._lock:
            self._reserved_tokens -= tokens
            self._reserved_cost -= cost
            self._reserved_calls -= n

    # --- events -------------------------------------------------------------------------

    def record_call(self, prompt_tokens: int, completion_tokens: int, latency_s: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cost_usd += self.pricing.cost(prompt_tokens, completion_tokens)
            self._latencies.append(latency_s)

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to one of the integer counters (``requests``, ``retries``, ...)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    @property
    def failures(self) -> int:
        return self.structured_failures + self.backend_failures

    def mark(self) -> UsageMark:
        """The counters now: pass it to :meth:`as_dict` later to count only what came after
        (e.g. one rollout's use of a model that several rollouts share, one after the other)."""
        with self._lock:
            return UsageMark({name: getattr(self, name) for name in COUNTERS}, len(self._latencies))

    def as_dict(self, since: UsageMark | None = None) -> dict[str, float | int]:
        """Flat counters for ``metrics.json``; latencies are per backend generation. With
        ``since`` (from :meth:`mark`), only the use after that mark."""
        with self._lock:
            base = since.counters if since is not None else dict.fromkeys(COUNTERS, 0)
            c = {name: getattr(self, name) - base[name] for name in COUNTERS}
            lat = sorted(self._latencies[since.latencies if since is not None else 0:])
            return {
                "llm_requests": c["requests"],
                "llm_replies": c["replies"],
                "llm_failures": c["structured_failures"] + c["backend_failures"],
                "llm_structured_failures": c["structured_failures"],
                "llm_backend_failures": c["backend_failures"],
                "llm_calls": c["calls"],
                "llm_cache_hits": c["cache_hits"],
                "llm_retries": c["retries"],
                "llm_repairs": c["repairs"],
                "llm_prompt_tokens": c["prompt_tokens"],
                "llm_completion_tokens": c["completion_tokens"],
                "llm_total_tokens": c["prompt_tokens"] + c["completion_tokens"],
                "llm_cost_usd": round(c["cost_usd"], 8),
                "llm_usage_estimates": c["usage_estimates"],
                "llm_latency_s_total": sum(lat),
                "llm_latency_s_mean": statistics.fmean(lat) if lat else 0.0,
                "llm_latency_s_p50": lat[len(lat) // 2] if lat else 0.0,
                "llm_latency_s_p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
                "llm_latency_s_max": lat[-1] if lat else 0.0,
            }

    def __repr__(self) -> str:
        d = self.as_dict()
        return f"Accounting(calls={d['llm_calls']}, cache_hits={d['llm_cache_hits']}, tokens={d['llm_total_tokens']}, failures={d['llm_failures']})"
