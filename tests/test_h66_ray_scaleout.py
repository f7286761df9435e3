"""The sharded population's contract against the unsharded env's, and where the Ray
executor starts its Ray.

One local Ray serves the session (``local_ray``: Ray's start-up and its workers' imports
dominate), and one pair of ``sharded_twins`` the module's tests that need no env of their own.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from recoworld.envs.sharded import ShardedVectorEnv  # noqa: E402
from recoworld.envs.slate import SlateVectorEnv  # noqa: E402

SMALL = {"slate_size": 3, "num_candidates": 10}


def _assert_same_step(expected: tuple, got: tuple) -> None:
    for a, b in zip((expected[0], expected[4]), (got[0], got[4])):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for a, b in zip(expected[1:4], got[1:4]):
        np.testing.assert_array_equal(a, b)


def test_an_invalid_action_raises_the_unsharded_envs_error_and_steps_no_user(sharded_twins):
    whole, sharded = sharded_twins  # slates of 3 among 10 candidates, users 0-2 and 3-4
    whole.reset(seed=3)
    sharded.reset(seed=3)
    valid = np.tile(np.arange(3), (5, 1))
    # Users of the second shard: their rows in the shard are row - 3.
    for row, action, message in (
            (4, [0, 0, 1], r"^action\[4\] repeats candidate index 0 at positions \[0, 1\]; each action must list 3 "
                           r"distinct candidate indices; a learner that samples each index \(e\.g\. SB3's PPO\) "
                           r"should use action_format='scores' instead \(a score per candidate, the top 3 shown\)$"),
            (3, [0, 1, 10], r"^action\[3\]\[2\] is candidate index 10, but there are 10 candidates \(valid ids "
                            r"0\.\.9\)$")):
        actions = valid.copy()
        actions[row] = action
        for env in (whole, sharded):
            with pytest.raises(ValueError, match=message) as refused:
                env.step(actions)
            assert type(refused.value) is ValueError  # the env's own error, not Ray's wrapper of it
    # No shard stepped: the users go on exactly as the unsharded env's.
    _assert_same_step(whole.step(valid), sharded.step(valid))


def test_scores_actions_are_checked_whole_too(local_ray):
    whole, sharded = (SlateVectorEnv(num_envs=3, action_format="scores", **SMALL),
                      ShardedVectorEnv(3, 2, action_format="scores", **SMALL))
    try:
        whole.reset(seed=0)
        sharded.reset(seed=0)
        scores = np.random.default_rng(0).random((3, 10), dtype=np.float32)
        bad = scores.copy()
        bad[2, 4] = np.nan
        for env in (whole, sharded):
            with pytest.raises(ValueError, match=r"^action\[2\]\[4\] is NaN; scores must be numbers$"):
                env.step(bad)
        _assert_same_step(whole.step(scores), sharded.step(scores))
    finally:
        sharded.close()
        whole.close()


def test_a_shards_own_error_is_raised_as_the_unsharded_env_raises_it(local_ray):
    sharded = ShardedVectorEnv(2, 2, **SMALL)
    try:
        with pytest.raises(RuntimeError, match=r"^call reset\(\) before step\(\)$") as refused:
            sharded.step(np.tile(np.arange(3), (2, 1)))
        assert type(refused.value) is RuntimeError
    finally:
        sharded.close()


def test_render_returns_none_with_a_warning_as_the_unsharded_env(sharded_twins):
    for env in sharded_twins:
        with pytest.warns(UserWarning, match="has no render modes, so render"):
            assert env.render() is None


def test_more_shards_than_ray_has_cpus_are_refused_not_waited_for(local_ray):
    cpus = int(ray.cluster_resources()["CPU"])
    outcome = {}

    def build():
        try:
            outcome["env"] = ShardedVectorEnv(2 * cpus, cpus + 1)
        except Exception as error:  # noqa: BLE001 - the test reads it
            outcome["error"] = error

    # A daemon thread, so that a constructor that waits forever for a CPU fails the test
    # instead of hanging it; the bound is generous: the refusal comes before any actor starts.
    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    builder.join(timeout=300)
    assert not builder.is_alive(), "the constructor is still waiting for a CPU for its last shard"
    assert "env" not in outcome
    assert str(outcome["error"]) == (
        f"num_shards={cpus + 1}: each shard is a Ray actor holding one CPU, and this Ray cluster has {cpus} CPUs; use "
        f"num_shards <= {cpus}, or give Ray more CPUs (ray.init(num_cpus=N) before building the env, or nodes joined "
        "to the cluster)")


def test_the_ray_executor_starts_its_own_ray_where_ray_would_join_another(tmp_path):
    """With experiment.ray_address null, a cluster found on this machine or named by
    RAY_ADDRESS (here one where nothing answers) is not joined: Ray starts with this
    machine's cores, as documented (ray.init() would join it and refuse num_cpus)."""
    script = ("import os, sys\n"
              "from recoworld.apps.run.executor import ensure_ray\n"
              "ray = ensure_ray(None)\n"
              "print(int(ray.cluster_resources()['CPU']) == (os.cpu_count() or 1))\n"
              "ray.shutdown()\n")
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
