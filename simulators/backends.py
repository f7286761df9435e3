"""The two backends of :class:`~recoworld.simulators.statistical.StatisticalUsers`, chosen once.

A backend starts new users in slots and steps every user of a batch, over an explicit
:class:`~recoworld.kernels.users.UserState`:

- ``start(state, slots, keys, population, catalog)``: new users with random ``keys``,
  drawn from a :class:`~recoworld.simulators.population.Population`, in ``slots``;
- ``step(state, slates, idle) -> Reactions``: one step of every user for valid
  ``slates``, the state updated; a backend that sets ``holds_idle`` skips the slots in
  ``idle`` (neither read nor written, zeros in their reactions).

:class:`TorchUsers` is the reference: torch ops on any device, following
:mod:`recoworld.simulators.equations`. :class:`~recoworld.kernels.users.UsersKernel` is its
fused C port for CPU. :func:`users_backend` picks one by name (``"auto"``: C on CPU where
the kernels run and handle the sizes, torch otherwise; see :func:`fitting_choice` and
:func:`recoworld.kernels.build.choose`); nothing else asks which. A backend's ``name``
records the kernel that ran.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Protocol

import torch

from recoworld import rng
from recoworld.catalog import lookup
from recoworld.history import prepend_clicks
from recoworld.kernels import build
from recoworld.kernels.users import ItemTables, Reactions, UserState, UsersKernel, parameters
from recoworld.simulators import equations
from recoworld.simulators.phrasing import S_PHRASE, phrase_codes, voice
from recoworld.simulators.user_state import (HISTORY, S_GAP, S_SESSION, S_STEP, new_session, remember_watched,
                                              sign_up_draw, start_users)

KERNELS = build.KERNELS
USERS_KERNEL, WORLD_KERNEL = "users_step.c", "world_step.c"  # the C kernels of the users and of the envs' bookkeeping
STREAMS = {"step": S_STEP, "gap": S_GAP, "session": S_SESSION, "phrase": S_PHRASE}
#: ``utility(slates, features, genre_weights) -> (v, item_satiation, distance)``, each ``[B, K]``.
Utility = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class UsersBackend(Protocol):
    """What :class:`~recoworld.simulators.statistical.StatisticalUsers` asks of a backend."""

    holds_idle: bool
    name: str  # the kernel: "torch" or "c"

    def start(self, state: UserState, slots: torch.Tensor, keys: torch.Tensor, population, catalog) -> None: ...

    def step(self, state: UserState, slates: torch.Tensor, idle: torch.Tensor | None) -> Reactions: ...


def users_backend(kernel: str, tables: ItemTables, config, utility: Utility, device: torch.device,
                  custom_utility: bool = False) -> UsersBackend:
    """The backend for the choice ``kernel`` (one of :data:`KERNELS`) for users of ``config``.

    ``utility`` is the users' utility, which the torch backend calls; ``custom_utility``
    says it is not the statistical users' own, which the C kernel cannot follow (``"auto"``
    then runs torch)."""
    D, G = tables.features.shape[1], tables.genres.shape[1]
    kernel = fitting_choice(kernel, USERS_KERNEL, {"D": ("the catalog's feature_dim", D),
                                                   "G": ("the catalog's n_genres", G), "H": ("the history", HISTORY)})
    kernel = build.choose(kernel, device, follows_reference=not custom_utility)
    if kernel == "torch":
        return TorchUsers(tables, config, utility)
    if device.type != "cpu":
        raise ValueError(f"kernel='c' runs on CPU, but device={str(device)!r}; use kernel='torch' or 'auto'")
    if custom_utility:
        raise ValueError("kernel='c' computes the utility of StatisticalUsers, which this simulator changes; "
                         "use kernel='torch' or 'auto'")
    return UsersKernel(tables, parameters(config), STREAMS)


@functools.cache
def c_limits(source: str) -> dict[str, int]:
    """The largest sizes the C kernel ``source`` (e.g. ``"users_step.c"``) handles, by the letter
    it names them with (``K`` slate size, ``D`` features, ``G`` genres, ``H`` history): its
    ``#define MAX_<letter> <n>`` lines, read from the source, where they are defined."""
    text = build.source(source).read_text()
    return {letter: int(n) for letter, n in re.findall(r"^#define MAX_([A-Z]) (\d+)$", text, re.MULTILINE)}


def fitting_choice(kernel: str, source: str, sizes: dict[str, tuple[str, int]]) -> str:
    """The choice ``kernel`` for work of ``sizes`` that the C kernel ``source`` would do:
    ``"auto"`` becomes ``"torch"`` where a size exceeds the kernel's bound
    (:func:`beyond_c`), ``"c"`` raises ``ValueError`` naming it; otherwise ``kernel`` as it
    is, for :func:`recoworld.kernels.build.choose`. Asked where the sizes are first known,
    when a simulator or env is built, not at a step."""
    beyond = beyond_c(source, sizes) if kernel in ("auto", "c") else None
    if beyond is None:
        return kernel
    if kernel == "auto":
        return "torch"
    raise ValueError(f"kernel='c': {beyond}; use kernel='torch' (or 'auto', which runs torch for sizes beyond the C "
                     "kernel's)")


def beyond_c(source: str, sizes: dict[str, tuple[str, int]]) -> str | None:
    """Which of ``sizes`` (by the letter of the C kernel's bound: the size's name and value,
    ``{"K": ("slate_size", 300)}``) the C kernel ``source`` cannot handle (:func:`c_limits`),
    said in words, or ``None`` where it handles them all."""
    limits = c_limits(source)
    for letter, (name, value) in sizes.items():
        if value > limits[letter]:
            return f"the C kernel ({source}) handles {name} up to {limits[letter]}, got {value}"
    return None


class TorchUsers:
    """The reference step of statistical users in torch ops, on any device (equations in
    :mod:`recoworld.simulators.statistical`'s docstring and
    :mod:`recoworld.simulators.equations`)."""

    holds_idle = False
    name = "torch"

    def __init__(self, tables: ItemTables, config, utility: Utility):
        self.tables, self.config, self.utility = tables, config, utility

    def start(self, state: UserState, slots: torch.Tensor, keys: torch.Tensor, population, catalog) -> None:
        traits = population.sample(keys, catalog)
        start_users(state, slots, keys, traits, self.config.initial_mindset, self.config.novelty_session_spread)

    def step(self, state: UserState, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Reactions:
        c, s = self.config, state
        examined, clicked, watch, liked, rating, distance, enjoyment, boredom, u_user = self._react(s, slates)
        u_voice, u_leave, u_return = u_user.unbind(1)

        in_force = s.instruction.active.clone()
        # Every row's compliance, kept where an instruction is in force: asking who is in force
        # would read back to the host (a wait for the device on a GPU) at every step. A row's
        # compliance is its own (means along the row), the same bits in any batch.
        genres = lookup(self.tables.genres, slates)  # [B, K, G]
        compliance = torch.where(in_force, equations.instruction_compliance(s.instruction, genres, distance > 1.0,
                                                                            c.more_share), 0.0)
        quality = equations.step_quality(enjoyment, compliance, in_force, c)
        s.satisfaction = mindset = equations.mindset_update(s.satisfaction, quality, c)
        s.session_step += 1
        # How the session went, for the return decision: its mean, its peak and its end.
        s.session_mean, s.session_peak, s.session_memory = equations.session_memory_update(
            s.session_mean, s.session_peak, quality, s.session_step, c)
        sign_up = sign_up_draw(s.key) if c.first_session_spread else None
        hazard = equations.leave_hazard(s.satisfaction, boredom, s.session_step, s.patience, s.session_index, c,
                                        sign_up)
        s.instruction_steps_left, s.instruction.active = equations.instruction_countdown(
            s.instruction_steps_left, in_force, s.instruction.active)
        quick, u_leave = equations.quick_visit(s.session_index, s.session_step, u_leave, c)
        speaks, leaves = equations.voice_or_leave(hazard, s.instruction.active, u_voice, u_leave, c, quick)
        voiced = voice(s, self.tables, speaks, c.instruction_satiation, c.instruction_steps)
        returned, gap = self._leave(s, leaves, u_return)
        s.counter += 1
        # The phrasing is drawn after the step's count, as the C kernel draws it.
        return Reactions(examined, clicked, watch, liked, rating, in_force, leaves, returned, compliance, hazard, gap,
                         voiced, phrase_codes(voiced, s.key, s.counter), mindset)

    def _react(self, s: UserState, slates: torch.Tensor):
        """The per-item part of a step: the reactions ``[B, K]`` (cascade examination,
        clicks, watch, likes, ratings), distance ``[B, K]``, the step's enjoyment and boredom
        ``[B]``, its per-user uniforms ``[B, 3]``, and the genre and item satiation,
        interest, familiarity and click-history updates."""
        c, t = self.config, self.tables
        B, K = slates.shape
        feats, weights = lookup(t.features, slates), lookup(t.genre_weights, slates)

        # All of this step's draws in one hash pass: 4 per position, 3 per user.
        u = rng.uniform(s.key, s.counter, S_STEP, 4 * K + 3)
        u_click, u_continue, u_watch, u_like = u[:, : 4 * K].view(B, 4, K).unbind(1)

        v, genre_satiation, distance = self.utility(slates, feats, weights)
        click_draw = u_click < torch.sigmoid(v)
        go_on = u_continue < s.patience[:, None] * torch.where(click_draw, c.continue_after_click, 1.0)
        go_on[:, -1] = True  # shifted out below: examination of k+1 depends on positions <= k
        examined = torch.cumprod(go_on.roll(1, 1).to(torch.uint8), 1).bool()
        clicked = click_draw & examined
        clicked_f = clicked.float()
        # One logistic noise (logit of a uniform) drives both watch and rating: a user who
        # watched more of an item than its utility predicts also rates it higher.
        noise = torch.logit(u_watch)
        watch = torch.sigmoid(v + 1.0 + 0.45 * noise) * clicked_f
        liked = clicked & (u_like < torch.sigmoid(2.0 * v - 1.0))
        level = c.rating_center + c.rating_slope * v + s.rating_bias[:, None]
        if c.rating_quality:
            level = level + c.rating_quality * lookup(t.quality, slates)
        # Chosen, not multiplied by the click: the level of an item the user cannot click (one
        # watched, rewatch off: utility -inf) is NaN where rating_slope is 0, and NaN times 0
        # would reach the int8 cast, whose result C and C++ leave undefined.
        rating = torch.where(clicked, torch.round(level + c.rating_noise * noise).clamp_(1, 5), 0.0).to(torch.int8)
        enjoyment = equations.step_enjoyment(clicked_f, rating)

        examined_f = examined.float()
        boredom = equations.boredom(examined_f, genre_satiation)
        exposure = equations.genre_exposure(examined_f, clicked_f, watch, weights)
        s.satiation = equations.satiation_build_up(s.satiation, exposure, c)
        consumed = equations.consumption(clicked_f, watch, feats)
        s.interest = equations.interest_drift(s.interest, consumed, c)
        s.familiar = equations.familiarity_update(s.familiar, consumed, clicked, c)
        # Each clicked film's satiation builds on its level before the step; older levels fade.
        levels = equations.item_satiation_build_up(
            equations.item_satiation(slates, s.recent_clicks, s.recent_satiation), watch)
        s.recent_clicks, s.recent_satiation = prepend_clicks(
            s.recent_clicks, slates, clicked, (equations.item_satiation_decay(s.recent_satiation, c), levels))
        if c.theme_weight != 0.0:
            s.theme = equations.session_theme(s.theme, slates, clicked, t.genres)
        if s.watched.shape[1]:
            remember_watched(s.watched, slates, clicked)
        return examined, clicked, watch, liked, rating, distance, enjoyment, boredom, u[:, 4 * K:]

    def _leave(self, s: UserState, leaves: torch.Tensor, u_return: torch.Tensor):
        """Decide who of the leavers returns and after how long; start the next session of
        those who do. Every row is computed and the returners' kept (``torch.where``): asking
        who leaves or returns would read back to the host (a wait for the device on a GPU)
        at every step. The rows' equations are elementwise, the same bits in any batch."""
        c = self.config
        u_gap = rng.uniform(s.key, s.counter, S_GAP, 1)[:, 0]
        returned, gap = equations.return_decision(leaves, s.session_memory, s.activity, s.session_step, s.session_index,
                                                   u_return, u_gap, c)
        s.churned |= leaves & ~returned
        back = returned[:, None]
        s.satiation.copy_(torch.where(back, equations.satiation_recovery(s.satiation, gap, c), s.satiation))
        s.recent_satiation.copy_(torch.where(back, equations.item_satiation_recovery(s.recent_satiation, gap, c),
                                             s.recent_satiation))
        # A new tensor, not written into the old: the step's response keeps the mindset at leaving.
        s.satisfaction = torch.where(returned, equations.mindset_after_break(s.satisfaction, c.initial_mindset),
                                     s.satisfaction)
        s.session_index += returned
        s.session_step.masked_fill_(returned, 0)
        new_session(s, returned, c.novelty_session_spread)
        return returned, gap
