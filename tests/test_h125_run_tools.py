"""The tools around a run as a careless user meets them: a plug-in class of the wrong kind,
a folder that a refused run left or that holds runs, a file where TensorBoard's folder goes,
and a Minari datasets folder that cannot be written. Each is refused in a line that names
the value and the fix, and leaves nothing half-written."""

import errno
import json
import textwrap
from pathlib import Path

import minari
import pytest
from hydra.core.config_store import ConfigStore

from recoworld.apps.cli import main as cli
from recoworld.apps.export import minari_writer
from recoworld.apps.run.app import main as run_app
from run_support import TINY_RUN

SETTINGS = TINY_RUN
TINY = [*SETTINGS, "agent=random"]

PLUGIN = textwrap.dedent("""
    import numpy as np


    class Ranker:
        \"\"\"Has act, but is no Recommender.\"\"\"

        def act(self, obs):
            return np.argsort(obs.candidate_ids, axis=1)[:, :10]


    class Users:
        \"\"\"Has respond, but is no UserSimulator.\"\"\"

        def __init__(self, catalog):
            self.catalog = catalog

        def respond(self, slates):
            raise AssertionError("never reached")


    def ranker_config():
        return {"_target_": "h125_plug.Ranker"}
""")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "h125_plug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_app([*TINY, f"hydra.run.dir={out}"])
    return out


# ---------------------------------------------------------------- plug-ins of the wrong kind

@pytest.mark.parametrize("override, message", [
    ("agent._target_=h125_plug.Ranker",
     "agent._target_=h125_plug.Ranker is a class that does not subclass recoworld.agents.Recommender, whose "
     "methods (setup, act, update) recoworld run calls: subclass it (README: A new agent is a subclass of "
     "recoworld.agents.Recommender)"),
    ("simulator._target_=h125_plug.Users",
     "simulator._target_=h125_plug.Users is a class that does not subclass recoworld.simulators.UserSimulator, "
     "whose methods (reset, respond, close) recoworld run calls: subclass it (README: Plug in your own "
     "simulator, and recoworld.check_simulator to see what else it needs)"),
])
def test_a_plugin_class_of_the_wrong_kind_is_refused_before_the_run(plugin, tmp_path, capsys, override, message):
    """It used to start the run, then fail on the base's first missing method (an
    AttributeError traceback: 'Ranker' object has no attribute 'setup'), leaving a failed run."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app([*TINY, override, f"hydra.run.dir={out}"])
    assert capsys.readouterr().err.strip() == f"recoworld run: error: {message}"
    assert not (out / "status.json").exists()


def test_an_entry_point_agent_that_is_no_recommender_is_refused_by_its_class(plugin, tmp_path, capsys):
    info = plugin / "h125_plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: h125-plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recoworld.agents]\nh125_ranker = h125_plug:ranker_config\n")
    out = tmp_path / "run"
    try:
        with pytest.raises(SystemExit):
            run_app([*SETTINGS, "agent=h125_ranker", f"hydra.run.dir={out}"])
    finally:
        ConfigStore.instance().repo["agent"].pop("h125_ranker.yaml", None)
    assert capsys.readouterr().err.strip().startswith(
        "recoworld run: error: agent._target_=h125_plug.Ranker is a class that does not subclass "
        "recoworld.agents.Recommender")
    assert not (out / "status.json").exists()


# ---------------------------------------------------------------- folders that are no run

def test_the_folder_of_a_run_refused_before_it_began_is_named_as_such(tmp_path, capsys):
    """A refused config leaves Hydra's .hydra/ and no status.json: the message used to point at
    the status.json that says why, which is not there."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app([*SETTINGS, "experiment.agents=[random,h125_nobody]", f"hydra.run.dir={out}"])
    assert (out / ".hydra" / "config.yaml").is_file() and not (out / "status.json").exists()
    capsys.readouterr()
    message = (f"{out} holds no status.json and no episodes/: its `recoworld run` stopped before the run began (a "
               "config it refused, whose error it printed, or a run killed as it started); run the command again")
    assert cli(["view", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"recoworld view: {message}"
    assert cli(["export", "minari", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"recoworld export minari: {message}"
    assert sorted(p.name for p in out.iterdir()) == [".hydra", "recoworld.log"]  # nothing written


def test_a_folder_of_runs_names_them(tmp_path, capsys):
    """A sweep's folder (multirun/DATE/TIME) given for one of its runs."""
    for name in ("10", "2", "0", "1"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("world: {}\n")
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    assert cli(["view", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"recoworld view: {tmp_path} is not a run's directory, but holds 4 "
                                               f"run(s) (0, 1, 2, 10): give one of them, e.g. {tmp_path / '0'}")
    assert not (tmp_path / "sessions.html").exists()


# ---------------------------------------------------------------- TensorBoard

def test_a_file_where_the_tensorboard_folder_goes_is_named_with_the_fix(tmp_path, capsys):
    """The writer used to raise a bare NotADirectoryError traceback."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").write_text("my notes\n")
    with pytest.raises(SystemExit):
        run_app([*TINY, "experiment.tensorboard=true", f"hydra.run.dir={out}"])
    message = (f"experiment.tensorboard=true writes event files in {out}/tensorboard/agent=random/seed=0, but "
               f"{out}/tensorboard is a file: move it away, then finish the run with experiment.resume=true (or "
               "run with experiment.tensorboard=false)")
    assert capsys.readouterr().err.strip().endswith(f"recoworld run: error: {message}")
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["error"]) == ("failed", message)
    assert (out / "tensorboard").read_text() == "my notes\n"  # the user's file is left as it was


# ---------------------------------------------------------------- the Minari datasets folder

def test_a_datasets_folder_that_cannot_be_made_is_named_with_its_variable(run_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "file" / "datasets"))
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/h125-v0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"recoworld export minari: the Minari datasets folder {tmp_path}/file/datasets (MINARI_DATASETS_PATH) cannot "
        f"be made (Not a directory: {tmp_path}/file/datasets): set MINARI_DATASETS_PATH to a folder you can "
        "write (unset, Minari uses ~/.minari/datasets)")


def test_a_dataset_that_cannot_be_written_names_the_folder_and_leaves_nothing(run_dir, tmp_path, monkeypatch, capsys):
    datasets = tmp_path / "datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets))

    def full_disk(storage, episodes):
        raise OSError(errno.ENOSPC, "No space left on device", str(storage.data_path / "0"))

    monkeypatch.setattr(minari_writer, "write_arrow_episodes", full_disk)
    # The batched writer, whichever Minari is installed.
    monkeypatch.setattr(minari_writer, "ARROW_LAYOUT_RELEASES", (minari.__version__,))
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/h125-v0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"recoworld export minari: could not write the dataset 'recoworld/h125-v0' in the Minari "
                          f"datasets folder {datasets} (MINARI_DATASETS_PATH) ([Errno 28] No space left on device: ")
    assert err.endswith("; nothing is left under the id: free space there, or set MINARI_DATASETS_PATH to a folder "
                        "you can write (unset, Minari uses ~/.minari/datasets)")
    assert [p.name for p in (datasets / "recoworld").iterdir()] == ["namespace_metadata.json"]
