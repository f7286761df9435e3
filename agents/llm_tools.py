"""A tool-using recommender: the LLM writes a plan of tool calls, the agent executes it.

The LLM reads the user's instruction and history and answers a JSON **plan**, validated by
pydantic (genre names must be the catalog's, weights in range, at most ``max_calls``
calls)::

    {"reasoning": "wants Sci-Fi, tired of Comedy",
     "preferences": {"more": ["Sci-Fi"], "less": ["Comedy"], "novelty": "new", "exclude_seen": true},
     "calls": [{"tool": "category_filter", "exclude": ["Comedy"], "include": []},
               {"tool": "collaborative_score", "weight": 1.0},
               {"tool": "category_boost", "genres": ["Sci-Fi"], "weight": 2.0},
               {"tool": "novelty_score", "direction": "new", "weight": 1.0},
               {"tool": "diversify", "strength": 0.3}]}

**Tools**, executed in order over the request's candidates (a pool and a score each):

======================= ============================================================
``category_filter``      retrieval: drop candidates in ``exclude`` genres; with
                         ``include``, keep only candidates in one of them. A filter
                         that would leave fewer than ``K`` candidates is skipped (traced).
``collaborative_score``  add ``weight`` x the collaborative model's scores, standardised
                         per request.
``category_boost``       add ``weight`` to candidates in one of ``genres`` (negative
                         weights demote).
``novelty_score``        add ``weight`` x the standardised distance ``1 - <profile, f_c>``
                         of each candidate from the user's recent clicks (``"new"``), or
                         its negative (``"familiar"``).
``diversify``            select the slate greedily by maximal marginal relevance
                         (Carbonell & Goldstein 1998): next item
                         :math:`\\arg\\max_c (1-\\lambda)\\,\\hat s_c - \\lambda \\max_{j \\in S}\\cos(f_c, f_j)`
                         with :math:`\\hat s` the scores rescaled to [0, 1] and
                         :math:`\\lambda` = ``strength``.
======================= ============================================================

The preference ``exclude_seen`` drops the user's recent clicks from the pool (when at
least ``K`` candidates remain). A plan without ``collaborative_score`` gets one of weight
1 first: the collaborative model's order breaks every tie. Without ``diversify`` the slate
is the top ``K`` scores.

Plans are made once per instruction and reused while it is current (``counts["plan_reused"]``).
A reply that fails validation after the chat model's repairs falls back to the
collaborative order (``counts["fallbacks"]``). ``planner="rules"`` replaces the LLM by a
fixed translation of the structured instruction into the same plan format: the non-LLM
twin of this agent, for ablations.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, Field, create_model

from recoworld.agents.base import Recommender, top_k
from recoworld.agents.linear import LinUCB
from recoworld.agents.llm_agents import LLMRecommender, collaborative_scores
from recoworld.config_checks import AT_LEAST_ONE, check_number
from recoworld.llm import ChatReply, as_data
from recoworld.types import CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION, SESSION, Feedback, Observation

PLANNERS = ("llm", "rules")
SYSTEM = ("You are the planning step of a movie recommender. Read the user's instruction and history, state "
          "their preferences, and write a short plan of tool calls that builds their next slate. Tools: "
          "category_filter(exclude, include) drops or keeps genres; collaborative_score(weight) ranks by what "
          "similar users watched; category_boost(genres, weight) raises (or, negative, lowers) genres; "
          "novelty_score(direction 'new' or 'familiar', weight) favours unfamiliar or familiar movies; "
          "diversify(strength 0-1) spreads the slate over different movies. Reply in JSON.")


def plan_schema(genre_names: list[str], max_calls: int = 4, reason_chars: int = 160) -> type[BaseModel]:
    """The pydantic model of a plan for a catalog with these genres (see the module docstring)."""
    Genre = Literal[tuple(genre_names)]
    Genres = Annotated[list[Genre], Field(max_length=2)]
    Weight = Annotated[float, Field(ge=-5.0, le=5.0)]

    class Preferences(BaseModel):
        more: Genres = []
        less: Genres = []
        novelty: Literal["new", "familiar", "any"] = "any"
        exclude_seen: bool = True

    class CategoryFilter(BaseModel):
        tool: Literal["category_filter"]
        exclude: Genres = []
        include: Genres = []

    class CollaborativeScore(BaseModel):
        tool: Literal["collaborative_score"]
        weight: Annotated[float, Field(ge=0.0, le=5.0)] = 1.0

    class CategoryBoost(BaseModel):
        tool: Literal["category_boost"]
        genres: Genres
        weight: Weight = 1.0

    class NoveltyScore(BaseModel):
        tool: Literal["novelty_score"]
        direction: Literal["new", "familiar"]
        weight: Annotated[float, Field(ge=0.0, le=5.0)] = 1.0

    class Diversify(BaseModel):
        tool: Literal["diversify"]
        strength: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3

    Call = Annotated[Union[CategoryFilter, CollaborativeScore, CategoryBoost, NoveltyScore, Diversify],
                     Field(discriminator="tool")]
    return create_model(
        "Plan",
        reasoning=(str, Field(max_length=reason_chars, description="one short sentence")),
        preferences=(Preferences, ...),
        calls=(Annotated[list[Call], Field(min_length=1, max_length=max_calls)], ...),
    )


class LLMToolAgent(LLMRecommender):
    """Plans of tool calls, written by an LLM (or by rules) and executed here (see the
    module docstring).

    Args:
        proposer: the collaborative model behind ``collaborative_score``; default ``LinUCB()``.
        planner: ``"llm"`` or ``"rules"``.
        max_calls: most tool calls a plan may hold.
        setup_proposer: set the proposer up in :meth:`setup`.
        **kwargs: the :class:`~recoworld.agents.llm_agents.LLMRecommender` arguments;
            ``llm_when`` defaults to ``"instruction"`` here (with no instruction there is
            nothing to plan: the collaborative order serves the request), and ``max_tokens``
            to 320 (a plan is longer than a slate).
    """

    name = "llm_tools"
    counters = ("llm_requests", "planned_slates", "plan_reused", "fallbacks", "no_instruction")

    def __init__(self, proposer: Recommender | None = None, planner: str = "llm", max_calls: int = 4,
                 setup_proposer: bool = True, llm_when: str = "instruction", max_tokens: int = 320, **kwargs):
        if planner not in PLANNERS:
            raise ValueError(f"planner={planner!r}; choose one of {PLANNERS}")
        super().__init__(llm_when=llm_when, max_tokens=max_tokens, **kwargs)
        self.proposer = proposer if proposer is not None else LinUCB()
        self.planner, self.setup_proposer = planner, setup_proposer
        # Checked when built: pydantic would refuse it in setup with a schema error about its own model.
        self.max_calls = check_number(type(self).__name__, "max_calls", max_calls, AT_LEAST_ONE, integer=True)
        if planner == "rules" and "name" not in kwargs:
            self.name = "rule_tools"

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        if self.setup_proposer:
            self.proposer.setup(env, seed)
        self.Plan = plan_schema(self.genre_names, self.max_calls, self.reason_chars)
        self._plans: dict[int, tuple[tuple, BaseModel]] = {}

    # ------------------------------------------------------------------ act
    def act(self, obs: Observation) -> np.ndarray:
        ids = np.asarray(obs[CANDIDATE_IDS])
        collaborative = collaborative_scores(self.proposer, obs)
        action = top_k(collaborative, self.slate_size)
        current, more, less, novelty = self.instruction(obs)
        age = np.asarray(obs[SESSION], dtype=np.int64)[:, 2]
        plans: dict[int, BaseModel] = {}
        to_ask = []
        for b in np.flatnonzero(self.needs_llm(obs) if self.planner == "llm" else current):
            key = (self.step - age[b], obs[INSTRUCTION][b].tobytes()) if current[b] else None
            cached = self._plans.get(b)
            if key is not None and cached is not None and cached[0] == key:
                plans[b] = cached[1]
                self.counts["plan_reused"] += 1
            elif self.planner == "rules":
                plans[b] = self.rule_plan(more[b], less[b], novelty[b])
                self._plans[b] = (key, plans[b])
            else:
                to_ask.append((b, key))
        self.counts["no_instruction"] += len(ids) - len(plans) - len(to_ask)
        requests = [self.request(SYSTEM, self._prompt(obs, b), self.Plan, b) for b, _ in to_ask]
        replies = self.ask(requests)
        for (b, key), request, reply in zip(to_ask, requests, replies):
            if isinstance(reply, ChatReply):
                plans[b] = reply.parsed
                if key is not None:
                    self._plans[b] = (key, reply.parsed)
            else:
                self.trace(b, request, reply, slate=ids[b, action[b]].tolist(), fallback="invalid_reply")
        asked = {b: (request, reply) for (b, _), request, reply in zip(to_ask, requests, replies)}
        for b, plan in plans.items():
            action[b], notes = self.execute(plan, obs, b, collaborative[b])
            self.counts["planned_slates"] += 1
            request, reply = asked.get(b, (None, None))
            self.trace(b, request, reply, slate=ids[b, action[b]].tolist(), plan=plan.model_dump(), notes=notes)
        self.check_fallbacks()
        self.step += 1
        return action

    def _prompt(self, obs: Observation, b: int) -> str:
        return (f"{self.context(obs, b)}\nGenres: {as_data(self.genre_names)}.\n"
                "Reply with JSON: {\"reasoning\": one short sentence, \"preferences\": {\"more\": [genres], "
                "\"less\": [genres], \"novelty\": \"new\"|\"familiar\"|\"any\", \"exclude_seen\": true|false}, "
                "\"calls\": [tool calls, each {\"tool\": name, ...arguments}]}.")

    # -------------------------------------------------------------- planning
    def rule_plan(self, more: np.ndarray, less: np.ndarray, novelty: float) -> BaseModel:
        """The plan the rules write for a structured instruction (the ``"rules"`` planner)."""
        more_names = [self.genre_names[g] for g in np.flatnonzero(more)][:2]
        less_names = [self.genre_names[g] for g in np.flatnonzero(less)][:2]
        wish = "new" if novelty > 0 else "familiar" if novelty < 0 else "any"
        calls: list[dict] = [{"tool": "collaborative_score", "weight": 1.0}]
        if less_names:
            calls.insert(0, {"tool": "category_filter", "exclude": less_names, "include": []})
        if more_names:
            calls.append({"tool": "category_boost", "genres": more_names, "weight": 1.5})
        if wish != "any":
            calls.append({"tool": "novelty_score", "direction": wish, "weight": 1.0})
        return self.Plan.model_validate({
            "reasoning": "rules: filter out less, boost more, follow the novelty wish",
            "preferences": {"more": more_names, "less": less_names, "novelty": wish, "exclude_seen": True},
            "calls": calls,
        })

    # ------------------------------------------------------------- execution
    def execute(self, plan: BaseModel, obs: Observation, b: int, collaborative: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The slate ``(K,)`` (candidate indices) that ``plan`` builds for user ``b``, and
        notes on calls that were skipped."""
        ids = np.asarray(obs[CANDIDATE_IDS][b])
        genres = self.genres[ids]
        K, notes = self.slate_size, []
        pool = np.ones(len(ids), dtype=bool)
        if plan.preferences.exclude_seen:
            seen = np.isin(ids, np.asarray(obs[HISTORY_ITEMS][b]))
            if (pool & ~seen).sum() >= K:
                pool &= ~seen
        score = np.zeros(len(ids))
        calls = list(plan.calls)
        if not any(c.tool == "collaborative_score" for c in calls):
            score += _standardise(collaborative)
        strength = None
        for call in calls:
            if call.tool == "category_filter":
                keep = pool & ~self._in(genres, call.exclude)
                if call.include:
                    keep &= self._in(genres, call.include)
                if keep.sum() >= K:
                    pool = keep
                else:
                    notes.append(f"category_filter skipped: it would leave {int(keep.sum())} < {K} candidates")
            elif call.tool == "collaborative_score":
                score += call.weight * _standardise(collaborative)
            elif call.tool == "category_boost":
                score += call.weight * self._in(genres, call.genres)
            elif call.tool == "novelty_score":
                distance = 1.0 - self.item_features[ids] @ self._profile(obs, b)
                score += call.weight * (1.0 if call.direction == "new" else -1.0) * _standardise(distance)
            elif call.tool == "diversify":
                strength = call.strength
        # Ties (e.g. equal boosts) are broken by the collaborative order.
        score = score + 1e-6 * _standardise(collaborative)
        score = np.where(pool, score, -np.inf)
        if strength is None:
            return top_k(score[None, :], K)[0], notes
        return _mmr(score, self.item_features[ids], K, strength), notes

    def _in(self, genres: np.ndarray, names: list[str]) -> np.ndarray:
        columns = [self.genre_names.index(n) for n in names]
        return genres[:, columns].any(1) if columns else np.zeros(len(genres), dtype=bool)

    def _profile(self, obs: Observation, b: int) -> np.ndarray:
        """Watch-weighted mean features of the user's recent clicks (zeros without history)."""
        items = np.asarray(obs[HISTORY_ITEMS][b])
        weight = np.where(items >= 0, np.asarray(obs[HISTORY_FEEDBACK][b])[:, 0], 0.0)
        if weight.sum() <= 0:
            return np.zeros(self.item_features.shape[1])
        return weight @ self.item_features[np.maximum(items, 0)] / weight.sum()

    def learn(self, feedback: Feedback) -> None:
        if self.proposer.learns:
            self.proposer.update(feedback)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-8)


def _mmr(score: np.ndarray, features: np.ndarray, k: int, strength: float) -> np.ndarray:
    """Maximal marginal relevance selection of ``k`` indices (see the module docstring)."""
    finite = np.isfinite(score)
    low, high = score[finite].min(), score[finite].max()
    relevance = np.where(finite, (score - low) / (high - low + 1e-12), -np.inf)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    chosen: list[int] = []
    redundancy = np.zeros(len(score))
    for _ in range(k):
        value = (1.0 - strength) * relevance - strength * redundancy
        value[chosen] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        redundancy = np.maximum(redundancy, unit @ unit[best])
    return np.array(chosen, dtype=np.int64)
