r"""Batched statistical users: every user of a batch steps in a few tensor ops.

Notation: user :math:`b`, item :math:`i` with unit features :math:`f_i`, genre weights
:math:`w_i` (its genres, summing to 1), standardised log-popularity :math:`\tilde p_i` and
quality :math:`q_i`.

**Users** (drawn at reset from a :class:`~recoworld.simulators.population.Population`):
interest :math:`u_b` (unit vector: two popularity-sampled anchor items plus noise),
patience :math:`\gamma_b \in (0,1)`, novelty seeking :math:`\nu_b` (static trait; each
session draws a propensity :math:`\nu_{bs} = \nu_b + \sigma_s\epsilon`), activity
:math:`a_b > 0` (how often they come back) and popularity bias :math:`\pi_b`.

**Utility and click** of item :math:`i` at step :math:`t`:

.. math::

    v_{bi} = \alpha\langle u_b, f_i\rangle + \beta q_i + \pi_b \tilde p_i
             + \nu_{bs}(d_{bi} - 1) - \kappa_s\langle s_b, w_i\rangle - \kappa_r r_{bi} - c,
    \qquad P(\text{click} \mid \text{examined}) = \sigma(v_{bi})

where :math:`d_{bi} = 1 - \langle h_b, f_i\rangle \in [0, 2]` is the item's distance from
the user's recent consumption :math:`h_b`, :math:`s_b \in [0,1]^G` the per-genre satiation
and :math:`r_{bi}` marks items among the user's last clicks.

**Examination** (cascade with position bias and a no-click option): position 1 is examined;
after position :math:`k` the user goes on with probability :math:`\gamma_b` if they did not
click and :math:`\gamma_b\rho` if they did. Unexamined positions carry no feedback. A
clicked item gets a watch fraction :math:`\sigma(v + 1 + 0.45\epsilon)`, a like with
probability :math:`\sigma(2v - 1)`, and a rating
:math:`\mathrm{clip}(\mathrm{round}(r_0 + r_v v + r_q q_i + b_b + r_\epsilon\epsilon), 1, 5)`,
with :math:`\epsilon` one standard logistic draw (standard deviation 1.81) shared by
both, so that watching more than expected goes with a higher rating. By default
:math:`r_0 = 4.3`, :math:`r_v = 0.9`, :math:`r_q = 0`, :math:`r_\epsilon = 0.33`
(``rating_center``, ``rating_slope``, ``rating_quality``, ``rating_noise``; the center puts
the mean rating of what users click near MovieLens's 3.5 stars, clicked items sitting
below :math:`v = 0`) and the user's rating bias :math:`b_b` is 0; a population whose traits
carry a ``rating_bias`` tensor (the calibrated MovieLens users do) sets it per user.

**Dynamics** after each step, with :math:`x_{bg} = \min(1, \sum_k e_k w_{ig}(0.2 + 0.8\,c_k\,\omega_k))`
the exposure-and-consumption of genre :math:`g` (:math:`e` examined, :math:`c` clicked,
:math:`\omega` watch fraction):

- satiation :math:`s \leftarrow (1-\delta)s + \eta_s(1-s)x`, which stays in :math:`[0,1]`, and
  recovers between sessions as :math:`s \leftarrow s\,e^{-\text{gap}/\tau}`;
- interest drift :math:`u \leftarrow \mathrm{normalize}(u + \eta_u\sum_k c_k\omega_k f_k)`;
- mindset :math:`m \leftarrow (1-\lambda)m + \lambda\,\bar q`, with step quality
  :math:`\bar q = \mathrm{clip}(j + \kappa_c(\text{compliance} - 0.5), 0, 1)`, where the
  step's enjoyment :math:`j = \frac{1}{n}\sum_k c_k (\text{rating}_k - 1)/4` is the mean
  enjoyment of the :math:`n` clicked items (0 when nothing was clicked): the user's own
  judgement after watching, not the click. What draws a click (interest, popularity) and
  what is enjoyed (in the calibrated MovieLens world mostly the film's quality: its rating
  slope on quality is about 0.7 stars per standard deviation, its click weight near 0)
  part there, so a recommender that only chases clicks serves disappointing sessions;
- session memory :math:`M \leftarrow M + (\bar q - M)/t_{\text{session}}`, the mean step
  quality of the session so far: how the session went, remembered for the return.

**Leaving**: the leave hazard is
:math:`h = \sigma(h_0 + h_m(0.5 - m) + h_b\,\text{boredom} + h_\ell\,t_{\text{session}} - h_\gamma(\gamma_b - 0.75))`,
where boredom is the mean satiation of the examined items' genres. A user whose hazard
exceeds ``instruction_threshold`` senses they are about to leave: with probability
``voice_probability`` (if no instruction is already in force) they voice a reflective
instruction and stay; otherwise they leave with probability :math:`h`.

**Returning**: a user who leaves returns with probability
:math:`\sigma(r_0 + r_m(M - 0.5) + \log a_b)` after an exponential gap of mean
``gap_days`` / (:math:`a_b(0.5 + M)`) days, or churns, which ends their episode. It is the
whole session's memory :math:`M` that decides, not the mindset of the moment of leaving:
users leave when their mindset dips, whoever served them, so the mindset at leaving
varies little between recommenders, while how the session went as a whole does.

**Instructions**: ``less`` is the most satiated genre (if its satiation exceeds
``instruction_satiation``), ``more`` the genre with the best interest net of satiation,
``novelty`` the sign of :math:`\nu_{bs}` when :math:`|\nu_{bs}| > 0.4`. While an
instruction is in force (``instruction_steps`` steps, or until the session ends), each
slate's compliance — the mean of the applicable parts: share of items outside ``less``,
share of items in ``more`` relative to ``more_share``, share of novel (:math:`d > 1`) or
familiar items — moves the step quality and hence the mindset.

All randomness comes from :mod:`recoworld.rng`: user ``b``'s draws depend only on its seed
and its step count, so results do not depend on the batch a user is simulated in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from recoworld import rng
from recoworld.catalog import Catalog, lookup
from recoworld.history import prepend_clicks
from recoworld.types import Instruction, Response
from recoworld.validation import check_slates
from recoworld.simulators import fused
from recoworld.simulators.base import UserSimulator, resolve_seeds
from recoworld.simulators.instructions import instruction_compliance, render_instruction
from recoworld.simulators.population import Population, SyntheticPopulation

# Named random streams: each kind of draw has its own, so adding one never shifts another.
S_SESSION = 2
S_STEP, S_GAP, S_PHRASE = 10, 11, 12
STREAMS = {"step": S_STEP, "gap": S_GAP, "session": S_SESSION, "phrase": S_PHRASE}  # the C kernel's

HISTORY = 10  # last clicks remembered for the repeat penalty
KERNELS = ("torch", "c")


@dataclass
class StatisticalUserConfig:
    """Response and dynamics parameters of statistical users (equations in the module
    docstring). Who the users are — their traits — comes from a
    :class:`~recoworld.simulators.population.Population`."""

    # per-session novelty propensity around the user's static trait
    novelty_session_spread: float = 0.3
    # utility
    interest_weight: float = 4.0
    quality_weight: float = 0.5
    satiation_weight: float = 2.5
    repeat_penalty: float = 3.0
    click_threshold: float = 2.5
    continue_after_click: float = 0.7
    # ratings of clicked items (equation in the module docstring)
    rating_center: float = 4.3
    rating_slope: float = 0.9
    rating_quality: float = 0.0
    rating_noise: float = 0.33
    # dynamics
    satiation_rate: float = 0.5
    satiation_decay: float = 0.05
    satiation_recovery_days: float = 3.0
    interest_drift: float = 0.05
    familiarity_rate: float = 0.3
    mindset_rate: float = 0.35
    initial_mindset: float = 0.6
    compliance_weight: float = 0.6
    # leaving
    leave_base: float = -3.0
    leave_mindset: float = 4.0
    leave_boredom: float = 2.0
    leave_length: float = 0.15
    leave_patience: float = 2.0
    # returning
    return_base: float = 2.0
    return_mindset: float = 6.0
    gap_days: float = 2.0
    # instructions
    instruction_threshold: float = 0.3
    voice_probability: float = 0.7
    instruction_steps: int = 5
    instruction_satiation: float = 0.25
    more_share: float = 0.3


class StatisticalUsers(UserSimulator):
    """``B`` statistical users stepped together with torch tensor ops.

    Args:
        catalog: the items.
        config: response and dynamics parameters; defaults are used when omitted.
        population: where new users' traits come from (default: a
            :class:`~recoworld.simulators.population.SyntheticPopulation`).
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        kernel: how a step runs. ``"torch"`` (default, the reference):
            tensor ops, on any device (on CPU the random hashes are computed by a small C
            helper where a C compiler is available, the same bits, see
            :mod:`recoworld.rng`). ``"c"``: a fused C kernel for CPU
            (:mod:`recoworld.simulators.fused`), several times faster at large ``B``; it is
            compiled on first use with the system C compiler (``$CC`` or ``cc``) and raises
            :class:`~recoworld.simulators.fused.CompilerNotFoundError` if there is none.
            It draws the same random numbers and computes the same equations, so it
            agrees with ``"torch"`` up to float rounding: probabilities and continuous
            outputs within about 1e-6, but a draw within rounding of its threshold may
            go the other way, after which the two trajectories part. Each user's result
            still does not depend on the batch. With ``"c"`` the state tensors are updated
            in place.

    State tensors (``[B, ...]``) are public attributes so that tests and envs can read
    them: ``interest``, ``satiation``, ``satisfaction`` (the mindset), ``session_memory``,
    ``patience``, ``activity``, ``session_index``, ``session_step``, ``churned``, and the
    instruction in force.
    """

    def __init__(self, catalog: Catalog, config: StatisticalUserConfig | None = None,
                 population: Population | None = None, device="cpu", kernel: str = "torch"):
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}; choose one of {KERNELS}")
        self.kernel = kernel
        self.config = config or StatisticalUserConfig()
        self.population = population or SyntheticPopulation()
        self.device = torch.device(device)
        self.catalog = catalog.to(self.device)
        lp = self.catalog.log_popularity
        self._pop_score = (lp - lp.mean()) / lp.std().clamp_min(1e-6) if lp.numel() > 1 else lp * 0
        genres = self.catalog.genres.float()
        self._genre_centroids = torch.nn.functional.normalize(genres.T @ self.catalog.features, dim=1)
        self._static_appeal = self.config.quality_weight * self.catalog.quality - self.config.click_threshold
        self.n_users = 0
        self._fresh_seed = 0
        # The phrase codes met so far (sorted) and their sentences, see _render; code -1
        # (no instruction) heads the list, so that a lookup always lands on an entry.
        self._phrase_codes_met = np.full(1, -1, dtype=np.int32)
        self._sentences_met = np.full(1, None, dtype=object)
        if kernel == "c":
            if self.device.type != "cpu":
                raise ValueError(f"kernel='c' runs on CPU, but device={str(self.device)!r}; use kernel='torch'")
            if type(self)._utility is not StatisticalUsers._utility:
                raise ValueError(f"kernel='c' computes the utility of StatisticalUsers, which {type(self).__name__} "
                                 "changes; use kernel='torch'")
            fused.library()  # build now: a missing compiler shows up here, not mid-rollout
            self._genre_table = self.catalog.genres.to(torch.uint8).contiguous()

    # ------------------------------------------------------------------ reset
    def reset(self, n_users: int, seed: int | Sequence[int] | None = None, users=None) -> None:
        if users is None:
            self._allocate(n_users)
            slots = torch.arange(n_users, device=self.device)
        else:
            if n_users != self.n_users:
                raise ValueError(f"reset(n_users={n_users}, users=...) on a simulator of {self.n_users} users; "
                                 "restarting some users keeps the batch size")
            slots = torch.as_tensor(users, dtype=torch.long, device=self.device).flatten()
            if len(slots) and (int(slots.min()) < 0 or int(slots.max()) >= n_users):
                raise ValueError(f"users holds slot {int(slots.max())}, but there are {n_users} slots")
        if len(slots) == 0:
            return
        fresh_start = self._fresh_seed
        if seed is None:
            self._fresh_seed += len(slots)
        self._start(slots, resolve_seeds(len(slots), seed, fresh_start, salt=0xF2E5))

    def _allocate(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n_users={n}; a simulator needs at least one user")
        d, g, dev = self.catalog.feature_dim, self.catalog.n_genres, self.device
        self.n_users = n
        self.key = torch.zeros(n, dtype=torch.int32, device=dev)
        self.counter = torch.zeros(n, dtype=torch.int32, device=dev)
        self.interest = torch.zeros(n, d, device=dev)
        self.familiar = torch.zeros(n, d, device=dev)
        self.patience = torch.zeros(n, device=dev)
        self.novelty_trait = torch.zeros(n, device=dev)
        self.novelty_seeking = torch.zeros(n, device=dev)
        self.activity = torch.ones(n, device=dev)
        self.popularity_bias = torch.zeros(n, device=dev)
        self.rating_bias = torch.zeros(n, device=dev)
        self.source_user = torch.full((n,), -1, dtype=torch.int64, device=dev)
        self.satiation = torch.zeros(n, g, device=dev)
        self.satisfaction = torch.zeros(n, device=dev)
        self.session_memory = torch.zeros(n, device=dev)
        self.session_index = torch.zeros(n, dtype=torch.int64, device=dev)
        self.session_step = torch.zeros(n, dtype=torch.int64, device=dev)
        self.churned = torch.zeros(n, dtype=torch.bool, device=dev)
        self.recent_clicks = torch.full((n, HISTORY), -1, dtype=torch.int64, device=dev)
        self.instruction = Instruction.none(n, g, dev)
        self.instruction_steps_left = torch.zeros(n, dtype=torch.int64, device=dev)

    def _start(self, slots: torch.Tensor, seeds: torch.Tensor) -> None:
        """Draw new users into ``slots`` from their seeds."""
        c = self.config
        key = rng.user_keys(seeds, self.device)
        traits = self.population.sample(key, self.catalog)
        self.source_user[slots] = traits.source_user
        if self.kernel == "c":  # the same, in one pass
            fused.start(self, slots, key, traits, STREAMS, self._genre_table, fused.parameters(c))
            return
        self.key[slots] = key
        self.counter[slots] = 0
        self.interest[slots] = traits.interest
        self.familiar[slots] = traits.interest
        self.patience[slots] = traits.patience
        self.novelty_trait[slots] = traits.novelty_trait
        self.activity[slots] = traits.activity
        self.popularity_bias[slots] = traits.popularity_bias
        # Optional trait: only some populations know how a user's ratings sit.
        rating_bias = getattr(traits, "rating_bias", None)
        self.rating_bias[slots] = 0.0 if rating_bias is None else rating_bias
        self.satiation[slots] = 0.0
        self.satisfaction[slots] = c.initial_mindset
        self.session_memory[slots] = c.initial_mindset
        self.session_index[slots] = 0
        self.session_step[slots] = 0
        self.churned[slots] = False
        self.recent_clicks[slots] = -1
        self._clear_instruction(slots)
        self._new_session_propensity(slots)

    def _new_session_propensity(self, slots: torch.Tensor) -> None:
        draw = rng.normal(self.key[slots], self.session_index[slots], S_SESSION, 1)[:, 0]
        self.novelty_seeking[slots] = self.novelty_trait[slots] + self.config.novelty_session_spread * draw

    def _clear_instruction(self, slots) -> None:
        self.instruction.active[slots] = False
        self.instruction.more[slots] = False
        self.instruction.less[slots] = False
        self.instruction.novelty[slots] = 0
        self.instruction_steps_left[slots] = 0

    # --------------------------------------------------------------- utilities
    def _utility(self, items: torch.Tensor, feats: torch.Tensor, weights: torch.Tensor):
        """Utility ``v`` ``[B, C]`` of ``items`` (features ``feats`` ``[B, C, D]`` and genre
        weights ``weights`` ``[B, C, G]``), with its satiation and distance terms."""
        c = self.config
        affinity = torch.bmm(feats, self.interest[:, :, None])[..., 0]
        distance = 1.0 - torch.bmm(feats, self.familiar[:, :, None])[..., 0]
        satiation = torch.bmm(weights, self.satiation[:, :, None])[..., 0]
        repeat = (items[:, :, None] == self.recent_clicks[:, None, :]).any(-1)
        v = c.interest_weight * affinity + lookup(self._static_appeal, items)
        v += self.popularity_bias[:, None] * lookup(self._pop_score, items)
        v += self.novelty_seeking[:, None] * (distance - 1.0)
        v -= c.satiation_weight * satiation
        v -= c.repeat_penalty * repeat
        return v, satiation, distance

    def click_probabilities(self, items: torch.Tensor) -> torch.Tensor:
        items = torch.as_tensor(items, dtype=torch.long, device=self.device)
        cat = self.catalog
        return torch.sigmoid(self._utility(items, lookup(cat.features, items), lookup(cat.genre_weights, items))[0])

    def expected_clicks(self, slates: torch.Tensor) -> torch.Tensor:
        """Exact expected clicks under the cascade: :math:`\\sum_k P(e_k) p_k`."""
        slates = self._check(slates)
        p = self.click_probabilities(slates)
        go_on = self.patience[:, None] * (1.0 - p * (1.0 - self.config.continue_after_click))
        examined = torch.cumprod(torch.cat([torch.ones_like(p[:, :1]), go_on[:, :-1]], 1), 1)
        return (examined * p).sum(1)

    def _check(self, slates) -> torch.Tensor:
        if self.n_users == 0:
            raise RuntimeError("call reset(n_users, seed) before respond()")
        cat = self.catalog
        return check_slates(slates, cat.n_items, n_rows=self.n_users,
                            universe=f"the catalog has {cat.n_items} items").to(self.device)

    # ----------------------------------------------------------------- respond
    @property
    def holds_idle(self) -> bool:
        # The C kernel skips idle slots outright; the torch step computes every row, and a
        # subclass that changes respond answers through its own path.
        return self.kernel == "c" and type(self).respond is StatisticalUsers.respond

    def respond(self, slates) -> Response:
        return self._step(self._check(slates))

    def respond_valid(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        # Skips the check (a sort per row) unless a subclass changed respond, whose own
        # path then stands.
        if type(self).respond is not StatisticalUsers.respond:
            return self.respond(slates)
        return self._step(slates, idle if self.holds_idle else None)

    def _step(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        """One step of every user for valid slates; with the C kernel, slots in ``idle`` are
        skipped (neither read nor written) and answer zeros."""
        stepping = self.churned if idle is None else self.churned & ~idle
        if bool(stepping.any()):
            gone = int(stepping.nonzero()[0])
            raise ValueError(f"user slot {gone} has churned; restart it with reset(n_users, seed, users=[{gone}])")
        if self.kernel == "c":
            out = fused.step(self, slates, idle, STREAMS, self._genre_table, fused.parameters(self.config))
            examined, clicked, watch, liked, rating = (out[k] for k in ("examined", "clicked", "watch", "liked", "rating"))
            in_force, leaves, returned, compliance, hazard, gap, phrase = (
                out[k] for k in ("in_force", "leaves", "returned", "compliance", "hazard", "gap", "phrase"))
            voiced = Instruction(phrase >= 0, out["voiced_more"], out["voiced_less"], out["voiced_novelty"])
        else:
            (examined, clicked, watch, liked, rating, in_force, leaves, returned, compliance, hazard, gap,
             voiced) = self._step_torch(slates)
            phrase = self._phrase_codes(voiced)
        return Response(
            examined=examined, clicked=clicked, watch_fraction=watch, liked=liked, rating=rating,
            satisfaction=self.satisfaction.clone(), leave_hazard=hazard, left_session=leaves,
            returned=returned, return_gap=gap, churned=leaves & ~returned,
            instruction_in_force=in_force, compliance=compliance,
            instruction=voiced, instruction_text=self._render(phrase),
        )

    def _step_torch(self, slates: torch.Tensor):
        """The torch reference of a step (what ``kernel="c"`` fuses)."""
        c, B = self.config, slates.shape[0]
        examined, clicked, watch, liked, rating, distance, quality, boredom, u_user = self._step_items(slates)
        u_voice, u_leave, u_return = u_user.unbind(1)

        in_force = self.instruction.active.clone()
        compliance = torch.zeros(B, device=self.device)
        if bool(in_force.any()):
            rows = in_force.nonzero().flatten()
            compliance[rows] = self._compliance(rows, slates[rows], distance[rows])
            quality[rows] += c.compliance_weight * (compliance[rows] - 0.5)
        quality = quality.clamp(0, 1)
        self.satisfaction = (1 - c.mindset_rate) * self.satisfaction + c.mindset_rate * quality

        self.session_step += 1
        # How the session went, for the return decision: the running mean of its steps' quality.
        self.session_memory += (quality - self.session_memory) / self.session_step
        hazard = torch.sigmoid(
            c.leave_base + c.leave_mindset * (0.5 - self.satisfaction) + c.leave_boredom * boredom
            + c.leave_length * self.session_step - c.leave_patience * (self.patience - 0.75)
        )
        self.instruction_steps_left -= in_force.long()
        self.instruction.active &= self.instruction_steps_left > 0
        speaks = (hazard > c.instruction_threshold) & ~self.instruction.active & (u_voice < c.voice_probability)
        voiced = self._voice(speaks)
        leaves = ~speaks & (u_leave < hazard)
        returned, gap = self._leave(leaves, u_return)
        self.counter += 1
        return (examined, clicked, watch, liked, rating, in_force, leaves, returned, compliance, hazard, gap,
                voiced)

    def _step_items(self, slates: torch.Tensor):
        """The per-item part of a step with torch ops (the reference that ``kernel="c"``
        fuses): the response ``[B, K]``, distance ``[B, K]``, step quality and boredom
        ``[B]``, the step's per-user uniforms ``[B, 3]``, and the satiation, interest,
        familiarity and click-history updates."""
        c, cat = self.config, self.catalog
        B, K = slates.shape
        key, t = self.key, self.counter
        feats, weights = lookup(cat.features, slates), lookup(cat.genre_weights, slates)

        # All of this step's draws in one hash pass: 4 per position, 3 per user.
        u = rng.uniform(key, t, S_STEP, 4 * K + 3)
        u_click, u_continue, u_watch, u_like = u[:, : 4 * K].view(B, 4, K).unbind(1)

        v, item_satiation, distance = self._utility(slates, feats, weights)
        click_draw = u_click < torch.sigmoid(v)
        go_on = u_continue < self.patience[:, None] * torch.where(click_draw, c.continue_after_click, 1.0)
        go_on[:, -1] = True  # shifted out below: examination of k+1 depends on positions <= k
        examined = torch.cumprod(go_on.roll(1, 1).to(torch.uint8), 1).bool()
        clicked = click_draw & examined
        clicked_f = clicked.float()
        # One logistic noise (logit of a uniform) drives both watch and rating: a user who
        # watched more of an item than its utility predicts also rates it higher.
        noise = torch.logit(u_watch)
        watch = torch.sigmoid(v + 1.0 + 0.45 * noise) * clicked_f
        liked = clicked & (u_like < torch.sigmoid(2.0 * v - 1.0))
        level = c.rating_center + c.rating_slope * v + self.rating_bias[:, None]
        if c.rating_quality:
            level = level + c.rating_quality * lookup(cat.quality, slates)
        rating = (torch.round(level + c.rating_noise * noise).clamp_(1, 5) * clicked_f).to(torch.int8)
        # The step's quality: the mean enjoyment (rating - 1) / 4 of what was clicked, 0 without a click.
        n_clicks = clicked_f.sum(1)
        quality = (clicked_f * (rating.float() - 1)).sum(1) / (4 * n_clicks.clamp(min=1))

        examined_f = examined.float()
        boredom = (examined_f * item_satiation).sum(1) / examined_f.sum(1)
        exposure = torch.bmm((examined_f * (0.2 + 0.8 * clicked_f * watch))[:, None, :], weights)[:, 0]
        self.satiation = (1 - c.satiation_decay) * self.satiation + c.satiation_rate * (
            1 - self.satiation) * exposure.clamp(max=1.0)
        consumed = torch.bmm((clicked_f * watch)[:, None, :], feats)[:, 0]
        self.interest = torch.nn.functional.normalize(self.interest + c.interest_drift * consumed, dim=1)
        familiar = (1 - c.familiarity_rate) * self.familiar + c.familiarity_rate * torch.nn.functional.normalize(consumed, dim=1)
        self.familiar = torch.where(clicked.any(1, keepdim=True), torch.nn.functional.normalize(familiar, dim=1), self.familiar)
        (self.recent_clicks,) = prepend_clicks(self.recent_clicks, slates, clicked)
        return examined, clicked, watch, liked, rating, distance, quality, boredom, u[:, 4 * K:]

    def _compliance(self, rows: torch.Tensor, slates: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """How well the slates of users ``rows`` follow their instruction in force."""
        genres = lookup(self.catalog.genres, slates)  # [R, K, G]
        return instruction_compliance(self.instruction.select(rows), genres, distance > 1.0, self.config.more_share)

    def _voice(self, speaks: torch.Tensor) -> Instruction:
        """Form the structured instruction of users who speak, and put it in force."""
        c, B, G = self.config, self.n_users, self.catalog.n_genres
        voiced = Instruction.none(B, G, self.device)
        if not bool(speaks.any()):
            return voiced
        rows = speaks.nonzero().flatten()
        satiation = self.satiation[rows]
        top_sat, top_genre = satiation.max(1)
        less = torch.nn.functional.one_hot(top_genre, G).bool() & (top_sat > c.instruction_satiation)[:, None]
        appeal = self.interest[rows] @ self._genre_centroids.T - 1.5 * satiation
        more = torch.nn.functional.one_hot(appeal.masked_fill(less, -torch.inf).argmax(1), G).bool()
        seeking = self.novelty_seeking[rows]
        novelty = torch.where(seeking > 0.4, 1, torch.where(seeking < -0.4, -1, 0)).to(torch.int8)
        voiced.active[rows], voiced.more[rows], voiced.less[rows], voiced.novelty[rows] = True, more, less, novelty
        ins = self.instruction
        ins.active[rows], ins.more[rows], ins.less[rows], ins.novelty[rows] = True, more, less, novelty
        self.instruction_steps_left[rows] = c.instruction_steps
        return voiced

    def _phrase_codes(self, voiced: Instruction) -> torch.Tensor:
        """The code of each voiced instruction's sentence ``[B]`` (int32, -1 when none): its
        ``more`` and ``less`` genres (``_voice`` puts at most one in each; -1 when empty),
        novelty and phrasing, as ``fused_step.c`` gives it."""
        if not bool(voiced.active.any()):  # most steps of a small batch
            return torch.full((self.n_users,), -1, dtype=torch.int32, device=self.device)
        G = self.catalog.n_genres
        more = torch.where(voiced.more.any(1), voiced.more.int().argmax(1), -1)
        less = torch.where(voiced.less.any(1), voiced.less.int().argmax(1), -1)
        phrasing = rng.bits(self.key, self.counter, S_PHRASE, 1)[:, 0] % 3
        code = ((more + 1) * (G + 1) + less + 1) * 9 + (voiced.novelty.long() + 1) * 3 + phrasing
        return torch.where(voiced.active, code, -1).to(torch.int32)

    def _render(self, phrase: torch.Tensor) -> list[str | None]:
        """The sentences of the phrase codes ``[B]``, each rendered once in the simulator's
        life and then looked up by a binary search over the codes met so far (at
        B = 16,384 a tenth of the users may speak, a few hundred distinct sentences)."""
        phrase = phrase.cpu().numpy()
        speakers = np.flatnonzero(phrase >= 0)
        if len(speakers) == 0:
            return [None] * self.n_users
        spoken = phrase[speakers]
        at = np.searchsorted(self._phrase_codes_met, spoken)
        known = self._phrase_codes_met[at.clip(max=len(self._phrase_codes_met) - 1)] == spoken
        if not known.all():
            new = np.unique(spoken[~known])
            codes = np.concatenate([self._phrase_codes_met, new])
            rendered = np.empty(len(new), dtype=object)
            rendered[:] = [self._sentence(code) for code in new.tolist()]
            sentences = np.concatenate([self._sentences_met, rendered])
            order = np.argsort(codes)
            self._phrase_codes_met, self._sentences_met = codes[order], sentences[order]
            at = np.searchsorted(self._phrase_codes_met, spoken)
        text = np.full(self.n_users, None, dtype=object)
        text[speakers] = self._sentences_met[at]
        return text.tolist()

    def _sentence(self, code: int) -> str:
        """The sentence of phrase code ``code`` (see :meth:`_phrase_codes`)."""
        names, G = self.catalog.genre_names, self.catalog.n_genres
        genres, rest = divmod(code, 9)
        more, less = divmod(genres, G + 1)
        return render_instruction(
            [names[more - 1]] if more else [], [names[less - 1]] if less else [], rest // 3 - 1, rest % 3)

    def _leave(self, leaves: torch.Tensor, u_return: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decide who returns and after how long; start the next session of those who do."""
        c = self.config
        gap = torch.where(leaves, torch.inf, 0.0)
        if not bool(leaves.any()):
            return torch.zeros_like(leaves), gap
        p_return = torch.sigmoid(c.return_base + c.return_mindset * (self.session_memory - 0.5)
                                 + torch.log(self.activity))
        returned = leaves & (u_return < p_return)
        mean_gap = c.gap_days / (self.activity * (0.5 + self.session_memory))
        u_gap = rng.uniform(self.key, self.counter, S_GAP, 1)[:, 0]
        gap = torch.where(returned, -mean_gap * torch.log(u_gap), gap)
        self.churned |= leaves & ~returned
        if bool(returned.any()):
            slots = returned.nonzero().flatten()
            recovery = torch.exp(-gap[slots] / c.satiation_recovery_days)[:, None]
            self.satiation[slots] *= recovery
            # The mindset regresses towards the baseline over the break.
            self.satisfaction[slots] = 0.5 * self.satisfaction[slots] + 0.5 * c.initial_mindset
            self.session_index[slots] += 1
            self.session_step[slots] = 0
            self._clear_instruction(slots)
            self._new_session_propensity(slots)
        return returned, gap

    def state_dict(self) -> dict:
        """The configuration as a plain dict (for run directories)."""
        return asdict(self.config)

