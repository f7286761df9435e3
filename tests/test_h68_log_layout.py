"""``recoworld calibrate --data`` on logs as pandas writes them: Parquet files that carry
their table's index, and logs too large for the dense choice fit."""

from __future__ import annotations

import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.apps.calibrate.fit import calibrate
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.folds import CalibrationDataError, Folds, available_memory
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.data.interactions import load_interactions


# ------------------------------------------------------------------ Parquet indexes
def test_a_parquet_of_a_shuffled_or_filtered_table_counts_its_rows_in_file_order(tmp_path):
    """pandas writes a table's row labels into the Parquet file (``df.sample``,
    ``df[df.x > 0]``): a message counts the file's rows, not those labels."""
    log = pd.DataFrame({"user": [1, 2, 1, 2, 3], "item": [5, 6, 5, 7, 8], "timestamp": [1, 2, 1, 3, 4]})
    shuffled = log.iloc[[3, 4, 1, 0, 2]]  # labels 3, 4, 1, 0, 2: the repeated rows are the 4th and 5th
    shuffled.to_parquet(tmp_path / "log.parquet")
    # Before: "rows 1 and 3", the labels of the two rows plus one.
    with pytest.raises(ValueError, match=r"log.parquet: rows 4 and 5 repeat user 1, item 5 at the same timestamp"):
        load_interactions(tmp_path / "log.parquet")
    twice = pd.concat([log.iloc[[0, 1]], log.iloc[[0]]])  # labels 0, 1, 0
    twice.to_parquet(tmp_path / "twice.parquet")
    with pytest.raises(ValueError, match=r"twice.parquet: rows 1 and 3 repeat user 1"):  # before: "rows 1 and 1"
        load_interactions(tmp_path / "twice.parquet")


def test_a_parquet_indexed_by_a_column_that_it_also_keeps_reads_that_column(tmp_path):
    """``df.set_index("user", drop=False)`` writes ``user`` both as a column and as the
    index: read once, not refused with pandas' "cannot insert user, already exists"."""
    log = pd.DataFrame({"user": ["b", "a", "b"], "item": [5, 6, 7], "timestamp": [1, 2, 3]})
    log.set_index("user", drop=False).to_parquet(tmp_path / "log.parquet")
    items = pd.DataFrame({"item": [5, 6, 7], "title": ["five", "six", "seven"]})
    items.set_index("item", drop=False).to_parquet(tmp_path / "items.parquet")
    data = load_interactions(tmp_path / "log.parquet", items=tmp_path / "items.parquet")
    assert data.ratings[["user_id", "item_id", "timestamp"]].values.tolist() == [[1, 0, 1], [0, 1, 2], [1, 2, 3]]
    assert data.items["title"].tolist() == ["five", "six", "seven"]


# ------------------------------------------------------------------ memory
@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    """A generated log of 100 users and 60 items, in the layout's columns."""
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=100,
                                seed=2).data.ratings
    path = tmp_path_factory.mktemp("log") / "log.csv"
    ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(path, index=False)
    return path


def test_a_log_whose_fit_needs_more_memory_than_is_available_is_refused_before_the_fit(log_file, tmp_path,
                                                                                       monkeypatch, capsys):
    """The choice fit holds dense (user, item) tables; a log of 100,000 users and 20,000 items
    (some 200 GiB) was killed by the operating system minutes into the fit, with no message."""
    assert available_memory() > 0  # Linux's MemAvailable (or the machine's memory), in bytes
    # 100 users x 60 items need max(55 * 6,000, 24 * 60**2) = 330,000 bytes; 60 users, 198,000.
    monkeypatch.setattr("recoworld.apps.calibrate.folds.available_memory", lambda: 200_000)
    assert calibrate_main(["--data", str(log_file), "--out", str(tmp_path / "world"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "recoworld calibrate: the choice fit holds a dense table of every (user, item) pair: 100 users x 60 items need "
        "about 0.3 MiB of memory, and 0.2 MiB is available; fit a random subset of the users (--users 60 or fewer), "
        "or keep the log's most chosen items only\n")
    assert not (tmp_path / "world").exists()
    data = load_interactions(log_file)
    with pytest.raises(CalibrationDataError, match="keep the log's most chosen items only$") as error:
        calibrate(data=data, progress=False)
    assert "--users 60 or fewer" in str(error.value)
    # The advice holds: 60 users fit, 61 do not.
    Folds.cut(data, 0.2, 0.2, users=60).check_memory(200_000)
    with pytest.raises(CalibrationDataError, match="61 users x 60 items"):
        Folds.cut(data, 0.2, 0.2, users=61).check_memory(200_000)
    # Where even one user's table is too large (24 bytes per pair of 60 items), only fewer items help.
    with pytest.raises(CalibrationDataError, match=r"is available; keep the log's most chosen items only$"):
        Folds.cut(data, 0.2, 0.2).check_memory(80_000)



@pytest.mark.parametrize("limit, room", [("4294967296", 3 * 2 ** 30), ("max", None), ("9223372036854771712", None)])
def test_the_memory_available_is_a_containers_limit_where_it_is_lower(tmp_path, monkeypatch, limit, room):
    """In a container the machine's free memory is not the process's: its cgroup's limit,
    less what it uses, is (``max``, or v1's near 2**63, means no limit)."""
    from recoworld.apps.calibrate import folds

    (tmp_path / "memory.max").write_text(f"{limit}\n")
    (tmp_path / "memory.current").write_text(f"{2 ** 30}\n")
    monkeypatch.setattr(folds, "CGROUP_MEMORY", ((tmp_path / "memory.max", tmp_path / "memory.current"),))
    monkeypatch.setattr(folds, "_meminfo_available", lambda: 64 * 2 ** 30)
    assert folds.available_memory() == (64 * 2 ** 30 if room is None else room)
