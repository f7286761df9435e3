"""What a run's readers take from its folder: the config and overrides the run itself ran,
not the ``.hydra/`` files that a later, refused ``recoworld run`` into the folder rewrites
(the viewer's catalog, the Minari export's spaces, ``recoworld merge``'s settings); the
Minari export's history length; the TensorBoard scalars of a resume that turns them on."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from recoworld.apps.merge_setting import run_setting
from recoworld.apps.run.app import main as run_app
from recoworld.apps.view.data import run_catalog

RAN = ["world=synthetic", "env.num_envs=6", "env.history_length=3", "experiment.steps=20",
       "experiment.progress=false", "experiment.plots=false", "experiment.seeds=[0]",
       "experiment.agents=[random,most_popular]"]
#: What a refused start sets: a smaller catalog, another history, another lineup.
REFUSED = [*RAN, "world.n_items=50", "env.history_length=7", "experiment.agents=[random]"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """A complete run."""
    run = tmp_path_factory.mktemp("ran")
    assert run_app([*RAN, f"hydra.run.dir={run}"]) == 0
    return run


@pytest.fixture(scope="module")
def finished(ran, tmp_path_factory) -> Path:
    """A complete run whose .hydra/ describes another config, as a start that the folder refused
    left it in a release that did not put the run's files back (or one killed as it refused):
    Hydra's own files for the refused config, from a folder where that config ran."""
    run, other = tmp_path_factory.mktemp("finished") / "run", tmp_path_factory.mktemp("other")
    shutil.copytree(ran, run)
    assert run_app([*REFUSED, f"hydra.run.dir={other}"]) == 0
    shutil.rmtree(run / ".hydra")
    shutil.copytree(other / ".hydra", run / ".hydra")
    assert OmegaConf.load(run / ".hydra" / "config.yaml").world.n_items == 50
    return run


def test_a_refused_start_puts_back_the_runs_hydra_files(ran, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ran, run)
    before = {path.name: path.read_bytes() for path in (run / ".hydra").iterdir()}
    with pytest.raises(SystemExit) as stop:  # the folder holds results
        run_app([*REFUSED, f"hydra.run.dir={run}"])
    assert stop.value.code == 1
    with pytest.raises(SystemExit):  # a config error, before the run's machinery loads
        run_app([*REFUSED, "experiment.steps=0", f"hydra.run.dir={run}"])
    assert {path.name: path.read_bytes() for path in (run / ".hydra").iterdir()} == before
    assert not [path for path in run.rglob("*.tmp")]


def test_a_run_that_starts_keeps_its_own_hydra_files(ran, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ran, run)
    assert run_app([*RAN, "experiment.resume=true", f"hydra.run.dir={run}"]) == 0
    assert OmegaConf.load(run / ".hydra" / "overrides.yaml")[-1] == "experiment.resume=true"
    assert json.loads((run / "status.json").read_text())["overrides"] == [*RAN, "experiment.resume=true"]


def test_the_run_records_its_own_overrides_in_its_status(finished):
    assert json.loads((finished / "status.json").read_text())["overrides"] == RAN


def test_the_viewer_rebuilds_the_catalog_the_run_ran(finished):
    assert run_catalog(finished).n_items == 1000


def test_merge_takes_the_setting_the_run_ran(finished):
    assert run_setting(finished) == {"world": "synthetic", "env.num_envs": "6", "env.history_length": "3",
                                     "experiment.steps": "20", "experiment.agents": "[random,most_popular]"}


def test_a_run_of_an_earlier_release_is_read_from_its_hydra_files(finished, tmp_path):
    older = tmp_path / "older"
    shutil.copytree(finished, older)
    status = json.loads((older / "status.json").read_text())
    status.pop("overrides", None), status.pop("config")
    (older / "status.json").write_text(json.dumps(status))
    assert run_catalog(older).n_items == 50
    assert run_setting(older)["world.n_items"] == "50"


@pytest.fixture
def datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))


def test_minari_export_takes_the_action_space_of_the_catalog_the_run_ran(finished, datasets):
    from recoworld.apps.export.minari_dataset import export_minari

    assert set(export_minari(finished, "rw/ran-v0").spec.action_space.nvec.tolist()) == {1000}


def test_minari_history_is_the_runs_history_length_unless_given(finished, datasets):
    import minari

    from recoworld.apps.export.minari_dataset import export_minari, main

    assert export_minari(finished, "rw/ran-v0").spec.observation_space["history_items"].shape == (3,)
    assert export_minari(finished, "rw/ran-v1", history=5).spec.observation_space["history_items"].shape == (5,)
    assert main([str(finished), "--dataset-id", "rw/ran-v2"]) == 0
    assert minari.load_dataset("rw/ran-v2").spec.observation_space["history_items"].shape == (3,)
    assert main([str(finished), "--dataset-id", "rw/ran-v3", "--history", "4"]) == 0
    assert minari.load_dataset("rw/ran-v3").spec.observation_space["history_items"].shape == (4,)


def scalars(run: Path) -> dict:
    """Every scalar of the run's rollout curves: (part folder, tag) -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for folder in sorted((run / "tensorboard").glob("agent=*/seed=*")):
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found[(folder.relative_to(run).as_posix(), tag)] = [(e.step, e.value) for e in events.Scalars(tag)]
    return found


def test_a_resume_that_turns_tensorboard_on_writes_the_complete_parts_scalars(finished, tmp_path):
    live, resumed = tmp_path / "live", tmp_path / "resumed"
    assert run_app([*RAN, "experiment.tensorboard=true", f"hydra.run.dir={live}"]) == 0
    shutil.copytree(finished, resumed)
    assert run_app([*RAN, "experiment.tensorboard=true", "experiment.resume=true", f"hydra.run.dir={resumed}"]) == 0
    written = scalars(resumed)
    assert {part for part, _ in written} == {"tensorboard/agent=random/seed=0", "tensorboard/agent=most_popular/seed=0"}
    assert written == scalars(live)
    assert all(len(values) == 20 for (_, tag), values in written.items() if tag.endswith("/reward"))
    assert np.isfinite([v for values in written.values() for _, v in values]).all()



def test_complete_parts_of_an_sb3_agent_without_training_curves_are_named(finished, tmp_path, caplog):
    from recoworld.apps.run.hooks import SB3_AGENT, complete_parts_scalars
    from recoworld.apps.run.rundir import Part

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    cfg = OmegaConf.create({"experiment": {"tensorboard": True}, "env": {"num_envs": 6}})
    lineup = {"random": OmegaConf.create({"_target_": SB3_AGENT}), "most_popular": OmegaConf.create({})}
    complete_parts_scalars(cfg, lineup, run, [Part("random", 0, None), Part("most_popular", 0, None)])
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "no TensorBoard training curves for agent=random/seed=0: an earlier attempt finished these rollouts with "
        "experiment.tensorboard=false, and no log holds training; for their curves, rerun the command into a new "
        "folder (another hydra.run.dir)"]
    assert {part for part, _ in scalars(run)} == {"tensorboard/agent=random/seed=0",
                                                  "tensorboard/agent=most_popular/seed=0"}

def test_a_full_disk_as_hydra_saves_the_config_stops_the_run_in_one_line(ran, tmp_path, monkeypatch, capsys):
    import builtins
    import errno
    import io

    from recoworld.apps.run import secrets

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_open(path, mode="r", encoding=None):
        builtins.open(path, mode, encoding=encoding).close()  # the file is made, as on a full disk
        return Full()

    monkeypatch.setattr(secrets, "open", full_open, raising=False)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        run_app([*RAN, f"hydra.run.dir={run}"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        f"recoworld run: error: No space left on device writing {run / '.hydra' / 'config.yaml'}: the run in {run} "
        f"stopped; free space on that disk, then finish it with experiment.resume=true hydra.run.dir={run}")
    assert not (run / ".hydra" / "config.yaml").exists()
    # In a run's folder, the run's file is put back whole.
    kept = tmp_path / "kept"
    shutil.copytree(ran, kept)
    before = (kept / ".hydra" / "config.yaml").read_bytes()
    with pytest.raises(SystemExit):
        run_app([*RAN, f"hydra.run.dir={kept}"])
    assert (kept / ".hydra" / "config.yaml").read_bytes() == before
