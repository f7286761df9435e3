r"""A profile-aware LLM judge of slates, and its agreement with the simulated users.

An offline evaluator in the LLM-as-a-judge manner (Zheng et al., NeurIPS 2023, "Judging
LLM-as-a-Judge with MT-Bench and Chatbot Arena"): from a user's history the judge gets a
short natural-language **profile** (:func:`user_profile`), then

- **pointwise** (:meth:`LLMJudge.rate`): a score 1-5 with a reason for one slate;
- **pairwise** (:meth:`LLMJudge.compare`): which of two slates, A or B, serves the user
  better, or a tie. With ``swap=True`` (default) every pair is asked in both orders and a
  verdict that flips with the order becomes a tie — the position-bias control of Zheng et
  al. (§3.4).

A judge is worth what it agrees with. :func:`agreement` compares its verdicts with the
simulator's own ground truth for the same slates (its satisfaction, or any per-slate
number the simulator reports): Spearman's rank correlation of pointwise scores, and
pairwise accuracy — the share of pairs, among those whose truths differ, that the judge
orders as the truth does, a judge tie counting one half (chance is 0.5).

Profiles and slates enter the prompt as data (:mod:`recoworld.llm.prompt_data`): the
profile as one JSON string, each slate as a block of ``{"title", "genres"}`` lines; the
system message says such text is judged, not obeyed. Replies are validated against
pydantic schemas and repaired by the chat model; a request that still fails gives ``None`` (counted in ``judge.counts["failures"]``), never a guess.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from recoworld.llm import DATA_RULE, ChatModel, ChatReply, ChatRequest, as_data, data_block
from recoworld.wording import listing

SYSTEM = ("You are an expert evaluator of movie recommendations. You judge how well recommended movies suit "
          f"a particular user, given a profile of their tastes and what they asked for. {DATA_RULE} Reply in JSON.")


def user_profile(catalog, history_items, history_feedback=None, instruction: str | None = None,
                 max_genres: int = 3, max_titles: int = 3) -> str:
    """A short natural-language profile of a user from their recent clicks.

    Args:
        catalog: the :class:`~recoworld.catalog.Catalog`.
        history_items: recent clicked item ids, newest first, ``-1`` padded.
        history_feedback: ``[H, 2]`` watch fraction and like per click (weights the
            genres by watch time; all ones when omitted).
        instruction: what the user last asked for, quoted in the profile.
        max_genres, max_titles: how many top genres and liked titles to name.
    """
    items = np.asarray(history_items, dtype=np.int64)
    keep = items >= 0
    items = items[keep]
    feedback = (np.ones((len(items), 2)) if history_feedback is None
                else np.asarray(history_feedback, dtype=np.float64)[keep])
    sentences = []
    if len(items) == 0:
        sentences.append("A new user: no viewing history yet.")
    else:
        genres = catalog.genres.cpu().numpy()[items].astype(np.float64)
        weight = 0.2 + feedback[:, 0]
        share = (weight[:, None] * genres / genres.sum(1, keepdims=True)).sum(0)
        share /= share.sum()
        top = [g for g in np.argsort(-share, kind="stable")[:max_genres] if share[g] > 0]
        names = [f"{catalog.genre_names[g]} ({round(100 * share[g])}%)" for g in top]
        sentences.append(f"Recently watched {len(items)} movies, mostly " + listing(names) + ".")
        liked = [catalog.titles[i] for i, (_, like) in zip(items, feedback) if like > 0][:max_titles]
        if liked:
            sentences.append("Liked " + listing([f'"{t}"' for t in liked]) + ".")
        dropped = [catalog.titles[i] for i, (watched, _) in zip(items, feedback) if watched < 0.2][:max_titles]
        if dropped:
            sentences.append("Stopped early: " + listing([f'"{t}"' for t in dropped]) + ".")
    if instruction:
        sentences.append(f'Their latest request: "{instruction}"')
    return " ".join(sentences)


class Rating(BaseModel):
    """A pointwise verdict."""

    reason: Annotated[str, Field(max_length=200, description="one short sentence")]
    score: Annotated[int, Field(ge=1, le=5, description="1 = poor fit, 5 = excellent fit")]


class Preference(BaseModel):
    """A pairwise verdict."""

    reason: Annotated[str, Field(max_length=200, description="one short sentence")]
    better: Literal["A", "B", "tie"]


@dataclass
class JudgeScore:
    """A pointwise result: the score and the judge's reason."""

    score: int
    reason: str


class LLMJudge:
    """Rates slates for users described by a profile (see the module docstring).

    Args:
        llm: the :class:`~recoworld.llm.ChatModel` that judges.
        catalog: the catalog whose items are judged (titles and genres go in the prompt).
        swap: ask every pair in both orders (position-bias control).
        max_tokens, temperature: sampling of each request.
    """

    def __init__(self, llm: ChatModel, catalog, *, swap: bool = True, max_tokens: int = 96, temperature: float = 0.0):
        self.llm, self.catalog, self.swap = llm, catalog, swap
        self.max_tokens, self.temperature = max_tokens, temperature
        self._genres = catalog.genres.cpu().numpy()
        self.counts: Counter = Counter()

    def describe(self, slate) -> str:
        """A slate as a data block, one ``{"title", "genres"}`` per line, top first."""
        return data_block({"title": str(self.catalog.titles[int(item)]),
                           "genres": [self.catalog.genre_names[g] for g in np.flatnonzero(self._genres[int(item)])]}
                          for item in slate)

    def _request(self, prompt: str, schema) -> ChatRequest:
        return ChatRequest([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                           schema=schema, temperature=self.temperature, max_tokens=self.max_tokens)

    def rate(self, profiles: list[str], slates: list) -> list[JudgeScore | None]:
        """A 1-5 score with a reason per ``(profile, slate)``; ``None`` where the judge failed."""
        requests = [self._request(
            f"User profile: {as_data(profile)}\nRecommended movies, top first, one per line:\n"
            f"{self.describe(slate)}\n"
            "How well do these recommendations suit this user? Reply with JSON: "
            "{\"reason\": one short sentence, \"score\": 1 (poor fit) to 5 (excellent fit)}.", Rating)
            for profile, slate in zip(profiles, slates, strict=True)]
        out = []
        for reply in self._ask(requests):
            out.append(JudgeScore(reply.parsed.score, reply.parsed.reason) if isinstance(reply, ChatReply) else None)
        return out

    def compare(self, profiles: list[str], slates_a: list, slates_b: list) -> list[int | None]:
        """Per pair: ``+1`` when A is better, ``-1`` when B is, ``0`` for a tie, ``None`` where
        the judge failed. With ``swap`` a verdict that flips with the order is a tie."""
        pairs = list(zip(profiles, slates_a, slates_b, strict=True))
        orders = [(p, a, b) for p, a, b in pairs]
        if self.swap:
            orders += [(p, b, a) for p, a, b in pairs]
        requests = [self._request(
            f"User profile: {as_data(profile)}\nSlate A:\n{self.describe(a)}\nSlate B:\n{self.describe(b)}\n"
            "Which slate suits this user better? Reply with JSON: {\"reason\": one short sentence, "
            "\"better\": \"A\", \"B\" or \"tie\"}.", Preference) for profile, a, b in orders]
        verdicts = [{"A": 1, "B": -1, "tie": 0}[r.parsed.better] if isinstance(r, ChatReply) else None
                    for r in self._ask(requests)]
        if not self.swap:
            return verdicts
        n = len(pairs)
        out = []
        for first, second in zip(verdicts[:n], verdicts[n:]):
            if first is None or second is None:
                out.append(None)
            else:
                out.append(first if first == -second else 0)
                self.counts["order_flips"] += int(first != -second)
        return out

    def _ask(self, requests: list[ChatRequest]) -> list:
        self.counts["requests"] += len(requests)
        replies = self.llm.chat_many(requests, return_exceptions=True) if requests else []
        self.counts["failures"] += sum(not isinstance(r, ChatReply) for r in replies)
        return replies


# --------------------------------------------------------------- agreement
def spearman(scores, truth) -> float:
    """Spearman's rank correlation of judge scores and the truth (pairs with a missing
    score dropped; NaN with fewer than 3 pairs or a constant side)."""
    x, y = _paired(scores, truth)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def pairwise_accuracy(preferences, truth_a, truth_b) -> float:
    """Share of pairs ordered as the truth orders them (see the module docstring).

    ``preferences`` are per pair ``+1`` (A better), ``-1`` (B better), ``0`` (tie) or
    ``None`` (no verdict: dropped); pairs whose truths are equal are dropped too.
    """
    prefs = np.array([np.nan if p is None else float(p) for p in preferences])
    sign = np.sign(np.asarray(truth_a, dtype=np.float64) - np.asarray(truth_b, dtype=np.float64))
    use = ~np.isnan(prefs) & (sign != 0)
    if not use.any():
        return math.nan
    agree = np.where(prefs[use] == 0, 0.5, (np.sign(prefs[use]) == sign[use]).astype(np.float64))
    return float(agree.mean())


def agreement(scores, truth, preferences=None, truth_a=None, truth_b=None) -> dict[str, float]:
    """The judge's agreement with the simulator: pointwise ``spearman`` and the pairwise
    accuracy of the pointwise scores over all pairs of slates (``pointwise_pair_accuracy``);
    with pairwise verdicts, their ``pairwise_accuracy``. Counts of what was used come along."""
    x, y = _paired(scores, truth)
    i, j = np.triu_indices(len(x), k=1)
    out = {"spearman": spearman(scores, truth), "n_rated": int(len(x)),
           "pointwise_pair_accuracy": pairwise_accuracy(np.sign(x[i] - x[j]), y[i], y[j]) if len(x) > 1 else math.nan}
    if preferences is not None:
        prefs = list(preferences)
        out["pairwise_accuracy"] = pairwise_accuracy(prefs, truth_a, truth_b)
        out["n_pairs"] = sum(p is not None for p in prefs)
        out["tie_rate"] = float(np.mean([p == 0 for p in prefs if p is not None])) if out["n_pairs"] else math.nan
    return out


def _paired(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    values = [np.nan if s is None else float(getattr(s, "score", s)) for s in scores]
    x, y = np.array(values, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} scores for {len(y)} truths; give one truth per judged slate")
    keep = ~np.isnan(x) & ~np.isnan(y)
    return x[keep], y[keep]
