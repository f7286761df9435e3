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

**Mapping to a** :class:`~recoworld.Response`:

============  ========  =======  ==============  =====  ======
action        examined  clicked  watch_fraction  liked  rating
============  ========  =======  ==============  =====  ======
``skip``      yes       no       0               no     0
``click``     yes       yes      ``click_watch``  no    0 (none given)
``like``      yes       yes      ``like_watch``   yes   ``like_rating``
``dislike``   yes       yes      ``dislike_watch`` no   ``dislike_rating``
============  ========  =======  ==============  =====  ======

The user reacts to every item, so every position is examined. A like or a dislike is an
explicit judgement, hence a rating; a dislike means the user opened the item and regretted
it (the only way a negative judgement reaches the ``Response``, which rates clicked items
only). ``satisfaction`` :math:`s \\in \\{1..5\\}` becomes :math:`(s - 1)/4`. ``leave_hazard``
is 1 for a user who decided to leave and 0 otherwise (the model's decision, not a
probability). A reply's instruction is voiced (``instruction.active``) and, when it has a
structured wish (a ``more`` or ``less`` genre or a ``novelty``), is in force for
``instruction_steps`` steps of the statistical config or until the session ends; the
compliance of each slate with the instruction in force is computed as the statistical
user computes it (share outside ``less``, share in ``more`` relative to ``more_share``,
share of novel or familiar items — novel meaning farther than 1 from the user's recent
consumption in feature space).

**Returning** after a session, from the final satisfaction :math:`m \\in [0, 1]` by the
statistical user's rule: the user returns with probability
:math:`\\sigma(r_0 + r_m(m - 0.5) + \\log a_b)` after an exponential gap of mean
``gap_days`` / (:math:`a_b(0.5 + m)`) days (:math:`a_b` the activity trait), else churns.
The draw comes from the user's own random stream, so it is reproducible. A returning user
starts the next session with its satisfaction halfway back to the initial one, the
session's summary in memory and no instruction in force.

**Failures**: a reply that does not validate — bad JSON, a missing field, an item id that
was not in the slate — goes back to the model for repair by the LLM layer. A request that
still fails is recorded (:attr:`LLMUsers.failures`, with every raw text) and counted in
:meth:`LLMUsers.metrics`, then handled by ``on_failure``: ``"fail"`` raises
:class:`LLMUserError` before any state changes; ``"fallback"`` uses, for that user and
step, the response of the statistical twin (:attr:`LLMUsers.twin`, a
:class:`~recoworld.simulators.statistical.StatisticalUsers` holding the same users, stepped
on the same slates). No reply is ever invented.

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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from recoworld import rng
from recoworld.catalog import Catalog, lookup
from recoworld.llm import ChatFailure, ChatModel, ChatReply, ChatRequest, LLMConfig
from recoworld.types import Instruction, Response
from recoworld.validation import check_slates
from recoworld.simulators.base import UserSimulator
from recoworld.simulators.instructions import instruction_compliance
from recoworld.simulators.llm_shared import (
    ChatModelNode, LLMUserError, LLMVoice, LLMVoiceConfig, StepFailure, config_from, default_population, resolve_seeds,
    satisfaction_stars,
)
from recoworld.simulators.memory import UserMemory
from recoworld.simulators.persona import MovieLensPersonas, Persona, persona_from_traits
from recoworld.simulators.population import Population, UserTraits
from recoworld.simulators.replies import slate_reply_model
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

logger = logging.getLogger(__name__)

# Random streams of LLM users (the twin uses 1..12 with the same keys).
S_RETURN, S_SAMPLING = 30, 32


@dataclass
class LLMUserConfig(LLMVoiceConfig):
    """How LLM users are prompted and how their replies map to a Response.

    Attributes:
        on_failure: ``"fallback"`` (the statistical twin's response for a failed step) or
            ``"fail"`` (raise :class:`LLMUserError`).
        temperature: sampling temperature of every request (0: greedy).
        max_tokens: reply length limit; ``None`` gives ``256 + 70 * slate_size``, enough for
            the longest reply the schema allows even at one token per character (a cut
            reply is invalid JSON).
        app: how the prompt names the service.
        initial_mindset: the mindset sentence of a new user.
        initial_satisfaction: satisfaction 1..5 of a new user.
        click_watch, like_watch, dislike_watch: watch fraction of each action.
        like_rating, dislike_rating: rating of a like and of a dislike.
        failures_kept: most recent failures kept in :attr:`LLMUsers.failures`.
        memory: bounds of each user's memory.
        representation: how history items are written in the prompt.
    """

    max_tokens: int | None = None
    initial_mindset: str = "Curious to see what the app suggests today."
    initial_satisfaction: int = 3
    click_watch: float = 0.6
    like_watch: float = 1.0
    dislike_watch: float = 0.1
    like_rating: int = 5
    dislike_rating: int = 1

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.initial_satisfaction <= 5:
            raise ValueError(f"initial_satisfaction={self.initial_satisfaction}; it is on the 1..5 scale")
        for name in ("click_watch", "like_watch", "dislike_watch"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}; a watch fraction of a click is in (0, 1]")
        for name in ("like_rating", "dislike_rating"):
            if not 1 <= getattr(self, name) <= 5:
                raise ValueError(f"{name}={getattr(self, name)}; ratings are 1..5")


@dataclass
class LLMSimulatorConfig:
    """The Hydra schema of ``simulator=llm``: :class:`LLMUsers` with its chat model
    (``llm``: ``${llm}``, the root ``llm`` node of ``recoworld run``'s config, a
    :class:`~recoworld.simulators.llm_shared.ChatModelNode`), its prompting and mapping
    (``config``), the statistical twin's parameters (``statistical``) and the population
    (``None``: :func:`default_population`)."""

    _target_: str = "recoworld.simulators.llm_user.LLMUsers"
    llm: ChatModelNode = "${llm}"  # the root node of recoworld run's config
    config: LLMUserConfig = field(default_factory=LLMUserConfig)
    statistical: StatisticalUserConfig = field(default_factory=StatisticalUserConfig)
    population: Any = None
    device: str = "${device}"


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
            of the twin (also the return rule, ``instruction_steps``, ``more_share`` and
            ``familiarity_rate`` of the LLM users).
        population: who the users are; default :func:`default_population`.
        personas: the MovieLens persona book used for users whose traits name a
            ``source_user``; default that of a :class:`MovieLensPopulation`.
        device: device of the Response tensors.

    Attributes:
        twin: the statistical users with the same seeds (fallback responses, traits, and
            the privileged click probabilities).
        personas_in_use: the :class:`Persona` of each slot.
        memories: the :class:`UserMemory` of each slot.
        mindset: each slot's current mindset sentence.
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
        self.twin = StatisticalUsers(self.catalog, config_from(StatisticalUserConfig, statistical), population, self.device)
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
            slots = torch.as_tensor(users, dtype=torch.long).flatten().tolist()
            bad = [s for s in slots if not 0 <= s < n_users]
            if bad:
                raise ValueError(f"users holds slot {bad[0]}, but there are {n_users} slots")
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
        self.familiar[index] = traits.interest
        for tensor in (self.counter, self.session_index, self.session_step, self.instruction_steps_left):
            tensor[index] = 0
        self.churned[index] = False
        for tensor in (self.instruction.active, self.instruction.more, self.instruction.less):
            tensor[index] = False
        self.instruction.novelty[index] = 0

    def _allocate(self, n: int) -> None:
        dev, g = self.device, self.catalog.n_genres
        self.n_users = n
        self.seeds = torch.zeros(n, dtype=torch.int64, device=dev)
        self.counter = torch.zeros(n, dtype=torch.int64, device=dev)
        self.session_index = torch.zeros(n, dtype=torch.int64, device=dev)
        self.session_step = torch.zeros(n, dtype=torch.int64, device=dev)
        self.satisfaction = torch.zeros(n, device=dev)
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
    def _max_tokens(self, slate_size: int) -> int:
        return self.config.max_tokens or 256 + 70 * slate_size

    def prompt(self, b: int, slate: Sequence[int]) -> list[dict]:
        """The chat messages of user ``b`` for ``slate``."""
        c, rep = self.config, self.representation
        system = (f"{self._persona_text[b]}\nYou are using {c.app}. Stay in character: react as this person "
                  "would, honestly, including boredom and annoyance. Answer with JSON only.")
        parts = []
        remembered = self.memories[b].render(rep.describe)
        if remembered:
            parts.append("What you remember:\n" + remembered)
        stars = satisfaction_stars(float(self.satisfaction[b]))
        parts.append(f"Session {int(self.session_index[b]) + 1}, step {int(self.session_step[b]) + 1}. "
                     f'Your mindset: "{self.mindset[b]}" Your satisfaction: {stars}/5.')
        if bool(self.instruction.active[b]) and self.instruction_text[b]:
            parts.append(f'You asked the app earlier: "{self.instruction_text[b]}"')
        codes = rep.code(slate)
        lines = [f"{k + 1}. item {item}: {rep.text(item)}{' ' + code if code else ''}"
                 for k, (item, code) in enumerate(zip(slate, codes))]
        parts.append("The app now shows you, in order:\n" + "\n".join(lines))
        parts.append(
            'React to each item by its id: "click" (watch it), "like" (watch and love it), "dislike" (watch and '
            'regret it) or "skip", with a short reason. Then your mindset in one sentence, your satisfaction from '
            '1 (very unhappy) to 5 (very happy), and "leave": true if you close the app now. Only if you are '
            'losing interest, set "instruction" to what you would tell the app: a sentence, the genres you want '
            'more or less of, and novelty 1 (unfamiliar titles), -1 (familiar ones) or 0; else null.'
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]

    def requests(self, slates: torch.Tensor) -> list[ChatRequest]:
        """One request per user for ``slates`` ``[B, K]`` (no state changes)."""
        rows = slates.cpu().tolist()
        seeds = rng.bits(self.twin.key, self.counter, S_SAMPLING, 1)[:, 0].tolist()
        max_tokens = self._max_tokens(slates.shape[1])
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
        slates = self._check(slates)
        replies = self.llm.chat_many(self.requests(slates), return_exceptions=True)
        failed = [b for b, r in enumerate(replies) if isinstance(r, ChatFailure)]
        policy = self.config.on_failure
        records = [StepFailure(b, int(self.seeds[b]), int(self.counter[b]), str(replies[b]),
                               tuple(replies[b].raw_texts), policy) for b in failed]
        self.failures.extend(records)
        self.counts["failures"] += len(records)
        for record in records:
            logger.warning("LLM user slot %d step %d: no valid reply (%s); %s", record.slot, record.step,
                           record.error[:200], "falling back to the statistical twin" if policy == "fallback"
                           else "failing the run")
        if records and policy == "fail":
            raise LLMUserError(records)
        twin = self.twin.respond(slates)
        return self._apply(slates, replies, twin)

    def _apply(self, slates: torch.Tensor, replies: list, twin: Response) -> Response:
        c, stat, cat = self.config, self.twin.config, self.catalog
        B, K = slates.shape
        dev = self.device
        rows = slates.cpu().tolist()
        ok = [isinstance(r, ChatReply) for r in replies]
        ok_t = torch.tensor(ok, device=dev)
        code = {"skip": 0, "click": 1, "like": 2, "dislike": 3}
        action_rows = [[0] * K for _ in range(B)]
        reasons: list[list[str]] = [[""] * K for _ in range(B)]
        star_list, leave_list = [0] * B, [False] * B
        voiced = Instruction.none(B, cat.n_genres, dev)
        voiced_text: list[str | None] = [None] * B
        column = {g: j for j, g in enumerate(self._genre_names)}
        for b, reply in enumerate(replies):
            if not ok[b]:
                continue
            parsed = reply.parsed
            for k, item in enumerate(rows[b]):
                reaction = parsed.reactions[str(item)]
                action_rows[b][k] = code[reaction.action]
                reasons[b][k] = reaction.reason
            star_list[b] = parsed.satisfaction
            leave_list[b] = parsed.leave
            self.mindset[b] = " ".join(parsed.mindset.split())
            if parsed.instruction is not None:
                ins = parsed.instruction
                voiced.active[b] = True
                voiced.more[b, [column[g] for g in ins.more]] = True
                voiced.less[b, [column[g] for g in ins.less]] = True
                voiced.novelty[b] = ins.novelty
                voiced_text[b] = " ".join(ins.text.split())
            self.counts["prompt_tokens"] += reply.prompt_tokens
            self.counts["completion_tokens"] += reply.completion_tokens
            self.counts["repaired_steps"] += reply.attempts > 1
            self.counts["cached_steps"] += reply.cached
        actions = torch.tensor(action_rows, dtype=torch.long)
        stars = torch.tensor(star_list, dtype=torch.float32)
        leaves = torch.tensor(leave_list, dtype=torch.bool)

        actions = actions.to(dev)
        clicked = actions > 0
        watch = torch.zeros(B, K, device=dev)
        for a, fraction in ((1, c.click_watch), (2, c.like_watch), (3, c.dislike_watch)):
            watch[actions == a] = fraction
        liked = actions == 2
        rating = torch.zeros(B, K, dtype=torch.int8, device=dev)
        rating[actions == 2] = c.like_rating
        rating[actions == 3] = c.dislike_rating
        examined = torch.ones(B, K, dtype=torch.bool, device=dev)
        satisfaction = ((stars.to(dev) - 1) / 4).clamp(0, 1)
        hazard = leaves.float().to(dev)
        leaves = leaves.to(dev)

        # Failed users take the twin's response for this step (see the module docstring).
        fallback = ~ok_t
        if bool(fallback.any()):
            self.counts["fallback_steps"] += int(fallback.sum())
            f = fallback[:, None]
            examined = torch.where(f, twin.examined, examined)
            clicked = torch.where(f, twin.clicked, clicked)
            watch = torch.where(f, twin.watch_fraction, watch)
            liked = torch.where(f, twin.liked, liked)
            rating = torch.where(f, twin.rating, rating)
            satisfaction = torch.where(fallback, twin.satisfaction, satisfaction)
            hazard = torch.where(fallback, twin.leave_hazard, hazard)
            leaves = torch.where(fallback, twin.left_session, leaves)
            for b in fallback.nonzero().flatten().tolist():
                if bool(twin.instruction.active[b]):
                    voiced.active[b] = True
                    voiced.more[b], voiced.less[b] = twin.instruction.more[b], twin.instruction.less[b]
                    voiced.novelty[b] = twin.instruction.novelty[b]
                    voiced_text[b] = twin.instruction_text[b]

        # Compliance with the instruction in force when the slate was shown.
        in_force = self.instruction.active.clone()
        compliance = torch.zeros(B, device=dev)
        if bool(in_force.any()):
            r = in_force.nonzero().flatten()
            feats = lookup(cat.features, slates[r])
            novel = 1.0 - torch.bmm(feats, self.familiar[r][:, :, None])[..., 0] > 1.0
            compliance[r] = instruction_compliance(self.instruction.select(r), lookup(cat.genres, slates[r]),
                                                   novel, stat.more_share)
        self.instruction_steps_left -= in_force.long()
        self.instruction.active &= self.instruction_steps_left > 0
        for b in voiced.active.nonzero().flatten().tolist():
            self.memories[b].voiced(voiced_text[b])
        # A sentence without a structured wish is voiced, but there is nothing to comply with.
        wishes = voiced.active & (voiced.more.any(1) | voiced.less.any(1) | (voiced.novelty != 0))
        if bool(wishes.any()):
            r = wishes.nonzero().flatten()
            for name in ("active", "more", "less", "novelty"):
                getattr(self.instruction, name)[r] = getattr(voiced, name)[r]
            self.instruction_steps_left[r] = stat.instruction_steps
            for b in r.tolist():
                self.instruction_text[b] = voiced_text[b]

        # Familiarity: the recent consumption against which novelty is measured.
        consumed = torch.bmm((clicked.float() * watch)[:, None, :], lookup(cat.features, slates))[:, 0]
        moved = (1 - stat.familiarity_rate) * self.familiar + stat.familiarity_rate * torch.nn.functional.normalize(
            consumed, dim=1)
        self.familiar = torch.where(clicked.any(1, keepdim=True), torch.nn.functional.normalize(moved, dim=1),
                                    self.familiar)

        # Memory of this step's reactions.
        names = ("skip", "click", "like", "dislike")
        for b in range(B):
            if ok[b]:
                reactions = [(item, names[a], why) for item, a, why in zip(rows[b], action_rows[b], reasons[b])]
            else:
                # Twin rows: 0 skip, 1 click, 2 like, on the positions the twin examined.
                acted = (clicked[b].long() + liked[b].long()).tolist()
                seen = examined[b].tolist()
                reactions = [(item, names[a], "no reply from the model; statistical stand-in")
                             for item, a, s in zip(rows[b], acted, seen) if s]
            self.memories[b].record(reactions, self.representation.genres_of)

        self.satisfaction = satisfaction  # (a failed step leaves the mindset sentence as it was)

        returned, gap = self._leave(leaves, fallback, twin)
        self._restart_churned_twins(twin)
        self.counter += 1
        self.counts["user_steps"] += B
        return Response(
            examined=examined, clicked=clicked, watch_fraction=watch, liked=liked, rating=rating,
            satisfaction=satisfaction.clone(), leave_hazard=hazard, left_session=leaves, returned=returned,
            return_gap=gap, churned=leaves & ~returned, instruction_in_force=in_force, compliance=compliance,
            instruction=voiced, instruction_text=voiced_text,
        )

    def _leave(self, leaves: torch.Tensor, fallback: torch.Tensor, twin: Response):
        """Who returns and after how long; ends the sessions of leavers and starts the next."""
        stat = self.twin.config
        self.session_step += 1
        gap = torch.where(leaves, torch.inf, 0.0)
        if not bool(leaves.any()):
            return torch.zeros_like(leaves), gap
        u = rng.uniform(self.twin.key, self.counter, S_RETURN, 2)
        activity = self.twin.activity
        p_return = torch.sigmoid(stat.return_base + stat.return_mindset * (self.satisfaction - 0.5)
                                 + torch.log(activity))
        returned = leaves & (u[:, 0] < p_return)
        mean_gap = stat.gap_days / (activity * (0.5 + self.satisfaction))
        gap = torch.where(returned, -mean_gap * torch.log(u[:, 1]), gap)
        returned = torch.where(fallback, twin.returned, returned)
        gap = torch.where(fallback, twin.return_gap, gap)
        self.churned |= leaves & ~returned
        for b in leaves.nonzero().flatten().tolist():
            self.memories[b].end_session(self.mindset[b], satisfaction_stars(float(self.satisfaction[b])))
        if bool(returned.any()):
            r = returned.nonzero().flatten()
            initial = (self.config.initial_satisfaction - 1) / 4
            self.satisfaction[r] = 0.5 * self.satisfaction[r] + 0.5 * initial
            self.session_index[r] += 1
            self.session_step[r] = 0
            for name in ("active", "more", "less"):
                getattr(self.instruction, name)[r] = False
            self.instruction.novelty[r] = 0
            self.instruction_steps_left[r] = 0
            for b in r.tolist():
                self.memories[b].start_session(self.mindset[b], satisfaction_stars(float(self.satisfaction[b])))
        return returned, gap

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
    def metrics(self) -> dict[str, float | int]:
        """Counters for ``metrics.json``: user-steps, failures (and their rate), fallback
        steps, tokens per step, plus the chat model's accounting (``llm_*``) of its use since
        this simulator was built."""
        n = max(self.counts["user_steps"], 1)
        out = {f"llm_user_{k}": v for k, v in self.counts.items()}
        out["llm_user_failure_rate"] = self.counts["failures"] / n
        out["llm_user_prompt_tokens_per_step"] = self.counts["prompt_tokens"] / n
        out["llm_user_completion_tokens_per_step"] = self.counts["completion_tokens"] / n
        out.update(self.llm.metrics(since=self._llm_mark))
        return out


__all__ = ["LLMSimulatorConfig", "LLMUserConfig", "LLMUserError", "LLMUsers", "StepFailure", "instruction_compliance"]
