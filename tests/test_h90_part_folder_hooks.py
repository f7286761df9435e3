"""A Ray task builds its part's writers for the folder it writes in, its part folder: the hook
factory is called with that folder (``hooks(folder, part)``), and its SB3 agents'
``tensorboard_log`` is given there by ``with_training_logs``, as the local executor gives
both for the run directory. Nothing is built for the driver's run directory and moved after."""

import copy
import json
import tempfile
from functools import partial
from pathlib import Path

import pytest

from recoworld.apps.run.hooks import part_hooks
from recoworld.envs.rollout import Hook

ray = pytest.importorskip("ray")
pytest.importorskip("tensorboard")
pytest.importorskip("stable_baselines3")

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=3", "experiment.seeds=[0]", "experiment.progress=false",
        "experiment.plots=false", "experiment.tensorboard=true", "experiment.executor=ray"]
# Two updates of 8 samples: the fewest after which SB3 has written its train/ curves.
PPO = ["agent=ppo", "agent.total_timesteps=16", "agent.num_envs=2", "agent.algo_kwargs.n_steps=4",
       "agent.algo_kwargs.batch_size=8", "agent.algo_kwargs.n_epochs=1"]


class BuiltFor(Hook):
    """Writes, at the rollout's end, ``notes/<agent>.json`` in the folder its factory gave:
    that folder, and the folders of the part's other hooks."""

    def __init__(self, folder: Path, agent: str, hooks: list):
        self.folder, self.agent, self.hooks = Path(folder), agent, hooks

    def on_end(self, result) -> None:
        note = self.folder / "notes" / f"{self.agent}.json"
        note.parent.mkdir()
        note.write_text(json.dumps({"folder": str(self.folder), "hooks": [str(hook.folder) for hook in self.hooks]}))


def noting_hooks(cfg, folder, part) -> list:
    hooks = part_hooks(cfg, folder, part)
    return [*hooks, BuiltFor(folder, part.agent, hooks)]


@pytest.fixture
def world():
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=TINY)
        ppo = compose("config", overrides=PPO).agent
        random = compose("config", overrides=["agent=random"]).agent
    return cfg, ppo, random, instantiate(cfg.world)


def _ray_run(world, run_dir: Path, lineup: dict, hooks) -> None:
    from recoworld.apps.run import executor
    from recoworld.apps.run.rundir import Part, RunDirectory

    cfg, *_, catalog = world
    parts = [Part(name, 0) for name in lineup]
    directory = RunDirectory.start(run_dir, {"config": 1}, parts, resume=False)
    executor.ray_parts(cfg, lineup, parts, catalog, directory, hooks=hooks, on_done=lambda part: None)


def test_a_ray_task_builds_its_hooks_and_its_sb3_agents_log_for_its_part_folder(
        local_ray, world, tmp_path, hooks_by_value):
    from omegaconf import open_dict

    cfg, ppo, random, _ = world
    own = copy.deepcopy(ppo)
    with open_dict(own):
        own.tensorboard_log = str(tmp_path / "mine")  # outside the run directory: the user's, as given
    run_dir = tmp_path / "run"
    _ray_run(world, run_dir, {"random": random, "ppo": ppo, "own": own}, partial(noting_hooks, cfg))
    # The note, and the curves, came back in the run directory where the local executor puts them...
    note = json.loads((run_dir / "notes" / "random.json").read_text())
    assert list((run_dir / "tensorboard" / "agent=random" / "seed=0").glob("events.out.tfevents.*"))
    # ...from the part folder the hooks were built for, on the worker, deleted since.
    folder = Path(note["folder"])
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("recoworld-part-")
    assert not folder.exists()
    assert note["hooks"] == [str(folder / "tensorboard" / "agent=random" / "sb3"),
                             str(folder / "tensorboard" / "agent=random" / "seed=0")]
    # An SB3 agent trains into its part folder's sb3/ (back in the run directory's), or into
    # the log the user gave it; its rollout's scalars come back either way.
    assert [p.name for p in (run_dir / "tensorboard" / "agent=ppo" / "sb3").iterdir()] == ["PPO_seed0_1"]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["PPO_seed0_1"]
    assert sorted(p.name for p in (run_dir / "tensorboard" / "agent=own").iterdir()) == ["seed=0"]
