"""A mistake in the config under ``experiment.executor=ray`` ends the run in the one line the
local executor gives; failures of the rollouts themselves are still named part by part."""

import json
from functools import partial

import pytest

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError

pytest.importorskip("ray")

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.progress=false",
        "experiment.plots=false", "experiment.agents=[random,most_popular]", "experiment.seeds=[0]"]
EPSILON_2 = "building the agent epsilon_greedy: EpsilonGreedy.epsilon=2: must be in [0, 1]"


def test_an_env_the_config_breaks_ends_a_ray_run_as_it_ends_a_local_one(local_ray, tmp_path, capsys):
    said = {}
    for executor in ("local", "ray"):
        with pytest.raises(SystemExit):
            run_app([*TINY, "env.num_envs=0", f"experiment.executor={executor}",
                     f"hydra.run.dir={tmp_path / executor}"])
        said[executor] = capsys.readouterr().err.strip().splitlines()[-1]
        status = json.loads((tmp_path / executor / "status.json").read_text())
        assert status["state"] == "failed" and status["error_type"] == "ExperimentConfigError"
        assert status["error"] == "building the env: num_envs=0: must be an integer >= 1"
    assert said["ray"] == said["local"] == "recoworld run: error: building the env: num_envs=0: must be an integer >= 1"


@pytest.fixture(scope="module")
def world():
    """The config of a Ray run, its agents' configs by name, and its catalog."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "experiment.executor=ray"])
        agents = {name: compose("config", overrides=[f"agent={agent}", *extra]).agent for name, agent, extra in [
            ("random", "random", []),
            ("epsilon_greedy", "epsilon_greedy", ["agent.epsilon=2"]),
            ("negative", "epsilon_greedy", ["agent.epsilon=-1"]),
        ]}
    return cfg, agents, instantiate(cfg.world)


def _run(world, tmp_path, names):
    """``ray_parts`` over seed 0 of the agents ``names``, one task each (a Ray task is slow to
    start); ``broken`` is an agent config that its class refuses."""
    from omegaconf import OmegaConf

    from recoworld.apps.run import executor
    from recoworld.apps.run.hooks import part_hooks
    from recoworld.apps.run.rundir import Part, RunDirectory

    cfg, agents, catalog = world
    broken = OmegaConf.create({"_target_": "recoworld.agents.RandomAgent", "no_such_argument": 1})
    lineup = {name: broken if name == "broken" else agents[name] for name in names}
    parts = [Part(name, 0) for name in lineup]
    directory = RunDirectory.start(tmp_path, {"config": 1}, parts, resume=False)
    executor.ray_parts(cfg, lineup, parts, catalog, directory, hooks=partial(part_hooks, cfg),
                       on_done=lambda part: None)


def test_an_agent_the_config_breaks_ends_the_run_in_one_line_after_the_others_are_recorded(local_ray, world, tmp_path):
    from recoworld.apps.run.rundir import Part

    with pytest.raises(ExperimentConfigError) as failure:
        _run(world, tmp_path, ["random", "epsilon_greedy"])
    assert type(failure.value) is ExperimentConfigError and str(failure.value) == EPSILON_2
    status = json.loads((tmp_path / "status.json").read_text())
    assert [(p["agent"], p["seed"]) for p in status["parts"]["complete"]] == [("random", 0)]
    assert (tmp_path / Part("random", 0).file).is_file()
    assert not (tmp_path / Part("epsilon_greedy", 0).file).exists()


def test_failures_that_differ_are_still_named_part_by_part(local_ray, world, tmp_path):
    from recoworld.apps.run.executor import RolloutsFailed

    # Two mistakes in the config, each its own: no one line says both.
    with pytest.raises(RolloutsFailed) as failure:
        _run(world, tmp_path / "two", ["epsilon_greedy", "negative"])
    message = str(failure.value)
    assert message.startswith(f"2 of 2 Ray rollouts failed (agent=epsilon_greedy seed=0: ExperimentConfigError: "
                              f"{EPSILON_2}; agent=negative seed=0: ExperimentConfigError: building the agent "
                              "negative: EpsilonGreedy.epsilon=-1: must be in [0, 1])")
    # A mistake in the config beside a rollout's own error: each is named.
    with pytest.raises(RolloutsFailed) as failure:
        _run(world, tmp_path / "mixed", ["epsilon_greedy", "broken"])
    message = str(failure.value)
    assert f"agent=epsilon_greedy seed=0: ExperimentConfigError: {EPSILON_2}; " in message
    assert "agent=broken seed=0: InstantiationException: " in message
