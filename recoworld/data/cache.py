"""Where RecoWorld keeps downloaded data sets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The data cache: ``$RECOWORLD_CACHE`` when set, else ``~/.cache/recoworld``.

    The directory is created if it does not exist yet; a file there, or a folder that cannot
    be created (a read-only file system, no permission), is a ``ValueError`` naming it.
    """
    path = Path(os.environ.get("RECOWORLD_CACHE") or Path.home() / ".cache" / "recoworld").expanduser()
    where = "$RECOWORLD_CACHE" if os.environ.get("RECOWORLD_CACHE") else "the default cache"
    if path.exists() and not path.is_dir():
        raise ValueError(f"{where} {path} is a file; point $RECOWORLD_CACHE at a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{where} {path} cannot be created ({err.strerror or err}); point $RECOWORLD_CACHE at a "
                         "folder you can write") from None
    return path
