"""What a run holds from its start to its end, and lets go of however it ends: the run
directory's lock (two runs started at once into one folder), the results of a complete run
that a resume redoes, the TensorBoard writer and the agent of a rollout that raises, and a
Ray task's folder for its log when its worker is killed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recoworld.agents import baselines
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.executor import part_folder
from recoworld.apps.run.rundir import Part, RunDirectory, RunDirectoryError
from recoworld.apps.status import claim
from test_faults_runs import fail_on_call, status

TINY = ["world=synthetic", "world.n_items=200", "env.num_candidates=20", "env.slate_size=4", "env.num_envs=4",
        "experiment.steps=6", "experiment.progress=false", "experiment.plots=false", "agent=random",
        "experiment.seeds=[0,1]"]
PARTS = [f"episodes/agent=random/seed={seed}.parquet" for seed in (0, 1)]
PLAN = [Part("random", 0)]


def run(out: Path, *overrides: str) -> None:
    run_app([*TINY, *overrides, f"hydra.run.dir={out}"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A complete run of TINY, with its plots."""
    out = tmp_path_factory.mktemp("reference")
    run(out, "experiment.plots=true")
    return out


@pytest.fixture
def finished(reference, tmp_path) -> Path:
    """A copy of the complete reference run, to resume."""
    return Path(shutil.copytree(reference, tmp_path / "run"))


# ------------------------------------------------------------ the run directory's lock
def holding(path: Path) -> subprocess.Popen:
    """A process that has taken ``path``'s lock, as a run does first, and has not yet written
    its status (the instant in which a second run used to get in); it holds it until its
    stdin closes. Returns once the lock is held."""
    code = ("import sys; from recoworld.apps.status import claim; lock = claim(sys.argv[1]); assert lock; "
            "print('held', flush=True); sys.stdin.read()")
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "held\n"
    return process


def test_a_run_started_while_another_takes_the_folder_is_refused_and_the_lock_dies_with_its_process(finished):
    """The folder holds a killed run (its pid is dead): resumable, but not by two at once."""
    saved = status(finished)
    (finished / "status.json").write_text(json.dumps({**saved, "state": "running", "pid": 2**22 + 1}))
    before = (finished / "status.json").read_bytes()
    other = holding(finished)
    try:
        with pytest.raises(SystemExit):
            run(finished, "experiment.resume=true")
        assert (finished / "status.json").read_bytes() == before
    finally:
        other.kill()  # SIGKILL: the system releases its lock
        other.wait()
    run(finished, "experiment.resume=true")
    assert status(finished)["state"] == "complete"


def test_the_refusal_names_the_folder_its_lock_and_the_fix(tmp_path):
    other = holding(tmp_path)
    try:
        with pytest.raises(RunDirectoryError) as refused:
            RunDirectory.start(tmp_path, {"world": "w"}, PLAN, resume=False)
    finally:
        other.stdin.close()
        other.wait()
    assert str(refused.value) == (f"{tmp_path} is being written by a running process (it holds "
                                  f"{tmp_path / '.status.json.lock'}); wait for it or stop it, then resume with "
                                  "experiment.resume=true")
    assert not (tmp_path / "status.json").exists()
    with RunDirectory.start(tmp_path, {"world": "w"}, PLAN, resume=False) as directory:
        assert directory.status["state"] == "running"


def test_two_runs_of_one_process_into_one_folder_are_refused_too(tmp_path):
    """A process's own pid in status.json counts as ended (containers reuse ids): the lock
    is what tells a run that another of this process (a notebook's thread) is writing."""
    with RunDirectory.start(tmp_path, {"world": "w"}, PLAN, resume=False):
        with pytest.raises(RunDirectoryError, match="is being written by a running process"):
            RunDirectory.start(tmp_path, {"world": "w"}, PLAN, resume=True)
    with RunDirectory.start(tmp_path, {"world": "w"}, PLAN, resume=True):
        pass


def test_a_run_lets_go_of_its_folder_however_it_ends(tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        run(tmp_path, "env.reward=clickz")  # fails as its first part is built
    assert status(tmp_path)["state"] == "failed"
    assert claim(tmp_path) is not None
    fail_on_call(monkeypatch, 8, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert status(tmp_path)["state"] == "interrupted"
    assert claim(tmp_path) is not None


# ------------------------------------------------------------ a complete run's results
def test_a_failed_resume_of_a_complete_run_keeps_its_results_and_says_whose_they_are(finished, monkeypatch):
    results = {name: (finished / name).read_bytes() for name in ("metrics.json", "returns.png", "lineup.yaml")}
    (finished / PARTS[1]).unlink()  # damaged: the resume runs it again
    fail_on_call(monkeypatch, 2, RuntimeError("act exploded"))
    with pytest.raises(SystemExit):
        run(finished, "experiment.resume=true")
    saved = status(finished)
    assert (saved["state"], saved["error"], saved["attempts"], saved["results_attempt"]) == (
        "failed", "act exploded", 2, 1)
    assert saved["previous_attempts"][0]["state"] == "complete"
    assert {name: (finished / name).read_bytes() for name in results} == results
    with pytest.raises(SystemExit):  # results: no run into the folder but its resume
        run(finished)
    monkeypatch.undo()
    run(finished, "experiment.resume=true")  # plots now off: the earlier attempt's go
    saved = status(finished)
    assert (saved["state"], saved["attempts"], saved["results_attempt"]) == ("complete", 3, 3)
    assert not (finished / "returns.png").exists()
    new, old = (json.loads(data) for data in ((finished / "metrics.json").read_bytes(), results["metrics.json"]))
    for metrics in (new, old):
        metrics["agents"]["random"].pop("seconds")
    assert new == old  # the same seeded rows


def test_a_run_that_never_completed_keeps_no_results_of_an_earlier_release(finished):
    """A run left ``running`` once it had written its results (killed before its status said
    complete) holds no ``results_attempt``: its resume writes them again, and meanwhile the
    folder holds none."""
    saved = status(finished)
    del saved["results_attempt"]
    (finished / "status.json").write_text(json.dumps({**saved, "state": "running", "pid": 2**22 + 1}))
    with RunDirectory.start(finished, saved["config"], [Part("random", 0), Part("random", 1)], resume=True) as run_:
        assert run_.status["results_attempt"] is None
        assert not (finished / "metrics.json").exists() and not (finished / "returns.png").exists()


# ------------------------------------------------------------ what a rollout closes
def test_a_rollout_that_raises_flushes_and_closes_its_tensorboard_events(tmp_path, monkeypatch):
    before = set(threading.enumerate())
    fail_on_call(monkeypatch, 3, RuntimeError("act exploded"))
    with pytest.raises(SystemExit):
        run(tmp_path, "experiment.tensorboard=true", "experiment.seeds=[0]")
    # An open writer keeps a thread that writes its events, until it is closed.
    assert not [t for t in set(threading.enumerate()) - before if "AsyncWriter" in type(t).__name__]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "agent=random" / "seed=0"))
    events.Reload()
    assert [e.step for e in events.Scalars("random/reward")] == [0, 1]  # the steps before the failure


class Closing(baselines.RandomAgent):
    closed = 0

    def close(self) -> None:
        type(self).closed += 1


@pytest.mark.parametrize("error", [None, RuntimeError("act exploded"), KeyboardInterrupt()])
def test_a_rollout_closes_its_agent_once_however_it_ends(tmp_path, monkeypatch, error):
    monkeypatch.setattr(baselines, "RandomAgent", Closing)  # conf/agent/random.yaml's target
    monkeypatch.setattr(Closing, "closed", 0)
    if error is not None:
        fail_on_call(monkeypatch, 3, error)
    try:
        run(tmp_path, "experiment.seeds=[0]")
    except (SystemExit, KeyboardInterrupt):
        assert error is not None
    assert Closing.closed == 1


# ------------------------------------------------------------ a Ray task's folder for its log
def test_the_folder_of_a_killed_ray_task_is_deleted_by_the_next_task(tmp_path, monkeypatch):
    """A worker killed mid-rollout leaves its folder and the log's temporary in it (no
    cleanup runs on SIGKILL); the next task on the machine deletes it, and no live one's."""
    code = textwrap.dedent("""
        import os, signal
        from recoworld.apps.run.executor import part_folder
        with part_folder() as folder:
            (folder / f".part.parquet.{os.getpid()}.tmp").write_bytes(b"PAR1")
            print(folder, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)},
                              stdout=subprocess.PIPE, text=True)
    left = Path(killed.stdout.readline().strip())
    assert killed.wait() == -signal.SIGKILL
    assert left.parent == tmp_path and left.name.startswith(f"recoworld-part-{killed.pid}-")
    assert [p.name for p in left.iterdir()] == [f".part.parquet.{killed.pid}.tmp"]
    live = tmp_path / f"recoworld-part-{os.getppid()}-abcd1234"  # a live process's (this one's parent)
    live.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with part_folder() as folder:
        assert folder.name.startswith(f"recoworld-part-{os.getpid()}-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, folder.name])
    assert [p.name for p in tmp_path.iterdir()] == [live.name]
