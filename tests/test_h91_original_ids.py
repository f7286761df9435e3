"""A calibrated world keeps its data's own ids: each dense item and user id maps to the id
the log (or MovieLens) gave it, and back, so that a run's slates and a world's users join
the team's own catalog and users."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig
from recoworld.data.interactions import load_interactions
from recoworld.data.movielens import load_movielens_100k
from recoworld.simulators.calibrated import CalibratedWorld

N_USERS, N_ITEMS, FITTED_USERS = 30, 60, 20


def item_text(i) -> str:
    """Item ``i``'s id in the log: text whose sorted order is not ``i``'s."""
    return f"item-{chr(65 + i % 26)}{i // 26}"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A Parquet log of integer user ids (7b + 3) and text item ids, fitted on 20 of its 30
    users (the smallest settings: nothing here depends on the fit's quality) and saved."""
    folder = tmp_path_factory.mktemp("h91")
    ratings = simulated_dataset(Catalog.synthetic(N_ITEMS, n_genres=4, feature_dim=4, seed=2), n_users=N_USERS,
                                seed=1).data.ratings
    pd.DataFrame({"user": ratings["user_id"] * 7 + 3, "item": [item_text(i) for i in ratings["item_id"]],
                  "timestamp": ratings["timestamp"], "rating": ratings["rating"]}).to_parquet(folder / "log.parquet")
    config = CalibrationConfig(choice=ChoiceFitConfig(dim=4, l2=0.03), leave_steps=10, leave_users=10,
                               lives_iterations=0, users=FITTED_USERS)
    calibrate(config, path=folder / "world", data=load_interactions(folder / "log.parquet"), progress=False)
    return folder


@pytest.mark.filterwarnings("ignore:the gaps after a first session cannot be split:UserWarning")  # a small log
def test_every_item_and_user_maps_to_its_log_id_and_back(fitted):
    world = CalibratedWorld.load(fitted / "world")
    items = np.arange(N_ITEMS)
    # Dense item ids follow the sorted text of the log's ids.
    assert world.original_item_id(items).tolist() == sorted(item_text(i) for i in items)
    assert world.dense_item_id(world.original_item_id(items)).tolist() == items.tolist()
    assert world.original_item_id(5) == sorted(item_text(i) for i in items)[5]
    assert world.dense_item_id(world.original_item_id(5)) == 5
    # Slates of any shape, as numpy arrays or tensors, map whole.
    slates = torch.tensor([[3, 0], [59, 7]])
    assert world.original_item_id(slates).tolist() == [[world.original_item_id(int(i)) for i in row]
                                                         for row in slates]
    # Integer user ids sort as numbers: user b of the log (7b + 3) is dense user b; 20 of them were fitted.
    fitted_ids = world.users["user_id"].to_numpy()
    assert len(fitted_ids) == FITTED_USERS and world.users["original_id"].tolist() == [str(7 * b + 3)
                                                                                       for b in fitted_ids]
    assert world.original_user_id(fitted_ids).tolist() == [str(7 * b + 3) for b in fitted_ids]
    assert world.dense_user_id([7 * b + 3 for b in fitted_ids]).tolist() == fitted_ids.tolist()
    assert world.dense_user_id(str(7 * fitted_ids[0] + 3)) == fitted_ids[0]
    assert world.population({"original_id": str(7 * fitted_ids[1] + 3)}).users["user_id"].tolist() == \
        [fitted_ids[1]]


def test_unknown_ids_are_refused_naming_them_and_where_ids_come_from(fitted):
    world = CalibratedWorld.load(fitted / "world")
    log = fitted / "log.parquet"
    unfitted = next(b for b in range(N_USERS) if b not in set(world.users["user_id"]))
    cases = [
        (lambda: world.original_item_id([1, 60]), "item 60 is not in the catalog (item ids 0..59)"),
        (lambda: world.original_item_id(2.0), "item ids are integers; got 2.0"),
        (lambda: world.dense_item_id("item-Z9"),
         f"item 'item-Z9' is not an item of this world: its item ids are those of the item column of the log {log}, "
         "as the files write them"),
        (lambda: world.original_user_id(unfitted),
         f"user {unfitted} is not one of this world's {FITTED_USERS} fitted users (users['user_id'])"),
        (lambda: world.dense_user_id(7 * unfitted + 3),
         f"user '{7 * unfitted + 3}' is not a fitted user of this world: its user ids are those of the user column "
         f"of the log {log}, as the files write them (it holds {FITTED_USERS} fitted users)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


def test_a_world_saved_without_original_ids_loads_and_says_it_has_no_map(fitted, tmp_path):
    """A world made without the ids (built in Python without them) still loads and runs;
    only the maps refuse, saying how to fit it with them."""
    old = tmp_path / "old"
    shutil.copytree(fitted / "world", old)
    document = json.loads((old / "world.json").read_text())
    del document["users"]["original_id"], document["catalog"]["original_id"]
    (old / "world.json").write_text(json.dumps(document))
    world = CalibratedWorld.load(old)
    assert world.original_item_ids is None and "original_id" not in world.users
    assert len(world.population()) == FITTED_USERS
    # Fitted in Python with settings `recoworld calibrate` has no flag for: the call that fits it again as it was.
    refit = ("in Python, as `recoworld calibrate` has no flag for the fit's settings choice, leave_steps, leave_users, "
             "lives_iterations: `calibrate(CalibrationConfig(choice=ChoiceFitConfig(dim=4, l2=0.03), "
             f"users={FITTED_USERS}, leave_steps=10, leave_users=10, lives_iterations=0), "
             f"data=load_interactions({str(fitted / 'log.parquet')!r})).save(FOLDER, replace=True)` (FOLDER: this "
             "world's; calibrate() and CalibrationConfig from recoworld.apps.calibrate, ChoiceFitConfig from "
             "recoworld.calibration.choice, load_interactions from recoworld.data.interactions)")
    for call, what in ((lambda: world.original_item_id(0), "item"), (lambda: world.dense_item_id("item-A0"), "item"),
                       (lambda: world.original_user_id(0), "user"), (lambda: world.dense_user_id(3), "user")):
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == (f"this calibrated world has no map between its {what} ids and the data's: it "
                                    f"was made without them; fit it again to keep them: {refit}")


def test_original_ids_of_the_wrong_length_are_a_damaged_world(fitted, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(fitted / "world", damaged)
    document = json.loads((damaged / "world.json").read_text())
    document["catalog"]["original_id"].pop()
    (damaged / "world.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=rf"world.json has 59 catalog.original_id entries for 60 titles \(one per "
                                         rf"item\); the calibrated world at {damaged} is damaged"):
        CalibratedWorld.load(damaged)


def test_the_tables_keep_each_id_as_its_file_writes_it(tmp_path):
    """``007`` and ``7`` are two users; the CSV text ``11.0`` is the item ``11``."""
    (tmp_path / "log.csv").write_text("user,item,timestamp\n007,10,1\n7,11.0,2\n007,item-A,3\n")
    data = load_interactions(tmp_path / "log.csv")
    assert data.items[["item_id", "original_id"]].values.tolist() == [[0, "10"], [1, "11"], [2, "item-A"]]
    assert data.users[["user_id", "original_id"]].values.tolist() == [[0, "007"], [1, "7"]]


def test_movielens_keeps_its_published_ids(tmp_path):
    """Movies 5 and 9 and users 3 and 8 of the files become dense ids 0 and 1, and keep their ids."""
    flags = "|0" * 18 + "|1"
    (tmp_path / "u.data").write_text("3\t9\t4\t10\n8\t5\t2\t20\n")
    (tmp_path / "u.item").write_text(f"9|Nine (1995)|01-Jan-1995||{flags}\n5|Five (1995)|01-Jan-1995||{flags}\n")
    (tmp_path / "u.user").write_text("8|30|F|writer|02134\n3|24|M|technician|85711\n")
    data = load_movielens_100k(tmp_path)
    assert data.items[["item_id", "title", "original_id"]].values.tolist() == [[0, "Five (1995)", "5"],
                                                                               [1, "Nine (1995)", "9"]]
    assert data.users[["user_id", "age", "original_id"]].values.tolist() == [[0, 24, "3"], [1, 30, "8"]]
