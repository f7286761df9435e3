"""Plain-C kernels, compiled on first use and called through :mod:`ctypes`.

RecoWorld's opt-in CPU kernels (``kernel="c"``: the statistical users' step in
``simulators/fused_step.c``, the env's bookkeeping in ``envs/world_step.c``) ship as C
sources. Each is compiled once with the system C compiler (``$CC``, else ``cc``) into the
RecoWorld cache (``$RECOWORLD_CACHE`` or ``~/.cache/recoworld``) under a name keyed by a
hash of the source and the flags, then loaded with :mod:`ctypes`. Plain C compiles in a
second, where a torch C++ extension takes over a minute, and needs nothing but libm.

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
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import torch

from recoworld.data.cache import cache_dir

# -fno-math-errno lets expf and logf compile to inline code (their results are the same;
# only errno is not set), which made the users' step about 1.5 times faster.
FLAGS = ["-O3", "-fno-math-errno", "-shared", "-fPIC", "-std=c99"]
# The C twin of recoworld.rng, which every kernel includes; it is part of each build's hash.
RNG_HEADER = Path(__file__).with_name("rng.h")
MIN_USERS_PER_CHUNK = 1024  # below this a thread's turn costs more than it saves
CHUNKS_PER_THREAD = 4

_LOCK = threading.Lock()
_LIBRARIES: dict[Path, ctypes.CDLL] = {}
_POOL: ThreadPoolExecutor | None = None


class CompilerNotFoundError(RuntimeError):
    """``kernel="c"`` was asked for, but no C compiler could build the kernel."""


def _compiler(source: Path) -> str:
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise CompilerNotFoundError(
            f"kernel='c' needs a C compiler to build {source.name}, but {name!r} is not on PATH: "
            "install one (e.g. `apt-get install gcc`, `xcode-select --install`) or set $CC to it, "
            "or use kernel='torch'")
    return path


def library(source: Path) -> ctypes.CDLL:
    """The compiled ``source``, built into the cache on first use."""
    with _LOCK:
        if source not in _LIBRARIES:
            _LIBRARIES[source] = ctypes.CDLL(str(_build(source)))
        return _LIBRARIES[source]


def _build(source: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes() + RNG_HEADER.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"{source.stem}-{digest}.so"
    if target.exists():
        return target
    compiler = _compiler(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a concurrent or interrupted build never leaves a
    # half-written library under the final name.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, f"-I{RNG_HEADER.parent}", str(source), "-o", str(built), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CompilerNotFoundError(
                f"{compiler} could not build {source} (exit {result.returncode}):\n{result.stderr.strip()}\n"
                "fix the compiler set-up (or set $CC), or use kernel='torch'")
        os.replace(built, target)
    return target


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
    # one future per chunk, which cost about 0.2 ms a call.
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


def pointer(tensor: torch.Tensor) -> int:
    """The address of a contiguous CPU tensor's data, for a kernel argument."""
    if not tensor.is_cpu or not tensor.is_contiguous():  # is_cpu: tensor.device builds an object
        raise ValueError("the C kernel needs contiguous CPU tensors; use kernel='torch' on other devices")
    return tensor.data_ptr()


def struct_of(name: str, fields: dict[str, type]) -> type[ctypes.Structure]:
    """A :class:`ctypes.Structure` named ``name`` with ``fields`` in order (mirrors a C struct)."""
    return type(name, (ctypes.Structure,), {"_fields_": list(fields.items())})
