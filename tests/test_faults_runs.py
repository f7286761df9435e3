"""Faults of a run and its directory: bad experiment overrides, interruption (SIGINT, SIGKILL,
an agent that raises) and resume, the states a run directory can be found in, and logs that
are not logs. Every case checks that the error names the bad value and that nothing
half-written remains: the status file says what happened, and every part present is whole."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from recoworld.agents import baselines

from recoworld.apps.run.app import main as run_app
from recoworld.logs import EpisodeLog, LogSchemaError, read_log

LINEUP = ["world=synthetic", "world.n_items=200", "env.num_candidates=20", "env.slate_size=4",
          "experiment.progress=false", "experiment.plots=false", "experiment.agents=[random,most_popular]",
          "experiment.seeds=[0,1]"]
TINY = [*LINEUP, "env.num_envs=4", "experiment.steps=6"]
PARTS = [f"episodes/agent={a}/seed={s}.parquet" for a in ("random", "most_popular") for s in (0, 1)]


def run(out: Path, *overrides: str) -> None:
    run_app([*TINY, *overrides, f"hydra.run.dir={out}"])


def status(out: Path) -> dict:
    return json.loads((out / "status.json").read_text())


def parts_on_disk(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}


def assert_consistent(out: Path, state: str | None, complete: int | None = None) -> None:
    """Nothing half-written: the status (if ``state``) lists exactly the parts on disk, each
    whole; metrics and lineup exist only in a complete run; no temporary file is left."""
    on_disk = parts_on_disk(out)
    for part in on_disk:
        read_log(out / part)  # whole: raises on a cut or foreign file
    if state is None:
        assert not (out / "status.json").exists() and not on_disk
    else:
        saved = status(out)
        assert saved["state"] == state, saved
        assert {r["file"] for r in saved["parts"]["complete"]} == on_disk
        if complete is not None:
            assert len(on_disk) == complete
    finished = state == "complete"
    assert (out / "metrics.json").exists() == finished and (out / "lineup.yaml").exists() == finished
    assert not [p for p in out.rglob("*.tmp")]


def rows(out: Path) -> pd.DataFrame:
    log = read_log(out)
    return log.sort_values(["agent", "seed", "user", "rollout_step"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of TINY."""
    out = tmp_path_factory.mktemp("reference")
    run(out)
    return out


@pytest.fixture
def finished(reference, tmp_path) -> Path:
    """A copy of the complete reference run."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def fail_on_call(monkeypatch, call: int, error: BaseException) -> None:
    """The random agent raises ``error`` at its ``call``-th act (TINY: 6 per rollout)."""
    act, calls = baselines.RandomAgent.act, []

    def failing(self, obs):
        calls.append(1)
        if len(calls) == call:
            raise error
        return act(self, obs)

    monkeypatch.setattr(baselines.RandomAgent, "act", failing)


# ------------------------------------------------------------ CLI overrides of the experiment
REFUSED_BEFORE_THE_RUN = [
    ("experiment.seeds=[0,0]", "seeds=[0, 0] lists seed 0 more than once"),
    ("experiment.seeds=[3,1,3]", "lists seed 3 more than once"),
    ("experiment.seeds=[-1]", "seeds=[-1] holds -1; a seed is an integer >= 0"),
    ("experiment.seeds=[0,-5]", "holds -5"),
    ("experiment.seeds=[]", "experiment.seeds=[] is empty"),
    ("experiment.torch_threads=0", "experiment.torch_threads=0; it must be an integer >= 1"),
    ("experiment.torch_threads=-2", "experiment.torch_threads=-2"),
    ("experiment.steps=0", "experiment.steps=0; it must be an integer >= 1"),
    ("experiment.steps=-3", "experiment.steps=-3; it must be an integer >= 1"),
    ("experiment.resume=perhaps", "Value 'perhaps' is not a valid bool"),
]


@pytest.mark.parametrize(("override", "message"), REFUSED_BEFORE_THE_RUN, ids=[o for o, _ in REFUSED_BEFORE_THE_RUN])
def test_a_bad_experiment_override_is_refused_before_the_run_directory_is_touched(tmp_path, capsys, override,
                                                                                    message):
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "agent=random", override)  # one agent: no lineup to compose
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err
    assert_consistent(tmp_path, state=None)


FAILING_WHEN_BUILT = [
    ("env.num_envs=0", "num_envs=0"),
    ("env.num_envs=-1", "num_envs=-1"),
    ("env.reward=clickz", "'clickz'"),
    ("kernel=cuda", "'cuda'"),
]


@pytest.mark.parametrize(("override", "message"), FAILING_WHEN_BUILT, ids=[o for o, _ in FAILING_WHEN_BUILT])
def test_a_config_that_fails_when_built_leaves_only_a_failed_status(tmp_path, capsys, override, message):
    with pytest.raises(SystemExit):
        run(tmp_path, override)
    err = capsys.readouterr().err
    # A mistake in the config, not a bug: one line naming what was built, no traceback.
    assert "Traceback" not in err and "recoworld run: error: building the " in err and message in err
    assert_consistent(tmp_path, "failed", complete=0)
    saved = status(tmp_path)
    assert message in saved["error"] and saved["error_type"] and saved["finished"]
    assert not (tmp_path / "episodes").exists()


def test_an_agent_that_refuses_its_setting_fails_the_run_in_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(tmp_path, "experiment.agents=[epsilon_greedy]", "agent=epsilon_greedy", "agent.epsilon=2")
    err = capsys.readouterr().err
    # Before: Hydra's "Error executing job ... Error in call to target ..." block.
    assert ("recoworld run: error: building the agent epsilon_greedy: EpsilonGreedy.epsilon=2: must be in [0, 1]"
            in err) and "Error in call to target" not in err
    assert_consistent(tmp_path, "failed", complete=0)
    assert status(tmp_path)["error_type"] == "ExperimentConfigError"


# ------------------------------------------------------------ run-directory states
def test_a_complete_run_directory_is_not_overwritten_without_the_resume_flag(finished, capsys):
    before = {p: (finished / p).read_bytes() for p in [*PARTS, "metrics.json", "status.json"]}
    with pytest.raises(SystemExit):
        run(finished)
    assert "already holds results of a run (status.json: complete, 4 of 4 rollouts complete); pass " \
           "experiment.resume=true to finish it" in capsys.readouterr().err
    assert {p: (finished / p).read_bytes() for p in before} == before


def test_a_failing_config_into_a_complete_run_keeps_its_metrics_beside_its_own_log(finished, capsys):
    metrics = (finished / "metrics.json").read_bytes()
    with pytest.raises(SystemExit):
        run(finished, "env.reward=clickz")
    assert "experiment.resume=true" in capsys.readouterr().err
    assert (finished / "metrics.json").read_bytes() == metrics
    assert_consistent(finished, "complete", complete=4)
    assert json.loads(metrics)["agents"]["random"]["interactions"] == (read_log(finished)["agent"] == "random").sum()


RESUME_MISMATCHES = [
    ("env.slate_size=5", "env.slate_size: saved 4, now 5"),
    ("experiment.seeds=[0,2]", "experiment.seeds: saved [0, 1], now [0, 2]"),
    ("experiment.steps=7", "experiment.steps: saved 6, now 7"),
    ("experiment.agents=[random,oracle]", "agents.most_popular._target_: saved"),
    ("simulator.config.leave_base=-2.0", "simulator.config.leave_base: saved -3.0, now -2.0"),
    ("world.n_items=300", "world.n_items: saved 200, now 300"),
]


@pytest.mark.parametrize(("override", "message"), RESUME_MISMATCHES, ids=[o for o, _ in RESUME_MISMATCHES])
def test_resuming_with_another_config_is_refused_naming_the_keys(finished, capsys, override, message):
    with pytest.raises(SystemExit):
        run(finished, "experiment.resume=true", override)
    err = capsys.readouterr().err
    assert "experiment.resume=true, but this config differs" in err and message in err
    assert_consistent(finished, "complete", complete=4)


def test_resuming_may_change_what_changes_no_row(finished):
    run(finished, "experiment.resume=true", "experiment.plots=true", "experiment.torch_threads=2")
    assert_consistent(finished, "complete", complete=4)
    assert (finished / "returns.png").read_bytes()[:4] == b"\x89PNG"


def saved_by_an_earlier_release(out: Path, *keys: str) -> None:
    """``out``'s status as a RecoWorld would have saved it that had not yet added ``keys`` (dotted)."""
    saved = status(out)
    for key in keys:
        *parents, name = key.split(".")
        node = saved["config"]
        for parent in parents:
            node = node[parent]
        del node[name]
    (out / "status.json").write_text(json.dumps(saved))


def test_a_key_added_since_the_run_resumes_at_its_default_and_is_recorded(finished, reference):
    saved_by_an_earlier_release(finished, "env.check_responses", "simulator.config.more_share")
    (finished / PARTS[1]).unlink()
    run(finished, "experiment.resume=true")
    assert_consistent(finished, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(finished), rows(reference))
    saved = status(finished)
    assert saved["config_added"] == {"simulator.config.more_share": 0.3, "env.check_responses": True}
    assert saved["config"] == status(reference)["config"]  # the next resume compares the whole config
    assert (f"resuming the run in {finished} with keys its config lacked (RecoWorld added them since), at their "
            "defaults: simulator.config.more_share=0.3, env.check_responses=True"
            ) in (finished / "recoworld.log").read_text()
    run(finished, "experiment.resume=true")
    assert status(finished)["config_added"] == saved["config_added"] and status(finished)["attempts"] == 3


def test_a_key_added_since_the_run_but_set_off_its_default_blocks_a_resume(finished, capsys):
    saved_by_an_earlier_release(finished, "env.num_candidates")  # TINY sets it to 20; its default is 50
    before = (finished / "status.json").read_bytes()
    with pytest.raises(SystemExit):
        run(finished, "experiment.resume=true")
    assert (f"this config differs from the run in {finished} at: env.num_candidates: saved absent (a key added "
            "since that run; its default is 50), now 20; resume with") in capsys.readouterr().err
    assert (finished / "status.json").read_bytes() == before


@pytest.mark.parametrize("leftover", ["episodes.parquet", "metrics.json", "episodes/agent=x/seed=0.parquet"])
def test_results_without_a_status_file_are_refused(tmp_path, reference, capsys, leftover):
    (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(reference / (PARTS[0] if leftover.endswith(".parquet") else leftover), tmp_path / leftover)
    with pytest.raises(SystemExit):
        run(tmp_path, "experiment.resume=true")
    assert f"holds results ({leftover}) but no status.json" in capsys.readouterr().err
    assert not (tmp_path / "status.json").exists()


def test_a_corrupt_status_file_is_refused_naming_it(finished, capsys):
    (finished / "status.json").write_text('{"state": "compl')
    with pytest.raises(SystemExit):
        run(finished, "experiment.resume=true")
    assert f"{finished / 'status.json'} is not a run's status" in capsys.readouterr().err


def test_a_run_directory_written_by_a_live_process_is_refused(finished, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        saved = status(finished)
        saved.update(state="running", pid=sleeper.pid)
        del saved["lock"]  # written by a release whose runs took no lock: its pid is all there is
        (finished / "status.json").write_text(json.dumps(saved))
        with pytest.raises(SystemExit):
            run(finished, "experiment.resume=true")
        assert f"being written by a running process (pid {sleeper.pid}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_that_failed_before_any_rollout_runs_again_without_the_flag(tmp_path, reference):
    with pytest.raises(SystemExit):
        run(tmp_path, "env.reward=clickz")
    run(tmp_path)
    assert_consistent(tmp_path, "complete", complete=4)
    saved = status(tmp_path)
    assert (saved["attempts"], saved["previous_attempts"]) == (1, [])  # another config: a new run
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


def test_the_resume_flag_on_a_new_directory_starts_the_run(tmp_path, reference):
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


# ------------------------------------------------------------ interruption and resume
def test_resuming_a_complete_run_reruns_nothing_and_writes_the_same_metrics(finished):
    stamps = {p: (finished / p).stat().st_mtime_ns for p in PARTS}
    metrics = json.loads((finished / "metrics.json").read_text())
    run(finished, "experiment.resume=true")
    assert {p: (finished / p).stat().st_mtime_ns for p in PARTS} == stamps
    assert json.loads((finished / "metrics.json").read_text()) == metrics
    assert status(finished)["attempts"] == 2


@pytest.mark.parametrize("damage", ["deleted", "cut short", "temporary file left"])
def test_resume_reruns_a_part_that_is_missing_or_damaged(finished, reference, damage):
    part = finished / PARTS[1]
    if damage == "deleted":
        part.unlink()
    elif damage == "cut short":
        part.write_bytes(part.read_bytes()[:200])
    else:
        (part.parent / f".{part.name}.999.tmp").write_bytes(b"PAR1 half")
        part.unlink()
    run(finished, "experiment.resume=true")
    assert_consistent(finished, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(finished), rows(reference))


def test_resume_removes_the_temporary_of_a_status_write_that_was_killed(finished):
    # SIGKILL between writing status.json's temporary and renaming it over status.json.
    (finished / ".status.json.999.tmp").write_text('{"state": "runn')
    (finished / PARTS[1]).unlink()
    run(finished, "experiment.resume=true")
    assert_consistent(finished, "complete", complete=4)


def test_an_agent_that_raises_midway_fails_the_run_and_keeps_its_complete_parts(tmp_path, reference, monkeypatch,
                                                                               capsys):
    fail_on_call(monkeypatch, 9, RuntimeError("act exploded at call 9"))
    with pytest.raises(SystemExit):
        run(tmp_path)
    assert "act exploded at call 9" in capsys.readouterr().err
    assert_consistent(tmp_path, "failed", complete=1)
    saved = status(tmp_path)
    assert saved["error"] == "act exploded at call 9" and saved["error_type"] == "RuntimeError"
    assert [r["file"] for r in saved["parts"]["complete"]] == [PARTS[0]]
    monkeypatch.undo()
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


def test_sigint_marks_the_run_interrupted_and_resume_finishes_it(tmp_path, reference, monkeypatch, capsys):
    act = baselines.RandomAgent.act
    calls = []

    def interrupted(self, obs):  # Ctrl-C during the second rollout: a real SIGINT to this process
        calls.append(1)
        if len(calls) == 9:
            os.kill(os.getpid(), signal.SIGINT)
        return act(self, obs)

    monkeypatch.setattr(baselines.RandomAgent, "act", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    out = capsys.readouterr().out
    assert "interrupted: 1 of 4 rollouts complete" in out and "experiment.resume=true" in out
    assert_consistent(tmp_path, "interrupted", complete=1)
    monkeypatch.undo()
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    saved = status(tmp_path)
    assert saved["attempts"] == 2 and saved["error"] is None
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, reference))
    assert metrics["agents"]["random"]["metrics"] == expected["agents"]["random"]["metrics"]


def test_a_resume_that_fails_before_any_rollout_keeps_the_earlier_failure(tmp_path, reference, monkeypatch):
    from recoworld.apps.run import runner

    fail_on_call(monkeypatch, 9, RuntimeError("act exploded at call 9"))
    with pytest.raises(SystemExit):
        run(tmp_path)
    first = status(tmp_path)
    monkeypatch.undo()

    def unreachable_world(*args):
        raise OSError("the world's files are unreachable")

    monkeypatch.setattr(runner, "_build_world", unreachable_world)
    with pytest.raises(SystemExit):
        run(tmp_path, "experiment.resume=true")
    saved = status(tmp_path)
    assert (saved["state"], saved["error_type"], saved["attempts"]) == ("failed", "OSError", 2)
    assert saved["error"] == "the world's files are unreachable"
    assert saved["previous_attempts"] == [{
        "attempt": 1, "state": "failed", "error": "act exploded at call 9", "error_type": "RuntimeError",
        "started": first["started"], "finished": first["finished"], "updated": first["updated"],
        "rollouts_complete": 1}]
    assert_consistent(tmp_path, "failed", complete=1)  # the complete rollout is kept for the next resume
    monkeypatch.undo()
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    saved = status(tmp_path)
    assert [(a["attempt"], a["state"], a["error_type"]) for a in saved["previous_attempts"]] == [
        (1, "failed", "RuntimeError"), (2, "failed", "OSError")]
    assert (saved["attempts"], saved["error"]) == (3, None)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


def test_the_same_run_again_after_a_failure_before_any_rollout_is_a_further_attempt(tmp_path, monkeypatch):
    from recoworld.apps.run import runner

    def unreachable_world(*args):
        raise OSError("the world's files are unreachable")

    monkeypatch.setattr(runner, "_build_world", unreachable_world)
    with pytest.raises(SystemExit):
        run(tmp_path)
    monkeypatch.undo()
    run(tmp_path)
    saved = status(tmp_path)
    assert (saved["state"], saved["attempts"]) == ("complete", 2)
    assert [(a["state"], a["error"], a["rollouts_complete"]) for a in saved["previous_attempts"]] == [
        ("failed", "the world's files are unreachable", 0)]


def test_a_killed_attempt_is_kept_as_killed(finished):
    saved = status(finished)
    saved.update(state="running", pid=2**22 + 1, finished=None)  # above Linux's pid_max: a process that has ended
    (finished / "status.json").write_text(json.dumps(saved))
    (finished / PARTS[1]).unlink()
    run(finished, "experiment.resume=true")
    ending = status(finished)["previous_attempts"][-1]
    assert (ending["state"], ending["finished"], ending["rollouts_complete"]) == ("killed", None, 4)


#: ``recoworld run`` (the CLI, its arguments after ``run``) whose random agent stops at its
#: ninth act, the third of the second rollout (TINY: 6 a rollout), and waits there to be
#: signalled: a stop sent once status.json lists the first part always finds the second in
#: flight, however slow the host (a long rollout made that likely, not certain).
WAITING_RUN = """
import signal, sys
from recoworld.agents.baselines import RandomAgent
from recoworld.apps.cli import main

act, calls = RandomAgent.act, []

def waiting(self, obs):
    calls.append(1)
    while len(calls) == 9:
        signal.pause()  # until a signal whose handler raises (SIGTERM); SIGKILL ends it here
    return act(self, obs)

RandomAgent.act = waiting
sys.exit(main(["run", *sys.argv[1:]]))
"""


def second_part_in_flight(out: Path) -> bool:
    """status.json lists the first part complete and names the second as the one in flight."""
    if not (out / "status.json").exists():
        return False
    parts = status(out)["parts"]
    return [r["file"] for r in parts["complete"]] == [PARTS[0]] and parts["current"] == PARTS[1]


def start_run(out: Path) -> subprocess.Popen:
    """``recoworld run`` of TINY in a subprocess of :data:`WAITING_RUN`, returned once
    status.json lists its first part complete and the second in flight.

    Waiting for the part's file is not enough: between its log taking its name and the run
    recording it, a stop deletes the part as one in flight (and a test expecting it fails)."""
    command = [sys.executable, "-c", WAITING_RUN, *TINY, f"hydra.run.dir={out}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not second_part_in_flight(out):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no part in flight after 120 s"
            time.sleep(0.005)
    except BaseException:
        process.kill()  # it would wait for a signal forever
        raise
    return process


@pytest.fixture
def waiting_run(tmp_path) -> subprocess.Popen:
    """:func:`start_run` into ``tmp_path``; the process is killed after a test that failed
    before stopping it (it would wait forever)."""
    process = start_run(tmp_path)
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_sigkill_midway_then_resume_loses_and_duplicates_no_row(tmp_path, waiting_run, reference, capsys):
    process = waiting_run
    process.send_signal(signal.SIGKILL)
    process.communicate()
    # Killed outright: the status still says running, every part present is whole, and the
    # rollout in flight left at most a hidden temporary file.
    saved = status(tmp_path)
    assert saved["state"] == "running" and saved["pid"] == process.pid
    assert 1 <= len(parts_on_disk(tmp_path)) < 4
    assert {r["file"] for r in saved["parts"]["complete"]} <= parts_on_disk(tmp_path)
    for part in parts_on_disk(tmp_path):
        read_log(tmp_path / part)
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(SystemExit):
        run(tmp_path)  # without the flag
    assert "(status.json: running, " in capsys.readouterr().err
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    resumed, expected = rows(tmp_path), rows(reference)
    assert not resumed.duplicated(["agent", "seed", "user", "rollout_step"]).any()
    pd.testing.assert_frame_equal(resumed, expected)


# ------------------------------------------------------------ logs
def test_read_log_refuses_a_text_file_naming_it(tmp_path):
    path = tmp_path / "episodes.csv"
    path.write_text("agent,seed,user\nrandom,0,1\n")
    with pytest.raises(LogSchemaError, match=rf"{path} is not a Parquet file \(it starts with b'agen'"):
        read_log(path)


def test_read_log_refuses_an_empty_file(tmp_path):
    (tmp_path / "seed=0.parquet").write_bytes(b"")
    with pytest.raises(LogSchemaError, match=r"seed=0.parquet is not a Parquet file \(it starts with b''"):
        read_log(tmp_path / "seed=0.parquet")


def test_read_log_refuses_a_part_cut_short_naming_it(reference, tmp_path):
    cut = tmp_path / "seed=0.parquet"
    cut.write_bytes((reference / PARTS[0]).read_bytes()[:300])
    with pytest.raises(LogSchemaError, match=r"seed=0.parquet is cut short: it ends without a Parquet footer"):
        read_log(tmp_path)


def test_read_log_refuses_a_part_with_a_damaged_footer(reference, tmp_path):
    data = bytearray((reference / PARTS[0]).read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # footer length past the start of the file
    (tmp_path / "seed=0.parquet").write_bytes(bytes(data))
    with pytest.raises(LogSchemaError, match=r"seed=0.parquet is not a readable Parquet file"):
        read_log(tmp_path / "seed=0.parquet")


def test_read_log_of_a_folder_without_parts_says_so(tmp_path):
    (tmp_path / "episodes").mkdir()
    with pytest.raises(LogSchemaError, match=r"episodes holds no part of an episodes log"):
        read_log(tmp_path)


def test_read_log_points_from_the_old_log_name_to_the_run_directory(reference):
    with pytest.raises(FileNotFoundError, match=r"holds its log in parts under episodes/; read them all with read_log\("):
        read_log(reference / "episodes.parquet")


def test_read_log_reads_a_run_directory_its_parts_folder_a_part_list_and_an_old_single_file(reference, tmp_path):
    whole = read_log(reference)
    assert len(whole) == sum(pq.read_metadata(reference / p).num_rows for p in PARTS)
    pd.testing.assert_frame_equal(read_log(reference / "episodes"), whole)
    listed = read_log([reference / p for p in PARTS])
    assert listed["agent"].drop_duplicates().tolist() == ["random", "most_popular"]  # the order given
    shutil.copy(reference / PARTS[0], tmp_path / "episodes.parquet")  # a run directory of earlier releases
    pd.testing.assert_frame_equal(read_log(tmp_path), read_log(reference / PARTS[0]))


def test_parts_are_read_in_natural_order(reference, tmp_path):
    # seed=2 holds seed 0's rows and seed=10 seed 1's: by name, seed=2 comes first.
    shutil.copy(reference / PARTS[0], tmp_path / "seed=2.parquet")
    shutil.copy(reference / PARTS[1], tmp_path / "seed=10.parquet")
    assert read_log(tmp_path)["seed"].drop_duplicates().tolist() == [0, 1]


def test_an_episode_log_closed_by_an_error_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), EpisodeLog(tmp_path / "seed=0.parquet"):
        assert [p.name for p in tmp_path.iterdir()] == [f".seed=0.parquet.{os.getpid()}.tmp"]
        raise RuntimeError("rollout failed")
    assert list(tmp_path.iterdir()) == []


def test_an_episode_log_still_being_written_is_invisible_to_readers(tmp_path, reference):
    shutil.copy(reference / PARTS[0], tmp_path / "seed=0.parquet")
    writer = EpisodeLog(tmp_path / "seed=1.parquet")
    try:
        assert not (tmp_path / "seed=1.parquet").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [
            f".seed=1.parquet.{os.getpid()}.tmp"]
        pd.testing.assert_frame_equal(read_log(tmp_path), read_log(reference / PARTS[0]))
    finally:
        writer.close()
    assert (tmp_path / "seed=1.parquet").is_file() and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_an_agents_key_set_with_no_agent_chosen_is_refused_before_the_run(tmp_path, capsys):
    # Before: the lineup took the bare {epsilon: 2} for an agent named "agent", and the run
    # failed in the env's loop with AttributeError: 'dict' object has no attribute 'setup'.
    with pytest.raises(SystemExit):
        run(tmp_path, "agent.epsilon=2")
    assert ("recoworld run: error: agent.epsilon=2 sets an agent's keys, but no agent is chosen; give agent=NAME "
            "with it (NAME a config of conf/agent/, e.g. agent=linucb) to run that agent alone, or "
            "agent._target_=my_pkg.MyAgent for a class of your own: experiment.agents runs each agent it lists "
            "with its own config") in capsys.readouterr().err
    assert_consistent(tmp_path, state=None)


def test_an_in_process_run_leaves_the_root_logger_as_it_found_it(tmp_path):
    """Hydra's job logging puts handlers bound to the run's streams on the root logger; left
    there, a later warning of the process writes to a stream that may have closed."""
    import logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    run(tmp_path / "run")
    assert root.handlers == before and root.level == level
    assert (tmp_path / "run" / "metrics.json").exists()
