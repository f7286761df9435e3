"""Hybrid users: a batched statistical core decides, an LLM speaks.

For large populations an LLM call per user and step is too dear. A :class:`HybridUsers`
population steps every user with :class:`~recoworld.simulators.statistical.StatisticalUsers`
— examination, clicks, watch time, the user equations of
:mod:`~recoworld.simulators.equations` (satiation, mindset, leaving and returning), and
*when* a user voices a reflective instruction and *what* it asks for (the structured
``more``/``less``/``novelty``). Only then, once per disengagement, the LLM is asked to
voice it: given the user's persona, their memory of past sessions, their recent clicks and
the structured wish, it replies ``{"mindset": "...", "instruction": "..."}`` — the
sentence the user says (which replaces the template sentence in
``Response.instruction_text``) and their mindset in words. Everything else in the
:class:`~recoworld.Response` is the core's, so the structured instruction an agent acts on
is exactly what the core put in force.

A step with ``S`` speakers costs ``S`` LLM calls, made concurrently; a step without
speakers costs none. A failed call (after the LLM layer's repairs) is recorded and counted
like an LLM user's: ``on_failure="fallback"`` keeps the core's template sentence,
``"fail"`` raises :class:`~recoworld.simulators.llm_user.LLMUserError` (after the core has
stepped). Fallbacks are bounded as for LLM users, as a share of the calls
(``max_fallback_share`` once ``fallback_min_steps`` calls are counted, and over all the
calls when a rollout ends; ``fallback_share`` in the metrics). Personas are built when a user first speaks, so a million silent users cost no
persona.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from recoworld import rng
from recoworld.catalog import Catalog, lookup
from recoworld.llm import ChatFailure, ChatModel, ChatRequest, LLMConfig
from recoworld.types import Response
from recoworld.simulators.base import UserSimulator, restart_slots
from recoworld.simulators.llm_prompt import voice_messages, wish_in_words
# The configs live in a torch-free module (configs are checked without torch); re-exported here.
from recoworld.simulators.hybrid_config import HybridSimulatorConfig, HybridUserConfig  # noqa: F401
from recoworld.simulators.llm_shared import (
    LLMUserError, LLMVoice, config_from, default_population, resolve_seeds, satisfaction_stars, step_failure,
)
from recoworld.simulators.memory import SessionSummary, UserMemory, shorten
from recoworld.simulators.persona import MovieLensPersonas, Persona, persona_from_traits
from recoworld.simulators.population import Population, UserTraits
from recoworld.simulators.replies import VoiceReply
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

S_SAMPLING = 33


class HybridUsers(LLMVoice, UserSimulator):
    """Statistical users whose reflective instructions and mindset are voiced by an LLM.

    Args:
        catalog: the items.
        llm: a :class:`~recoworld.llm.ChatModel`, an :class:`~recoworld.llm.LLMConfig` or a
            mapping of its fields; ``None`` runs the embedded SmolLM2 in process.
        config: a :class:`HybridUserConfig` or a mapping of its fields.
        statistical: the core's :class:`~recoworld.simulators.statistical.StatisticalUserConfig`.
        population: who the users are; default
            :func:`~recoworld.simulators.llm_user.default_population`.
        personas: the MovieLens persona book for users with a ``source_user``.
        device: the core's torch device.

    Attributes:
        core: the statistical users that decide everything but the words.
        mindset: each slot's mindset sentence (``None`` until the user first speaks).
        failures: the most recent :class:`~recoworld.simulators.llm_user.StepFailure` records.
    """

    def __init__(self, catalog: Catalog, llm: ChatModel | LLMConfig | Mapping | None = None,
                 config: HybridUserConfig | Mapping | None = None,
                 statistical: StatisticalUserConfig | Mapping | None = None,
                 population: Population | None = None, personas: MovieLensPersonas | None = None,
                 device="cpu"):
        self.config = config_from(HybridUserConfig, config)
        population = population if population is not None else default_population(catalog)
        self.core = StatisticalUsers(catalog, config_from(StatisticalUserConfig, statistical), population, device)
        self.catalog, self.device = self.core.catalog, self.core.device
        self._connect(llm, self.config, population, personas)
        self.n_users = 0
        self._fresh_seed = 0
        self.counts = {"user_steps": 0, "calls": 0, "failures": 0, "fallback_steps": 0, "prompt_tokens": 0,
                       "completion_tokens": 0}

    # ------------------------------------------------------------------ reset
    def reset(self, n_users: int, seed=None, users=None) -> None:
        if users is not None:
            users = restart_slots(users, n_users)  # checked before its seeds are counted
        count = n_users if users is None else len(users)
        seeds = resolve_seeds(count, seed, self._fresh_seed)
        self.core.reset(n_users, seeds, users)  # validates n_users (and users, against the core's size)
        if seed is None:
            self._fresh_seed += count
        if users is None:
            self.n_users = n_users
            self.seeds = torch.zeros(n_users, dtype=torch.int64)
            self._personas: dict[int, Persona] = {}
            self.memories = [UserMemory(self.config.memory) for _ in range(n_users)]
            self.mindset: list[str | None] = [None] * n_users
            slots = list(range(n_users))
            G = self.catalog.n_genres
            self._session_steps = torch.zeros(n_users, dtype=torch.int64, device=self.device)
            self._session_shown = torch.zeros_like(self._session_steps)
            self._session_clicks = torch.zeros_like(self._session_steps)
            self._session_likes = torch.zeros_like(self._session_steps)
            self._session_genres = torch.zeros(n_users, G, device=self.device)
            self._session_start = torch.zeros(n_users, device=self.device)
            self._last_instruction: list[str | None] = [None] * n_users
        else:
            slots = users.tolist()
            for b in slots:
                self._personas.pop(b, None)
                self.memories[b] = UserMemory(self.config.memory)
                self.mindset[b] = None
        self.seeds[torch.tensor(slots, dtype=torch.long)] = seeds
        self._open_sessions(torch.tensor(slots, dtype=torch.long, device=self.device))

    def _open_sessions(self, index: torch.Tensor) -> None:
        for tensor in (self._session_steps, self._session_shown, self._session_clicks, self._session_likes):
            tensor[index] = 0
        self._session_genres[index] = 0.0
        self._session_start[index] = self.core.satisfaction[index]
        for b in index.tolist():
            self._last_instruction[b] = None

    # ----------------------------------------------------------------- respond
    def respond(self, slates) -> Response:
        return self.respond_valid(slates)

    def respond_valid(self, slates, idle: torch.Tensor | None = None) -> Response:
        """As :meth:`respond`; users in ``idle`` (whose answer the env discards, see
        :meth:`UserSimulator.respond_valid`) step with the rest but voice nothing, so that no
        call is paid for an answer that is thrown away."""
        response = self.core.respond(slates)
        slates = torch.as_tensor(slates, device=self.device)
        self._track(slates, response)
        speaking = response.instruction.active if idle is None else response.instruction.active & ~idle
        speakers = speaking.nonzero().flatten().tolist()
        if speakers:
            self._voice(speakers, response)
        self._close_sessions(response)
        # As the LLM users count: a slot held idle (an autoreset) is not a user-step.
        self.counts["user_steps"] += self.n_users - (0 if idle is None else int(idle.sum()))
        return response

    def _track(self, slates: torch.Tensor, r: Response) -> None:
        clicked = r.clicked.float()
        self._session_steps += 1
        self._session_shown += r.examined.sum(1)
        self._session_clicks += r.clicked.sum(1)
        self._session_likes += r.liked.sum(1)
        genres = lookup(self.catalog.genres, slates).float()  # [B, K, G]
        self._session_genres += torch.bmm(clicked[:, None, :], genres)[:, 0]

    def _voice(self, speakers: list[int], response: Response) -> None:
        seeds = rng.bits(self.core.key, self.core.counter, S_SAMPLING, 1)[:, 0].tolist()
        requests = [
            ChatRequest(self.prompt(b, response), schema=VoiceReply, temperature=self.config.temperature,
                        max_tokens=self.config.max_tokens, seed=int(seeds[b]))
            for b in speakers
        ]
        replies = self.llm.chat_many(requests, return_exceptions=True)
        self.counts["calls"] += len(requests)
        failed = []
        for b, reply in zip(speakers, replies):
            if isinstance(reply, ChatFailure):
                failed.append(step_failure(b, int(self.seeds[b]), int(self.core.counter[b]) - 1, reply,
                                           self.config.on_failure))
                continue
            response.instruction_text[b] = " ".join(reply.parsed.instruction.split())
            self.mindset[b] = " ".join(reply.parsed.mindset.split())
            self.counts["prompt_tokens"] += reply.prompt_tokens
            self.counts["completion_tokens"] += reply.completion_tokens
        for b in speakers:
            self._last_instruction[b] = response.instruction_text[b]
        if failed:
            self._keep_failures(failed)
            self.counts["failures"] += len(failed)
            if self.config.on_failure == "fail":
                raise LLMUserError(failed)
            self.counts["fallback_steps"] += len(failed)
        self._check_fallback_share(self.counts["fallback_steps"], self.counts["calls"], "hybrid voice calls")

    def prompt(self, b: int, response: Response) -> list[dict]:
        """The chat messages asking user ``b`` to voice the instruction of ``response``."""
        describe = self.representation.describe
        recent = [i for i in self.core.recent_clicks[b].tolist() if i >= 0][: self.config.history_items]
        return voice_messages(
            self._persona(b).describe(), self.config.app, self.memories[b].render(describe),
            describe(recent) if recent else [], self.mindset[b], satisfaction_stars(float(response.satisfaction[b])),
            wish_in_words(response.instruction, b, self.catalog.genre_names))

    def _persona(self, b: int) -> Persona:
        persona = self._personas.get(b)
        if persona is None:
            core, i = self.core, torch.tensor([b], device=self.device)
            traits = UserTraits(core.interest[i], core.patience[i], core.novelty_trait[i], core.activity[i],
                                core.popularity_bias[i], core.source_user[i])
            persona = persona_from_traits(traits, 0, self.catalog)
            if persona.source_user >= 0 and self.persona_book is not None:
                persona = self.persona_book.persona(persona.source_user, persona.traits)
            self._personas[b] = persona
        return persona

    def _close_sessions(self, r: Response) -> None:
        leavers = r.left_session.nonzero().flatten()
        if len(leavers) == 0:
            return
        names, limit = self.catalog.genre_names, self.config.memory.max_reason_chars
        top = self._session_genres[leavers].topk(min(2, len(names)), dim=1)
        for j, b in enumerate(leavers.tolist()):
            memory = self.memories[b]
            memory.add_session(SessionSummary(
                index=memory.sessions_finished, steps=int(self._session_steps[b]),
                shown=int(self._session_shown[b]), clicks=int(self._session_clicks[b]),
                likes=int(self._session_likes[b]), dislikes=0,
                top_genres=tuple(names[g] for g, v in zip(top.indices[j].tolist(), top.values[j].tolist()) if v > 0),
                start_mindset="", end_mindset=shorten(self.mindset[b] or "no words", limit),
                start_satisfaction=satisfaction_stars(float(self._session_start[b])),
                end_satisfaction=satisfaction_stars(float(r.satisfaction[b])), instruction=self._last_instruction[b],
            ))
        self._open_sessions(leavers)

    # -------------------------------------------------------------- privileged
    def click_probabilities(self, items: torch.Tensor) -> torch.Tensor:
        """Privileged: exact, since the statistical core decides clicks."""
        return self.core.click_probabilities(items)

    def expected_clicks(self, slates: torch.Tensor) -> torch.Tensor:
        """Privileged: exact, since the statistical core decides clicks."""
        return self.core.expected_clicks(slates)

    # ---------------------------------------------------------------- metrics
    def finish(self) -> None:
        """The rollout has ended: raise if more than ``max_fallback_share`` of all its calls
        fell back, however few they were."""
        self._check_fallback_share(self.counts["fallback_steps"], self.counts["calls"], "hybrid voice calls",
                                   ended=True)

    def metrics(self) -> dict[str, float | int]:
        """LLM calls (one per disengagement), failures, fallbacks and ``fallback_share`` (their
        share of the calls, which ``max_fallback_share`` bounds), tokens, and the chat
        model's accounting (``llm_*``) of its use since this simulator was built."""
        out = {f"hybrid_{k}": v for k, v in self.counts.items()}
        out["fallback_share"] = self.counts["fallback_steps"] / max(self.counts["calls"], 1)
        out["hybrid_calls_per_user_step"] = self.counts["calls"] / max(self.counts["user_steps"], 1)
        out["hybrid_failure_rate"] = self.counts["failures"] / max(self.counts["calls"], 1)
        out.update(self.llm.metrics(since=self._llm_mark))
        return out
