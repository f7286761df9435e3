"""Counter-based random numbers: one independent stream per simulated user.

A batched simulator that drew from one shared generator would give user ``i`` different
draws depending on how many other users share the batch. Here every draw is a hash of
``(user key, user step counter, stream, element index)``, so user ``i`` sees the same
numbers whether it is simulated alone or among 16,384 others, on CPU or GPU. This is what
makes the vector env and N single envs with matching seeds produce the same trajectories.

A user's key is 64 bits wide and a bijection of its seed (:func:`user_keys`), so distinct
seeds always give distinct users; the key and the step counter hash into a 64-bit base, and
draw ``j`` of a stream is the top 32 bits of a hash of the base and a per-draw salt. The
hash is splitmix64's finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; Stafford's Mix13 constants), a bijection of 64-bit words.
Tensors hold the 64-bit patterns as ``int64``: multiplication wraps modulo 2**64 and right
shifts are masked to be logical. On CPU, where a C compiler is available, ``rng.c`` (in
:mod:`recoworld.kernels`) computes the same bits in one pass, built into the RecoWorld
cache on first use; without one, the tensor ops do.

:func:`mix_int` hashes Python integers (seeds, stream ids) into 32 bits.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_M1, _M2 = 0x7FEB352D, 0x846CA68B
GOLDEN64 = 0x9E3779B97F4A7C15
_MIX64_M1, _MIX64_M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
KEY_SALT = 0x2545F4914F6CDD1D  # user_keys
DERIVE_SALT = 0x5BD1E9955BD1E995  # derive
MASK62 = (1 << 62) - 1


def _signed64(value: int) -> int:
    """The int64 holding the 64-bit pattern ``value``."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors of 64-bit patterns (a bijection)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _signed64(_MIX64_M1)
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _signed64(_MIX64_M2)
    return x ^ ((x >> 31) & ((1 << 33) - 1))


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
    # Chris Wellons' lowbias32 (https://nullprogram.com/blog/2018/07/31/).
    x ^= x >> 16
    x = (x * _M1) & MASK32
    x ^= x >> 15
    x = (x * _M2) & MASK32
    return x ^ (x >> 16)


_NATIVE = None  # rng.c compiled (see enable_native)
_NATIVE_TRIED = False  # whether _native_for has tried to build it


def enable_native() -> None:
    """Hash CPU tensors with ``rng.c`` from now on: the same bits, in one pass instead of a
    dozen tensor ops. Raises :class:`~recoworld.kernels.build.CompilerNotFoundError` if it
    cannot be built. Hashing CPU tensors builds it on first use anyway, where a C compiler
    is available."""
    global _NATIVE, _NATIVE_TRIED
    _NATIVE_TRIED = True
    if _NATIVE is None:
        from recoworld.kernels import hashes  # here: the kernels build with the compiler only on demand

        _NATIVE = hashes.library()


def _native_for(tensor: torch.Tensor):
    """rng.c for a CPU tensor, built on the first call if it can be; else ``None``: the
    torch ops compute the same bits (tests/test_fused_kernel.py checks it)."""
    if tensor.device.type != "cpu":
        return None
    if _NATIVE is None and not _NATIVE_TRIED:
        from recoworld.kernels.build import CompilerNotFoundError

        try:
            enable_native()
        except (CompilerNotFoundError, OSError):
            pass  # no compiler, or no writable cache: the torch ops stand in
    return _NATIVE


def _non_negative(seeds: torch.Tensor, first_negative: int | None = None) -> torch.Tensor:
    """``seeds``, refused if one is negative; ``first_negative``: its index where rng.c
    has looked already (-1: none)."""
    if first_negative is None:  # the torch ops look themselves
        negative = (seeds < 0).flatten()
        first_negative = int(negative.nonzero()[0]) if bool(negative.any()) else -1
    if first_negative >= 0:
        raise ValueError(f"seed {int(seeds.flatten()[first_negative])} is negative; seeds must be integers >= 0")
    return seeds


def user_keys(seeds, device: str | torch.device = "cpu") -> torch.Tensor:
    """64-bit keys (int64 patterns) for integer seeds in ``[0, 2**63)``, one per user.

    A bijection of the seed: distinct seeds give distinct keys, hence distinct users.
    """
    seeds = torch.as_tensor(seeds, dtype=torch.int64, device=device)
    lib = _native_for(seeds)
    if lib is not None:
        seeds = seeds.contiguous()
        keys = torch.empty(seeds.shape, dtype=torch.int64)
        _non_negative(seeds, lib.recoworld_user_keys(seeds.numel(), seeds.data_ptr(), keys.data_ptr()))
        return keys
    return mix64(_non_negative(seeds) ^ _signed64(KEY_SALT))


def derive(seeds: torch.Tensor, salt: torch.Tensor | int) -> torch.Tensor:
    """Non-negative 62-bit seeds derived from int64 ``seeds`` (>= 0) and ``salt`` (e.g. an
    episode number)."""
    salt = torch.as_tensor(salt, dtype=torch.int64, device=seeds.device)
    lib = _native_for(seeds)
    if lib is not None and salt.numel() in (1, seeds.numel()):
        seeds, salt = seeds.contiguous(), salt.contiguous()
        derived = torch.empty(seeds.shape, dtype=torch.int64)
        _non_negative(seeds, lib.recoworld_derive(seeds.numel(), seeds.data_ptr(), salt.data_ptr(),
                                                  int(salt.numel() > 1), derived.data_ptr()))
        return derived
    return mix64(_non_negative(seeds) ^ mix64(salt ^ _signed64(DERIVE_SALT))) & MASK62


_SALTS: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _salts(stream: int, n: int, device: torch.device) -> torch.Tensor:
    # Cached: the same few (stream, n) pairs are hashed at every step.
    key = (stream, n, device)
    if key not in _SALTS:
        _SALTS[key] = mix64(torch.arange(n, device=device, dtype=torch.int64) + mix_int(stream))
    return _SALTS[key]


def _bits32(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` int32 patterns: draw ``j`` of each user's (64-bit key, counter modulo 2**32)."""
    lib = _native_for(keys)
    if lib is not None and keys.ndim == 1:
        keys, counters = keys.to(torch.int64).contiguous(), counters.to(torch.int32).contiguous()
        bits = torch.empty(len(keys), n, dtype=torch.int32)
        lib.recoworld_bits32(len(keys), keys.data_ptr(), counters.data_ptr(), mix_int(stream), n, bits.data_ptr())
        return bits
    base = mix64(keys.to(torch.int64) ^ mix64((counters.to(torch.int64) & MASK32) * _signed64(GOLDEN64)))
    return (mix64(base[:, None] ^ _salts(stream, n, keys.device)[None, :]) >> 32).to(torch.int32)


def bits(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` non-negative 32-bit hashes (int64) for each user's (key, counter) on ``stream``."""
    return _bits32(keys, counters, stream, n).long() & MASK32


#: The largest float32 below 1, where :func:`uniform`'s top draw lands.
BELOW_ONE = 1.0 - 2.0**-24


def uniform(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` float32 uniforms in the open interval ``(0, 1)``."""
    top24 = (_bits32(keys, counters, stream, n) >> 8) & 0xFFFFFF
    # float32 holds no half steps above 2**23: the top value's + 0.5 rounds up to 2**24, a
    # uniform of exactly 1 (an infinite normal or logistic draw) once in 2**24 draws. It is
    # put at the float below 1 (as rng.h does); every other draw keeps its bits.
    return ((top24.float() + 0.5) * (1.0 / (1 << 24))).clamp_(max=BELOW_ONE)


def normal(keys: torch.Tensor, counters: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``[B, n]`` float32 standard normals (inverse-CDF of :func:`uniform`)."""
    return to_normal(uniform(keys, counters, stream, n))


def to_normal(u: torch.Tensor) -> torch.Tensor:
    """Standard normals from uniforms in ``(0, 1)`` by the inverse CDF."""
    return math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)


def weibull_mean_factor(shape: float) -> float:
    """``1 / Gamma(1 + 1 / shape)``: the scale of a Weibull law of this shape per unit of its
    mean, so that ``mean * weibull_mean_factor(k) * (-log u) ** (1 / k)`` of a uniform ``u``
    in ``(0, 1)`` draws a Weibull variable of that mean by inversion."""
    return 1.0 / math.gamma(1.0 + 1.0 / shape)
