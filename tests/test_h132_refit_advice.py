"""The advice that fits a calibrated world again fits the same world: the data it was fitted
on and the fit's own settings, ``--users N`` on the command line, and, for a setting
``recoworld calibrate`` has no flag for, the call of ``calibrate()`` in Python that names it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.apps.calibrate import CalibrationConfig
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig
from recoworld.simulators import StatisticalUserConfig, calibrated
from recoworld.simulators.calibrated import CalibratedWorld

LOG = {"kind": "interactions", "data": "/data/log.csv"}
NAMES = "calibrate() and CalibrationConfig from recoworld.apps.calibrate"


def _world(settings: dict, source: dict) -> CalibratedWorld:
    """A world of one user, without the data's ids, whose meta records ``settings`` (over the
    defaults) and ``source``, as a fit would."""
    catalog = Catalog.synthetic(5, n_genres=2, feature_dim=2, seed=0)
    meta = {"calibration": {**asdict(CalibrationConfig()), **settings}, "data": {"source": source}}
    return CalibratedWorld(catalog, StatisticalUserConfig(), pd.DataFrame({"user_id": [0]}), torch.zeros(1, 2), meta)


def test_the_settings_the_advice_compares_with_are_calibrates_defaults():
    # The simulators' layer may not import recoworld.apps: it keeps a copy, held equal here.
    defaults = asdict(CalibrationConfig())
    assert defaults.pop("choice") == asdict(ChoiceFitConfig())
    assert {k: v for k, v in calibrated._CALIBRATE_DEFAULTS.items() if k != "choice"} == defaults
    assert list(calibrated._CALIBRATE_DEFAULTS) == list(asdict(CalibrationConfig()))


@pytest.mark.parametrize("source, path, advice", [
    (LOG, None, "`recoworld calibrate --data /data/log.csv --users 500 --out FOLDER --force` (FOLDER: this world's)"),
    ({**LOG, "users": "/data/users.csv"}, "/w/my world",
     "`recoworld calibrate --data /data/log.csv --user-table /data/users.csv --users 500 --out '/w/my world' --force`"),
    ({"kind": "movielens-100k"}, "/w/ml", "`recoworld calibrate --users 500 --out /w/ml --force`"),
    ({"kind": "movielens-100k"}, None,
     "`recoworld calibrate --users 500 --force` (with --out FOLDER where this world is not the cache's)"),
])
def test_a_world_fitted_on_some_users_is_fitted_again_on_as_many(source, path, advice):
    # Before: the command had no --users 500, and fitted the world on every user of the data.
    assert _world({"users": 500}, source).refit_advice(path) == advice


def test_a_setting_the_command_has_no_flag_for_gives_the_call_in_python_naming_it():
    world = _world({"users": 500, "seed": 3, "choice": {**asdict(ChoiceFitConfig()), "dim": 8}},
                   {**LOG, "items": "/data/items.csv"})
    assert world.refit_advice("/w/my world") == (
        "in Python, as `recoworld calibrate` has no flag for the fit's settings choice, seed: `calibrate("
        "CalibrationConfig(choice=ChoiceFitConfig(dim=8), users=500, seed=3), data=load_interactions('/data/log.csv', "
        "items='/data/items.csv')).save('/w/my world', replace=True)` (" + NAMES + ", ChoiceFitConfig from "
        "recoworld.calibration.choice, load_interactions from recoworld.data.interactions)")
    movielens = _world({"split": "time"}, {"kind": "movielens-100k"})
    assert movielens.refit_advice() == (
        "in Python, as `recoworld calibrate` has no flag for the fit's setting split: `calibrate(CalibrationConfig("
        f"split='time')).save(FOLDER, replace=True)` (FOLDER: this world's; {NAMES})")


def test_data_given_in_python_is_named_with_the_settings():
    assert _world({"seed": 3}, {"kind": "given"}).refit_advice() == (
        "in Python: `calibrate(CalibrationConfig(seed=3), data=DATA).save(FOLDER, replace=True)` (FOLDER: this "
        f"world's; DATA: the data it was fitted on; {NAMES})")
    assert _world({}, {"kind": "given"}).refit_advice() == (
        "in Python: `calibrate(data=DATA).save(FOLDER, replace=True)` (FOLDER: this world's; DATA: the data it was "
        "fitted on; calibrate() from recoworld.apps.calibrate)")


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("h132")
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    log = folder / "log.csv"
    ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(log, index=False)
    return log


def _same_world(refitted: CalibratedWorld, world: CalibratedWorld) -> None:
    """The same settings, the same users of the data, the same held-out ratings."""
    assert refitted.meta["calibration"] == world.meta["calibration"]
    for part, key in (("data", "source_user_ids"), ("data", "fingerprint"), ("split", "test_fingerprint")):
        assert refitted.meta[part][key] == world.meta[part][key]


def _damage(path: Path) -> str:
    (path / "tensors.pt").write_bytes((path / "tensors.pt").read_bytes()[:1000])
    with pytest.raises(ValueError) as error:
        CalibratedWorld.load(path)
    return str(error.value)


@pytest.mark.filterwarnings("ignore:the gaps after a first session cannot be split:UserWarning")  # a small log
def test_the_command_of_a_world_fitted_with_users_run_as_given_fits_the_same_world(log, tmp_path, capsys):
    path = tmp_path / "world"
    assert calibrate_main(["--data", str(log), "--users", "25", "--out", str(path), "--quiet"]) == 0
    world = CalibratedWorld.load(path)
    error = _damage(path)
    argv = shlex.split(re.search(r"`recoworld calibrate (.*)`$", error).group(1))
    assert "--users" in argv
    assert calibrate_main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    _same_world(CalibratedWorld.load(path), world)


@pytest.mark.filterwarnings("ignore:the gaps after a first session cannot be split:UserWarning")  # a small log
def test_the_python_call_of_a_world_fitted_with_other_settings_run_as_given_fits_the_same_world(log, tmp_path):
    from recoworld.apps.calibrate import calibrate
    from recoworld.data.interactions import load_interactions

    path = tmp_path / "world"
    config = CalibrationConfig(choice=ChoiceFitConfig(dim=4), users=25, seed=3, leave_steps=10, leave_users=10,
                               lives_iterations=0)
    world = calibrate(config, path=path, data=load_interactions(log), progress=False)
    error = _damage(path)
    assert "as `recoworld calibrate` has no flag for the fit's settings choice, leave_steps, leave_users, " \
           "lives_iterations, seed: `calibrate(CalibrationConfig(" in error
    call = re.search(r"`(calibrate\(.*\))`", error).group(1)
    names = {"calibrate": calibrate, "CalibrationConfig": CalibrationConfig, "ChoiceFitConfig": ChoiceFitConfig,
             "load_interactions": load_interactions}
    eval(call, names)  # the call as the message gives it
    _same_world(CalibratedWorld.load(path), world)


def test_a_world_without_the_datas_ids_names_the_advice_that_fits_it_with_them():
    world = _world({"users": 500}, LOG)
    with pytest.raises(ValueError) as error:
        world.original_user_id(0)
    assert str(error.value) == ("this calibrated world has no map between its user ids and the data's: it was made "
                                "without them; fit it again to keep them: `recoworld calibrate --data /data/log.csv "
                                "--users 500 --out FOLDER --force` (FOLDER: this world's)")


def test_the_advice_of_a_damaged_world_reads_the_settings_world_json_records():
    document = {"meta": {"calibration": json.loads(json.dumps(asdict(CalibrationConfig(users=7)))),
                         "data": {"source": {**LOG}}}}
    assert calibrated.recalibration_advice(document, Path("/w")) == (
        "with the log it was fitted on, or fit it again in place: `recoworld calibrate --data /data/log.csv --users 7 "
        "--out /w --force`")
