"""``recoworld merge`` stopped between the renames of ``sweep.csv`` and ``sweep.png`` never
leaves a table beside another table's plot, and says what it left; the write-then-show of the
OPE commands stopped at either step says what it kept.

A stop is a ``KeyboardInterrupt`` raised from a patched ``os.replace`` (as ``kill`` and Ctrl-C
raise it there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_merge import fake_run

from recoworld.apps import cli
from recoworld.apps.interrupts import write_then_show


def stop_at_rename(monkeypatch, n: int) -> None:
    """``os.replace`` raises ``KeyboardInterrupt`` at the ``n``-th rename onto a sweep file."""
    replace, renames = os.replace, []

    def stopping(src, dst, *args, **kwargs):
        if Path(dst).name in ("sweep.csv", "sweep.png"):
            renames.append(Path(dst).name)
            if len(renames) == n:
                raise KeyboardInterrupt
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", stopping)


@pytest.mark.parametrize("n, kept", [
    (1, "stopped before the table was written; {table} is as it was"),
    (2, "stopped after the table was written; {table} is new and whole"),
])
def test_a_merge_stopped_between_its_renames_leaves_a_table_without_a_plot(tmp_path, capsys, monkeypatch, n, kept):
    runs, out = tmp_path / "runs", tmp_path / "out"
    table, plot = out / "sweep.csv", out / "sweep.png"
    fake_run(runs / "0", ["env.reward=clicks"], [0, 1], [0.1, 0.2])
    assert cli.main(["merge", str(runs), "--out", str(out)]) == 0
    old_table = table.read_bytes()
    fake_run(runs / "1", ["env.reward=mix"], [0, 1], [0.5, 0.6])
    with monkeypatch.context() as patch:
        stop_at_rename(patch, n)
        assert cli.main(["merge", str(runs), "--out", str(out)]) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"recoworld merge: {kept.format(table=table)}, without its plot {plot}: merge again to draw it",
        "recoworld merge: interrupted"]
    assert sorted(p.name for p in out.iterdir()) == [".sweep.csv.lock", "sweep.csv"]  # no plot, no temporary
    stopped_table = table.read_bytes()
    assert (stopped_table == old_table) == (n == 1)
    assert cli.main(["merge", str(runs), "--out", str(out)]) == 0  # the rerun draws the plot
    assert plot.stat().st_size > 0 and (n == 1 or table.read_bytes() == stopped_table)


def test_a_report_stopped_while_written_or_shown_says_what_was_kept(tmp_path, capsys):
    out, folder = tmp_path / "out", tmp_path / "out-2"

    def stop(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_then_show("recoworld x", out, stop, print)
    assert capsys.readouterr().err == f"recoworld x: stopped before the report was complete; nothing was written to {out}\n"
    with pytest.raises(KeyboardInterrupt):
        write_then_show("recoworld x", out, lambda: (folder, {}), stop)
    assert capsys.readouterr().err == f"recoworld x: stopped while the tables printed; the report is whole in {folder}\n"
    shown = []
    assert write_then_show("recoworld x", out, lambda: (folder, {"n": 1}), lambda *a: shown.append(a)) == folder
    assert shown == [(folder, {"n": 1})]
