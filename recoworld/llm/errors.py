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
    the budget by more than the estimate error of a prompt's size. The message names the
    limit's key in each application's terms; an application that words its own fix reads these:

    Attributes:
        limit: the :class:`~recoworld.llm.accounting.Budget` field reached (``"max_calls"``, ...),
            ``None`` where the raiser did not say.
        reached: what was reached, without the fix (the message where the raiser did not say).
    """

    def __init__(self, message: str, limit: str | None = None, reached: str | None = None):
        super().__init__(message)
        self.limit = limit
        self.reached = message if reached is None else reached


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
        hint: what to check or change so that such requests succeed.
    """

    hint: str = ""

    def __init__(self, message: str, request, raw_texts: list[str], attempts: int):
        super().__init__(message)
        self.request = request
        self.raw_texts = list(raw_texts)
        self.attempts = attempts

    @property
    def raw_text(self) -> str | None:
        """The last text the model produced, or ``None`` when it produced none."""
        return self.raw_texts[-1] if self.raw_texts else None


#: The fix of a reply cut at ``max_tokens``, in ``recoworld run``'s keys (an application that
#: sets the limit elsewhere, or not at all, words its own: ``recoworld fidelity``).
RAISE_MAX_TOKENS = ("raise max_tokens (LLM users: simulator.config.max_tokens; LLM agents: agent.max_tokens), "
                    "or ask for shorter replies")
#: The fix of an in-process generation whose time its ``max_tokens`` sets, in ``recoworld run``'s
#: keys (``recoworld fidelity`` words its own; a budget's worst case names every application's:
#: :data:`recoworld.llm.accounting.BUDGET_LOWER_MAX_TOKENS`).
LOWER_MAX_TOKENS = "lower max_tokens (LLM users: simulator.config.max_tokens; LLM agents: agent.max_tokens)"


class StructuredOutputError(ChatFailure):
    """The model's replies never validated against the request's schema, repairs included.

    Attributes:
        errors: the parse/validation error of each attempt, aligned with ``raw_texts``.
        max_tokens: the request's ``max_tokens`` when a reply that failed was cut there
            (the backend's ``finish_reason`` was ``"length"``), else ``None``; the hint then
            says to raise it, since a stronger model would be cut just the same.
    """

    hint = ("the model's replies did not follow the schema: use a stronger model, constrained decoding "
            "(llm.structured_mode), or more repair turns (llm.max_repairs)")

    def __init__(self, message: str, request, raw_texts: list[str], errors: list[str],
                 max_tokens: int | None = None):
        super().__init__(message, request, raw_texts, attempts=len(raw_texts))
        self.errors = list(errors)
        self.max_tokens = max_tokens
        if max_tokens is not None:
            self.hint = (f"the model's reply was cut at max_tokens={max_tokens} before its JSON was complete: "
                         + RAISE_MAX_TOKENS)


class BackendCallError(ChatFailure):
    """The backend itself failed: a non-retryable error (bad request, auth, unknown model), or
    a transient one that outlived every retry.

    The backend's own exception is not kept (an SDK's exception holds the request, and with
    it the API key): the message carries its type and its redacted text, and ``__cause__``
    is a :class:`BackendErrorSummary` of it.

    Attributes:
        status_code: the HTTP status of the last error, when there was one.
    """

    def __init__(self, message: str, request, raw_texts: list[str], attempts: int, status_code: int | None = None,
                 hint: str = ""):
        super().__init__(message, request, raw_texts, attempts)
        self.status_code = status_code
        self.hint = hint or "check the backend's settings (llm.*) and that the model it names can be run"


class BackendErrorSummary(LLMError):
    """What is kept of a backend's exception: its type name and its redacted message.

    Attributes:
        error_type: the name of the original exception's class (e.g. ``"APIStatusError"``).
        status_code: its HTTP status, when it had one.
    """

    def __init__(self, error_type: str, message: str, status_code: int | None = None):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.status_code = status_code


class NotAChatCompletion(LLMError):
    """A server answered something that is not an OpenAI-compatible chat completion (an
    HTML page, plain text, JSON of another shape): usually a wrong ``base_url``. The message
    names the URL and the content type it sent."""


class ChatCacheError(LLMError):
    """The on-disk cache cannot be read: the file is not a SQLite database, or it is damaged;
    or its surroundings keep a sound file from use (a read-only mount, its permissions). The
    message names the file and the fix (delete it, or use another ``cache_dir``; keep it, and
    fix its surroundings).

    Attributes:
        code: SQLite's error code (``"SQLITE_READONLY"``, ...) where SQLite refused the file,
            else ``None``.
    """

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code
