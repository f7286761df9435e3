"""The experiment runner, its rollout loop and its log: what a run directory holds and promises."""

import json
import os
import shutil
import subprocess
import sys
from math import perm
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module

from recoworld.agents import RandomAgent
from recoworld.apps.run.app import main as run_app
from recoworld.envs.rollout import rollout
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
    for name in (".hydra/config.yaml", "lineup.yaml", "episodes.parquet", "metrics.json"):
        assert (run_dir / name).is_file(), name
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
    log = read_log(run_dir / "episodes.parquet")
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


def test_single_agent_override_runs_just_that_agent(tmp_path):
    run_app(["agent=oracle", "experiment.seeds=[0]", *TINY, "experiment.plots=false", f"hydra.run.dir={tmp_path}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["agents"]) == ["oracle"]
    assert set(read_log(tmp_path / "episodes.parquet")["agent"]) == {"oracle"}


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler for kernel=c")
def test_kernel_c_runs_the_same_experiment_and_reaches_the_env_and_the_users(tmp_path):
    with initialize_config_module("recoworld.conf", version_base=None):
        cfg = compose("config", overrides=["kernel=c", *TINY])
    assert cfg.env.kernel == "c" and cfg.simulator.kernel == "c"
    run_app(["kernel=c", "agent=most_popular", "experiment.seeds=[0]", *TINY, "experiment.plots=false",
             f"hydra.run.dir={tmp_path}"])
    log = read_log(tmp_path / "episodes.parquet")
    assert len(log) > 0 and log["reward"].sum() > 0  # reward: clicks


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
    command = [sys.executable, "-m", "recoworld.apps.cli", "run", "--multirun", "env.slate_size=3,5",
               "agent=random", "world=synthetic", "env.num_envs=4", "experiment.steps=3", "experiment.seeds=[0]",
               "experiment.plots=false", "experiment.progress=false", f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for job, slate_size in (("0", 3), ("1", 5)):
        log = read_log(tmp_path / job / "episodes.parquet")
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
    with pytest.raises(LogSchemaError, match=r"version 999.*reads version 1"):
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
