"""API keys never leave ``recoworld run``: not to the console, not to a file, not in a log.

Hydra must see a key given on the command line (it composes the config from it), and it
writes that command line in several places: ``.hydra/overrides.yaml``, ``hydra.yaml`` and
``config.yaml`` of every job, ``multirun.yaml`` of a sweep, the console lines of a sweep
(``#0 : llm.api_key=...``), and the ``Error executing job with overrides: [...]`` line of
a failing job. So instead of hiding keys from Hydra, :func:`redacted_output` guards every
way out of the process while the run lasts:

- the **keys** it knows: the value of every ``api_key`` override in any form
  (``llm.api_key=KEY``, ``+llm.api_key=KEY``, ``'llm={..., api_key: KEY}'``), of every
  ``api_key`` entry of a config Hydra saves, and of the environment variables that name
  keys (``llm.api_key_env``, ``${oc.env:NAME}``, ``RECOWORLD_LLM_API_KEY``,
  ``OPENAI_API_KEY``);
- **files**: Hydra's ``_save_config`` (the ``.hydra/`` files) and ``OmegaConf.save``
  (``multirun.yaml``, ``lineup.yaml``) write redacted text;
- **streams**: ``sys.stdout`` and ``sys.stderr`` are wrapped, so Hydra's error line,
  its tracebacks, the sweep's console lines and rich's output are redacted;
- **logs**: a log-record factory redacts each record (message and traceback) when it is
  made, whatever handler — console or the job's ``.log`` file — writes it;
- **uncaught exceptions** (``HYDRA_FULL_ERROR=1``): ``sys.excepthook`` prints them redacted.

The workers of a launcher (``hydra/launcher=joblib``, ``ray``) are guarded as well, for their
whole life (:func:`guard_worker`).

A key is replaced by :data:`REDACTED`; so is whatever follows ``api_key=`` or
``api_key:`` in any text (a key that was never seen whole), except an interpolation such
as ``${oc.env:MY_KEY}``, which names a variable and not a key. The LLM layer keeps keys
out of its own messages and exception chains (:mod:`recoworld.llm.errors`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig, OmegaConf

#: What replaces an API key in any output.
REDACTED = "<redacted>"
#: Environment variables that hold keys whatever the config says (the openai backend's).
KEY_ENV = ("RECOWORLD_LLM_API_KEY", "OPENAI_API_KEY")
#: Shorter values are not taken for keys (redacting them would mangle ordinary text).
MIN_KEY_CHARS = 6
#: Values that are no key: placeholders and what self-hosted servers accept.
NOT_KEYS = frozenset({"null", "None", "~", "not-needed", REDACTED})

# `api_key=VALUE`, `api_key: VALUE`, `"api_key": "VALUE"`: the value, quoted or not.
_KEY_ENTRY = re.compile(r"""(api_key['"]?\s*[=:]\s*)(['"]?)([^\s,}\]'"]+)""")
_ENV_ENTRY = re.compile(r"""api_key_env['"]?\s*[=:]\s*['"]?([A-Za-z_][A-Za-z0-9_]*)""")
_ENV_INTERPOLATION = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")

_secrets: set[str] = set()
_lock = threading.Lock()


def keep_secret(value) -> None:
    """Take ``value`` for a key from now on (placeholders and very short values are not)."""
    if isinstance(value, str) and len(value) >= MIN_KEY_CHARS and value not in NOT_KEYS \
            and not value.startswith("${"):
        with _lock:
            _secrets.add(value)


def keep_env_secret(name: str) -> None:
    """Take the value of environment variable ``name``, when set, for a key."""
    keep_secret(os.environ.get(name))


def secrets_in_text(text: str) -> None:
    """Take every key that ``text`` (overrides, YAML) gives or names: ``api_key`` values and
    the variables named by ``api_key_env`` and ``${oc.env:...}``."""
    for match in _KEY_ENTRY.finditer(text):
        keep_secret(match.group(3))
    for pattern in (_ENV_ENTRY, _ENV_INTERPOLATION):
        for match in pattern.finditer(text):
            keep_env_secret(match.group(1))


def secrets_in_overrides(overrides: Iterable[str]) -> None:
    """Take the keys of command-line overrides, in every form (module docstring)."""
    for name in KEY_ENV:
        keep_env_secret(name)
    for override in overrides:
        key, _, value = override.partition("=")
        # llm.api_key, and an environment variable set for the job (hydra.job.env_set.OPENAI_API_KEY)
        if key.lstrip("+~").lower().endswith("api_key"):
            value = value.strip("'\"")
            keep_secret(value)
            for part in value.split(","):  # a sweep over keys
                keep_secret(part.strip("'\" "))
        secrets_in_text(override)


def secrets_in_config(config) -> None:
    """Take the keys of a config (a ``DictConfig``, or plain containers), unresolved."""
    if isinstance(config, (DictConfig, ListConfig)):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "api_key":
                keep_secret(value)
            if key == "api_key_env" and isinstance(value, str):
                keep_env_secret(value)
            secrets_in_config(value)
    elif isinstance(config, list):
        for value in config:
            secrets_in_config(value)
    elif isinstance(config, str):
        secrets_in_text(config)


def redact_text(text: str) -> str:
    """``text`` with every known key, and every value after ``api_key=``/``api_key:``, replaced."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_ENTRY.sub(_redact_entry, text)


def _redact_entry(match: re.Match) -> str:
    value = match.group(3)
    if value in NOT_KEYS or value.startswith("${"):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"  # a closing quote stays where it was


def redact_secrets(tree):
    """``tree`` (plain dicts, lists and scalars) with every API key blanked: the value of a
    set ``api_key`` entry (an interpolation such as ``${oc.env:MY_KEY}`` names the variable,
    not the key, and is kept), and keys inside strings (:func:`redact_text`), such as the
    command line's overrides as Hydra saves them."""
    if isinstance(tree, dict):
        return {k: REDACTED if k == "api_key" and isinstance(v, str) and not v.startswith("${")
                else redact_secrets(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact_secrets(v) for v in tree]
    if isinstance(tree, str):
        return redact_text(tree)
    return tree


class RedactingStream:
    """A text stream that writes through :func:`redact_text` to ``stream``; everything else
    (``isatty``, ``encoding``, ``fileno``...) is the wrapped stream's."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _redacting_record_factory(make_record):
    def factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report
            return record
        record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    factory.redacting = True
    return factory


def _redacting_excepthook(previous):
    def hook(kind, value, tb):
        sys.stderr.write(redact_text("".join(traceback.format_exception(kind, value, tb))))

    hook.redacting, hook.previous = True, previous
    return hook


class HydraFilesUnwritable(CompactHydraException):
    """A full disk, a spent quota or a read-only file system stopped Hydra's writing of a
    job's ``.hydra/`` files, before the run began, or of a sweep's ``multirun.yaml``, before
    its jobs: Hydra prints this one line (what to free, where, how to go on), not its traceback."""


def _save_config_redacted(cfg, filename: str, output_dir: Path) -> None:
    """Hydra's ``_save_config``, writing redacted text (and learning the config's keys first).
    What the file held is kept, for the folder's run if this job's run does not start there
    (:mod:`~recoworld.apps.run.hydra_files`). A file it cannot write is removed, and a full disk
    stops the run in the line a full disk gives later in the run (:class:`HydraFilesUnwritable`)."""
    from hydra.core.hydra_config import HydraConfig

    from recoworld.apps.run import hydra_files

    secrets_in_config(cfg)
    path, folder = output_dir / filename, Path(HydraConfig.get().runtime.output_dir)
    earlier = hydra_files.note(folder, path)  # put back if the run does not start in the folder
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(str(path), "w", encoding="utf-8") as file:
            file.write(redact_text(OmegaConf.to_yaml(cfg)))
    except OSError as err:
        from recoworld.apps.run.rundir import unwritable

        if not earlier:  # a file of this job's alone, cut short (an earlier run's is put back whole)
            with suppress(OSError):  # on a read-only file system there is nothing to remove
                path.unlink(missing_ok=True)
        hydra_files.restore(folder)  # the job will not run: the folder's files are its run's
        # A failed write() names no file: the message names the one that was being written.
        named = OSError(err.errno, err.strerror, err.filename or str(path))
        stopped = unwritable(named, folder, None)
        if stopped is None:
            raise
        raise HydraFilesUnwritable(f"recoworld run: error: {stopped}") from err


def _omegaconf_save_redacted(save):
    def redacted_save(config, f, resolve: bool = False) -> None:
        secrets_in_config(config)
        buffer = io.StringIO()
        save(config, buffer, resolve=resolve)
        text = redact_text(buffer.getvalue())
        if isinstance(f, (str, Path)):
            _write_sweep_file(Path(f), text)
        else:
            f.write(text)

    return redacted_save


def _write_sweep_file(path: Path, text: str) -> None:
    """Write ``path`` (a sweep's ``multirun.yaml``, the one file Hydra saves with ``OmegaConf.save``)
    whole: a full disk leaves no empty ``multirun.yaml``, which would make the folder pass for a
    sweep's, and stops the sweep in one line (:class:`HydraFilesUnwritable`), before any job."""
    from recoworld.apps.run.rundir import UNWRITABLE
    from recoworld.logs import replacing

    try:
        with replacing(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    except OSError as err:
        fix = UNWRITABLE.get(err.errno)
        if fix is None:
            raise
        raise HydraFilesUnwritable(f"recoworld run: error: {os.strerror(err.errno)} writing {path}: the sweep in "
                                   f"{path.parent} did not start; {fix}, then run its command again") from err


#: Set by :func:`redacted_output` for the processes that the run starts, to the run's process id:
#: a launcher's worker (``hydra/launcher=joblib``, or ``ray`` on this machine) sees it and
#: guards its own outputs (:func:`guard_worker`).
GUARD_ENV = "RECOWORLD_RUN_REDACTED"


def _guard() -> tuple:
    """Install the guards of the module docstring; returns what they replaced."""
    import hydra.core.utils as hydra_utils

    saved = (sys.stdout, sys.stderr, logging.getLogRecordFactory(), hydra_utils._save_config, OmegaConf.save)
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    if not getattr(saved[2], "redacting", False):
        logging.setLogRecordFactory(_redacting_record_factory(saved[2]))
    if not getattr(sys.excepthook, "redacting", False):
        # Kept after the run: an exception that escapes it is printed after the streams return.
        sys.excepthook = _redacting_excepthook(sys.excepthook)
    hydra_utils._save_config = _save_config_redacted
    OmegaConf.save = staticmethod(_omegaconf_save_redacted(saved[4]))
    return saved


def guard_worker() -> None:
    """Guard a launcher's worker process of ``recoworld run`` for its whole life, as
    :func:`redacted_output` guards the run's own process (nothing in any other process).

    Under ``hydra/launcher=joblib`` or ``ray`` each job runs in a worker, where Hydra writes the
    job's ``.hydra/`` files before the job's function runs; the worker imports
    :mod:`recoworld.apps.run.app` (where that function lives) as it unpickles the job, before
    Hydra writes anything there, and that import calls this. A Ray cluster started elsewhere (``ray.init`` with an address)
    does not pass the run's environment to its workers: there keys can reach the ``.hydra/``
    files, so give them through an environment variable (``llm.api_key_env``)."""
    run = os.environ.get(GUARD_ENV)
    if run is None or run == str(os.getpid()) or isinstance(sys.stdout, RedactingStream):
        return  # not a worker of a run, the run's own process, or guarded already
    secrets_in_overrides(())  # the keys of the environment (a config's are learned when saved)
    _guard()


@contextmanager
def redacted_output(argv: Iterable[str] = ()) -> Iterator[None]:
    """Guard the process's outputs while ``recoworld run`` runs (module docstring), and the
    launcher's workers that it starts (:func:`guard_worker`); the keys of the overrides
    ``argv`` are known from the start."""
    import hydra.core.utils as hydra_utils

    secrets_in_overrides(argv)
    # Hydra's job logging replaces the root logger's handlers with its own, bound to the
    # streams of the run's time: they go with the run, or a later warning of the process (a
    # second run, a notebook) writes to a stream that may have closed.
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    worker_signal = os.environ.get(GUARD_ENV)
    os.environ[GUARD_ENV] = str(os.getpid())
    saved = _guard()
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in root_handlers]:
            root.removeHandler(handler)
            handler.close()
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        sys.stdout, sys.stderr = saved[0], saved[1]
        logging.setLogRecordFactory(saved[2])
        hydra_utils._save_config = saved[3]
        OmegaConf.save = staticmethod(saved[4])
        if worker_signal is None:
            os.environ.pop(GUARD_ENV, None)
        else:
            os.environ[GUARD_ENV] = worker_signal
