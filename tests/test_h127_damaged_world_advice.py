"""A damaged calibrated world says how to fit it again from the data it was fitted on: a
log's world from that log (the command it gives, run as given, fits the log again, not
MovieLens-100K), MovieLens-100K's from MovieLens-100K, and, where world.json cannot be read,
both commands; and ``Catalog(genre_names=None)`` is a ``ValueError`` naming the argument."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.simulators.calibrated import ARTIFACT_VERSION, CalibratedWorld


@pytest.fixture(scope="module")
def log_world(tmp_path_factory):
    """A world fitted by ``recoworld calibrate --data`` from a log with item and user tables,
    in a folder whose name holds a space (the command must quote it)."""
    folder = tmp_path_factory.mktemp("h127") / "my logs"
    folder.mkdir()
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    log, items, users = folder / "log.csv", folder / "items.csv", folder / "users.csv"
    ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(log, index=False)
    pd.DataFrame({"item": range(60), "title": [f"film {i}" for i in range(60)], "genres": "Drama"}).to_csv(
        items, index=False)
    pd.DataFrame({"user": range(40), "age": 30}).to_csv(users, index=False)
    world = folder / "world"
    assert calibrate_main(["--data", str(log), "--items", str(items), "--user-table", str(users), "--out", str(world),
                           "--quiet"]) == 0
    return world, log, items, users


def _copy(log_world, tmp_path, name="world"):
    path = tmp_path / name
    shutil.copytree(log_world[0], path)
    return path


def _edit_document(path, change):
    document = json.loads((path / "world.json").read_text())
    change(document)
    (path / "world.json").write_text(json.dumps(document))


def _error(path) -> str:
    with pytest.raises(ValueError) as error:
        CalibratedWorld.load(path)
    return str(error.value)


def _log_command(log_world, path) -> str:
    _, log, items, users = log_world
    return (f"`recoworld calibrate --data {shlex.quote(str(log))} --items {shlex.quote(str(items))} --user-table "
            f"{shlex.quote(str(users))} --out {shlex.quote(str(path))} --force`")


def test_a_logs_world_with_damaged_tensors_names_the_command_that_fits_the_log_again(log_world, tmp_path, capsys):
    path = _copy(log_world, tmp_path)
    (path / "tensors.pt").write_bytes((path / "tensors.pt").read_bytes()[:1000])
    error = _error(path)
    assert error.startswith(f"{path / 'tensors.pt'} cannot be read (")
    # Before: "(`recoworld calibrate --force` fits it again in place)", which fits MovieLens-100K in the cache.
    assert error.endswith(f"; the calibrated world at {path} is damaged: delete it to recalibrate with the log it was "
                          f"fitted on, or fit it again in place: {_log_command(log_world, path)}")
    # The command, run as the message gives it, fits the log again in place.
    argv = shlex.split(re.search(r"`recoworld calibrate (.*)`$", error).group(1))
    assert calibrate_main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    source = CalibratedWorld.load(path).meta["data"]["source"]
    assert source["kind"] == "interactions" and source["data"] == str(log_world[1].resolve())


@pytest.mark.parametrize("harm, file, problem", [
    (lambda p: (p / "tensors.pt").write_bytes((CalibratedWorld.load(p).save(p.parent / "other") / "tensors.pt")
                                              .read_bytes()), "tensors.pt",
     "was not saved with this world.json (it is another world's)"),
    (lambda p: _edit_document(p, lambda d: d["config"].pop("interest_weight")), "world.json",
     "has a config that is not this RecoWorld's (fields interest_weight)"),
    (lambda p: torch.save({**torch.load(p / "tensors.pt", weights_only=True),
                           "popularity": torch.ones(3)}, p / "tensors.pt"), None,
     "do not make a world: popularity must have shape (60,) for 60 items, got (3,)"),
])
def test_every_damage_found_once_world_json_is_read_names_the_logs_command(log_world, tmp_path, harm, file, problem):
    path = _copy(log_world, tmp_path)
    harm(path)
    where = str(path / file) if file else f"{path}: world.json and tensors.pt"
    assert _error(path) == (f"{where} {problem}; the calibrated world at {path} is damaged: delete it to recalibrate "
                            f"with the log it was fitted on, or fit it again in place: {_log_command(log_world, path)}")


def test_a_logs_world_of_another_version_names_the_logs_command(log_world, tmp_path):
    path = _copy(log_world, tmp_path)
    _edit_document(path, lambda d: d.update(artifact_version=1))
    assert _error(path) == (f"{path} holds artifact version 1, this RecoWorld reads version {ARTIFACT_VERSION}; delete "
                            "it to recalibrate with the log it was fitted on, or fit it again in place: "
                            f"{_log_command(log_world, path)}")


def test_a_movielens_world_names_the_movielens_command_at_its_folder(log_world, tmp_path):
    path = _copy(log_world, tmp_path)
    _edit_document(path, lambda d: d["meta"]["data"].update(source={"kind": "movielens-100k"}))
    (path / "tensors.pt").write_bytes(b"")
    assert _error(path).endswith(f"is damaged: delete it to recalibrate on MovieLens-100K, as it was fitted, or fit it "
                                 f"again in place: `recoworld calibrate --out {path} --force`")


@pytest.mark.parametrize("harm, problem, unknown", [
    (lambda p: (p / "world.json").write_text("{"), "is not JSON", ", which names them, cannot be read"),
    (lambda p: (p / "world.json").write_text("[]"), "holds a list", ", which names them, cannot be read"),
    (lambda p: _edit_document(p, lambda d: d.pop("meta")), "lacks meta", " does not say which"),
])
def test_a_world_json_that_does_not_name_the_data_gives_both_commands(log_world, tmp_path, harm, problem, unknown):
    path = _copy(log_world, tmp_path)
    harm(path)
    error = _error(path)
    assert error.startswith(f"{path / 'world.json'} {problem}")
    assert error.endswith(f"is damaged: delete it to recalibrate with the data it was fitted from (its world.json"
                          f"{unknown}), or fit it again in place: `recoworld calibrate --data LOG --out {path} "
                          f"--force` (with the log's --items and --user-table, if it had them) for a log's world, "
                          f"`recoworld calibrate --out {path} --force` for MovieLens-100K's, calibrate() in Python for "
                          "data given there")


def test_genre_names_none_is_a_value_error_naming_the_argument():
    with pytest.raises(ValueError) as error:
        Catalog(torch.eye(2), torch.ones(2, 3, dtype=torch.bool), None, ["a", "b"], torch.tensor([0.5, 0.5]),
                torch.zeros(2))
    assert str(error.value) == ("genre_names=None is not a sequence of genre names; give one name per column of "
                                "genres (3 columns), e.g. ('Drama', 'Comedy')")


@pytest.mark.parametrize("tensor, row, value, problem", [
    ("users.activity", 3, float("nan"), "the fitted users' table, row 3 (user_id 3): activity=nan: must be a finite "
     "number > 0; activity is how often the user comes back (the return probability takes its log, the mean return "
     "gap divides by it)"),
    ("users.patience", 5, 1.5, "the fitted users' table, row 5 (user_id 5): patience=1.5: must be in [0, 1]; "
     "patience is the probability of examining the next position"),
    ("interest", 2, float("inf"), "the fitted users' interest, row 2 (user_id 2): [inf, "),
])
def test_a_saved_world_with_a_trait_the_users_cannot_take_is_damaged_at_load(log_world, tmp_path, tensor, row, value,
                                                                             problem):
    """Refused when the world is read, with the advice that fits it again (the world's user
    holds no table to correct), not first where a population is built from it."""
    path = _copy(log_world, tmp_path)
    tensors = torch.load(path / "tensors.pt", weights_only=True)
    tensors[tensor][row] = value  # an interest row: all of it
    torch.save(tensors, path / "tensors.pt")
    error = _error(path)  # was: loaded, then refused by world.population() with "Correct the row, or drop it"
    assert error.startswith(f"{path / 'tensors.pt'} holds a user the simulator cannot take: {problem}")
    assert error.endswith(f"; the calibrated world at {path} is damaged: delete it to recalibrate with the log it was "
                          f"fitted on, or fit it again in place: {_log_command(log_world, path)}")
    assert "Correct the row" not in error and "correct the row" not in error
