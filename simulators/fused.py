"""The fused C step of :class:`~recoworld.simulators.statistical.StatisticalUsers` (``kernel="c"``).

``fused_step.c`` ships with the package and is compiled once, on first use, with the
system C compiler (``$CC``, else ``cc``) into the RecoWorld cache
(``$RECOWORLD_CACHE`` or ``~/.cache/recoworld``), under a name keyed by a hash of the source
and the flags, then loaded with :mod:`ctypes`. The kernel walks each user's slate once,
with the item tables in cache, instead of materialising ``[B, K, D]`` gathers and dozens of
``[B, K]`` intermediates: the torch step is bound by memory bandwidth on CPU.

Users are independent, so the batch is split into contiguous chunks run on
``torch.get_num_threads()`` Python threads (ctypes releases the GIL during the call);
a user's result does not depend on the chunking.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from recoworld import rng
from recoworld.data.cache import cache_dir

SOURCE = Path(__file__).with_name("fused_step.c")
FLAGS = ["-O3", "-shared", "-fPIC", "-std=c99"]
MIN_USERS_PER_THREAD = 1024  # below this a thread costs more than it saves

_LOCK = threading.Lock()
_LIBRARY: ctypes.CDLL | None = None
_POOL: ThreadPoolExecutor | None = None


class CompilerNotFoundError(RuntimeError):
    """``kernel="c"`` was asked for, but no C compiler could build the kernel."""


def _compiler() -> str:
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise CompilerNotFoundError(
            f"kernel='c' needs a C compiler to build {SOURCE.name}, but {name!r} is not on PATH: "
            "install one (e.g. `apt-get install gcc`, `xcode-select --install`) or set $CC to it, "
            "or use kernel='torch'")
    return path


def library() -> ctypes.CDLL:
    """The compiled kernel, built into the cache on first use."""
    global _LIBRARY
    with _LOCK:
        if _LIBRARY is None:
            _LIBRARY = _load(_build())
        return _LIBRARY


def _build() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"fused_step-{digest}.so"
    if target.exists():
        return target
    compiler = _compiler()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a concurrent or interrupted build never leaves a
    # half-written library under the final name.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CompilerNotFoundError(
                f"{compiler} could not build {SOURCE} (exit {result.returncode}):\n{result.stderr.strip()}\n"
                "fix the compiler set-up (or set $CC), or use kernel='torch'")
        os.replace(built, target)
    return target


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i64, u32, ptr = ctypes.c_int64, ctypes.c_uint32, ctypes.c_void_p
    lib.recoworld_uniform.argtypes = [i64, i64, ptr, ptr, u32, i64, ptr]
    lib.recoworld_uniform.restype = None
    lib.recoworld_respond.argtypes = [i64] * 6 + [ptr] * 8 + [u32] + [ptr] * 18
    lib.recoworld_respond.restype = ctypes.c_int
    return lib


def _chunks(n: int) -> list[tuple[int, int]]:
    parts = max(1, min(torch.get_num_threads(), n // MIN_USERS_PER_THREAD))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _run(call, n: int) -> list:
    global _POOL
    chunks = _chunks(n)
    if len(chunks) == 1:
        return [call(*chunks[0])]
    if _POOL is None or _POOL._max_workers < len(chunks):
        _POOL = ThreadPoolExecutor(len(chunks), thread_name_prefix="recoworld-kernel")
    return list(_POOL.map(lambda bounds: call(*bounds), chunks))


def _ptr(tensor: torch.Tensor) -> int:
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        raise ValueError("the C kernel needs contiguous CPU tensors; use kernel='torch' on other devices")
    return tensor.data_ptr()


def uniform(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """:func:`recoworld.rng.uniform`, computed by the kernel (the tests check they agree bit for bit)."""
    keys, counters = keys.to(torch.int32).contiguous(), counters.to(torch.int32).contiguous()
    out = torch.empty(len(keys), n, dtype=torch.float32)
    lib = library()
    _run(lambda begin, end: lib.recoworld_uniform(begin, end, _ptr(keys), _ptr(counters),
                                                  rng.mix_int(stream), n, _ptr(out)), len(keys))
    return out


def step_items(users, slates: torch.Tensor, stream: int) -> dict[str, torch.Tensor]:
    """The per-item part of ``users.respond(slates)`` (a ``StatisticalUsers`` on CPU).

    Updates ``users.satiation``, ``interest``, ``familiar`` and ``recent_clicks`` in place
    and returns the per-item response ``[B, K]`` (``examined``, ``clicked``, ``watch``,
    ``liked``, ``rating``, ``distance``) and, per user, ``quality`` (clicks weighted by
    watch), ``boredom`` and ``uniforms`` ``[B, 3]`` (the step's voice, leave and return draws).
    """
    c, cat = users.config, users.catalog
    B, K = slates.shape
    D, G, H = cat.feature_dim, cat.n_genres, users.recent_clicks.shape[1]
    slates = slates.contiguous()
    params = torch.tensor([
        c.interest_weight, c.satiation_weight, c.repeat_penalty, c.continue_after_click,
        c.rating_center, c.rating_slope, c.rating_quality, c.rating_noise,
        1 - c.satiation_decay, c.satiation_rate, c.interest_drift, 1 - c.familiarity_rate, c.familiarity_rate,
    ], dtype=torch.float32)
    out = {
        "examined": torch.empty(B, K, dtype=torch.bool), "clicked": torch.empty(B, K, dtype=torch.bool),
        "watch": torch.empty(B, K), "liked": torch.empty(B, K, dtype=torch.bool),
        "rating": torch.empty(B, K, dtype=torch.int8), "distance": torch.empty(B, K),
        "quality": torch.empty(B), "boredom": torch.empty(B), "uniforms": torch.empty(B, 3),
    }
    tables = [cat.features, cat.genre_weights, users._static_appeal, users._pop_score, cat.quality,
              users.key, users.counter]
    traits = [users.novelty_seeking, users.popularity_bias, users.patience, users.rating_bias]
    state = [users.interest, users.familiar, users.satiation, users.recent_clicks]
    names = ("examined", "clicked", "watch", "liked", "rating", "distance", "quality", "boredom", "uniforms")
    pointers = ([_ptr(slates)] + [_ptr(t) for t in tables] + [rng.mix_int(stream), _ptr(params)]
                + [_ptr(t) for t in traits + state] + [_ptr(out[name]) for name in names])
    lib = library()
    codes = _run(lambda begin, end: lib.recoworld_respond(begin, end, K, D, G, H, *pointers), B)
    if any(codes):
        raise ValueError(f"the C kernel handles K, D, G and history up to 256, 1024, 1024, 1024; got "
                         f"K={K}, D={D}, G={G}, history {H}: use kernel='torch'")
    return out
