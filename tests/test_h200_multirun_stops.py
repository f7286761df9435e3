"""How a stopped ``--multirun`` job is named and advised: Ctrl-C to a ``hydra/launcher=ray``
sweep leaves its jobs ``interrupted``; a job stopped as it started (an empty log) is not said
to have a log that says why; an unfinished job's line says how many rollouts are kept; a
job refused its folder names ``hydra.sweep.dir``, not ``hydra.run.dir``; and a Ctrl-C while
``experiment.executor=ray`` starts Ray stops the run once Ray is up."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

import pytest
from omegaconf import OmegaConf

from recoworld.apps import cli
from recoworld.apps.merge_runs import unfinished_reason
from test_multirun_failures import interrupt_when_both_run

TINY = ["world=synthetic", "world.n_items=50", "env.num_envs=4", "experiment.progress=false", "experiment.plots=false"]


@pytest.mark.slow
def test_ctrl_c_to_a_ray_launcher_sweep_leaves_its_jobs_interrupted(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "recoworld.apps.cli", "run", "--multirun", "hydra/launcher=ray", *TINY,
               "experiment.steps=20000", "agent=random", "experiment.seeds=[0],[1]", f"hydra.sweep.dir={sweep}"]
    # SIGINT to the sweep's process only: the Ray tasks that run its jobs never see it.
    err = interrupt_when_both_run(command, sweep, start_within=180)
    assert f"{sweep / '0'} has no metrics.json: the job was interrupted: 0 of 1 rollouts complete; rerun the sweep's" \
        in err
    assert "still running" not in err


def _hydra_job(job, log: str | None):
    """The folder of a job stopped before its run began: Hydra's ``.hydra/`` and its job log."""
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("[]")
    if log is not None:
        (job / "recoworld.log").write_text(log)


def test_a_job_stopped_as_it_started_is_not_said_to_have_a_log_that_says_why(tmp_path):
    _hydra_job(tmp_path / "empty", "")  # Ctrl-C before the runner logged anything
    _hydra_job(tmp_path / "none", None)
    _hydra_job(tmp_path / "refused", "[ERROR] - recoworld run: error: experiment.executor='dask'\n")
    assert unfinished_reason(tmp_path / "empty") == (
        "the job was stopped as it started, with nothing to keep (no status.json; its recoworld.log is empty)")
    assert unfinished_reason(tmp_path / "none") == (
        "the job was stopped as it started, with nothing to keep (no status.json; no log)")
    assert unfinished_reason(tmp_path / "refused") == (
        "the job stopped before its run began (no status.json; recoworld.log says why)")


def interrupted_job(sweep):
    """A job folder ``sweep/0`` whose status says it was interrupted with 1 of 3 rollouts complete."""
    from recoworld.apps.status import now

    job = sweep / "0"
    job.mkdir(parents=True)
    done = {"agent": "random", "seed": 0, "segment": None, "file": "episodes/agent=random/seed=0.parquet", "rows": 4}
    (job / "status.json").write_text(json.dumps({
        "state": "interrupted", "error": None, "error_type": None, "pid": os.getpid(), "host": socket.gethostname(),
        "parts": {"planned": 3, "complete": [done], "current": None}, "started": now(), "updated": now(),
        "finished": now(), "attempts": 1, "sweep": str(sweep)}))
    return job


def test_an_interrupted_jobs_line_says_how_many_rollouts_are_kept(tmp_path, capsys):
    from recoworld.apps.merge_multirun import MergeSweep, end_stopped_sweeps

    sweep = tmp_path / "sweep"
    MergeSweep().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    job = interrupted_job(sweep)
    assert end_stopped_sweeps(interrupted=True) == [sweep]
    assert (f"recoworld run: {job} has no metrics.json: the job was interrupted: 1 of 3 rollouts complete; rerun the "
            f"sweep's command with experiment.resume=true hydra.sweep.dir={sweep} to finish it") in \
        capsys.readouterr().err


def test_a_sweep_job_refused_its_folder_names_hydra_sweep_dir(tmp_path, capsys):
    sweep, run = tmp_path / "sweep", tmp_path / "run"
    tiny = [*TINY, "experiment.steps=4", "agent=random", "experiment.seeds=[0]"]
    assert cli.main(["run", "--multirun", *tiny, f"hydra.sweep.dir={sweep}"]) == 0
    assert cli.main(["run", *tiny, f"hydra.run.dir={run}"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["run", "--multirun", *tiny, f"hydra.sweep.dir={sweep}"])
    err = " ".join(capsys.readouterr().err.split())  # the console wraps lines
    assert (f"{sweep / '0'} already holds results of a run (status.json: complete, 1 of 1 rollouts complete); pass "
            "experiment.resume=true to finish it (its complete rollouts are kept), or choose another hydra.sweep.dir "
            "for a new sweep") in err
    assert "hydra.run.dir" not in err
    with pytest.raises(SystemExit):
        cli.main(["run", *tiny, f"hydra.run.dir={run}"])
    assert ("pass experiment.resume=true to finish it (its complete rollouts are kept), or choose another "
            "hydra.run.dir for a new run") in " ".join(capsys.readouterr().err.split())


class _StartingRay:
    """Stands in for the ``ray`` module: Ctrl-C arrives while ``init`` starts Ray."""

    def __init__(self):
        self.started = False

    def is_initialized(self):
        return self.started

    def init(self, **kwargs):
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.01)  # Python runs a handler between instructions: an unheld one raises here
        self.started = True


def test_ctrl_c_while_ray_starts_stops_the_run_once_ray_is_up(monkeypatch):
    from recoworld.apps.run import executor

    ray = _StartingRay()
    monkeypatch.setattr(executor, "_import_ray", lambda: ray)
    with pytest.raises(KeyboardInterrupt):
        executor.ensure_ray(None)
    assert ray.started  # Ray's exit hook, registered as init returns, stops its processes with the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_joining_a_cluster_stops_the_join_at_once(monkeypatch):
    """Joining starts no process here: a join that hangs is stopped where Ctrl-C comes, not
    held until Ray gives up (20 s and more)."""
    from recoworld.apps.run import executor

    ray = _StartingRay()
    monkeypatch.setattr(executor, "_import_ray", lambda: ray)
    with pytest.raises(KeyboardInterrupt):
        executor.ensure_ray("10.0.0.1:6379")
    assert not ray.started  # stopped inside init


class _UsersRay:
    """Stands in for the ``ray`` module a notebook started before the sweep."""

    def __init__(self):
        self.up = True

    def is_initialized(self):
        return self.up

    def shutdown(self):
        self.up = False


def test_ctrl_c_to_a_sweep_leaves_a_ray_its_user_started(monkeypatch, tmp_path):
    from recoworld.apps import merge_multirun

    ray = _UsersRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    sweep = tmp_path / "sweep"
    interrupted_job(sweep)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    merge_multirun.MergeSweep().on_multirun_start(config)
    merge_multirun.end_stopped_sweeps(interrupted=True)
    assert ray.up
    # A Ray that came up with the sweep (the Ray launcher's) is stopped with it.
    ray.up = False
    merge_multirun.MergeSweep().on_multirun_start(config)
    ray.up = True
    merge_multirun.end_stopped_sweeps(interrupted=True)
    assert not ray.up
