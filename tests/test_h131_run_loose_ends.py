"""Four mistakes that ``recoworld run`` used to answer late or with the wrong advice: an agent
of ``experiment.agents`` that no ``agent=NAME`` check saw, a simulator factory returning no
simulator, a file where a part's TensorBoard folder goes under Ray, and a world folder holding
world.json but no tensors.pt. Each is refused in one line naming the value and the fix."""

import json
import re
import shlex
import textwrap

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from recoworld import Catalog
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.runner import CALIBRATED_CATALOG, ensure_calibrated
from recoworld.simulators.calibrated import CalibratedWorld
from run_support import TINY_RUN

SETTINGS = TINY_RUN
TINY = [*SETTINGS, "agent=random"]

PLUGIN = textwrap.dedent("""
    import numpy as np

    from recoworld.agents import Recommender


    class Ranker:
        \"\"\"Has act, but is no Recommender.\"\"\"

        def act(self, obs):
            return np.argsort(obs.candidate_ids, axis=1)[:, :10]


    class LowestIds(Recommender):
        name = "lowest_ids"

        def __init__(self, temperature=1.0):
            self.temperature = temperature

        def act(self, obs):
            return np.argsort(obs.candidate_ids, axis=1)[:, : self.slate_size]


    class Plain:
        \"\"\"Has reset and respond, but is no UserSimulator.\"\"\"

        def __init__(self, catalog):
            self.catalog = catalog

        def reset(self, n_users, seed=None, users=None):
            raise AssertionError("never reached")


    def plain_users(catalog, **kwargs):
        return Plain(catalog)


    def forgot_to_return(catalog, **kwargs):
        Plain(catalog)


    def ranker():
        return {"_target_": "h131_plug.Ranker"}


    def misspelt():
        return {"_target_": "h131_plug.LowestIds", "temperatur": 0.5}


    def missing():
        return {"_target_": "h131_not_installed.Agent"}
""")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The module ``h131_plug``, and a distribution registering three agent configs of it."""
    (tmp_path / "h131_plug.py").write_text(PLUGIN)
    info = tmp_path / "h131_plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: h131-plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recoworld.agents]\nh131_ranker = h131_plug:ranker\n"
                                           "h131_misspelt = h131_plug:misspelt\nh131_missing = h131_plug:missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("h131_ranker", "h131_misspelt", "h131_missing"):
        ConfigStore.instance().repo["agent"].pop(f"{name}.yaml", None)


# ---------------------------------------------------------------- 1. the agents of experiment.agents

@pytest.mark.parametrize("name, message", [
    ("h131_ranker", "agent._target_=h131_plug.Ranker is a class that does not subclass recoworld.agents.Recommender, "
                    "whose methods (setup, act, update) recoworld run calls: subclass it (README: A new agent is a "
                    "subclass of recoworld.agents.Recommender)"),
    ("h131_misspelt", "h131_plug.LowestIds takes no argument 'temperatur' (agent.temperatur); it takes temperature: "
                      "check the key's spelling"),
    ("h131_missing", "agent._target_=h131_not_installed.Agent: no module 'h131_not_installed' is installed; check "
                     "the spelling, or install the package that provides it (pip install -e PATH)"),
])
def test_an_entry_point_agent_of_the_lineup_is_checked_as_agent_name_is(plugin, tmp_path, capsys, name, message):
    """It used to run the lineup's first agent, then fail in the second's part (for the Ranker,
    an AttributeError traceback: 'Ranker' object has no attribute 'setup')."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app([*SETTINGS, f"experiment.agents=[random,{name}]", f"hydra.run.dir={out}"])
    assert capsys.readouterr().err.strip() == f"recoworld run: error: experiment.agents lists {name}: {message}"
    assert sorted(p.name for p in out.iterdir()) == [".hydra", "recoworld.log"]  # no run was begun


# ---------------------------------------------------------------- 2. a simulator factory

@pytest.mark.parametrize("factory, returned", [("plain_users", "an instance of h131_plug.Plain"),
                                               ("forgot_to_return", "None")])
def test_a_simulator_factory_returning_no_simulator_is_named_with_the_fix(plugin, tmp_path, capsys, factory,
                                                                          returned):
    """It used to end in AttributeError: 'Plain' object has no attribute 'close', the env's
    own refusal of the object hidden behind it."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app([*TINY, f"simulator._target_=h131_plug.{factory}", f"hydra.run.dir={out}"])
    message = (f"simulator._target_=h131_plug.{factory} returned {returned}, which is no "
               "recoworld.simulators.UserSimulator, whose methods (reset, respond, close) recoworld run calls: return "
               "an instance of a subclass of it (README: Plug in your own simulator, and recoworld.check_simulator "
               "to see what else it needs)")
    assert capsys.readouterr().err.strip().endswith(f"recoworld run: error: {message}")
    assert json.loads((out / "status.json").read_text())["error"] == message


# ---------------------------------------------------------------- 3. TensorBoard's folder under either executor

@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_file_where_the_tensorboard_folder_goes_gets_one_message_from_either_executor(executor, tmp_path, capsys,
                                                                                        request):
    """Under Ray the driver used to raise a bare NotADirectoryError once the part's task was done."""
    pytest.importorskip("tensorboard")
    if executor == "ray":
        request.getfixturevalue("local_ray")
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").write_text("my notes\n")
    with pytest.raises(SystemExit):
        run_app([*TINY, "experiment.tensorboard=true", f"experiment.executor={executor}", f"hydra.run.dir={out}"])
    message = (f"experiment.tensorboard=true writes event files in {out}/tensorboard/agent=random/seed=0, but "
               f"{out}/tensorboard is a file: move it away, then finish the run with experiment.resume=true (or "
               "run with experiment.tensorboard=false)")
    assert capsys.readouterr().err.strip().endswith(f"recoworld run: error: {message}")
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["error"]) == ("failed", message)
    assert (out / "tensorboard").read_text() == "my notes\n"


def test_a_file_in_a_later_agents_curve_folder_stops_the_run_before_its_first_part(tmp_path, capsys):
    """Checked before any part runs: the local executor used to run the lineup's first agent,
    then stop at the second's."""
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    (out / "tensorboard").mkdir(parents=True)
    (out / "tensorboard" / "agent=most_popular").write_text("")
    with pytest.raises(SystemExit):
        run_app([*SETTINGS, "experiment.agents=[random,most_popular]", "experiment.tensorboard=true",
                 f"hydra.run.dir={out}"])
    assert f"but {out}/tensorboard/agent=most_popular is a file: move it away" in capsys.readouterr().err
    assert list(out.rglob("*.parquet")) == []


# ---------------------------------------------------------------- 4. half a world at world.path

@pytest.fixture(scope="module")
def log_world(tmp_path_factory):
    """A world fitted by ``recoworld calibrate --data`` from a log, and the log."""
    folder = tmp_path_factory.mktemp("h131")
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    log = folder / "log.csv"
    ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(log, index=False)
    world = folder / "world"
    assert calibrate_main(["--data", str(log), "--out", str(world), "--quiet"]) == 0
    return world, log


def _world_config(path) -> DictConfig:
    return OmegaConf.create({"world": {"_target_": CALIBRATED_CATALOG, "path": str(path)},
                             "simulator": {"_target_": "none"}})


def _half(log_world, tmp_path):
    """A copy of the world's world.json alone."""
    half = tmp_path / "half world"
    half.mkdir()
    (half / "world.json").write_text((log_world[0] / "world.json").read_text())
    return half


def test_half_a_logs_world_names_the_command_that_fits_the_log_again(log_world, tmp_path, capsys):
    half = _half(log_world, tmp_path)
    command = (f"`recoworld calibrate --data {shlex.quote(str(log_world[1].resolve()))} --out "
               f"{shlex.quote(str(half))} --force`")
    message = (f"world.path={half}: {half} is half a calibrated world: it has no tensors.pt beside its world.json "
               "(a copy cut short, or a file deleted); delete it to recalibrate with the log it was fitted on, or fit "
               f"it again in place: {command}, or leave world.path unset for the cache's world")
    with pytest.raises(ValueError) as error:  # was: no error here, then the load's "delete it to recalibrate"
        ensure_calibrated(_world_config(half))
    assert str(error.value) == message
    with pytest.raises(SystemExit):
        run_app(["agent=random", f"world.path={half}", *SETTINGS[1:], f"hydra.run.dir={tmp_path / 'run'}"])
    assert f"recoworld run: error: {message}\n" in capsys.readouterr().err
    # The command, run as given, fits the log's world again there.
    argv = shlex.split(re.search(r"`recoworld calibrate (.*)`", message).group(1))
    assert calibrate_main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    assert CalibratedWorld.load(half).meta["data"]["source"]["data"] == str(log_world[1].resolve())


def test_half_a_world_whose_world_json_cannot_be_read_names_both_commands(log_world, tmp_path):
    half = _half(log_world, tmp_path)
    (half / "world.json").write_text('{"meta": ')
    with pytest.raises(ValueError) as error:
        ensure_calibrated(_world_config(half))
    out = shlex.quote(str(half))
    assert str(error.value) == (
        f"world.path={half}: {half} is half a calibrated world: it has no tensors.pt beside its world.json (a copy "
        "cut short, or a file deleted); delete it to recalibrate with the data it was fitted from (its world.json, "
        "which names them, cannot be read), or fit it again in place: `recoworld calibrate --data LOG --out "
        f"{out} --force` (with the log's --items and --user-table, if it had them) for a log's world, `recoworld "
        f"calibrate --out {out} --force` for MovieLens-100K's, calibrate() in Python for data given there, or leave "
        "world.path unset for the cache's world")


def test_a_folder_holding_nothing_still_gets_the_movielens_advice(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError) as error:
        ensure_calibrated(_world_config(empty))
    assert str(error.value) == (
        f"world.path={empty} holds no calibrated world (no world.json there); give the folder that `recoworld "
        f"calibrate --out DIR` wrote, fit MovieLens-100K there first with `recoworld calibrate --out {empty}`, or "
        "leave world.path unset for the cache's world")
    assert list(empty.iterdir()) == []
