"""Plug-ins reach ``recoworld run`` without hacks: any importable class by ``_target_``,
named configs from the ``recoworld.agents`` / ``recoworld.simulators`` entry points, a saved
SB3 model by ``agent=sb3_model``, and lineups that skip privileged agents the simulator
cannot serve."""

import json
import logging
import textwrap

import pytest
from hydra.core.config_store import ConfigStore

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.plugins import plugin_overrides, register_plugins
from recoworld.logs import read_log
from run_support import TINY_RUN

TINY = TINY_RUN

# A simulator without the privileged channel, and an agent, taking only the standard arguments.
PLUGIN = textwrap.dedent("""
    import numpy as np
    import torch

    from recoworld import Instruction, Response
    from recoworld.agents import Recommender
    from recoworld.simulators import UserSimulator


    class FirstClick(UserSimulator):
        def __init__(self, catalog, device="cpu"):
            self.catalog, self.device = catalog, torch.device(device)

        def reset(self, n_users, seed=None, users=None):
            self.n_users = n_users

        def respond(self, slates):
            B, K = slates.shape
            clicked = torch.zeros(B, K, dtype=torch.bool)
            clicked[:, 0] = True
            no = torch.zeros(B, dtype=torch.bool)
            return Response(examined=torch.ones(B, K, dtype=torch.bool), clicked=clicked,
                            watch_fraction=clicked.float(), liked=clicked, rating=clicked.float() * 5,
                            satisfaction=torch.ones(B), leave_hazard=torch.zeros(B), left_session=no,
                            returned=no, return_gap=torch.zeros(B), churned=no, instruction_in_force=no,
                            compliance=torch.zeros(B), instruction=Instruction.none(B, self.catalog.n_genres),
                            instruction_text=[None] * B)


    class LowestIds(Recommender):
        name = "lowest_ids"

        def act(self, obs):
            return np.argsort(obs.candidate_ids, axis=1)[:, : self.slate_size]


    def lowest_ids_config():
        return {"_target_": "plug_world.LowestIds"}
""")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "plug_world.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_any_importable_agent_and_simulator_class_runs_by_target(plugin, tmp_path):
    out = tmp_path / "run"
    run_app(["agent._target_=plug_world.LowestIds", "simulator._target_=plug_world.FirstClick", *TINY,
             f"hydra.run.dir={out}"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["agents"]) == ["lowest_ids"], "named as the class names itself"
    assert metrics["agents"]["lowest_ids"]["metrics"]["ctr"]["mean"] == pytest.approx(1 / 10)  # slate of 10, first clicked


def test_an_agent_class_without_a_name_of_its_own_is_named_by_its_class(plugin):
    from recoworld.apps.run.plugins import target_name

    (plugin / "plug_unnamed.py").write_text("from plug_world import LowestIds\n\n\n"
                                            "class Unnamed(LowestIds):\n    name = 'has spaces'\n")
    assert target_name({"_target_": "plug_unnamed.Unnamed"}) == "Unnamed"
    assert target_name({"_target_": "recoworld.agents.baselines.MostPopularAgent"}) == "most_popular"
    assert target_name({"_target_": "not_a_module.Agent"}) == "agent"


def test_agent_keys_start_a_fresh_config_only_without_an_agent_choice():
    assert plugin_overrides(["agent._target_=m.A", "env.num_envs=4"]) == ["+agent._target_=m.A", "env.num_envs=4"]
    assert plugin_overrides(["agent=random", "agent.name=x"]) == ["agent=random", "agent.name=x"]


def test_lineup_skips_the_oracle_with_a_note_when_the_simulator_lacks_its_channel(plugin, tmp_path, capsys):
    out = tmp_path / "run"
    run_app(["simulator._target_=plug_world.FirstClick", "experiment.agents=[random,oracle]", *TINY,
             f"hydra.run.dir={out}"])
    assert list(json.loads((out / "metrics.json").read_text())["agents"]) == ["random"]
    assert ("skipping oracle: oracle is privileged and reads the simulator's click_probabilities(), which "
            "plug_world.FirstClick does not implement") in capsys.readouterr().out  # Hydra logs to stdout


def test_the_oracle_alone_on_such_a_simulator_is_an_error_that_says_why(plugin, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["agent=oracle", "simulator._target_=plug_world.FirstClick", *TINY, f"hydra.run.dir={tmp_path}"])
    assert ("oracle is privileged and reads the simulator's click_probabilities(), which plug_world.FirstClick "
            "does not implement; implement it on the simulator") in capsys.readouterr().err


@pytest.fixture
def installed_plugin(plugin):
    """A fake installed distribution whose entry point registers agent=lowest_ids."""
    info = plugin / "plug_world-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-world\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recoworld.agents]\nlowest_ids = plug_world:lowest_ids_config\n")
    yield plugin
    ConfigStore.instance().repo["agent"].pop("lowest_ids.yaml", None)


def test_an_entry_point_registers_a_named_agent_config_for_lineups(installed_plugin, tmp_path):
    assert register_plugins()["agent"] == ["lowest_ids"]
    out = tmp_path / "run"
    run_app(["experiment.agents=[random,lowest_ids]", *TINY, f"hydra.run.dir={out}"])
    assert set(read_log(out)["agent"]) == {"random", "lowest_ids"}


def test_an_entry_point_may_not_shadow_a_shipped_config(plugin):
    info = plugin / "bad_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recoworld.agents]\nrandom = plug_world:lowest_ids_config\n")
    with pytest.raises(ValueError, match=r"the plug-in config agent=random is also one of RecoWorld's own "
                                         r"\(conf/agent/random.yaml\); register it under another name"):
        register_plugins()


def _distribution(folder, name, entry_points):
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_plugin_that_fails_to_load_is_skipped_with_a_warning_and_the_others_register(installed_plugin, caplog):
    _distribution(installed_plugin, "broken-plugin", "[recoworld.agents]\nbroken = not_installed_pkg:config\n")
    (installed_plugin / "plug_attr.py").write_text("NAME = 'just a string'\n")
    _distribution(installed_plugin, "odd-plugin", "[recoworld.agents]\nodd = plug_attr:NAME\n")
    with caplog.at_level(logging.WARNING):
        assert register_plugins()["agent"] == ["lowest_ids"]
    text = "\n".join(caplog.messages)
    assert ("skipping entry point broken = not_installed_pkg:config (group recoworld.agents, distribution "
            "broken-plugin): it failed to load (ModuleNotFoundError: No module named 'not_installed_pkg'); fix or "
            "uninstall broken-plugin") in text
    assert ("skipping entry point odd = plug_attr:NAME (group recoworld.agents, distribution odd-plugin): it gave "
            "str; it must be (or return) a dict config with a _target_") in text


def test_two_distributions_registering_one_name_are_named(installed_plugin):
    _distribution(installed_plugin, "other-plugin", "[recoworld.agents]\nlowest_ids = plug_world:lowest_ids_config\n")
    with pytest.raises(ValueError, match=r"agent=lowest_ids is registered by both (plug-world|other-plugin) and "
                                         r"(plug-world|other-plugin); uninstall one, or rename its entry point"):
        register_plugins()


def test_a_plugin_conflict_stops_the_run_with_one_line_and_no_traceback(installed_plugin, capsys):
    from recoworld.apps.run.app import main

    _distribution(installed_plugin, "other-plugin", "[recoworld.agents]\nlowest_ids = plug_world:lowest_ids_config\n")
    assert main(["agent=lowest_ids"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("recoworld run: error: agent=lowest_ids is registered by both ") and "\n" not in err
    assert err.endswith("; uninstall one, or rename its entry point")


def test_a_saved_sb3_model_is_evaluated_with_agent_sb3_model(tmp_path):
    from recoworld.agents.sb3 import SB3Agent
    from recoworld.envs import SlateVectorEnv

    model = tmp_path / "model.zip"
    env = SlateVectorEnv(num_envs=4, slate_size=10, num_candidates=50)
    SB3Agent(total_timesteps=32, num_envs=4, algo_kwargs={"n_steps": 8, "batch_size": 32, "n_epochs": 1},
             save_path=str(model)).setup(env, seed=0)
    out = tmp_path / "run"
    run_app(["agent=sb3_model", f"agent.load_path={model}", *TINY, f"hydra.run.dir={out}"])
    assert set(read_log(out)["agent"]) == {"sb3_model"}


def test_agent_sb3_model_without_its_load_path_is_refused_before_the_run_with_the_key_to_give(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["agent=sb3_model", *TINY, f"hydra.run.dir={tmp_path / 'alone'}"])
    err = capsys.readouterr().err.strip()
    assert err == ("recoworld run: error: agent=sb3_model requires agent.load_path (??? in its config); give it on "
                   "the command line, e.g. agent.load_path=VALUE")
    assert not (tmp_path / "alone" / "status.json").exists(), "refused before the run began"
    # In a lineup, agent.* overrides do not reach it: the message says to run it alone.
    with pytest.raises(SystemExit):
        run_app(["experiment.agents=[random,sb3_model]", *TINY, f"hydra.run.dir={tmp_path / 'lineup'}"])
    assert "run it alone: agent=sb3_model agent.load_path=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "lineup" / "status.json").exists()
