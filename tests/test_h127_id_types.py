"""The fit depends on a log's ids through their sorted order only (the layout's docstring in
:mod:`recoworld.data.interactions`): the same ids written as integers, as text or as whole
floats fit the same world, to the bit, and so do ids renamed in their own order; ids renamed
out of order are numbered in their new order."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig
from recoworld.data.interactions import load_interactions

CONFIG = CalibrationConfig(choice=ChoiceFitConfig(dim=4, l2=0.03), leave_steps=10, leave_users=10, lives_iterations=0)


@pytest.fixture(scope="module")
def log():
    """A generated log of 40 users and 60 items, ids from 1 (so that 10 sorts after 9 as a number only)."""
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    return pd.DataFrame({"user": ratings["user_id"] + 1, "item": ratings["item_id"] + 1,
                         "timestamp": ratings["timestamp"], "rating": ratings["rating"]})


def _fit(table: pd.DataFrame, path):
    table.to_csv(path, index=False) if path.suffix == ".csv" else table.to_parquet(path)
    return calibrate(CONFIG, data=load_interactions(path), progress=False)


def _same(a, b) -> None:
    for name in ("features", "genres", "popularity", "quality"):
        assert torch.equal(getattr(a.catalog, name), getattr(b.catalog, name)), name
    assert torch.equal(a.interest, b.interest)
    assert a.config == b.config
    numeric = [c for c in a.users.columns if c != "original_id"]
    pd.testing.assert_frame_equal(a.users[numeric], b.users[numeric])


def test_ids_of_any_type_or_renamed_in_order_fit_the_same_world(log, tmp_path):
    integers = _fit(log, tmp_path / "integers.csv")
    as_text = log.assign(user=log["user"].astype(str), item=log["item"].astype(str))
    whole_floats = log.assign(user=log["user"].astype(float), item=log["item"].astype(float))
    padded = log.assign(user=log["user"].map("u{:03d}".format), item=log["item"].map("i{:03d}".format))
    for table, name in ((as_text, "text.parquet"), (whole_floats, "floats.csv"), (padded, "padded.csv")):
        _same(_fit(table, tmp_path / name), integers)
    assert integers.users["original_id"].tolist()[:3] == ["1", "2", "3"]


def test_ids_renamed_out_of_their_order_are_numbered_as_text(log, tmp_path):
    prefixed = log.assign(user="u" + log["user"].astype(str), item="i" + log["item"].astype(str))
    path = tmp_path / "prefixed.csv"
    prefixed.to_csv(path, index=False)
    data = load_interactions(path)
    assert data.users["original_id"].tolist()[:4] == ["u1", "u10", "u11", "u12"]
    assert data.items["original_id"].tolist() == sorted(f"i{i}" for i in range(1, 61))
