"""The env's per-step bookkeeping state, and its fused C twin (``world_step.c``).

:class:`WorldState` holds what an env knows of each of its ``B`` users between steps: the
random key of the episode, the step count, the observable click history, the latest
instruction and the session counters, and the draw of the current candidates.
:class:`CandidateOffsets` is the table the candidates are spelled out from. Both are the
contract of the env's two bookkeeping backends (:mod:`recoworld.envs.bookkeeping`): the
torch reference and :class:`WorldKernel`, which does a step's bookkeeping, the next
candidates and the observation in one pass per user, and turns the agents' slates of
candidate indices into item ids while checking them.

The kernel is built on first use by :mod:`recoworld.kernels.build`; :class:`WorldStep`
mirrors its struct, and the loader checks it against the kernel's own layout.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import torch

from recoworld.kernels import build
from recoworld.rng import mix_int
from recoworld.types import Instruction, Response

SOURCE = build.source("world_step.c")


@dataclass
class WorldState:
    """The env's view of ``B`` users (``[B, ...]``): the episode's random ``key`` (int64),
    ``step_count`` (int64), ``history_items`` ``[B, H]`` (int64, -1 when empty) with
    ``history_feedback`` ``[B, H, 2]`` (watch fraction, like), the latest ``instruction``
    and its ``instruction_age`` (steps since voiced, 0 when none), ``session_index`` and
    ``session_step`` (float), and ``candidate_draw`` ``[B, 2]`` (int64: start item and row
    of the offsets table of each user's current candidates)."""

    key: torch.Tensor
    step_count: torch.Tensor
    history_items: torch.Tensor
    history_feedback: torch.Tensor
    instruction: Instruction
    instruction_age: torch.Tensor
    session_index: torch.Tensor
    session_step: torch.Tensor
    candidate_draw: torch.Tensor


@dataclass
class CandidateOffsets:
    """Candidates are ``(a + offsets[r, j]) mod n_items``: ``offsets`` ``[S, C]`` holds
    ``j s mod n_items`` for each of ``S`` strides ``s`` (``strides`` ``[S]``)."""

    offsets: torch.Tensor
    strides: torch.Tensor
    n_items: int


_p, _i64, _u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32
STEP_INPUTS = ("slates", "clicked", "liked", "voiced", "voiced_more", "voiced_less", "left_session", "idle", "watch",
               "voiced_novelty")
STATE = ("history", "feedback", "active", "more", "less", "novelty", "instruction_age", "session_index",
         "session_step", "step_count", "key")
OBSERVATION = ("history_obs", "candidates_obs", "feedback_obs", "instruction_obs", "session_obs", "totals")
# The struct's pointers that outlast a call (the state and the candidates' tables), and, by
# the same names in the same order, where they are read (attrgetter: one C call); the
# others are a step's own: its inputs, observation and starts.
LASTING = (*STATE, "draw", "offsets", "features")
_STATE = attrgetter("history_items", "history_feedback", "instruction.active", "instruction.more",
                    "instruction.less", "instruction.novelty", "instruction_age", "session_index", "session_step",
                    "step_count", "key", "candidate_draw")
# Mirrors `WorldStep` in world_step.c, field for field (checked when the kernel loads).
WorldStep = build.struct_of("WorldStep", {
    **dict.fromkeys(["K", "H", "G", "C", "n_items", "n_strides"], _i64),
    **dict.fromkeys(STEP_INPUTS + STATE, _p), "candidate_stream": _u32, "offsets": _p, "draw": _p,
    **dict.fromkeys(OBSERVATION, _p), "D": _i64, "features": _p, "features_obs": _p, "starting": _p,
    "start_keys": _p,
})
# Mirrors `SlateChoice` in world_step.c.
SlateChoice = build.struct_of("SlateChoice", {**dict.fromkeys(["K", "C", "n_items"], _i64),
                                              **dict.fromkeys(["positions", "draw", "offsets", "slates"], _p)})
#: The observation's arrays the kernel writes, by their names in the observation.
OBSERVED = {"candidate_ids": "candidates_obs", "history_items": "history_obs", "history_feedback": "feedback_obs",
            "instruction": "instruction_obs", "session": "session_obs", "candidate_features": "features_obs"}


def library() -> ctypes.CDLL:
    """The compiled bookkeeping, built into the cache on first use, its struct checked."""
    lib = build.load(SOURCE, (WorldStep, SlateChoice))
    lib.recoworld_world_start.argtypes = [_i64, _i64, _p, _p, ctypes.POINTER(WorldStep)]
    lib.recoworld_world_start.restype = None
    return lib


@dataclass
class WorldKernel(build.CompiledKernel):
    """The bookkeeping of ``B`` users over CPU tensors, with ``n_genres`` genres, candidates
    from ``candidates`` and drawn on the random stream ``candidate_stream``.

    ``features`` (the catalog's ``[N, D]`` float32 features, or ``None``): the observation
    holds the candidates' features, copied in the same pass. ``empty(name)``, when given,
    hands out the array the observation's ``name`` is written into (e.g. one the agent has
    let go of, see ``recoworld.envs.recycled``); otherwise each step writes new arrays."""

    candidates: CandidateOffsets
    n_genres: int
    candidate_stream: int
    features: torch.Tensor | None = None
    empty: Callable[[str], np.ndarray] | None = None
    name = "c"

    library = staticmethod(library)

    def __post_init__(self):
        super().__post_init__()
        self._stream_base = mix_int(self.candidate_stream)  # hashed once: the kernel takes it at every step

    def take_slates(self, state: WorldState, positions) -> torch.Tensor | None:
        """Item ids ``[B, K]`` of the current candidates at the indices ``positions`` (an
        int64 array), or ``None`` if some row is not ``K`` distinct indices in range (the
        caller explains)."""
        positions = torch.as_tensor(positions)
        B, C = state.candidate_draw.shape[0], self.candidates.offsets.shape[1]
        if positions.dtype != torch.int64 or positions.ndim != 2 or positions.shape[0] != B:
            return None
        positions = positions.contiguous()
        slates = torch.empty(B, positions.shape[1], dtype=torch.int64)
        choice = SlateChoice(K=positions.shape[1], C=C, n_items=self.candidates.n_items, **{
            name: build.pointer(t) for name, t in (("positions", positions), ("draw", state.candidate_draw),
                                                   ("offsets", self.candidates.offsets), ("slates", slates))})
        bad = build.run_parallel(self._lib.recoworld_take_slates, choice, B)
        return slates if all(row < 0 for row in bad) else None

    def step(self, state: WorldState, slates: torch.Tensor, response: Response, idle: torch.Tensor | None,
             starts: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """One step of the bookkeeping, in place, and the next candidates, after the episodes
        ``starts`` (``(slots, keys)``, as :meth:`start` takes them) begin, in the same pass.
        Returns the observation of the state it leaves (with the candidates' features when
        the kernel copies them) and the slates' totals ``[B, 3]``: clicks, watch time and
        likes (zeros where idle)."""
        B, K = slates.shape
        voiced = response.instruction
        observed = self._observation_arrays(state)
        history = observed["history_items"]
        if history.shape != tuple(state.history_items.shape) or len(history) != B:
            # The kernel writes the state's rows and history length into these arrays, which
            # the observer sized when the env was built: another size would write past them.
            raise ValueError(f"the world's state holds a history of shape {tuple(state.history_items.shape)}, but "
                             f"the observation arrays hold {history.shape} for slates of {B} users: the state was "
                             "replaced by one of another size; build the env again for another history length")
        totals = torch.empty(B, 3)
        flag, number = (lambda t: _held_as(t, torch.bool)), (lambda t: _held_as(t, torch.float32))
        tensors = {
            "slates": slates.contiguous(), "clicked": flag(response.clicked), "liked": flag(response.liked),
            "voiced": flag(voiced.active), "voiced_more": flag(voiced.more), "voiced_less": flag(voiced.less),
            "left_session": flag(response.left_session), "watch": number(response.watch_fraction),
            "voiced_novelty": _held_as(voiced.novelty, torch.int8), "totals": totals, "features_obs": None,
            **{OBSERVED[name]: torch.from_numpy(array) for name, array in observed.items()},
        }
        tensors["starting"], tensors["start_keys"] = (None, None) if starts is None else _per_user(B, *starts)
        # The frame of the previous step serves again where every lasting tensor reads as it
        # did then (see build.addresses): then only the step's own pointers change.
        lasting = self._lasting(state)
        key = [*build.addresses(lasting), *self._sizes(state)]
        frame = self._reuse_frame(key)
        if frame is None:
            frame = self._frame(state, K=K, idle=idle, stream=self._stream_base, lasting=lasting, **tensors)
        else:
            frame.K, frame.idle = K, build.pointer(idle)
            for name, tensor in tensors.items():
                setattr(frame, name, build.pointer(tensor))
        codes = build.run_parallel(self._lib.recoworld_world_step, frame, B)
        self._keep_frame(key, frame)
        if any(codes):
            raise ValueError(f"the C bookkeeping handles slates of up to 256 items, got {K}: use kernel='torch'")
        return observed, totals

    def _observation_arrays(self, state: WorldState) -> dict[str, np.ndarray]:
        """The arrays a step writes its observation into."""
        if self.empty is not None:
            names = OBSERVED if self.features is not None else list(OBSERVED)[:-1]
            return {name: self.empty(name) for name in names}
        (B, H), C, G = state.history_items.shape, self.candidates.offsets.shape[1], self.n_genres
        observed = {"candidate_ids": np.empty((B, C), np.int64), "history_items": np.empty((B, H), np.int64),
                    "history_feedback": np.empty((B, H, 2), np.float32),
                    "instruction": np.empty((B, 2 * G + 1), np.float32), "session": np.empty((B, 3), np.float32)}
        if self.features is not None:
            observed["candidate_features"] = np.empty((B, C, self.features.shape[1]), np.float32)
        return observed

    def start(self, state: WorldState, slots: torch.Tensor, keys: torch.Tensor) -> None:
        """Start an episode in ``slots`` (int64 ``[n]``) with random ``keys`` (int64 ``[n]``),
        in place: no history, no instruction, counters at zero."""
        slots, keys = slots.to(torch.int64).contiguous(), keys.to(torch.int64).contiguous()
        # Scattered rows of a reset, not a step's hot path: one pass on the caller's thread.
        self._lib.recoworld_world_start(0, len(slots), build.pointer(slots), build.pointer(keys),
                                        ctypes.byref(self._frame(state)))

    def _lasting(self, state: WorldState) -> tuple[torch.Tensor | None, ...]:
        """The tensors the kernel's view points to beyond a call, in the order of :data:`LASTING`."""
        return (*_STATE(state), self.candidates.offsets, self.features)

    def _sizes(self, state: WorldState) -> tuple[int, ...]:
        """The view's H, G, C, n_items, n_strides and D."""
        table = self.candidates
        return (state.history_items.shape[1], self.n_genres, table.offsets.shape[1], table.n_items, len(table.offsets),
                0 if self.features is None else self.features.shape[1])

    def _frame(self, state: WorldState, K: int = 0, idle: torch.Tensor | None = None, stream: int = 0,
               lasting: tuple[torch.Tensor | None, ...] | None = None, **tensors: torch.Tensor | None) -> WorldStep:
        """The kernel's view of ``state`` and the candidates (their tensors ``lasting``, read
        here when not given), with ``tensors`` (a step's slates, response and observation)."""
        lasting = self._lasting(state) if lasting is None else lasting
        H, G, C, n_items, n_strides, D = self._sizes(state)
        return WorldStep(K=K, H=H, G=G, C=C, n_items=n_items, n_strides=n_strides, candidate_stream=stream, D=D,
                         idle=build.pointer(idle), **{name: build.pointer(t) for name, t in zip(LASTING, lasting)},
                         **{name: build.pointer(t) for name, t in tensors.items()})


def _held_as(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as a contiguous ``dtype`` tensor for the kernel: itself where it is one
    already (our simulators' responses, at every step), a converted copy otherwise (a
    plug-in simulator's response may come in other dtypes or layouts). The test first, as
    ``.to(...).contiguous()`` costs time even where it changes nothing (benchmarks/RESULTS.md)."""
    return tensor if tensor.dtype == dtype and tensor.is_contiguous() else tensor.to(dtype).contiguous()


def _per_user(n_users: int, slots: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``slots`` as a mask ``[n_users]`` and ``keys`` at their slots of an ``[n_users]`` array
    (other entries unset), as the kernel reads a step's starts."""
    starting, start_keys = np.zeros(n_users, dtype=bool), np.empty(n_users, dtype=np.int64)
    slots = slots.numpy()  # numpy's scatter: a fraction of torch's index_put_ at this size
    starting[slots] = True
    start_keys[slots] = keys.numpy()
    return torch.from_numpy(starting), torch.from_numpy(start_keys)
