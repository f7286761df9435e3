"""Where ``recoworld calibrate`` writes its world: ``--out`` refused before the fit, and a
save or replacement killed at any point leaves ``--out`` a whole world or absent, and
leftovers that the next save or load completes or clears (:func:`finish_replacement`). Each
save leaves the world's lock file, ``.world.lock``, beside it; a killed save's lock was
released by the system with its process, so the file binds no one.

The kills are real (SIGKILL, in a subprocess) at fixed points of the save, so the tests
do not depend on timing."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from recoworld.apps.calibrate.fit import main
from recoworld.simulators.calibrated import CalibratedWorld, is_world

LOGGER = "recoworld.simulators.world_folder"

# Saves the world at argv[1] again as a "new" world, killing itself at the point argv[2].
KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from dataclasses import replace
    from recoworld.simulators import calibrated

    path, point = sys.argv[1], sys.argv[2]
    world = calibrated.CalibratedWorld.load(sys.argv[3])
    kill = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
    if point == "writing":  # world.json is written, tensors.pt is not
        calibrated.torch.save = kill
    else:  # between the renames of a replacement: the old world moved aside, the new one not in place
        rename, calls = os.rename, []
        def rename_then_kill(*args):
            calls.append(args)
            if len(calls) == 2:
                kill()
            rename(*args)
        os.rename = rename_then_kill
    replace(world, meta={**world.meta, "marker": "new"}).save(path, replace=True)
""")


@pytest.fixture(scope="module")
def source(small_world, tmp_path_factory):
    """The small world saved once, for the killed subprocesses to read."""
    return small_world[0].save(tmp_path_factory.mktemp("source") / "world")


def killed_save(path, point: str, source) -> int:
    """Run :data:`KILLED_SAVE`; returns the pid of the process it killed."""
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path), point, str(source)],
                               stderr=subprocess.PIPE, text=True)
    _, err = process.communicate(timeout=300)
    assert process.returncode == -9, err
    return process.pid


def no_refit(*args, **kwargs):
    raise AssertionError("the world was fitted again")


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ --out
@pytest.mark.parametrize("under", ["", "world"])
def test_out_at_a_file_is_refused_before_the_fit(tmp_path, capsys, monkeypatch, under):
    monkeypatch.setattr("recoworld.apps.calibrate.fit.calibrate", no_refit)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    out = notes / under if under else notes
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(out), "--quiet"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"error: --out {out}: {notes} is a file, and the calibrated world is a folder; give a new or empty folder "
        "(or one that holds a calibrated world)\n")
    assert listing(tmp_path) == ["notes.txt"] and notes.read_text() == "mine"


def test_movielens_that_cannot_be_fetched_stops_calibrate_in_one_line(tmp_path, capsys, monkeypatch):
    # Offline with an empty cache: the fetch's own message, not a traceback ending in it.
    from recoworld.data.fetch import FetchError

    def offline(requirement, dest, wheel=True):
        raise FetchError(f"pip could not download {requirement} (exit status 1): no network")

    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("recoworld.data.fetch.download_distribution", offline)
    assert main(["--out", str(tmp_path / "world"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recoworld calibrate: pip could not download recbole==1.2.1 (exit status 1): no network\n")
    assert f"copy its files u.data, u.item and u.user into {tmp_path / 'cache' / 'movielens-100k'}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "world").exists()


# ------------------------------------------------------------------ killed saves
def test_a_first_save_killed_while_writing_leaves_a_temporary_that_the_next_save_removes(small_world, source,
                                                                                        tmp_path, caplog):
    path = tmp_path / "world"
    pid = killed_save(path, "writing", source)
    leftover = tmp_path / f".world.{pid}.tmp"
    assert listing(tmp_path) == [leftover.name, ".world.lock"], "nothing at --out, and a name that says unfinished"
    assert listing(leftover) == ["world.json"] and not is_world(path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        small_world[0].save(path)
    assert listing(tmp_path) == [".world.lock", "world"]
    assert caplog.messages == [f"removing {leftover}: a calibrated world that a stopped save left unfinished"]
    assert CalibratedWorld.load(path).config == small_world[0].config


def test_a_replacement_killed_while_writing_keeps_the_old_world_and_a_rerun_clears_the_rest(source, tmp_path,
                                                                                           capsys, caplog,
                                                                                           monkeypatch):
    path = tmp_path / "world"
    CalibratedWorld.load(source).save(path)
    pid = killed_save(path, "writing", source)
    leftover = tmp_path / f"..world-new.{pid}.tmp"
    assert listing(tmp_path) == sorted([leftover.name, ".world.lock", "world"])
    monkeypatch.setattr("recoworld.apps.calibrate.fit.calibrate", no_refit)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert main(["--out", str(path), "--quiet"]) == 0
    assert "already holds a calibrated world" in capsys.readouterr().err
    assert caplog.messages == [f"removing {leftover}: a calibrated world that a stopped save left unfinished"]
    assert listing(tmp_path) == [".world.lock", "world"] and "marker" not in CalibratedWorld.load(path).meta


def test_a_replacement_killed_between_its_renames_is_completed_by_a_rerun_without_force(source, tmp_path, caplog,
                                                                                       monkeypatch):
    path = tmp_path / "world"
    CalibratedWorld.load(source).save(path)
    killed_save(path, "renaming", source)
    assert listing(tmp_path) == [".world-new", ".world-old", ".world.lock"], \
        "the old world aside, the new one not yet in place"
    assert is_world(path), "recoworld run and fidelity accept the folder: loading it completes the replacement"
    monkeypatch.setattr("recoworld.apps.calibrate.fit.calibrate", no_refit)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert main(["--out", str(path), "--quiet"]) == 0
    staged = tmp_path / ".world-new"
    assert caplog.messages == [f"putting the finished world {staged} in place at {path}, where a stopped replacement "
                               "left it"]
    assert listing(tmp_path) == [".world.lock", "world"] and CalibratedWorld.load(path).meta["marker"] == "new"


def test_a_replacement_stopped_before_its_renames_is_completed_by_a_load(small_world, tmp_path, caplog, monkeypatch):
    path = tmp_path / "world"
    world = small_world[0]
    world.save(path)

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", stop)
    with pytest.raises(KeyboardInterrupt):
        replace(world, meta={**world.meta, "marker": "new"}).save(path, replace=True)
    monkeypatch.undo()
    assert listing(tmp_path) == [".world-new", ".world.lock", "world"]
    assert "marker" not in json.loads((path / "world.json").read_text())["meta"], "the old world, whole"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert CalibratedWorld.load(path).meta["marker"] == "new"
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith("putting the finished world")
    assert listing(tmp_path) == [".world.lock", "world"]


def test_the_replaced_world_left_half_deleted_is_removed_by_a_load(small_world, tmp_path, caplog):
    """Killed while deleting the world it replaced: the new world is in place."""
    path, retired = tmp_path / "world", tmp_path / ".world-old"
    small_world[0].save(path)
    shutil.copytree(path, retired)
    (retired / "tensors.pt").unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        CalibratedWorld.load(path)
    assert caplog.messages == [f"removing {retired}: the world a stopped replacement had replaced at {path}"]
    assert listing(tmp_path) == [".world.lock", "world"]


def test_a_temporary_of_a_running_writer_is_left_alone(small_world, tmp_path, caplog):
    path = tmp_path / "world"
    small_world[0].save(path)
    running = tmp_path / f".world.{os.getppid()}.tmp"  # another process, still writing
    running.mkdir()
    (running / "world.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        CalibratedWorld.load(path)
        small_world[0].save(path, replace=True)
    assert caplog.messages == []
    assert listing(tmp_path) == sorted([running.name, ".world.lock", "world"]) and listing(running) == ["world.json"]
