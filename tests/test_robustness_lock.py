"""Two resumes of one robustness study started at the same instant: the folder's lock
(``.status.json.lock``, :func:`recoworld.apps.status.claim`) lets one in and refuses the
other, which reads no status the first has yet to write; it dies with its holder."""

from contextlib import contextmanager

import pytest

from recoworld.apps.robustness import studydir
from recoworld.apps.robustness.study import RobustnessConfig
from recoworld.apps.robustness.studydir import StudyDirectory, StudyDirectoryError, settings_of
from recoworld.apps.status import claim

SETTINGS = settings_of(RobustnessConfig(), [])


def test_a_study_held_by_a_process_is_refused_to_a_second_resume_until_it_lets_go(tmp_path):
    first = StudyDirectory.create(tmp_path / "study", SETTINGS, {"world": "w"}, planned=2)
    first.interrupted()  # its status says stopped, as a status that a resume has not rewritten yet does
    out = first.path
    with pytest.raises(StudyDirectoryError) as refused:
        StudyDirectory.open(out)
    assert str(refused.value) == (
        f"--resume {out}: the study there is still being run by another process (it holds "
        f"{out / '.status.json.lock'}); wait for it to finish, or stop it, and resume then")
    first.release()
    with StudyDirectory.open(out) as second:  # let go: the resume takes the folder, and holds it in turn
        assert second.status["state"] == "interrupted"
        with pytest.raises(StudyDirectoryError, match="still being run by another process"):
            StudyDirectory.open(out)
    StudyDirectory.open(out).release()


def test_a_resume_refused_for_what_the_folder_holds_lets_go_of_its_lock(tmp_path):
    done = StudyDirectory.create(tmp_path / "study", SETTINGS, {"world": "w"}, planned=1)
    done.complete()
    done.release()
    for _ in range(2):  # the second is refused for the same reason, not for a lock the first kept
        with pytest.raises(StudyDirectoryError, match="the study there is complete"):
            StudyDirectory.open(done.path)


def test_a_new_study_holds_its_folder_from_the_instant_it_takes_its_name(tmp_path, monkeypatch):
    """A --resume of a study just created, started as its folder takes its name, must not get
    the lock before the study's own process: the study locks it before the rename."""
    taken = []
    real = studydir.new_folder

    @contextmanager
    def renamed_then_resumed(out):
        with real(out) as report:
            yield report
        taken.append(claim(report.path))  # what a --resume at that instant would get

    monkeypatch.setattr(studydir, "new_folder", renamed_then_resumed)
    with StudyDirectory.create(tmp_path / "study", SETTINGS, {"world": "w"}, planned=1) as study:
        assert taken == [None]
        assert claim(study.path) is None
    assert claim(study.path) is not None  # released with the study
