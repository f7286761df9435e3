"""The advice to finish an unfinished run, followed as it is written, finishes that run.

A single run's advice names its folder (``hydra.run.dir``, absolute): its command alone starts
a new run in a new ``outputs/${now:...}`` folder. A run knows whether it is a sweep's job from
its own ``status.json`` (``sweep``), so a single run whose folder lies in an old sweep's is not
told to rerun that sweep, and a sweep's job is known wherever its folder lies below the sweep."""

from __future__ import annotations

import json
import re
import shlex
import time

from test_h203_sweep_advice import TINY, _ctrl_c_at_seed_1, _said
from test_h208_advice_keys import _job, _sweep

from recoworld.apps import cli
from recoworld.apps.merge_runs import unfinished_reason
from recoworld.apps.run.rundir import sweep_of
from recoworld.apps.run.run_log import read_run_log

ADVICE = re.compile(r"rerun its command with (.+?) to finish it$")  # the overrides to add, as a user reads them


def _status(run) -> dict:
    return json.loads((run / "status.json").read_text())


def _stopped_at_seed_1(monkeypatch, *args: str) -> None:
    """``recoworld run ARGS``, Ctrl-C during its second rollout (only while it runs)."""
    with monkeypatch.context() as patch:
        _ctrl_c_at_seed_1(patch)
        assert cli.main(["run", *args]) == 130


def test_a_run_in_the_default_folder_finishes_by_its_advice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _stopped_at_seed_1(monkeypatch, *TINY)  # into outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}
    [run] = (tmp_path / "outputs").glob("*/*")
    advice = ADVICE.search(read_run_log(run.relative_to(tmp_path)).note)[1]
    while time.strftime("%H-%M-%S") == run.name:  # the command alone would name a new folder
        time.sleep(0.05)
    assert cli.main(["run", *TINY, *shlex.split(advice)]) == 0
    assert list((tmp_path / "outputs").glob("*/*")) == [run]
    status = _status(run)
    assert (status["state"], status["attempts"], len(status["parts"]["complete"])) == ("complete", 2, 2)
    assert advice == f"experiment.resume=true hydra.run.dir={run}"  # absolute


def test_a_relative_run_dir_is_finished_by_its_advice_from_another_folder(tmp_path, monkeypatch):
    """The advice's hydra.run.dir, given after the command's own, overrides it (Hydra takes the last)."""
    monkeypatch.chdir(tmp_path)
    _stopped_at_seed_1(monkeypatch, *TINY, "hydra.run.dir=runs/long")
    advice = ADVICE.search(unfinished_reason(tmp_path / "runs" / "long"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["run", *TINY, "hydra.run.dir=runs/long", *shlex.split(advice[1])]) == 0
    assert _status(tmp_path / "runs" / "long")["state"] == "complete"
    assert not (tmp_path / "elsewhere" / "runs").exists()


def test_a_folder_that_a_shell_or_hydra_would_misread_is_quoted_in_the_advice(tmp_path, monkeypatch):
    """A space splits a shell's word; a comma makes Hydra's value a sweep."""
    run = tmp_path / "runs" / "lr 0.1, deep"
    _stopped_at_seed_1(monkeypatch, *TINY, f'hydra.run.dir="{run}"')
    advice = ADVICE.search(unfinished_reason(run))[1]
    assert advice == f"""experiment.resume=true 'hydra.run.dir="{run}"'"""
    assert cli.main(["run", *TINY, *shlex.split(advice)]) == 0
    assert _status(run)["state"] == "complete"


def test_a_single_run_in_an_old_sweeps_folder_is_told_its_own_folder(tmp_path, monkeypatch):
    """Without .hydra/ (hydra.output_subdir=null) its folder looks like a job of the sweep above."""
    old = _sweep(tmp_path / "multirun" / "2026-12-01" / "12-00-00", "0")
    run = old / "extra"
    command = [*TINY, f"hydra.run.dir={run}", "hydra.output_subdir=null"]
    _stopped_at_seed_1(monkeypatch, *command)
    assert not (run / ".hydra").exists() and _status(run)["sweep"] is None
    assert sweep_of(run) is None
    assert unfinished_reason(run) == ("the job was interrupted: 1 of 2 rollouts complete; rerun its command with "
                                      f"experiment.resume=true hydra.run.dir={run} to finish it")
    advice = ADVICE.search(unfinished_reason(run))
    assert cli.main(["run", *command, *shlex.split(advice[1])]) == 0
    assert _status(run)["state"] == "complete"


def test_a_sweeps_job_below_a_subfolder_without_hydra_files_names_its_sweep(tmp_path, monkeypatch, capsys):
    """Its status says which sweep it is of: no .hydra/ and no multirun.yaml in its parent."""
    sweep = tmp_path / "sweep"
    _stopped_at_seed_1(monkeypatch, "--multirun", *TINY, f"hydra.sweep.dir={sweep}",
                       "hydra.sweep.subdir=jobs/${hydra.job.num}", "hydra.output_subdir=null")
    job = sweep / "jobs" / "0"
    assert _status(job)["sweep"] == str(sweep)
    assert (f"{job} has no metrics.json: the job was interrupted: 1 of 2 rollouts complete; rerun the sweep's command "
            f"with experiment.resume=true hydra.sweep.dir={sweep} to finish it") in _said(capsys.readouterr().err)


def test_the_sweep_a_status_records_decides_while_it_holds_the_job(tmp_path):
    old = _sweep(tmp_path / "old", "0")
    _job(old / "single", sweep=None)
    assert sweep_of(old / "single") is None
    _job(tmp_path / "sweep" / "jobs" / "0", sweep=str(tmp_path / "sweep"))
    assert sweep_of(tmp_path / "sweep" / "jobs" / "0") == tmp_path / "sweep"
    moved = _sweep(tmp_path / "moved")
    _job(moved / "0", sweep=str(tmp_path / "ran_here"))  # moved since: its Hydra files decide
    assert sweep_of(moved / "0") == moved
    _job(old / "1")  # a status of an earlier release, without the key: its Hydra files decide
    assert sweep_of(old / "1") == old
