"""The C twin of :class:`~recoworld.envs.world.SlateWorld`'s per-step bookkeeping (``kernel="c"``).

``world_step.c`` ships with the package and is built on first use by
:mod:`recoworld.native`. It updates the observable history, the latest instruction, the
session counters and the step count, and draws the next candidates, in one pass per user;
and it turns the agents' slates of candidate indices into item ids while checking them.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch

from recoworld import native, rng
from recoworld.types import Response

SOURCE = Path(__file__).with_name("world_step.c")

_p, _i64, _u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32
# Mirrors `WorldStep` in world_step.c, field for field.
WorldStep = native.struct_of("WorldStep", {
    **dict.fromkeys(["K", "H", "G", "C", "n_items", "n_strides"], _i64),
    **dict.fromkeys(["slates", "clicked", "liked", "voiced", "voiced_more", "voiced_less", "left_session", "idle",
                     "watch", "voiced_novelty", "history", "feedback", "active", "more", "less", "novelty",
                     "instruction_age", "session_index", "session_step", "step_count", "key"], _p),
    "candidate_stream": _u32,
    **dict.fromkeys(["strides", "draw", "history_obs", "candidates_obs", "feedback_obs", "instruction_obs",
                     "session_obs", "totals"], _p),
})


def library() -> ctypes.CDLL:
    """The compiled bookkeeping, built into the cache on first use."""
    lib = native.library(SOURCE)
    lib.recoworld_world_step.argtypes = [_i64, _i64, ctypes.POINTER(WorldStep)]
    lib.recoworld_world_step.restype = ctypes.c_int
    lib.recoworld_take_slates.argtypes = [_i64] * 5 + [_p] * 4
    lib.recoworld_take_slates.restype = _i64
    lib.recoworld_world_start.argtypes = [_i64, _i64, _p, _p, ctypes.POINTER(WorldStep)]
    lib.recoworld_world_start.restype = None
    return lib


def take_slates(positions, world) -> torch.Tensor | None:
    """Item ids ``[B, K]`` of ``world``'s candidates at the indices ``positions`` (an int64
    array), or ``None`` if some row is not ``K`` distinct indices in range (the caller explains)."""
    positions = torch.as_tensor(positions)
    B, C = world.n_users, world.num_candidates
    if positions.dtype != torch.int64 or positions.ndim != 2 or positions.shape[0] != B:
        return None
    positions = positions.contiguous()
    slates = torch.empty(B, positions.shape[1], dtype=torch.int64)
    lib, ptr = library(), native.pointer
    pointers = [ptr(t) for t in (positions, world.candidate_draw, world._offsets, slates)]
    bad = native.run_chunks(lambda begin, end: lib.recoworld_take_slates(
        begin, end, positions.shape[1], C, world.catalog.n_items, *pointers), B)
    return slates if all(row < 0 for row in bad) else None


def step(world, slates: torch.Tensor, response: Response, idle: torch.Tensor | None, stream: int
         ) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """One step of ``world``'s bookkeeping (a CPU :class:`~recoworld.envs.world.SlateWorld`),
    in place. Returns the observation of the state it leaves (but the candidate features)
    and the slates' totals ``[B, 3]``: clicks, watch time and likes (zeros where idle)."""
    B, K = slates.shape
    C, voiced = world.num_candidates, response.instruction
    observed = {"candidate_ids": torch.empty(B, C, dtype=torch.int64),
                "history_items": torch.empty_like(world.history_items),
                "history_feedback": torch.empty_like(world.history_feedback),
                "instruction": torch.empty(B, 2 * world.catalog.n_genres + 1),
                "session": torch.empty(B, 3)}
    totals = torch.empty(B, 3)
    # A plug-in simulator's response may come in other dtypes or layouts: no-ops for ours.
    flag, number = (lambda t: t.to(torch.bool).contiguous()), (lambda t: t.to(torch.float32).contiguous())
    tensors = {
        "slates": slates.contiguous(), "clicked": flag(response.clicked), "liked": flag(response.liked),
        "voiced": flag(voiced.active), "voiced_more": flag(voiced.more), "voiced_less": flag(voiced.less),
        "left_session": flag(response.left_session), "watch": number(response.watch_fraction),
        "voiced_novelty": voiced.novelty.to(torch.int8).contiguous(), "history_obs": observed["history_items"],
        "candidates_obs": observed["candidate_ids"], "feedback_obs": observed["history_feedback"],
        "instruction_obs": observed["instruction"], "session_obs": observed["session"], "totals": totals,
    }
    frame = _frame(world, K=K, idle=idle, candidate_stream=rng.mix_int(stream), **tensors)
    lib = library()
    if any(native.run_chunks(lambda begin, end: lib.recoworld_world_step(begin, end, ctypes.byref(frame)), B)):
        raise ValueError(f"the C bookkeeping handles slates of up to 256 items, got {K}: use kernel='torch'")
    world._candidates = None  # spelled out afresh from the new draws when asked for
    return {name: tensor.numpy() for name, tensor in observed.items()}, totals


def start(world, slots: torch.Tensor, keys: torch.Tensor) -> None:
    """Start an episode in ``world``'s ``slots`` (int64 ``[n]``) with random ``keys`` (int32
    ``[n]``), in place: no history, no instruction, counters at zero (``SlateWorld.restart``)."""
    slots, keys = slots.to(torch.int64).contiguous(), keys.to(torch.int32).contiguous()
    frame, lib = _frame(world), library()
    native.run_chunks(lambda begin, end: lib.recoworld_world_start(
        begin, end, native.pointer(slots), native.pointer(keys), ctypes.byref(frame)), len(slots))


def _frame(world, K: int = 0, idle: torch.Tensor | None = None, candidate_stream: int = 0,
           **tensors: torch.Tensor) -> WorldStep:
    """The kernel's view of ``world``'s state, with ``tensors`` (a step's slates, response
    and observation)."""
    ins = world.instruction
    tensors |= {
        "history": world.history_items, "feedback": world.history_feedback, "active": ins.active,
        "more": ins.more, "less": ins.less, "novelty": ins.novelty, "instruction_age": world.instruction_age,
        "session_index": world.session_index, "session_step": world.session_step,
        "step_count": world.step_count, "key": world._key, "strides": world._strides,
        "draw": world.candidate_draw,
    }
    return WorldStep(K=K, H=world.history_length, G=world.catalog.n_genres, C=world.num_candidates,
                     n_items=world.catalog.n_items, n_strides=len(world._offsets), candidate_stream=candidate_stream,
                     idle=None if idle is None else native.pointer(idle),
                     **{name: native.pointer(t) for name, t in tensors.items()})
