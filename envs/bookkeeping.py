"""What an env keeps of its users between steps, and the two backends that keep it.

The state is a :class:`~recoworld.kernels.world.WorldState`: per user, the episode's random
key and step count, the observable click history (newest first, with watch fraction and
like), the latest instruction and its age, the session counters and the draw of the
current candidates. A backend, chosen once by :func:`bookkeeping_backend`, does:

- ``start(state, slots, keys)``: an episode starts in ``slots``: no history, no
  instruction, counters at zero;
- ``step(state, slates, response, idle, starts=None) -> (observed, totals)``: the history,
  instruction and session counters after a response, the step count, and the next
  candidates; users in ``idle`` change nothing but their candidates. ``starts``, the
  ``(slots, keys)`` of episodes that begin at this step (an autoreset's), are started first,
  as ``start`` would (the C kernel does it in the same pass). A backend may return the
  observation it wrote on the way and the slates' totals (clicks, watch time, likes), or
  ``None`` for either;
- ``take_slates(state, positions)``: item ids of valid candidate indices in one pass, or
  ``None`` (the caller then checks and takes them).

:class:`TorchBookkeeping` is the reference; :class:`~recoworld.kernels.world.WorldKernel`
does the same in C, value for value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from recoworld.history import prepend_clicks
from recoworld.kernels import build
from recoworld.kernels.world import WorldKernel, WorldState
from recoworld.simulators.backends import WORLD_KERNEL, fitting_choice
from recoworld.types import Instruction, Response
from recoworld.envs.candidates import S_CANDIDATES, CandidateSets

KERNELS = build.KERNELS


class Bookkeeping(Protocol):
    def start(self, state: WorldState, slots: torch.Tensor, keys: torch.Tensor) -> None: ...

    def step(self, state: WorldState, slates: torch.Tensor, response: Response, idle: torch.Tensor | None,
             starts: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[dict[str, np.ndarray] | None, torch.Tensor | None]: ...

    def take_slates(self, state: WorldState, positions) -> torch.Tensor | None: ...

    name: str  # the kernel: "torch" or "c"


def world_state(n_users: int, history_length: int, n_genres: int, device) -> WorldState:
    """The state of ``n_users`` slots before their first episode."""
    zeros = lambda *shape, **kw: torch.zeros(*shape, device=device, **kw)  # noqa: E731
    return WorldState(
        key=zeros(n_users, dtype=torch.int64), step_count=zeros(n_users, dtype=torch.int64),
        history_items=torch.full((n_users, history_length), -1, dtype=torch.int64, device=device),
        history_feedback=zeros(n_users, history_length, 2), instruction=Instruction.none(n_users, n_genres, device),
        instruction_age=zeros(n_users), session_index=zeros(n_users), session_step=zeros(n_users),
        candidate_draw=zeros(n_users, 2, dtype=torch.int64),
    )


def bookkeeping_backend(kernel: str, candidates: CandidateSets, n_genres: int, device: torch.device,
                        slate_size: int, features: torch.Tensor | None = None,
                        empty: Callable[[str], np.ndarray] | None = None) -> Bookkeeping:
    """The bookkeeping of slates of ``slate_size`` items for the choice ``kernel``: ``"torch"``
    (any device), ``"c"`` (CPU, slates it handles) or ``"auto"`` (C on CPU where the kernels
    run and handle the slates, else torch; see
    :func:`~recoworld.simulators.backends.fitting_choice` and
    :func:`recoworld.kernels.build.choose`). The C kernel also copies the candidates'
    ``features`` into the observation when given, into arrays from ``empty(name)``."""
    kernel = build.choose(fitting_choice(kernel, WORLD_KERNEL, {"K": ("slate_size", slate_size)}), device)
    if kernel == "torch":
        return TorchBookkeeping(candidates)
    if device.type != "cpu":
        raise ValueError(f"kernel='c' runs on CPU, but the simulator is on {str(device)!r}; "
                         "use kernel='torch' or 'auto'")
    return WorldKernel(candidates.table, n_genres, S_CANDIDATES, features, empty)


class TorchBookkeeping:
    """The reference bookkeeping, in torch ops on any device."""

    name = "torch"

    def __init__(self, candidates: CandidateSets):
        self.candidates = candidates

    def start(self, state: WorldState, slots: torch.Tensor, keys: torch.Tensor) -> None:
        state.key[slots] = keys
        state.step_count[slots] = 0
        state.history_items[slots] = -1
        state.history_feedback[slots] = 0.0
        ins = state.instruction
        for flags in (ins.active, ins.more, ins.less):
            flags[slots] = False
        ins.novelty[slots] = 0
        for counter in (state.instruction_age, state.session_index, state.session_step):
            counter[slots] = 0.0

    def take_slates(self, state: WorldState, positions) -> None:
        return None  # no fast path: the caller checks and takes

    def step(self, state: WorldState, slates: torch.Tensor, response: Response, idle: torch.Tensor | None,
             starts: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[None, None]:
        if starts is not None:
            self.start(state, *starts)
        s = state
        stepped = None if idle is None else ~idle
        clicked, voiced, new_session = response.clicked, response.instruction.active, response.left_session
        if stepped is not None:  # held slots change nothing
            clicked, voiced, new_session = clicked & stepped[:, None], voiced & stepped, new_session & stepped
        s.step_count += 1 if stepped is None else stepped.long()
        feedback = torch.stack([response.watch_fraction, response.liked.float()], -1)
        s.history_items, s.history_feedback = prepend_clicks(
            s.history_items, slates, clicked, (s.history_feedback, feedback))

        aging = (s.instruction_age > 0) if stepped is None else (s.instruction_age > 0) & stepped
        s.instruction_age = torch.where(voiced, 1.0, s.instruction_age + aging.float())
        ins, heard = s.instruction, response.instruction
        ins.more = torch.where(voiced[:, None], heard.more, ins.more)
        ins.less = torch.where(voiced[:, None], heard.less, ins.less)
        ins.novelty = torch.where(voiced, heard.novelty, ins.novelty)
        ins.active = ins.active | voiced
        s.session_index += new_session.float()
        advance = 1.0 if stepped is None else stepped.float()
        s.session_step = torch.where(new_session, 0.0, s.session_step + advance)
        self.candidates.draw(s)
        return None, None
