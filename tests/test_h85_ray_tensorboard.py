"""``experiment.executor=ray experiment.tensorboard=true``: each Ray task writes its part's
TensorBoard curves (rollout scalars, SB3 training curves) in its own part folder and returns
them; the driver puts them in the run directory where the local executor writes them, so the
workers need no shared file system and write nothing under the run directory."""

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.hooks import part_hooks
from recoworld.envs.rollout import Hook

ray = pytest.importorskip("ray")
pytest.importorskip("tensorboard")
pytest.importorskip("stable_baselines3")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

# One part (PPO, seed 0): while its task runs, the driver writes nothing under the run directory.
# Two updates of 8 samples (2 envs x 4 steps): SB3 writes an update's train/ curves when the
# next one begins, so two are the fewest that write them.
PPO = ["world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.seeds=[0]", "agent=ppo",
       "agent.total_timesteps=16", "agent.num_envs=2", "agent.algo_kwargs.n_steps=4",
       "agent.algo_kwargs.batch_size=8", "agent.algo_kwargs.n_epochs=1", "experiment.progress=false",
       "experiment.plots=false", "experiment.tensorboard=true"]
RANDOM = ["world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.seeds=[0]", "agent=random",
          "experiment.progress=false", "experiment.plots=false", "experiment.tensorboard=true"]
# Wall time, not the run's: it differs between any two runs.
CLOCK_TAGS = ("time/fps", "time/time_elapsed")


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


class WorkerWrites(Hook):
    """Records in ``report`` (outside the run directory) the files that appeared under
    ``run_dir`` (the driver's) between the task's building of its hooks and its rollout's end:
    the worker's own, since the driver writes nothing there while the run's one task runs."""

    def __init__(self, run_dir: Path, report: Path):
        self.run_dir, self.report = Path(run_dir), report
        self.before = _files(self.run_dir)

    def on_end(self, result) -> None:
        self.report.write_text(json.dumps(sorted(_files(self.run_dir) - self.before)))


class FailsAtTheEnd(Hook):
    """Raises after the last step: the part's curves are written by then."""

    def on_end(self, result) -> None:
        raise RuntimeError("the rollout failed after its last step")


def hooks_and(extra, cfg, folder, part) -> list:
    """``part_hooks`` for ``folder``, then ``extra()``: what ``runner.part_hooks`` becomes in a test."""
    return [*part_hooks(cfg, folder, part), extra()]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    assert run_app([*PPO, f"hydra.run.dir={out}"]) == 0
    return out


def _curves(run_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per folder of event files under ``run_dir/tensorboard``: each scalar tag's (step, value)s."""
    root = run_dir / "tensorboard"
    out = {}
    for folder in sorted({p.parent for p in root.rglob("events.out.tfevents.*")}):
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1, folder
        events = EventAccumulator(str(folder))
        events.Reload()
        out[folder.relative_to(root).as_posix()] = {
            tag: [(e.step, None if tag in CLOCK_TAGS else e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}
    return out


def test_a_ray_run_puts_the_local_runs_curves_in_the_run_directory_and_its_worker_writes_none_there(
        local_ray, local_run, tmp_path, monkeypatch, hooks_by_value):
    from recoworld.apps.run import runner

    report, out = tmp_path / "written-by-the-worker.json", tmp_path / "run"
    monkeypatch.setattr(runner, "part_hooks", partial(hooks_and, partial(WorkerWrites, out, report)))
    assert run_app([*PPO, "experiment.executor=ray", f"hydra.run.dir={out}"]) == 0
    assert json.loads(report.read_text()) == []
    local = _curves(local_run)
    assert sorted(local) == ["agent=ppo/sb3/PPO_seed0_1", "agent=ppo/seed=0"]
    assert {"ppo/return", "ppo/ctr"} <= set(local["agent=ppo/seed=0"])
    assert "train/value_loss" in local["agent=ppo/sb3/PPO_seed0_1"]
    assert _curves(out) == local
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_failed_ray_task_leaves_no_curve_in_the_run_directory(local_ray, tmp_path, monkeypatch, hooks_by_value):
    from recoworld.apps.run import runner

    monkeypatch.setattr(runner, "part_hooks", partial(hooks_and, FailsAtTheEnd))
    with pytest.raises(SystemExit):
        run_app([*RANDOM, "experiment.executor=ray", f"hydra.run.dir={tmp_path}"])
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*tfevents*")] == []


def test_a_resumed_ray_run_replaces_the_curves_of_the_part_it_redoes(local_ray, tmp_path):
    # The run to resume runs in this process (it leaves the files a Ray run leaves: the first
    # test); its resume redoes the part on Ray, whose driver deletes the stale curves.
    run_app([*RANDOM, f"hydra.run.dir={tmp_path}"])
    folder = tmp_path / "tensorboard" / "agent=random" / "seed=0"
    (written,) = folder.glob("events.out.tfevents.*")
    # An attempt cut short: its curve, and a copy its driver was writing when it was killed.
    shutil.copy(written, folder / "events.out.tfevents.1.stale")
    shutil.copy(written, folder / f".{written.name}.999.tmp")
    (tmp_path / "episodes" / "agent=random" / "seed=0.parquet").unlink()
    run_app([*RANDOM, "experiment.executor=ray", f"hydra.run.dir={tmp_path}", "experiment.resume=true"])
    (kept,) = folder.glob("events.out.tfevents.*")
    assert sorted(p.name for p in folder.iterdir()) == [kept.name]
    events = EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars("random/return")] == [0, 1, 2, 3]
