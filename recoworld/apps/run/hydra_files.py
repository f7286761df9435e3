"""The ``.hydra/`` files of a run's folder stay those of the run that started there.

Hydra writes a job's ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into its folder
before the job runs. A ``recoworld run`` that the folder then refuses (it holds a finished run,
a run of another config, or one that another process is writing), or that stops before its run
starts there (a config error, Ctrl-C), would leave them describing a config that never ran. So
the job's writer of those files (:func:`~recoworld.apps.run.secrets.redacted_output`'s) notes
what each held (:func:`note`); the runner says when the run has started in the folder
(:func:`started`: the files are then this run's); and when the job ends otherwise, or Hydra
cannot write them all, :func:`restore` puts the earlier files back, each whole. The run's own
record of what it ran is its ``status.json`` either way, which is what RecoWorld's readers read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

#: Per job folder, the Hydra files that this process rewrote there, with what they held before.
_before: dict[Path, dict[Path, bytes]] = {}


def note(folder: str | Path, path: Path) -> bool:
    """``path``, a Hydra file of the job whose folder is ``folder``, is about to be written:
    keep what it holds (the first time only: what the folder held before this job). Returns
    whether it held anything, which :func:`restored` would put back."""
    kept = _before.setdefault(Path(folder).resolve(), {})
    if path not in kept and path.is_file():
        kept[path] = path.read_bytes()
    return path in kept


def started(folder: str | Path) -> None:
    """The run has started in ``folder``: its Hydra files are this job's, and stay."""
    _before.pop(Path(folder).resolve(), None)


@contextmanager
def restored(folder: str | Path) -> Iterator[None]:
    """Around a job in ``folder``: when it ends without its run having started there
    (:func:`started`), however it ends, :func:`restore`."""
    try:
        yield
    finally:
        restore(folder)


def restore(folder: str | Path) -> None:
    """Give the Hydra files that this process rewrote in ``folder`` their earlier content back,
    each whole (nothing, once the run has started there)."""
    from recoworld.logs import replacing

    for path, content in _before.pop(Path(folder).resolve(), {}).items():
        # A folder that cannot be written keeps the refused job's files: the readers read status.json.
        with suppress(OSError), replacing(path) as temporary:
            temporary.write_bytes(content)
