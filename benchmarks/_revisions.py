"""A module as an earlier commit wrote it, for benchmarks that time it against this checkout's."""

from __future__ import annotations

import subprocess
import types
from pathlib import Path


def module_at(revision: str, path: str) -> types.ModuleType:
    """The module at ``path`` (relative to the repository) of git ``revision``, loaded under a
    name of its own beside this checkout's."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(f"{Path(path).stem}_{revision}")
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module
