"""Each report writer returns where its report went when --out was taken while it wrote."""

from __future__ import annotations

import contextlib

import recoworld.apps.fidelity.page as page
import recoworld.apps.ope.evaluate as evaluate
import recoworld.apps.robustness.studydir as studydir
import recoworld.logs as logs


def taken_meanwhile(monkeypatch, module):
    """``module``'s new_folder, with a folder that takes the report's name while it is written."""
    real = logs.new_folder

    @contextlib.contextmanager
    def racing(out):
        with real(out) as report:
            yield report
            report.path.mkdir(exist_ok=True)
            (report.path / "theirs").write_text("x")

    monkeypatch.setattr(module, "new_folder", racing)


def test_ope_evaluate_returns_where_the_report_went(tmp_path, monkeypatch):
    taken_meanwhile(monkeypatch, evaluate)
    assert evaluate.write({"estimates": []}, tmp_path / "r") == tmp_path / "r-2"
    assert (tmp_path / "r-2" / "report.json").is_file()


def test_fidelity_returns_where_the_report_went(tmp_path, monkeypatch):
    taken_meanwhile(monkeypatch, page)
    monkeypatch.setattr(page, "_write_files", lambda results, out, world: (out / "report.md").write_text("#"))
    assert page.write_report({}, tmp_path / "f", None) == tmp_path / "f-2" / "report.md"


def test_a_study_whose_name_was_taken_meanwhile_runs_in_the_next_free_one(tmp_path, monkeypatch):
    taken_meanwhile(monkeypatch, studydir)
    with studydir.StudyDirectory.create(tmp_path / "s", {}, {"world": "w"}, planned=1) as study:
        assert study.path == tmp_path / "s-2"
        assert (study.path / "status.json").is_file()
        assert studydir.claim(study.path) is None  # this study holds it
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["theirs"]
