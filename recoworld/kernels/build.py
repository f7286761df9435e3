"""Building, loading and calling the plain-C kernels.

Each kernel ships as a C source beside this module. It is compiled once with the system
C compiler (``$CC``, else ``cc``) into the RecoWorld cache (``$RECOWORLD_CACHE`` or
``~/.cache/recoworld``) under a name keyed by a hash of the source, the headers and the
flags, then loaded with :mod:`ctypes`. Plain C compiles quickly and needs nothing but
libm.

A kernel's structs are mirrored by :class:`ctypes.Structure` classes on the Python side.
Every kernel exports, for each struct ``S``, a function ``recoworld_layout_S`` (see
``layout.h``) that reports the struct's size and each field's offset and size;
:func:`load` compares them with the mirror and refuses a mismatch
(:class:`LayoutMismatchError`), so that a field added on one side only is an error at load
time, not a kernel writing into the wrong memory.

Users are independent, so :func:`run_chunks` splits a batch into contiguous chunks run on
:func:`threads` Python threads (ctypes releases the GIL during a call); a user's result
does not depend on the chunking. The kernels bring their own threads: run torch with one
intra-op thread beside them (``torch.set_num_threads(1)``), or torch's OpenMP workers,
which spin for a while after each parallel op, keep the cores the kernels need.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import torch

from recoworld.data.cache import cache_dir

# -fno-math-errno lets expf and logf compile to inline code (their results are the same;
# only errno is not set).
FLAGS = ["-O3", "-fno-math-errno", "-shared", "-fPIC", "-std=c99"]
HERE = Path(__file__).parent
# The headers every kernel may include (rng.h, the C twin of recoworld.rng; layout.h): part
# of each build's hash.
HEADERS = sorted(HERE.glob("*.h"))
MIN_USERS_PER_CHUNK = 1024  # below this a thread's turn costs more than it saves
CHUNKS_PER_THREAD = 4

_LOCK = threading.Lock()
_LIBRARIES: dict[Path, ctypes.CDLL] = {}
_POOL: ThreadPoolExecutor | None = None


class CompilerNotFoundError(RuntimeError):
    """``kernel="c"`` was asked for, but no C compiler could build the kernel."""


class LayoutMismatchError(RuntimeError):
    """A ctypes mirror of a kernel's struct does not lie in memory as the C struct does."""


def source(name: str) -> Path:
    """The path of the kernel source ``name`` (e.g. ``"users_step.c"``) shipped here."""
    return HERE / name


def load(path: Path, structs: Iterable[type[ctypes.Structure]] = ()) -> ctypes.CDLL:
    """The compiled ``path``, built into the cache on first use, its ``structs`` checked
    against the kernel's own layout (:func:`check_layout`) when it is first loaded."""
    with _LOCK:
        if path not in _LIBRARIES:
            lib = ctypes.CDLL(str(_build(path)))
            for struct in structs:
                check_layout(lib, struct)
            _LIBRARIES[path] = lib
        return _LIBRARIES[path]


def _compiler(path: Path) -> str:
    name = os.environ.get("CC", "cc")
    found = shutil.which(name)
    if found is None:
        raise CompilerNotFoundError(
            f"kernel='c' needs a C compiler to build {path.name}, but {name!r} is not on PATH: "
            "install one (e.g. `apt-get install gcc`, `xcode-select --install`) or set $CC to it, "
            "or use kernel='torch'")
    return found


def _build(path: Path) -> Path:
    contents = path.read_bytes() + b"".join(h.read_bytes() for h in HEADERS) + " ".join(FLAGS).encode()
    target = cache_dir() / "kernels" / f"{path.stem}-{hashlib.sha256(contents).hexdigest()[:16]}.so"
    if target.exists():
        return target
    compiler = _compiler(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a concurrent or interrupted build never leaves a
    # half-written library under the final name.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, f"-I{HERE}", str(path), "-o", str(built), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CompilerNotFoundError(
                f"{compiler} could not build {path} (exit {result.returncode}):\n{result.stderr.strip()}\n"
                "fix the compiler set-up (or set $CC), or use kernel='torch'")
        os.replace(built, target)
    return target


def check_layout(lib: ctypes.CDLL, struct: type[ctypes.Structure]) -> None:
    """Refuse ``struct`` unless it lies as the C struct of the same name does in ``lib``:
    the same size, the same fields (by name) at the same offsets with the same sizes."""
    name = struct.__name__
    report = getattr(lib, f"recoworld_layout_{name}", None)
    if report is None:
        raise LayoutMismatchError(f"the kernel {lib._name} exports no recoworld_layout_{name}: it has no struct "
                                  f"{name}, or does not list it (see layout.h)")
    report.argtypes, report.restype = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)], ctypes.c_int64
    size = ctypes.c_int64()
    n_fields = report(None, ctypes.byref(size))
    problems = []
    if size.value != ctypes.sizeof(struct):
        problems.append(f"the struct is {size.value} bytes in C but {ctypes.sizeof(struct)} in Python")
    for field, _ in struct._fields_:
        offset = report(field.encode(), ctypes.byref(size))
        mirror = getattr(struct, field)
        if offset < 0:
            problems.append(f"field {field!r} is not in the C struct")
        elif (offset, size.value) != (mirror.offset, mirror.size):
            problems.append(f"field {field!r} lies at byte {offset} ({size.value} bytes) in C but at byte "
                            f"{mirror.offset} ({mirror.size} bytes) in Python")
    if n_fields != len(struct._fields_):
        problems.append(f"the C struct lists {n_fields} fields, the Python mirror {len(struct._fields_)}")
    if problems:
        raise LayoutMismatchError(f"struct {name}: " + "; ".join(problems) + f". Make the ctypes mirror of {name} "
                                  "match the C struct field for field (and rebuild)")


def threads() -> int:
    """How many threads the kernels use: ``$RECOWORLD_THREADS``, else the usable cores."""
    if "RECOWORLD_THREADS" in os.environ:
        value = os.environ["RECOWORLD_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"RECOWORLD_THREADS={value!r}; give a whole number of threads >= 1")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    # Several chunks per worker, taken in turn: a worker slowed by another thread on its
    # core (the autoreset's restarts, the agent) takes fewer, instead of holding up the step.
    parts = max(1, min(CHUNKS_PER_THREAD * workers, n // MIN_USERS_PER_CHUNK))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_chunks(call, n: int) -> list:
    """``call(begin, end)`` over ``[0, n)`` in contiguous chunks, on :func:`threads` threads
    (the caller's among them); returns the calls' results in chunk order."""
    global _POOL
    workers = threads()
    chunks = _chunks(n, workers)
    if len(chunks) == 1 or workers == 1:
        return [call(*chunk) for chunk in chunks]
    if _POOL is None or _POOL._max_workers != workers - 1:
        _POOL = ThreadPoolExecutor(workers - 1, thread_name_prefix="recoworld-kernel")
    results = [None] * len(chunks)
    # Each thread takes the next chunk until none is left (a range iterator hands each out
    # once: its next() runs under the GIL). The caller works too, instead of waiting on
    # one future per chunk.
    turns = iter(range(len(chunks)))

    def work() -> None:
        for i in turns:
            results[i] = call(*chunks[i])

    helpers = [_POOL.submit(work) for _ in range(workers - 1)]
    try:
        work()
    finally:  # the helpers may still be in a kernel that writes the caller's tensors
        wait(helpers)
    for helper in helpers:
        helper.result()  # raises a helper's error
    return results


def pointer(tensor: torch.Tensor | None) -> int | None:
    """The address of a contiguous CPU tensor's data, for a kernel argument (``None`` for
    ``None``: a NULL pointer)."""
    if tensor is None:
        return None
    if not tensor.is_cpu or not tensor.is_contiguous():  # is_cpu: tensor.device builds an object
        raise ValueError("the C kernel needs contiguous CPU tensors; use kernel='torch' on other devices")
    return tensor.data_ptr()


def struct_of(name: str, fields: dict[str, type]) -> type[ctypes.Structure]:
    """A :class:`ctypes.Structure` named ``name`` with ``fields`` in order (mirrors a C struct)."""
    return type(name, (ctypes.Structure,), {"_fields_": list(fields.items())})
