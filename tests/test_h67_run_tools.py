"""The tools around a run, as a user meets them: the TensorBoard curve of a run that failed,
a run asking for TensorBoard where it is not installed, and the user seeds that the session
viewer shows in a real browser."""

import json
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recoworld.apps.run.app import main as run_app
from recoworld.apps.view.app import PAGE_NAME, main as view_main
from recoworld.logs import read_log
from test_viewer import in_browser, page_payload

#: A run whose random agent raises at its call ``FAIL_AT + 1``, in a process of its own: the
#: process ends as a failed run's does, without the rollout reaching its end.
FAILING_RUN = """
import sys
from recoworld.agents.baselines import RandomAgent
from recoworld.apps.run.app import main

act, calls, fail_at = RandomAgent.act, [], int(sys.argv[1])

def failing(self, obs):
    calls.append(1)
    if len(calls) > fail_at:
        raise RuntimeError("the agent failed")
    return act(self, obs)

RandomAgent.act = failing
main(sys.argv[2:])
"""
FAIL_AT = 7


def test_the_curve_of_a_run_that_failed_holds_every_step_it_took(tmp_path):
    args = ["world=synthetic", "env.num_envs=4", "experiment.steps=40", "experiment.seeds=[0]", "agent=random",
            "experiment.progress=false", "experiment.plots=false", "experiment.tensorboard=true",
            f"hydra.run.dir={tmp_path}"]
    done = subprocess.run([sys.executable, "-c", FAILING_RUN, str(FAIL_AT), *args], capture_output=True, text=True)
    assert done.returncode != 0 and "the agent failed" in done.stderr
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"
    events = EventAccumulator(str(tmp_path / "tensorboard" / "agent=random" / "seed=0"))
    events.Reload()
    for name in ("return", "reward", "ctr"):
        assert [e.step for e in events.Scalars(f"random/{name}")] == list(range(FAIL_AT))


def test_tensorboard_missing_is_told_in_a_line_before_any_part_runs(tmp_path, capsys, monkeypatch):
    for module in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)  # as if tensorboard were not installed
    with pytest.raises(SystemExit) as stop:
        run_app(["world=synthetic", "env.num_envs=4", "experiment.steps=3", "experiment.seeds=[0,1]", "agent=random",
                 "experiment.progress=false", "experiment.plots=false", "experiment.tensorboard=true",
                 f"hydra.run.dir={tmp_path}"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == ("recoworld run: error: experiment.tensorboard=true needs the tensorboard package: "
                           "pip install 'recoworld[tensorboard]' (or run with experiment.tensorboard=false)")
    assert not (tmp_path / "status.json").exists()  # refused before the run directory is touched
    assert not (tmp_path / "episodes").exists() and not (tmp_path / "tensorboard").exists()


def test_the_viewer_shows_each_users_seed_exactly_in_a_browser(tmp_path):
    """A user's seed is a 64-bit integer (the one that replays the user): past 2**53 a
    browser's JSON numbers would round it, and the seed shown would replay someone else."""
    run_app(["world=synthetic", "env.num_envs=3", "experiment.steps=30", "experiment.progress=false",
             "experiment.plots=false", "experiment.seeds=[0]", "agent=random", "env.max_steps=5",
             f"hydra.run.dir={tmp_path}"])
    log = read_log(tmp_path)
    episodes = log.groupby(["user", "episode"]).agg(steps=("step", "size"), seed=("episode_seed", "first"))
    assert (episodes["seed"] > 2 ** 53).any()  # the users after a slot's first
    assert view_main([str(tmp_path)]) == 0
    with in_browser(tmp_path / PAGE_NAME) as (view, errors):
        assert view.locator("#user option").all_text_contents() == [
            f"slot {user} · episode {episode} ({row.steps} steps, user seed {row.seed})"
            for (user, episode), row in episodes.iterrows()]
        assert errors == []


def test_page_data_keeps_the_seed_a_user_can_replay(tmp_path):
    """What the page holds, read back as JSON numbers are read by a browser (doubles)."""
    run_app(["world=synthetic", "env.num_envs=2", "experiment.steps=12", "experiment.progress=false",
             "experiment.plots=false", "experiment.seeds=[0]", "agent=random", "env.max_steps=4",
             f"hydra.run.dir={tmp_path}"])
    assert view_main([str(tmp_path)]) == 0
    payload = json.loads(json.dumps(page_payload((tmp_path / PAGE_NAME).read_text())), parse_int=float)
    log = read_log(tmp_path)
    logged = log.groupby(["user", "episode"])["episode_seed"].first()
    assert [int(e["episode_seed"]) for e in payload["episodes"]] == logged.tolist()
