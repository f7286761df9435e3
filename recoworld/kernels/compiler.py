"""Compiling the plain-C kernels: the compiler, its flags, the libraries' names.

This module needs nothing but the standard library, so that a package build can compile
the kernels before torch is installed: ``setup.py`` loads it by its path and calls
:func:`prebuild`, which compiles every kernel into ``prebuilt/`` inside the package being
built, where :mod:`recoworld.kernels.build` finds them. A library's name carries a hash of
its source, the headers and the flags (:func:`library_name`), so that a prebuilt or
cached library is used only for the very sources it was compiled from; any other, or a
machine without one, compiles at run time into the cache instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# -fno-math-errno lets expf and logf compile to inline code (their results are the same;
# only errno is not set); -pthread for pool.c's threads.
FLAGS = ["-O3", "-fno-math-errno", "-shared", "-fPIC", "-std=c99", "-pthread"]
HERE = Path(__file__).parent
# The headers every kernel may include (rng.h, the C twin of recoworld.rng; layout.h): part
# of each build's hash.
HEADERS = sorted(HERE.glob("*.h"))
#: The kernels' sources, each compiled into a library of its own.
SOURCES = ("rng.c", "users_step.c", "world_step.c", "pool.c")
#: Where a package build puts the libraries it compiled (inside recoworld/kernels/).
PREBUILT = "prebuilt"


class CompilerNotFoundError(RuntimeError):
    """``kernel="c"`` was asked for, but no C compiler could build the kernel."""


def library_name(source: Path) -> str:
    """The file name of ``source``'s library: its stem and a hash of what it is built from."""
    contents = source.read_bytes() + b"".join(h.read_bytes() for h in HEADERS) + " ".join(FLAGS).encode()
    return f"{source.stem}-{hashlib.sha256(contents).hexdigest()[:16]}.so"


def compiler(source: Path) -> str:
    """The C compiler: ``$CC``, else ``cc``, found on ``PATH``."""
    name = os.environ.get("CC", "cc")
    found = shutil.which(name)
    if found is None:
        raise CompilerNotFoundError(
            f"kernel='c' needs a C compiler to build {source.name}, but {name!r} is not on PATH: "
            "install one (e.g. `apt-get install gcc`, `xcode-select --install`) or set $CC to it, "
            "or use kernel='torch'")
    return found


def compile_library(source: Path, target: Path) -> Path:
    """Compile ``source`` into ``target``, built beside it and renamed: a concurrent or
    interrupted build never leaves a half-written library under the final name."""
    cc = compiler(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([cc, *FLAGS, f"-I{source.parent}", str(source), "-o", str(built), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CompilerNotFoundError(
                f"{cc} could not build {source} (exit {result.returncode}):\n{result.stderr.strip()}\n"
                "fix the compiler set-up (or set $CC), or use kernel='torch'")
        os.replace(built, target)
    return target


def prebuild(package_dir: Path, names: tuple[str, ...] = SOURCES) -> list[Path]:
    """Compile the kernels ``names`` (default: all) into ``package_dir/prebuilt``
    (``package_dir`` is the ``recoworld/kernels`` folder of a package being built); returns
    the libraries.
    Raises :class:`CompilerNotFoundError` where none can be built (the caller decides
    whether a package without them is fine: they then compile at run time)."""
    return [compile_library(HERE / name, package_dir / PREBUILT / library_name(HERE / name)) for name in names]
