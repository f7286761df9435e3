"""``experiment.tensorboard=true`` writes each part's per-step scalars, and SB3 agents'
training curves, as TensorBoard event files in the run directory; a part redone by a resume
writes them again in place of the attempt cut short."""

from pathlib import Path

from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.hooks import SB3_AGENT, part_hooks, with_training_logs
from recoworld.apps.run.rundir import Part

STEPS = 6


def scalars(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_each_part_writes_its_per_step_scalars(tmp_path):
    run_app(["world=synthetic", "env.num_envs=8", f"experiment.steps={STEPS}", "experiment.seeds=[0,1]",
             "experiment.agents=[random,most_popular]", "experiment.progress=false", "experiment.plots=false",
             "experiment.tensorboard=true", f"hydra.run.dir={tmp_path}"])
    for agent in ("random", "most_popular"):
        for seed in (0, 1):
            events = scalars(tmp_path / "tensorboard" / f"agent={agent}" / f"seed={seed}")
            tags = events.Tags()["scalars"]
            assert {f"{agent}/return", f"{agent}/reward", f"{agent}/ctr"} <= set(tags)
            assert set(tags) <= {f"{agent}/{name}" for name in ("return", "reward", "ctr", "return_rate",
                                                                "compliance")}
            for name in ("return", "reward", "ctr"):
                assert [e.step for e in events.Scalars(f"{agent}/{name}")] == list(range(STEPS))
            returns = [e.value for e in events.Scalars(f"{agent}/return")]
            assert returns == sorted(returns)  # cumulative reward of non-negative click rewards
            assert all(0.0 <= e.value <= 1.0 for e in events.Scalars(f"{agent}/ctr"))


def test_a_part_redone_by_a_resume_keeps_only_its_new_curves(tmp_path):
    args = ["world=synthetic", "env.num_envs=4", f"experiment.steps={STEPS}", "experiment.seeds=[0]", "agent=random",
            "experiment.progress=false", "experiment.plots=false", "experiment.tensorboard=true",
            f"hydra.run.dir={tmp_path}"]
    run_app(args)
    folder = tmp_path / "tensorboard" / "agent=random" / "seed=0"
    (tmp_path / "episodes" / "agent=random" / "seed=0.parquet").unlink()  # as if killed before the part's end
    run_app([*args, "experiment.resume=true"])
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert [e.step for e in scalars(folder).Scalars("random/return")] == list(range(STEPS))


def test_a_resume_with_the_flag_off_leaves_no_curve_of_the_parts_it_redoes(tmp_path):
    """The curve of an attempt cut short would stand beside a log it does not match."""
    args = ["world=synthetic", "env.num_envs=4", f"experiment.steps={STEPS}", "experiment.seeds=[0,1]",
            "agent=random", "experiment.progress=false", "experiment.plots=false", f"hydra.run.dir={tmp_path}"]
    run_app([*args, "experiment.tensorboard=true"])
    folders = [tmp_path / "tensorboard" / "agent=random" / f"seed={seed}" for seed in (0, 1)]
    kept = list(folders[0].glob("events.out.tfevents.*"))
    (tmp_path / "episodes" / "agent=random" / "seed=1.parquet").unlink()  # as if killed before the part's end
    run_app([*args, "experiment.resume=true"])
    assert list(folders[1].glob("events.out.tfevents.*")) == []
    assert list(folders[0].glob("events.out.tfevents.*")) == kept  # the complete part keeps its curves


def test_without_the_flag_no_event_files_are_written(tmp_path):
    run_app(["world=synthetic", "env.num_envs=4", "experiment.steps=2", "experiment.seeds=[0]", "agent=random",
             "experiment.progress=false", "experiment.plots=false", f"hydra.run.dir={tmp_path}"])
    assert not (tmp_path / "tensorboard").exists()


def test_sb3_agents_write_their_training_curves_per_seed(tmp_path):
    run_app(["world=synthetic", "env.num_envs=4", "experiment.steps=2", "experiment.seeds=[0]", "agent=ppo",
             "agent.total_timesteps=64", "agent.num_envs=4", "agent.algo_kwargs.n_steps=8",
             "agent.algo_kwargs.batch_size=32", "agent.algo_kwargs.n_epochs=1", "experiment.progress=false",
             "experiment.plots=false", "experiment.tensorboard=true", f"hydra.run.dir={tmp_path}"])
    training = tmp_path / "tensorboard" / "agent=ppo" / "sb3"
    assert [p.name for p in training.iterdir()] == ["PPO_seed0_1"]
    tags = scalars(training / "PPO_seed0_1").Tags()["scalars"]
    assert "train/value_loss" in tags and "time/fps" in tags
    assert (tmp_path / "tensorboard" / "agent=ppo" / "seed=0").is_dir()


PPO = ["world=synthetic", "env.num_envs=4", "experiment.steps=2", "experiment.seeds=[0,1]", "agent=ppo",
       "agent.total_timesteps=64", "agent.num_envs=4", "agent.algo_kwargs.n_steps=8", "agent.algo_kwargs.batch_size=32",
       "agent.algo_kwargs.n_epochs=1", "experiment.progress=false", "experiment.plots=false",
       "experiment.tensorboard=true"]


def test_an_sb3_part_redone_by_a_resume_writes_its_curve_again_in_the_same_folder(tmp_path):
    run_app([*PPO, f"hydra.run.dir={tmp_path}"])
    training = tmp_path / "tensorboard" / "agent=ppo" / "sb3"
    kept = list((training / "PPO_seed0_1").iterdir())
    curve = [(e.step, e.value) for e in scalars(training / "PPO_seed1_1").Scalars("train/value_loss")]
    (tmp_path / "episodes" / "agent=ppo" / "seed=1.parquet").unlink()  # as if killed before the part's end
    run_app([*PPO, "experiment.resume=true", f"hydra.run.dir={tmp_path}"])
    assert sorted(p.name for p in training.iterdir()) == ["PPO_seed0_1", "PPO_seed1_1"]
    assert list((training / "PPO_seed0_1").iterdir()) == kept  # the complete part's curve is not touched
    assert len(list((training / "PPO_seed1_1").iterdir())) == 1
    # The seed decides the curve: the redone part repeats it, once.
    assert [(e.step, e.value) for e in scalars(training / "PPO_seed1_1").Scalars("train/value_loss")] == curve


def test_each_segment_trains_its_sb3_agents_into_its_own_folder(tmp_path):
    cfg = OmegaConf.create({"experiment": {"tensorboard": True}})
    lineup = {"ppo": OmegaConf.create({"_target_": SB3_AGENT, "algo": "PPO", "tensorboard_log": None}),
              "random": OmegaConf.create({"_target_": "recoworld.agents.baselines.RandomAgent"})}
    for segment, folder in ((None, "agent=ppo/sb3"), ("impatient", "segment=impatient/agent=ppo/sb3")):
        logged = with_training_logs(cfg, lineup, tmp_path, segment)
        assert logged["ppo"].tensorboard_log == str(tmp_path / "tensorboard" / folder)
        assert logged["random"] is lineup["random"] and lineup["ppo"].tensorboard_log is None
        hooks = part_hooks(cfg, tmp_path, Part("ppo", 0, segment))
        assert [hook.folder for hook in hooks] == [tmp_path / "tensorboard" / folder,
                                                   tmp_path / "tensorboard" / Path(folder).parent / "seed=0"]
