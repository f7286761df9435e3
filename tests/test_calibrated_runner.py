"""``recoworld run`` on the calibrated world (the default): the world's fitted users, population
specs and the per-segment breakdown, on a small artifact fitted to simulated data."""

import json

import pytest
from hydra import compose, initialize_config_module

from recoworld.apps.run.app import main as run_app
from recoworld.logs import read_log

TINY = ["env.num_envs=8", "env.num_candidates=20", "env.slate_size=4", "experiment.steps=6",
        "experiment.progress=false", "experiment.plots=false", "experiment.seeds=[0]"]


@pytest.fixture(scope="module")
def artifact(small_world, tmp_path_factory):
    """The session's small world (conftest), saved as ``recoworld calibrate --out`` saves one."""
    return small_world[0].save(tmp_path_factory.mktemp("world") / "artifact")


def test_the_default_world_is_the_calibrated_one_with_its_fitted_users():
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config")
        assert cfg.world._target_ == "recoworld.simulators.calibrated.calibrated_catalog"
        assert cfg.simulator._target_ == "recoworld.simulators.calibrated.calibrated_users"
        # Another simulator for the same movies, or the synthetic world with its own users.
        assert compose("config", overrides=["simulator=llm"]).simulator._target_.endswith("LLMUsers")
        synthetic = compose("config", overrides=["world=synthetic"])
        assert synthetic.simulator._target_ == "recoworld.simulators.statistical.StatisticalUsers"
        # The simulator reads the artifact the world names.
        assert compose("config", overrides=["world.path=/some/where"]).simulator.path == "/some/where"


def test_run_on_a_calibrated_artifact_breaks_results_down_per_segment(artifact, tmp_path):
    run_app(["agent=random", f"world.path={artifact}", *TINY, "simulator.population={gender: F}",
             "experiment.segments={impatient: {patience: low}, patient: {patience: high}}",
             f"hydra.run.dir={tmp_path}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["segments"]) == {"impatient", "patient"}
    for name, level in (("impatient", "low"), ("patient", "high")):
        segment = metrics["segments"][name]
        # A segment narrows the run's population; it does not replace it.
        assert segment["population"] == {"gender": "F", "patience": level}
        assert set(segment["agents"]) == {"random"}
        assert set(read_log(tmp_path / "segments" / name)["agent"]) == {"random"}
        assert (tmp_path / "segments" / name / "episodes" / "agent=random" / "seed=0.parquet").is_file()


def test_segments_need_the_calibrated_users(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["world=synthetic", "agent=random", *TINY, "experiment.segments={a: {patience: low}}",
                 f"hydra.run.dir={tmp_path}"])
    assert "use simulator=calibrated" in capsys.readouterr().err
    assert not (tmp_path / "status.json").exists() and not (tmp_path / "episodes").exists(), \
        "refused before anything ran"
    with pytest.raises(SystemExit):
        run_app(["agent=random", *TINY, "experiment.segments={a: low}", f"hydra.run.dir={tmp_path}"])
    assert "a segment is a population spec" in capsys.readouterr().err


def test_the_calibrated_users_on_the_synthetic_world_are_refused_with_the_worlds_that_fit(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["world=synthetic", "simulator=calibrated", "agent=random", *TINY, f"hydra.run.dir={tmp_path}"])
    assert ("simulator=calibrated: the users fitted to MovieLens-100K rate the calibrated world's movies, but "
            "world=synthetic generates other items; use world=movielens") in capsys.readouterr().err
    assert not (tmp_path / "status.json").exists(), "refused before anything ran"


def test_a_world_path_without_a_world_is_refused_not_filled_with_movielens(tmp_path, capsys):
    from recoworld.apps.fidelity.report import main as fidelity_main

    missing = tmp_path / "my-wrold"  # a typo of the folder `recoworld calibrate --out` wrote
    with pytest.raises(SystemExit):
        run_app(["agent=random", f"world.path={missing}", *TINY, f"hydra.run.dir={tmp_path / 'run'}"])
    assert (f"world.path={missing} holds no calibrated world (no world.json there); give the folder that "
            "`recoworld calibrate --out DIR` wrote") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fidelity_main(["--world", str(missing), "--out", str(tmp_path / "report")])
    assert f"--world {missing} holds no calibrated world" in capsys.readouterr().err
    assert not missing.exists()
