"""``recoworld export minari`` as a user meets it: observations that are what the agent saw,
and a default dataset id per segment of a run."""

import json
import shutil
from urllib.parse import quote

import gymnasium as gym
import minari
import numpy as np

import recoworld.envs  # noqa: F401  (registers RecoWorld/Slate-v0)
from recoworld.agents.baselines import RandomAgent
from recoworld.apps.cli import main as cli
from recoworld.apps.export.minari_episodes import EPISODE_KEYS, episode_buffers
from recoworld.apps.run.app import main as run_app
from recoworld.envs.rollout import Hook, rollout
from recoworld.logs import EpisodeLog

STEPS = 40


class Seen(Hook):
    """The observation each user slot was served at each rollout step."""

    def __init__(self):
        self.history, self.session = {}, {}

    def on_action(self, t, obs, action):
        self.history[t] = np.array(obs["history_items"])
        self.session[t] = np.array(obs["session"])[:, :2].astype(np.int64)


def test_exported_observations_are_the_ones_the_env_served():
    """Rebuilt from the log, they equal the env's own, step for step (a slate's clicks in
    the history in the env's order), for every user episode of a rollout."""
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=8, vectorization_mode="vector_entry_point", max_steps=12)
    seen, log = Seen(), EpisodeLog()
    rollout(env, RandomAgent(), STEPS, 0, logger=log, hooks=[seen])
    rows = log.to_pandas().sort_values([*EPISODE_KEYS, "step"], kind="stable")
    # Slates with several clicks: the order of one slate's clicks in the history matters.
    assert (rows["clicked"].map(sum) >= 2).sum() >= 10
    episodes = [steps for _, steps in rows.groupby(EPISODE_KEYS, sort=False)]
    buffers = episode_buffers(rows)
    assert len(buffers) == len(episodes)
    finals = 0
    for buffer, steps in zip(buffers, episodes):
        user, served = steps["user"].to_numpy(), steps["rollout_step"].to_numpy()
        np.testing.assert_array_equal(buffer.observations["history_items"][:-1],
                                      [seen.history[t][u] for t, u in zip(served, user)])
        np.testing.assert_array_equal(buffer.observations["session"][:-1],
                                      [seen.session[t][u] for t, u in zip(served, user)])
        # After the last step: what the env returned then (the agent meets it at the next
        # step, where the vector env resets the user).
        if served[-1] + 1 < STEPS:
            finals += 1
            after = served[-1] + 1
            np.testing.assert_array_equal(buffer.observations["history_items"][-1], seen.history[after][user[0]])
            np.testing.assert_array_equal(buffer.observations["session"][-1], seen.session[after][user[0]])
    assert finals >= 8


def test_each_segment_is_exported_under_a_default_id_of_its_own(tmp_path, monkeypatch, capsys):
    """Not as a version of the run's dataset: the id that the run's export took is not in the way."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    run = tmp_path / "smoke"
    run_app(["world=synthetic", "env.num_envs=3", "experiment.steps=6", "experiment.progress=false",
             "experiment.plots=false", "experiment.seeds=[0]", "agent=random", f"hydra.run.dir={run}"])
    # A segment made by hand from the run's own part (a segmented run needs a calibrated world).
    status = json.loads((run / "status.json").read_text())
    whole = status["parts"]["complete"][0]
    part = dict(whole, segment="young & curious", file=f"segments/{quote('young & curious', safe='')}/{whole['file']}")
    (run / part["file"]).parent.mkdir(parents=True)
    shutil.copy(run / whole["file"], run / part["file"])
    status["parts"]["complete"].append(part)
    status["config"]["experiment"]["segments"] = {"young & curious": {"age": [0, 24]}}
    (run / "status.json").write_text(json.dumps(status))
    assert cli(["export", "minari", str(run)]) == 0
    assert cli(["export", "minari", str(run), "--segment", "young & curious"]) == 0, capsys.readouterr().err
    assert sorted(minari.list_local_datasets()) == ["recoworld/smoke-v0", "recoworld/smoke-young___curious-v0"]
    segment = minari.load_dataset("recoworld/smoke-young___curious-v0")
    assert "segment young & curious" in segment.storage.metadata["description"]
