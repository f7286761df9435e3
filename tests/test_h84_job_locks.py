"""The lock a job holds on its folder is what says whether its writer lives: a killed run or
study whose process id another process took since resumes (a status of a release before the
lock goes by its process id still); a start refused for what the folder holds leaves no lock
file where there was none; and two merges into one --out are one too many."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from recoworld.apps import cli
from recoworld.apps.robustness.study import RobustnessConfig
from recoworld.apps.robustness.studydir import StudyDirectory, StudyDirectoryError, settings_of
from recoworld.apps.run.run_log import run_state
from recoworld.apps.run.rundir import Part, RunDirectory, RunDirectoryError
from test_h75_run_lifecycle import holding
from test_merge import fake_run

CONFIG, PLAN = {"world": "w"}, [Part("random", 0)]
SETTINGS = settings_of(RobustnessConfig(), [])
LOCK = ".status.json.lock"


@pytest.fixture(scope="module")
def sleeper():
    """A live process that is no job's writer: what a killed job's pid can name (containers reuse ids)."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process.pid
    process.kill()
    process.wait()


def killed_run(path: Path, pid: int) -> Path:
    """A run left `running` by a writer killed outright, whose pid ``pid`` now names."""
    with RunDirectory.start(path, CONFIG, PLAN, resume=False) as directory:
        directory.status.update(pid=pid)
        directory._save()
    return path


def rewrite(path: Path, *forget: str, **fields) -> dict:
    """``path``'s status.json with ``fields`` set and the keys ``forget`` removed."""
    status = {**json.loads((path / "status.json").read_text()), **fields}
    for key in forget:
        del status[key]
    (path / "status.json").write_text(json.dumps(status))
    return status


# ------------------------------------------------------------ a pid taken since
def test_a_killed_run_whose_pid_another_process_took_resumes(tmp_path, sleeper):
    run = killed_run(tmp_path / "run", sleeper)
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["pid"], status["lock"]) == ("running", sleeper, LOCK)
    assert run_state(run, status) == (
        f"was killed (its status.json says running, but process {sleeper} does not hold {LOCK})",
        f"rerun its command with experiment.resume=true hydra.run.dir={run} to finish it")
    with RunDirectory.start(run, CONFIG, PLAN, resume=True) as directory:
        assert directory.status["attempts"] == 2
        assert directory.status["previous_attempts"][0]["state"] == "killed"


def test_a_run_whose_lock_is_held_is_refused_and_reads_as_running(tmp_path, sleeper):
    run = killed_run(tmp_path / "run", os.getpid())
    other = holding(run)
    try:
        status = json.loads((run / "status.json").read_text())
        assert run_state(run, status)[0] == f"is still running (pid {os.getpid()})"
        with pytest.raises(RunDirectoryError, match=f"is being written by a running process \\(it holds {run / LOCK}"):
            RunDirectory.start(run, CONFIG, PLAN, resume=True)
    finally:
        other.stdin.close()
        other.wait()


def test_a_run_of_a_release_before_the_lock_goes_by_its_pid(tmp_path, sleeper):
    run = killed_run(tmp_path / "run", sleeper)
    status = rewrite(run, "lock")  # no lock taken: the pid is all there is
    assert run_state(run, status)[0] == f"is still running (pid {sleeper})"
    with pytest.raises(RunDirectoryError, match=f"is being written by a running process \\(pid {sleeper}, status.json"):
        RunDirectory.start(run, CONFIG, PLAN, resume=True)


def test_a_killed_study_whose_pid_another_process_took_resumes(tmp_path, sleeper):
    study = StudyDirectory.create(tmp_path / "study", SETTINGS, {"world": "w"}, planned=2)
    study.release()
    rewrite(study.path, pid=sleeper, host=socket.gethostname())
    with StudyDirectory.open(study.path) as resumed:
        assert resumed.status["pid"] == sleeper
    rewrite(study.path, "lock")  # a study of a release before the lock
    with pytest.raises(StudyDirectoryError, match=f"still being run by process {sleeper} "):
        StudyDirectory.open(study.path)


# ------------------------------------------------------------ no lock file left by a refusal
def test_a_run_refused_for_what_its_folder_holds_leaves_no_lock_file(tmp_path):
    run = tmp_path / "run"
    with RunDirectory.start(run, CONFIG, [], resume=False) as directory:
        directory.complete()
    (run / LOCK).unlink()  # a run of a release before the lock
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunDirectoryError, match="already holds results of a run"):
        RunDirectory.start(run, CONFIG, [], resume=False)
    assert sorted(p.name for p in run.iterdir()) == before
    with RunDirectory.start(run, CONFIG, [], resume=True):  # taken: now the lock file is the run's
        assert (run / LOCK).exists()


def test_a_study_resume_refused_for_what_its_folder_holds_leaves_no_lock_file(tmp_path):
    done = StudyDirectory.create(tmp_path / "study", SETTINGS, {"world": "w"}, planned=1)
    done.complete()
    done.release()
    (done.path / LOCK).unlink()  # a study of a release before the lock
    with pytest.raises(StudyDirectoryError, match="the study there is complete"):
        StudyDirectory.open(done.path)
    assert not (done.path / LOCK).exists()


# ------------------------------------------------------------ merges into one --out
HOLD_MERGE = ("import sys; from recoworld.logs import try_writer_lock; lock = try_writer_lock(sys.argv[1]); "
              "assert lock; print('held', flush=True); sys.stdin.read()")


def test_a_merge_into_an_out_that_another_merge_writes_is_refused_in_one_line(tmp_path, capsys):
    fake_run(tmp_path / "sweep" / "0", [], [0], [0.1])
    out = tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", HOLD_MERGE, str(out / "sweep.csv")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "held\n"
        assert cli.main(["merge", str(tmp_path / "sweep"), "--out", str(out)]) == 1
        assert capsys.readouterr().err == (
            f"recoworld merge: error: --out {out} is being written by another recoworld merge (it holds "
            f"{out / '.sweep.csv.lock'}); wait for it to end, then merge again, or give another --out\n")
        assert sorted(p.name for p in out.iterdir()) == [".sweep.csv.lock"]
    finally:
        other.stdin.close()
        other.wait()
    assert cli.main(["merge", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    assert (out / "sweep.csv").exists()
