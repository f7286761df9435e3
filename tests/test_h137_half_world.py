"""Half a calibrated world (its world.json, no tensors.pt: a copy cut short, or a file deleted)
is refused by the loader itself with the command that fits it again from the data its
world.json names, so ``recoworld fidelity`` and ``recoworld calibrate`` say it too, not only
``recoworld run``. The error is an ``UnreadableWorld`` and still the ``FileNotFoundError`` a load
of that folder raised before."""

import shlex
from pathlib import Path

import pytest

from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.fidelity.report import main as fidelity_main
from recoworld.simulators import calibrated
from recoworld.simulators.calibrated import CalibratedWorld, MissingWorldFile, UnreadableWorld, missing_world_file


@pytest.fixture
def half(log_world, tmp_path):
    """A copy of the world's world.json alone, in a folder whose name needs quoting."""
    folder = tmp_path / "half world"
    folder.mkdir()
    (folder / "world.json").write_text((log_world[0] / "world.json").read_text())
    return folder


def _message(half, log) -> str:
    return (f"{half} is half a calibrated world: it has no tensors.pt beside its world.json (a copy cut short, or a "
            "file deleted); delete it to recalibrate with the log it was fitted on, or fit it again in place: "
            f"`recoworld calibrate --data {shlex.quote(str(log.resolve()))} --users 30 --out {shlex.quote(str(half))} "
            "--force`")


def test_the_loader_refuses_half_a_world_with_the_command_that_fits_it_from_its_log(log_world, half):
    # Was: a bare FileNotFoundError, "...; delete it to recalibrate", naming neither data nor command.
    with pytest.raises(MissingWorldFile) as error:
        CalibratedWorld.load(half)
    assert str(error.value) == _message(half, log_world[1])
    # Callers that caught either kind of error still catch it.
    assert isinstance(error.value, UnreadableWorld) and isinstance(error.value, ValueError)
    assert isinstance(error.value, FileNotFoundError)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    # The check the runner makes before a run gives the same error; a whole world or no world gives none.
    assert str(missing_world_file(half)) == str(error.value)
    assert missing_world_file(log_world[0]) is None and missing_world_file(half.parent / "nothing") is None


def test_the_command_the_loader_gives_fits_the_log_again(log_world, half, capsys):
    with pytest.raises(MissingWorldFile) as error:
        CalibratedWorld.load(half)
    argv = shlex.split(str(error.value).split("`recoworld calibrate ")[1].rstrip("`"))
    assert calibrate_main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    world, original = CalibratedWorld.load(half), CalibratedWorld.load(log_world[0])
    assert world.meta["data"]["source"] == original.meta["data"]["source"]
    assert world.users.equals(original.users)


def test_a_folder_with_tensors_but_no_world_json_keeps_the_folders_message(tmp_path):
    (tmp_path / "tensors.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as error:
        CalibratedWorld.load(tmp_path)
    assert not isinstance(error.value, UnreadableWorld)
    assert str(error.value) == (f"{tmp_path} is not a calibrated-world artifact: it has no world.json (a world's "
                                "folder holds world.json and tensors.pt)")


def test_half_a_world_whose_world_json_cannot_be_read_names_every_way_to_fit_it(half):
    (half / "world.json").write_text('{"meta": ')
    with pytest.raises(MissingWorldFile) as error:
        CalibratedWorld.load(half)
    out = shlex.quote(str(half))
    assert str(error.value) == (
        f"{half} is half a calibrated world: it has no tensors.pt beside its world.json (a copy cut short, or a file "
        "deleted); delete it to recalibrate with the data it was fitted from (its world.json, which names them, cannot "
        f"be read), or fit it again in place: `recoworld calibrate --data LOG --out {out} --force` (with the log's "
        f"--items and --user-table, if it had them) for a log's world, `recoworld calibrate --out {out} --force` for "
        "MovieLens-100K's, calibrate() in Python for data given there")


def test_recoworld_fidelity_refuses_half_a_world_in_one_line(log_world, half, tmp_path, capsys):
    # Was: a traceback ending in the FileNotFoundError, status 1.
    with pytest.raises(SystemExit) as stopped:
        fidelity_main(["--world", str(half), "--out", str(tmp_path / "report"), "--quiet"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.endswith(f"recoworld fidelity: error: {_message(half, log_world[1])}\n")
    assert not (tmp_path / "report").exists()


def test_recoworld_calibrate_shows_the_command_for_half_a_world(log_world, half, capsys):
    # Was: "...; delete it to recalibrate", where `--out HALF --force` alone would fit MovieLens-100K.
    assert calibrate_main(["--out", str(half), "--quiet"]) == 2
    assert capsys.readouterr().err == f"recoworld calibrate: {_message(half, log_world[1])}\n"
    assert sorted(p.name for p in half.iterdir()) == ["world.json"]


def test_the_advice_for_data_given_in_python_is_one_clause():
    document = {"meta": {"data": {"source": {"kind": "given"}}}}
    # A str path, as refit_advice takes; and one colon, before the call.
    assert calibrated.recalibration_advice(document, "/w") == (
        "with the data it was fitted on, in Python: `calibrate(data=DATA).save('/w', replace=True)` (DATA: the data "
        "it was fitted on; calibrate() from recoworld.apps.calibrate)")
    assert calibrated.recalibration_advice(document, Path("/w")) == calibrated.recalibration_advice(document, "/w")
