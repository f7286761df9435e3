"""A ``--multirun`` in which a job fails, or that is interrupted: the other jobs run, the sweep
is merged (or, interrupted, its unfinished jobs named) and the way to finish it is given."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf

from recoworld.apps import cli
from recoworld.apps.run.app import JobFailed

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.progress=false",
        "experiment.plots=false"]


def _sweep(sweep, *overrides) -> int:
    return cli.main(["run", "--multirun", *TINY, *overrides, f"hydra.sweep.dir={sweep}"])


def test_a_sweep_whose_job_fails_is_merged_and_names_the_job(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as stop:
        _sweep(sweep, "agent=linucb", "agent.interaction=bogus,diagonal", "experiment.seeds=[0]")
    assert stop.value.code == 1
    table = pd.read_csv(sweep / "sweep.csv")
    assert table[["agent.interaction", "agent", "n_seeds"]].values.tolist() == [["diagonal", "linucb", 1]]
    err = capsys.readouterr().err
    assert (f"recoworld merge: {sweep / '0'} has no metrics.json, left out: the job failed (ExperimentConfigError: "
            "building the agent linucb: interaction='bogus'") in err
    assert (f"recoworld run: 1 job(s) of the sweep in {sweep} did not finish: 0 (named above with why); the others are "
            "merged in sweep.csv. Fix what failed, then finish it by running the same command again with "
            f"experiment.resume=true hydra.sweep.dir={sweep} (each job that finished is kept)") in err


def test_a_job_refused_for_its_config_does_not_stop_the_others(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit):
        _sweep(sweep, "agent=random", "experiment.executor=dask,local", "experiment.seeds=[0]")
    assert json.loads((sweep / "1" / "metrics.json").read_text())["agents"]["random"]["seeds"] == [0]
    assert not (sweep / "0" / "status.json").exists()  # refused before its run directory was touched
    assert "experiment.executor='dask'; choose local" in (sweep / "0" / "recoworld.log").read_text()
    err = capsys.readouterr().err
    assert "recoworld run: error: experiment.executor='dask'; choose local (this process) or ray" in err
    assert f"(job 0: {sweep / '0'})" in err
    assert f"{sweep / '0'} has no metrics.json, left out: the job stopped before its run began (no status.json; " \
           "recoworld.log says why)" in err
    assert (sweep / "sweep.csv").exists()
    # Launchers that run jobs in other processes (joblib, Ray) send the failure back pickled.
    failed = pickle.loads(pickle.dumps(JobFailed("recoworld run: error: x")))
    assert isinstance(failed, JobFailed) and str(failed) == "recoworld run: error: x"


def test_an_interrupted_sweep_names_its_unfinished_jobs_and_how_to_finish_it(tmp_path, capsys, monkeypatch):
    from recoworld.apps.run import runner

    rollout_part = runner.rollout_part

    def interrupted_at_seed_1(*args, **kwargs):
        part = args[4]
        if part.seed == 1:
            raise KeyboardInterrupt  # Ctrl-C during the second job's rollout
        return rollout_part(*args, **kwargs)

    monkeypatch.setattr(runner, "rollout_part", interrupted_at_seed_1)
    sweep = tmp_path / "sweep"
    assert _sweep(sweep, "agent=random", "experiment.seeds=[0],[1]") == 130
    assert json.loads((sweep / "1" / "status.json").read_text())["state"] == "interrupted"
    assert not (sweep / "sweep.csv").exists()  # not merged: the user stopped the sweep
    err = capsys.readouterr().err
    assert (f"recoworld run: {sweep / '1'} has no metrics.json: the job was interrupted: 0 of 1 rollouts complete; "
            f"rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep} to finish it") in err
    assert (f"recoworld run: the sweep in {sweep} was interrupted with 1 job(s) finished and 1 not (named above; a "
            "job not begun has no folder); finish it by running the same command again with experiment.resume=true "
            f"hydra.sweep.dir={sweep} (each job that finished is kept), or merge the finished ones with: "
            f"recoworld merge {sweep}") in err
    assert err.rstrip().endswith("recoworld run: interrupted")


def _job_status(job, state, started, pid):
    """A job's status.json as recoworld run writes it (what the sweep's end reads)."""
    job.mkdir(parents=True)
    (job / "status.json").write_text(json.dumps({
        "state": state, "error": None, "error_type": None, "pid": pid, "host": socket.gethostname(),
        "parts": {"planned": 2, "complete": [], "current": "episodes/agent=random/seed=0.parquet"},
        "started": started, "updated": started, "finished": None, "attempts": 1}))


def test_jobs_whose_process_the_launcher_killed_after_ctrl_c_are_marked_interrupted(tmp_path, capsys):
    from recoworld.apps.merge_multirun import MergeSweep, end_stopped_sweeps
    from recoworld.apps.status import now

    sweep = tmp_path / "sweep"
    MergeSweep().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    gone = 2**22 + 1  # above Linux's pid_max: a process that has ended
    _job_status(sweep / "0", "running", now(), gone)  # killed by the launcher after this sweep's Ctrl-C
    _job_status(sweep / "1", "running", "2000-01-01T00:00:00+00:00", gone)  # killed before this sweep began
    _job_status(sweep / "2", "running", now(), os.getppid())  # a process that lives: still running
    assert end_stopped_sweeps(interrupted=True) == [sweep]
    states = {job: json.loads((sweep / job / "status.json").read_text()) for job in "012"}
    assert [states[job]["state"] for job in "012"] == ["interrupted", "running", "running"]
    assert states["0"]["finished"] and states["0"]["parts"]["current"] is None
    err = capsys.readouterr().err
    assert f"{sweep / '0'} has no metrics.json: the job was interrupted: 0 of 2 rollouts complete; rerun its command" \
        in err
    assert f"{sweep / '1'} has no metrics.json: the job was killed (its status.json says running" in err
    assert f"{sweep / '2'} has no metrics.json: the job is still running" in err


def interrupt_when_both_run(command: list[str], sweep, start_within: float) -> str:
    """Start the sweep ``command`` (two jobs into ``sweep``), send its process SIGINT once both
    jobs are running, check that it stopped with 130 and both jobs say ``interrupted``, and
    return its stderr."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + start_within
    while sum('"running"' in status.read_text() for status in sweep.glob("*/status.json")) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"the jobs did not start within {start_within} s"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert [json.loads((sweep / job / "status.json").read_text())["state"] for job in "01"] == [
        "interrupted", "interrupted"]
    return err


@pytest.mark.slow
def test_ctrl_c_to_a_joblib_sweeps_process_leaves_its_jobs_interrupted(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "recoworld.apps.cli", "run", "--multirun", "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2", *TINY, "experiment.steps=5000", "agent=random", "experiment.seeds=[0],[1]",
               f"hydra.sweep.dir={sweep}"]
    # SIGINT to the sweep's process only (kill -INT, a scheduler, an IDE's stop): joblib then
    # kills its workers, which never see it.
    err = interrupt_when_both_run(command, sweep, start_within=120)
    assert f"{sweep / '0'} has no metrics.json: the job was interrupted: 0 of 1 rollouts complete; rerun the sweep's " \
        "command" in err
