"""A report folder (``recoworld fidelity``, ``ope``, ``ope evaluate``) whose writer was killed
outright leaves a hidden temporary beside ``--out``; the next report there deletes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from recoworld.apps.ope.evaluate import write

# Fills the report's temporary folder, says so, and waits to be killed.
WRITER = """
import sys, time
from recoworld.logs import new_folder
with new_folder(sys.argv[1]) as (folder, final):
    (folder / "report.json").write_text('{"half": ')
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_report_killed_while_written_leaves_nothing_once_the_report_is_written_again(tmp_path):
    out = tmp_path / "report"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    left = tmp_path / f".report.{writer.pid}.tmp"
    assert sorted(p.name for p in tmp_path.iterdir()) == [left.name]  # hidden: it says it is unfinished

    assert write({"estimates": [{"estimator": "IPS", "estimate": 0.5}]}, out) == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert json.loads((out / "report.json").read_text())["estimates"][0]["estimate"] == 0.5


def test_a_running_writers_temporary_is_left_alone(tmp_path):
    """Another report into the same --out that still runs (this test's parent process here)
    keeps its temporary."""
    running = tmp_path / f".report.{os.getppid()}.tmp"
    running.mkdir()
    write({"estimates": []}, tmp_path / "report")
    assert running.is_dir()
