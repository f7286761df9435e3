"""The ctypes binding of ``rng.c``: :mod:`recoworld.rng`'s hashes over whole CPU tensors."""

from __future__ import annotations

import ctypes

from recoworld.kernels import build

SOURCE = build.source("rng.c")


def library() -> ctypes.CDLL:
    """``rng.c`` compiled, built into the cache on first use; raises
    :class:`~recoworld.kernels.build.CompilerNotFoundError` if it cannot be built."""
    lib = build.load(SOURCE)
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.recoworld_user_keys.argtypes = [i64, ptr, ptr]
    lib.recoworld_derive.argtypes = [i64, ptr, ptr, i64, ptr]
    lib.recoworld_bits32.argtypes = [i64, ptr, ptr, ctypes.c_uint32, i64, ptr]
    # user_keys and derive return the index of the first negative seed, -1 if none
    lib.recoworld_user_keys.restype = lib.recoworld_derive.restype = i64
    lib.recoworld_bits32.restype = None
    return lib
