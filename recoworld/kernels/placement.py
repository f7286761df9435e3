"""Where a simulator's and an env's work runs: the torch device, and torch's CPU threads.

:func:`torch_device` turns a ``device`` setting into a :class:`torch.device` and refuses,
with an error naming the setting, a device this machine does not have (torch itself
fails later, deep inside the first tensor copy, with a bare ``AssertionError``).

:func:`torch_threads` scopes torch's intra-op threads for a block. An env step on CPU is
many small tensor ops beside the C kernels' own threads (:mod:`recoworld.kernels.build`);
with several torch threads each op is a parallel region whose OpenMP workers must all
run before it ends, so a busy core (another process, the kernels' threads) stalls every
op, and the workers spin after each region and keep the cores the kernels need. One
thread for the env's own work keeps its speed whatever else runs on the machine; the
caller's setting is restored afterwards, so an agent's network keeps its threads.

:func:`one_cpu` puts a whole process on one CPU, torch and the C kernels alike: for the
Ray tasks and actors that are scheduled one CPU each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from recoworld.kernels.build import set_threads

#: torch threads of an env's or a simulator's own work on CPU (see the module docstring).
ENV_THREADS = 1


def torch_device(device: str | torch.device, setting: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device`; a CUDA or MPS device this machine lacks is a
    ``ValueError`` that names ``setting`` (the argument or config key that chose it)."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{setting}={device!r} is not a torch device ({error}); use e.g. 'cpu' or 'cuda'") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{setting}={str(device)!r}, but {why}; set {setting}='cpu' (with Hydra: "
                             f"{setting}=cpu), or run on a machine with an NVIDIA GPU and a CUDA build of torch")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"{setting}={str(device)!r}, but this machine has {count} CUDA device(s) "
                             f"(cuda:0..cuda:{count - 1}); choose one of them")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{setting}={str(device)!r}, but MPS is not available here; set {setting}='cpu'")
    return chosen


@contextmanager
def torch_threads(n: int = ENV_THREADS) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the caller's number."""
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_cpu() -> None:
    """Make this process use one CPU: one torch thread and one kernel thread (no pool
    workers, :func:`~recoworld.kernels.build.set_threads`). For the processes a scheduler
    gives one CPU each, as Ray's tasks and actors of ``num_cpus=1`` are: each would
    otherwise start threads for every core of the machine."""
    torch.set_num_threads(1)
    set_threads(1)


def with_env_threads(method: Callable) -> Callable:
    """``method`` run under :func:`torch_threads` with :data:`ENV_THREADS` threads."""
    @functools.wraps(method)
    def scoped(*args, **kwargs):
        with torch_threads(ENV_THREADS):
            return method(*args, **kwargs)

    return scoped
