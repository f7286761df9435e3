"""``recoworld export minari``: a run's log as a Minari dataset that minari.load_dataset reads back."""

import json
import os
import shutil
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
    assert not [p for p in datasets.rglob("*") if p.name.startswith(".cut-v0")]  # nor its temporary folder


def test_a_dataset_appears_under_its_id_only_once_whole(run_dir, datasets, monkeypatch):
    """While it is written, the dataset is not under its id: an export killed then leaves no
    dataset that would load as a smaller one, or block the id."""
    from minari.storage import get_dataset_path

    from recoworld.apps.export import minari_dataset

    whole, seen = minari_dataset.episode_buffers, []

    class Watched(list):
        def __iter__(self):
            for number, episode in enumerate(super().__iter__()):
                if number == 2:  # midway
                    seen.append((get_dataset_path("recoworld/whole-v0").exists(),
                                 "recoworld/whole-v0" in minari.list_local_datasets()))
                yield episode

    monkeypatch.setattr(minari_dataset, "episode_buffers", lambda log, history: Watched(whole(log, history)))
    dataset = minari_dataset.export_minari(run_dir, "recoworld/whole-v0")
    assert seen == [(False, False)]
    assert dataset.total_steps == len(read_log(run_dir)) and set(minari.list_local_datasets()) == {"recoworld/whole-v0"}
    assert sorted(p.name for p in (datasets / "recoworld").iterdir()) == ["namespace_metadata.json", "whole-v0"]


def test_what_a_killed_export_left_is_removed_by_the_next_export_of_its_id(run_dir, datasets, capsys):
    import subprocess
    import sys

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    left = datasets / "recoworld" / f".again-v0.{ended.pid}.tmp"  # as a killed export leaves it
    (left / "data" / "0").mkdir(parents=True)
    (left / "data" / "metadata.json").write_text('{"total_episodes": 0')
    running = datasets / "recoworld" / f".again-v0.{os.getppid()}.tmp"  # an export still running
    running.mkdir()
    assert "recoworld/again-v0" not in minari.list_local_datasets()
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/again-v0"]) == 0
    assert not left.exists() and running.is_dir()
    assert minari.load_dataset("recoworld/again-v0").total_steps == len(read_log(run_dir))


def test_a_folder_that_holds_no_whole_dataset_is_named_with_how_to_remove_it(run_dir, datasets, capsys):
    broken = datasets / "recoworld" / "broken-v0"
    (broken / "data").mkdir(parents=True)
    (broken / "data" / "metadata.json").write_text("")  # an earlier release's export killed while writing it
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/broken-v0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"recoworld export minari: {broken} holds no whole Minari dataset (JSONDecodeError: ")
    assert error.endswith("give another --dataset-id (a new version, -v1), or delete the folder "
                          f"{broken}\n") and "minari delete" not in error
    assert (broken / "data" / "metadata.json").read_text() == ""


def test_the_dataset_of_an_unfinished_run_says_it_is_partial(run_dir, datasets, tmp_path, capsys):
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    status = json.loads((cut / "status.json").read_text())
    (cut / status["parts"]["complete"].pop()["file"]).unlink()  # as if interrupted before its last rollout ended
    status["state"] = "interrupted"
    (cut / "status.json").write_text(json.dumps(status))
    assert cli(["export", "minari", str(cut), "--dataset-id", "recoworld/cut-v0"]) == 0
    note = (f"the run in {cut} was interrupted: 1 of 2 rollouts are complete, and only those are read; rerun its "
            "command with experiment.resume=true to finish it")
    assert capsys.readouterr().err == f"recoworld export minari: warning: {note}\n"
    dataset = minari.load_dataset("recoworld/cut-v0")
    assert dataset.storage.metadata["description"].endswith(f" Partial: {note}.")
    assert dataset.storage.metadata["algorithm_name"] == "random"


def test_a_rollout_listed_complete_but_missing_is_refused_and_nothing_is_written(run_dir, datasets, tmp_path,
                                                                                   capsys):
    lacking = tmp_path / "lacking"
    shutil.copytree(run_dir, lacking)
    file = json.loads((lacking / "status.json").read_text())["parts"]["complete"][1]["file"]
    (lacking / file).unlink()
    assert cli(["export", "minari", str(lacking), "--dataset-id", "recoworld/lacking-v0"]) == 2
    assert (f"lists 1 rollout(s) as complete that are not whole on disk ({file} is missing): rerun its command with "
            "experiment.resume=true") in capsys.readouterr().err
    assert not datasets.exists() or not list(datasets.rglob("lacking*"))
