"""How a job of a ``--multirun`` that stops unfinished (a full disk, Ctrl-C) says to finish it:
the sweep's command again with ``experiment.resume=true`` and its ``hydra.sweep.dir``, as the
sweep's last line says; ``hydra.run.dir``, which a multirun ignores, only for a single run."""

from __future__ import annotations

import errno

import pyarrow.parquet as pq
import pytest

from recoworld.apps import cli

TINY = ["world=synthetic", "world.n_items=50", "env.num_envs=4", "experiment.steps=4", "experiment.progress=false",
        "experiment.plots=false", "agent=random", "experiment.seeds=[0,1]"]


def _fill_the_disk_after_one_part(monkeypatch) -> None:
    """Parquet writes fail as on a full disk from the second on (TINY writes one per rollout)."""
    write, calls = pq.ParquetWriter.write_table, []

    def writing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", writing)


def _ctrl_c_at_seed_1(monkeypatch) -> None:
    from recoworld.apps.run import runner

    rollout_part = runner.rollout_part

    def interrupted_at_seed_1(*args, **kwargs):
        if args[4].seed == 1:
            raise KeyboardInterrupt  # Ctrl-C during the run's second rollout
        return rollout_part(*args, **kwargs)

    monkeypatch.setattr(runner, "rollout_part", interrupted_at_seed_1)


def _finish_the_sweep(sweep) -> str:
    return (f"finish the sweep by running the same command again with experiment.resume=true hydra.sweep.dir={sweep} "
            "(each job that finished is kept)")


def _said(text: str) -> str:
    return " ".join(text.split())  # the console wraps lines


def test_a_sweep_job_on_a_full_disk_says_to_rerun_the_sweep(tmp_path, monkeypatch, capsys):
    _fill_the_disk_after_one_part(monkeypatch)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--multirun", *TINY, f"hydra.sweep.dir={sweep}"])
    assert stop.value.code == 1
    err = _said(capsys.readouterr().err)
    assert (f"recoworld run: error: No space left on device: the run in {sweep / '0'} stopped (1 of 2 rollouts "
            f"complete, kept); free space on that disk, then {_finish_the_sweep(sweep)} (job 0: {sweep / '0'})") in err
    assert "hydra.run.dir" not in err
    # The job's advice is the sweep's last line's.
    assert f"Fix what failed, then {_finish_the_sweep(sweep).replace('the sweep', 'it', 1)}" in err


def test_a_sweep_job_stopped_with_ctrl_c_says_to_rerun_the_sweep(tmp_path, monkeypatch, capsys):
    _ctrl_c_at_seed_1(monkeypatch)
    sweep = tmp_path / "sweep"
    assert cli.main(["run", "--multirun", *TINY, f"hydra.sweep.dir={sweep}"]) == 130
    said = capsys.readouterr()
    assert (f"interrupted: 1 of 2 rollouts complete in {sweep / '0'}; {_finish_the_sweep(sweep)}"
            in _said(said.out))
    assert "hydra.run.dir" not in said.out + said.err
    assert f"finish it by running the same command again with experiment.resume=true hydra.sweep.dir={sweep} " \
           "(each job that finished is kept)" in _said(said.err)


def test_a_single_run_keeps_its_hydra_run_dir_advice(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _ctrl_c_at_seed_1(monkeypatch)
    assert cli.main(["run", *TINY, f"hydra.run.dir={run}"]) == 130
    assert (f"interrupted: 1 of 2 rollouts complete in {run}; finish the run with experiment.resume=true "
            f"hydra.run.dir={run}") in _said(capsys.readouterr().out)
    monkeypatch.undo()
    _fill_the_disk_after_one_part(monkeypatch)
    with pytest.raises(SystemExit):
        cli.main(["run", *TINY, f"hydra.run.dir={tmp_path / 'full'}"])
    assert (f"the run in {tmp_path / 'full'} stopped (1 of 2 rollouts complete, kept); free space on that disk, then "
            f"finish it with experiment.resume=true hydra.run.dir={tmp_path / 'full'}") in _said(capsys.readouterr().err)
