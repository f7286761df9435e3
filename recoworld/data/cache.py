"""Where RecoWorld keeps downloaded data sets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The data cache: ``$RECOWORLD_CACHE`` when set, else ``~/.cache/recoworld``.

    The directory is created if it does not exist yet; a file there is a ``ValueError``.
    """
    path = Path(os.environ.get("RECOWORLD_CACHE") or Path.home() / ".cache" / "recoworld").expanduser()
    if path.exists() and not path.is_dir():
        where = "$RECOWORLD_CACHE" if os.environ.get("RECOWORLD_CACHE") else "the default cache"
        raise ValueError(f"{where} {path} is a file; point $RECOWORLD_CACHE at a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
