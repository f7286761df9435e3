"""Review h219's findings: kernel="auto" for long slates in ``recoworld run``, the random
agent's propensities for long slates, sweep_of, the session-end check's and the budget
refusal's messages."""

from __future__ import annotations

import json
import os
import re
import shutil
from math import perm

import numpy as np
import pytest

from recoworld.agents import RandomAgent
from recoworld.apps.run.app import main as run_app
from recoworld.catalog import Catalog
from recoworld.envs import SlateEnv
from recoworld.logs import read_log
from recoworld.simulators import StatisticalUsers
from recoworld.types import CANDIDATE_IDS

HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None


# --- 1. kernel="auto" runs torch for slates beyond the C kernel's, in recoworld run too -------

@pytest.mark.skipif(not HAS_CC, reason="no C compiler: auto runs torch anyway")
def test_given_auto_users_that_chose_c_switch_to_torch_for_long_slates():
    users = StatisticalUsers(Catalog.synthetic(300, seed=0))
    assert users.kernel == "c"  # built without the slates' size
    env = SlateEnv(simulator=users, slate_size=257, num_candidates=257)
    assert users.kernel == "torch" and env.kernels["users"] == "torch"
    env.reset(seed=0)
    env.step(env.action_space.sample())


@pytest.mark.skipif(not HAS_CC, reason="no C compiler for kernel=c")
def test_given_users_of_kernel_c_are_refused_naming_the_run_key_too():
    users = StatisticalUsers(Catalog.synthetic(300, seed=0), kernel="c")
    with pytest.raises(ValueError, match="^" + re.escape(
            "the StatisticalUsers given runs the C kernel, but the C kernel (users_step.c) handles slate_size up to "
            "256, got 257; build it with kernel='torch' (recoworld run: kernel=torch)") + "$"):
        SlateEnv(simulator=users, slate_size=257, num_candidates=257)


def test_recoworld_run_with_slates_of_300_items_and_kernel_auto_runs_torch(tmp_path):
    run_app(["agent=random", "world=synthetic", "world.n_items=500", "env.slate_size=300", "env.num_candidates=400",
             "env.num_envs=2", "experiment.steps=2", "experiment.seeds=[0]", "experiment.progress=false",
             "experiment.plots=false", f"hydra.run.dir={tmp_path}"])
    log = read_log(tmp_path)
    assert len(log) > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["kernels"] == [{"bookkeeping": "torch",
                                                                             "users": "torch"}]


def test_random_agent_propensities_of_long_slates_do_not_overflow():
    agent = RandomAgent()
    agent.num_candidates, agent.slate_size = 400, 300
    action = np.tile(np.arange(300), (2, 1))
    cascade = agent.propensities({CANDIDATE_IDS: np.zeros((2, 400), dtype=np.int64)}, action)["cascade"]
    assert cascade.shape == (2, 300) and cascade[0, 0] == 1 / 400 and cascade[0, -1] == 0.0  # below the floats
    assert np.all(np.diff(cascade[0]) <= 0)


def test_random_agent_propensities_of_short_slates_are_unchanged():
    agent = RandomAgent()
    agent.num_candidates, agent.slate_size = 50, 10
    action = np.tile(np.arange(10), (3, 1))
    got = agent.propensities({CANDIDATE_IDS: np.zeros((3, 50), dtype=np.int64)}, action)
    assert got["cascade"][0].tolist() == [1.0 / perm(50, k + 1) for k in range(10)]  # bit for bit
    assert got["slate"].tolist() == [1.0 / perm(50, 10)] * 3


# --- 2. sweep_of reads the job's own .hydra/hydra.yaml ------------------------------------------

def _hydra_yaml(job, mode, sweep_dir="", cwd="/nowhere"):
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  run:\n    dir: {job}\n  sweep:\n    dir: {sweep_dir}\n    subdir: ${{hydra.job.num}}\n"
        f"  mode: {mode}\n  runtime:\n    cwd: {cwd}\n")


def test_a_single_run_below_a_folder_that_once_held_a_sweep_is_no_sweep_job(tmp_path):
    from recoworld.apps.run.rundir import sweep_of

    (tmp_path / "results" / "multirun.yaml").parent.mkdir()
    (tmp_path / "results" / "multirun.yaml").write_text("{}\n")
    _hydra_yaml(tmp_path / "results" / "baseline", "RUN")
    assert sweep_of(tmp_path / "results" / "baseline") is None
    _hydra_yaml(tmp_path / "results" / "deep" / "baseline", "RUN")
    assert sweep_of(tmp_path / "results" / "deep" / "baseline") is None


def test_a_relative_path_that_climbs_out_of_a_sweep_is_no_sweep_job(tmp_path, monkeypatch):
    from recoworld.apps.run.rundir import sweep_of

    (tmp_path / "results" / "0").mkdir(parents=True)
    (tmp_path / "results" / "multirun.yaml").write_text("{}\n")
    (tmp_path / "outputs" / "single").mkdir(parents=True)  # no .hydra: its parent decides
    monkeypatch.chdir(tmp_path / "results")
    assert sweep_of("../outputs/single") is None
    assert sweep_of("0") == tmp_path / "results"  # absolute


def test_a_sweep_job_names_its_sweep_dir_from_its_hydra_yaml(tmp_path):
    from recoworld.apps.run.rundir import sweep_of

    _hydra_yaml(tmp_path / "sweep" / "lr_0.1", "MULTIRUN", tmp_path / "sweep")  # a subdir of its own
    assert sweep_of(tmp_path / "sweep" / "lr_0.1") == tmp_path / "sweep"
    _hydra_yaml(tmp_path / "rel" / "0", "MULTIRUN", "rel", cwd=tmp_path)  # relative to the launch's folder
    assert sweep_of(tmp_path / "rel" / "0") == tmp_path / "rel"
    # kept unresolved: the job's parent, where it holds the sweep's multirun.yaml
    _hydra_yaml(tmp_path / "dated" / "1", "MULTIRUN", "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}")
    assert sweep_of(tmp_path / "dated" / "1") is None
    (tmp_path / "dated" / "multirun.yaml").write_text("{}\n")
    assert sweep_of(tmp_path / "dated" / "1") == tmp_path / "dated"


def test_a_sweep_moved_since_it_ran_is_named_where_it_is(tmp_path):
    """Its jobs' hydra.yaml still names the folder it ran in, which may be gone or another's."""
    from recoworld.apps.run.rundir import sweep_of

    _hydra_yaml(tmp_path / "moved" / "0", "MULTIRUN", tmp_path / "ran_here")
    (tmp_path / "moved" / "multirun.yaml").write_text("{}\n")
    assert sweep_of(tmp_path / "moved" / "0") == tmp_path / "moved"


# --- 3. the session-end check names the user and its fields -------------------------------------

def test_session_ends_that_disagree_name_the_first_user_and_its_fields():
    import torch
    from dataclasses import replace

    from recoworld.simulators.checker import _session_end_problems

    users = StatisticalUsers(Catalog.synthetic(50, seed=0), kernel="torch")
    users.reset(3, seed=0)
    fine = users.respond(torch.tensor([[0, 1, 2]] * 3))
    left = torch.tensor([False, True, True])
    ends = replace(fine, left_session=left, returned=torch.tensor([False, False, True]),
                   churned=torch.tensor([False, True, False]),
                   return_gap=torch.tensor([0.0, float("inf"), 2.5]))
    assert _session_end_problems(ends) == []
    assert _session_end_problems(replace(ends, churned=torch.tensor([False, False, True]))) == [
        "user 1 has churned=False, left_session=True, returned=False, return_gap=inf: churned must equal "
        "left_session & ~returned, and returned imply left_session"]
    assert _session_end_problems(replace(ends, return_gap=torch.tensor([0.0, float("inf"), float("inf")]))) == [
        "user 2 has churned=False, left_session=True, returned=True, return_gap=inf: Response.return_gap must be inf "
        "for the users who churned, finite for the others, and 0 where the session goes on"]


# --- 4. the budget refusal's "lower max_tokens" names every application's way -------------------

def test_the_budget_refusal_says_how_to_lower_max_tokens_in_fidelity_and_python_too():
    from recoworld.llm import Budget, BudgetExceeded, ScriptedChatModel
    from recoworld.llm.errors import LOWER_MAX_TOKENS
    from test_h196_fidelity_hints import fidelity_fix

    llm = ScriptedChatModel(lambda call: "ok", budget=Budget(max_total_tokens=5))
    with pytest.raises(BudgetExceeded) as refused:
        llm.chat("hello there", max_tokens=50)
    lower = ("lower max_tokens (recoworld run: simulator.config.max_tokens for the LLM users, agent.max_tokens for "
             "an LLM agent; recoworld fidelity: no flag, its LLM users' limit is their default, room for the longest "
             "reply their schema allows; Python: LLMUserConfig.max_tokens, or an LLM agent's max_tokens argument)")
    assert str(refused.value).endswith(f"Python: LLMConfig.max_total_tokens), or {lower}")
    assert LOWER_MAX_TOKENS not in str(refused.value)  # fidelity's "generate faster" is for a timeout only
    assert lower in fidelity_fix(str(refused.value))
