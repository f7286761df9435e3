"""The statistical users' state, and the fused C step that updates it (``users_step.c``).

:class:`UserState` holds every per-user tensor of a batch of statistical users and
:class:`ItemTables` the item tables their step reads; :class:`Reactions` is what one step
of the users gives back. They are the contract of both backends of
:class:`~recoworld.simulators.statistical.StatisticalUsers`: the torch reference and this
kernel, which walks each user's slate once with the item tables in cache instead of
materialising ``[B, K, D]`` gathers and dozens of ``[B, K]`` intermediates.

New users are started by the kernel too, in one pass each; for the synthetic population
(:class:`SyntheticDraw`, ``synthetic.h``) it draws their traits on the way, the same users as
the population's torch draw to rounding (anchor items equal, uniforms bit for bit).

The kernel is built on first use by :mod:`recoworld.kernels.build`; :class:`UserStep`,
:class:`Newcomers` and :class:`SyntheticLaw` mirror its structs, and the loader checks them
against the kernel's own layout.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass, field
from operator import attrgetter

import torch

from recoworld.kernels import build
from recoworld.rng import mix_int, weibull_mean_factor
from recoworld.types import Instruction

SOURCE = build.source("users_step.c")


@dataclass
class ItemTables:
    """The items as the users' step reads them, ``[N, ...]`` on the users' device.

    ``static_appeal`` is the utility's per-item constant (quality weight times quality,
    minus the click threshold), ``popularity_score`` the standardised log-popularity,
    ``genres`` the bool genre table, ``genre_centroids`` ``[G, D]`` where each genre sits in
    the interest space."""

    features: torch.Tensor
    genre_weights: torch.Tensor
    genres: torch.Tensor
    quality: torch.Tensor
    static_appeal: torch.Tensor
    popularity_score: torch.Tensor
    genre_centroids: torch.Tensor


@dataclass
class UserState:
    """Every per-user tensor of ``B`` statistical users (``[B, ...]``).

    Random key (int64) and step counter (int32); traits: ``interest`` and ``familiar``
    ``[B, D]``, ``patience``, ``novelty_trait``, ``novelty_seeking`` (this session's),
    ``activity``, ``popularity_bias``, ``rating_bias``, ``source_user`` (int64);
    dynamics: ``satiation`` ``[B, G]``, ``satisfaction`` (the mindset), the session's
    ``session_memory`` (what decides the return), ``session_mean`` and ``session_peak``
    step quality, ``session_index`` and ``session_step`` (int64), ``churned`` (bool),
    ``recent_clicks`` ``[B, H]`` (int64, -1 when empty) and their item satiation
    ``recent_satiation`` ``[B, H]``; the session's ``theme`` ``[B, G]``; ``watched`` ``[B, W]``
    (int64 words, a bit per item clicked; ``W`` 0 when items may be clicked again); the
    ``instruction`` in force and its
    ``instruction_steps_left``."""

    key: torch.Tensor
    counter: torch.Tensor
    interest: torch.Tensor
    familiar: torch.Tensor
    patience: torch.Tensor
    novelty_trait: torch.Tensor
    novelty_seeking: torch.Tensor
    activity: torch.Tensor
    popularity_bias: torch.Tensor
    rating_bias: torch.Tensor
    source_user: torch.Tensor
    satiation: torch.Tensor
    satisfaction: torch.Tensor
    session_memory: torch.Tensor
    session_mean: torch.Tensor
    session_peak: torch.Tensor
    session_index: torch.Tensor
    session_step: torch.Tensor
    churned: torch.Tensor
    recent_clicks: torch.Tensor
    recent_satiation: torch.Tensor
    theme: torch.Tensor
    watched: torch.Tensor
    instruction: Instruction
    instruction_steps_left: torch.Tensor


@dataclass
class Reactions:
    """One step of ``B`` users: per item ``[B, K]`` ``examined``, ``clicked``, ``watch``,
    ``liked``, ``rating`` (int8); per user ``[B]`` ``in_force`` (an instruction was in force),
    ``leaves``, ``returned``, ``compliance``, ``hazard``, ``gap``; the instruction ``voiced``
    at this step and the code of its sentence, ``phrase`` (int32, -1 when none; see
    :mod:`recoworld.simulators.phrasing`); and the ``mindset`` after the step, before a
    returning user's break moves it towards the baseline (the state's ``satisfaction`` of a
    slot held idle), so that it means the same for those who stay, return or churn."""

    examined: torch.Tensor
    clicked: torch.Tensor
    watch: torch.Tensor
    liked: torch.Tensor
    rating: torch.Tensor
    in_force: torch.Tensor
    leaves: torch.Tensor
    returned: torch.Tensor
    compliance: torch.Tensor
    hazard: torch.Tensor
    gap: torch.Tensor
    voiced: Instruction
    phrase: torch.Tensor
    mindset: torch.Tensor


_p, _i64, _u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32
ITEM_TABLES = ("features", "genre_weights", "static_appeal", "popularity_score", "quality", "genres",
               "genre_centroids")
STREAMS = ("step", "gap", "session", "phrase")
TRAITS = ("key", "novelty_trait", "popularity_bias", "patience", "rating_bias", "activity", "source_user")
# UserState's fields of the same name, then its instruction and churn.
STATE_DYNAMICS = ("counter", "novelty_seeking", "interest", "familiar", "satiation", "satisfaction", "session_memory",
                  "session_mean", "session_peak", "recent_clicks", "recent_satiation", "session_index", "session_step",
                  "theme", "watched")
DYNAMICS = (*STATE_DYNAMICS, "steps_left", "active", "more", "less", "churned", "novelty")
# The struct's pointers that outlast a call (the item tables, the state, the parameters),
# and, by the same names in the same order, where they are read (attrgetter: one C call);
# the others are a step's own: its slates, idle slots and RESPONSE.
LASTING = (*ITEM_TABLES, *TRAITS, *DYNAMICS, "param")
_TABLES = attrgetter(*ITEM_TABLES)
_STATE_FIELDS = (*TRAITS, *STATE_DYNAMICS, "instruction_steps_left", "instruction.active", "instruction.more",
                 "instruction.less", "churned", "instruction.novelty")
_STATE = attrgetter(*_STATE_FIELDS)
# What the kernel reads each of LASTING's tensors as (by its name in the tables, the state or
# the parameters): its dtype and its shape, by the letters of the view's sizes (N items, B
# users, D features, G genres, H history, W words of watched bits, P parameters).
_FLOAT, _LONG, _BOOL = torch.float32, torch.int64, torch.bool
LAYOUT = {
    "features": (_FLOAT, "ND"), "genre_weights": (_FLOAT, "NG"), "static_appeal": (_FLOAT, "N"),
    "popularity_score": (_FLOAT, "N"), "quality": (_FLOAT, "N"), "genres": (_BOOL, "NG"),
    "genre_centroids": (_FLOAT, "GD"),
    "key": (_LONG, "B"), **dict.fromkeys(("novelty_trait", "popularity_bias", "patience", "rating_bias", "activity"),
                                         (_FLOAT, "B")),
    "source_user": (_LONG, "B"), "counter": (torch.int32, "B"), "novelty_seeking": (_FLOAT, "B"),
    "interest": (_FLOAT, "BD"), "familiar": (_FLOAT, "BD"), "satiation": (_FLOAT, "BG"),
    **dict.fromkeys(("satisfaction", "session_memory", "session_mean", "session_peak"), (_FLOAT, "B")),
    "recent_clicks": (_LONG, "BH"), "recent_satiation": (_FLOAT, "BH"), "session_index": (_LONG, "B"),
    "session_step": (_LONG, "B"), "theme": (_FLOAT, "BG"), "watched": (_LONG, "BW"),
    "instruction_steps_left": (_LONG, "B"), "instruction.active": (_BOOL, "B"), "instruction.more": (_BOOL, "BG"),
    "instruction.less": (_BOOL, "BG"), "churned": (_BOOL, "B"), "instruction.novelty": (torch.int8, "B"),
    "param": (_FLOAT, "P"),
}
# The response the kernel writes: name -> dtype, per item ([B, K]), per user ([B]) or per genre ([B, G]).
PER_ITEM = {"examined": torch.bool, "clicked": torch.bool, "liked": torch.bool, "watch": torch.float32,
            "rating": torch.int8}
PER_USER = {"in_force": torch.bool, "leaves": torch.bool, "returned": torch.bool, "compliance": torch.float32,
            "hazard": torch.float32, "gap": torch.float32, "mindset": torch.float32, "voiced_novelty": torch.int8,
            "phrase": torch.int32}
PER_GENRE = {"voiced_more": torch.bool, "voiced_less": torch.bool}
RESPONSE = ("examined", "clicked", "liked", "watch", "rating", "in_force", "leaves", "returned", "compliance",
            "hazard", "gap", "mindset", "voiced_more", "voiced_less", "voiced_novelty", "phrase")
# Mirrors `UserStep` in users_step.c, field for field (checked when the kernel loads).
UserStep = build.struct_of("UserStep", {
    **dict.fromkeys(["K", "D", "G", "H", "W"], _i64), **dict.fromkeys(ITEM_TABLES, _p), "slates": _p, "idle": _p,
    **{f"{name}_stream": _u32 for name in STREAMS}, "param": _p,
    **dict.fromkeys(TRAITS, _p), **dict.fromkeys(DYNAMICS, _p), **dict.fromkeys(RESPONSE, _p),
})
# Mirrors `Newcomers` in users_step.c: the traits of users put into `slots` by `start`,
# or the synthetic law they are drawn from there.
NEWCOMER_TRAITS = ("interest", "patience", "novelty_trait", "activity", "popularity_bias", "rating_bias")
Newcomers = build.struct_of("Newcomers",
                            dict.fromkeys(["slots", "key", *NEWCOMER_TRAITS, "source_user", "synthetic"], _p))
# Mirrors `StartCall` in users_step.c: a start's frame and newcomers, for the pool's chunks.
StartCall = build.struct_of("StartCall", {"step": _p, "newcomers": _p})
# Mirrors `SyntheticLaw` in synthetic.h.
SYNTHETIC_PARAMETERS = ("interest_noise", "logit_patience", "patience_spread", "novelty_spread", "activity_spread",
                        "popularity_bias_mean", "popularity_bias_spread")
SyntheticLaw = build.struct_of("SyntheticLaw", {
    "n_items": _i64, "D": _i64, "cumulative": _p, "features": _p, "stream": _u32,
    **dict.fromkeys(SYNTHETIC_PARAMETERS, ctypes.c_float)})
DRAWN_TRAITS = ("patience", "novelty_trait", "activity", "popularity_bias")  # beside the interest
# Drawing a user's traits costs more than stepping it: smaller chunks share the restarts of
# an autoreset between the kernel threads.
NEWCOMERS_PER_CHUNK = 32


@dataclass
class SyntheticDraw:
    """What the kernel needs to draw the users of a synthetic population
    (``SyntheticPopulation.kernel_draw`` gives it; the law in ``synthetic.h``):
    ``cumulative`` popularity (float64 ``[N]``), item ``features`` (float32 ``[N, D]``), the
    random ``stream`` id of the traits' draws, and the law's ``parameters`` by the names of
    :data:`SYNTHETIC_PARAMETERS` (``logit_patience`` is the logit of the mean patience).
    :attr:`law` is the kernel's view of it, valid while this object holds the tensors."""

    cumulative: torch.Tensor
    features: torch.Tensor
    stream: int
    parameters: dict[str, float]
    law: SyntheticLaw = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        n_items, D = self.features.shape
        self.law = SyntheticLaw(n_items=n_items, D=D, cumulative=build.pointer(self.cumulative),
                                features=build.pointer(self.features), stream=mix_int(self.stream),
                                **self.parameters)

    # A copy (copy.deepcopy, pickle) holds copies of the tensors: its view is rebuilt from
    # them, never copied with the original's addresses.
    def __getstate__(self) -> dict:
        return {name: value for name, value in vars(self).items() if name != "law"}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self.__post_init__()


def draw_synthetic(draw: SyntheticDraw, keys: torch.Tensor) -> dict[str, torch.Tensor]:
    """The traits the kernel's start draws for users with random ``keys`` (int64 ``[n]``):
    ``interest`` ``[n, D]`` and the :data:`DRAWN_TRAITS` ``[n]``, float32."""
    keys, law, lib = keys.to(torch.int64).contiguous(), draw.law, library()
    traits = {"interest": torch.empty(len(keys), law.D)} | {name: torch.empty(len(keys)) for name in DRAWN_TRAITS}
    pointers = [build.pointer(traits[name]) for name in ("interest", *DRAWN_TRAITS)]
    # A check of the draw, not a step's path: one pass on the caller's thread.
    if lib.recoworld_draw_synthetic(0, len(keys), ctypes.byref(law), build.pointer(keys), *pointers):
        raise ValueError(f"the C kernel handles features of up to 1024 dimensions, got {law.D}: use kernel='torch'")
    return traits


def library() -> ctypes.CDLL:
    """The compiled kernel, built into the cache on first use, its structs checked."""
    lib = build.load(SOURCE, (UserStep, Newcomers, SyntheticLaw, StartCall))
    lib.recoworld_draw_synthetic.argtypes = [_i64, _i64, ctypes.POINTER(SyntheticLaw)] + [_p] * 6
    lib.recoworld_draw_synthetic.restype = ctypes.c_int
    return lib


def parameters(config) -> torch.Tensor:
    """The float parameters of a ``StatisticalUserConfig`` in the order of ``users_step.c``'s ``P_`` enum."""
    c = config
    return torch.tensor([
        c.interest_weight, c.satiation_weight, c.repeat_penalty, c.continue_after_click,
        c.rating_center, c.rating_slope, c.rating_quality, c.rating_noise,
        1 - c.satiation_decay, c.satiation_rate, c.interest_drift, 1 - c.familiarity_rate, c.familiarity_rate,
        c.more_share, c.compliance_weight, 1 - c.mindset_rate, c.mindset_rate,
        c.leave_base, c.leave_mindset, c.leave_boredom, c.leave_length, c.leave_patience,
        c.instruction_threshold, c.voice_probability,
        c.return_base, c.return_mindset, c.gap_days, c.satiation_recovery_days, 0.5 * c.initial_mindset,
        c.instruction_satiation, c.instruction_steps, c.novelty_session_spread, c.initial_mindset,
        c.quality_scale, 1 - c.item_satiation_decay, c.item_recovery_days, c.peak_end_weight, 1 - c.peak_end_weight,
        c.gap_shape, 1 / c.gap_shape, weibull_mean_factor(c.gap_shape), c.gap_length_elasticity,
        c.leave_first_session, c.first_session_patience, c.return_first_session, c.gap_first_session, c.gap_first_share,
        c.quick_visit_share, c.theme_weight, c.first_session_spread,
    ], dtype=torch.float32)


@dataclass
class UsersKernel(build.CompiledKernel):
    """The fused step over CPU tensors: ``tables`` (contiguous), ``params`` from
    :func:`parameters`, and ``streams``, the random stream ids of ``step``, ``gap``,
    ``session`` and ``phrase`` draws."""

    tables: ItemTables
    params: torch.Tensor
    streams: dict[str, int]
    #: Slots marked idle are skipped: neither read nor written.
    holds_idle = True
    name = "c"

    library = staticmethod(library)

    def __post_init__(self):
        super().__post_init__()
        # The streams' hashes, once: the kernel takes them at every call.
        self._stream_bases = {f"{name}_stream": mix_int(self.streams[name]) for name in STREAMS}

    def step(self, state: UserState, slates: torch.Tensor, idle: torch.Tensor | None) -> Reactions:
        """One step of every user for valid ``slates``, updating ``state`` in place; slots in
        ``idle`` (bool ``[B]``) are skipped: their state stays and their response is zeros."""
        B, K, G = slates.shape[0], slates.shape[1], self.tables.genres.shape[1]
        out = {name: torch.empty(B, K, dtype=dtype) for name, dtype in PER_ITEM.items()}
        out |= {name: torch.empty(B, dtype=dtype) for name, dtype in PER_USER.items()}
        out |= {name: torch.empty(B, G, dtype=dtype) for name, dtype in PER_GENRE.items()}
        slates = slates.contiguous()  # held here: the frame holds only its address
        # The frame of the previous step serves again where every lasting tensor reads as it
        # did then (see build.addresses): then only the step's own pointers change.
        lasting = self._lasting(state)
        key = [*build.addresses(lasting), *self._sizes(state)]
        frame = self._reuse_frame(key)
        if frame is None:
            frame = self._frame(state, K=K, slates=slates, idle=idle, lasting=lasting, **out)
        else:
            frame.K, frame.slates, frame.idle = K, build.pointer(slates), build.pointer(idle)
            for name, tensor in out.items():  # allocated above: contiguous, on the CPU
                setattr(frame, name, tensor.data_ptr())
        codes = build.run_parallel(self._lib.recoworld_respond_chunk, frame, B)
        self._keep_frame(key, frame)
        self._check(codes, state, K)
        voiced = Instruction(out["phrase"] >= 0, out["voiced_more"], out["voiced_less"], out["voiced_novelty"])
        return Reactions(out["examined"], out["clicked"], out["watch"], out["liked"], out["rating"], out["in_force"],
                         out["leaves"], out["returned"], out["compliance"], out["hazard"], out["gap"], voiced,
                         out["phrase"], out["mindset"])

    def start(self, state: UserState, slots: torch.Tensor, keys: torch.Tensor, population, catalog) -> None:
        """Put new users with random ``keys`` (int64 ``[n]``) from ``population`` into
        ``slots`` (int64 ``[n]``) of ``state``, in place, as the torch reference's start does.
        A population that hands out its law (``population.kernel_draw(catalog)``, the
        synthetic one) is drawn here, in the same pass; any other's traits come from its
        ``sample(keys, catalog)``."""
        draw = population.kernel_draw(catalog)
        # No rows (NULL pointers) when the kernel draws the traits: synthetic users, fitted on no one.
        rows: dict[str, torch.Tensor | None] = dict.fromkeys((*NEWCOMER_TRAITS, "source_user"))
        if draw is None:
            traits = population.sample(keys, catalog)
            rows = {name: getattr(traits, name, None) for name in NEWCOMER_TRAITS}  # rating_bias is optional
            # Contiguous copies where a population hands out other layouts (no-ops for ours).
            rows = {name: None if t is None else t.to(torch.float32).contiguous() for name, t in rows.items()}
            rows["source_user"] = traits.source_user.to(torch.int64).contiguous()
        law = None if draw is None else draw.law
        rows |= {"slots": slots.to(torch.int64).contiguous(), "key": keys.to(torch.int64).contiguous()}
        newcomers = Newcomers(**{name: build.pointer(t) for name, t in rows.items()},
                              synthetic=None if law is None else ctypes.addressof(law))
        frame = self._frame(state, K=0)
        call = StartCall(step=ctypes.addressof(frame), newcomers=ctypes.addressof(newcomers))
        codes = build.run_parallel(self._lib.recoworld_start_chunk, call, len(slots),
                                   NEWCOMERS_PER_CHUNK if law is not None else build.MIN_USERS_PER_CHUNK)
        self._check(codes, state, 0)

    def _lasting(self, state: UserState) -> tuple[torch.Tensor, ...]:
        """The tensors the kernel's view points to beyond a call, in the order of :data:`LASTING`."""
        return (*_TABLES(self.tables), *_STATE(state), self.params)

    def _sizes(self, state: UserState) -> tuple[int, int, int, int]:
        """The view's D, G, H and W."""
        return (self.tables.features.shape[1], self.tables.genres.shape[1], state.recent_clicks.shape[1],
                state.watched.shape[1])

    def _frame(self, state: UserState, K: int, idle: torch.Tensor | None = None,
               lasting: tuple[torch.Tensor, ...] | None = None, **tensors) -> UserStep:
        """The kernel's view of ``state`` and the items (their tensors ``lasting``, read here
        when not given), with ``tensors`` (the step's slates and response)."""
        lasting = self._lasting(state) if lasting is None else lasting
        D, G, H, W = self._sizes(state)
        _check_layout(lasting, dict(N=self.tables.features.shape[0], B=state.key.shape[0], D=D, G=G, H=H, W=W,
                                    P=self.params.shape[0]))
        return UserStep(K=K, D=D, G=G, H=H, W=W, idle=build.pointer(idle), **self._stream_bases,
                        **{name: build.pointer(t) for name, t in zip(LASTING, lasting)},
                        **{name: build.pointer(t) for name, t in tensors.items()})

    def _check(self, codes: list[int], state: UserState, K: int) -> None:
        if any(codes):
            D, G = self.tables.features.shape[1], self.tables.genres.shape[1]
            raise ValueError(f"the C kernel handles K, D, G and history up to 256, 1024, 1024, 1024; got "
                             f"{f'K={K}, ' if K else ''}D={D}, G={G}, history {state.recent_clicks.shape[1]}: use "
                             "kernel='torch'")  # K=0: a start, which has no slates


def _check_layout(lasting: tuple[torch.Tensor, ...], sizes: dict[str, int]) -> None:
    """``ValueError`` naming the first of the ``lasting`` tensors (in the order of
    :data:`LAYOUT`) whose dtype or shape is not what the kernel reads it as, given the view's
    ``sizes``: it would read and write that tensor's memory as another layout (garbage, and
    writes past its end). Run where a frame is built, not at every step: a state that keeps
    its tensors keeps the frame (see ``build.addresses``)."""
    expected = _layouts(tuple(sizes.items()))
    for name, tensor, (dtype, shape) in zip(LAYOUT, lasting, expected):
        if tensor.dtype != dtype or tensor.shape != shape:
            raise ValueError(f"the C kernel reads {name} as {dtype} of shape {shape}, but it is {tensor.dtype} of "
                             f"shape {tuple(tensor.shape)}: give the state tensors of its layout (assigning through "
                             f"the users' attributes, users.{name.split('.')[0]} = value, copies into them)")


@functools.lru_cache(maxsize=8)
def _layouts(sizes: tuple[tuple[str, int], ...]) -> tuple[tuple[torch.dtype, tuple[int, ...]], ...]:
    """The dtype and shape of each of :data:`LAYOUT`'s tensors at ``sizes`` (letter, size)."""
    size = dict(sizes)
    return tuple((dtype, tuple(size[letter] for letter in letters)) for dtype, letters in LAYOUT.values())
