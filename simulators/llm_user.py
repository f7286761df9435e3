"""LLM users: each simulated user is a persona with a memory, played by a language model.

At every step each user's LLM reads their persona (:mod:`~recoworld.simulators.persona`),
their memory (:mod:`~recoworld.simulators.memory`: recent reactions and past sessions, the
items written in the configured history representation, see
:mod:`recoworld.representations`), their current mindset and satisfaction, the
instruction they gave that is still in force, and the slate. It replies with JSON
(:mod:`~recoworld.simulators.replies`): per item, in slate order, an action — ``click``,
``skip``, ``like``, ``dislike`` — with a short reason; then a one-sentence mindset,
satisfaction 1–5, whether it leaves, and, when it is losing interest, a reflective
instruction (a sentence plus ``more``/``less`` genres and ``novelty``). The ``B`` users'
requests go out concurrently through :meth:`~recoworld.llm.ChatModel.chat_many`.

**Mapping to a** :class:`~recoworld.Response`: the actions become feedback by the table of
:mod:`~recoworld.simulators.llm_reactions` (every item is examined; a like or a dislike is
a rating). ``satisfaction`` :math:`s \\in \\{1..5\\}` becomes :math:`(s - 1)/4`.
``leave_hazard`` is 1 for a user who decided to leave and 0 otherwise (the model's
decision, not a probability). A reply's instruction is voiced (``instruction.active``) and,
when it has a structured wish (a ``more`` or ``less`` genre or a ``novelty``), is in force
for ``instruction_steps`` steps of the statistical config or until the session ends.

**The user equations** (:mod:`~recoworld.simulators.equations`, the statistical users'
own, with the statistical config's parameters) carry everything the model does not say:
the compliance of each slate with the instruction in force and its countdown, the
familiarity against which novelty is measured, the session memory and the return. The
satisfaction the model states after a step is the user's judgement of that step, its
quality :math:`\\bar q`: the session memory :math:`M` blends the peak, the last and the
mean of the session's stated satisfactions by the peak-end rule
(:func:`~recoworld.simulators.equations.session_memory_update`).

**Returning**: a user who leaves returns, or churns, by the statistical users' rule
(:func:`~recoworld.simulators.equations.return_decision`, with the statistical config's
parameters): with probability
:math:`\\sigma(r_0 + r_m(M - 0.5) + \\log a_b + r_1[\\text{first session}])`, after a gap of
mean ``gap_days`` :math:`e^{g_1[\\text{first session}]}` / (:math:`a_b(0.5 + M)\\,L^{\\varepsilon}`)
days, Weibull of shape ``gap_shape`` (:math:`a_b` the activity trait, :math:`L` the
session's length in steps, :math:`\\varepsilon` ``gap_length_elasticity``; :math:`r_1`
``return_first_session`` and :math:`g_1` ``gap_first_session``, the latter for a share
``gap_first_share`` of the newcomers who come back; see
:mod:`~recoworld.simulators.statistical` for the defaults and what they mean):
how the whole session went decides, not the satisfaction at the moment of leaving. The
draws come from the user's own random stream, so they are reproducible. A returning user
starts the next session with its satisfaction halfway back to the initial one, the
session's summary in memory and no instruction in force; the step's response gives the
satisfaction at leaving.

**Failures**: a reply that does not validate — bad JSON, a missing field, an item id that
was not in the slate — goes back to the model for repair by the LLM layer. A request that
still fails is recorded (:attr:`LLMUsers.failures`, with every raw text) and counted in
:meth:`LLMUsers.metrics`, then handled by ``on_failure``: ``"fail"`` raises
:class:`LLMUserError` before any state changes; ``"fallback"`` uses, for that user and
step, the response of the statistical twin (:attr:`LLMUsers.twin`, a
:class:`~recoworld.simulators.statistical.StatisticalUsers` holding the same users, stepped
on the same slates), its return decision included. No reply is ever invented. A run in
which fallbacks are more than a small share of the steps is not an LLM run: once
``fallback_min_steps`` user-steps are counted, a share above ``max_fallback_share``
(default 5%) raises :class:`FallbackShareExceeded` with the first failure's error and fix,
and so does :meth:`LLMUsers.finish` at the end of a rollout, however few its steps;
``fallback_share`` is always in :meth:`LLMUsers.metrics`.

**Determinism**: prompts depend only on the seed and the history, sampling uses the
request's ``temperature`` (0, greedy, by default) and a seed derived from the user's key
and step, and the LLM layer's cache replays earlier generations.

**Usage**::

    users = LLMUsers(catalog)                                   # embedded SmolLM2, in process
    users = LLMUsers(catalog, {"backend": "openai", "model": "Qwen/Qwen2.5-7B-Instruct",
                               "base_url": "http://localhost:8000/v1",   # vLLM, or any API
                               "cache_dir": "runs/llm_cache"})
    env = gymnasium.make_vec("RecoWorld/Slate-v0", num_envs=4, simulator=users,
                             vectorization_mode="vector_entry_point")

and from the command line ``recoworld run simulator=llm llm.backend=openai
llm.base_url=http://localhost:8000/v1 llm.model=...`` (the model is the root ``llm`` node of
the config; see ``conf/simulator/llm.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from recoworld import rng
from recoworld.catalog import Catalog, lookup
from recoworld.llm import ChatFailure, ChatModel, ChatReply, ChatRequest, LLMConfig
from recoworld.types import Instruction, Response
from recoworld.validation import check_slates
from recoworld.simulators import equations
from recoworld.simulators.base import UserSimulator, restart_slots
from recoworld.simulators.equations import instruction_compliance
from recoworld.simulators.llm_config import LLMSimulatorConfig, LLMUserConfig
from recoworld.simulators.llm_prompt import step_messages
from recoworld.simulators.llm_reactions import (
    SlateFeedback, StepReplies, read_replies, remembered_reactions, slate_feedback, stand_in,
)
from recoworld.simulators.llm_shared import (
    FallbackShareExceeded, LLMUserError, LLMVoice, StepFailure, config_from, default_population, resolve_seeds,
    satisfaction_stars, step_failure,
)
from recoworld.simulators.memory import UserMemory
from recoworld.simulators.persona import MovieLensPersonas, Persona, persona_from_traits
from recoworld.simulators.population import Population, UserTraits
from recoworld.simulators.replies import slate_reply_model
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

# Random streams of LLM users (the twin uses 1..12 with the same keys).
S_RETURN, S_SAMPLING = 30, 32


class LLMUsers(LLMVoice, UserSimulator):
    """``B`` users played by an LLM (see the module docstring).

    Args:
        catalog: the items.
        llm: a :class:`~recoworld.llm.ChatModel`, an :class:`~recoworld.llm.LLMConfig` or a
            mapping of its fields (e.g. ``{"backend": "openai", "model": "...",
            "base_url": "http://localhost:8000/v1"}``); ``None`` runs the embedded
            SmolLM2-135M-Instruct in process.
        config: an :class:`LLMUserConfig` or a mapping of its fields.
        statistical: the :class:`~recoworld.simulators.statistical.StatisticalUserConfig`
            of the twin, and the parameters of the LLM users' equations (the return rule,
            ``instruction_steps``, ``more_share``, ``familiarity_rate``).
        population: who the users are; default :func:`default_population`.
        personas: the MovieLens persona book used for users whose traits name a
            ``source_user``; default that of a :class:`~recoworld.simulators.persona.MovieLensPopulation`.
        device: device of the Response tensors.

    Attributes:
        twin: the statistical users with the same seeds (fallback responses, traits, and
            the privileged click probabilities).
        personas_in_use: the :class:`Persona` of each slot.
        memories: the :class:`UserMemory` of each slot.
        mindset: each slot's current mindset sentence.
        satisfaction: ``[B]`` the satisfaction last stated, in ``[0, 1]``.
        session_memory: ``[B]`` how the session so far is remembered (it decides the
            return): the peak-end blend of its stated satisfactions.
        failures: the most recent :class:`StepFailure` records.
    """

    def __init__(self, catalog: Catalog, llm: ChatModel | LLMConfig | Mapping | None = None,
                 config: LLMUserConfig | Mapping | None = None,
                 statistical: StatisticalUserConfig | Mapping | None = None,
                 population: Population | None = None, personas: MovieLensPersonas | None = None,
                 device="cpu"):
        self.config = config_from(LLMUserConfig, config)
        self.device = torch.device(device)
        self.catalog = catalog.to(self.device)
        population = population if population is not None else default_population(catalog)
        self.twin = StatisticalUsers(self.catalog, config_from(StatisticalUserConfig, statistical), population,
                                     self.device)
        self._connect(llm, self.config, population, personas)
        self._genre_names = tuple(self.catalog.genre_names)
        self.n_users = 0
        self._fresh_seed = 0
        self.counts = {"user_steps": 0, "failures": 0, "fallback_steps": 0, "prompt_tokens": 0,
                       "completion_tokens": 0, "repaired_steps": 0, "cached_steps": 0}

    # ------------------------------------------------------------------ reset
    def reset(self, n_users: int, seed=None, users=None) -> None:
        if users is None:
            if n_users < 1:
                raise ValueError(f"n_users={n_users}; a simulator needs at least one user")
            self._allocate(n_users)
            slots = list(range(n_users))
        else:
            if n_users != self.n_users:
                raise ValueError(f"reset(n_users={n_users}, users=...) on a simulator of {self.n_users} users; "
                                 "restarting some users keeps the batch size")
            slots = restart_slots(users, n_users).tolist()
        if not slots:
            return
        seeds = resolve_seeds(len(slots), seed, self._fresh_seed)
        if seed is None:
            self._fresh_seed += len(slots)
        if users is None:
            self.twin.reset(n_users, seed=seeds)
        else:
            self.twin.reset(n_users, seed=seeds, users=torch.tensor(slots))
        index = torch.tensor(slots, device=self.device)
        self.seeds[index] = seeds.to(self.device)
        traits = self._traits(index)
        c = self.config
        for j, b in enumerate(slots):
            self.personas_in_use[b] = self._persona(traits, j)
            self._persona_text[b] = self.personas_in_use[b].describe()
            self.memories[b] = UserMemory(c.memory)
            self.memories[b].start_session(c.initial_mindset, c.initial_satisfaction)
            self.mindset[b] = c.initial_mindset
            self.instruction_text[b] = None
        self.satisfaction[index] = (c.initial_satisfaction - 1) / 4
        for tensor in (self.session_memory, self.session_mean, self.session_peak):
            tensor[index] = self.satisfaction[index]
        self.familiar[index] = traits.interest
        for tensor in (self.counter, self.session_index, self.session_step):
            tensor[index] = 0
        self.churned[index] = False
        self._clear_instruction(index)

    def _allocate(self, n: int) -> None:
        dev, g = self.device, self.catalog.n_genres
        self.n_users = n
        self.seeds = torch.zeros(n, dtype=torch.int64, device=dev)
        self.counter = torch.zeros(n, dtype=torch.int64, device=dev)
        self.session_index = torch.zeros(n, dtype=torch.int64, device=dev)
        self.session_step = torch.zeros(n, dtype=torch.int64, device=dev)
        self.satisfaction = torch.zeros(n, device=dev)
        self.session_memory = torch.zeros(n, device=dev)
        self.session_mean = torch.zeros(n, device=dev)
        self.session_peak = torch.zeros(n, device=dev)
        self.familiar = torch.zeros(n, self.catalog.feature_dim, device=dev)
        self.churned = torch.zeros(n, dtype=torch.bool, device=dev)
        self.instruction = Instruction.none(n, g, dev)
        self.instruction_steps_left = torch.zeros(n, dtype=torch.int64, device=dev)
        self.instruction_text: list[str | None] = [None] * n
        self.personas_in_use: list[Persona | None] = [None] * n
        self._persona_text: list[str] = [""] * n
        self.memories: list[UserMemory | None] = [None] * n
        self.mindset: list[str] = [""] * n

    def _traits(self, index: torch.Tensor) -> UserTraits:
        t = self.twin
        return UserTraits(t.interest[index], t.patience[index], t.novelty_trait[index], t.activity[index],
                          t.popularity_bias[index], t.source_user[index])

    def _persona(self, traits: UserTraits, j: int) -> Persona:
        source = int(traits.source_user[j])
        if source >= 0 and self.persona_book is not None:
            return self.persona_book.persona(source, persona_from_traits(traits, j, self.catalog).traits)
        return persona_from_traits(traits, j, self.catalog)

    # --------------------------------------------------------------- prompts
    def prompt(self, b: int, slate: Sequence[int]) -> list[dict]:
        """The chat messages of user ``b`` for ``slate``."""
        in_force = self.instruction_text[b] if bool(self.instruction.active[b]) else None
        return step_messages(
            self._persona_text[b], self.config.app, self.memories[b].render(self.representation.describe),
            int(self.session_index[b]), int(self.session_step[b]), self.mindset[b],
            satisfaction_stars(float(self.satisfaction[b])), in_force, slate, self.representation)

    def requests(self, slates: torch.Tensor) -> list[ChatRequest]:
        """One request per user for ``slates`` ``[B, K]`` (no state changes)."""
        rows = slates.cpu().tolist()
        seeds = rng.bits(self.twin.key, self.counter, S_SAMPLING, 1)[:, 0].tolist()
        max_tokens = self.config.max_tokens or 256 + 70 * slates.shape[1]  # see LLMUserConfig.max_tokens
        return [
            ChatRequest(self.prompt(b, row), schema=slate_reply_model(self._genre_names, tuple(row)),
                        temperature=self.config.temperature, max_tokens=max_tokens, seed=int(seeds[b]))
            for b, row in enumerate(rows)
        ]

    # ----------------------------------------------------------------- respond
    def _check(self, slates) -> torch.Tensor:
        if self.n_users == 0:
            raise RuntimeError("call reset(n_users, seed) before respond()")
        slates = check_slates(slates, self.catalog.n_items, n_rows=self.n_users,
                              universe=f"the catalog has {self.catalog.n_items} items").to(self.device)
        if bool(self.churned.any()):
            gone = int(self.churned.nonzero()[0])
            raise ValueError(f"user slot {gone} has churned; restart it with reset(n_users, seed, users=[{gone}])")
        return slates

    def respond(self, slates) -> Response:
        return self.respond_valid(slates)

    def respond_valid(self, slates, idle: torch.Tensor | None = None) -> Response:
        """As :meth:`respond`. Users in ``idle`` (whose answer the env discards, see
        :meth:`UserSimulator.respond_valid`) are not asked: no call is paid for an answer
        that is thrown away. The twin's answer stands in for theirs, counted neither as a
        user-step nor as a fallback, and the env restarts them after the step."""
        slates = self._check(slates)
        requests = self.requests(slates)
        asked = list(range(self.n_users)) if idle is None else (~idle).nonzero().flatten().tolist()
        replies: list = [None] * self.n_users
        answers = self.llm.chat_many([requests[b] for b in asked], return_exceptions=True) if asked else []
        for b, reply in zip(asked, answers):
            replies[b] = reply
        self._record_failures(replies)
        response = self._apply(slates, replies, self.twin.respond(slates), idle)
        self._check_fallback_share(self.counts["fallback_steps"], self.counts["user_steps"], "LLM user-steps")
        return response

    def _record_failures(self, replies: list) -> None:
        """Keep and log the failed requests; under ``on_failure="fail"``, raise (before any
        state changes)."""
        policy = self.config.on_failure
        records = [step_failure(b, int(self.seeds[b]), int(self.counter[b]), reply, policy)
                   for b, reply in enumerate(replies) if isinstance(reply, ChatFailure)]
        self._keep_failures(records)
        self.counts["failures"] += len(records)
        if records and policy == "fail":
            raise LLMUserError(records)

    def _apply(self, slates: torch.Tensor, replies: list, twin: Response, idle: torch.Tensor | None) -> Response:
        """Step every user on its reply (the twin's ``twin`` response where there is none;
        the ``idle`` were not asked, and are not counted)."""
        rows = slates.cpu().tolist()
        step = read_replies(replies, rows, self._genre_names, self.device)
        self._count_tokens(replies)
        feedback = slate_feedback(step, self.config)
        if not bool(step.answered.all()):
            unanswered = ~step.answered if idle is None else ~step.answered & ~idle
            self.counts["fallback_steps"] += int(unanswered.sum())
            feedback = stand_in(feedback, step, twin)
        for b, mindset in enumerate(step.mindsets):
            if mindset is not None:  # a failed step leaves the mindset sentence as it was
                self.mindset[b] = mindset
        in_force, compliance, voiced = self._follow_instructions(slates, step)
        features = lookup(self.catalog.features, slates)
        consumed = equations.consumption(feedback.clicked.float(), feedback.watch, features)
        self.familiar = equations.familiarity_update(self.familiar, consumed, feedback.clicked, self.twin.config)
        for b, reactions in enumerate(remembered_reactions(rows, step, feedback)):
            self.memories[b].record(reactions, self.representation.genres_of)
        returned, gap = self._end_step(feedback, ~step.answered, twin)
        self._restart_churned_twins(twin)
        self.counter += 1
        self.counts["user_steps"] += len(rows) - (0 if idle is None else int(idle.sum()))
        return Response(
            examined=feedback.examined, clicked=feedback.clicked, watch_fraction=feedback.watch, liked=feedback.liked,
            rating=feedback.rating, satisfaction=feedback.satisfaction, leave_hazard=feedback.hazard,
            left_session=feedback.leaves, returned=returned, return_gap=gap, churned=feedback.leaves & ~returned,
            instruction_in_force=in_force, compliance=compliance, instruction=voiced,
            instruction_text=step.voiced_text,
            item_reasons=[list(reasons) if answered else None
                          for reasons, answered in zip(step.reasons, step.answered.tolist())],
            mindset_text=list(step.mindsets),
        )

    def _count_tokens(self, replies: list) -> None:
        for reply in replies:
            if isinstance(reply, ChatReply):
                self.counts["prompt_tokens"] += reply.prompt_tokens
                self.counts["completion_tokens"] += reply.completion_tokens
                self.counts["repaired_steps"] += reply.attempts > 1
                self.counts["cached_steps"] += reply.cached

    def _follow_instructions(self, slates: torch.Tensor, step: StepReplies
                             ) -> tuple[torch.Tensor, torch.Tensor, Instruction]:
        """Score the slates against the instruction in force when they were shown (who had
        one, and the compliance ``[B]``), count it down, and put the step's voiced wishes in
        force. Returns who had one, the compliance and the instruction voiced, as the agent
        hears it: a sentence without a wish restates the wish in force, which stays."""
        stat, cat = self.twin.config, self.catalog
        in_force = self.instruction.active.clone()
        compliance = torch.zeros(self.n_users, device=self.device)
        if bool(in_force.any()):
            r = in_force.nonzero().flatten()
            novel = equations.distance_from_familiar(lookup(cat.features, slates[r]), self.familiar[r]) > 1.0
            compliance[r] = equations.instruction_compliance(self.instruction.select(r), lookup(cat.genres, slates[r]),
                                                             novel, stat.more_share)
        self.instruction_steps_left, self.instruction.active = equations.instruction_countdown(
            self.instruction_steps_left, in_force, self.instruction.active)
        voiced = step.voiced
        for b in voiced.active.nonzero().flatten().tolist():
            self.memories[b].voiced(step.voiced_text[b])
        # A sentence without a structured wish is voiced, but there is nothing to comply with.
        wishes = voiced.active & (voiced.more.any(1) | voiced.less.any(1) | (voiced.novelty != 0))
        if bool(wishes.any()):
            r = wishes.nonzero().flatten()
            for name in ("active", "more", "less", "novelty"):
                getattr(self.instruction, name)[r] = getattr(voiced, name)[r]
            self.instruction_steps_left[r] = stat.instruction_steps
            for b in r.tolist():
                self.instruction_text[b] = step.voiced_text[b]
        # The wish this simulator keeps scoring against goes with the sentence, or the agent
        # would hear a wishless instruction replace it.
        restated = voiced.active & ~wishes & self.instruction.active
        if bool(restated.any()):
            rows, kept = restated.unsqueeze(1), self.instruction
            voiced = Instruction(voiced.active, torch.where(rows, kept.more, voiced.more),
                                 torch.where(rows, kept.less, voiced.less),
                                 torch.where(restated, kept.novelty, voiced.novelty))
        return in_force, compliance, voiced

    def _end_step(self, feedback: SlateFeedback, fallback: torch.Tensor, twin: Response):
        """Take the step's satisfaction into the mindset and the session memory; decide who of
        the leavers returns and after how long (``(returned, gap)``), ending their sessions
        and starting the next of those who return."""
        # A copy: a returner's break moves the state's, the response keeps the one at leaving.
        self.satisfaction = feedback.satisfaction.clone()
        self.session_step += 1
        # The stated satisfaction is the user's judgement of the step: its quality.
        self.session_mean, self.session_peak, self.session_memory = equations.session_memory_update(
            self.session_mean, self.session_peak, self.satisfaction, self.session_step, self.twin.config)
        leaves = feedback.leaves
        if not bool(leaves.any()):
            return torch.zeros_like(leaves), torch.where(leaves, torch.inf, 0.0)
        u = rng.uniform(self.twin.key, self.counter, S_RETURN, 2)
        returned, gap = self.return_decision(leaves, u[:, 0], u[:, 1])
        # A user the twin stood in for takes the twin's whole step, its return included.
        returned = torch.where(fallback, twin.returned, returned)
        gap = torch.where(fallback, twin.return_gap, gap)
        self.churned |= leaves & ~returned
        for b in leaves.nonzero().flatten().tolist():
            self.memories[b].end_session(self.mindset[b], satisfaction_stars(float(self.satisfaction[b])))
        if bool(returned.any()):
            self._start_next_sessions(returned.nonzero().flatten())
        return returned, gap

    def return_decision(self, leaves: torch.Tensor, u_return: torch.Tensor,
                        u_gap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Who of ``leaves`` returns and after how long, from the users' session memory,
        activity and session length and the uniform draws ``u_return`` and ``u_gap`` ``[B]``:
        the statistical users' rule, :func:`~recoworld.simulators.equations.return_decision`.
        Changes no state."""
        return equations.return_decision(leaves, self.session_memory, self.twin.activity, self.session_step,
                                         self.session_index, u_return, u_gap, self.twin.config)

    def _start_next_sessions(self, slots: torch.Tensor) -> None:
        """The next session of the returning users ``slots``: the satisfaction halfway back
        to the initial one, no instruction in force, the memory's session opened."""
        initial = (self.config.initial_satisfaction - 1) / 4
        self.satisfaction[slots] = equations.mindset_after_break(self.satisfaction[slots], initial)
        self.session_index[slots] += 1
        self.session_step[slots] = 0
        self._clear_instruction(slots)
        for b in slots.tolist():
            self.memories[b].start_session(self.mindset[b], satisfaction_stars(float(self.satisfaction[b])))

    def _clear_instruction(self, slots: torch.Tensor) -> None:
        self.instruction.clear(slots)
        self.instruction_steps_left[slots] = 0

    def _restart_churned_twins(self, twin: Response) -> None:
        # The twin must answer every later step: a twin user who churned while the LLM user
        # stays is restarted as the same person (same seed), fresh.
        lost = twin.churned & ~self.churned
        if bool(lost.any()):
            slots = lost.nonzero().flatten()
            self.twin.reset(self.n_users, seed=self.seeds[slots].cpu(), users=slots.cpu())

    # -------------------------------------------------------------- privileged
    def click_probabilities(self, items: torch.Tensor) -> torch.Tensor:
        """Privileged, and a proxy: the statistical twin's click probabilities for the same
        users. An LLM's own choice probabilities are not available."""
        return self.twin.click_probabilities(items)

    # ---------------------------------------------------------------- metrics
    def finish(self) -> None:
        """The rollout has ended: raise :class:`FallbackShareExceeded` if more than
        ``max_fallback_share`` of all its user-steps fell back, however few they were."""
        self._check_fallback_share(self.counts["fallback_steps"], self.counts["user_steps"], "LLM user-steps",
                                   ended=True)

    def metrics(self) -> dict[str, float | int]:
        """Counters for ``metrics.json``: user-steps, failures (and their rate), fallback
        steps and ``fallback_share`` (their share of the user-steps, which
        ``max_fallback_share`` bounds), tokens per step, plus the chat model's accounting
        (``llm_*``) of its use since this simulator was built."""
        n = max(self.counts["user_steps"], 1)
        out = {f"llm_user_{k}": v for k, v in self.counts.items()}
        out["fallback_share"] = self.counts["fallback_steps"] / n
        out["llm_user_failure_rate"] = self.counts["failures"] / n
        out["llm_user_prompt_tokens_per_step"] = self.counts["prompt_tokens"] / n
        out["llm_user_completion_tokens_per_step"] = self.counts["completion_tokens"] / n
        out.update(self.llm.metrics(since=self._llm_mark))
        return out


__all__ = ["FallbackShareExceeded", "LLMSimulatorConfig", "LLMUserConfig", "LLMUserError", "LLMUsers", "StepFailure",
           "instruction_compliance"]
