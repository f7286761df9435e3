"""``recoworld export minari``: a run's log as a Minari dataset that minari.load_dataset reads back."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pandas as pd
import pytest

from recoworld.apps.cli import main as cli
from recoworld.apps.export import minari_writer
from recoworld.apps.export.minari_episodes import episode_buffers, observation_space
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
        clicks = [item for item, c in zip(row["slate"], row["clicked"]) if c] + clicks  # a slate's top first
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
            f"command with experiment.resume=true hydra.run.dir={cut} to finish it")
    assert capsys.readouterr().err == f"recoworld export minari: warning: {note}\n"
    dataset = minari.load_dataset("recoworld/cut-v0")
    assert dataset.storage.metadata["description"].endswith(f" Partial: {note}.")
    assert dataset.storage.metadata["algorithm_name"] == "random"


def test_an_export_reads_the_runs_status_once_for_its_warning_and_its_dataset(run_dir, datasets, tmp_path,
                                                                               monkeypatch, capsys):
    from recoworld.apps.run import run_log

    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    status = json.loads((cut / "status.json").read_text())
    (cut / status["parts"]["complete"].pop()["file"]).unlink()
    (cut / "status.json").write_text(json.dumps({**status, "state": "interrupted"}))
    read, reads = run_log.read_status, []
    monkeypatch.setattr(run_log, "read_status", lambda path: reads.append(Path(path)) or read(path))
    assert cli(["export", "minari", str(cut), "--dataset-id", "recoworld/once-v0"]) == 0
    assert reads == [cut]
    note = capsys.readouterr().err.removeprefix("recoworld export minari: warning: ").removesuffix("\n")
    assert minari.load_dataset("recoworld/once-v0").storage.metadata["description"].endswith(f" Partial: {note}.")


def test_a_rollout_listed_complete_but_missing_is_refused_and_nothing_is_written(run_dir, datasets, tmp_path,
                                                                                   capsys):
    lacking = tmp_path / "lacking"
    shutil.copytree(run_dir, lacking)
    file = json.loads((lacking / "status.json").read_text())["parts"]["complete"][1]["file"]
    (lacking / file).unlink()
    assert cli(["export", "minari", str(lacking), "--dataset-id", "recoworld/lacking-v0"]) == 2
    assert (f"lists 1 rollout(s) as complete that are not whole on disk ({file} is missing): rerun its command with "
            f"experiment.resume=true hydra.run.dir={lacking} to run them again") in capsys.readouterr().err
    assert not datasets.exists() or not list(datasets.rglob("lacking*"))


def with_llm_words(run_dir: Path, out: Path) -> Path:
    """A copy of the run whose users spoke as LLM users do: a reason per item and a mindset
    after some steps, nothing after the others (the schema's null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(run_dir, out)
    for part in sorted((out / "episodes").rglob("*.parquet")):
        table = pq.read_table(part)
        slates = table["slate"].to_pylist()
        reasons = [None if row % 3 == 0 else [f"row {row}, item {item}: {'good ' * k}" for k, item in enumerate(slate)]
                   for row, slate in enumerate(slates)]
        mindsets = [None if row % 2 else f"{part.stem} row {row}: curious, a bit tired — «ça va»"
                    for row in range(len(slates))]
        for name, values in (("item_reasons", reasons), ("mindset_text", mindsets)):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))
        pq.write_table(table, part)
    return out


def test_what_the_users_said_is_in_the_episodes_infos_after_the_step_they_said_it(run_dir, datasets, tmp_path):
    spoken = with_llm_words(run_dir, tmp_path / "spoken")
    assert cli(["export", "minari", str(spoken), "--dataset-id", "recoworld/spoken-v0"]) == 0
    dataset = minari.load_dataset("recoworld/spoken-v0")
    log = read_log(spoken).sort_values(["agent", "seed", "user", "episode", "step"], kind="stable")
    episodes = [rows for _, rows in log.groupby(["agent", "seed", "user", "episode"], sort=False)]
    assert dataset.total_episodes == len(episodes)
    for episode, rows in zip(dataset.iterate_episodes(), episodes):
        assert set(episode.infos) == {"instruction_text", "mindset_text", "item_reasons"}
        slate_size = len(rows["slate"].iat[0])
        for name in ("instruction_text", "mindset_text"):  # "" at the reset, then each step's words ("" if none)
            assert episode.infos[name].tolist() == ["", *rows[name].fillna("")]
        reasons = [list(r) if r is not None and r is not pd.NA else [""] * slate_size for r in rows["item_reasons"]]
        assert episode.infos["item_reasons"].tolist() == [[""] * slate_size, *reasons]
    assert any(set(e.infos["mindset_text"][1:]) - {""} for e in dataset.iterate_episodes())


def test_a_run_whose_users_voiced_only_instructions_exports_them_alone(run_dir, datasets):
    from recoworld.apps.export.minari_dataset import export_minari

    log = read_log(run_dir)
    assert log["instruction_text"].notna().any() and log["mindset_text"].isna().all()
    dataset = export_minari(run_dir, "recoworld/instructions-v0")
    voiced = [e.infos["instruction_text"] for e in dataset.iterate_episodes()]
    assert all(set(e.infos) == {"instruction_text"} for e in dataset.iterate_episodes())
    assert sorted(t for said in voiced for t in said if t) == sorted(log["instruction_text"].dropna())


# The writer: Minari's own files, byte for byte, from episodes encoded in batches; and the
# temporary folders of killed exports removed, whatever their id, once their writer has ended.


def export(run_dir: Path, dataset_id: str):
    from recoworld.apps.export.minari_dataset import export_minari

    return export_minari(run_dir, dataset_id)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def with_words(episodes: list) -> list:
    """The episodes with words in their infos, as an export of LLM users' run has them."""
    from minari.data_collector import EpisodeBuffer

    def words(episode, number):
        seen = len(episode.rewards) + 1
        return {"mindset_text": [f"mood {number}.{t}" if t % 2 else "" for t in range(seen)],
                "item_reasons": np.array([[f"r{number}.{t}.{k}" * (k + 1) for k in range(episode.actions.shape[1])]
                                          for t in range(seen)])}

    return [EpisodeBuffer(id=e.id, seed=e.seed, observations=e.observations, actions=e.actions, rewards=e.rewards,
                          terminations=e.terminations, truncations=e.truncations, infos=words(e, number))
            for number, e in enumerate(episodes)]


@pytest.mark.parametrize("words", [False, True], ids=["no infos", "words in infos"])
def test_the_batched_writer_writes_minaris_own_files_byte_for_byte(run_dir, tmp_path, monkeypatch, words):
    """Against the installed Minari's own per-episode writer: a Minari release may join
    minari_writer.ARROW_LAYOUT_RELEASES only while this passes with it."""
    from gymnasium import spaces
    from minari.dataset.minari_storage import MinariStorage

    episodes = episode_buffers(read_log(run_dir), history=4)
    episodes = with_words(episodes) if words else episodes
    # Several batches, one cut by rows before the episode limit.
    monkeypatch.setattr(minari_writer, "EPISODES_PER_BATCH", 5)
    monkeypatch.setattr(minari_writer, "ROWS_PER_BATCH", 20)
    written = {}
    for writer in ("minari", "batched"):
        (tmp_path / writer).mkdir()
        storage = MinariStorage.new(tmp_path / writer / "data", observation_space=observation_space(4),
                                    action_space=spaces.MultiDiscrete([1000] * 10), data_format="arrow")
        if writer == "minari":
            storage.update_episodes(episodes)
        else:
            minari_writer.write_arrow_episodes(storage, episodes)
        written[writer] = files_of(tmp_path / writer / "data")
    assert len(written["minari"]) == 2 * len(episodes) + 1  # an Arrow file and a metadata file per episode
    assert written["batched"].keys() == written["minari"].keys()
    assert [f for f in written["minari"] if written["batched"][f] != written["minari"][f]] == []


def test_an_export_encodes_its_episodes_in_batches_and_measures_its_size_once(run_dir, datasets, monkeypatch):
    """Minari's writer encodes each episode, and measures the whole dataset folder after
    each (time ~N^2 in episodes): a large run's export took minutes."""
    from minari.dataset._storages import arrow_storage

    encodings, measures = [], []
    encode, measure = arrow_storage._encode_space, arrow_storage.ArrowStorage.get_size
    monkeypatch.setattr(arrow_storage, "_encode_space", lambda *a, **k: encodings.append(1) or encode(*a, **k))
    monkeypatch.setattr(arrow_storage.ArrowStorage, "get_size", lambda self: measures.append(1) or measure(self))
    monkeypatch.setattr(minari_writer, "EPISODES_PER_BATCH", 4)
    dataset = export(run_dir, "recoworld/few-v0")
    batches = -(-dataset.total_episodes // 4)
    # Per batch: the observations' Dict and its three spaces, and the actions.
    assert dataset.total_episodes > 8 and len(encodings) == 5 * batches and len(measures) == 1
    assert dataset.storage.metadata["dataset_size"] == dataset.storage.get_size() > 0


def test_a_minari_release_of_unknown_files_is_written_by_minari_itself_with_the_same_episodes(run_dir, datasets,
                                                                                                monkeypatch):
    expected = export(run_dir, "recoworld/known-v0")
    batched = []
    monkeypatch.setattr(minari_writer, "write_arrow_episodes", lambda *a: batched.append(1))
    monkeypatch.setattr(minari_writer, "ARROW_LAYOUT_RELEASES", ())
    dataset = export(run_dir, "recoworld/unknown-v0")
    assert batched == [] and dataset.total_steps == expected.total_steps
    known, unknown = (files_of(datasets / "recoworld" / name / "data") for name in ("known-v0", "unknown-v0"))
    assert known.keys() == unknown.keys()
    assert [f for f in known if f != "metadata.json" and known[f] != unknown[f]] == []


def ended_pid() -> int:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def left_export(folder: Path, writer: dict | None = None) -> Path:
    """A temporary export folder as a writer leaves it when killed midway."""
    (folder / "data" / "0").mkdir(parents=True)
    (folder / "data" / "metadata.json").write_text('{"total_episodes": 0')
    if writer is not None:
        (folder / minari_writer.WRITER_FILE).write_text(json.dumps({"state": "running", **writer}))
    return folder


def test_killed_exports_of_any_id_are_removed_by_the_next_export_once_their_writer_has_ended(run_dir, datasets):
    dead, here = ended_pid(), socket.gethostname()
    left = [left_export(datasets / "recoworld" / f".other-v3.{dead}.tmp", {"host": here, "pid": dead}),
            left_export(datasets / f".top-v0.{dead}.tmp"),  # no namespace; no writer file (an earlier release's)
            left_export(datasets / "lab" / "team" / f".deep-v1.{dead}.tmp", {"host": here, "pid": dead})]
    running = os.getppid()
    kept = [left_export(datasets / "recoworld" / f".live-v0.{running}.tmp", {"host": here, "pid": running}),
            left_export(datasets / "recoworld" / f".named-v0.{running}.tmp"),
            # Shared with another machine: its process is unknown here, whatever its id.
            left_export(datasets / "recoworld" / f".remote-v0.{dead}.tmp", {"host": f"not-{here}", "pid": dead}),
            # This process's own (another thread may write it).
            left_export(datasets / "recoworld" / f".mine-v0.{os.getpid()}.tmp")]
    assert cli(["export", "minari", str(run_dir), "--dataset-id", "recoworld/next-v0"]) == 0
    assert [p for p in left if p.exists()] == [] and all(p.is_dir() for p in kept)
    assert set(minari.list_local_datasets()) == {"recoworld/next-v0"}


def test_a_temporary_export_names_its_writer_and_the_dataset_does_not(run_dir, datasets, monkeypatch):
    write, seen = minari_writer.write_arrow_episodes, []

    def watched(storage, episodes):
        seen.append(json.loads((storage.data_path.parent / minari_writer.WRITER_FILE).read_text()))
        write(storage, episodes)

    monkeypatch.setattr(minari_writer, "write_arrow_episodes", watched)
    export(run_dir, "recoworld/watched-v0")
    assert seen == [{"state": "running", "host": socket.gethostname(), "pid": os.getpid(),
                     "dataset_id": "recoworld/watched-v0"}]
    assert sorted(p.name for p in (datasets / "recoworld" / "watched-v0").iterdir()) == ["data"]
