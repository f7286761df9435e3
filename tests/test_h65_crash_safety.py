"""A run stopped by what is not a bug of the run: a full disk, ``kill`` (SIGTERM), a status
file that cannot be written. Each leaves a run directory that says what happened, holds no
temporary file, and finishes with ``experiment.resume=true`` into the rows of a run never
stopped."""

import errno
import logging
import signal

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_faults_runs import (  # noqa: F401  (reference, waiting_run: fixtures)
    PARTS,
    assert_consistent,
    parts_on_disk,
    reference,
    rows,
    run,
    status,
    waiting_run,
)

from recoworld.apps.run.rundir import Part, RunDirectory
from recoworld.logs import EpisodeLog

DISK_FULL = OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")


def fill_the_disk_at(monkeypatch, call: int) -> None:
    """Parquet writes fail as on a full disk from the ``call``-th on (TINY writes one per part)."""
    write, calls = pq.ParquetWriter.write_table, []

    def writing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) >= call:
            raise DISK_FULL
        return write(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", writing)


# ------------------------------------------------------------ the episode log
def test_a_log_whose_last_rows_do_not_fit_on_the_disk_leaves_no_temporary(tmp_path, reference, monkeypatch):
    fill_the_disk_at(monkeypatch, 1)
    table = pq.read_table(reference / PARTS[0])
    log = EpisodeLog(tmp_path / "seed=0.parquet")
    log.append({name: table.column(name).combine_chunks() for name in table.column_names})
    with pytest.raises(OSError, match="No space left on device"):
        log.close()  # the rows are written as it closes
    # The half-written temporary is gone: it holds the space that status.json needs next.
    assert list(tmp_path.iterdir()) == []


def test_a_log_discarded_on_a_full_disk_raises_the_rollouts_error_not_the_footers(tmp_path, monkeypatch):
    def footer_fails(self):
        raise DISK_FULL

    monkeypatch.setattr(pq.ParquetWriter, "close", footer_fails)
    with pytest.raises(RuntimeError, match="rollout failed"), EpisodeLog(tmp_path / "seed=0.parquet"):
        raise RuntimeError("rollout failed")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ the run
def test_a_full_disk_stops_the_run_in_one_line_and_resume_finishes_it(tmp_path, reference, monkeypatch, capsys):
    fill_the_disk_at(monkeypatch, 2)
    with pytest.raises(SystemExit) as stop:
        run(tmp_path)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"recoworld run: error: No space left on device: the run in {tmp_path} stopped (1 of 4 rollouts complete, "
            f"kept); free space on that disk, then finish it with experiment.resume=true hydra.run.dir={tmp_path}"
            ) in err
    assert_consistent(tmp_path, "failed", complete=1)
    assert status(tmp_path)["error_type"] == "OSError" and "No space left on device" in status(tmp_path)["error"]
    monkeypatch.undo()  # space freed
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


def test_a_status_that_cannot_be_written_does_not_hide_why_the_run_stopped(tmp_path, monkeypatch, caplog):
    directory = RunDirectory.start(tmp_path, {"world": "w"}, [Part("random", 0)], resume=False)

    def disk_full():
        raise DISK_FULL

    monkeypatch.setattr(directory, "_save", disk_full)
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError, match="^act exploded$"):
        with directory.recording():
            raise RuntimeError("act exploded")
    with pytest.raises(KeyboardInterrupt), directory.recording():
        raise KeyboardInterrupt
    assert [r.getMessage() for r in caplog.records] == [
        f"could not record in {tmp_path / 'status.json'} that the run is {state} ({DISK_FULL}); it still says "
        "running" for state in ("failed", "interrupted")]
    assert status(tmp_path)["state"] == "running"  # as a killed run's: resumed as one
    with pytest.raises(OSError, match="No space left"):
        directory.complete()  # a run is never complete without saying so


@pytest.mark.slow
def test_sigterm_stops_the_run_as_ctrl_c_does_and_resume_finishes_it(tmp_path, waiting_run, reference):
    process = waiting_run  # its first part is complete, its second in flight
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert f"finish the run with experiment.resume=true hydra.run.dir={tmp_path}" in out
    saved = status(tmp_path)
    assert saved["state"] == "interrupted" and saved["parts"]["current"] is None and saved["finished"]
    assert_consistent(tmp_path, "interrupted")  # every part whole, no temporary of the rollout in flight
    assert 1 <= len(parts_on_disk(tmp_path)) < 4
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))



def test_ctrl_c_after_a_parts_log_took_its_name_but_before_its_record_leaves_no_unlisted_part(tmp_path, reference,
                                                                                                  monkeypatch):
    # The rollout's log takes its name, then its env and simulator close, then the run records
    # the part: a Ctrl-C (or kill) in between left a whole part that status.json did not list.
    from recoworld.simulators.statistical import StatisticalUsers

    def close_interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(StatisticalUsers, "close", close_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert_consistent(tmp_path, "interrupted", complete=0)
    assert parts_on_disk(tmp_path) == set()
    monkeypatch.undo()
    run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "complete", complete=4)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))


def interrupt_as_a_log_opens(monkeypatch) -> None:
    """A Ctrl-C just after a log's Parquet file is made, before its writer is kept."""
    from recoworld import logs

    opened = logs.pq.ParquetWriter

    def interrupted(where, *args, **kwargs):
        opened(where, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(logs.pq, "ParquetWriter", interrupted)


def test_ctrl_c_as_a_parts_log_opens_leaves_no_temporary(tmp_path, monkeypatch):
    # A stop can land while the part's log file is being opened (the file made, the writer not
    # yet kept), or once it is open but before the rollout's block takes charge of it.
    from recoworld import logs

    interrupt_as_a_log_opens(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert_consistent(tmp_path, "interrupted", complete=0)
    monkeypatch.undo()

    def interrupted_once_open(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(logs.EpisodeLog, "__enter__", interrupted_once_open)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "experiment.resume=true")
    assert_consistent(tmp_path, "interrupted", complete=0)


def test_a_run_into_a_folder_of_other_runs_leaves_their_files_alone(tmp_path):
    # hydra.run.dir=outputs: the folder of the other runs, one of them writing a part right now.
    outputs = tmp_path / "outputs"
    others = [outputs / "2026-01-01/10-00-00/episodes/agent=random/.seed=1.parquet.4242.tmp",
              outputs / "llm_cache/.reply.json.4243.tmp", outputs / "returns.png"]
    for other in others:
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_bytes(b"not this run's")
    (outputs / ".status.json.4244.tmp").write_bytes(b'{"state": "runn')  # this folder's own leftover
    run(outputs, "agent=random")
    assert [other.read_bytes() for other in others] == [b"not this run's"] * 3
    assert not (outputs / ".status.json.4244.tmp").exists() and status(outputs)["state"] == "complete"


def test_an_episode_log_stopped_as_its_file_opens_leaves_no_temporary(tmp_path, monkeypatch):
    from recoworld import logs

    interrupt_as_a_log_opens(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        logs.EpisodeLog(tmp_path / "part.parquet")
    assert list(tmp_path.iterdir()) == []
