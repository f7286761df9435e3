"""Exponential backoff with full jitter for transient backend errors (429, 5xx, lost
connections, timeouts).

Delay before retry ``n`` (``n = 1, 2, ...``) is drawn uniformly from
``[0, min(max_delay_s, base_delay_s * 2**(n-1))]`` — "full jitter" in M. Brooker,
*Exponential Backoff And Jitter*, AWS Architecture Blog, 2015 — which spreads the retries of
many concurrent requests instead of having them hit a rate-limited server in waves. A
server's ``Retry-After`` hint, when larger, wins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from recoworld.config_checks import NON_NEGATIVE, check_fields


@dataclass(frozen=True)
class RetryPolicy:
    """How transient errors are retried.

    Attributes:
        max_retries: retries after the first try; ``0`` fails on the first transient error.
        base_delay_s: cap of the first delay; doubles with every retry.
        max_delay_s: cap of any delay.
    """

    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    RANGES = {"max_retries": NON_NEGATIVE, "base_delay_s": NON_NEGATIVE, "max_delay_s": NON_NEGATIVE}

    def __post_init__(self):
        check_fields(self)

    def delay_s(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        delay = rng.uniform(0.0, cap)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_delay_s))
        return delay
