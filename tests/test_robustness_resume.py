"""``recoworld robustness --resume``: a stopped study keeps its finished worlds and resumes to the same report."""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from omegaconf import OmegaConf

from recoworld.apps.cli import main as cli_main
from recoworld.apps.robustness.report import FILES
from recoworld.logs import process_running
from recoworld.simulators.statistical import StatisticalUserConfig
from test_robustness import toy_lineup

#: 11 worlds: the configured one, 2 with other users, 4 sampled, each parameter at each end.
STUDY = ["--agents", "first,second,third", "--worlds", "4", "--seed-noise", "2", "--parameters",
         "leave_mindset,satiation_rate", "world=synthetic"]
WORLDS = 11
#: The study's lock (recoworld.apps.status.claim): an empty file the folder keeps.
LOCK = ".status.json.lock"


class ToyLineup:
    """The toy evaluation of test_robustness as the command's lineup (its scores shifted off
    round numbers); it notes each world it evaluates in ``calls`` and then calls ``stop`` with
    their number (to stop the study)."""

    calls: ClassVar[list] = []
    stop = None

    def __init__(self, config, overrides=()):
        self.overrides = list(overrides)
        self.base = StatisticalUserConfig()
        self.catalog = SimpleNamespace(name="toy", n_items=3)
        self.cfg = OmegaConf.create({"simulator": {"_target_": "toy"}})
        self.on_rollout = None

    def identity(self):
        return {"world": "toy", "overrides": self.overrides}

    def default_identity(self):
        return {"world": "toy", "overrides": []}

    def __call__(self, values, seeds):
        ToyLineup.calls.append((dict(values), list(seeds)))
        if ToyLineup.stop is not None:
            ToyLineup.stop(len(ToyLineup.calls))
        # Scores with every digit of a float in use, so that a report equal to the uninterrupted
        # one shows that the kept scores read back bit for bit; the same offset keeps the ranking.
        offset = math.pi * (1 + sum(values.values()) + sum(seeds)) / 7
        return {name: score + offset for name, score in toy_lineup(values, seeds).items()}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr("recoworld.apps.robustness.lineup.Lineup", ToyLineup)
    monkeypatch.setattr(ToyLineup, "calls", [])
    monkeypatch.setattr(ToyLineup, "stop", None)
    return ToyLineup


@pytest.fixture
def clock(monkeypatch):
    """status.json's times a second apart at each reading, so that one attempt's are told from the next's."""
    seconds = itertools.count()
    start = datetime(2025, 1, 31, 12, tzinfo=timezone.utc)

    def tick() -> str:
        return (start + timedelta(seconds=next(seconds))).isoformat()

    for module in ("recoworld.apps.status", "recoworld.apps.robustness.studydir"):
        monkeypatch.setattr(f"{module}.now", tick)


def ctrl_c_at(n):
    def stop(calls):
        if calls == n:
            raise KeyboardInterrupt
    return stop


def failing_at(n, error):
    """Raises ``error`` at the ``n``-th world evaluated (as ``toy.stop``)."""
    def stop(calls):
        if calls == n:
            raise error
    return stop


def status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


def report(folder: Path) -> tuple:
    """The report's files, read as text: a resumed study's are the same, byte for byte."""
    return tuple((folder / name).read_text() for name in ("robustness.json", "worlds.csv", "report.md"))


def uninterrupted(tmp_path, toy) -> tuple[tuple, list]:
    """The report and the evaluated worlds of the study run in one go."""
    assert cli_main(["robustness", *STUDY, "--out", str(tmp_path / "whole")]) == 0
    calls = list(toy.calls)
    toy.calls.clear()
    return report(tmp_path / "whole"), calls


def stopped_study(tmp_path, toy, after: int) -> Path:
    """A study stopped by Ctrl-C once ``after`` worlds have finished."""
    out = tmp_path / "stopped"
    toy.stop = ctrl_c_at(after + 1)
    assert cli_main(["robustness", *STUDY, "--out", str(out)]) == 130
    toy.stop = None
    toy.calls.clear()
    return out


def test_a_stopped_study_resumes_without_running_its_finished_worlds_and_reports_the_same(tmp_path, toy, capsys):
    whole, calls = uninterrupted(tmp_path, toy)
    assert len(calls) == WORLDS
    out = stopped_study(tmp_path, toy, after=4)
    assert (f"recoworld robustness: stopped with 4 of {WORLDS} worlds finished, kept in {out}: continue it with "
            f"recoworld robustness --resume {out}") in capsys.readouterr().err
    saved = status(out)
    assert (saved["state"], saved["attempts"], saved["previous_attempts"]) == ("interrupted", 1, [])
    assert saved["worlds"] == {"planned": WORLDS, "finished": 4}
    assert saved["settings"]["worlds"] == 4 and saved["settings"]["overrides"] == ["world=synthetic"]
    assert list(saved["settings"]["ranges"]) == ["leave_mindset", "satiation_rate"]
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "scores", "status.json"]  # no report of a partial study
    assert sorted(p.name for p in (out / "scores").iterdir()) == [f"world-00{i}.json" for i in range(4)]

    assert cli_main(["robustness", "--resume", str(out)]) == 0
    assert toy.calls == calls[4:], "the finished worlds are not evaluated again"
    assert report(out) == whole
    saved = status(out)
    assert (saved["state"], saved["attempts"]) == ("complete", 2)
    assert saved["worlds"] == {"planned": WORLDS, "finished": WORLDS}


def test_the_study_command_repeated_with_resume_continues_it(tmp_path, toy):
    """Flags given with --resume are checked against the saved settings: repeating the
    study's own command (with --out or --resume naming its folder) continues it."""
    whole, calls = uninterrupted(tmp_path, toy)
    out = stopped_study(tmp_path, toy, after=6)
    assert cli_main(["robustness", *STUDY, "--out", str(out), "--resume", str(out)]) == 0
    assert toy.calls == calls[6:] and report(out) == whole


def test_a_study_killed_outright_leaves_readable_files_and_resumes(tmp_path, toy):
    """SIGKILL: no handler runs, so status.json still says running, under a pid that no
    longer lives; every file is whole, and the study resumes from its finished worlds."""
    whole, calls = uninterrupted(tmp_path, toy)
    out = tmp_path / "killed"
    script = tmp_path / "study.py"
    script.write_text(
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import recoworld.apps.robustness.lineup as lineup\n"
        "from recoworld.apps.robustness.app import main\n"
        "from test_robustness_resume import ToyLineup\n"
        "lineup.Lineup = ToyLineup\n"
        "ToyLineup.stop = lambda n: n == 6 and os.kill(os.getpid(), signal.SIGKILL)\n"
        "main(sys.argv[1:])\n")
    with subprocess.Popen([sys.executable, str(script), *STUDY, "--out", str(out)], cwd=tmp_path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as study:
        _, stderr = study.communicate(timeout=300)
    assert study.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    saved = status(out)
    assert (saved["state"], saved["worlds"]["finished"], saved["pid"]) == ("running", 5, study.pid)
    assert not process_running(study.pid)
    for file in out.rglob("*"):
        assert not file.name.startswith(".") or file.name == LOCK, f"{file} is a temporary"
        if file.is_file() and file.name != LOCK:
            json.loads(file.read_text())
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    assert toy.calls == calls[5:] and report(out) == whole
    endings = status(out)["previous_attempts"]
    assert [(a["attempt"], a["state"], a["finished"], a["worlds_finished"]) for a in endings] == [
        (1, "killed", None, 5)]


def test_kill_stops_a_study_as_ctrl_c_does(tmp_path, toy):
    """SIGTERM (kill's default) is taken as Ctrl-C: the folder says interrupted."""
    def unhandled(signum, frame):  # instead of ending pytest, where the command sets no handler
        raise AssertionError("the study did not take SIGTERM")

    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        toy.stop = lambda n: n == 3 and os.kill(os.getpid(), signal.SIGTERM)
        assert cli_main(["robustness", *STUDY, "--out", str(tmp_path / "study")]) == 130
        assert signal.getsignal(signal.SIGTERM) is unhandled, "the command leaves the handler as it found it"
    finally:
        signal.signal(signal.SIGTERM, before)
    saved = status(tmp_path / "study")
    assert (saved["state"], saved["worlds"]["finished"]) == ("interrupted", 2)


def test_a_failed_study_says_why_and_resumes(tmp_path, toy, capsys):
    whole, calls = uninterrupted(tmp_path, toy)

    toy.stop = failing_at(3, ValueError("metric ctr is undefined for agent first"))
    out = tmp_path / "failed"
    assert cli_main(["robustness", *STUDY, "--out", str(out)]) == 2
    assert "recoworld robustness: metric ctr is undefined for agent first" in capsys.readouterr().err
    saved = status(out)
    assert (saved["state"], saved["error"], saved["error_type"], saved["worlds"]["finished"]) == (
        "failed", "metric ctr is undefined for agent first", "ValueError", 2)
    toy.stop = None
    toy.calls.clear()
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    assert toy.calls == calls[2:] and report(out) == whole


def ending(saved: dict, worlds_finished: int) -> dict:
    """What previous_attempts keeps of the attempt that left ``saved`` (a status.json)."""
    return {"attempt": saved["attempts"], "state": saved["state"], "error": saved["error"],
            "error_type": saved["error_type"], "started": saved["started"], "finished": saved["finished"],
            "updated": saved["updated"], "worlds_finished": worlds_finished}


def test_a_resume_that_fails_again_keeps_the_earlier_failure(tmp_path, toy, clock):
    out = tmp_path / "failed"
    toy.stop = failing_at(3, ValueError("metric ctr is undefined for agent first"))
    assert cli_main(["robustness", *STUDY, "--out", str(out)]) == 2
    first = status(out)
    toy.calls.clear()
    toy.stop = failing_at(2, OSError("the world's files are unreachable"))  # the resume's 2nd world
    with pytest.raises(OSError):
        cli_main(["robustness", "--resume", str(out)])
    second = status(out)
    assert (second["state"], second["error"], second["error_type"], second["attempts"]) == (
        "failed", "the world's files are unreachable", "OSError", 2)
    assert second["previous_attempts"] == [ending(first, worlds_finished=2)]
    assert second["previous_attempts"][0]["error"] == "metric ctr is undefined for agent first"
    assert second["started"] > first["finished"], "started is the resume's own start"

    toy.stop = None
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    third = status(out)
    assert (third["state"], third["error"], third["attempts"]) == ("complete", None, 3)
    assert third["previous_attempts"] == [ending(first, worlds_finished=2), ending(second, worlds_finished=3)]


def test_a_complete_resumed_study_lists_its_interrupted_attempt(tmp_path, toy, clock):
    out = stopped_study(tmp_path, toy, after=4)
    first = status(out)
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    saved = status(out)
    assert (saved["state"], saved["attempts"]) == ("complete", 2)
    assert saved["previous_attempts"] == [ending(first, worlds_finished=4)]
    assert saved["previous_attempts"][0]["state"] == "interrupted"


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["robustness", *argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_resume_refuses_what_it_cannot_resume_naming_the_folder_and_the_fix(tmp_path, toy, capsys):
    out = stopped_study(tmp_path, toy, after=4)
    kept = (out / "status.json").read_text()
    capsys.readouterr()
    empty, run_dir, edited, other = (tmp_path / name for name in ("empty", "run", "edited", "other"))
    for folder in (empty, run_dir, edited):
        folder.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "interrupted", "parts": {"complete": []}}))
    (edited / "status.json").write_text("{not json")
    cases = [
        (["--resume", str(tmp_path / "nowhere")],
         f"--resume {tmp_path / 'nowhere'}: no such folder; give the --out folder of a stopped study"),
        (["--resume", str(empty)],
         (f"--resume {empty} holds no status.json: it is not the folder of a robustness study; give the --out "
          "folder of a stopped study")),
        (["--resume", str(run_dir)],
         (f"--resume {run_dir} is a recoworld run directory, not a robustness study's folder; finish a run with "
          f"experiment.resume=true hydra.run.dir={run_dir}")),
        (["--resume", str(edited)],
         (f"--resume {edited}: {edited / 'status.json'} is not the status of a robustness study (Expecting property "
          "name enclosed in double quotes: line 1 column 2 (char 1)); it was edited or written by something else: "
          "give the --out folder of a stopped study")),
        ([*STUDY, "--worlds", "8", "--resume", str(out)],
         (f"--resume {out}: the study there was started with other settings than these flags give (worlds: saved "
          f"4, now 8); give --resume {out} alone to continue it as it was started, or start a new study with these "
          "flags and another --out")),
        (["--resume", str(out), "--metric", "ctr"],  # flags repeat the whole study, or are left out
         ("(agents: saved ['first', 'second', 'third'], now ['random', 'most_popular', 'linucb', 'epsilon_greedy', "
          "'bernoulli_ts']; metric: saved 'reward_per_step', now 'ctr'; overrides: saved ['world=synthetic'], "
          "now [];")),
        (["--resume", str(out), "--out", str(other)],
         f"--out {other} with --resume {out}: a resumed study writes its report into its own folder; drop --out"),
        ([*STUDY, "--out", str(out)],
         (f"--out {out} holds an interrupted study (4 of {WORLDS} worlds finished); continue it with --resume "
          f"{out}, or choose another --out")),
    ]
    for argv, message in cases:
        assert message in refused(argv, capsys), argv
    assert (out / "status.json").read_text() == kept, "a refused resume leaves the study as it was"
    assert toy.calls == []


def test_resume_refuses_a_complete_study_and_one_still_running(tmp_path, toy, capsys):
    out = tmp_path / "done"
    assert cli_main(["robustness", *STUDY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert (f"--resume {out}: the study there is complete (its report: {out / 'report.md'}); nothing is left to "
            "run: start a new study with another --out") in refused(["--resume", str(out)], capsys)
    running = status(out)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as writer:
        try:
            running.update(state="running", pid=writer.pid)
            del running["lock"]  # written by a release whose studies took no lock: its pid is all there is
            (out / "status.json").write_text(json.dumps(running))
            assert (f"--resume {out}: the study there is still being run by process {writer.pid} (status.json); wait "
                    f"for it to finish, or stop it (Ctrl-C, or kill {writer.pid}) and resume then"
                    ) in refused(["--resume", str(out)], capsys)
        finally:
            writer.kill()


def test_a_key_added_since_the_study_began_may_take_its_default_on_resume(tmp_path, toy, capsys, monkeypatch):
    """A newer RecoWorld's config holds a key the saved world lacks: at its default the study
    resumes, and status.json's config_added lists it; set to another value, it is refused."""
    out = stopped_study(tmp_path, toy, after=4)
    capsys.readouterr()
    monkeypatch.setattr(ToyLineup, "identity", lambda self: {"world": "toy", "overrides": self.overrides, "new": 2})
    monkeypatch.setattr(ToyLineup, "default_identity", lambda self: {"world": "toy", "overrides": [], "new": 3})
    assert cli_main(["robustness", "--resume", str(out)]) == 2
    assert ("composes differently now (new: saved absent (a key added since that run; its default is 3), now 2)"
            in capsys.readouterr().err)
    monkeypatch.setattr(ToyLineup, "default_identity", lambda self: {"world": "toy", "overrides": [], "new": 2})
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    assert status(out)["state"] == "complete" and status(out)["config_added"] == {"new": 2}


def test_resume_refuses_scores_that_are_not_the_plan_s_and_a_world_composed_otherwise(tmp_path, toy, capsys,
                                                                                      monkeypatch):
    out = stopped_study(tmp_path, toy, after=4)
    capsys.readouterr()
    monkeypatch.setattr(ToyLineup, "identity", lambda self: {"world": "another toy", "overrides": self.overrides})
    assert cli_main(["robustness", "--resume", str(out)]) == 2
    assert (f"recoworld robustness: the configured world of the study in {out} composes differently now (world: "
            "saved 'toy', now 'another toy'): RecoWorld or its configs changed since the study began, and its "
            "finished worlds ran in the saved one; finish it with the RecoWorld that began it, or start a new study "
            "with another --out") in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr("recoworld.apps.robustness.lineup.Lineup", ToyLineup)

    world = out / "scores" / "world-001.json"
    saved = json.loads(world.read_text())
    world.write_text(json.dumps({**saved, "seeds": [7]}))
    assert cli_main(["robustness", "--resume", str(out)]) == 2
    assert (f"recoworld robustness: {world} holds world {{'kind': 'seed_noise', 'values': {{}}, 'seeds': [7], "
            "'parameter': None}, but world 1 of the study's plan is {'kind': 'seed_noise', 'values': {}, 'seeds': "
            "[1], 'parameter': None}: the worlds were drawn differently than when the study began (another SciPy?); "
            "start a new study with another --out") in capsys.readouterr().err
    world.write_text(json.dumps(saved)[:40])
    assert cli_main(["robustness", "--resume", str(out)]) == 2
    assert (f"recoworld robustness: {world} is not a finished world's scores (") in capsys.readouterr().err
    world.unlink()  # the fix the message names: that world runs again
    assert cli_main(["robustness", "--resume", str(out)]) == 0
    assert ToyLineup.calls[0][1] == [1] and status(out)["state"] == "complete"
    assert status(out)["attempts"] == 2, "the refused resumes left the study as it was"
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, LOCK, "scores", "status.json"])
