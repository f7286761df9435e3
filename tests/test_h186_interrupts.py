"""Stopping ``recoworld ope``, ``ope evaluate``, ``view``, ``export minari`` and ``merge``:
each says in one line what it kept; the leftovers of a killed view go; an unfinished run
read by ``ope evaluate`` is said to be one; an export names the agents in lineup order.

A stop is a ``KeyboardInterrupt`` raised from a patched function at the point named (as
``kill`` and Ctrl-C raise it there)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import minari
import pandas as pd
import pytest

from recoworld.apps import merge_writer
from recoworld.apps.cli import main as cli
from recoworld.apps.export import minari_dataset
from recoworld.apps.ope import evaluate, report, study
from recoworld.apps.run.app import main as run_app
from recoworld.apps.view import page as view_page
from recoworld.logs import read_log
from tests.test_ope_evaluate import xor_problem
from tests.test_minari import datasets  # noqa: F401  (a fixture: a Minari folder of its own)
from tests.test_ope_study import SMALL

RUN = ["world=synthetic", "env.num_envs=6", "experiment.steps=12", "env.max_steps=6", "experiment.progress=false",
       "experiment.plots=false", "experiment.seeds=[0,1]", "experiment.agents=[random,most_popular]",
       "experiment.log_candidates=true"]


def stop(*args, **kwargs):
    raise KeyboardInterrupt


def ended_pid() -> int:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_app([*RUN, f"hydra.run.dir={out}"])
    return out




def status_of(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


# --- recoworld ope ---------------------------------------------------------------------------


def test_ope_stopped_while_the_tables_print_names_the_whole_report_where_it_went(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    summarise = study.summarise

    def another_study_takes_out(*args, **kwargs):
        out.mkdir()
        (out / "summary.md").write_text("another study")
        return summarise(*args, **kwargs)

    monkeypatch.setattr(study, "summarise", another_study_takes_out)
    monkeypatch.setattr(report, "table", stop)  # the first table printed
    assert cli(["ope", "--out", str(out), *SMALL, "--no-plots"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [f"recoworld ope: stopped while the tables printed; the report is whole in {out}-2",
                        "recoworld ope: interrupted"]
    assert {"runs.csv", "truths.csv", "summary.csv", "summary.md"} <= {p.name for p in (tmp_path / "out-2").iterdir()}
    assert (out / "summary.md").read_text() == "another study"


# --- recoworld ope evaluate ------------------------------------------------------------------


@pytest.fixture
def table_log(tmp_path) -> list[str]:
    problem, x = xor_problem(n=200)
    f = problem.feedback
    pd.DataFrame({"action": f.action, "reward": f.reward, "pscore": f.pscore}).to_csv(tmp_path / "log.csv",
                                                                                      index=False)
    return ["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.test_ope_evaluate:UniformBandit",
            "--sims", "2", "--refits", "2", "--bootstrap", "39", "--out", str(tmp_path / "out")]


def test_ope_evaluate_stopped_says_nothing_was_written_and_names_itself(tmp_path, table_log, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "evaluate_bandit_log", stop)
    assert cli(table_log) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"recoworld ope evaluate: stopped before the report was complete; nothing was written to {tmp_path / 'out'}",
        "recoworld ope evaluate: interrupted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_ope_evaluate_stopped_while_the_tables_print_keeps_the_report(tmp_path, table_log, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "show", stop)
    assert cli(table_log) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"recoworld ope evaluate: stopped while the tables printed; the report is whole in {tmp_path / 'out'}",
        "recoworld ope evaluate: interrupted"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["n"] == 200


def test_ope_evaluate_of_an_unfinished_run_reads_its_complete_rollouts_and_says_so(run_dir, tmp_path, capsys):
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    status = status_of(cut)
    # seed 1 of random did not finish: its part (a cut one, say) stays on disk, unlisted
    status["parts"]["complete"] = [r for r in status["parts"]["complete"] if (r["agent"], r["seed"]) != ("random", 1)]
    status["state"] = "interrupted"
    (cut / "status.json").write_text(json.dumps(status))
    assert cli(["ope", "evaluate", "--log", str(cut), "--agent", "random", "--policy", "most_popular", "--sims", "2",
                "--refits", "2", "--bootstrap", "39", "--truth-users", "50", "--out", str(tmp_path / "out")]) == 0
    note = (f"the run in {cut} was interrupted: 3 of 4 rollouts are complete, and only those are read; rerun its "
            f"command with experiment.resume=true hydra.run.dir={cut} to finish it")
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"recoworld ope evaluate: warning: {note}"
    assert f"warning: {note}" in " ".join(captured.out.split())
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["warnings"][-1] == note
    log = read_log(run_dir)
    assert written["n"] == len(log[(log["agent"] == "random") & (log["seed"] == 0)])  # seed 0's only


def test_ope_evaluate_reads_a_run_in_the_order_of_its_parts_not_of_status_json(run_dir, tmp_path):
    from recoworld.apps.ope.sources import read_recoworld

    reversed_run = tmp_path / "reversed"
    shutil.copytree(run_dir, reversed_run)
    status = status_of(reversed_run)
    status["parts"]["complete"].reverse()  # the order a parallel run finished in
    (reversed_run / "status.json").write_text(json.dumps(status))
    expected = read_log(run_dir)
    expected = expected[expected["agent"] == "random"].reset_index(drop=True)
    pd.testing.assert_frame_equal(read_recoworld(str(reversed_run), "random"), expected)


# --- recoworld view --------------------------------------------------------------------------


def test_view_removes_the_temporaries_of_killed_views_only(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    dead, live = run / f".sessions.html.{ended_pid()}.tmp", run / f".sessions.html.{subprocess.os.getppid()}.tmp"
    other = run / f".notes.html.{ended_pid()}.tmp"  # another page's: its own view removes it
    for path in (dead, live, other):
        path.write_text("<html>half")
    assert cli(["view", str(run)]) == 0
    assert not dead.exists() and live.exists() and other.exists()
    assert (run / "sessions.html").is_file()


def test_view_stopped_says_the_page_is_as_it_was(run_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert cli(["view", str(run)]) == 0
    before = (run / "sessions.html").read_bytes()
    monkeypatch.setattr(view_page, "render_page", stop)
    assert cli(["view", str(run)]) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"recoworld view: stopped before the page was written; {run / 'sessions.html'} is as it was",
        "recoworld view: interrupted"]
    assert (run / "sessions.html").read_bytes() == before
    assert cli(["view", str(run), "--out", str(tmp_path / "new.html")]) == 130
    assert capsys.readouterr().err.splitlines()[-2] == \
        f"recoworld view: stopped before the page was written; nothing was written to {tmp_path / 'new.html'}"
    assert not list(run.glob(".*.tmp")) and not (tmp_path / "new.html").exists()


# --- recoworld export minari -----------------------------------------------------------------


def test_export_names_the_agents_in_lineup_order_whatever_order_the_rollouts_finished(run_dir, tmp_path, datasets):
    reversed_run = tmp_path / "reversed"
    shutil.copytree(run_dir, reversed_run)
    status = status_of(reversed_run)
    status["parts"]["complete"].reverse()  # most_popular's rollouts first, as a parallel run may finish
    (reversed_run / "status.json").write_text(json.dumps(status))
    for run, name in ((run_dir, "recoworld/a-v0"), (reversed_run, "recoworld/b-v0")):
        assert cli(["export", "minari", str(run), "--dataset-id", name]) == 0
        metadata = json.loads((datasets / name / "data" / "metadata.json").read_text())
        assert metadata["algorithm_name"] == "random, most_popular"  # the lineup's order, not sorted


def test_lineup_order_falls_back_to_lineup_yaml_then_sorted(tmp_path):
    (tmp_path / "lineup.yaml").write_text("zeta: {}\nalpha: {}\n")
    assert minari_dataset.lineup_order(tmp_path, None, {"alpha", "zeta", "extra"}) == ["zeta", "alpha", "extra"]
    (tmp_path / "lineup.yaml").unlink()
    assert minari_dataset.lineup_order(tmp_path, None, {"zeta", "alpha"}) == ["alpha", "zeta"]


def test_export_stopped_says_no_dataset_is_under_the_id(run_dir, datasets, capsys, monkeypatch):
    monkeypatch.setattr(minari_dataset, "write_dataset", stop)
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/stopped-v0"]) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "recoworld export minari: stopped before the dataset was complete; no dataset under recoworld/stopped-v0",
        "recoworld export: interrupted"]
    default = minari_dataset.default_dataset_id(run_dir)
    assert cli(["export", "minari", str(run_dir)]) == 130
    assert capsys.readouterr().err.splitlines()[-2].endswith(f"no dataset under {default}")


def test_export_stopped_after_the_write_says_the_dataset_is_whole(run_dir, datasets, capsys, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(minari, "load_dataset", stop)
        assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/whole-v0"]) == 130
    assert capsys.readouterr().err.splitlines()[-2] == \
        "recoworld export minari: stopped after the dataset recoworld/whole-v0 was written whole"
    assert minari.load_dataset("recoworld/whole-v0").total_episodes > 0


# --- recoworld merge -------------------------------------------------------------------------


def test_merge_stopped_says_what_sweep_csv_holds(run_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    table = out / "sweep.csv"
    with monkeypatch.context() as patch:
        patch.setattr(merge_writer, "plot_sweep", stop)
        assert cli(["merge", str(run_dir), "--out", str(out)]) == 130
        assert capsys.readouterr().err.splitlines()[-2:] == [
            f"recoworld merge: stopped before the table was written; nothing was written to {out}",
            "recoworld merge: interrupted"]
    assert cli(["merge", str(run_dir), "--out", str(out)]) == 0
    before = table.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(merge_writer, "plot_sweep", stop)
        assert cli(["merge", str(run_dir), "--out", str(out)]) == 130
        assert capsys.readouterr().err.splitlines()[-2] == \
            f"recoworld merge: stopped before the table was written; {table} is as it was"
    assert table.read_bytes() == before and not list(out.glob(".*.tmp"))
    with monkeypatch.context() as patch:
        patch.setattr(merge_writer, "print_table", stop)  # after both files took their names
        assert cli(["merge", str(run_dir), "--out", str(out)]) == 130
        assert capsys.readouterr().err.splitlines()[-2] == \
            f"recoworld merge: stopped after the table was written; {table} and {out / 'sweep.png'} are new and whole"
