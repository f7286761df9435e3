"""A persistent cache of LLM generations, so that re-running an experiment costs no calls.

Each entry is one backend generation, keyed by a SHA-256 of the model's identity, the
messages, the JSON schema and the sampling parameters. Caching single generations (not
final replies) means a re-run replays repair turns too, and a change of ``max_repairs``
reuses what is already there. API keys never enter a key: a backend's identity holds the
model name and the settings that change its output, nothing else.

Storage is one SQLite file, shared safely by threads, processes and machines:

- Within a process, one connection is shared under a lock, so threads and coroutines may
  use it at once; a forked child (a joblib or Ray worker) opens its own, since a SQLite
  connection must not cross a ``fork``. A cache pickled to a worker reopens its file there.
- Processes of one machine share the file in WAL mode: readers never wait for the writer.
- On a network file system (NFS, CIFS, Lustre, GPFS, BeeGFS, CephFS, ...), which several
  machines mount, the file uses SQLite's rollback journal instead. WAL keeps its index in
  shared memory that only processes of one host can map, so SQLite's documentation rules it
  out over a network (https://www.sqlite.org/wal.html, "WAL does not work over a network
  filesystem"); the rollback journal relies on the file system's byte-range locks, which
  NFSv4, and NFSv3 with its lock daemon, provide.
- Writers take the lock at once (``BEGIN IMMEDIATE``) and wait up to :data:`BUSY_TIMEOUT_S`
  for it, so a busy cache slows a run down instead of failing it. Two processes that make
  the same call at the same time write the same key; the last write wins, and either reply
  is a valid generation of that call.

A cache file that cannot be read (not a SQLite database, a damaged page, an entry that is
not the JSON this class writes) is an error, :class:`~recoworld.llm.errors.ChatCacheError`,
naming the file and the fix: delete it (with its ``-wal`` and ``-shm`` companions) or point
``cache_dir`` elsewhere. It is never repaired or replaced silently: it may hold generations
that were paid for, and the run's replies would change without a word. A sound file that its
surroundings keep from use (a full disk, a read-only mount, missing permissions, an I/O error)
is a :class:`~recoworld.llm.errors.ChatCacheError` too, but one that says the file is intact and
names that fix instead: SQLite's error code, not its wording, tells the two apart. One such
condition does not stop a run: a disk that fills up while generations are stored. A generation
is stored after it was paid for, so the caller still gets it; a warning names the file and the
fix once, and the cache stores nothing more (each later write would fail the same way, after
taking the writers' lock), while what it holds is still replayed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from recoworld.llm.errors import ChatCacheError
from recoworld.llm.types import BackendCall, Completion

logger = logging.getLogger("recoworld.llm")

#: Seconds a reader or writer waits for another process's lock before the run fails.
BUSY_TIMEOUT_S = 120.0
#: SQLite's codes for a file that is not a sound cache: only these advise deleting it.
DAMAGED_FILE_ERRORS = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
#: SQLite's codes (their prefixes: SQLITE_IOERR_WRITE, ...) for a sound file that its
#: surroundings keep from use, with the fix for each.
ENVIRONMENT_ERRORS = {
    "SQLITE_FULL": "the disk holding it is full; free space there",
    "SQLITE_READONLY": "it or its directory cannot be written (a read-only mount, or its permissions); make them "
                       "writable",
    "SQLITE_PERM": "it or its directory cannot be written (a read-only mount, or its permissions); make them "
                   "writable",
    "SQLITE_CANTOPEN": "it or its directory cannot be opened (a read-only mount, its permissions, or a directory "
                       "where the file should be); make it openable",
    "SQLITE_IOERR": "the file system failed to read or write it; check that disk",
}
#: SQLite's words for its codes, for Python 3.10, whose errors lack ``sqlite_errorname``.
ERROR_MESSAGES = {
    "file is not a database": "SQLITE_NOTADB", "database disk image is malformed": "SQLITE_CORRUPT",
    "database or disk is full": "SQLITE_FULL", "attempt to write a readonly database": "SQLITE_READONLY",
    "access permission denied": "SQLITE_PERM", "unable to open database file": "SQLITE_CANTOPEN",
    "disk I/O error": "SQLITE_IOERR", "database is locked": "SQLITE_BUSY", "database table is locked": "SQLITE_LOCKED",
}
#: File systems that several machines mount (``/proc/mounts`` types): no WAL on them.
NETWORK_FILE_SYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "glusterfs", "ceph",
    "fuse.ceph-fuse", "fuse.sshfs", "fuse.glusterfs", "9p", "afs", "ocfs2", "gfs2", "panfs", "wekafs",
})


def file_system_type(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system holding ``path`` (the mount point that is its longest
    prefix), or ``None`` where ``mounts`` cannot be read (not Linux)."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def cache_key(identity: dict, call: BackendCall) -> str:
    """The hex SHA-256 naming ``call`` made on the model described by ``identity``."""
    payload = {
        "model": identity,
        "messages": list(call.messages),
        "json_schema": call.json_schema,
        "sampling": call.sampling(),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _made(directory: Path) -> None:
    """Make ``directory`` (and its parents) for the cache, or say why it cannot be made."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChatCacheError(
            f"the LLM cache directory {directory} cannot be made ({e.strerror or e}: {e.filename or directory}); set "
            "llm.cache_dir to a writable directory (for an LLM agent's own cache, agent.llm.cache_dir)") from None


class ChatCache:
    """Generations on disk. ``path`` is a SQLite file (a name with a suffix), or a directory to
    hold ``llm_cache.sqlite`` (an existing directory, or a name without a suffix, made if
    missing); an existing file whose name has no suffix is refused, naming it."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix == "" and path.exists() and not path.is_dir():
            # A name without a suffix means a directory, and this class never makes such a file:
            # it is someone else's, not to be opened (nor, as a damaged cache, deleted).
            raise ChatCacheError(f"the LLM cache path {path} is a file, not a directory; set llm.cache_dir to a "
                                 "directory (the cache is llm_cache.sqlite inside it)")
        if path.is_dir() or path.suffix == "":
            _made(path)
            path = path / "llm_cache.sqlite"
        else:
            _made(path.parent)
        if path.is_dir():  # SQLite would only say it cannot open it
            raise ChatCacheError(f"the LLM cache {path} is a directory, where the cache file should be; move it "
                                 "away, or set llm.cache_dir to another directory")
        self.path = path
        self._closed = False
        #: Whether a write found the disk full: the cache then stores nothing more (:meth:`put`).
        self.full = False
        #: ``"wal"`` on a local file system, ``"delete"`` (rollback journal) on a network one.
        self.journal_mode = "delete" if file_system_type(path.parent) in NETWORK_FILE_SYSTEMS else "wal"
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        self._pid = os.getpid()
        # Autocommit (isolation_level=None): transactions are begun explicitly, IMMEDIATE.
        with self._reading():  # a directory that cannot be opened fails here, not at the first read
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None)
        try:
            with self._reading(), self._lock:
                self._db.execute(f"PRAGMA journal_mode={self.journal_mode.upper()}")
                self._db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except BaseException:
            self._db.close()
            raise

    def _connection(self) -> sqlite3.Connection:
        """This process's connection: a forked child opens its own.

        Raises:
            RuntimeError: the cache was closed (:meth:`close`): its model was used after its
                ``close()``, a mistake of the calling code, not of the file.
        """
        if self._closed:
            raise RuntimeError(f"the LLM cache {self.path} was used after close(): close a chat model (and its "
                               "cache) only once its calls are done")
        if self._pid != os.getpid():
            self._lock = threading.Lock()  # the parent's may have been held at the fork
            self._open()
        return self._db

    def get(self, key: str) -> Completion | None:
        db = self._connection()
        with self._reading(), self._lock:
            row = db.execute("SELECT value FROM generations WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return Completion(**json.loads(row[0]))
        except (TypeError, ValueError) as e:
            raise self._corrupted(f"its entry {key[:12]}... is not a cached generation ({e})") from None

    def put(self, key: str, completion: Completion) -> None:
        """Store ``completion`` under ``key``. On a full disk it is not stored and nothing is
        raised: a warning names the file and the fix, once, and later calls store nothing
        (:attr:`full`; module docstring). Any other failure raises :class:`ChatCacheError`."""
        if self.full:
            return
        value = json.dumps(
            {
                "text": completion.text,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "finish_reason": completion.finish_reason,
            }
        )
        db = self._connection()
        try:
            with self._reading(), self._lock:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)", (key, value))
                    db.execute("COMMIT")  # in WAL mode a full disk fails here, as the pages are written
                except BaseException:
                    # SQLite rolls back itself on some errors (a full disk), not on all: a transaction
                    # left open would hold the writers' lock against every other process.
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except ChatCacheError as error:
            if not (error.code or "").startswith("SQLITE_FULL"):
                raise
            self.full = True
            logger.warning("the LLM cache %s is on a full disk (%s): from now on the generations made are used "
                           "but not stored, so a re-run pays for them again, while those stored are still "
                           "replayed; free space on that disk, or set llm.cache_dir (an LLM agent's own cache: "
                           "agent.llm.cache_dir) to a directory on another", self.path, error.code)

    @contextmanager
    def _reading(self):
        """Turn SQLite's complaints about the file into a :class:`ChatCacheError` naming it: a
        damaged file with the advice to delete it, a sound one with the fix for its surroundings."""
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # a mistake of the calling code (a closed connection, a bad statement), not of the file
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorname", None) or ERROR_MESSAGES.get(str(e), "")
            if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise  # another process holds it past BUSY_TIMEOUT_S: not the file's fault
            if code in DAMAGED_FILE_ERRORS:
                raise self._corrupted(f"SQLite says: {e}") from None
            raise self._unusable(e, code) from None

    def _unusable(self, error: sqlite3.DatabaseError, code: str) -> ChatCacheError:
        """The error for a cache that SQLite refuses for a reason other than damage: the file
        is kept, and the message says so, since it may hold generations that were paid for."""
        fix = next((fix for prefix, fix in ENVIRONMENT_ERRORS.items() if code.startswith(prefix)), None)
        said = f"SQLite says: {error} ({code})" if code else f"SQLite says: {error}"
        if not self.path.is_file():  # nothing there to keep (a directory is refused before it is opened)
            message = (f"the LLM cache {self.path} cannot be created ({said}): {fix or 'check its directory'}, or "
                       "set llm.cache_dir to another directory")
        elif fix is None:  # neither damage nor its surroundings: SQLite's words are all there is
            message = f"the LLM cache {self.path} cannot be used ({said}); set llm.cache_dir to another directory"
        else:
            message = (f"the LLM cache {self.path} cannot be used ({said}), but the file is not damaged, so keep it: "
                       f"{fix}, or set llm.cache_dir to another directory")
        return ChatCacheError(message, code or None)

    def _corrupted(self, why: str) -> ChatCacheError:
        return ChatCacheError(
            f"the LLM cache {self.path} cannot be read ({why}); delete it (and {self.path.name}-wal, "
            f"{self.path.name}-shm beside it) to start an empty cache, or set llm.cache_dir to another directory"
        )

    def __len__(self) -> int:
        db = self._connection()
        with self._lock:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def __reduce__(self):
        # A connection cannot be pickled: a worker that receives the cache reopens the file.
        return type(self), (str(self.path),)

    def __repr__(self) -> str:
        return f"ChatCache({str(self.path)!r})"
