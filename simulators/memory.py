"""What an LLM user remembers, bounded in size, carried across sessions.

- **Interaction memory**: the most recent items the user reacted to, each with the action
  and the one-line reason the user gave (``max_interactions`` of them; skips only when
  ``remember_skips``).
- **Session memory**: one summary per finished session — steps, clicks, likes, dislikes,
  the genres clicked most, the instruction voiced, and how the mindset shifted from the
  session's start to its end (``max_sessions`` of them). Older summaries are folded into a
  single line of totals, so the memory never grows with the length of the user's life.

The summary of a session is composed from these counts rather than asked of the LLM: it
costs no call, and it cannot be malformed. Item names, genres, reasons and the user's
words are rendered as data (:mod:`recoworld.llm.prompt_data`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, check_fields
from recoworld.llm import as_data, data_block

ACTIONS = ("click", "skip", "like", "dislike")
#: Actions in which the user opened the item.
OPENED = frozenset({"click", "like", "dislike"})


@dataclass
class MemoryConfig:
    """Bounds of an LLM user's memory.

    Attributes:
        max_interactions: recent reactions kept.
        max_sessions: session summaries kept (older ones fold into totals).
        max_reason_chars: reasons are cut to this length.
        remember_skips: keep skipped items in the interaction memory too.
    """

    max_interactions: int = 10
    max_sessions: int = 3
    max_reason_chars: int = 80
    remember_skips: bool = False

    RANGES = {"max_interactions": NON_NEGATIVE, "max_sessions": NON_NEGATIVE, "max_reason_chars": AT_LEAST_ONE}

    def __post_init__(self):
        # Types too: 2.5 or "5" would fail later as a deque's size, and "no" would remember skips.
        check_fields(self)


@dataclass(frozen=True)
class Interaction:
    """One reaction: the item, the action (one of :data:`ACTIONS`) and the user's reason."""

    item: int
    action: str
    reason: str


@dataclass(frozen=True)
class SessionSummary:
    """A finished session, as the user remembers it."""

    index: int
    steps: int
    shown: int
    clicks: int
    likes: int
    dislikes: int
    top_genres: tuple[str, ...]
    start_mindset: str
    end_mindset: str
    start_satisfaction: int
    end_satisfaction: int
    instruction: str | None = None

    def text(self) -> str:
        """The summary as a prompt line; genres and words are data elements."""
        line = f"Session {self.index + 1} ({self.steps} steps): opened {self.clicks} of {self.shown} items shown"
        line += f", liked {self.likes}" + (f", disliked {self.dislikes}" if self.dislikes else "")
        line += f", mostly {as_data(list(self.top_genres))}." if self.top_genres else "."
        if self.instruction:
            line += f" You asked: {as_data(self.instruction)}"
        shift = "stayed at" if self.start_satisfaction == self.end_satisfaction else "went from"
        level = (f"{self.end_satisfaction}/5" if shift == "stayed at"
                 else f"{self.start_satisfaction}/5 to {self.end_satisfaction}/5")
        return f"{line} Satisfaction {shift} {level}; mindset at the end: {as_data(self.end_mindset)}"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class UserMemory:
    """One user's memory (see the module docstring)."""

    def __init__(self, config: MemoryConfig | None = None):
        self.config = config or MemoryConfig()
        self.interactions: deque[Interaction] = deque(maxlen=self.config.max_interactions)
        self.sessions: deque[SessionSummary] = deque(maxlen=self.config.max_sessions)
        self.folded_sessions = 0
        self.folded_clicks = 0
        self.sessions_finished = 0
        self.start_session("", 3)

    def start_session(self, mindset: str, satisfaction: int) -> None:
        """Open a new session's counters."""
        self._steps = self._shown = self._clicks = self._likes = self._dislikes = 0
        self._genres: Counter[str] = Counter()
        self._start = (mindset, satisfaction)
        self._instruction: str | None = None

    def record(self, reactions: Sequence[tuple[int, str, str]], genres_of: Callable[[int], Sequence[str]]) -> None:
        """Remember one step's ``(item, action, reason)`` reactions."""
        self._steps += 1
        self._shown += len(reactions)
        for item, action, reason in reactions:
            if action not in ACTIONS:
                raise ValueError(f"action {action!r} of item {item}; expected one of {ACTIONS}")
            if action in OPENED:
                self._clicks += 1
                self._genres.update(genres_of(item))
            self._likes += action == "like"
            self._dislikes += action == "dislike"
            if action != "skip" or self.config.remember_skips:
                self.interactions.append(Interaction(int(item), action, shorten(reason, self.config.max_reason_chars)))

    def voiced(self, instruction: str) -> None:
        """Remember the instruction the user gave during this session."""
        self._instruction = shorten(instruction, 2 * self.config.max_reason_chars)

    def end_session(self, mindset: str, satisfaction: int) -> SessionSummary:
        """Close the session: summarise it (:meth:`add_session`) and open the next one."""
        summary = SessionSummary(
            index=self.sessions_finished, steps=self._steps, shown=self._shown, clicks=self._clicks,
            likes=self._likes, dislikes=self._dislikes,
            top_genres=tuple(g for g, _ in self._genres.most_common(2)),
            start_mindset=shorten(self._start[0], self.config.max_reason_chars),
            end_mindset=shorten(mindset, self.config.max_reason_chars),
            start_satisfaction=self._start[1], end_satisfaction=satisfaction, instruction=self._instruction,
        )
        self.add_session(summary)
        self.start_session(mindset, satisfaction)
        return summary

    def add_session(self, summary: SessionSummary) -> None:
        """Keep a finished session's summary, folding the oldest one into totals when full."""
        if len(self.sessions) == self.config.max_sessions:
            folded = self.sessions[0] if self.sessions else summary
            self.folded_sessions += 1
            self.folded_clicks += folded.clicks
        if self.config.max_sessions:
            self.sessions.append(summary)
        self.sessions_finished += 1

    def render(self, describe: Callable[[list[int]], list[str]]) -> str:
        """The memory as prompt text; ``describe`` writes items (a history representation)."""
        lines = []
        if self.folded_sessions:
            lines.append(f"Earlier: {self.folded_sessions} sessions in which you opened {self.folded_clicks} items.")
        lines += [s.text() for s in self.sessions]
        if self.interactions:
            recent = list(self.interactions)[::-1]  # newest first
            names = describe([r.item for r in recent])
            lines.append("Your most recent reactions, newest first, one per line:")
            lines.append(data_block({"item": name, "action": r.action, "reason": r.reason}
                                    for name, r in zip(names, recent)))
        return "\n".join(lines)
