"""Where RecoWorld keeps downloaded data sets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The data cache: ``$RECOWORLD_CACHE`` when set, else ``~/.cache/recoworld``.

    The directory is created if it does not exist yet.
    """
    path = Path(os.environ.get("RECOWORLD_CACHE") or Path.home() / ".cache" / "recoworld").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
