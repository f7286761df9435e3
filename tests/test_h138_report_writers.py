"""A report's writer (:func:`recoworld.logs.new_folder`) holds a lock in its temporary folder
while it writes, so the clean-up of killed writers' temporaries leaves a live one alone even
where its process id says nothing (another container, another host); and a folder that takes
the report's name while the report is written sends the report to the next free name."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import recoworld.logs as logs
from recoworld.apps.ope.evaluate import write
from recoworld.logs import new_folder

# Writes a report into argv[1] and waits, inside the block, for a line on stdin; then prints
# where the report went.
WRITER = """
import sys
from recoworld.logs import new_folder
with new_folder(sys.argv[1]) as report:
    folder, _ = report
    (folder / "report.json").write_text('{"writer": "first"}')
    print(folder.name, flush=True)
    sys.stdin.readline()
print(report.path, flush=True)
"""

# Holds the lock of the report temporary argv[1] until a line comes on stdin: a live writer
# whose process id, here, is this test's own.
HOLDER = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire(timeout=0)
print("held", flush=True)
sys.stdin.readline()
"""


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_live_writer_whose_process_id_looks_ended_keeps_its_temporary(tmp_path, monkeypatch):
    out = tmp_path / "report"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        temporary = tmp_path / writer.stdout.readline().strip()
        assert temporary.name == f".report.{writer.pid}.tmp"
        # As seen from another PID namespace or host: no process of that id runs here.
        monkeypatch.setattr(logs, "process_running", lambda pid: False)
        assert write({"estimates": [{"estimator": "IPS", "estimate": 0.5}]}, out) == out
        assert (temporary / "report.json").read_text() == '{"writer": "first"}'
        writer.stdin.write("done\n")
        writer.stdin.flush()
        went = writer.stdout.readline().strip()
    finally:
        writer.kill()
        writer.wait()
    # Its report was written, beside the one that took the name first.
    assert went == str(tmp_path / "report-2")
    assert names(tmp_path) == ["report", "report-2"]
    assert json.loads((out / "report.json").read_text())["estimates"][0]["estimate"] == 0.5
    assert json.loads((tmp_path / "report-2" / "report.json").read_text()) == {"writer": "first"}
    assert logs.REPORT_LOCK_FILE not in names(out) + names(tmp_path / "report-2")


def test_a_live_writer_under_this_process_id_keeps_its_temporary(tmp_path):
    """Containers sharing a volume both run their command as pid 1: a temporary named after
    this process's id is another writer's while its lock is held."""
    theirs = tmp_path / f".report.{os.getpid()}.tmp"
    theirs.mkdir()
    (theirs / "report.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(theirs / logs.REPORT_LOCK_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert write({"estimates": []}, tmp_path / "report") == tmp_path / "report"
        assert (theirs / "report.json").read_text() == "{}"
    finally:
        holder.kill()
        holder.wait()
    assert names(tmp_path) == [theirs.name, "report"]
    # Once its writer has ended, the next report deletes it.
    write({"estimates": []}, tmp_path / "other")
    write({"estimates": []}, tmp_path / "report")
    assert names(tmp_path) == ["other", "report", "report-2"]


def test_a_folder_that_takes_the_name_while_the_report_is_written_sends_it_to_the_next_name(tmp_path, capsys):
    out = tmp_path / "report"
    with new_folder(out) as report:
        folder, final = report
        assert (folder, final) == (report.folder, out)
        (folder / "summary.csv").write_text("mine\n")
        out.mkdir()  # another report, finished first
        (out / "summary.csv").write_text("theirs\n")
    assert report.path == tmp_path / "report-2"
    assert (out / "summary.csv").read_text() == "theirs\n"
    assert names(report.path) == ["summary.csv"]
    assert (report.path / "summary.csv").read_text() == "mine\n"
    assert names(tmp_path) == ["report", "report-2"]
    assert capsys.readouterr().err == f"{out} appeared while the report was computed; the report went to {report.path}\n"


def test_a_file_that_takes_the_name_sends_the_report_to_the_next_name(tmp_path):
    out = tmp_path / "report"
    with new_folder(out) as report:
        out.write_text("not a report")
        (tmp_path / "report-2").mkdir()  # an empty folder is free
    assert report.path == tmp_path / "report-2"
    assert out.read_text() == "not a report"


def test_removals_are_logged_once_done_and_a_failed_one_says_so(tmp_path, monkeypatch, caplog):
    ended = tmp_path / f".report.{os.getpid()}.tmp"  # no lock file: an earlier RecoWorld's, this id's
    ended.mkdir()
    _age(ended)
    with caplog.at_level(logging.WARNING, logger="recoworld.logs"):
        write({"estimates": []}, tmp_path / "report")
    assert names(tmp_path) == ["report"]
    assert [r.getMessage() for r in caplog.records] == [
        f"removed {ended}: a report that a killed process left unfinished"]

    caplog.clear()
    ended.mkdir()
    _age(ended)

    real = logs.shutil.rmtree

    def refused(path, *args, **kwargs):  # as for another user's, in a shared (sticky) folder
        if path == ended:
            raise PermissionError(13, "Permission denied", str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(logs.shutil, "rmtree", refused)
    with caplog.at_level(logging.WARNING, logger="recoworld.logs"):
        write({"estimates": []}, tmp_path / "report")
    assert names(tmp_path) == [ended.name, "report", "report-2"]
    assert [r.getMessage() for r in caplog.records] == [
        f"could not remove {ended}, a report that a killed process left unfinished ([Errno 13] Permission "
        f"denied: '{ended}'); remove it yourself, or ask its owner to"]


def _age(folder, seconds: float = 2 * logs.STARTING_WRITER_S):
    """Make ``folder`` look made ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(folder, (then, then))


def test_a_temporary_without_a_lock_yet_is_spared_while_its_writer_may_be_starting(tmp_path):
    """A writer makes its temporary, then takes the lock: in between, another thread's, or
    another container's under this process's id, clean-up must not take it for a killed one."""
    starting = tmp_path / f".report.{os.getpid()}.tmp"
    starting.mkdir()
    write({"estimates": []}, tmp_path / "report")
    assert starting.is_dir()  # made a moment ago, no lock yet: spared
    _age(starting)
    write({"estimates": []}, tmp_path / "report")  # to report-2; the clean-up of report's temporaries runs
    assert not starting.exists()  # older than a writer takes to start: a killed one's
    assert names(tmp_path) == ["report", "report-2"]


def test_the_writers_lock_is_asked_with_a_shared_lock_that_any_reader_may_request(tmp_path):
    lock_file = tmp_path / logs.REPORT_LOCK_FILE
    assert logs._writer_lock_held(lock_file) is None  # no lock file: cannot be asked
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        os.chmod(lock_file, 0o444)  # read-only: asked without opening it for writing
        assert logs._writer_lock_held(lock_file) is True
    finally:
        holder.communicate("\n")
    assert logs._writer_lock_held(lock_file) is False
