"""The folder of a saved calibrated world: how it is written, replaced, read and cleared up,
by any number of processes at once.

A world is a folder ``NAME`` of :data:`WORLD_FILES` (:meth:`CalibratedWorld.save
<recoworld.simulators.calibrated.CalibratedWorld.save>` writes them through :func:`save`;
:meth:`~recoworld.simulators.calibrated.CalibratedWorld.load` reads them through
:func:`reading`). Whoever saves or loads it, at once (two ``recoworld calibrate --force``, a
sweep's runs loading the world while one replaces it) or killed at any point:

* ``NAME`` is one whole world or absent. A save writes into a temporary folder
  (:func:`recoworld.logs.replacing`) that takes the name when it is complete; a replacement
  swaps it in by two renames (:func:`finish_replacement`).
* Saves of one world run one at a time: each holds the world's
  :func:`recoworld.logs.writer_lock` while it writes and renames, and a second one waits for
  the first (one warning), so the world ends as the last save wrote it. The lock is the
  operating system's, released when its process ends, so a killed save's lock binds no one;
  its file, the hidden ``.NAME.lock``, stays beside the world (on POSIX) and locks nothing
  while no one holds it.
* A load reads one whole world: the one at ``NAME`` before a replacement that runs meanwhile,
  or the one after it, never a mix. It takes no lock while the folder is in order, and waits
  for the lock only while a replacement renames folders or where a stopped save left
  something to complete or clear.
* What a killed save left, and the temporaries of saves by earlier RecoWorld versions, go at
  the next save or load (:func:`finish_replacement`); nothing a running save may still use
  is touched.
* A world in a folder this process cannot write (a shared, read-only copy) is read as it is,
  leftovers and all.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

from recoworld.logs import TEMPORARY_SUFFIX, left_by_ended_writers, replacing, writer_lock

#: The files of a saved world's folder: the document, then the tensors.
WORLD_FILES = ("world.json", "tensors.pt")
#: Seconds after which a hidden ``.NAME-xxxxxxxx`` folder beside a world, the temporary of a
#: save by an earlier RecoWorld (``tempfile.mkdtemp``'s names, which carry no process id), is
#: taken for abandoned when nothing in it has changed: such a save took seconds.
OLD_TEMPORARY_AGE_S = 3600
#: Whether a folder's files can be opened through one handle on the folder (POSIX, not Windows).
_FOLDER_HANDLES = os.open in os.supports_dir_fd

log = logging.getLogger(__name__)


def save(path: str | Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Save a world at ``path``: ``write(folder)`` writes its :data:`WORLD_FILES` into an empty
    temporary folder, which takes ``path``'s name once ``write`` has returned.

    A world already at ``path`` is kept (``replace=False``, and ``write`` is not called:
    another process saved the same artifact first, and theirs is as good as ours) or replaced
    (``replace=True``) through the renames of :func:`finish_replacement`. The save holds the
    world's :func:`recoworld.logs.writer_lock` meanwhile, and first completes or clears what
    an earlier save stopped there left. Raises ``TimeoutError`` (naming the world, the lock
    file and what to do) where another process holds the lock for longer than
    :data:`recoworld.logs.WRITER_LOCK_TIMEOUT_S`.
    """
    path = Path(path).expanduser()  # "~/worlds/mine" is the user's folder, not a folder named "~"
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(path):
        _finish(path)
        if not _holds_world(path):
            with replacing(path, folder=True) as folder:
                write(folder)
        elif replace:
            staged = _beside(path, "new")
            with replacing(staged, folder=True) as folder:
                write(folder)
            _swap_in(path, staged)
    return path


@contextmanager
def reading(path: str | Path) -> Iterator[list[BinaryIO]]:
    """The :data:`WORLD_FILES` of the world at ``path``, open for reading, all of one world.

    While the folder is in order they are opened without a lock. Where a replacement is
    renaming folders, or a stopped save left something to complete or clear, they are opened
    (and read, in the block) holding the world's lock, after :func:`finish_replacement`'s
    steps; on Windows, where a folder's files cannot be opened through one handle on it, they
    always are. In a folder this process cannot write, the files are opened as they are.
    Raises ``FileNotFoundError`` if there is no world at ``path``.
    """
    path = Path(path).expanduser()
    # Where this process cannot write, it can neither take the lock nor clear anything.
    writable = os.access(path.parent, os.W_OK)
    with ExitStack() as stack:
        files = None
        if not writable or (_FOLDER_HANDLES and not _left_unfinished(path)):
            try:
                files = stack.enter_context(_world_files(path))
            except FileNotFoundError:
                if not (writable and (_holds_world(path) or _left_unfinished(path))):
                    raise
                # A replacement renamed the world while it was opened: open the new one.
        if files is None:
            stack.enter_context(writer_lock(path))
            _finish(path)
            files = stack.enter_context(_world_files(path))
        yield files


def is_world(path: str | Path) -> bool:
    """Whether ``path`` holds a saved world (its ``world.json``), or will once a load puts
    in place the finished world of a replacement stopped between its renames
    (:func:`finish_replacement`): what ``recoworld run``, ``fidelity`` and ``calibrate``
    check before reading a folder or writing over it."""
    path = Path(path).expanduser()
    return _holds_world(path) or (not path.exists() and _holds_world(_beside(path, "new")))


def finish_replacement(path: str | Path) -> None:
    """Complete, or clear away, what a :func:`save` at ``path`` left when it was stopped
    (killed); each step is logged as a warning. Saves and loads do this themselves.

    A save writes into a temporary folder (``.NAME.PID.tmp``, named after the writing
    process) and renames it to ``NAME``. A replacement renames its finished temporary to
    ``.NAME-new``, then ``NAME`` to ``.NAME-old``, ``.NAME-new`` to ``NAME``, and deletes
    ``.NAME-old``. Stopped anywhere, ``NAME`` is a whole world or absent, and here:

    * a temporary whose process no longer runs is unfinished and deleted;
    * a ``.NAME-xxxxxxxx`` folder (8 letters, digits or ``_``), the temporary of a save by an
      earlier RecoWorld, is deleted once nothing in it has changed for
      :data:`OLD_TEMPORARY_AGE_S` and it holds nothing but a world's files;
    * a ``.NAME-new`` is finished (only a complete folder is given that name) and takes
      ``NAME``'s place, as the save that wrote it asked;
    * a ``.NAME-old`` beside a world is the world it replaced, and is deleted.

    It holds the world's lock (:func:`recoworld.logs.writer_lock`) meanwhile, waiting for a
    running save, so what it finds is a stopped save's, not a running one's.
    """
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        return  # nothing was saved there
    with writer_lock(path):
        _finish(path)


def _finish(path: Path) -> None:
    """:func:`finish_replacement`, for a caller that holds the world's lock."""
    staged, retired = _beside(path, "new"), _beside(path, "old")
    for temporary in _abandoned_temporaries(path):
        log.warning("removing %s: a calibrated world that a stopped save left unfinished", temporary)
        shutil.rmtree(temporary, ignore_errors=True)
    for temporary in _old_temporaries(path):
        log.warning("removing %s: the temporary folder of a save of %s by an earlier RecoWorld, untouched for over "
                    "%d s", temporary, path.name, OLD_TEMPORARY_AGE_S)
        shutil.rmtree(temporary, ignore_errors=True)
    if _holds_world(staged):
        log.warning("putting the finished world %s in place at %s, where a stopped replacement left it", staged,
                    path)
        if path.exists():
            shutil.rmtree(retired, ignore_errors=True)  # of an earlier replacement, stopped while deleting it
        _swap_in(path, staged)
    elif retired.exists() and _holds_world(path):
        log.warning("removing %s: the world a stopped replacement had replaced at %s", retired, path)
        shutil.rmtree(retired)


def _swap_in(path: Path, staged: Path) -> None:
    """The renames of a replacement (:func:`finish_replacement`): two renames, so that
    ``path`` is one whole world or the other, never a mix; ``path`` is absent between them."""
    retired = _beside(path, "old")
    if path.exists():
        os.rename(path, retired)
    os.rename(staged, path)
    shutil.rmtree(retired, ignore_errors=True)


def _beside(path: Path, role: str) -> Path:
    """The hidden folder of a replacement of ``path``: ``new`` (finished) or ``old``."""
    return path.with_name(f".{path.name}-{role}")


def _holds_world(path: Path) -> bool:
    return (path / "world.json").is_file()


@contextmanager
def _world_files(path: Path) -> Iterator[list[BinaryIO]]:
    """The :data:`WORLD_FILES` of the world at ``path``, open for reading.

    Where the system allows, both are opened through one handle on the folder, so they are
    of one world even if a replacement renames another to ``path`` meanwhile: a world's
    folder never changes once it has the name (the one replaced is only deleted, and a file
    deleted once open can still be read). Raises ``FileNotFoundError`` if either is missing.
    """
    with ExitStack() as stack:
        try:
            if _FOLDER_HANDLES:
                folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                stack.callback(os.close, folder)
                opener = functools.partial(os.open, dir_fd=folder)
                files = [stack.enter_context(open(name, "rb", opener=opener)) for name in WORLD_FILES]
            else:
                files = [stack.enter_context(open(path / name, "rb")) for name in WORLD_FILES]
        except (FileNotFoundError, NotADirectoryError):
            missing = [name for name in WORLD_FILES if not (path / name).is_file()]
            # world.json without tensors.pt is half a world (copied or cut by hand): only a new fit mends it.
            mend = "; delete it to recalibrate" if _holds_world(path) else ""
            raise FileNotFoundError(f"{path} is not a calibrated-world artifact: it has no {' and no '.join(missing)} "
                                    f"(a world's folder holds {' and '.join(WORLD_FILES)}){mend}") from None
        yield files


def _left_unfinished(path: Path) -> bool:
    """Whether there is anything beside ``path`` that :func:`finish_replacement` would
    complete or clear: a stopped save's, or a running replacement's."""
    return (_beside(path, "new").exists() or _beside(path, "old").exists()
            or bool(_abandoned_temporaries(path) or _old_temporaries(path)))


def _abandoned_temporaries(path: Path) -> list[Path]:
    """The temporary folders (:func:`recoworld.logs.temporary_path`) of saves to ``path`` or
    to its ``.NAME-new`` whose process no longer runs on this machine."""
    names = "|".join(re.escape(f".{target.name}.") for target in (path, _beside(path, "new")))
    return left_by_ended_writers(path.parent, re.compile(rf"(?:{names})(?P<pid>\d+){re.escape(TEMPORARY_SUFFIX)}"))


def _old_temporaries(path: Path) -> list[Path]:
    """The temporary folders that saves to ``path`` by an earlier RecoWorld left
    (``tempfile.mkdtemp(prefix=".NAME-")``: 8 letters, digits or ``_``, no process id)
    where nothing has changed for :data:`OLD_TEMPORARY_AGE_S` and nothing but a world's
    files is held, so that a folder of the user's that happens to match is left alone."""
    pattern = re.compile(rf"{re.escape(f'.{path.name}-')}[a-z0-9_]{{8}}")
    found = []
    for folder in path.parent.glob(f".{glob.escape(path.name)}-*"):
        if not pattern.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            entries = list(folder.iterdir())
            changed = max(p.lstat().st_mtime for p in [folder, *entries])
        except FileNotFoundError:
            continue  # another process's load or save is removing it
        if {p.name for p in entries} <= set(WORLD_FILES) and time.time() - changed > OLD_TEMPORARY_AGE_S:
            found.append(folder)
    return sorted(found)
