"""A new study given the folder of one still running on another machine (a file system
shared between hosts, whose locks hold across them) names that machine: ``kill PID`` here
would stop another process, or none."""

from __future__ import annotations

import json
import os

import pytest

from recoworld.apps.robustness import RobustnessConfig
from recoworld.apps.robustness.app import main as robustness_main
from recoworld.apps.robustness.studydir import STATUS_FILE, StudyDirectory, settings_of


def test_a_study_still_running_on_another_host_is_named_with_its_host(tmp_path, capsys):
    config = RobustnessConfig(agents=("random", "most_popular"))
    study = StudyDirectory.create(tmp_path / "study", settings_of(config, ["world=synthetic"]), {"world": "w"},
                                  planned=23)  # holds the folder's lock, as a running study does
    status = json.loads((study.path / STATUS_FILE).read_text())
    (study.path / STATUS_FILE).write_text(json.dumps({**status, "host": "node-7"}))
    try:
        with pytest.raises(SystemExit):
            robustness_main(["--out", str(study.path)])
    finally:
        study.release()
    pid = os.getpid()
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recoworld robustness: error: --out {study.path} holds a study still being run by process {pid} on node-7 "
        f"(0 of 23 worlds finished); wait for it to finish, or stop it (Ctrl-C, or kill {pid} on node-7) and "
        f"continue it with --resume {study.path}, or choose another --out")
