"""The fused C step of :class:`~recoworld.simulators.statistical.StatisticalUsers` (``kernel="c"``).

``fused_step.c`` ships with the package and is built on first use by
:mod:`recoworld.native`. The kernel walks each user's slate once, with the item tables in
cache, and then makes the user's per-step decisions, instead of materialising
``[B, K, D]`` gathers and dozens of ``[B, K]`` and ``[B]`` intermediates: the torch step is
bound by memory bandwidth and per-op overhead on CPU.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from recoworld import native, rng
from recoworld.native import CompilerNotFoundError  # noqa: F401  (part of this module's API)

SOURCE = Path(__file__).with_name("fused_step.c")

_p, _i64, _u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32
# Mirrors `Step` in fused_step.c, field for field.
Step = native.struct_of("Step", {
    "K": _i64, "D": _i64, "G": _i64, "H": _i64,
    **dict.fromkeys(["features", "genre_weights", "static_appeal", "pop_score", "quality", "genres",
                     "genre_centroids", "slates", "idle"], _p),
    **dict.fromkeys(["step_stream", "gap_stream", "session_stream", "phrase_stream"], _u32),
    **dict.fromkeys(["param", "key", "novelty_trait", "popularity_bias", "patience", "rating_bias", "activity"], _p),
    **dict.fromkeys(["counter", "novelty_seeking", "interest", "familiar", "satiation", "satisfaction",
                     "session_memory", "recent_clicks", "session_index", "session_step", "steps_left", "active",
                     "more", "less", "churned", "novelty"], _p),
    **dict.fromkeys(["examined", "clicked", "liked", "watch", "rating", "in_force", "leaves", "returned",
                     "compliance", "hazard", "gap", "voiced_more", "voiced_less", "voiced_novelty", "phrase"], _p),
})
# The response the kernel writes: name -> dtype, per item ([B, K]) or per user ([B]).
PER_ITEM = {"examined": torch.bool, "clicked": torch.bool, "liked": torch.bool, "watch": torch.float32,
            "rating": torch.int8}
PER_USER = {"in_force": torch.bool, "leaves": torch.bool, "returned": torch.bool, "compliance": torch.float32,
            "hazard": torch.float32, "gap": torch.float32, "voiced_novelty": torch.int8, "phrase": torch.int32}
PER_GENRE = {"voiced_more": torch.bool, "voiced_less": torch.bool}  # [B, G]
# Mirrors `Newcomers` in fused_step.c: the traits of users put into `slots` by `start`.
Newcomers = native.struct_of("Newcomers", dict.fromkeys(
    ["slots", "key", "interest", "patience", "novelty_trait", "activity", "popularity_bias", "rating_bias"], _p))


def library() -> ctypes.CDLL:
    """The compiled kernel, built into the cache on first use."""
    lib = native.library(SOURCE)
    lib.recoworld_respond.argtypes = [_i64, _i64, ctypes.POINTER(Step)]
    lib.recoworld_respond.restype = ctypes.c_int
    lib.recoworld_start.argtypes = [_i64, _i64, ctypes.POINTER(Step), ctypes.POINTER(Newcomers)]
    lib.recoworld_start.restype = ctypes.c_int
    return lib


def parameters(config) -> torch.Tensor:
    """The float parameters in the order of ``fused_step.c``'s ``P_`` enum."""
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
    ], dtype=torch.float32)


def step(users, slates: torch.Tensor, idle: torch.Tensor | None, streams: dict[str, int],
         genres: torch.Tensor, params: torch.Tensor) -> dict[str, torch.Tensor]:
    """One step of ``users`` (a ``StatisticalUsers`` on CPU) for valid ``slates``.

    Updates the users' state tensors in place (``streams`` names the ``step``, ``gap``,
    ``session`` and ``phrase`` random streams, ``genres`` is the catalog's ``uint8`` genre
    table, ``params`` from :func:`parameters`) and returns the tensors of :data:`PER_ITEM`
    ``[B, K]``, :data:`PER_USER` ``[B]`` and :data:`PER_GENRE` ``[B, G]``. Slots in
    ``idle`` (bool ``[B]``) are skipped: their state stays and their response is zeros.
    """
    B, K, G = slates.shape[0], slates.shape[1], users.catalog.n_genres
    slates = slates.contiguous()
    out = {name: torch.empty(B, K, dtype=dtype) for name, dtype in PER_ITEM.items()}
    out |= {name: torch.empty(B, dtype=dtype) for name, dtype in PER_USER.items()}
    out |= {name: torch.empty(B, G, dtype=dtype) for name, dtype in PER_GENRE.items()}
    frame = _frame(users, streams, genres, params, K=K, slates=slates, idle=idle, **out)
    lib = library()
    _check(native.run_chunks(lambda begin, end: lib.recoworld_respond(begin, end, ctypes.byref(frame)), B), users, K)
    return out


def start(users, slots: torch.Tensor, keys: torch.Tensor, traits, streams: dict[str, int], genres: torch.Tensor,
          params: torch.Tensor) -> None:
    """Put new users with random ``keys`` (int32 ``[n]``) and ``traits`` (a population's
    :class:`~recoworld.simulators.population.UserTraits`) into ``slots`` (int64 ``[n]``) of
    ``users``, in place: what ``StatisticalUsers._start`` does, in one pass."""
    rating_bias = getattr(traits, "rating_bias", None)  # optional trait
    rows = {"slots": slots.to(torch.int64), "key": keys.to(torch.int32), "interest": traits.interest,
            "patience": traits.patience, "novelty_trait": traits.novelty_trait, "activity": traits.activity,
            "popularity_bias": traits.popularity_bias}
    if rating_bias is not None:
        rows["rating_bias"] = rating_bias
    # Contiguous float32 copies where a population hands out other layouts (no-ops for ours).
    rows = {name: t.contiguous() if t.dtype in (torch.int64, torch.int32) else t.to(torch.float32).contiguous()
            for name, t in rows.items()}
    newcomers = Newcomers(**{name: native.pointer(t) for name, t in rows.items()})
    frame = _frame(users, streams, genres, params, K=0)
    lib = library()
    codes = native.run_chunks(
        lambda begin, end: lib.recoworld_start(begin, end, ctypes.byref(frame), ctypes.byref(newcomers)), len(slots))
    _check(codes, users, 0)


def _frame(users, streams: dict[str, int], genres: torch.Tensor, params: torch.Tensor, K: int,
           idle: torch.Tensor | None = None, **tensors: torch.Tensor) -> Step:
    """The kernel's view of ``users``: the items, their traits and state, and ``tensors``
    (the step's slates and response)."""
    cat, ins = users.catalog, users.instruction
    tensors |= {
        "features": cat.features, "genre_weights": cat.genre_weights, "static_appeal": users._static_appeal,
        "pop_score": users._pop_score, "quality": cat.quality, "genres": genres,
        "genre_centroids": users._genre_centroids, "param": params, "key": users.key,
        "novelty_trait": users.novelty_trait, "novelty_seeking": users.novelty_seeking,
        "popularity_bias": users.popularity_bias, "patience": users.patience, "rating_bias": users.rating_bias,
        "activity": users.activity, "counter": users.counter, "interest": users.interest,
        "familiar": users.familiar, "satiation": users.satiation, "satisfaction": users.satisfaction,
        "session_memory": users.session_memory,
        "recent_clicks": users.recent_clicks, "session_index": users.session_index,
        "session_step": users.session_step, "steps_left": users.instruction_steps_left,
        "active": ins.active, "more": ins.more, "less": ins.less, "churned": users.churned,
        "novelty": ins.novelty,
    }
    return Step(K=K, D=cat.feature_dim, G=cat.n_genres, H=users.recent_clicks.shape[1],
                idle=None if idle is None else native.pointer(idle),
                **{f"{name}_stream": rng.mix_int(stream) for name, stream in streams.items()},
                **{name: native.pointer(t) for name, t in tensors.items()})


def _check(codes: list[int], users, K: int) -> None:
    if any(codes):
        cat = users.catalog
        raise ValueError(f"the C kernel handles K, D, G and history up to 256, 1024, 1024, 1024; got "
                         f"K={K}, D={cat.feature_dim}, G={cat.n_genres}, history {users.recent_clicks.shape[1]}: "
                         "use kernel='torch'")
