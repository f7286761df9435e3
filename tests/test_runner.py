"""The experiment runner, its rollout loop and its log: what a run directory holds and promises."""

import json
import os
import shutil
from math import perm
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module
from rich.console import Console

from recoworld.agents import RandomAgent
from recoworld.apps import cli
from recoworld.apps.run.app import main as run_app
from recoworld.envs.rollout import rollout
from recoworld.apps.run.report import print_summary
from recoworld.apps.run.runner import ExperimentConfigError, resolve_lineup
from recoworld.logs import COLUMNS, SCHEMA_VERSION, EpisodeLog, LogSchemaError, read_log
from recoworld.metrics import METRICS

# The synthetic world needs no data set and no calibration (test_calibrated_runner.py runs
# the default, calibrated world on a small artifact).
TINY = ["world=synthetic", "env.num_envs=8", "experiment.steps=10", "experiment.progress=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_app(["experiment.seeds=[0,1]", *TINY, f"hydra.run.dir={out}"])
    return out


def test_run_directory_holds_config_log_metrics_and_plots(run_dir):
    for name in (".hydra/config.yaml", "lineup.yaml", "status.json", "metrics.json"):
        assert (run_dir / name).is_file(), name
    # One part of the log per agent and seed, and a status that lists each of them.
    parts = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.parquet"))
    assert parts == sorted(f"episodes/agent={a}/seed={s}.parquet" for a in ("random", "most_popular", "oracle")
                           for s in (0, 1))
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "complete" and status["error"] is None and status["attempts"] == 1
    assert sorted(r["file"] for r in status["parts"]["complete"]) == parts and status["parts"]["planned"] == 6
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    for name in ("returns.png", "retention.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_metrics_json_has_every_metric_with_an_interval_across_seeds_per_agent(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and metrics["schema_version"] == SCHEMA_VERSION
    assert list(metrics["agents"]) == ["random", "most_popular", "oracle"]
    for agent in metrics["agents"].values():
        assert set(agent["metrics"]) == set(METRICS)
        ctr = agent["metrics"]["ctr"]
        assert len(ctr["per_seed"]) == 2
        assert ctr["ci_low"] <= ctr["mean"] <= ctr["ci_high"]
        assert agent["retention"][0] == 1.0
    # The Oracle knows the true click probabilities: it must beat random slates on clicks.
    agents = metrics["agents"]
    assert agents["oracle"]["metrics"]["ctr"]["mean"] > agents["random"]["metrics"]["ctr"]["mean"]


def test_log_has_one_row_per_real_interaction(run_dir):
    log = read_log(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(log) == sum(a["interactions"] for a in metrics["agents"].values())
    for (_, _, _), slot in log.groupby(["agent", "seed", "user"]):
        # A slot skips exactly one rollout step (the autoreset) after each episode it ended
        # before the last step.
        ended_early = (slot["terminated"] | slot["truncated"]) & (slot["rollout_step"] < 9)
        assert len(slot) == 10 - int(ended_early.sum())
        for _, episode in slot.groupby("episode"):
            assert episode["step"].tolist() == list(range(len(episode)))
    random_rows = log[log["agent"] == "random"]
    assert np.allclose(random_rows["propensity"], 1 / perm(50, 10))


def test_summary_shows_the_share_of_steps_that_fell_back_when_the_simulator_reports_it(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    share = {"mean": 0.125, "ci_low": 0.1, "ci_high": 0.15, "per_seed": [0.1, 0.15]}
    metrics["agents"]["random"]["simulator"] = {"fallback_share": share}
    console = Console(record=True, width=200)
    print_summary(metrics, console)
    row = next(line for line in console.export_text().splitlines() if "share of steps that fell back" in line)
    assert "12.5% ± 2.5%" in row and row.count("-") == 2  # the agents without the counter


def test_summary_says_how_many_seeds_a_mean_rests_on_when_some_left_the_metric_undefined(run_dir):
    # No session ended in seed 1: its value is null, and the mean is seed 0's alone — a bare
    # "5.000" would read as the mean of both seeds whose interval went missing.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["agents"]["random"]["metrics"]["session_length"] = {
        "mean": 5.0, "ci_low": None, "ci_high": None, "per_seed": [5.0, None]}
    console = Console(record=True, width=200)
    print_summary(metrics, console)
    row = next(line for line in console.export_text().splitlines() if "session length" in line)
    assert "5.000 (1 of 2 seeds)" in row
    assert row.count("seeds") == 1  # the other agents' means rest on every seed


def test_single_agent_override_runs_just_that_agent(tmp_path):
    run_app(["agent=oracle", "experiment.seeds=[0]", *TINY, "experiment.plots=false", f"hydra.run.dir={tmp_path}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["agents"]) == ["oracle"]
    assert set(read_log(tmp_path)["agent"]) == {"oracle"}


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler for kernel=c")
def test_kernel_c_runs_the_same_experiment_and_reaches_the_env_and_the_users(tmp_path):
    with initialize_config_module("recoworld.conf", version_base=None):
        cfg = compose("config", overrides=["kernel=c", *TINY])
    assert cfg.env.kernel == "c" and cfg.simulator.kernel == "c"
    run_app(["kernel=c", "agent=most_popular", "experiment.seeds=[0]", *TINY, "experiment.plots=false",
             f"hydra.run.dir={tmp_path}"])
    log = read_log(tmp_path)
    assert len(log) > 0 and log["reward"].sum() > 0  # reward: clicks
    # metrics.json records the kernels that stepped the run
    assert json.loads((tmp_path / "metrics.json").read_text())["kernels"] == [{"bookkeeping": "c", "users": "c"}]


def test_metrics_json_records_the_torch_kernels_of_a_torch_run(tmp_path):
    run_app(["kernel=torch", "agent=random", "experiment.seeds=[0]", *TINY, "experiment.plots=false",
             f"hydra.run.dir={tmp_path}"])
    assert json.loads((tmp_path / "metrics.json").read_text())["kernels"] == [{"bookkeeping": "torch",
                                                                             "users": "torch"}]


def test_override_typo_is_an_error_that_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_app(["env.slate_sise=5", f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 1
    assert "slate_sise" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_wrongly_typed_override_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["env.slate_size=ten", f"hydra.run.dir={tmp_path}"])
    assert "slate_size" in capsys.readouterr().err


def test_unknown_agent_in_the_lineup_is_named_with_the_available_ones():
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment.agents=[random,linucbb]"])
        with pytest.raises(ExperimentConfigError, match=r"'linucbb'.*available: .*most_popular"):
            resolve_lineup(cfg)
        cfg = compose("config", overrides=["experiment.agents=[random,random]"])
        with pytest.raises(ExperimentConfigError, match="more than once"):
            resolve_lineup(cfg)


def test_lineup_composes_each_agent_with_the_run_overrides_but_not_agent_ones():
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config")
        lineup = resolve_lineup(cfg, overrides=["env.slate_size=5", "agent.foo=1"])
    assert list(lineup) == ["random", "most_popular", "oracle"]
    assert lineup["oracle"]._target_ == "recoworld.agents.baselines.Oracle"


def test_multirun_sweeps_two_values_into_two_run_directories(tmp_path):
    # In this process: the CLI's own entry point, without a second interpreter's imports.
    assert cli.main(["run", "--multirun", "env.slate_size=3,5", "agent=random", "world=synthetic", "env.num_envs=4",
                     "experiment.steps=3", "experiment.seeds=[0]", "experiment.plots=false",
                     "experiment.progress=false", f"hydra.sweep.dir={tmp_path}"]) == 0
    for job, slate_size in (("0", 3), ("1", 5)):
        log = read_log(tmp_path / job)
        assert {len(s) for s in log["slate"]} == {slate_size}


# ------------------------------------------------------------------- loop
class RecordingLearner(RandomAgent):
    """A RandomAgent that says it learns and keeps what update() receives."""

    learns = True

    def setup(self, env, seed=None):
        super().setup(env, seed)
        self.feedback = []

    def update(self, feedback):
        self.feedback.append(feedback)


def make_env(num_envs=4, max_steps=3):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        max_steps=max_steps, num_candidates=20, slate_size=4)


def test_rollout_skips_autoreset_rows_in_log_and_marks_them_invalid_for_learners():
    agent, log = RecordingLearner(), EpisodeLog()
    result = rollout(make_env(), agent, n_steps=8, seed=3, logger=log)
    frame = log.to_pandas()
    assert len(agent.feedback) == 8
    valid = np.stack([f.valid for f in agent.feedback])
    autoreset = np.stack([~f.info["autoreset"] for f in agent.feedback])
    assert np.array_equal(valid, autoreset)
    assert not valid.all(), "episodes of 3 steps must autoreset within 8 steps"
    assert len(frame) == result.interactions == valid.sum()
    assert result.total_reward == pytest.approx(frame["reward"].sum())
    # Steps 0..2 of episode 0, an autoreset at step 3, then episode 1 from step 4 on.
    slot = frame[frame["user"] == 0]
    if not slot["terminated"].any():
        assert slot["rollout_step"].tolist() == [0, 1, 2, 4, 5, 6]
        assert slot["episode"].tolist() == [0, 0, 0, 1, 1, 1]
        assert slot["step"].tolist() == [0, 1, 2, 0, 1, 2]


def test_rollout_is_reproducible_and_seeds_give_disjoint_users():
    def episode_seeds(seed):
        log = EpisodeLog()
        rollout(make_env(), RandomAgent(), n_steps=5, seed=seed, logger=log)
        return log.to_pandas()

    first, again, other = episode_seeds(0), episode_seeds(0), episode_seeds(1)
    pd.testing.assert_frame_equal(first, again)
    assert not set(first["episode_seed"]) & set(other["episode_seed"])


def test_rollout_logs_null_propensities_for_agents_that_do_not_give_them():
    class Silent(RandomAgent):
        def propensities(self, obs, action):
            return None

    log = EpisodeLog()
    rollout(make_env(), Silent(), n_steps=2, seed=0, logger=log)
    frame = log.to_pandas()
    assert frame["propensity"].isna().all() and frame["cascade_propensity"].isna().all()


# -------------------------------------------------------------------- log
def test_every_column_is_documented_and_the_file_carries_the_schema_version(tmp_path):
    assert all(doc for _, _, _, doc in COLUMNS)
    with EpisodeLog(tmp_path / "log.parquet") as log:
        rollout(make_env(), RandomAgent(), n_steps=2, seed=0, logger=log)
    metadata = pq.read_schema(tmp_path / "log.parquet").metadata
    assert metadata[b"recoworld.schema_version"] == str(SCHEMA_VERSION).encode()


def test_read_log_refuses_other_schema_versions_and_missing_columns(tmp_path):
    with EpisodeLog(tmp_path / "log.parquet") as log:
        rollout(make_env(), RandomAgent(), n_steps=2, seed=0, logger=log)
    table = pq.read_table(tmp_path / "log.parquet")

    pq.write_table(table.replace_schema_metadata({b"recoworld.schema_version": b"999"}), tmp_path / "new.parquet")
    with pytest.raises(LogSchemaError, match=r"version 999.*reads versions \['1', '2'\]"):
        read_log(tmp_path / "new.parquet")

    pq.write_table(table.replace_schema_metadata(None), tmp_path / "bare.parquet")
    with pytest.raises(LogSchemaError, match="schema_version"):
        read_log(tmp_path / "bare.parquet")

    frame = read_log(tmp_path / "log.parquet")
    assert read_log(frame) is frame
    with pytest.raises(LogSchemaError, match=r"lacks columns \['reward'\]"):
        read_log(frame.drop(columns=["reward"]))
    with pytest.raises(LogSchemaError, match="'user'.*missing value"):
        read_log(frame.assign(user=np.nan))


def test_episode_log_refuses_columns_outside_the_schema():
    with pytest.raises(LogSchemaError, match="rewards"):
        EpisodeLog().append({"rewards": np.zeros(3)})
    assert pa.types.is_list({n: t for n, t, _, _ in COLUMNS}["slate"])


def test_read_log_reads_a_version_1_file_with_the_words_columns_null(tmp_path):
    """Version 2 added the LLM users' words; a version-1 log (without those columns) still reads."""
    with EpisodeLog(tmp_path / "log.parquet") as log:
        rollout(make_env(), RandomAgent(), n_steps=2, seed=0, logger=log)
    table = pq.read_table(tmp_path / "log.parquet").drop_columns(["item_reasons", "mindset_text"])
    pq.write_table(table.replace_schema_metadata({b"recoworld.schema_version": b"1"}), tmp_path / "v1.parquet")
    old, new = read_log(tmp_path / "v1.parquet"), read_log(tmp_path / "log.parquet")
    assert list(old.columns) == list(new.columns)
    assert old["item_reasons"].isna().all() and old["mindset_text"].isna().all()
    pd.testing.assert_frame_equal(old.drop(columns=["item_reasons", "mindset_text"]),
                                  new.drop(columns=["item_reasons", "mindset_text"]))


def test_sb3_training_shows_as_a_task_of_the_runs_progress():
    """An SB3 agent trains in setup; the runner's TrainingProgress hook gives that training a
    progress task of its own, advanced to the agent's total_timesteps."""
    from recoworld.agents.sb3 import SB3Agent
    from recoworld.apps.run.hooks import TrainingProgress

    class Progress:  # the two methods of rich.progress.Progress the hook uses
        def __init__(self):
            self.tasks, self.done = {}, {}

        def add_task(self, description, total):
            self.tasks[len(self.tasks)] = (description, total)
            self.done[len(self.done)] = 0
            return len(self.tasks) - 1

        def advance(self, task, steps):
            self.done[task] += steps

    progress = Progress()
    agent = SB3Agent(total_timesteps=32, num_envs=4, algo_kwargs={"n_steps": 8, "batch_size": 32, "n_epochs": 1})
    rollout(make_env(), agent, n_steps=1, seed=0, hooks=[TrainingProgress(progress, "sb3_ppo seed 0")])
    assert progress.tasks == {0: ("sb3_ppo seed 0 training", 32)}
    assert progress.done[0] >= 32
    untrained = RandomAgent()
    rollout(make_env(), untrained, n_steps=1, seed=0, hooks=[TrainingProgress(progress, "random")])
    assert len(progress.tasks) == 1  # agents that do not train get no task


@pytest.mark.parametrize("override, hint", [
    ("agent.alpah=1", "recoworld run: agent.alpah is not a key of `agent`; did you mean agent.alpha? Its keys: "
                      "_target_, alpha, examination, interaction, l2"),
    ("experimnt.steps=3", "recoworld run: experimnt is not a key of the config; did you mean experiment? Its keys: "
                          "agent, device, env, experiment, kernel, llm, simulator, world"),
])
def test_an_unknown_key_is_refused_with_the_keys_it_may_have_meant(tmp_path, capsys, override, hint):
    with pytest.raises(SystemExit) as exit_info:
        run_app(["agent=linucb", "world=synthetic", override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 1
    assert hint in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before the run directory was written


def test_a_world_folder_given_as_world_is_refused_with_the_override_that_runs_on_it(tmp_path, capsys):
    world = tmp_path / "my-world"
    world.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        run_app([f"world={world}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 1
    assert (f"recoworld run: world={world} names a folder, but world= takes a world config (movielens, "
            f"synthetic); to run on a calibrated world's folder give world=movielens world.path={world}"
            ) in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


class CountingAgent(RandomAgent):
    """A random agent that counts its slates, as an LLM agent counts its requests."""

    def setup(self, env, seed=None):
        super().setup(env, seed)
        self.slates = 0

    def act(self, obs):
        action = super().act(obs)
        self.slates += len(action)
        return action

    def stats(self):
        return {"slates": self.slates}


def test_an_agents_counters_reach_the_metrics_per_seed(tmp_path):
    run_app([*TINY, "agent=random", f"agent._target_={__name__}.CountingAgent", "experiment.seeds=[0,1]",
             "experiment.plots=false", f"hydra.run.dir={tmp_path}"])
    status = json.loads((tmp_path / "status.json").read_text())
    assert [part["agent_stats"] for part in status["parts"]["complete"]] == [{"slates": 80}, {"slates": 80}]
    stats = json.loads((tmp_path / "metrics.json").read_text())["agents"]["random"]["agent_stats"]
    assert stats["slates"]["mean"] == 80
