"""``recoworld merge``: the same runs give the same files, byte for byte, whatever the order
of the ``DIR`` arguments; a merge that is killed leaves no temporary for good."""

from __future__ import annotations

import signal
import subprocess
import sys

import pandas as pd
import pytest
from test_merge import fake_run

from recoworld.apps import cli
from recoworld.apps.merge_writer import merge
from recoworld.metrics import mean_interval


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    """Two sweeps of one setting and another: pooled means whose last bit depends on the order
    of their terms, seed 2 run in both with other values, and the ``mix`` setting in the
    second sweep only (a row whose place depends on which sweep is read first)."""
    root = tmp_path_factory.mktemp("sweeps")
    fake_run(root / "a" / "0", ["env.reward=clicks", "experiment.seeds=[0,1,2]"], [0, 1, 2], [0.1, 0.2, 0.7])
    fake_run(root / "b" / "0", ["env.reward=mix", "experiment.seeds=[3,4]"], [3, 4], [0.5, 0.25])
    fake_run(root / "b" / "1", ["env.reward=clicks", "experiment.seeds=[2,3,4]"], [2, 3, 4], [0.9, 0.3, 0.11])
    return root


@pytest.mark.parametrize("order", [("b", "a"), ("b/1", "a", "b/0"), ("a", "b", "a/0")])
def test_the_same_runs_merge_to_the_same_bytes_whatever_the_order_of_the_dirs(two_sweeps, order):
    written = {}
    for name, dirs in (("forward", ("a", "b")), ("other", order)):
        out = two_sweeps / f"out-{name}-{'-'.join(order).replace('/', '')}"
        assert cli.main(["merge", *(str(two_sweeps / d) for d in dirs), "--out", str(out)]) == 0
        written[name] = (out / "sweep.csv").read_bytes(), (out / "sweep.png").read_bytes()
    assert written["other"][0] == written["forward"][0]
    assert written["other"][1] == written["forward"][1]


def test_a_pooled_mean_is_summed_in_seed_order_and_a_shared_seed_is_the_first_runs_by_path(two_sweeps):
    table = merge([two_sweeps / "b", two_sweeps / "a"], two_sweeps / "out-pooled")
    assert table["env.reward"].tolist() == ["clicks", "mix"]  # a/0 is read first, whatever the order given
    clicks = table.iloc[0]
    # Seed 2 is a/0's (0.7, not b/1's 0.9): a comes before b in path order.
    values = [0.1, 0.2, 0.7, 0.3, 0.11]
    assert (clicks["seeds"], clicks["ctr"]) == ("0 1 2 3 4", mean_interval(values).mean)  # equal to the last bit
    assert clicks["ctr"] != mean_interval([0.3, 0.11, 0.1, 0.2, 0.7]).mean, "the test's values tell orders apart"


def test_a_pooled_mean_is_the_same_however_runs_split_the_seeds(tmp_path):
    fake_run(tmp_path / "split" / "0", ["experiment.seeds=[3,4]"], [3, 4], [0.3, 0.11])
    fake_run(tmp_path / "split" / "1", ["experiment.seeds=[0,1,2]"], [0, 1, 2], [0.1, 0.2, 0.7])
    fake_run(tmp_path / "whole" / "0", ["experiment.seeds=[0,1,2,3,4]"], [0, 1, 2, 3, 4], [0.1, 0.2, 0.7, 0.3, 0.11])
    split, whole = merge([tmp_path / "split"]), merge([tmp_path / "whole"])
    assert split["ctr"].tolist() == whole["ctr"].tolist() == [mean_interval([0.1, 0.2, 0.7, 0.3, 0.11]).mean]


#: A ``recoworld merge`` whose plot stops half-written: it says so on stdout and waits for a signal.
STOPPED_MERGE = """
import sys
from recoworld.apps import cli, merge_writer

def plot_half(table, metric, path):
    path.write_bytes(b"half a png")
    print("writing", flush=True)
    sys.stdin.read()  # until the test kills this process

merge_writer.plot_sweep = plot_half
sys.exit(cli.main(["merge", *sys.argv[1:]]))
"""


def stopped_merge(sweep, out):
    """A merge of ``sweep`` into ``out`` started in a process of its own, once its temporaries exist."""
    child = subprocess.Popen([sys.executable, "-c", STOPPED_MERGE, str(sweep), "--out", str(out)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n", child.communicate()[1]
    return child


def temporaries(out):
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


def test_a_merge_killed_outright_leaves_temporaries_the_next_merge_deletes(tmp_path):
    fake_run(tmp_path / "sweep" / "0", ["env.reward=clicks"], [0, 1], [0.1, 0.2])
    out = tmp_path / "out"
    child = stopped_merge(tmp_path / "sweep", out)
    try:
        left = [f".sweep.csv.{child.pid}.tmp", f".sweep.png.{child.pid}.tmp"]
        assert temporaries(out) == left
        with pytest.raises(BlockingIOError, match="is being written by another recoworld merge"):
            merge([tmp_path / "sweep"], out)  # the merge that still runs holds the folder
        assert temporaries(out) == left, "a merge that still runs keeps its temporaries"
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert temporaries(out) == left  # what a killed merge leaves...
    merge([tmp_path / "sweep"], out)
    assert temporaries(out) == []    # ...and the next merge into the folder deletes
    assert sorted(p.name for p in out.iterdir()) == [".sweep.csv.lock", "sweep.csv", "sweep.png"]
    assert pd.read_csv(out / "sweep.csv")["n_seeds"].tolist() == [2]


def test_a_merge_stopped_by_kill_leaves_the_previous_files_and_no_temporary(tmp_path):
    fake_run(tmp_path / "0", ["env.reward=clicks"], [0, 1], [0.1, 0.2])
    merge([tmp_path])
    before = (tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()
    fake_run(tmp_path / "1", ["env.reward=mix"], [0, 1], [0.5, 0.6])
    child = stopped_merge(tmp_path, tmp_path)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate()
    assert child.returncode == 130, err
    assert temporaries(tmp_path) == []
    assert ((tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()) == before


def test_the_console_table_shows_values_with_brackets_as_they_are(tmp_path):
    from io import StringIO

    from rich.console import Console

    fake_run(tmp_path / "0", ["experiment.agents=[random,linucb]"], [0, 1], [0.1, 0.2])
    fake_run(tmp_path / "1", ["experiment.agents=[/]"], [0, 1], [0.3, 0.2])
    screen = StringIO()
    merge([tmp_path], console=Console(file=screen, width=200))
    rows = [line.split("│")[1].strip() for line in screen.getvalue().splitlines() if line.startswith("│")]
    assert rows == ["[random,linucb]", "[/]"]
