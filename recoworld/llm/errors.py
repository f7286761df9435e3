"""What can go wrong with an LLM call, as types a caller can catch.

A *run-level* condition (:class:`BudgetExceeded`) stops the whole run. A *request-level*
failure (:class:`ChatFailure` and its two kinds) belongs to one request: the caller — a
simulator, say — decides whether it fails the run or falls back to something else. A
failure always carries what the model actually said; a reply is never invented.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class of every error raised by :mod:`recoworld.llm`."""


class BudgetExceeded(LLMError):
    """The next call could take the run past its token, cost or call budget.

    Raised *before* the call is made, so the spend recorded in the accounting never exceeds
    the budget by more than the estimate error of a prompt's size.
    """


class TransientBackendError(LLMError):
    """A backend error worth retrying: rate limit (429), server error (5xx), lost connection,
    timeout. Backends translate their own exceptions into this one.

    Attributes:
        status_code: the HTTP status when there was one, else ``None``.
        retry_after_s: the server's ``Retry-After`` hint in seconds, when it sent one.
    """

    def __init__(self, message: str, status_code: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class ChatFailure(LLMError):
    """One request could not be answered. Carries the request and every raw text received.

    Attributes:
        request: the :class:`~recoworld.llm.types.ChatRequest` that failed.
        raw_texts: the text of every generation made for it, oldest first (may be empty).
        attempts: how many generations were made (first try plus repairs).
    """

    def __init__(self, message: str, request, raw_texts: list[str], attempts: int):
        super().__init__(message)
        self.request = request
        self.raw_texts = list(raw_texts)
        self.attempts = attempts

    @property
    def raw_text(self) -> str | None:
        """The last text the model produced, or ``None`` when it produced none."""
        return self.raw_texts[-1] if self.raw_texts else None


class StructuredOutputError(ChatFailure):
    """The model's replies never validated against the request's schema, repairs included.

    Attributes:
        errors: the parse/validation error of each attempt, aligned with ``raw_texts``.
    """

    def __init__(self, message: str, request, raw_texts: list[str], errors: list[str]):
        super().__init__(message, request, raw_texts, attempts=len(raw_texts))
        self.errors = list(errors)


class BackendCallError(ChatFailure):
    """The backend itself failed: a non-retryable error (bad request, auth, unknown model), or
    a transient one that outlived every retry. ``__cause__`` holds the last exception."""
