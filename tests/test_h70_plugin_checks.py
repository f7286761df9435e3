"""What a third party's plug-in is told when it is wrong: a key its class does not take, a
target that does not import, a device the machine lacks, a ``reset`` that refuses the seeds
the envs pass; and what it is given when it is right (a subclass's ``**kwargs``)."""

import textwrap

import gymnasium as gym
import pytest
import torch
from omegaconf import OmegaConf

from recoworld import Catalog, check_simulator
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.plugins import fit_plugin_targets

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=3", "experiment.seeds=[0]",
        "experiment.progress=false", "experiment.plots=false"]

PLUGIN = textwrap.dedent("""
    import numpy as np
    import torch

    from recoworld import Instruction, Response
    from recoworld.agents import Recommender
    from recoworld.simulators import UserSimulator
    from recoworld.validation import check_slates


    class Budgeted(UserSimulator):
        \"\"\"Clicks the first item; a user whose seed is odd leaves for good after `budget` steps.\"\"\"

        def __init__(self, catalog, device="cpu", budget=2):
            self.catalog, self.device, self.budget = catalog, torch.device(device), budget

        def reset(self, n_users, seed=None, users=None):
            slots = range(n_users) if users is None else [int(u) for u in users]
            seeds = [0] * len(slots) if seed is None else (
                [seed + j for j in range(len(slots))] if isinstance(seed, int) else [int(s) for s in seed])
            if users is None:
                self.n_users, self.steps, self.odd = n_users, torch.zeros(n_users), torch.zeros(n_users, dtype=torch.bool)
            for slot, s in zip(slots, seeds):
                self.steps[slot], self.odd[slot] = 0, s % 2 == 1

        def respond(self, slates):
            check_slates(slates, self.catalog.n_items, n_rows=self.n_users)
            B, K = slates.shape
            clicked = torch.zeros(B, K, dtype=torch.bool)
            clicked[:, 0] = True
            self.steps += 1
            leaves = self.odd & (self.steps >= self.budget)
            no = torch.zeros(B, dtype=torch.bool)
            return Response(examined=torch.ones(B, K, dtype=torch.bool), clicked=clicked,
                            watch_fraction=clicked.float(), liked=clicked, rating=clicked.float() * 5,
                            satisfaction=torch.ones(B), leave_hazard=leaves.float(), left_session=leaves,
                            returned=no, return_gap=torch.where(leaves, torch.inf, 0.0), churned=leaves,
                            instruction_in_force=no, compliance=torch.zeros(B),
                            instruction=Instruction.none(B, self.catalog.n_genres), instruction_text=[None] * B)


    class Forwarding(Budgeted):
        \"\"\"A subclass that hands its other keyword arguments to Budgeted.\"\"\"

        def __init__(self, catalog, fault="none", **kwargs):
            super().__init__(catalog, **kwargs)
            self.fault = fault


    class LowestIds(Recommender):
        name = "lowest_ids"

        def act(self, obs):
            return np.argsort(obs.candidate_ids, axis=1)[:, : self.slate_size]
""")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "h70_plug.py").write_text(PLUGIN)
    (tmp_path / "h70_needs_dependency.py").write_text("import h70_not_installed_dependency\n\n\nclass Users:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _statistical_swapped_for(target: str, **keys):
    """The run's config after `simulator._target_=target` replaced the statistical users' config."""
    simulator = {"_target_": target, "config": {"leave_base": -2.0}, "population": {}, "device": "cpu",
                 "kernel": "auto", **keys}
    return OmegaConf.create({"simulator": simulator, "agent": None})


# ------------------------------------------------------------ keys a plug-in does not take

def test_a_key_you_set_that_the_plugin_does_not_take_is_an_error_naming_it(plugin):
    cfg = _statistical_swapped_for("h70_plug.Budgeted", budgett=5)
    with pytest.raises(ExperimentConfigError) as refused:
        fit_plugin_targets(cfg, ["simulator._target_=h70_plug.Budgeted", "+simulator.budgett=5"])
    assert str(refused.value) == ("h70_plug.Budgeted takes no argument 'budgett' (simulator.budgett); it takes "
                                  "budget, catalog, device: check the key's spelling")


def test_the_replaced_configs_keys_go_only_where_the_plugin_takes_them(plugin):
    cfg = _statistical_swapped_for("h70_plug.Budgeted", budget=5)
    fit_plugin_targets(cfg, ["simulator._target_=h70_plug.Budgeted", "+simulator.budget=5"])
    assert dict(cfg.simulator) == {"_target_": "h70_plug.Budgeted", "device": "cpu", "budget": 5}


def test_a_subclass_passing_on_kwargs_gets_the_keys_its_base_takes_and_not_the_others(plugin):
    cfg = _statistical_swapped_for("h70_plug.Forwarding", fault="raise", budget=3)
    fit_plugin_targets(cfg, ["simulator._target_=h70_plug.Forwarding", "+simulator.fault=raise",
                             "+simulator.budget=3"])
    assert dict(cfg.simulator) == {"_target_": "h70_plug.Forwarding", "device": "cpu", "fault": "raise", "budget": 3}
    cfg = _statistical_swapped_for("h70_plug.Forwarding", budgett=3)
    with pytest.raises(ExperimentConfigError, match=r"^h70_plug.Forwarding takes no argument 'budgett' "
                                                    r"\(simulator.budgett\); it takes budget, catalog, device, fault"):
        fit_plugin_targets(cfg, ["simulator._target_=h70_plug.Forwarding", "+simulator.budgett=3"])


def test_a_plugins_own_config_is_held_to_its_class_too(plugin):
    cfg = OmegaConf.create({"simulator": {"_target_": "h70_plug.Budgeted", "budgte": 4}, "agent": None})
    with pytest.raises(ExperimentConfigError, match=r"takes no argument 'budgte' \(simulator.budgte\)"):
        fit_plugin_targets(cfg, ["simulator=budgeted"])  # an entry point's config, its _target_ not swapped


def test_a_misspelt_agent_key_stops_the_run_in_one_line_before_it_writes(plugin, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["agent._target_=h70_plug.LowestIds", "agent.temperatur=0.3",
                 "simulator._target_=h70_plug.Budgeted", *TINY, f"hydra.run.dir={tmp_path}"])
    assert capsys.readouterr().err.strip() == ("recoworld run: error: h70_plug.LowestIds takes no argument "
                                               "'temperatur' (agent.temperatur); it takes no arguments: check "
                                               "the key's spelling")
    assert not (tmp_path / "status.json").exists()


def test_a_forwarding_plugin_runs_with_the_key_set_for_it(plugin, tmp_path):
    out = tmp_path / "run"
    run_app(["agent._target_=h70_plug.LowestIds", "simulator._target_=h70_plug.Forwarding",
             "+simulator.fault=none", "+simulator.budget=3", *TINY, f"hydra.run.dir={out}"])
    assert (out / "metrics.json").exists()


# -------------------------------------------------------------- targets that do not import

@pytest.mark.parametrize("target, message", [
    ("h70_needs_dependency.Users", "importing h70_needs_dependency failed, as it needs the module "
                                   "'h70_not_installed_dependency', which is not installed; install it (a "
                                   "dependency of the package h70_needs_dependency)"),
    ("h70_plg.Budgeted", "no module 'h70_plg' is installed; check the spelling, or install the package that "
                         "provides it (pip install -e PATH)"),
    ("h70_plug.Budgetted", "h70_plug has no 'Budgetted'; check the spelling"),
])
def test_a_plugin_target_that_does_not_import_is_named_before_the_run(plugin, tmp_path, capsys, target, message):
    with pytest.raises(SystemExit):
        run_app([f"simulator._target_={target}", "agent=random", *TINY, f"hydra.run.dir={tmp_path}"])
    assert capsys.readouterr().err.strip() == f"recoworld run: error: simulator._target_={target}: {message}"
    assert not (tmp_path / "status.json").exists()


def test_a_plugin_whose_own_code_fails_on_import_shows_its_traceback(plugin, tmp_path, capsys):
    (plugin / "h70_buggy.py").write_text("raise RuntimeError('the plug-in is broken at line 1')\n")
    with pytest.raises(RuntimeError, match="the plug-in is broken at line 1"):
        fit_plugin_targets(OmegaConf.create({"simulator": {"_target_": "h70_buggy.Users"}, "agent": None}), [])


# ------------------------------------------------------------------ a device it lacks

def test_a_plugin_on_a_cuda_device_the_machine_lacks_is_refused_naming_its_device(plugin, monkeypatch):
    from h70_plug import Budgeted

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    simulator = Budgeted(Catalog.synthetic(50, seed=0), device="cuda")
    expected = r"^Budgeted's device: device='cuda', but (this torch was built without CUDA|no CUDA GPU is visible)"
    with pytest.raises(ValueError, match=expected):
        gym.make("RecoWorld/Slate-v0", simulator=simulator, slate_size=3, check_responses=False)
    with pytest.raises(ValueError, match=r"  - Budgeted's device: device='cuda', but "):
        check_simulator(simulator)


# ------------------------------------------------------------ the seeds the envs pass

def test_check_simulator_restarts_users_with_tensor_seeds_as_the_envs_do(plugin):
    from h70_plug import Budgeted

    class ListSeeds(Budgeted):
        def reset(self, n_users, seed=None, users=None):
            if not (seed is None or isinstance(seed, (int, list))):
                raise TypeError(f"seed is a {type(seed).__name__}")
            super().reset(n_users, seed, users)

    catalog = Catalog.synthetic(50, seed=0)
    check_simulator(Budgeted(catalog))
    with pytest.raises(ValueError) as refused:
        check_simulator(ListSeeds(catalog))
    assert refused.value.problems == [  # users seeded 1 and 3 churn at step 1
        "reset(n_users, seed=tensor([...]), users=tensor([1, 3])) raised TypeError: seed is a Tensor; restarting "
        "churned users must work, with the seeds as a sequence or an int64 tensor (the envs pass a tensor)"]
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       simulator=ListSeeds(catalog), slate_size=3)
    with pytest.raises(TypeError, match="seed is a Tensor"):  # what check_simulator now foretells
        env.reset(seed=0)


# ------------------------------------------------------- a plug-in that raises, in the checker

def test_check_simulator_chains_the_plugins_own_exception_so_its_traceback_shows(plugin):
    import traceback

    from h70_plug import Budgeted

    class Raising(Budgeted):
        def respond(self, slates):
            raise KeyError("budget of user 3 went missing")

    with pytest.raises(ValueError) as refused:
        check_simulator(Raising(Catalog.synthetic(50, seed=0)))
    assert refused.value.problems[0] == "respond(slates) at step 0 raised KeyError: 'budget of user 3 went missing'"
    cause = refused.value.__cause__
    assert isinstance(cause, KeyError)
    raised_at = traceback.extract_tb(cause.__traceback__)[-1]
    assert (raised_at.name, raised_at.filename) == ("respond", __file__)
