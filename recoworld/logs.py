"""The interaction log: one row per user-step, the table that metrics and OPE read.

A rollout (:func:`recoworld.envs.rollout.rollout`) appends one batch of rows per env
step to an :class:`EpisodeLog`, which writes them to Parquet in row groups (or keeps them
in memory). :func:`read_log` reads a log back — or checks a pandas DataFrame that claims to
be one — and refuses anything that is not this schema, naming what is wrong.

Files. An :class:`EpisodeLog` writes under a hidden temporary name beside its file
(:func:`temporary_path`) and renames it into place when it is closed, so a file under its
own name is always complete; a log closed by an exception, or a process killed while
writing, leaves no such file. A log is one Parquet file or a folder of them, its *parts*:
``recoworld run`` writes one part per rollout, ``episodes/agent=<agent>/seed=<seed>.parquet``
of the run directory, and ``read_log(run_dir)`` reads them all (single-file logs of
earlier runs, ``episodes.parquet``, are read as before). Where several processes may write
one path (a calibrated world, say), they hold its :func:`writer_lock` in turn.

The schema is defined once, in :data:`COLUMNS` (name, Arrow type, nullable, meaning), and
carries :data:`SCHEMA_VERSION` in the Parquet metadata. Change the version whenever a
column is added, removed, renamed or changes meaning; readers check it.

Only real interactions are logged: rows of a vector env's autoreset step (which carry no
interaction, see the env manual) never reach the log. Per-item columns are lists in slate
order (position 0 is the top of the slate) and have the slate's length.
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

#: Version of the column layout below; stored in each file's metadata and checked on read.
#: Version 2 added the LLM users' words (``item_reasons``, ``mindset_text``); files of
#: version 1 are read with those columns null. (Splitting a log into parts changed no column.)
SCHEMA_VERSION = 2
#: The versions read_log reads, each with the columns it lacks relative to this version.
READABLE_VERSIONS: dict[str, tuple[str, ...]] = {"1": ("item_reasons", "mindset_text"), "2": ()}
VERSION_KEY = b"recoworld.schema_version"

#: (name, type, nullable, meaning) of every column, in file order.
COLUMNS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    # --- who and when
    ("agent", pa.string(), False, "label of the agent that chose the slate (its config name in a lineup)"),
    ("seed", pa.int64(), False, "seed of the rollout (experiment.seeds)"),
    ("user", pa.int32(), False, "user slot of the vector env, 0..num_envs-1"),
    ("episode", pa.int32(), False,
     "index of the episode within the user slot, 0 for the slot's first user; a slot starts a new "
     "episode (a new user) when the previous one churned or was truncated"),
    ("episode_seed", pa.int64(), False,
     "the env's seed of this user episode; a single SlateEnv reset with it replays the same user"),
    ("step", pa.int32(), False, "step within the episode, 0-based"),
    ("rollout_step", pa.int32(), False, "step of the rollout, 0-based (the same for all slots of a batch)"),
    ("session", pa.int32(), False, "sessions the user had completed before this step (0 in the first session)"),
    ("session_step", pa.int32(), False, "steps already served in the current session before this one"),
    # --- what was shown, and how it was chosen
    ("slate", pa.list_(pa.int64()), False, "catalog ids of the items shown, top to bottom"),
    ("candidate_ids", pa.list_(pa.int64()), True,
     "catalog ids of the request's candidates the agent chose from; null unless experiment.log_candidates"),
    ("propensity", pa.float64(), True,
     "probability that the agent's policy chose this whole ranked slate; null when the agent does not say"),
    ("position_propensity", pa.list_(pa.float64()), True,
     "per position k, probability that the item at k was chosen for position k; null when unknown"),
    ("cascade_propensity", pa.list_(pa.float64()), True,
     "per position k, probability that positions 0..k are as shown; null when unknown"),
    # --- per-item feedback (lists in slate order)
    ("examined", pa.list_(pa.bool_()), False, "the user looked at the position (cascade); unexamined items get no feedback"),
    ("clicked", pa.list_(pa.bool_()), False, "the user opened the item"),
    ("watch_fraction", pa.list_(pa.float32()), False, "share of the item consumed, in [0, 1]; 0 unless clicked"),
    ("liked", pa.list_(pa.bool_()), False, "the user liked the item"),
    ("rating", pa.list_(pa.int8()), False, "explicit rating 1..5 of a clicked item, 0 where none was given"),
    # --- per-step outcome
    ("reward", pa.float32(), False, "the env's reward for the slate (env.reward)"),
    ("satisfaction", pa.float32(), False, "the user's mindset after the step, in [0, 1]"),
    ("left_session", pa.bool_(), False, "the session ended after this step (the user returns later or churns)"),
    ("returned", pa.bool_(), False, "the user ended the session and will come back (only where left_session)"),
    ("churned", pa.bool_(), False, "the user left for good; the episode ends here (terminated)"),
    ("return_gap", pa.float32(), False,
     "days until the next session where returned; 0 while the session goes on; inf where churned"),
    ("terminated", pa.bool_(), False, "the episode ended at this step because the user churned"),
    ("truncated", pa.bool_(), False, "the episode was cut at this step by env.max_steps"),
    # --- reflective instructions
    ("instruction_text", pa.string(), True, "the instruction the user voiced at this step; null when silent"),
    ("instruction_in_force", pa.bool_(), False, "an instruction of the user was in force when the slate was shown"),
    ("compliance", pa.float32(), True,
     "how well the slate followed the instruction in force, in [0, 1]; null where none was in force"),
    # The words of users who have them (LLM users); null for statistical users.
    ("item_reasons", pa.list_(pa.string()), True,
     "LLM users: the reason the user gave for each item, in slate order; null without words"),
    ("mindset_text", pa.string(), True, "LLM users: the user's mindset in their own words after the step; null "
     "without words"),
)

COLUMN_DOCS: dict[str, str] = {name: doc for name, _, _, doc in COLUMNS}
SCHEMA = pa.schema(
    [pa.field(name, dtype, nullable, metadata={"doc": doc}) for name, dtype, nullable, doc in COLUMNS],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
LIST_COLUMNS = tuple(name for name, dtype, _, _ in COLUMNS if pa.types.is_list(dtype))
REQUIRED = tuple(name for name, _, nullable, _ in COLUMNS if not nullable)


log = logging.getLogger(__name__)


class LogSchemaError(ValueError):
    """A log is not (this version of) the episodes schema."""


#: The last bytes of a file being written under :func:`temporary_path`.
TEMPORARY_SUFFIX = ".tmp"
PARQUET_MAGIC = b"PAR1"


def temporary_path(path: str | Path) -> Path:
    """The hidden name beside ``path`` under which this process writes it until it is
    complete (then ``os.replace`` gives it its name: a reader sees no file or a whole one)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def left_by_ended_writers(folder: str | Path, name: re.Pattern) -> list[Path]:
    """The entries of ``folder`` whose name ``name`` matches in full and whose writer's process
    (the pattern's group ``pid``) no longer runs on this machine, sorted: what writers killed
    outright (SIGKILL, a lost machine) left behind, safe to delete. This process's own id
    counts as ended: a container reuses ids, so an entry under it was left by an earlier one.
    None for a ``folder`` that does not exist."""
    if not Path(folder).is_dir():
        return []
    left = []
    for entry in Path(folder).iterdir():
        found = name.fullmatch(entry.name)
        if found is not None and (int(found["pid"]) == os.getpid() or not process_running(int(found["pid"]))):
            left.append(entry)
    return sorted(left)


def process_running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (under another user too): a temporary or
    a run named after a dead process was left by a killed writer. On Windows, where
    ``os.kill`` would end the process, always true: keep what it left rather than guess."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user
    return True


@contextmanager
def replacing(path: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """The :func:`temporary_path` to write ``path`` to: it takes ``path``'s name when the
    block ends without error and is deleted otherwise, so ``path`` holds its previous
    content or the new one, never half of one.

    With ``folder=True`` the temporary is a new, empty folder to fill. It can take the
    name of a missing or empty folder only (``os.replace`` refuses one that holds files,
    with an ``OSError``): to replace a folder, move the old one aside first. A killed
    writer leaves its temporary under the ``.tmp`` name, which says it is unfinished.
    Processes that may write one path at once hold its :func:`writer_lock` around this:
    by itself, the last rename wins.
    """
    temporary = temporary_path(path)
    if folder:
        # A killed process that had this one's id (containers reuse ids) left it: unfinished.
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if folder:
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


#: The end of the name of the file that the writers of a path lock (:func:`lock_path`).
LOCK_SUFFIX = ".lock"
#: Seconds :func:`writer_lock` waits for another writer before it raises ``TimeoutError``.
WRITER_LOCK_TIMEOUT_S = 600.0


def lock_path(path: str | Path) -> Path:
    """The hidden file beside ``path`` that the writers of ``path`` lock in turn."""
    path = Path(path)
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


@contextmanager
def writer_lock(path: str | Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold, for the block, the lock that lets one writer of ``path`` at a time in, across
    processes and threads.

    It is a :class:`filelock.FileLock` on the hidden file :func:`lock_path` beside ``path``:
    the operating system's lock (``flock``; ``LockFileEx`` on Windows), which the system
    releases when its process ends, killed included, so it never outlives its writer. The
    file only carries the lock: on POSIX it stays beside ``path`` when no one holds it (on
    Windows it is deleted), and deleting it while it is held would let a second writer in.

    A writer that finds the lock held says so once (a warning naming ``path`` and the lock
    file) and waits; after ``timeout`` seconds (default :data:`WRITER_LOCK_TIMEOUT_S`) it
    raises ``TimeoutError`` naming them and what to do. Each call takes the lock anew: a
    block that holds it must not ask for it again, or it waits for itself until the timeout.
    """
    path = Path(path)
    lock = FileLock(lock_path(path))
    timeout = WRITER_LOCK_TIMEOUT_S if timeout is None else timeout
    try:
        lock.acquire(timeout=0)  # one try: a writer that has to wait says so first
    except Timeout:
        log.warning("waiting for another process to finish writing %s (it holds %s)", path, lock.lock_file)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise TimeoutError(
                f"gave up after {timeout:g} s waiting for another process to finish writing {path} (it holds "
                f"{lock.lock_file}); let it finish and try again, or end it if it is stuck (`lsof {lock.lock_file}` "
                f"names it; the lock of an ended process is released at once, while deleting {lock.lock_file} "
                "would let two writers in)") from None
    try:
        yield
    finally:
        lock.release()


def try_writer_lock(path: str | Path) -> FileLock | None:
    """The lock of :func:`writer_lock`, taken without waiting and held until released (its
    ``release()``), or ``None`` when another process (or another lock object of this one)
    holds it: for a job that keeps ``path`` for its whole life and refuses a second one
    rather than wait for it. Its file stays, as :func:`writer_lock`'s does."""
    lock = FileLock(lock_path(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def check_new_folder(out: str | Path, flag: str = "--out") -> Path:
    """``out`` as a path, refused (a ``ValueError`` naming it and ``flag``) unless it is new
    or an empty folder: a report's folder is written whole at the end (:func:`new_folder`),
    and an earlier report, or anything else, is never mixed with the new one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file; give a folder for the report")
    # a file where a folder above it should be fails only when the report is written, after the work,
    # and so does a link to nothing there (exists() follows the link, and would step past it); --out
    # itself a link to nothing would send the report to another name
    above = next((folder for folder in (out, *out.parents) if folder.exists() or folder.is_symlink()), None)
    if above is not None and not above.exists():
        raise ValueError(f"{flag} {out}: {above} is a link to nothing ({os.readlink(above)}); give a folder for the "
                         "report")
    if above is not None and not above.is_dir():
        raise ValueError(f"{flag} {out}: {above} is a file, not a folder; give a folder for the report")
    if out.is_dir() and any(out.iterdir()):
        held = ", ".join(sorted(p.name for p in out.iterdir())[:4])
        raise ValueError(f"{flag} {out} already holds files ({held}); choose another {flag} or remove it")
    return out


#: The file in a report's temporary folder (:func:`new_folder`) whose lock the report's writer
#: holds until the folder has its name: a temporary whose lock another process can take was left
#: by a writer that has ended, wherever it ran (another container, another host).
REPORT_LOCK_FILE = ".writer.lock"
#: What a rename onto a name that another folder (one that holds files) or a file took fails with.
_NAME_TAKEN = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR)


@dataclass
class ReportFolder:
    """What :func:`new_folder` yields: ``folder``, the temporary folder to fill, and ``path``,
    the report's folder. It unpacks as ``folder, path``. ``path`` is final once the block has
    ended: where another folder took the name meanwhile, the report went to the next free one,
    and ``path`` names it (a name unpacked in the ``with`` line is the one the block began with)."""

    folder: Path
    path: Path

    def __iter__(self) -> Iterator[Path]:
        return iter((self.folder, self.path))


@contextmanager
def new_folder(out: str | Path) -> Iterator[ReportFolder]:
    """The :class:`ReportFolder` of a new report at ``out``: its temporary folder, beside
    ``out``, takes the report's name when the block ends and is deleted if the block raises,
    so the folder is a whole report or absent. A folder that took the name ``out`` (one that
    holds files: :func:`check_new_folder` found it free; two runs started in the same second
    share a default name) is left alone, whether it was there when the block began or came
    while the work ran: the report goes to ``out-2`` (or the next free name), the
    ReportFolder's ``path`` names it, and a line on stderr says so.

    While it writes, the writer holds the lock of :data:`REPORT_LOCK_FILE` in its temporary.
    The temporaries that writers of ``out`` left beside it when they were killed outright are
    deleted first: those whose lock no one holds, wherever their writer ran (the lock is the
    operating system's, released when its process ends; across hosts, where the shared file
    system honours locks; asked with a shared lock on a read-only descriptor, so another
    user's is asked too), and, where the lock cannot be asked (no lock file: an earlier
    RecoWorld's), those older than :data:`STARTING_WRITER_S` whose writer's process has ended
    on this machine. Each removal is logged, and so is one that could not be done."""
    wanted = Path(out)
    names = itertools.chain([wanted], (wanted.with_name(f"{wanted.name}-{n}") for n in itertools.count(2)))
    out = next(name for name in names if _free_for_report(name))
    out.parent.mkdir(parents=True, exist_ok=True)
    # A report killed outright (SIGKILL, a lost machine) had no chance to delete its half-written
    # folder; without this, each one stays beside --out for good.
    for name in {wanted.name, out.name}:
        _remove_ended_reports(out.parent, name)
    temporary, lock = _start_report(out)
    report = ReportFolder(temporary, out)
    try:
        yield report
        if os.name == "nt":
            # Windows renames no folder while a file in it is open; the lock goes first.
            lock.release()
            (temporary / REPORT_LOCK_FILE).unlink(missing_ok=True)
        while True:
            try:
                os.replace(temporary, report.path)
                break
            except OSError as error:
                if error.errno not in _NAME_TAKEN:
                    raise
            report.path = next(name for name in names if _free_for_report(name))
        # Released after the rename: until then the temporary's lock says its writer lives.
        (report.path / REPORT_LOCK_FILE).unlink(missing_ok=True)
    finally:
        lock.release()
        shutil.rmtree(temporary, ignore_errors=True)
    if report.path != wanted:
        print(f"{wanted} appeared while the report was computed; the report went to {report.path}", file=sys.stderr)


def _free_for_report(path: Path) -> bool:
    """Whether a report can take the name ``path``: nothing is there, or an empty folder."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _remove_ended_reports(folder: Path, name: str) -> None:
    """Delete the temporaries of reports named ``name`` in ``folder`` (:func:`new_folder`)
    whose writer has ended, logging each removal, or why it could not be done."""
    # .NAME.PID.tmp, or .NAME.PID-N.tmp where a live writer under the same process id (in
    # another container) holds .NAME.PID.tmp.
    pattern = re.compile(rf"{re.escape(f'.{name}.')}(?P<pid>\d+)(?:-\d+)?{re.escape(TEMPORARY_SUFFIX)}")
    for entry in sorted(folder.iterdir()):
        found = pattern.fullmatch(entry.name)
        if found is None or not _report_writer_ended(entry, int(found["pid"])):
            continue
        try:
            shutil.rmtree(entry)
        except FileNotFoundError:
            pass  # another report's clean-up removed it first
        except OSError as error:
            log.warning("could not remove %s, a report that a killed process left unfinished (%s); remove it "
                        "yourself, or ask its owner to", entry, error)
        else:
            log.warning("removed %s: a report that a killed process left unfinished", entry)


def _report_writer_ended(temporary: Path, pid: int) -> bool:
    """Whether the writer of the report temporary ``temporary``, made by process ``pid``, has
    ended: no one holds its lock (:func:`_writer_lock_held`), or, where the lock cannot be
    asked (no lock file: an earlier RecoWorld's writer; a file this user may not read), the
    temporary is older than :data:`STARTING_WRITER_S` and its process has ended on this
    machine or had this process's id (:func:`left_by_ended_writers`' rule)."""
    held = _writer_lock_held(temporary / REPORT_LOCK_FILE)
    if held is not None:
        return not held
    try:
        # A writer makes its temporary, then takes the lock: younger, it may be starting (in
        # another thread, or another container under this process's id).
        if time.time() - temporary.stat().st_mtime < STARTING_WRITER_S:
            return False
    except FileNotFoundError:
        return False  # gone meanwhile: nothing to remove
    return pid == os.getpid() or not process_running(pid)


#: Seconds a report temporary whose lock cannot be asked is left alone after it was made.
STARTING_WRITER_S = 60.0


def _writer_lock_held(lock_file: Path) -> bool | None:
    """Whether a writer holds the lock on ``lock_file`` (filelock's exclusive ``flock``), or
    ``None`` where that cannot be asked (no such file, a file this user may not read, no
    ``flock`` on this system or file system). Asked with a shared lock on a read-only
    descriptor, which any user who may read the file can request, so that another user's
    live writer is seen as live whatever the lock file's mode."""
    try:
        import fcntl
    except ImportError:  # Windows: ask through filelock, which needs the file writable
        return _writer_lock_held_by_filelock(lock_file)
    try:
        descriptor = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


def _writer_lock_held_by_filelock(lock_file: Path) -> bool | None:
    """:func:`_writer_lock_held` where ``fcntl`` is missing: by taking the lock at once."""
    if not lock_file.exists():
        return None
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return None
    lock.release()  # at once: no writer takes over a temporary that exists (each makes its own)
    return False


def _start_report(out: Path) -> tuple[Path, FileLock]:
    """A new temporary folder for the report ``out``, and its :data:`REPORT_LOCK_FILE`'s lock,
    held: :func:`temporary_path`'s name, or, where a live writer under the same process id (in
    another container) holds that one, ``.NAME.PID-2.tmp`` and so on."""
    for n in itertools.count(1):
        temporary = temporary_path(out) if n == 1 else out.with_name(f".{out.name}.{os.getpid()}-{n}{TEMPORARY_SUFFIX}")
        try:
            temporary.mkdir()
        except FileExistsError:
            continue
        lock = FileLock(temporary / REPORT_LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another report's clean-up took it in the instant before: it is deleting it
        return temporary, lock
    raise AssertionError("unreachable")


def strict_json(tree):
    """``tree`` (dicts, lists, numbers) as strict JSON takes it: NaN and infinities (an
    undefined estimate) as ``None`` (``null``), numpy scalars and arrays as Python numbers
    and lists."""
    if isinstance(tree, np.ndarray):
        tree = tree.tolist()
    if isinstance(tree, dict):
        return {key: strict_json(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [strict_json(value) for value in tree]
    if isinstance(tree, np.generic):
        tree = tree.item()
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


class EpisodeLog:
    """Rows of the episodes schema, written to Parquet as they come, or kept in memory.

    Args:
        path: the Parquet file to write; ``None`` keeps the rows in memory
            (:meth:`to_pandas`).
        row_group_size: rows buffered before a row group is written.

    The rows go to :func:`temporary_path` of ``path``; :meth:`close` completes that file
    and renames it to ``path`` (replacing any file there), and :meth:`discard` deletes it.
    As a context manager the log closes when the block ends and discards its rows when the
    block raises (a KeyboardInterrupt included), so ``path`` holds a complete log or nothing.
    """

    def __init__(self, path: str | Path | None = None, *, row_group_size: int = 65_536):
        self.path = None if path is None else Path(path)
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._kept: list[pa.RecordBatch] = []
        self._writer: pq.ParquetWriter | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._writer = pq.ParquetWriter(temporary_path(self.path), SCHEMA, compression="zstd")
            except BaseException:  # Ctrl-C as the file opened: no block will discard it
                temporary_path(self.path).unlink(missing_ok=True)
                raise

    def append(self, columns: Mapping[str, Any]) -> None:
        """Add a batch of ``n`` rows given column by column.

        Each value is an array of ``n`` values (``[n, K]`` for list columns), a scalar
        repeated on every row, ``None`` for a nullable column with no value on any row, or
        a ``numpy.ma.MaskedArray`` whose masked entries become nulls.
        """
        unknown = sorted(set(columns) - set(COLUMN_DOCS))
        if unknown:
            raise LogSchemaError(f"columns {unknown} are not in the episodes schema; see recoworld.logs.COLUMNS")
        missing = [name for name in REQUIRED if columns.get(name) is None]
        if missing:
            raise LogSchemaError(f"rows lack required columns {missing}")
        n = _row_count(columns)
        if n == 0:
            return
        arrays = [_to_arrow(columns.get(f.name), f, n) for f in SCHEMA]
        batch = pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
        self.rows += n
        if self._writer is None:
            self._kept.append(batch)
            return
        self._pending.append(batch)
        self._pending_rows += n
        if self._pending_rows >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one row group (file mode)."""
        if self._writer is not None and self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, SCHEMA), row_group_size=self._pending_rows)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        """Write what is buffered, complete the file and give it its name (file mode). If
        that fails before the file has its name (a full disk, Ctrl-C) the log is discarded:
        ``path`` is left as it was, and the temporary, whose bytes a full disk needs back, is
        deleted. A Ctrl-C that arrives once the file has its name is raised all the same, and
        ``path`` holds the whole log."""
        if self._writer is None:
            return
        try:
            self.flush()
            self._writer.close()
            os.replace(temporary_path(self.path), self.path)
            self._writer = None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the rows: the temporary file is deleted and ``path`` is left as it was."""
        self._pending, self._pending_rows, self._kept = [], 0, []
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                # Its footer goes to a file about to be deleted: an error writing it (the disk
                # that failed the rows is full) must not hide the error that discards them.
                with suppress(Exception):
                    writer.close()
            finally:
                temporary_path(self.path).unlink(missing_ok=True)

    def to_table(self) -> pa.Table:
        """The rows kept in memory (``path=None``) as an Arrow table."""
        if self.path is not None:
            raise RuntimeError(f"this log writes to {self.path}; read it with read_log() after close()")
        return pa.Table.from_batches(self._kept, SCHEMA)

    def to_pandas(self) -> pd.DataFrame:
        """The rows kept in memory as a DataFrame, as :func:`read_log` returns it."""
        return _to_frame(self.to_table())

    def __enter__(self) -> EpisodeLog:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def read_log(source: str | Path | Sequence[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """A log as a DataFrame with the schema's columns, after checking it is one.

    Args:
        source: where the log is: a run directory of ``recoworld run`` (its ``episodes/``
            parts are read), a folder of parts (every ``*.parquet`` below it, in natural
            order of their paths: ``seed=2`` before ``seed=10``), one Parquet file written
            by :class:`EpisodeLog`, or a list of such files (read in the order given). A
            DataFrame is checked against the schema and returned as it is, extra columns
            included.

    Raises:
        FileNotFoundError: nothing is at ``source``.
        LogSchemaError: a file is not Parquet (a text file, say), is cut short (no Parquet
            footer), carries no or another schema version, lacks a column or has one of
            the wrong type; a folder holds no part. The message names the file.
    """
    if isinstance(source, pd.DataFrame):
        return _check_frame(source)
    parts = [Path(p) for p in source] if isinstance(source, (list, tuple)) else log_parts(source)
    tables = [_read_part(path) for path in parts]
    return _to_frame(pa.concat_tables(tables) if tables else SCHEMA.empty_table())


def log_parts(source: str | Path) -> list[Path]:
    """The Parquet files of the log at ``source`` (see :func:`read_log`), in reading order."""
    path = Path(source)
    if path.is_file():
        return [path]
    if not path.is_dir():
        if path.name == "episodes.parquet" and (path.parent / "episodes").is_dir():
            raise FileNotFoundError(f"{path} does not exist: this run directory holds its log in parts under "
                                    f"episodes/; read them all with read_log({str(path.parent)!r})")
        raise FileNotFoundError(f"{path} does not exist; read_log reads a run directory, its episodes/ folder, "
                                "or one .parquet part of the log")
    folder = path / "episodes" if (path / "episodes").is_dir() else path
    if folder is path and (path / "episodes.parquet").is_file():
        return [path / "episodes.parquet"]
    parts = sorted(folder.rglob("*.parquet"), key=_natural_order)
    if not parts:
        raise LogSchemaError(f"{folder} holds no part of an episodes log (no *.parquet file): no rollout "
                             "completed there (a run directory's status.json says why)")
    return parts


def _natural_order(path: Path) -> list:
    return [int(token) if token.isdigit() else token for token in re.split(r"(\d+)", path.as_posix())]


def _read_part(path: Path) -> pa.Table:
    """One Parquet file of the log, its format, version and columns checked."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; it was listed as a part of the episodes log")
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(len(PARQUET_MAGIC))
        file.seek(max(0, size - len(PARQUET_MAGIC)))
        tail = file.read()
    expected = "read_log expects an episodes log in Parquet, written by recoworld.logs.EpisodeLog"
    if head != PARQUET_MAGIC:
        raise LogSchemaError(f"{path} is not a Parquet file (it starts with {head!r}, not {PARQUET_MAGIC!r}); "
                             f"{expected}")
    if size < 2 * len(PARQUET_MAGIC) + 4 or tail != PARQUET_MAGIC:
        raise LogSchemaError(f"{path} is cut short: it ends without a Parquet footer ({size} bytes), as a file "
                             f"does when its writer was killed; {expected} and closed")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise LogSchemaError(f"{path} is not a readable Parquet file ({err}); {expected}") from None
    found = (schema.metadata or {}).get(VERSION_KEY)
    if found is None:
        raise LogSchemaError(f"{path} has no {VERSION_KEY.decode()} in its metadata; it was not written by "
                             "recoworld.logs.EpisodeLog")
    version = found.decode()
    if version not in READABLE_VERSIONS:
        raise LogSchemaError(f"{path} has episodes schema version {version}, but this RecoWorld reads versions "
                             f"{sorted(READABLE_VERSIONS)}; read it with the RecoWorld release that wrote it")
    absent = READABLE_VERSIONS[version]
    present = [name for name in COLUMN_DOCS if name not in absent]
    missing = [name for name in present if name not in schema.names]
    if missing:
        raise LogSchemaError(f"{path} lacks columns {missing} of schema version {version}")
    for name, dtype, _, _ in COLUMNS:
        if name in present and not schema.field(name).type.equals(dtype):
            raise LogSchemaError(f"{path}: column {name!r} has type {schema.field(name).type}, expected {dtype}")
    try:
        table = pq.read_table(path, columns=present)
    except (pa.ArrowException, OSError) as err:
        raise LogSchemaError(f"{path} could not be read ({err}); {expected}") from None
    for name in absent:  # columns of a later version: null in an earlier file
        table = table.append_column(SCHEMA.field(name), pa.nulls(table.num_rows, SCHEMA.field(name).type))
    # Cast to this release's schema: parts written by earlier releases may differ in column
    # order or documentation, and the parts are concatenated.
    return table.select(list(SCHEMA.names)).cast(SCHEMA)


def list_column(log: pd.DataFrame, name: str) -> np.ndarray:
    """A list column (e.g. ``slate``, ``clicked``) as a 2-D array ``[rows, K]``.

    All rows must hold lists of one length, as they do within one run; rows of runs with
    different slate sizes must be split first. Works on the Arrow-backed columns that
    :func:`read_log` returns and on object columns of sequences alike.
    """
    column = log[name]
    if len(column) == 0:
        return np.zeros((0, 0))
    if isinstance(column.dtype, pd.ArrowDtype):
        lists = pa.array(column.array)
        lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        if lists.null_count:
            raise LogSchemaError(f"column {name!r} is null at row {int(np.flatnonzero(np.isnan(lengths))[0])}")
        values = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    else:
        rows = column.to_numpy()
        lengths = np.fromiter((len(v) for v in rows), dtype=np.int64, count=len(rows))
        values = None
    if lengths.min() != lengths.max():
        other = int(np.flatnonzero(lengths != lengths[0])[0])
        what, split = (("candidates per request", "the number of candidates") if name == "candidate_ids"
                       else ("items", "slate size"))
        raise LogSchemaError(f"column {name!r} holds lists of lengths {int(lengths.min())}..{int(lengths.max())} "
                             f"(row 0: {int(lengths[0])} {what}; row {other}: {int(lengths[other])}); split the log by "
                             f"{split} first")
    if values is None:
        return np.stack(rows)
    return values.reshape(len(column), int(lengths[0]))


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # List columns stay Arrow-backed: one numpy array per cell would cost far more memory.
    frame = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    frame.attrs["recoworld.schema_version"] = SCHEMA_VERSION
    return frame


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    version = frame.attrs.get("recoworld.schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise LogSchemaError(f"the DataFrame is marked with episodes schema version {version}; "
                             f"this RecoWorld reads version {SCHEMA_VERSION}")
    missing = [name for name in COLUMN_DOCS if name not in frame.columns]
    if missing:
        raise LogSchemaError(f"the DataFrame lacks columns {missing} of episodes schema version {SCHEMA_VERSION}; "
                             "see recoworld.logs.COLUMNS for what each holds")
    for name, dtype, nullable, _ in COLUMNS:
        column = frame[name]
        if not nullable and column.isna().any():
            raise LogSchemaError(f"column {name!r} has a missing value at row {int(np.flatnonzero(column.isna())[0])}; "
                                 "it may not be null")
        kind = column.dtype.kind
        if (pa.types.is_integer(dtype) and kind not in "iu") or (pa.types.is_floating(dtype) and kind not in "fiu") \
                or (pa.types.is_boolean(dtype) and kind != "b"):
            raise LogSchemaError(f"column {name!r} has dtype {column.dtype}, expected {dtype}")
    return frame


def _row_count(columns: Mapping[str, Any]) -> int:
    for name in REQUIRED:
        value = columns[name]
        if isinstance(value, (np.ndarray, list, tuple, pa.Array)):
            return len(value)
    raise LogSchemaError("give at least one required column as an array, so that the number of rows is known")


def _to_arrow(value: Any, field: pa.Field, n: int) -> pa.Array:
    dtype = field.type
    if value is None:
        return pa.nulls(n, dtype)
    if isinstance(value, pa.Array):
        return value.cast(dtype)
    if pa.types.is_list(dtype):
        if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1 and len(value) == n:
            # One list (or None, a null row) per row, e.g. the words of LLM users.
            return pa.array(list(value), dtype)
        array = np.asarray(value)
        if array.ndim != 2 or len(array) != n:
            raise LogSchemaError(f"column {field.name!r} needs an array [{n}, K]; got shape {array.shape}")
        width = array.shape[1]
        values = pa.array(array.reshape(-1).astype(dtype.value_type.to_pandas_dtype(), copy=False))
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, values, type=dtype)
    if pa.types.is_string(dtype):
        if isinstance(value, str):
            return pa.array([value] * n, dtype)
        return pa.array(np.asarray(value, dtype=object), dtype)
    if np.ndim(value) == 0:
        return pa.array(np.full(n, value, dtype=dtype.to_pandas_dtype()))
    mask = np.ma.getmaskarray(value) if isinstance(value, np.ma.MaskedArray) else None
    data = np.ma.getdata(value) if mask is not None else np.asarray(value)
    if len(data) != n:
        raise LogSchemaError(f"column {field.name!r} has {len(data)} values for {n} rows")
    return pa.array(data.astype(dtype.to_pandas_dtype(), copy=False), mask=mask)
