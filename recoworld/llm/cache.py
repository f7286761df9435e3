"""A persistent cache of LLM generations, so that re-running an experiment costs no calls.

Each entry is one backend generation, keyed by a SHA-256 of the model's identity, the
messages, the JSON schema and the sampling parameters. Caching single generations (not
final replies) means a re-run replays repair turns too, and a change of ``max_repairs``
reuses what is already there. API keys never enter a key: a backend's identity holds the
model name and the settings that change its output, nothing else.

Storage is one SQLite file (WAL mode, so several processes may share it); within a process
one connection is shared under a lock, so threads and coroutines may use it at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from recoworld.llm.types import BackendCall, Completion


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


class ChatCache:
    """Generations on disk. ``path`` is a SQLite file, or a directory to hold ``llm_cache.sqlite``."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir() or path.suffix == "":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "llm_cache.sqlite"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM generations WHERE key = ?", (key,)).fetchone()
        return None if row is None else Completion(**json.loads(row[0]))

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(
            {
                "text": completion.text,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "finish_reason": completion.finish_reason,
            }
        )
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)", (key, value))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ChatCache({str(self.path)!r})"
