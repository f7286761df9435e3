"""How RecoWorld's messages and prompts count and list things, so that every error, summary
and persona reads alike: ``"1 round"`` but ``"3 rounds"``, ``"a, b and c"``."""

from __future__ import annotations

from collections.abc import Iterable


def plural(count: int, noun: str, nouns: str | None = None, spec: str = "") -> str:
    """``count`` and ``noun`` in its number: ``"1 round"``, ``"0 rounds"``, ``"3 rounds"``;
    ``nouns`` where the plural is not ``noun + "s"`` (``plural(2, "candidate index",
    "candidate indices")``), ``spec`` the count's format (``","``: ``"12,000 rounds"``)."""
    return f"{count:{spec}} {noun if count == 1 else nouns or noun + 's'}"


def one_line(text) -> str:
    """``text`` on one line, its runs of whitespace (newlines, tabs) one space each: a title or
    a user's sentence quoted in a line-based prompt or table cannot break it into lines."""
    return " ".join(str(text).split())


def listing(words: Iterable[str]) -> str:
    """Words as a sentence lists them: ``"a"``, ``"a and b"``, ``"a, b and c"``."""
    words = list(words)
    if not words:
        raise ValueError("listing() needs at least one word")
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
