"""What RecoWorld's LLM recommenders share: the model, the user's words, prompts and traces.

Three agents build on :class:`LLMRecommender`:

- :class:`~recoworld.agents.llm_rerank.LLMRerank` — a collaborative model proposes, the
  LLM selects and reorders in light of the instruction and history;
- :class:`~recoworld.agents.llm_tools.LLMToolAgent` — the LLM turns the instruction into
  structured preferences and a plan of tool calls (filters, scorers, a diversity
  re-ranker) that the agent executes;
- :class:`~recoworld.agents.llm_bandit.LLMBandit` — the LLM picks from a shortlist whose
  exploration and exploitation statistics (mean, count, UCB bonus) come from a bandit.

They serve ``RecoWorld/Slate-v0``'s vector env like any :class:`Recommender`: one
``act(obs)`` makes one ``chat_many`` call that fans out the prompts of the ``B`` users at
once. Every reply is validated against a pydantic schema that admits only the ids the
agent offered (repaired by the :class:`~recoworld.llm.ChatModel`, never guessed); a
request that still fails falls back to the agent's non-LLM order and is counted in
``agent.counts["fallbacks"]``.

**Item text is data.** Titles, genres, the user's words and paraphrases enter prompts as
JSON inside ``<data>`` (:mod:`recoworld.llm.prompt_data`), one item per line, and every
system message says such text is to be judged, not obeyed.

**The user's words.** The observation carries the instruction in structured form only;
its sentence reaches the agent in ``feedback.info["instruction_text"]`` at the step it is
voiced. Hearing it is observation, not learning: :meth:`LLMRecommender.observe` keeps each
user's latest sentence, and :func:`~recoworld.envs.rollout.rollout` passes every step's
feedback to it even with ``learn=False`` (an evaluation with the agent's learners frozen);
:meth:`~LLMRecommender.update` observes, then lets the proposer or guide learn (the start of
each rollout, :meth:`~LLMRecommender.begin_rollout`, reaches them too). The agents
quote the sentence while the instruction is current (voiced in the current session);
without it they describe the structured form.

**Fallbacks.** A request that fails after the chat model's repairs falls back to the
agent's non-LLM order (``counts["fallbacks"]``); at most ``max_fallback_share`` of a
rollout's requests may. Told the rollout's length (:meth:`LLMRecommender.begin_rollout`, as
:func:`~recoworld.envs.rollout.rollout` does), an agent stops with
:class:`AgentFallbacksExceeded` at the first request after which the share can no longer end
within the cap — a broken server stops a run early, not after it — and at the rollout's end
(:meth:`~LLMRecommender.finish`) it checks the share of all its requests.

**Resources.** An agent that built its model (from settings) releases it in
:meth:`~LLMRecommender.close`; a model given ready-made belongs to the caller.

**Traces.** Every decision is recorded in ``agent.traces`` (a list of dicts: rollout step,
user slot, prompt, raw replies, the parsed reply, the slate, whether it fell back and
why) and, with ``trace_path``, appended to a JSONL file as it happens.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, create_model, field_validator

from recoworld.agents.base import Recommender
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, UNIT, check_number
from recoworld.llm import (
    DATA_RULE, Accounting, ChatFailure, ChatModel, ChatReply, ChatRequest, LLMConfig, as_data, data_block,
    make_chat_model,
)
from recoworld.types import CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION, Feedback, Observation

LLM_WHEN = ("always", "instruction")
#: A key of the run's root ``llm`` node (the users' chat model) in an LLM-layer hint, e.g.
#: ``llm.max_repairs``: an agent's own model is ``agent.llm``, so its fixes must name that,
#: or ``recoworld run`` takes the override and the agent's model never sees it.
ROOT_LLM_KEY = re.compile(r"(?<![\w.])llm\.")


class AgentFallbacksExceeded(RuntimeError):
    """Raised when more than ``max_fallback_share`` of an LLM agent's requests in a rollout
    fell back to its non-LLM order — during the rollout as soon as the share can no longer
    end within the cap, or when it ends (:meth:`LLMRecommender.finish`): the rollout would
    measure that order under the LLM agent's name. The message shows the first failure's
    error and fix."""


class LLMRecommender(Recommender):
    """Base of the LLM agents (see the module docstring).

    Args:
        llm: a :class:`~recoworld.llm.ChatModel`, or the settings of one (an
            :class:`~recoworld.llm.LLMConfig` or a mapping for
            :func:`~recoworld.llm.make_chat_model`); default the embedded SmolLM2-135M.
        llm_when: ``"always"`` asks the LLM for every request; ``"instruction"`` only while
            the user has a current instruction (the agent's non-LLM order serves the others,
            counted in ``counts["no_instruction"]``, not as fallbacks).
        temperature, max_tokens: sampling of every request; with ``temperature > 0`` each
            request's sampling seed derives from the agent's seed (see :meth:`request`).
        reason_chars: longest ``reasoning`` the reply schema admits.
        history_shown: recent clicks described in a prompt.
        schema_in_prompt: for a model the agent builds itself, whether the JSON schema is
            appended to the prompt; the prompts already spell out the reply format, and a
            schema with every candidate id costs many prompt tokens.
        trace_path: a JSONL file that receives every trace as it is made.
        keep_traces: keep traces in ``agent.traces``.
        max_fallback_share: the largest share of LLM requests that may fall back in a
            rollout; beyond it :class:`AgentFallbacksExceeded` stops the rollout (see the
            module docstring; 1.0: never).
        name: label in metrics.
    """

    learns = True
    #: The decision counters :meth:`stats` always reports, 0 when nothing was counted.
    counters = ("llm_requests", "llm_slates", "fallbacks", "no_instruction")

    def __init__(self, llm: ChatModel | LLMConfig | Mapping | None = None, *, llm_when: str = "always",
                 temperature: float = 0.0, max_tokens: int = 160, reason_chars: int = 160, history_shown: int = 5,
                 schema_in_prompt: bool = False, trace_path: str | None = None, keep_traces: bool = True,
                 max_fallback_share: float = 0.05, name: str | None = None):
        if llm_when not in LLM_WHEN:
            raise ValueError(f"llm_when={llm_when!r}; choose one of {LLM_WHEN}")
        owner = type(self).__name__
        self.max_fallback_share = check_number(owner, "max_fallback_share", max_fallback_share, UNIT)
        self.temperature = check_number(owner, "temperature", temperature, NON_NEGATIVE)
        self.max_tokens, self.reason_chars = (check_number(owner, key, value, AT_LEAST_ONE, integer=True)
                                              for key, value in (("max_tokens", max_tokens),
                                                                 ("reason_chars", reason_chars)))
        self.history_shown = check_number(owner, "history_shown", history_shown, NON_NEGATIVE, integer=True)
        self.llm_spec = llm
        self.llm_when, self.schema_in_prompt = llm_when, schema_in_prompt
        self.trace_path = Path(trace_path) if trace_path else None
        self.keep_traces = keep_traces
        if name:
            self.name = name
        self.llm: ChatModel | None = llm if isinstance(llm, ChatModel) else None
        # Whether self.llm was built here (and is this agent's to close), and whether it was.
        self._owns_llm = self._llm_closed = False
        self._request_limit: int | None = None

    # ----------------------------------------------------------- lifecycle
    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        catalog = self.catalog
        self.genre_names = list(catalog.genre_names)
        self.genres = catalog.genres.cpu().numpy()
        self.item_features = catalog.features.cpu().numpy().astype(np.float64)
        self.traces: list[dict] = []
        self.counts: Counter = Counter()
        self.first_failure: ChatFailure | None = None
        # A model given ready-made may serve several rollouts: stats() counts this one's use.
        self._usage_since = self.llm.accounting.mark() if self.llm is not None else None
        self.step = 0
        self._said: dict[int, str] = {}
        self._request_limit = None
        # Sampled requests draw their seeds from this (see request()).
        self._sampling_entropy = np.random.SeedSequence(seed).entropy

    def chat_model(self) -> ChatModel:
        """The LLM, built on first use from ``llm`` (so rule-only configurations never load one),
        and built again when used after :meth:`close`."""
        if self.llm is None or self._llm_closed:
            spec = self.llm_spec
            self.llm = make_chat_model(spec) if spec is not None else make_chat_model()
            self.llm.schema_in_prompt = self.schema_in_prompt
            self._owns_llm, self._llm_closed = True, False
            self._usage_since = None  # a new model: all its use is this rollout's
        return self.llm

    def close(self) -> None:
        """Release the LLM this agent built from settings (its client, or the model itself for
        in-process backends); a model given ready-made is left to its owner. Idempotent.
        :meth:`stats` still reports afterwards, and a later request builds the model again."""
        if self._owns_llm and not self._llm_closed:
            self._llm_closed = True
            self.llm.close()

    def begin_rollout(self, n_steps: int, num_envs: int) -> None:
        """A rollout of ``n_steps`` steps of ``num_envs`` users starts (called by
        :func:`~recoworld.envs.rollout.rollout`, after it reset the env): at most
        ``n_steps * num_envs`` more requests, the bound that lets :meth:`check_fallbacks` stop
        the rollout as soon as its fallbacks can no longer end within ``max_fallback_share``
        (see the module docstring). Every user slot holds a new user: what the last ones said
        is forgotten, and the agents this one builds on (:meth:`inner_agents`) hear the start
        too, as a :class:`~recoworld.agents.base.ScorerWrapper`'s base does: a proposer that
        learns across rollouts (SlateQ) must forget the last rollout's users."""
        self._request_limit = self.counts["llm_requests"] + n_steps * num_envs
        self._said.clear()
        for inner in self.inner_agents():
            begin = getattr(inner, "begin_rollout", None)
            if begin is not None:
                begin(n_steps, num_envs)

    def inner_agents(self) -> list[Recommender]:
        """The agents this one builds on: its proposer or guide (any attribute that is a
        :class:`~recoworld.agents.base.Recommender`)."""
        return [value for value in vars(self).values() if isinstance(value, Recommender)]

    def observe(self, feedback: Feedback) -> None:
        """Remember what each user said (see the module docstring): observation, which
        :func:`~recoworld.envs.rollout.rollout` passes on even when the agent does not learn."""
        info = feedback.info
        ended = ~np.asarray(feedback.valid, dtype=bool) | np.asarray(feedback.terminated) | np.asarray(feedback.truncated)
        texts = info.get("instruction_text")
        for b in range(len(ended)):
            if ended[b]:
                self._said.pop(b, None)
            elif texts is not None and texts[b] is not None:
                self._said[b] = str(texts[b])

    def update(self, feedback: Feedback) -> None:
        """:meth:`observe` the users, then :meth:`learn`."""
        self.observe(feedback)
        self.learn(feedback)

    def learn(self, feedback: Feedback) -> None:
        """Pass the feedback to the agent's own learner (its proposer or guide)."""

    def finish(self) -> None:
        """The rollout has ended: raise :class:`AgentFallbacksExceeded` if more than
        ``max_fallback_share`` of its LLM requests fell back to the non-LLM order."""
        requests, fallbacks = self.counts["llm_requests"], self.counts["fallbacks"]
        if requests and fallbacks > self.max_fallback_share * requests:
            raise self._fallbacks_exceeded("")

    def check_fallbacks(self) -> None:
        """Raise :class:`AgentFallbacksExceeded` once the rollout's fallbacks exceed
        ``max_fallback_share`` of the most requests it can make (:meth:`begin_rollout`): its
        share can no longer end within the cap."""
        limit = self._request_limit
        if limit is not None and self.counts["fallbacks"] > self.max_fallback_share * limit:
            left = limit - self.counts["llm_requests"]
            raise self._fallbacks_exceeded(
                f" even if the {left} requests the rollout may still make all succeed (stopped early, "
                f"{self.counts['llm_requests']} of at most {limit} requests in)")

    def _fallbacks_exceeded(self, when: str) -> AgentFallbacksExceeded:
        requests, fallbacks, first = self.counts["llm_requests"], self.counts["fallbacks"], self.first_failure
        return AgentFallbacksExceeded(
            f"{fallbacks} of {requests} LLM requests of agent {self.name} ({fallbacks / requests:.0%}) fell back "
            f"to its non-LLM order, more than max_fallback_share={self.max_fallback_share} allows{when}: the "
            f"results would not be the LLM's. The first failure: {first}. Fix: "
            f"{ROOT_LLM_KEY.sub('agent.llm.', getattr(first, 'hint', '')) or 'see the error above'}. To accept "
            "fallbacks, raise agent.max_fallback_share (1.0 never stops a run)")

    def stats(self) -> dict[str, Any]:
        """This rollout's decision counts and the LLM's accounting, ready for a metrics file.
        Every key is there in every rollout, 0 when nothing was counted (an LLM never asked
        included): the runner averages each key over seeds, and one missing would read NaN."""
        usage = self.llm.metrics(self._usage_since) if self.llm is not None else Accounting().as_dict()
        return {**usage, **dict.fromkeys(self.counters, 0), **self.counts}

    # ------------------------------------------------------- the instruction
    def instruction(self, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per user: current ``[B]``, more ``[B, G]``, less ``[B, G]`` and novelty wish ``[B]``.

        An instruction is current while it is in force
        (:attr:`~recoworld.types.Observation.instruction_in_force`).
        """
        G = len(self.genre_names)
        vector = np.asarray(obs[INSTRUCTION], dtype=np.float64)
        current = np.asarray(Observation(obs).instruction_in_force)
        return current, vector[:, :G] > 0, vector[:, G:2 * G] < 0, vector[:, 2 * G]

    def instruction_text(self, obs: Observation, b: int) -> str | None:
        """User ``b``'s current instruction for a prompt: their own sentence when the agent
        heard it, else ``(paraphrased)`` and a description of the structured form, each as
        data (:mod:`recoworld.llm.prompt_data`); ``None`` when none is current."""
        current, more, less, novelty = self.instruction(obs)
        if not current[b]:
            return None
        if b in self._said:
            return as_data(self._said[b])
        parts = []
        if more[b].any():
            parts.append("more " + ", ".join(self.genre_names[g] for g in np.flatnonzero(more[b])))
        if less[b].any():
            parts.append("less " + ", ".join(self.genre_names[g] for g in np.flatnonzero(less[b])))
        if novelty[b] > 0:
            parts.append("things unlike what they usually watch")
        elif novelty[b] < 0:
            parts.append("things close to what they usually watch")
        return "(paraphrased) " + as_data("; ".join(parts)) if parts else None

    def needs_llm(self, obs: Observation) -> np.ndarray:
        """Rows ``[B]`` whose request goes to the LLM under ``llm_when``."""
        batch = len(obs[CANDIDATE_IDS])
        if self.llm_when == "always":
            return np.ones(batch, dtype=bool)
        return self.instruction(obs)[0]

    # ------------------------------------------------------------- prompts
    def describe(self, item: int) -> dict[str, Any]:
        """``{"id": 431, "title": "...", "genres": ["Drama", "Romance"]}``: an item as data."""
        genres = [self.genre_names[g] for g in np.flatnonzero(self.genres[item])]
        return {"id": int(item), "title": str(self.catalog.titles[item]), "genres": genres}

    def context(self, obs: Observation, b: int) -> str:
        """The user's instruction and recent history, as the first lines of a prompt."""
        said = self.instruction_text(obs, b)
        lines = [f"User's current instruction: {said}" if said else "User's current instruction: none."]
        items = np.asarray(obs[HISTORY_ITEMS][b])
        feedback = np.asarray(obs[HISTORY_FEEDBACK][b])
        shown = [(int(i), f) for i, f in zip(items, feedback) if i >= 0][: self.history_shown]
        if shown:
            lines.append("Recently watched, newest first, one per line:")
            lines.append(data_block({**self.describe(i), "watched": f"{round(100 * float(w))}%",
                                     "liked": bool(liked > 0)} for i, (w, liked) in shown))
        else:
            lines.append("Recently watched: nothing yet.")
        return "\n".join(lines)

    def request(self, system: str, user: str, schema: type[BaseModel], b: int) -> ChatRequest:
        """User ``b``'s request of the agent's ``system`` message (with
        :data:`~recoworld.llm.DATA_RULE`) and ``user`` prompt.

        A sampled request (``temperature > 0``) carries a seed drawn from the agent's seed, the
        rollout step and ``b``, so that a seeded rollout gets the same replies every run
        (backends that honour seeds: llama.cpp, vLLM, transformers). A greedy one carries none,
        so that its cache entries serve every seed.
        """
        seed = None
        if self.temperature > 0:
            seed = int(np.random.SeedSequence([self._sampling_entropy, self.step, int(b)]).generate_state(1)[0])
        return ChatRequest([{"role": "system", "content": f"{system} {DATA_RULE}"},
                            {"role": "user", "content": user}],
                           schema=schema, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed)

    def ask(self, requests: list[ChatRequest]) -> list[ChatReply | ChatFailure]:
        """One ``chat_many`` call for the batch; failures take their request's place, each
        counted as a fallback (the caller serves that user its non-LLM order, traces it, then
        calls :meth:`check_fallbacks`)."""
        if not requests:
            return []
        self.counts["llm_requests"] += len(requests)
        replies = self.chat_model().chat_many(requests, return_exceptions=True)
        failures = [r for r in replies if isinstance(r, ChatFailure)]
        self.counts["fallbacks"] += len(failures)
        if self.first_failure is None and failures:
            self.first_failure = failures[0]
        return replies

    def take_slates(self, ids: np.ndarray, rows, requests: list[ChatRequest], action: np.ndarray,
                    details=None) -> None:
        """Ask ``requests`` (one per user of ``rows``) for slates of candidate ids and write each
        valid reply into ``action`` (as candidate positions); a failed request leaves that row's
        fallback slate in place. Every decision is traced, with ``details(b, positions)``'s
        extra fields for a used reply."""
        for b, request, reply in zip(rows, requests, self.ask(requests)):
            if isinstance(reply, ChatReply):
                position = {int(item): c for c, item in enumerate(ids[b])}
                action[b] = [position[i] for i in reply.parsed.slate]
                self.counts["llm_slates"] += 1
                self.trace(b, request, reply, slate=reply.parsed.slate, **(details(b, action[b]) if details else {}))
            else:
                self.trace(b, request, reply, slate=ids[b, action[b]].tolist(), fallback="invalid_reply")
        self.check_fallbacks()

    # -------------------------------------------------------------- traces
    def trace(self, b: int, request: ChatRequest | None, reply: ChatReply | ChatFailure | None, *,
              slate: list[int], fallback: str | None = None, **extra) -> None:
        """Record one decision (see the module docstring); ``fallback`` says why the LLM's
        answer was not used (``None`` when it was)."""
        record = {"agent": self.name, "step": self.step, "user": int(b), "slate": [int(i) for i in slate],
                  "fallback": fallback}
        if request is not None:
            record["prompt"] = request.messages[-1]["content"]
        if isinstance(reply, ChatReply):
            record["replies"] = reply.raw_texts
            record["parsed"] = reply.parsed.model_dump() if reply.parsed is not None else None
        elif isinstance(reply, ChatFailure):
            record["replies"] = reply.raw_texts
            record["error"] = str(reply)
        record.update(extra)
        if self.keep_traces:
            self.traces.append(record)
        if self.trace_path is not None:
            self.trace_path.parent.mkdir(parents=True, exist_ok=True)
            with self.trace_path.open("a") as f:
                f.write(json.dumps(record, default=_jsonable) + "\n")


def slate_schema(allowed: list[int], slate_size: int, reason_chars: int, name: str = "SlateReply") -> type[BaseModel]:
    """A reply schema whose ``slate`` holds exactly ``slate_size`` distinct ids of ``allowed``.

    Grammar-constrained backends (llama.cpp, vLLM) cannot emit an id outside ``allowed``;
    the others are caught by validation and repaired. Distinctness is checked by the
    validator (JSON schema's ``uniqueItems`` is not enforced by grammars).
    """
    ids = Literal[tuple(int(i) for i in allowed)]
    return create_model(
        name, __base__=_SlateReplyBase,
        reasoning=(str, Field(max_length=reason_chars, description="one short sentence: why these items")),
        slate=(Annotated[list[ids], Field(min_length=slate_size, max_length=slate_size)],
               Field(description=f"{slate_size} distinct item ids, best first")),
    )


class _SlateReplyBase(BaseModel):
    @field_validator("slate", check_fields=False)
    @classmethod
    def _distinct(cls, slate: list[int]) -> list[int]:
        repeated = sorted({i for i in slate if slate.count(i) > 1})
        if repeated:
            raise ValueError(f"items {repeated} appear more than once; every item of the slate must be distinct")
        return slate


def collaborative_scores(agent: Recommender, obs: Observation) -> np.ndarray:
    """``[B, C]`` scores of a proposing agent: its ``score(obs)``, or an item bandit's
    per-item ``indices()``/``estimates()`` read at the candidates. Infinite
    scores (items a bandit never tried) become one more than the largest finite score."""
    ids = np.asarray(obs[CANDIDATE_IDS])
    if hasattr(agent, "score"):
        scores = agent.score(obs)
    elif hasattr(agent, "indices"):
        scores = agent.indices()[ids]
    elif hasattr(agent, "estimates"):
        scores = agent.estimates()[ids]
    else:
        raise TypeError(f"{type(agent).__name__} gives no scores; a proposer needs score(obs), indices() or "
                        "estimates() (e.g. LinUCB, UCB1, SlateQAgent)")
    scores = np.array(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.all():
        top = scores[finite].max() if finite.any() else 0.0
        scores = np.where(np.isposinf(scores), top + 1.0, np.where(finite, scores, top - 1.0))
    return scores


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
