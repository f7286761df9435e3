"""``recoworld export minari``: a run's log as a Minari dataset that minari.load_dataset reads back."""

from pathlib import Path

import minari
import numpy as np
import pytest

from recoworld.apps.cli import main as cli
from recoworld.apps.run.app import main as run_app
from recoworld.logs import read_log

TINY = ["world=synthetic", "env.num_envs=4", "experiment.steps=15", "experiment.progress=false",
        "experiment.plots=false", "experiment.seeds=[0]", "experiment.agents=[random,most_popular]",
        "env.max_steps=6"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_app([*TINY, f"hydra.run.dir={out}"])
    return out


@pytest.fixture
def datasets(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def test_export_loads_back_with_the_logs_episodes_steps_and_values(run_dir, datasets, capsys):
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/tiny-v0"]) == 0
    assert "recoworld/tiny-v0" in capsys.readouterr().out
    dataset = minari.load_dataset("recoworld/tiny-v0")
    log = read_log(run_dir).sort_values(["agent", "seed", "user", "episode", "step"], kind="stable")
    episodes = list(log.groupby(["agent", "seed", "user", "episode"], sort=False))
    assert dataset.total_episodes == len(episodes) and dataset.total_steps == len(log)
    assert dataset.action_space.nvec.tolist() == [1000] * len(log["slate"].iat[0])
    metadata = list(dataset.storage.get_episode_metadata(range(dataset.total_episodes)))
    assert [m["seed"] for m in metadata] == [rows["episode_seed"].iat[0] for _, rows in episodes]
    for episode, (_, rows) in zip(dataset.iterate_episodes(), episodes):
        np.testing.assert_array_equal(episode.actions, np.stack(rows["slate"].to_numpy()))
        np.testing.assert_allclose(episode.rewards, rows["reward"].to_numpy())
        np.testing.assert_array_equal(episode.terminations, rows["terminated"].to_numpy())
        # Truncated by env.max_steps, or by the run's end on the last step of an unfinished episode.
        cut = rows["truncated"].to_numpy().copy()
        cut[-1] |= not rows["terminated"].iat[-1]
        np.testing.assert_array_equal(episode.truncations, cut)
        session = episode.observations["session"]
        assert len(session) == len(rows) + 1
        np.testing.assert_array_equal(session[:-1], rows[["session", "session_step"]].to_numpy())


def test_history_holds_the_episodes_clicks_newest_first(run_dir, datasets):
    from recoworld.apps.export.minari_dataset import export_minari

    dataset = export_minari(run_dir, "recoworld/history-v0", agent="random", history=3)
    log = read_log(run_dir)
    rows = log[log["agent"] == "random"].sort_values(["seed", "user", "episode", "step"], kind="stable")
    first = rows[(rows["user"] == rows["user"].iat[0]) & (rows["episode"] == rows["episode"].iat[0])]
    episode = next(dataset.iterate_episodes())
    clicks: list[int] = []
    for t, (_, row) in enumerate(first.iterrows()):
        expected = (clicks + [-1] * 3)[:3]
        np.testing.assert_array_equal(episode.observations["history_items"][t], expected)
        clicks = [item for item, c in zip(row["slate"], row["clicked"]) if c][::-1] + clicks
    assert dataset.total_steps == len(rows) and dataset.storage.metadata["algorithm_name"] == "random"


def test_export_errors_name_the_bad_value(run_dir, datasets, tmp_path, capsys):
    assert cli(["export", "minari", str(run_dir), "--agent", "nobody"]) == 2
    assert "agent='nobody' is not in the log" in capsys.readouterr().err
    assert cli(["export", "minari", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["export", "parquet", str(run_dir)]) == 2
    assert "unknown format 'parquet'; choose one of: minari" in capsys.readouterr().err


def test_an_id_that_is_malformed_or_taken_is_refused_and_nothing_is_written(run_dir, datasets, capsys):
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/tiny"]) == 2
    assert "dataset id 'recoworld/tiny' is not (namespace/)name-vN: give e.g. --dataset-id recoworld/smoke-v0" in \
        capsys.readouterr().err
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "bad id-v0"]) == 2
    assert "dataset id 'bad id-v0' is not (namespace/)name-vN" in capsys.readouterr().err
    assert not datasets.exists() or not any(datasets.rglob("data"))
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/taken-v2", "--agent", "random"]) == 0
    capsys.readouterr()
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/taken-v2"]) == 2
    assert (f"Minari dataset 'recoworld/taken-v2' already exists in {datasets}: give another --dataset-id "
            "(a new version, -v3), or delete it first (minari delete recoworld/taken-v2)") in capsys.readouterr().err
    kept = minari.load_dataset("recoworld/taken-v2")  # the first export, untouched
    assert kept.storage.metadata["algorithm_name"] == "random"
    assert kept.storage.metadata["dataset_size"] == kept.storage.get_size() > 0


def test_an_export_that_fails_midway_leaves_no_dataset(run_dir, datasets, monkeypatch):
    from recoworld.apps.export import minari_dataset

    whole = minari_dataset.episode_buffers
    monkeypatch.setattr(minari_dataset, "episode_buffers", lambda log, history: [*whole(log, history)[:2], None])
    with pytest.raises(AttributeError):
        minari_dataset.export_minari(run_dir, "recoworld/cut-v0")
    assert not (datasets / "recoworld" / "cut-v0").exists()
    assert "recoworld/cut-v0" not in minari.list_local_datasets()
