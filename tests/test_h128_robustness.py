"""``recoworld robustness`` as a careless user meets it: a new study given the folder of a
killed or a still-running one, and Kendall's tau of a ranking that does not move."""

from __future__ import annotations

import pytest

from recoworld.apps.robustness import DEFAULT_RANGES, RobustnessConfig, run_study
from recoworld.apps.robustness.app import main as robustness_main
from recoworld.apps.robustness.stability import kendall_tau
from recoworld.apps.robustness.studydir import StudyDirectory, settings_of

AGENTS = ("first", "second", "third", "fourth", "fifth")


def test_the_same_ranking_has_a_tau_of_exactly_one_and_the_reversed_one_of_minus_one():
    scores = {name: float(i) for i, name in enumerate(AGENTS)}
    assert kendall_tau(scores, dict(scores)) == 1.0
    assert kendall_tau(scores, {name: -s for name, s in scores.items()}) == -1.0
    # One swapped pair of ten: (9 - 1) / 10.
    assert kendall_tau(scores, {**scores, "first": 1.5}) == 0.8
    # With ties, tau-b: (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 = 10 pairs, one tied on the right.
    assert kendall_tau(scores, {**scores, "first": 1.0}) == pytest.approx(9 / (10 * 9) ** 0.5, abs=1e-12)  # rounded to 12 decimals


def test_a_study_whose_worlds_keep_the_ranking_reads_tau_one_in_every_world():
    def same_ranking(values, seeds):
        return {name: float(i) + 0.01 * seeds[0] for i, name in enumerate(AGENTS)}

    config = RobustnessConfig(agents=AGENTS, worlds=3, seed_noise=2, resamples=100,
                              ranges={"leave_mindset": DEFAULT_RANGES["leave_mindset"]})
    result = run_study(config, same_ranking)
    assert {row["tau"] for row in result["worlds"]} == {1.0}
    assert result["stability"]["tau"]["mean"] == 1.0 == result["seed_noise"]["tau"]["low"]


def _study(tmp_path):
    config = RobustnessConfig(agents=("random", "most_popular"))
    return StudyDirectory.create(tmp_path / "study", settings_of(config, ["world=synthetic"]), {"world": "w"},
                                 planned=23)


def test_a_new_study_in_the_folder_of_a_killed_one_names_it_killed_with_the_resume(tmp_path, capsys):
    study = _study(tmp_path)
    study.release()  # its process ended without a word: status.json still says running
    with pytest.raises(SystemExit) as refused:
        robustness_main(["--agents", "random,most_popular", "--out", str(study.path), "world=synthetic"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recoworld robustness: error: --out {study.path} holds a killed study (0 of 23 worlds finished); continue "
        f"it with --resume {study.path}, or choose another --out")


def test_a_new_study_in_the_folder_of_one_still_running_says_to_wait_for_it(tmp_path, capsys):
    import os

    study = _study(tmp_path)  # holds the folder's lock, as a running study does
    try:
        with pytest.raises(SystemExit):
            robustness_main(["--out", str(study.path)])
    finally:
        study.release()
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recoworld robustness: error: --out {study.path} holds a study still being run by process {os.getpid()} (0 "
        f"of 23 worlds finished); wait for it to finish, or stop it (Ctrl-C, or kill {os.getpid()}) and continue it "
        f"with --resume {study.path}, or choose another --out")
