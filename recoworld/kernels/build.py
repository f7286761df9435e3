"""Building, loading and calling the plain-C kernels.

Each kernel ships as a C source beside this module. A package build compiles it into
``prebuilt/`` inside the package where a C compiler exists (``setup.py``, through
:mod:`recoworld.kernels.compiler`); otherwise, or when the sources changed since (an
editable install), it is compiled on first use with the system C compiler (``$CC``, else
``cc``) into the RecoWorld cache (``$RECOWORLD_CACHE`` or ``~/.cache/recoworld``). Either
library's name carries a hash of the source, the headers and the flags; it is loaded with
:mod:`ctypes`. Plain C compiles quickly and needs nothing but libm.

:func:`available` says whether the kernels can run here, which is how ``kernel="auto"``
(see :func:`choose`) picks C or torch.

A kernel's structs are mirrored by :class:`ctypes.Structure` classes on the Python side.
Every kernel exports, for each struct ``S``, a function ``recoworld_layout_S`` (see
``layout.h``) that reports the struct's size and each field's offset and size;
:func:`load` compares them with the mirror and refuses a mismatch
(:class:`LayoutMismatchError`), so that a field added on one side only is an error at load
time, not a kernel writing into the wrong memory. A kernel keeps the struct of its previous
call (:meth:`CompiledKernel._reuse_frame`) and uses it again only where building it afresh
would give the same bytes (:func:`addresses`): then it sets the call's own pointers alone.

Users are independent, so :func:`run_parallel` splits a batch into contiguous chunks that
:func:`threads` threads claim in turn: the caller's and the workers of ``pool.c``, POSIX
threads that wait awake for a short while between kernel calls (ctypes releases the GIL
for the whole call); a user's result does not depend on the chunking. The kernels bring
their own threads: torch beside them runs on one intra-op thread (the envs scope their
torch work so, see :mod:`recoworld.kernels.placement`), or torch's OpenMP workers, which
spin for a while after each parallel op, keep the cores the kernels need.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from recoworld.data.cache import cache_dir
from recoworld.kernels.compiler import HERE, PREBUILT, SOURCES, CompilerNotFoundError, compile_library, library_name

#: The kernels a simulator or env can be built with: ``"auto"`` picks one of the others (:func:`choose`).
KERNELS = ("auto", "torch", "c")
MIN_USERS_PER_CHUNK = 128  # below this a claim costs more than it saves
# Chunks small enough that the thread which finishes first waits little for the others.
CHUNKS_PER_THREAD = 16

_LOCK = threading.Lock()
_LIBRARIES: dict[Path, ctypes.CDLL] = {}


class LayoutMismatchError(RuntimeError):
    """A ctypes mirror of a kernel's struct does not lie in memory as the C struct does."""


def source(name: str) -> Path:
    """The path of the kernel source ``name`` (e.g. ``"users_step.c"``) shipped here."""
    return HERE / name


def load(path: Path, structs: Iterable[type[ctypes.Structure]] = ()) -> ctypes.CDLL:
    """The compiled ``path``: the library a package build shipped, else the one built into
    the cache on first use; its ``structs`` checked against the kernel's own layout
    (:func:`check_layout`) when it is first loaded."""
    with _LOCK:
        if path not in _LIBRARIES:
            lib = _open(path)
            for struct in structs:
                check_layout(lib, struct)
            _LIBRARIES[path] = lib
        return _LIBRARIES[path]


def _open(path: Path) -> ctypes.CDLL:
    name = library_name(path)
    shipped = HERE / PREBUILT / name
    if shipped.exists():
        try:
            return ctypes.CDLL(str(shipped))
        except OSError:
            pass  # built for another machine: compile here instead
    target = cache_dir() / "kernels" / name
    if not target.exists():
        compile_library(path, target)
    return ctypes.CDLL(str(target))


_AVAILABLE: bool | None = None


def available() -> bool:
    """Whether the C kernels run here: every kernel shipped prebuilt or compiled into the
    cache (on the first call, where a C compiler exists). Asked once per process."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            for name in SOURCES:
                load(source(name))
            _AVAILABLE = True
        except (CompilerNotFoundError, OSError):
            _AVAILABLE = False
    return _AVAILABLE


def choose(kernel: str, device, follows_reference: bool = True) -> str:
    """The kernel that runs for the choice ``kernel`` (one of :data:`KERNELS`) on
    ``device``: ``"auto"`` is ``"c"`` on CPU where the kernels run (:func:`available`) and
    ``follows_reference`` (the work is the one the C kernels port), else ``"torch"``;
    ``"c"`` and ``"torch"`` are themselves (the caller refuses ``"c"`` where it cannot run)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}; choose one of {KERNELS}")
    if kernel != "auto":
        return kernel
    cpu = getattr(device, "type", str(device).split(":")[0]) == "cpu"
    return "c" if cpu and follows_reference and available() else "torch"


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


class CompiledKernel:
    """Base of a kernel object that holds its compiled library: ``library`` (a function
    returning the loaded ``ctypes.CDLL``) is loaded when the object is built, so that a
    missing compiler shows up then rather than mid-rollout. A copy (``copy.deepcopy``, pickle:
    a twin of the world, a worker process) loads the library again instead of copying its
    handle, which ctypes cannot."""

    library: Callable[[], ctypes.CDLL]

    def __post_init__(self):
        self._lib = type(self).library()

    def __getstate__(self) -> dict:
        # The kept frame holds the original's addresses: a copy builds its own.
        return {name: value for name, value in vars(self).items() if name not in ("_lib", "_kept_frame")}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self._lib = type(self).library()

    def _reuse_frame(self, key: list) -> ctypes.Structure | None:
        """The struct the previous call kept (:meth:`_keep_frame`) if it was built from the
        same ``key`` (:func:`addresses` of the tensors it points to, and the sizes it holds),
        else ``None``. It is taken out either way: a call running meanwhile on another thread
        finds none and builds its own, so no struct is rewritten while a kernel reads it. Its
        call's own pointers (slates, idle slots, response or observation buffers) are those
        of the previous call, freed since: the caller sets every one of them before use."""
        kept = self.__dict__.pop("_kept_frame", None)  # one dict operation: atomic under the GIL
        return kept[1] if kept is not None and kept[0] == key else None

    def _keep_frame(self, key: list, frame: ctypes.Structure) -> None:
        """Keep ``frame``, built from ``key``, for the next call, once the kernel is done with it."""
        self._kept_frame = (key, frame)


_THREADS: int | None = None


def set_threads(n: int | None) -> None:
    """Run this process's kernels on ``n`` threads from now on, whatever
    ``$RECOWORLD_THREADS`` says (``None``: back to :func:`threads`' own rule). A process
    given one CPU, as a Ray task or actor is, sets 1
    (:func:`~recoworld.kernels.placement.one_cpu`): with a pool the size of the machine in
    every such process, the workers of all of them would contend for every core."""
    global _THREADS
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"kernel threads {n!r}; give a whole number >= 1, or None for the default")
    _THREADS = n


def threads() -> int:
    """How many threads the kernels use: :func:`set_threads`' number, else
    ``$RECOWORLD_THREADS``, else ``$OMP_NUM_THREADS`` (its first level), else the usable
    cores. ``OMP_NUM_THREADS`` is the knob schedulers turn for the processes they start:
    Ray sets it to a task's CPUs, joblib's workers (Hydra's joblib launcher) to the cores
    divided among them, many batch scripts to the CPUs of the job; torch follows it too."""
    if _THREADS is not None:
        return _THREADS
    if "RECOWORLD_THREADS" in os.environ:
        value = os.environ["RECOWORLD_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"RECOWORLD_THREADS={value!r}; give a whole number of threads >= 1")
        return int(value)
    # Not ours to police: a value that is not a positive count is left to its owner.
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) >= 1:
        return int(first)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


MAX_CHUNKS = (1 << 22) - 1  # what pool.c's claim word counts


_RUN_PARALLEL = None


def _run_parallel():
    """pool.c's entry point, loaded once (each kernel call of a step goes through it)."""
    global _RUN_PARALLEL
    if _RUN_PARALLEL is None:
        run = load(source("pool.c")).recoworld_run_parallel
        run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                        ctypes.POINTER(ctypes.c_int64)]
        run.restype = ctypes.c_int64
        _RUN_PARALLEL = run
    return _RUN_PARALLEL


def run_parallel(function, args: ctypes.Structure, n: int, min_chunk: int = MIN_USERS_PER_CHUNK) -> list[int]:
    """The chunk ``function`` of a kernel library (in C ``int64_t f(int64_t begin, int64_t
    end, const void *args)``, returning the chunk's code) over users ``[0, n)`` with
    ``args`` (a ctypes struct, passed by reference), in contiguous chunks of at least
    ``min_chunk`` users (fewer where a user's work is heavier) on :func:`threads` threads,
    the caller's among them (``pool.c``); returns the chunks' codes in chunk order."""
    workers = threads()
    chunk = max(min_chunk, -(-n // (CHUNKS_PER_THREAD * workers)), -(-n // MAX_CHUNKS))
    codes = (ctypes.c_int64 * max(1, -(-n // chunk)))()
    count = _run_parallel()(ctypes.cast(function, ctypes.c_void_p), ctypes.byref(args), n, chunk, workers, codes)
    return codes[:count]


def pointer(tensor: torch.Tensor | None) -> int | None:
    """The address of a contiguous CPU tensor's data, for a kernel argument (``None`` for
    ``None``: a NULL pointer)."""
    if tensor is None:
        return None
    if not tensor.is_cpu or not tensor.is_contiguous():  # is_cpu: tensor.device builds an object
        raise ValueError("the C kernel needs contiguous CPU tensors; use kernel='torch' on other devices")
    return tensor.data_ptr()


def addresses(tensors: Iterable[torch.Tensor | None]) -> list[int | None]:
    """What :func:`pointer` gives for each of ``tensors`` now, -1 where it would refuse one.

    A kernel's struct holds nothing of a tensor but this address. Two calls whose lists are
    equal (and whose sizes are) would therefore build the same struct, byte for byte, so the
    struct built for the first can serve the second: a tensor replaced, reallocated in place
    (``resize_``, ``set_``, ``.data =``) or made non-contiguous reads differently here, and
    the struct is built again, through :func:`pointer` and its checks."""
    return [None if t is None else t.data_ptr() if t.is_cpu and t.is_contiguous() else -1 for t in tensors]


def struct_of(name: str, fields: dict[str, type]) -> type[ctypes.Structure]:
    """A :class:`ctypes.Structure` named ``name`` with ``fields`` in order (mirrors a C struct)."""
    return type(name, (ctypes.Structure,), {"_fields_": list(fields.items())})
