"""The cost guard: an LLM run whose estimated calls exceed ``experiment.max_llm_calls`` is
refused before anything is written, with the estimate and the ways on."""

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.cost import HYBRID_CALL_RATE, check_llm_cost, estimated_llm_calls
from recoworld.apps.run.runner import ExperimentConfigError


def composed(*overrides):
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        return compose("config", overrides=["world=synthetic", *overrides])


def plain_agents(n):
    """A lineup of ``n`` agents without an LLM."""
    return {f"agent{i}": OmegaConf.create({"_target_": "recoworld.agents.baselines.RandomAgent"}) for i in range(n)}


def refused_run(tmp_path, capsys, *overrides: str) -> str:
    """What ``recoworld run`` with ``overrides`` on the synthetic world, refused with exit status
    1, printed on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_app([*overrides, "world=synthetic", f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 1
    return capsys.readouterr().err


def test_the_default_experiment_on_llm_users_is_refused_with_the_estimate(tmp_path, capsys):
    assert refused_run(tmp_path, capsys, "simulator=llm") == (
        "recoworld run: error: this run would make about 230,400 LLM calls (256 users x 100 steps x 3 seeds x "
        "3 agents), above experiment.max_llm_calls=20,000. Try a small run first with experiment=llm (e.g. "
        "recoworld run simulator=llm experiment=llm), or confirm the cost with experiment.max_llm_calls=230400\n")
    assert not (tmp_path / "status.json").exists()  # refused before the run began (Hydra's .hydra/ aside)


def test_hybrid_users_count_only_the_steps_they_voice():
    cfg = composed("simulator=hybrid", "env.num_envs=64", "experiment.steps=50", "experiment.seeds=[0]")
    assert estimated_llm_calls(cfg, plain_agents(2)) == round(64 * 50 * 2 * HYBRID_CALL_RATE) == 640
    with pytest.raises(ExperimentConfigError, match=r"about 640 LLM calls \(64 users x 50 steps x 1 seeds x 2 "
                                                    r"agents x 0\.1 calls per user-step\), above experiment\."
                                                    r"max_llm_calls=500\. Try a small run first with "
                                                    r"experiment=llm \(e\.g\. recoworld run simulator=hybrid"):
        check_llm_cost(composed("simulator=hybrid", "env.num_envs=64", "experiment.steps=50",
                                "experiment.seeds=[0]", "experiment.max_llm_calls=500"), plain_agents(2))


def test_raising_the_limit_confirms_the_cost_and_small_runs_pass():
    check_llm_cost(composed("simulator=llm", "experiment.max_llm_calls=230400"), plain_agents(3))
    check_llm_cost(composed("simulator=llm", "experiment=llm"), plain_agents(2))
    assert estimated_llm_calls(composed("simulator=llm", "experiment=llm"), plain_agents(2)) == 2 * 2 * 1 * 2


def test_statistical_users_make_no_calls_whatever_the_size():
    cfg = composed("env.num_envs=100000", "experiment.max_llm_calls=0")
    assert estimated_llm_calls(cfg, plain_agents(3)) == 0
    check_llm_cost(cfg, plain_agents(3))


def test_a_negative_limit_is_refused_naming_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["world=synthetic", "experiment.max_llm_calls=-1", f"hydra.run.dir={tmp_path}"])
    assert "experiment.max_llm_calls=-1; it must be an integer >= 0" in capsys.readouterr().err
