"""A calibrated world's id maps give the same ids and the same errors as ever, and build each
index once: a second call looks up in the index the first one built."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.simulators import calibrated
from recoworld.simulators.calibrated import CalibratedWorld
from recoworld.simulators.statistical import StatisticalUserConfig

N_ITEMS = 12
ITEM_IDS = [f"m{(7 * i) % N_ITEMS:02d}" for i in range(N_ITEMS)]  # text ids, not in sorted order
USER_IDS = [4, 9, 17]  # the fitted users' dense ids: some of the data's users only


def world(original_ids: bool = True) -> CalibratedWorld:
    users = pd.DataFrame({"user_id": USER_IDS})
    if original_ids:
        users["original_id"] = [f"u{u}" for u in USER_IDS]
    return CalibratedWorld(Catalog.synthetic(N_ITEMS, n_genres=3, feature_dim=4, seed=0), StatisticalUserConfig(),
                           users, torch.zeros(len(USER_IDS), 4), original_item_ids=ITEM_IDS if original_ids else None)


@pytest.fixture
def indexes_looked_up(monkeypatch) -> list[pd.Index]:
    """The index each map call looks its ids up in, in call order."""
    seen, translate = [], calibrated._translate

    def spy(known, *args):
        seen.append(known)
        return translate(known, *args)

    monkeypatch.setattr(calibrated, "_translate", spy)
    return seen


def test_the_maps_give_the_same_ids_for_one_id_or_an_array():
    w = world()
    assert w.original_item_id(3) == "m09"
    assert w.original_item_id(torch.tensor([[0, 11], [3, 5]])).tolist() == [["m00", "m05"], ["m09", "m11"]]
    assert w.dense_item_id("m09") == 3 and w.dense_item_id(["m05", "m00"]).tolist() == [11, 0]
    assert w.original_user_id(9) == "u9" and w.original_user_id(np.array([17, 4])).tolist() == ["u17", "u4"]
    assert w.dense_user_id("u17") == 17 and w.dense_user_id(["u4", "u9"]).tolist() == [4, 9]


def test_the_maps_raise_the_same_errors():
    w = world()
    cases = [
        (lambda: w.original_item_id([1, 12]), "item 12 is not in the catalog (item ids 0..11)"),
        (lambda: w.original_item_id(2.0), "item ids are integers; got 2.0"),
        (lambda: w.dense_item_id("m99"), "item 'm99' is not an item of this world: its item ids are the item_id "
                                         "values of the data given to calibrate()"),
        (lambda: w.original_user_id(5), "user 5 is not one of this world's 3 fitted users (users['user_id'])"),
        (lambda: w.dense_user_id("u5"), "user 'u5' is not a fitted user of this world: its user ids are the user_id "
                                        "values of the data given to calibrate() (it holds 3 fitted users)"),
    ]
    for _ in range(2):  # the second time from the kept indexes
        for call, message in cases:
            with pytest.raises(ValueError) as error:
                call()
            assert str(error.value) == message


def test_a_world_without_the_data_ids_refuses_on_every_call():
    w = world(original_ids=False)
    for call, what in ((lambda: w.original_item_id(0), "item"), (lambda: w.dense_item_id("m00"), "item"),
                       (lambda: w.original_user_id(4), "user"), (lambda: w.dense_user_id("u4"), "user")):
        for _ in range(2):
            with pytest.raises(ValueError, match=f"^this calibrated world has no map between its {what} ids and "
                                                 "the data's: it was made without them;"):
                call()


def test_each_map_builds_its_index_once(indexes_looked_up):
    w = world()
    calls = (lambda: w.original_item_id(3), lambda: w.dense_item_id("m09"), lambda: w.original_user_id(9),
             lambda: w.dense_user_id("u9"))
    for call in calls:
        call()
        call()
    first, second = indexes_looked_up[0::2], indexes_looked_up[1::2]
    assert all(a is b for a, b in zip(first, second)), "the second call looks up in the first call's index"
    assert len({id(index) for index in first}) == 4, "one index per map"


def test_a_world_given_a_new_users_table_or_item_ids_maps_by_them():
    w = world()
    assert w.dense_user_id("u9") == 9 and w.original_item_id(0) == "m00"
    w.users = pd.DataFrame({"user_id": [1, 2], "original_id": ["u9", "u2"]})
    w.original_item_ids = [f"x{i}" for i in range(N_ITEMS)]
    assert w.dense_user_id("u9") == 1 and w.original_user_id(2) == "u2"
    assert w.original_item_id(0) == "x0" and w.dense_item_id("x5") == 5
