"""Saves and loads of one calibrated world by several processes at once: saves take the
world's lock in turn, a load reads one whole world, a killed writer's lock binds no one, and
the temporaries of saves by earlier RecoWorld versions are cleared. The lock's file,
``.world.lock``, stays beside the world once a save has taken it.

A writer is paused at a fixed point of its save (it waits for a file), so the tests do not
depend on timing; each marks its world in both files (``meta["marker"]`` in world.json, the
interests scaled by :data:`SCALE` in tensors.pt), so a world read half from one save and
half from another shows."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import replace

import pytest
import torch

from recoworld import logs
from recoworld.simulators.calibrated import CalibratedWorld
from recoworld.simulators.world_folder import OLD_TEMPORARY_AGE_S

LOGGER = "recoworld.simulators.world_folder"
#: How each marker scales the interests in tensors.pt (no marker: the source world's).
SCALE = {None: 1.0, "new": -1.0, "a": 2.0, "b": 3.0}

# Replaces the world at argv[1] with the world at argv[2] marked argv[3] (interests scaled by
# argv[4]); pauses at the points named in argv[6] until "<point>-go" appears in the folder argv[5].
PAUSED_REPLACEMENT = textwrap.dedent("""
    import os, sys, time
    from dataclasses import replace
    from pathlib import Path
    from recoworld.simulators import calibrated

    path, source, marker, scale, signals, pauses = sys.argv[1:7]
    signals = Path(signals)

    def pause(point):
        if point in pauses.split(","):
            (signals / f"{point}-paused").touch()
            deadline = time.monotonic() + 300
            while not (signals / f"{point}-go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    save, rename, renames = calibrated.torch.save, os.rename, []
    def paused_save(*args, **kwargs):  # world.json is written, tensors.pt is not
        pause("writing")
        save(*args, **kwargs)
    def paused_rename(*args):  # at the second: the old world moved aside, the new one not yet in place
        renames.append(args)
        if len(renames) == 2:
            pause("renaming")
        rename(*args)
    calibrated.torch.save, os.rename = paused_save, paused_rename
    base = calibrated.CalibratedWorld.load(source)
    replace(base, meta={**base.meta, "marker": marker}, interest=base.interest * float(scale)).save(path, replace=True)
""")

# Holds the lock of argv[1]'s writers: until the file "release" appears in argv[2], or, with
# argv[3] == "killed", until it kills itself.
HELD_LOCK = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from recoworld.logs import writer_lock

    path, signals, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    with writer_lock(path):
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        (signals / "held").touch()
        deadline = time.monotonic() + 300
        while not (signals / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
""")


@pytest.fixture(scope="module")
def source(small_world, tmp_path_factory):
    """The small world saved once, for the writing subprocesses to read."""
    return small_world[0].save(tmp_path_factory.mktemp("source") / "world")


@pytest.fixture
def spawn(tmp_path):
    """``spawn(script, *args, name=...)`` starts a Python process whose stderr goes to
    ``tmp_path/<name>.err``; any still running at the end of the test is killed."""
    started = []

    def start(script: str, *args, name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.err", "w") as err:
            process = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stderr=err)
        process.err = tmp_path / f"{name}.err"
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None and not condition():
            pytest.fail(f"the process ended ({process.returncode}) first:\n{process.err.read_text()}")
        assert time.monotonic() < deadline, f"gave up waiting:\n{process.err.read_text()}"
        time.sleep(0.02)


def marked(world: CalibratedWorld, marker: str) -> CalibratedWorld:
    return replace(world, meta={**world.meta, "marker": marker}, interest=world.interest * SCALE[marker])


def whole(world: CalibratedWorld, base: CalibratedWorld) -> bool:
    """Whether world.json and tensors.pt of ``world`` came from one save."""
    return torch.equal(world.interest, base.interest * SCALE[world.meta.get("marker")])


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def world(source, tmp_path):
    """A world at ``tmp_path/worlds/world``, alone in its folder (the source's, unmarked)."""
    path = tmp_path / "worlds" / "world"
    CalibratedWorld.load(source).save(path)
    return path


# ------------------------------------------------------------------ writers in turn
def test_two_replacements_at_once_leave_one_whole_world_the_second_waiting_for_the_first(source, world, tmp_path,
                                                                                        spawn):
    lock = world.parent / ".world.lock"
    first = spawn(PAUSED_REPLACEMENT, world, source, "a", SCALE["a"], tmp_path, "renaming", name="a")
    wait_for(lambda: (tmp_path / "renaming-paused").exists(), first)
    second = spawn(PAUSED_REPLACEMENT, world, source, "b", SCALE["b"], tmp_path, "", name="b")
    waiting = f"waiting for another process to finish writing {world} (it holds {lock})"
    wait_for(lambda: waiting in second.err.read_text(), second)
    assert listing(world.parent) == [".world-new", ".world-old", ".world.lock"], "the second has not begun"
    (tmp_path / "renaming-go").touch()
    assert first.wait(120) == 0, first.err.read_text()
    assert second.wait(120) == 0, second.err.read_text()
    assert second.err.read_text().count("waiting for") == 1, "one warning, however long it waits"
    saved = CalibratedWorld.load(world)
    assert saved.meta["marker"] == "b" and whole(saved, CalibratedWorld.load(source)), "the second's, whole"
    assert listing(world.parent) == [".world.lock", "world"]


def test_threads_of_one_process_write_in_turn(tmp_path, caplog):
    path, events = tmp_path / "world", []
    holding, release = threading.Event(), threading.Event()

    def first():
        with logs.writer_lock(path):
            events.append("first in")
            holding.set()
            release.wait(120)
            events.append("first out")

    def second():
        with logs.writer_lock(path):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    with caplog.at_level(logging.WARNING):
        threads[0].start()
        assert holding.wait(120)
        threads[1].start()
        deadline = time.monotonic() + 120
        while not caplog.messages and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        for thread in threads:
            thread.join(120)
    assert events == ["first in", "first out", "second in"]
    assert caplog.messages == [f"waiting for another process to finish writing {path} (it holds "
                               f"{tmp_path / '.world.lock'})"]


def test_first_uses_at_once_fit_the_world_once_the_others_waiting_for_it(tmp_path, monkeypatch, caplog):
    """Two jobs of a sweep that find the cache's world missing: one fits it, the other waits
    and loads what the first saved (both threads; a fit here is a stand-in that writes the
    world's document after a pause)."""
    from recoworld.apps.calibrate import fit

    path, fits, started = tmp_path / "world", [], threading.Event()

    def calibrate(path, progress):
        fits.append(path)
        started.set()
        time.sleep(0.5)
        path.mkdir()
        (path / "world.json").write_text("{}")

    monkeypatch.setattr(fit, "calibrate", calibrate)
    monkeypatch.setattr(fit.CalibratedWorld, "load", staticmethod(lambda p: f"world at {p}"))
    worlds = []
    threads = [threading.Thread(target=lambda: worlds.append(fit.ensure_world(path, progress=False)))
               for _ in range(2)]
    with caplog.at_level(logging.WARNING):
        threads[0].start()
        assert started.wait(60)
        threads[1].start()
        for thread in threads:
            thread.join(60)
    assert fits == [path] and worlds == [f"world at {path}"] * 2
    assert caplog.messages == [f"waiting for another process to finish writing {tmp_path / 'world.fit'} (it holds "
                               f"{tmp_path / '.world.fit.lock'})"]


# ------------------------------------------------------------------ loads during a replacement
def test_a_load_during_a_replacement_reads_the_old_world_or_waits_for_the_new_one(source, world, tmp_path, spawn,
                                                                                 caplog):
    base = CalibratedWorld.load(source)
    writer = spawn(PAUSED_REPLACEMENT, world, source, "new", SCALE["new"], tmp_path, "writing,renaming", name="writer")
    wait_for(lambda: (tmp_path / "writing-paused").exists(), writer)
    with caplog.at_level(logging.WARNING):
        before = CalibratedWorld.load(world)
    assert "marker" not in before.meta and whole(before, base), "the old world, read without waiting"
    assert caplog.messages == []

    (tmp_path / "writing-go").touch()
    wait_for(lambda: (tmp_path / "renaming-paused").exists(), writer)
    assert listing(world.parent) == [".world-new", ".world-old", ".world.lock"], "no world at the name"
    loaded = []
    with caplog.at_level(logging.WARNING):
        reader = threading.Thread(target=lambda: loaded.append(CalibratedWorld.load(world)))
        reader.start()
        reader.join(1.0)
        assert reader.is_alive(), "the load waits for the replacement instead of finishing it under the writer"
        (tmp_path / "renaming-go").touch()
        reader.join(120)
    assert writer.wait(120) == 0, writer.err.read_text()
    assert loaded[0].meta["marker"] == "new" and whole(loaded[0], base), "the new world, whole"
    lock = world.parent / ".world.lock"
    assert caplog.messages == [f"waiting for another process to finish writing {world} (it holds {lock})"]
    assert listing(world.parent) == [".world.lock", "world"]


def test_a_load_reads_one_world_when_a_replacement_renames_another_in_between(source, world, monkeypatch):
    """The replacement runs after the load has read world.json and before tensors.pt."""
    base = CalibratedWorld.load(source)
    load = torch.load

    def replaced_first(*args, **kwargs):
        monkeypatch.setattr(torch, "load", load)
        marked(base, "new").save(world, replace=True)
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", replaced_first)
    read = CalibratedWorld.load(world)
    assert whole(read, base), f"world.json of one save, tensors.pt of another (marker {read.meta.get('marker')})"
    assert CalibratedWorld.load(world).meta["marker"] == "new" and listing(world.parent) == [".world.lock", "world"]


# ------------------------------------------------------------------ a lock that binds no one
def test_the_lock_of_a_killed_writer_does_not_block(source, world, tmp_path, spawn, monkeypatch, caplog):
    process = spawn(HELD_LOCK, world, tmp_path, "killed", name="holder")  # killed while it holds the lock
    assert process.wait(120) == -signal.SIGKILL, process.err.read_text()
    assert (world.parent / ".world.lock").is_file(), "the killed writer left its lock file"
    monkeypatch.setattr(logs, "WRITER_LOCK_TIMEOUT_S", 5.0)  # fail, not hang, if it blocked
    with caplog.at_level(logging.WARNING):
        marked(CalibratedWorld.load(source), "new").save(world, replace=True)
    assert caplog.messages == [], "no wait"
    assert CalibratedWorld.load(world).meta["marker"] == "new"
    assert listing(world.parent) == [".world.lock", "world"]


def test_a_writer_that_keeps_the_lock_past_the_timeout_is_named_in_the_error(source, world, tmp_path, spawn,
                                                                            monkeypatch, caplog):
    holder = spawn(HELD_LOCK, world, tmp_path, "held", name="holder")
    wait_for(lambda: (tmp_path / "held").exists(), holder)
    monkeypatch.setattr(logs, "WRITER_LOCK_TIMEOUT_S", 0.5)
    lock = world.parent / ".world.lock"
    with caplog.at_level(logging.WARNING), pytest.raises(TimeoutError) as error:
        marked(CalibratedWorld.load(source), "new").save(world, replace=True)
    assert str(error.value) == (
        f"gave up after 0.5 s waiting for another process to finish writing {world} (it holds {lock}); let it "
        f"finish and try again, or end it if it is stuck (`lsof {lock}` names it; the lock of an ended process is "
        f"released at once, while deleting {lock} would let two writers in)")
    assert caplog.messages == [f"waiting for another process to finish writing {world} (it holds {lock})"]
    assert "marker" not in CalibratedWorld.load(world).meta, "a load of a world in order does not wait"
    (tmp_path / "release").touch()
    assert holder.wait(120) == 0, holder.err.read_text()
    assert listing(world.parent) == [".world.lock", "world"]


# ------------------------------------------------------------------ leftovers of earlier versions
@pytest.mark.parametrize("by", ["load", "save"])
def test_temporaries_of_saves_by_earlier_versions_are_removed_once_clearly_abandoned(small_world, tmp_path, caplog,
                                                                                    by):
    path = tmp_path / "world"
    small_world[0].save(path)
    # Earlier versions wrote into tempfile.mkdtemp(prefix=".world-") and renamed it to world.
    abandoned = tempfile.mkdtemp(prefix=".world-", dir=tmp_path)
    recent = tempfile.mkdtemp(prefix=".world-", dir=tmp_path)  # may be an earlier version's save, running
    users = tmp_path / ".world-backup01"  # the same form, but it holds more than a world's files
    users.mkdir()
    for folder, files in [(abandoned, ["world.json", "tensors.pt"]), (recent, ["world.json"]),
                          (users, ["world.json", "notes.txt"])]:
        for name in files:
            (tmp_path / folder / name).write_text("{")
    long_ago = time.time() - OLD_TEMPORARY_AGE_S - 60
    for folder in (abandoned, users):
        for p in [*(tmp_path / folder).iterdir(), tmp_path / folder]:
            os.utime(p, (long_ago, long_ago))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        if by == "load":
            CalibratedWorld.load(path)
        else:
            small_world[0].save(path, replace=True)
    removed = (f"removing {abandoned}: the temporary folder of a save of world by an earlier RecoWorld, untouched "
               f"for over {OLD_TEMPORARY_AGE_S} s")
    assert caplog.messages == [removed]
    assert listing(tmp_path) == sorted([os.path.basename(recent), users.name, ".world.lock", "world"])


def test_a_world_in_a_folder_this_process_cannot_write_is_read_as_it_is(small_world, tmp_path, monkeypatch, caplog):
    """A shared, read-only copy with a stopped save's leftover: nothing to lock or clear."""
    path = tmp_path / "world"
    small_world[0].save(path)
    shutil.copytree(path, tmp_path / ".world-new")
    monkeypatch.setattr(os, "access", lambda folder, mode, **kwargs: folder != tmp_path)  # root may write anywhere
    with caplog.at_level(logging.WARNING):
        assert CalibratedWorld.load(path).config == small_world[0].config
    assert caplog.messages == [] and listing(tmp_path) == [".world-new", ".world.lock", "world"]
