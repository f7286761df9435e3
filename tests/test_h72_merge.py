"""``recoworld merge``: a ``--metric`` that is a column but not a metric, a ``metrics.json``
with no value, and a merge that fails after its table is written."""

from __future__ import annotations

import json
import shutil

import pytest
from test_merge import fake_run

from recoworld.apps import cli, merge_writer


@pytest.mark.parametrize("column", ["n_seeds", "seeds", "runs", "agent", "ctr_ci_low", "env.reward"])
def test_a_metric_that_is_another_column_is_refused_and_the_previous_merge_stays(tmp_path, capsys, column):
    fake_run(tmp_path / "0", ["env.reward=clicks"], [0, 1], [0.1, 0.2])
    assert cli.main(["merge", str(tmp_path)]) == 0
    before = (tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()
    fake_run(tmp_path / "1", ["env.reward=mix"], [0, 1], [0.5, 0.6])
    assert cli.main(["merge", str(tmp_path), "--metric", column]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recoworld merge: error: --metric {column!r} is not in the runs' metrics; "
        "choose one of ['ctr', 'return_per_episode']")
    assert ((tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()) == before


def test_a_metrics_json_without_values_is_named_and_left_out(tmp_path, capsys):
    fake_run(tmp_path / "0", [], [0, 1], [0.1, 0.2])
    for job, metrics in (("1", {"agents": {}}), ("2", {"agents": {"random": {"seeds": [], "metrics": {}}}})):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
    table = merge_writer.merge([tmp_path])
    assert table["runs"].tolist() == ["0"]
    err = capsys.readouterr().err
    for job in ("1", "2"):
        assert (f"recoworld merge: {tmp_path / job / 'metrics.json'} holds no value of any seed (no agent with a seed "
                "and a metric), so it is not a complete run's metrics.json: left out") in err
    shutil.rmtree(tmp_path / "0")
    assert cli.main(["merge", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"recoworld merge: error: no run with a metrics.json under {tmp_path} (2 left out, named above); "
        "a run writes it when all its parts are complete")


def test_a_merge_stopped_while_plotting_leaves_the_previous_table_and_plot(tmp_path, monkeypatch):
    fake_run(tmp_path / "0", ["env.reward=clicks"], [0, 1], [0.1, 0.2])
    merge_writer.merge([tmp_path])
    before = (tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()
    fake_run(tmp_path / "1", ["env.reward=mix"], [0, 1], [0.5, 0.6])

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_writer, "plot_sweep", stopped)
    with pytest.raises(KeyboardInterrupt):
        merge_writer.merge([tmp_path])
    assert ((tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sweep.csv.lock", "0", "1", "sweep.csv", "sweep.png"]
