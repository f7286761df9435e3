"""Advice that names what its reader types: a sweep's job is finished by the sweep's command
(with its ``hydra.sweep.dir``), not by a command of its own or ``hydra.run.dir``; an LLM
budget or timeout names the keys that set its limits."""

from __future__ import annotations

import json
import os
import re
import socket
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from recoworld.llm import Budget, BudgetExceeded, ScriptedChatModel
from recoworld.llm.in_process import InProcessChatModel
from test_h196_fidelity_hints import fidelity_fix

LOWER = "lower max_tokens (LLM users: simulator.config.max_tokens; LLM agents: agent.max_tokens)"


def _job(folder, state: str = "interrupted", **fields) -> None:
    """A run's status.json as recoworld run writes it (what the readers of a run read)."""
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({
        "state": state, "error": None, "error_type": None, "pid": os.getpid(), "host": socket.gethostname(),
        "parts": {"planned": 2, "complete": [], "current": None}, "started": "2026-12-07T00:00:00+00:00",
        "updated": "2026-12-07T00:00:00+00:00", "finished": None, "attempts": 1, **fields}))


def _sweep(folder, *jobs: str):
    """A sweep directory as Hydra's sweeper leaves it (its multirun.yaml), with interrupted ``jobs``."""
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    for job in jobs:
        _job(folder / job)
    return folder


# ------------------------------------------------------------ 1. a sweep's job: the sweep's command
def test_a_sweep_jobs_state_says_to_rerun_the_sweeps_command(tmp_path):
    from recoworld.apps.merge_runs import unfinished_reason
    from recoworld.apps.run.run_log import run_state

    sweep = _sweep(tmp_path / "sweep", "0")
    _job(tmp_path / "run")
    assert unfinished_reason(sweep / "0") == (
        "the job was interrupted: 0 of 2 rollouts complete; rerun the sweep's command with experiment.resume=true "
        f"hydra.sweep.dir={sweep} to finish it")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert run_state(tmp_path / "run", status) == (
        "was interrupted",  # a single run's: into its own folder (its command alone starts a new one)
        f"rerun its command with experiment.resume=true hydra.run.dir={tmp_path / 'run'} to finish it")


def test_a_sweep_job_given_relative_to_the_working_directory_finds_its_sweep(tmp_path, monkeypatch):
    from recoworld.apps.merge_runs import unfinished_reason

    sweep = _sweep(tmp_path / "sweep", "0")
    monkeypatch.chdir(tmp_path)
    assert unfinished_reason(sweep.relative_to(tmp_path) / "0").endswith(
        f"rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep} to finish it")
    monkeypatch.chdir(sweep / "0")  # `recoworld view .` from the job's folder
    assert unfinished_reason(sweep.relative_to(tmp_path).parent).endswith(
        f"rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep} to finish it")


def test_the_end_of_an_interrupted_sweep_names_the_sweeps_command_for_each_job(tmp_path, capsys):
    from recoworld.apps.merge_multirun import MergeSweep, end_stopped_sweeps

    sweep = _sweep(tmp_path / "sweep", "0", "1")
    MergeSweep().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert end_stopped_sweeps(interrupted=True) == [sweep]
    err = " ".join(capsys.readouterr().err.split())
    for job in "01":
        assert (f"recoworld run: {sweep / job} has no metrics.json: the job was interrupted: 0 of 2 rollouts "
                f"complete; rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep} to finish "
                "it") in err
    assert "rerun its command" not in err


def test_merge_and_view_name_the_sweeps_command_for_a_sweeps_job(tmp_path, capsys):
    from recoworld.apps.merge_setting import read_metrics
    from recoworld.apps.merge_writer import merge
    from recoworld.apps.run.run_log import read_run_log

    sweep = _sweep(tmp_path / "sweep", "0")
    again = f"rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep}"
    with pytest.raises(FileNotFoundError):
        merge([sweep])
    assert f"left out: the job was interrupted: 0 of 2 rollouts complete; {again} to finish it" in " ".join(
        capsys.readouterr().err.split())
    with pytest.raises(ValueError, match=re.escape(f"there is no log to read; {again} to finish it") + "$"):
        read_run_log(sweep / "0")
    (sweep / "0" / "metrics.json").write_text('{"agents": ')  # cut short
    with pytest.raises(ValueError, match=re.escape(f"if its run is complete, {again} to write it again") + "$"):
        read_metrics(sweep / "0")


# ------------------------------------------------------------ 2. robustness --resume of a sweep's folder
def test_robustness_resume_of_a_sweep_says_hydra_sweep_dir(tmp_path):
    from recoworld.apps.robustness.studydir import StudyDirectory, StudyDirectoryError

    sweep = _sweep(tmp_path / "sweep", "0")
    again = f"rerun the sweep's command with experiment.resume=true hydra.sweep.dir={sweep}"
    with pytest.raises(StudyDirectoryError) as refused:
        StudyDirectory.open(sweep)
    assert str(refused.value) == (f"--resume {sweep} is the sweep directory of a recoworld run --multirun (it holds "
                                  f"multirun.yaml), not a robustness study's folder; to finish the sweep, {again}")
    with pytest.raises(StudyDirectoryError) as refused:
        StudyDirectory.open(sweep / "0")
    assert str(refused.value) == (f"--resume {sweep / '0'} is the folder of a job of the recoworld run --multirun in "
                                  f"{sweep}, not a robustness study's folder; to finish that sweep, {again}")
    assert "hydra.run.dir" not in str(refused.value)
    _job(tmp_path / "run")
    with pytest.raises(StudyDirectoryError, match=r"finish a run with experiment.resume=true hydra.run.dir=\S+run$"):
        StudyDirectory.open(tmp_path / "run")
    assert not (sweep / "0" / ".status.json.lock").exists()  # refused before it took the folder's lock


# ------------------------------------------------------------ 3. a budget names its keys
def test_a_budget_refusal_names_the_keys_of_each_application():
    llm = ScriptedChatModel(lambda call: "one two three", budget=Budget(max_total_tokens=150))
    llm.chat("hello", max_tokens=100)
    with pytest.raises(BudgetExceeded) as refused:
        llm.chat("hello", max_tokens=200)
    assert str(refused.value).endswith(
        "reserved by calls in flight; raise max_total_tokens (recoworld run: llm.max_total_tokens for the LLM users' "
        "model, agent.llm.max_total_tokens for an LLM agent's; recoworld fidelity: --llm max_total_tokens=...; "
        "Python: LLMConfig.max_total_tokens), or lower max_tokens (recoworld run: simulator.config.max_tokens for "
        "the LLM users, agent.max_tokens for an LLM agent; recoworld fidelity: no flag, its LLM users' limit is "
        "their default, room for the longest reply their schema allows; Python: LLMUserConfig.max_tokens, or an LLM "
        "agent's max_tokens argument)")
    llm = ScriptedChatModel(lambda call: "ok", budget=Budget(max_calls=1))
    llm.chat("one")
    with pytest.raises(BudgetExceeded, match=r"; raise max_calls \(recoworld run: llm.max_calls for the LLM users' "
                                             r"model, agent.llm.max_calls for an LLM agent's; recoworld fidelity: "
                                             r"--llm max_calls=\.\.\.; Python: LLMConfig.max_calls\) to continue$"):
        llm.chat("two")


def test_the_budget_keys_named_are_the_config_fields():
    from dataclasses import fields

    from recoworld.llm import LLMConfig
    from recoworld.llm.accounting import raise_limit

    for limit in (f.name for f in fields(Budget)):
        assert limit in {f.name for f in fields(LLMConfig)}
        assert f"llm.{limit} " in raise_limit(limit) and f"--llm {limit}=" in raise_limit(limit)


# ------------------------------------------------------------ 4. an in-process timeout names max_tokens' keys
def test_an_in_process_timeout_names_the_max_tokens_keys():
    model = SimpleNamespace(timeout_s=30.0)
    hint = InProcessChatModel._failure_hint(model, InProcessChatModel._translate_error(model, TimeoutError()))
    assert hint == (f"raise llm.timeout_s (now 30.0), or {LOWER}; an in-process generation that runs out of time is "
                    "not retried, since it would take as long again")
    assert "max_tokens" not in fidelity_fix(hint)  # fidelity has no flag for it, and words its own fix
