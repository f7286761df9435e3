"""h237's review of the run folder's changes: API keys and refused starts under a launcher's
workers, ``ope evaluate``'s reading of the run's config, full disks, TensorBoard on resume,
advice that names a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.progress=false",
        "experiment.plots=false", "agent=random", "experiment.seeds=[0]"]
SECRET = "sk-H239SECRETVALUE"


def _joblib_sweep(sweep, *overrides) -> subprocess.CompletedProcess:
    """A --multirun under hydra/launcher=joblib, in its own process (joblib's workers with it)."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    command = [sys.executable, "-m", "recoworld.apps.cli", "run", "--multirun", "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    env = {k: v for k, v in os.environ.items() if k != "RECOWORLD_RUN_REDACTED"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_a_joblib_workers_hydra_files_hold_no_api_key(tmp_path):
    sweep = tmp_path / "sweep"
    done = _joblib_sweep(sweep, "env.slate_size=3,4", f"+llm.api_key={SECRET}")
    assert done.returncode == 0, done.stderr
    leaking = [str(p.relative_to(sweep)) for p in sweep.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaking == []
    assert (sweep / "0" / ".hydra" / "overrides.yaml").read_text().splitlines()[-1] == "- +llm.api_key=<redacted>"
    assert SECRET not in done.stdout + done.stderr


def test_a_refused_joblib_job_puts_its_folders_hydra_files_back(tmp_path):
    sweep = tmp_path / "sweep"
    assert _joblib_sweep(sweep, "env.slate_size=3,4").returncode == 0
    hydra = sweep / "0" / ".hydra"
    before = {name: (hydra / name).read_text() for name in ("overrides.yaml", "config.yaml", "hydra.yaml")}
    refused = _joblib_sweep(sweep, "env.slate_size=3,4", "env.max_steps=50")
    assert refused.returncode == 1
    assert {name: (hydra / name).read_text() for name in before} == before


def _tiny_run(run_dir, *overrides) -> None:
    from recoworld.apps import cli

    assert cli.main(["run", *TINY, *overrides, f"hydra.run.dir={run_dir}"]) == 0


def test_ope_reads_the_config_its_run_ran_not_the_hydra_file_a_refused_start_rewrote(tmp_path):
    from recoworld.apps.ope.slate_evaluation import load_catalog, paid_reward, run_config

    run = tmp_path / "run"
    _tiny_run(run, "experiment.log_candidates=true", "env.reward=likes")
    # What a start that the folder refused leaves in .hydra/ where nothing puts it back (an
    # older release, a launcher's worker): the config that never ran.
    saved = run / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace("reward: likes", "reward: watch_time")
                     .replace("n_items: 1000", "n_items: 7"))
    part = next((run / "episodes").rglob("*.parquet"))
    assert run_config(str(part)).env.reward == "likes"
    assert paid_reward(str(part)) == "likes"
    assert load_catalog(str(part), None, None).n_items == 1000


def test_a_full_disk_at_a_sweeps_multirun_yaml_stops_it_in_one_line_and_leaves_no_empty_file(tmp_path, monkeypatch,
                                                                                               capsys):
    import errno

    from recoworld.apps import cli

    write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if "multirun.yaml" in self.name:  # opened (created empty), then nothing fits
            write_text(self, "")
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--multirun", *TINY, "env.slate_size=3,4", f"hydra.sweep.dir={sweep}"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        f"recoworld run: error: No space left on device writing {sweep / 'multirun.yaml'}: the sweep in {sweep} did "
        "not start; free space on that disk, then run its command again")
    assert list(sweep.iterdir()) == []


def test_a_resume_turning_tensorboard_on_refuses_a_file_at_its_folder_in_one_line(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    _tiny_run(run)
    (run / "tensorboard").write_text("x\n")
    with pytest.raises(SystemExit) as stop:
        _tiny_run(run, "experiment.tensorboard=true", "experiment.resume=true")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"recoworld run: error: experiment.tensorboard=true writes event files in "
        f"{run / 'tensorboard' / 'agent=random' / 'seed=0'}, but {run / 'tensorboard'} is a file: move it away, then "
        "finish the run with experiment.resume=true (or run with experiment.tensorboard=false)")


def test_the_sweep_advice_quotes_a_folder_a_shell_or_hydra_would_misread():
    from recoworld.apps.run.rundir import finish_sweep, rerun_sweep

    assert finish_sweep("sw/lr 0.1, x") == ("running the same command again with experiment.resume=true "
                                            "'hydra.sweep.dir=\"sw/lr 0.1, x\"' (each job that finished is kept)")
    assert rerun_sweep("sw/lr 0.1, x") == "rerun the sweep's command with experiment.resume=true " \
                                         "'hydra.sweep.dir=\"sw/lr 0.1, x\"'"
    assert rerun_sweep("sw/plain") == "rerun the sweep's command with experiment.resume=true hydra.sweep.dir=sw/plain"


def test_robustness_resume_of_a_run_folder_advises_its_resume_absolute_and_quoted(tmp_path, monkeypatch):
    import json

    from recoworld.apps.robustness.studydir import StudyDirectory, StudyDirectoryError

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "odd" / "lr 0.1, deep"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "interrupted", "parts": {"complete": []}}))
    with pytest.raises(StudyDirectoryError) as refused:
        StudyDirectory.open(Path("odd/lr 0.1, deep"))
    assert str(refused.value) == (
        "--resume odd/lr 0.1, deep is a recoworld run directory, not a robustness study's folder; finish a run with "
        f"experiment.resume=true 'hydra.run.dir=\"{run}\"'")


def test_a_status_json_of_another_command_above_a_log_is_not_a_run_folder(tmp_path):
    """Review h243: ``run_folder`` took any ``status.json`` up to three folders above a log (as
    ``recoworld robustness`` writes one), and ``ope evaluate`` then failed reading a run config
    that folder never had, even with ``--world``."""
    import json

    from recoworld.apps.ope.slate_evaluation import run_folder

    log = tmp_path / "study" / "cell" / "log.parquet"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"")
    status = {"state": "complete", "attempt": 1, "parts": {"complete": [], "planned": 0}}
    (tmp_path / "study" / "status.json").write_text(json.dumps(status))
    assert run_folder(str(log)) is None
    (tmp_path / "study" / "status.json").write_text(json.dumps({**status, "config": {"world": {"name": "synthetic"}}}))
    assert run_folder(str(log)) == (tmp_path / "study").resolve()


def test_a_key_set_as_the_jobs_environment_is_redacted_wherever_it_is_written():
    """Review h243: ``+hydra.job.env_set.OPENAI_API_KEY=sk-...`` was not learned as a key (only
    overrides ending in lowercase ``api_key`` were), so Hydra's ``hydra.yaml`` and the sweep's
    ``multirun.yaml`` held it."""
    from recoworld.apps.run.secrets import REDACTED, redact_text, secrets_in_overrides

    secrets_in_overrides(["+hydra.job.env_set.OPENAI_API_KEY=sk-H243ENVSETKEY"])
    written = "hydra:\n  job:\n    env_set:\n      OPENAI_API_KEY: sk-H243ENVSETKEY\n"
    assert redact_text(written) == f"hydra:\n  job:\n    env_set:\n      OPENAI_API_KEY: {REDACTED}\n"
