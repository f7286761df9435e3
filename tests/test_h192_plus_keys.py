"""Keys added with Hydra's ``+`` are checked as misspelt keys are: one the root, ``experiment``
or a world, simulator or agent ``_target_`` does not take stops ``recoworld run`` in one line
naming it and the nearest key, before the run directory is written (it was dropped silently,
or stopped the started run in a traceback)."""

import os

import pytest
from hydra import compose, initialize_config_module

import recoworld.conf  # noqa: F401  (registers the structured-config schemas)
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError, check_arguments, experiment_settings

TINY = ["world=synthetic", "world.n_items=200", "env.num_candidates=20", "env.slate_size=4", "env.num_envs=4",
        "experiment=smoke", "experiment.steps=3", "experiment.progress=false", "agent=random"]
EXPERIMENT_KEYS = ("agents, executor, log_candidates, max_llm_calls, plots, progress, ray_address, ray_retries, "
                   "resume, seeds, segments, steps, tensorboard, torch_threads")
ROOT_KEYS = "agent, device, env, experiment, kernel, llm, simulator, world"
CONF = os.path.dirname(recoworld.conf.__file__)


def composed(*overrides):
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("override, message", [
    ("+experiment.stesp=5", f"experiment.stesp is not a key of `experiment`; did you mean experiment.steps? Its keys: "
                            f"{EXPERIMENT_KEYS}"),
    ("+device_=cuda", f"device_ is not a key of the config; did you mean device? Its keys: {ROOT_KEYS}"),
    ("+foo=1", f"foo is not a key of the config. Its keys: {ROOT_KEYS}"),
])
def test_an_added_root_or_experiment_key_is_refused(override, message):
    with pytest.raises(ExperimentConfigError) as refused:
        experiment_settings(composed("world=synthetic", override))
    assert str(refused.value) == message


@pytest.mark.parametrize("overrides, message", [
    (["+simulator.foo=1"], "simulator.foo: recoworld.simulators.statistical.StatisticalUsers has no argument 'foo'; "
                           "its arguments are catalog, config, population, device, kernel"),
    (["+world.n_itemz=5"], "world.n_itemz: recoworld.catalog.Catalog.synthetic has no argument 'n_itemz' (did you "
                           "mean 'n_items'?); its arguments are n_items, n_genres, feature_dim, popularity_exponent, "
                           "multi_genre_prob, seed, name"),
    (["agent=random", "+agent.foo=1"], "agent.foo: recoworld.agents.baselines.RandomAgent has no argument 'foo'; it "
                                       "takes no arguments"),
    (["agent=llm_rerank", "+agent.proposer.alpah=1"],  # a nested config with its own _target_
     "agent.proposer.alpah: recoworld.agents.linear.LinUCB has no argument 'alpah' (did you mean 'alpha'?); its "
     "arguments are interaction, examination, alpha, l2"),
])
def test_a_key_its_target_does_not_take_is_refused(overrides, message):
    cfg = composed("world=synthetic", *overrides)
    lineup = {} if cfg.agent is None else {"agent": cfg.agent}
    with pytest.raises(ExperimentConfigError) as refused:
        check_arguments(cfg, lineup)
    assert str(refused.value) == message


def test_every_shipped_config_passes_the_argument_check():
    """No false refusal: each world with each simulator, and each agent of conf/agent/ (SlateQ's
    ``**config`` goes to its dataclass, which the check leaves to it)."""
    for world in ("synthetic", "movielens"):
        for simulator in ("statistical", "calibrated", "llm", "hybrid"):
            cfg = composed(f"world={world}", f"simulator={simulator}")
            experiment_settings(cfg)
            check_arguments(cfg, {})
    for name in sorted(f.removesuffix(".yaml") for f in os.listdir(os.path.join(CONF, "agent")) if f.endswith(".yaml")):
        cfg = composed("world=synthetic", f"agent={name}")
        check_arguments(cfg, {name: cfg.agent})


@pytest.mark.parametrize("override, line", [
    ("+experiment.stesp=5", "recoworld run: error: experiment.stesp is not a key of `experiment`; did you mean "
                            "experiment.steps?"),
    ("+simulator.foo=1", "recoworld run: error: simulator.foo: recoworld.simulators.statistical.StatisticalUsers has "
                         "no argument 'foo'; its arguments are"),
    ("+agent.foo=1", "recoworld run: error: agent.foo: recoworld.agents.baselines.RandomAgent has no argument 'foo'"),
])
def test_recoworld_run_refuses_an_added_key_before_the_run_directory(tmp_path, capsys, override, line):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_app([*TINY, override, f"hydra.run.dir={out}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert line in err and "Traceback" not in err
    assert not (out / "status.json").exists() and not (out / "episodes").exists()

