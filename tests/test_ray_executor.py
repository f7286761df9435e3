"""``experiment.executor=ray`` and the sharded population against their local counterparts.

One local Ray serves the session (``local_ray``: Ray's start-up and its workers' imports
dominate), and one pair of ``sharded_twins`` the module's tests of the sharded population.
"""

import json
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recoworld.envs.rollout import Hook

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError, experiment_settings
from recoworld.apps.run.hooks import part_hooks
from recoworld.logs import read_log

ray = pytest.importorskip("ray")

TINY = ["world=synthetic", "env.num_envs=6", "experiment.steps=6", "experiment.progress=false",
        "experiment.plots=false", "experiment.agents=[random,most_popular]", "experiment.seeds=[0,1]"]


@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for executor in ("local", "ray"):
        out[executor] = tmp_path_factory.mktemp(executor)
        assert run_app([*TINY, f"experiment.executor={executor}", f"hydra.run.dir={out[executor]}"]) == 0
    return out


def _metrics(path: Path) -> dict:
    metrics = json.loads((path / "metrics.json").read_text())
    for agent in metrics["agents"].values():
        agent.pop("seconds")  # wall time, the one field that differs
    return metrics


def test_ray_executor_writes_the_local_executors_log_row_for_row_and_its_metrics(runs):
    local, remote = read_log(runs["local"]), read_log(runs["ray"])
    assert len(local) > 0 and sorted(local["agent"].unique()) == ["most_popular", "random"]
    pd.testing.assert_frame_equal(local, remote)
    assert _metrics(runs["local"]) == _metrics(runs["ray"])
    status = json.loads((runs["ray"] / "status.json").read_text())
    assert status["state"] == "complete" and status["parts"]["planned"] == 4
    assert sorted((r["agent"], r["seed"]) for r in status["parts"]["complete"]) == [
        ("most_popular", 0), ("most_popular", 1), ("random", 0), ("random", 1)]
    assert not [p for p in runs["ray"].rglob("*") if p.name.endswith(".tmp")]


def test_a_run_whose_ray_tasks_fail_ends_failed_naming_agent_and_seed(local_ray, tmp_path, capsys):
    # A positional argument, which the class refuses as each Ray task builds it (a key it does not
    # take is refused before the run starts: tests/test_h192_plus_keys.py).
    bad = [*TINY, "experiment.executor=ray", f"hydra.run.dir={tmp_path}", "agent=most_popular",
           "+agent._args_=[1]"]
    with pytest.raises(SystemExit):
        run_app(bad)
    err = capsys.readouterr().err  # one line that names each failed rollout, no traceback to bury it
    assert "recoworld run: stopped: RolloutsFailed: 2 of 2 Ray rollouts failed (agent=most_popular seed=0: " in err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["error_type"] == "RolloutsFailed"
    for seed in (0, 1):
        assert f"agent=most_popular seed={seed}: InstantiationException: Error in call to target " in status["error"]
    assert "MostPopularAgent() takes no arguments" in status["error"]
    assert "experiment.resume=true" in status["error"] and status["parts"]["complete"] == []


def test_failed_parts_are_reported_while_the_others_are_recorded(local_ray, tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recoworld.apps.run import executor
    from recoworld.apps.run.hooks import part_hooks
    from recoworld.apps.run.rundir import Part, RunDirectory

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "experiment.executor=ray"])
        lineup = {"random": compose("config", overrides=["agent=random"]).agent,
                  "broken": OmegaConf.create({"_target_": "recoworld.agents.RandomAgent", "no_such_argument": 1})}
    catalog = instantiate(cfg.world)
    parts = [Part(name, seed) for name in lineup for seed in (0, 1)]
    directory = RunDirectory.start(tmp_path, {"config": 1}, parts, resume=False)
    done = []
    with pytest.raises(executor.RolloutsFailed) as failure:
        hooks = partial(part_hooks, cfg)  # picklable for the workers: no extra hooks here
        executor.ray_parts(cfg, lineup, parts, catalog, directory, hooks=hooks, on_done=done.append)
    message = str(failure.value)
    assert message.startswith("2 of 4 Ray rollouts failed (")
    assert "agent=broken seed=0: InstantiationException" in message and "agent=broken seed=1: " in message
    assert message.endswith("the others are recorded: fix the cause, then finish the run with experiment.resume=true "
                            f"hydra.run.dir={tmp_path}")
    assert sorted((p.agent, p.seed) for p in done) == [("random", 0), ("random", 1)]
    assert all(directory.completed(Part("random", seed)) for seed in (0, 1))
    assert (tmp_path / Part("random", 0).file).is_file() and not (tmp_path / Part("broken", 0).file).exists()


class DiesOnItsFirstAttempt(Hook):
    """Ends its worker's process outright at the rollout's third step, as a crash or the
    out-of-memory killer would, unless ``marker`` says that an attempt already died."""

    def __init__(self, marker: Path):
        self.marker = marker

    def on_step(self, step) -> None:
        if step.t == 2 and not self.marker.exists():
            self.marker.touch()
            os._exit(1)


def hooks_dying_once(markers: Path, cfg, folder, part) -> list:
    """``part_hooks``, and for the part random seed 1 a :class:`DiesOnItsFirstAttempt`."""
    hooks = part_hooks(cfg, folder, part)
    if (part.agent, part.seed) == ("random", 1):
        hooks.append(DiesOnItsFirstAttempt(markers / "random-1"))
    return hooks


def test_a_rollout_whose_worker_dies_runs_again_and_logs_the_rows_of_an_uninterrupted_one(
        runs, tmp_path, monkeypatch, hooks_by_value):
    from recoworld.apps.run import runner

    (tmp_path / "markers").mkdir()
    monkeypatch.setattr(runner, "part_hooks", partial(hooks_dying_once, tmp_path / "markers"))
    out = tmp_path / "run"
    assert run_app([*TINY, "experiment.executor=ray", f"hydra.run.dir={out}"]) == 0
    assert (tmp_path / "markers" / "random-1").exists(), "the first attempt did not die"
    pd.testing.assert_frame_equal(read_log(out), read_log(runs["local"]))
    assert _metrics(out) == _metrics(runs["local"])
    assert json.loads((out / "status.json").read_text())["state"] == "complete"
    assert ("agent=random seed=1: its Ray worker died (a crash, out of memory or a lost node) and the rollout ran "
            "again: attempt 2 of at most 4; it is seeded, so it logs the rows of an uninterrupted rollout"
            ) in (out / "recoworld.log").read_text()


def test_how_often_a_dead_worker_is_retried_is_checked_before_the_run():
    from omegaconf import OmegaConf

    from recoworld.apps.run import executor
    from recoworld.conf.schema import ExperimentConfig

    assert executor.ray_retries(OmegaConf.create({"executor": "ray"})) == executor.RAY_RETRIES == 3
    assert executor.ray_retries(OmegaConf.create({"ray_retries": 0})) == 0
    assert ExperimentConfig().ray_retries == executor.RAY_RETRIES
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match=rf"^experiment.ray_retries={bad!r}; give how many times a rollout whose "
                                             r"Ray worker died runs again, an integer >= 0, e\.g\. "
                                             r"experiment.ray_retries=3$"):
            ExperimentConfig(executor="ray", ray_retries=bad)


def test_the_attempt_counter_counts_in_a_worker_that_imports_neither_torch_nor_hydra(local_ray):
    from recoworld.apps.run.executor import RolloutAttempts

    counter = ray.remote(num_cpus=0)(RolloutAttempts).remote()  # as ray_parts starts it
    try:
        assert ray.get([counter.begin.remote("a"), counter.begin.remote("a"), counter.begin.remote("b")]) == [1, 2, 1]
        assert ray.get([counter.count.remote("a"), counter.count.remote("c")]) == [2, 0]
        # Every task asks it first, so its worker's imports hold every run back: torch's and
        # Hydra's took seconds.
        loaded = ray.get(counter.__ray_call__.remote(lambda _: [m for m in ("torch", "hydra") if m in sys.modules]))
        assert loaded == []
    finally:
        ray.kill(counter)


class Signal:
    """A Ray actor that a task waits on (:meth:`wait`, which frees the task's CPU) until the
    driver sends it (:meth:`send`)."""

    def __init__(self):
        import asyncio

        self.sent = asyncio.Event()

    async def send(self) -> None:
        self.sent.set()

    async def wait(self) -> None:
        await self.sent.wait()


def hooks_after(signal, waiting: str, cfg, folder, part) -> list:
    """``part_hooks``; the part of agent ``waiting`` first waits for ``signal``."""
    if part.agent == waiting:
        ray.get(signal.wait.remote(), timeout=60)
    return part_hooks(cfg, folder, part)


def test_a_killed_worker_is_named_and_failures_come_in_the_order_of_the_parts(
        local_ray, tmp_path, monkeypatch, hooks_by_value):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recoworld.apps.run import executor
    from recoworld.apps.run.rundir import Part, RunDirectory

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "experiment.executor=ray"])
        lineup = {
            # Fails last: its task waits (hooks_after) until the driver has taken in killed's
            # failure, then builds an agent that is None, which the part refuses.
            "late": OmegaConf.create({"_target_": "time.sleep", "_args_": [0]}),
            # Fails first: its worker process ends at once, as if killed (out of memory...),
            # on its first attempt and on its one retry.
            "killed": OmegaConf.create({"_target_": "os._exit", "_args_": [1]}),
            "random": compose("config", overrides=["agent=random"]).agent,
        }
    signal = ray.remote(num_cpus=0)(Signal).remote()
    failed, name_failure = [], executor._failure

    def failure(ray_module, err, part, attempts):
        # The driver names each failed part as it takes the failure in: that order is recorded,
        # and late's task goes on once killed's failure is in, never before.
        failed.append(part.agent)
        if part.agent == "killed":
            signal.send.remote()
        return name_failure(ray_module, err, part, attempts)

    monkeypatch.setattr(executor, "_failure", failure)
    parts = [Part(name, 0) for name in lineup]
    directory = RunDirectory.start(tmp_path, {"config": 1}, parts, resume=False)
    try:
        with pytest.raises(executor.RolloutsFailed) as failure_raised:
            executor.ray_parts(cfg, lineup, parts, instantiate(cfg.world), directory,
                               hooks=partial(hooks_after, signal, "late", cfg), on_done=lambda part: None,
                               retries=1)
    finally:
        ray.kill(signal)
    assert failed == ["killed", "late"]  # the reverse of the parts' order, which the report follows
    message = str(failure_raised.value)
    assert message.startswith("2 of 3 Ray rollouts failed (agent=late seed=0: ")
    assert "; agent=killed seed=0: WorkerCrashedError: " in message  # after late's, though it failed first
    assert "(its worker died on every attempt: 2)); the others are recorded" in message
    assert "agent=late seed=0: ExperimentConfigError: agent._target_=time.sleep returned None" in message
    assert "attempt" not in message.split(";")[0]  # not retried
    assert directory.completed(Part("random", 0)) and (tmp_path / Part("random", 0).file).is_file()


def test_executor_settings_are_checked_before_the_run():
    from omegaconf import OmegaConf

    def settings(**experiment):
        return experiment_settings(OmegaConf.create({"experiment": experiment}))

    assert settings(executor="ray").executor == "ray"
    with pytest.raises(ExperimentConfigError, match=r"^experiment.executor='dask'; choose local \(this process\) "
                                                     r"or ray \(Ray tasks\), e.g. experiment.executor=ray$"):
        settings(executor="dask")
    with pytest.raises(ExperimentConfigError, match=r"^experiment.ray_address='auto' is set but "
                                                     r"experiment.executor=local; add experiment.executor=ray"):
        settings(ray_address="auto")


def test_sharded_population_equals_the_unsharded_env_slot_for_slot(sharded_twins):
    whole, sharded = sharded_twins  # max_steps=3: the autoreset of finished users is crossed too
    assert (sharded.sizes, sharded.offsets) == ([3, 2], [0, 3])
    _assert_dicts_equal(whole.reset(seed=21), sharded.reset(seed=21))
    with pytest.raises(ValueError, match=r"^ShardedVectorEnv.reset takes no options \(got \['reset_mask'\]\)"):
        sharded.reset(options={"reset_mask": np.ones(5, dtype=bool)})
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = np.stack([rng.permutation(whole.num_candidates)[:whole.slate_size] for _ in range(5)])
        expected, got = whole.step(actions), sharded.step(actions)
        _assert_dicts_equal((expected[0], expected[4]), (got[0], got[4]))
        for a, b in zip(expected[1:4], got[1:4]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(whole.click_probabilities(), sharded.click_probabilities(), rtol=1e-5)


def test_each_shard_runs_its_users_on_the_one_cpu_ray_gives_it(sharded_twins):
    def threads_in_the_actor(_shard):
        import torch

        from recoworld.kernels import build
        return torch.get_num_threads(), build.threads()

    shards = sharded_twins[1]._shards
    assert ray.get([shard.__ray_call__.remote(threads_in_the_actor) for shard in shards]) == [(1, 1)] * 2


def test_sharded_env_refuses_what_it_cannot_split(local_ray):
    from recoworld.envs.sharded import ShardedVectorEnv

    with pytest.raises(ValueError, match=r"^num_shards=4 > num_envs=3: each shard needs at least one user; "
                                         r"use num_shards <= 3$"):
        ShardedVectorEnv(3, 4)
    with pytest.raises(ValueError, match="cannot split a simulator instance"):
        ShardedVectorEnv(3, 2, simulator=object())


def test_a_sharded_env_takes_seeds_and_actions_for_all_its_users_as_the_unsharded_one_does(sharded_twins):
    whole, sharded = sharded_twins  # slates of 3 among 10 candidates
    # Gymnasium's list[int | None]: None goes on with that user's own seed sequence.
    for seed in (7, [1, 2, 3, 4, 5], [1, None, 3, None, 5]):
        _assert_dicts_equal(whole.reset(seed=seed), sharded.reset(seed=seed))
    with pytest.raises(ValueError, match=r"^got 2 seeds for 5 users; give one per user"):
        sharded.reset(seed=[1, 2])
    actions = np.tile(np.arange(3), (6, 1))
    for rows in (actions, actions[:4]):  # a sixth row is not dropped, a missing fifth not blamed on a shard
        with pytest.raises(ValueError, match=rf"^action has shape \({len(rows)}, 3\); expected \(5, 3\), one "
                                             r"row per user$"):
            sharded.step(rows)


def _assert_dicts_equal(expected: tuple, got: tuple) -> None:
    for a, b in zip(expected, got):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _cpus_not_held_by(twins) -> float:
    """Ray's CPUs less the one each shard of the module's ``sharded_twins`` holds: what is
    free once every other actor has ended."""
    return ray.cluster_resources()["CPU"] - len(twins[1]._shards)


def _free_cpus_become(ray_module, expected: float) -> bool:
    """Whether Ray's free CPUs reach ``expected`` within a few seconds (actors end asynchronously)."""
    import time

    for _ in range(50):
        if ray_module.available_resources().get("CPU", 0) == expected:
            return True
        time.sleep(0.2)
    return False


def test_a_closed_sharded_env_closes_again_and_refuses_use(local_ray):
    from recoworld.envs.sharded import ShardedVectorEnv

    sharded = ShardedVectorEnv(4, 2)
    sharded.reset(seed=0)
    sharded.close()
    sharded.close()
    assert sharded.closed
    closed = r"^this ShardedVectorEnv is closed \(its Ray actors have ended\); build a new one$"
    for use in (lambda: sharded.reset(seed=0), lambda: sharded.step(np.zeros((4, 10), dtype=np.int64)),
                sharded.click_probabilities, lambda: sharded.slate_size):
        with pytest.raises(RuntimeError, match=closed):
            use()


def test_arguments_a_shard_refuses_raise_the_envs_own_error_and_end_the_shards(sharded_twins):
    from recoworld.envs.sharded import ShardedVectorEnv

    cpus = _cpus_not_held_by(sharded_twins)
    with pytest.raises(ValueError, match=r"^num_candidates='many': must be an integer >= 1$"):
        ShardedVectorEnv(4, 2, num_candidates="many")
    assert _free_cpus_become(ray, cpus)


def test_a_sharded_env_whose_shard_died_closes_every_other_shard(sharded_twins):
    import os
    import signal

    from recoworld.envs.sharded import ShardedVectorEnv

    cpus = _cpus_not_held_by(sharded_twins)
    sharded = ShardedVectorEnv(4, 2)
    pid = ray.get(sharded._shards[1].__ray_call__.remote(lambda shard: os.getpid()))
    os.kill(pid, signal.SIGKILL)  # the second shard's worker is killed
    with pytest.raises(ray.exceptions.RayActorError):
        sharded.reset(seed=0)
    sharded.close()  # no error: the dead shard has nothing to close, and the live one is ended
    assert sharded.closed and _free_cpus_become(ray, cpus)
