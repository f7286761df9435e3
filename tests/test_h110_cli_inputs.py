"""A user's mistakes on the command line: each gets a message that names the value and the
fix, never a traceback, and no world answers for a log it was not fitted on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from recoworld import Catalog
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.apps.run.runner import ensure_calibrated
from recoworld.data.interactions import load_interactions

LOG = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"],
                    "timestamp": [100, 200, 300, 400], "rating": [4, 5, 3, 2]})


def write_csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the log's header
def test_a_csv_header_naming_a_column_of_the_layout_twice_is_refused(tmp_path):
    # pandas would read the second as ``rating.1`` and the fit the first, silently.
    path = write_csv(tmp_path, "log.csv", "user,item,timestamp,rating,rating\na,x,100,4,2\nb,y,200,5,1\n")
    with pytest.raises(ValueError) as error:
        load_interactions(path)
    assert str(error.value) == (f"{path}: the interaction log has more than one column named 'rating' (columns 4 "
                                "and 5); rename or remove all but one, so that one column holds it")


def test_a_parquet_log_with_two_user_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table([pa.array(["a", "b"]), pa.array(["x", "y"]), pa.array([1, 2]), pa.array(["p", "q"])],
                            names=["user", "item", "timestamp", "user"]), path)
    with pytest.raises(ValueError) as error:
        load_interactions(path)
    assert str(error.value) == (f"{path}: the interaction log has more than one column named 'user' (columns 1 "
                                "and 4); rename or remove all but one, so that one column holds it")


def test_a_column_the_layout_ignores_may_be_named_twice(tmp_path):
    csv_path = write_csv(tmp_path, "log.csv", "user,item,timestamp,notes,notes\na,x,100,n,m\na,y,200,n,m\n")
    parquet_path = tmp_path / "log.parquet"
    pq.write_table(pa.table([pa.array(["a", "a"]), pa.array(["x", "y"]), pa.array([100, 200]), pa.array(["n", "n"]),
                             pa.array(["m", "m"])], names=["user", "item", "timestamp", "notes", "notes"]),
                   parquet_path)
    for path in (csv_path, parquet_path):
        assert load_interactions(path).ratings["timestamp"].tolist() == [100, 200]


# ------------------------------------------------------------------ cells
def test_a_parquet_list_or_struct_id_column_is_refused_naming_the_row(tmp_path):
    for name, cell, shown in (("list", lambda u: [u], "['a']"), ("struct", lambda u: {"id": u}, "{'id': 'a'}")):
        path = tmp_path / f"{name}.parquet"
        LOG.assign(user=LOG["user"].map(cell)).to_parquet(path)
        with pytest.raises(ValueError) as error:  # was: TypeError: unhashable type
            load_interactions(path)
        assert str(error.value) == (f"{path}: row 1, column 'user': {shown} is not an id: an id is one text or "
                                    "integer, and this column holds lists or records (a Parquet list or struct "
                                    "column); write each row's id as one value")


def test_an_empty_timestamp_is_named_an_empty_cell(tmp_path):
    path = write_csv(tmp_path, "log.csv", "user,item,timestamp\na,x,100\na,y,\n")
    with pytest.raises(ValueError) as error:
        load_interactions(path)
    assert str(error.value) == (f"{path}: row 2, column 'timestamp': nan is not a time (the cell is empty): give "
                                "every row its time, or drop the rows without one")


def test_durations_are_not_read_as_times(tmp_path):
    # They were read as nanoseconds, and refused as "milliseconds (or finer)".
    path = tmp_path / "log.parquet"
    LOG.assign(timestamp=pd.to_timedelta(LOG["timestamp"], unit="s")).to_parquet(path)
    with pytest.raises(ValueError) as error:
        load_interactions(path)
    assert str(error.value) == (f"{path}: column 'timestamp' holds durations (Timedelta('0 days 00:01:40') in row "
                                "1), not times; give when each interaction happened: a date and time, or Unix "
                                "seconds (a duration since 1970-01-01 is Unix seconds once written as a number of "
                                "seconds)")


def test_semicolon_separated_genres_are_refused_as_commas_are(tmp_path):
    log = write_csv(tmp_path, "log.csv", LOG.to_csv(index=False))
    items = write_csv(tmp_path, "items.csv", "item,genres\nx,Drama;War\ny,Comedy\nz,Drama\n")
    with pytest.raises(ValueError) as error:  # was: one genre named "Drama;War"
        load_interactions(log, items)
    assert str(error.value) == (f"{items}: row 1, column 'genres': 'Drama;War' is not |-separated genre names (it is "
                                "semicolon-separated): write Drama|War, not Drama;War")


def test_a_folder_given_as_the_log_is_named_a_folder_whatever_its_name(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    with pytest.raises(FileNotFoundError) as error:  # was: "must be CSV (.csv) or Parquet ..., not ''"
        load_interactions(folder)
    assert str(error.value) == f"{folder}: is a folder; give the interaction log's file"


# ------------------------------------------------------------------ recoworld run
def test_a_log_file_given_as_world_path_is_not_offered_as_a_calibration_folder(tmp_path):
    log = write_csv(tmp_path, "log.csv", LOG.to_csv(index=False))
    cfg = OmegaConf.create({"world": {"_target_": "recoworld.simulators.calibrated.calibrated_catalog",
                                      "path": str(log)}, "simulator": {"_target_": "none"}})
    with pytest.raises(ValueError) as error:  # was: "... first with `recoworld calibrate --out log.csv`"
        ensure_calibrated(cfg)
    assert str(error.value) == (
        f"world.path={log} is a file, and a calibrated world is a folder; give the folder that `recoworld calibrate "
        f"--out DIR` wrote (a log is fitted first: `recoworld calibrate --data {log} --out DIR`, if {log} is one), "
        "or leave world.path unset for the cache's world")


# ------------------------------------------------------------------ recoworld calibrate on a world already there
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A log, the world fitted on it, and a second log of other users."""
    folder = tmp_path_factory.mktemp("fitted")
    catalog = Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=2)
    logs = []
    for seed in (1, 2):
        r = simulated_dataset(catalog, n_users=40, seed=seed).data.ratings
        path = folder / f"log{seed}.csv"
        pd.DataFrame({"user": r["user_id"], "item": r["item_id"], "timestamp": r["timestamp"],
                      "rating": r["rating"]}).to_csv(path, index=False)
        logs.append(path)
    world = folder / "world"
    assert calibrate_main(["--data", str(logs[0]), "--out", str(world), "--quiet"]) == 0
    return logs, world


def test_a_world_fitted_on_another_log_is_not_returned_for_this_one(fitted, capsys):
    (first, second), world = fitted
    before = (world / "world.json").read_text()
    assert calibrate_main(["--data", str(second), "--out", str(world), "--quiet"]) == 2  # was 0, with first's world
    assert capsys.readouterr().err == (
        f"recoworld calibrate: --out {world} holds a world calibrated on {first.resolve()}, not on the log of --data "
        f"{second}; --force fits it again on --data (replacing that world once the fit ends), or give another "
        "--out\n")
    assert (world / "world.json").read_text() == before


def test_a_log_changed_since_its_world_was_fitted_is_named_so(fitted, capsys, tmp_path):
    (first, _), world = fitted
    edited = pd.read_csv(first)
    edited.loc[0, "rating"] = edited.loc[0, "rating"] % 5 + 1  # another star
    saved = first.read_text()
    try:
        edited.to_csv(first, index=False)
        assert calibrate_main(["--data", str(first), "--out", str(world), "--quiet"]) == 2
    finally:
        first.write_text(saved)
    assert capsys.readouterr().err.startswith(
        f"recoworld calibrate: --out {world} holds a world calibrated on an earlier version of {first.resolve()} "
        f"(its interactions have changed since), not on the log of --data {first};")


def test_the_same_log_again_reads_its_world(fitted, capsys, tmp_path):
    (first, _), world = fitted
    copy = tmp_path / "copy.csv"
    copy.write_text(first.read_text())
    for log in (first, copy):  # the same interactions, wherever they are now
        assert calibrate_main(["--data", str(log), "--out", str(world), "--quiet"]) == 0
        assert capsys.readouterr().err == f"{world} already holds a calibrated world; --force fits it again\n"


def test_a_world_of_a_log_read_without_data_says_it_is_not_movielens(fitted, capsys):
    # Without --data the command's data is MovieLens-100K: the log's world was shown as if it were.
    (first, _), world = fitted
    before = (world / "world.json").read_text()
    assert calibrate_main(["--out", str(world), "--quiet"]) == 0
    assert capsys.readouterr().err == (
        f"{world} already holds a calibrated world, fitted on {first.resolve()}, not on MovieLens-100K; --force fits "
        f"MovieLens-100K there instead (--data {first.resolve()} for that log's)\n")
    assert (world / "world.json").read_text() == before


def test_a_world_fitted_in_python_on_other_tables_says_so(fitted, capsys, tmp_path):
    import json
    import shutil

    _, world = fitted
    other = tmp_path / "other world"
    shutil.copytree(world, other)
    meta = json.loads((other / "world.json").read_text())
    meta["meta"]["data"]["source"] = {"kind": "given", "read_from": "/data/my ml-100k", "altered": {"u.data": "0"}}
    (other / "world.json").write_text(json.dumps(meta))
    assert calibrate_main(["--out", str(other), "--quiet"]) == 0
    assert capsys.readouterr().err == (
        f"{other} already holds a calibrated world, fitted on /data/my ml-100k, not on MovieLens-100K; --force fits "
        "MovieLens-100K there instead\n")
