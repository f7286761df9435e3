"""Counter-based random numbers: one independent stream per simulated user.

A batched simulator that drew from one shared generator would give user ``i`` different
draws depending on how many other users share the batch. Here every draw is a hash of
``(user key, user step counter, stream, element index)``, so user ``i`` sees the same
numbers whether it is simulated alone or among 16,384 others, on CPU or GPU. This is what
makes the vector env and N single envs with matching seeds produce the same trajectories.

The hash is Chris Wellons' ``lowbias32`` integer finaliser (bias 0.17 on his avalanche
test, https://nullprogram.com/blog/2018/07/31/). Tensors hold the 32-bit patterns as
``int32``: multiplication wraps modulo 2**32 and right shifts are masked to be logical, which
runs several times faster than masking ``int64`` arithmetic. On CPU, where a C compiler
is available, ``rng.c`` computes the same bits in one pass (built into the RecoWorld cache
on first use, see :mod:`recoworld.native`); without one, the tensor ops do.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import torch

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_M1, _M2 = 0x7FEB352D, 0x846CA68B


def _signed(value: int) -> int:
    """The int32 holding the 32-bit pattern ``value``."""
    value &= MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def mix32(x: torch.Tensor) -> torch.Tensor:
    """``lowbias32`` on int32 tensors of 32-bit patterns."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _M1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _signed(_M2)
    return x ^ ((x >> 16) & 0xFFFF)


def mix_int(*values: int) -> int:
    """Hash non-negative Python integers into one 32-bit value (seeds, stream ids)."""
    state = 0x2545F491
    for v in values:
        if v < 0:
            raise ValueError(f"seed {v} is negative; seeds must be integers >= 0")
        for shift in range(0, max(64, int(v).bit_length() + 1), 32):
            state = _mix32_py(state ^ ((int(v) >> shift) & MASK32) ^ _GOLDEN)
    return state


def _mix32_py(x: int) -> int:
    x ^= x >> 16
    x = (x * _M1) & MASK32
    x ^= x >> 15
    x = (x * _M2) & MASK32
    return x ^ (x >> 16)


_NATIVE = None  # rng.c compiled (see enable_native)
_NATIVE_TRIED = False  # whether _native_for has tried to build it


def enable_native() -> None:
    """Hash CPU tensors with ``rng.c`` from now on: the same bits, in one pass instead of a
    dozen tensor ops. Raises :class:`~recoworld.native.CompilerNotFoundError` if it cannot
    be built. Hashing CPU tensors builds it on first use anyway, where a C compiler is
    available."""
    global _NATIVE, _NATIVE_TRIED
    _NATIVE_TRIED = True
    if _NATIVE is None:
        from recoworld import native  # here: native builds with the compiler only on demand

        lib = native.library(Path(__file__).with_name("rng.c"))
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        lib.recoworld_user_keys.argtypes = [i64, ptr, ptr]
        lib.recoworld_derive.argtypes = [i64, ptr, ptr, i64, ptr]
        lib.recoworld_bits32.argtypes = [i64, ptr, ptr, ctypes.c_uint32, i64, ptr]
        for function in (lib.recoworld_user_keys, lib.recoworld_derive, lib.recoworld_bits32):
            function.restype = None
        _NATIVE = lib


def _native_for(tensor: torch.Tensor):
    """rng.c for a CPU tensor, built on the first call if it can be; else ``None``: the
    torch ops compute the same bits (tests/test_fused_kernel.py checks it), a few times
    slower at a small batch, where each of their dozen ops costs its dispatch."""
    if tensor.device.type != "cpu":
        return None
    if _NATIVE is None and not _NATIVE_TRIED:
        from recoworld.native import CompilerNotFoundError

        try:
            enable_native()
        except (CompilerNotFoundError, OSError):
            pass  # no compiler, or no writable cache: the torch ops stand in
    return _NATIVE


def _non_negative(seeds: torch.Tensor) -> torch.Tensor:
    if bool((seeds < 0).any()):
        raise ValueError(f"seed {int(seeds[seeds < 0][0])} is negative; seeds must be integers >= 0")
    return seeds


def user_keys(seeds, device: str | torch.device = "cpu") -> torch.Tensor:
    """32-bit keys (int32 patterns) for integer seeds in ``[0, 2**63)``, one per user.

    Equal to ``mix_int(seed)`` for every seed, computed as tensor ops so that restarting
    16,384 users costs microseconds.
    """
    seeds = _non_negative(torch.as_tensor(seeds, dtype=torch.int64, device=device))
    lib = _native_for(seeds)
    if lib is not None:
        seeds = seeds.contiguous()
        keys = torch.empty(seeds.shape, dtype=torch.int32)
        lib.recoworld_user_keys(seeds.numel(), seeds.data_ptr(), keys.data_ptr())
        return keys
    state = torch.full(seeds.shape, _signed(0x2545F491), dtype=torch.int32, device=seeds.device)
    for shift in (0, 32):
        word = ((seeds >> shift) & MASK32).to(torch.int32)  # keeps the low 32 bits as a pattern
        state = mix32(state ^ word ^ _signed(_GOLDEN))
    return state


def derive(seeds: torch.Tensor, salt: torch.Tensor | int) -> torch.Tensor:
    """Non-negative 62-bit seeds derived from int64 ``seeds`` and ``salt`` (e.g. an episode number)."""
    salt = torch.as_tensor(salt, dtype=torch.int64, device=seeds.device)
    mixed = seeds ^ (salt * _GOLDEN)
    lib = _native_for(seeds)
    if lib is not None and salt.numel() in (1, mixed.numel()):
        mixed, salt = _non_negative(mixed).contiguous(), salt.contiguous()
        derived = torch.empty(mixed.shape, dtype=torch.int64)
        lib.recoworld_derive(mixed.numel(), mixed.data_ptr(), salt.data_ptr(), int(salt.numel() > 1),
                             derived.data_ptr())
        return derived
    hi = user_keys(mixed, seeds.device)
    lo = mix32(hi ^ (salt & MASK32).to(torch.int32) ^ 0x5BD1E995)
    return ((hi.long() & 0x3FFFFFFF) << 32) | (lo.long() & MASK32)


_OFFSETS: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _offsets(stream: int, n: int, device: torch.device) -> torch.Tensor:
    # Cached: the same few (stream, n) pairs are hashed at every step.
    key = (stream, n, device)
    if key not in _OFFSETS:
        index = torch.arange(n, device=device, dtype=torch.int32) + _signed(mix_int(stream))
        _OFFSETS[key] = mix32(index)
    return _OFFSETS[key]


def _bits32(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    lib = _native_for(keys)
    if lib is not None and keys.ndim == 1:
        keys, counters = keys.to(torch.int32).contiguous(), counters.to(torch.int32).contiguous()
        bits = torch.empty(len(keys), n, dtype=torch.int32)
        lib.recoworld_bits32(len(keys), keys.data_ptr(), counters.data_ptr(), mix_int(stream), n, bits.data_ptr())
        return bits
    base = mix32(keys ^ mix32(counters.to(torch.int32) * _signed(_GOLDEN)))
    return mix32(base[:, None] ^ _offsets(stream, n, keys.device)[None, :])


def bits(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` non-negative 32-bit hashes (int64) for each user's (key, counter) on ``stream``."""
    return _bits32(keys, counters, stream, n).long() & MASK32


def uniform(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` float32 uniforms in the open interval ``(0, 1)``."""
    top24 = (_bits32(keys, counters, stream, n) >> 8) & 0xFFFFFF
    return (top24.float() + 0.5) * (1.0 / (1 << 24))


def normal(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` float32 standard normals (inverse-CDF of :func:`uniform`)."""
    return to_normal(uniform(keys, counters, stream, n))


def to_normal(u: torch.Tensor) -> torch.Tensor:
    """Standard normals from uniforms in ``(0, 1)`` by the inverse CDF."""
    return math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
