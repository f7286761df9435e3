"""Writing a new Minari dataset whole or not at all (:func:`write_dataset`), in Minari's
Arrow format, and removing what killed writers left (:func:`remove_dead_exports`).

Minari's Arrow storage writes one episode at a time (``ArrowStorage.update_episodes``): a
pyarrow dataset write, a metadata file rewritten and, since Minari 0.5.2, the whole dataset
folder measured again, per episode. :func:`write_arrow_episodes` writes the same files, byte
for byte, encoding many episodes at once and measuring the folder once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import numpy as np

from recoworld.apps.status import writer_running
from recoworld.logs import TEMPORARY_SUFFIX, process_running, replacing

#: Episodes encoded together at most, and rows unless one episode has more: the memory an
#: export takes beyond its log's.
EPISODES_PER_BATCH = 1000
ROWS_PER_BATCH = 65_536
#: The Minari releases whose Arrow files :func:`write_arrow_episodes` reproduces, byte for
#: byte (``tests/test_minari.py`` compares them with the installed Minari's): 0.5.4, whose
#: writer is still that of Minari's main branch (commit 1880118a); 0.5.0 to 0.5.3 encode
#: without ``jpeg_encoding``. Other releases write through Minari's own ``update_episodes``.
ARROW_LAYOUT_RELEASES = ("0.5.4",)
#: The file, in an export's temporary folder, naming the process that writes it.
WRITER_FILE = "recoworld_export_writer.json"
#: An export's temporary folder: ``.<dataset name>-v<N>.<pid>.tmp``, beside the dataset's
#: folder (:func:`recoworld.logs.temporary_path`).
TEMPORARY_EXPORT = re.compile(rf"\.[-_\w]+-v\d+\.(?P<pid>\d+){re.escape(TEMPORARY_SUFFIX)}")


def write_dataset(dataset_id: str, episodes: Sequence, *, observation_space, action_space, metadata: dict) -> Path:
    """Write ``episodes`` (``EpisodeBuffer``) as the new Minari dataset ``dataset_id``, in
    Minari's Arrow format, with ``metadata`` (``algorithm_name``, ``description``) besides
    what Minari records; returns its folder.

    The dataset is written whole or not at all: into a hidden temporary folder beside its
    own (which :func:`minari.list_local_datasets` skips), renamed to the id's folder at the
    end. An error or Ctrl-C deletes the temporary folder; a killed export leaves it under
    its ``.tmp`` name, and the next export into the same Minari folder deletes it, whatever
    its id, once its writer has ended (:func:`remove_dead_exports`).

    Raises:
        FileExistsError: a dataset took the id while this one was written.
    """
    import minari
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.dataset.minari_storage import MinariStorage
    from minari.namespace import create_namespace, list_local_namespaces
    from minari.storage import get_dataset_path

    path = get_dataset_path(dataset_id)
    namespace = parse_dataset_id(dataset_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)  # as minari.create_dataset_from_buffers does
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_exports(get_dataset_path())
    with replacing(path, folder=True) as folder:
        writer = folder / WRITER_FILE
        writer.write_text(json.dumps({"state": "running", "host": socket.gethostname(), "pid": os.getpid(),
                                      "dataset_id": dataset_id}))
        storage = MinariStorage.new(folder / "data", observation_space=observation_space, action_space=action_space,
                                    data_format="arrow")
        # What minari.create_dataset_from_buffers records, less its warnings about an env, an
        # author and a code link: the dataset's encoding is not an env's, and a run has neither.
        storage.update_metadata({"dataset_id": dataset_id, **metadata, "minari_version": minari.__version__})
        if minari.__version__ in ARROW_LAYOUT_RELEASES:
            write_arrow_episodes(storage, episodes)
        else:
            with _size_measured_once(storage):
                storage.update_episodes(episodes)
        if path.exists():
            raise FileExistsError(f"Minari dataset {dataset_id!r} appeared in {get_dataset_path()} while this "
                                  "export ran (another export of the same id?); it is left as it is, and this "
                                  "export is not written: give another --dataset-id")
        writer.unlink()
    return path


def write_arrow_episodes(storage, episodes: Iterable) -> None:
    """Add ``episodes`` (``EpisodeBuffer``, distinct ids) to ``storage`` (a Minari
    ``ArrowStorage``) as its ``update_episodes`` does, file for file: Minari's encoding of
    up to :data:`EPISODES_PER_BATCH` episodes at once, then each episode's files, and the
    dataset's size measured once at the end.

    It takes the episodes Minari's encoding does with one padding row per episode: arrays
    (or dicts and tuples of arrays) of observations and actions.
    """
    total_episodes, total_steps = storage.total_episodes, storage.total_steps
    for group in _batches(episodes):
        rows = _record_batch(storage, group)
        start = 0
        for episode in group:
            episode_id = total_episodes if episode.id is None else episode.id
            total_episodes = max(total_episodes, episode_id + 1)
            total_steps += len(episode.rewards)
            length = _length(episode.observations)
            _write_episode(storage, episode, episode_id, rows.slice(start, length))
            start += length
    storage.update_metadata({"total_steps": total_steps, "total_episodes": total_episodes,
                             "dataset_size": storage.get_size()})


def _batches(episodes: Iterable) -> Iterator[list]:
    """``episodes`` in consecutive groups of at most :data:`EPISODES_PER_BATCH` episodes and
    :data:`ROWS_PER_BATCH` rows (an episode with more rows alone), each with infos in all its
    episodes or in none (a batch has one schema)."""
    group: list = []
    rows = 0
    for episode in episodes:
        size = len(episode.rewards) + 1
        if group and (len(group) == EPISODES_PER_BATCH or rows + size > ROWS_PER_BATCH
                      or bool(group[0].infos) != bool(episode.infos)):
            yield group
            group, rows = [], 0
        group.append(episode)
        rows += size
    if group:
        yield group


def _write_episode(storage, episode, episode_id: int, rows) -> None:
    """The episode's files, as ``ArrowStorage.update_episodes`` writes them: its rows in
    ``<id>/part-0.arrow`` (what ``pyarrow.dataset.write_dataset`` partitioned by
    ``episode_id`` writes), and its ``<id>/metadata.json``."""
    import pyarrow as pa
    from minari.dataset._storages.arrow_storage import NumpyEncoder

    folder = storage.data_path / str(episode_id)
    folder.mkdir(exist_ok=True)
    # Fresh buffers, as an episode encoded alone has: a slice of the batch's would carry
    # bytes of its neighbours into the file.
    rows = rows.take(pa.array(np.arange(rows.num_rows)))
    with pa.ipc.new_file(folder / "part-0.arrow", rows.schema) as file:
        file.write_batch(rows)
    metadata: dict = {"id": episode_id, "total_steps": len(episode.rewards)}
    if episode.seed is not None:
        metadata["seed"] = episode.seed
    if episode.options is not None:
        metadata["options"] = episode.options
    with open(folder / "metadata.json", "w") as file:
        json.dump(metadata, file, cls=NumpyEncoder)


def _record_batch(storage, group: list):
    """The episodes of ``group`` as one ``pyarrow.RecordBatch``: the columns Minari writes
    in each episode's file (``ArrowStorage.update_episodes``), one episode after another."""
    import pyarrow as pa
    from minari.dataset._storages.arrow_storage import _encode_info, _encode_space

    observations = [episode.observations for episode in group]
    lengths = np.array([_length(o) for o in observations])
    pads = lengths - [len(episode.rewards) for episode in group]
    is_step = np.ones(lengths.sum(), bool)
    is_step[_padding_rows(lengths, pads)] = False

    def padded(values: list) -> np.ndarray:  # as Minari pads an episode: zeros after its steps
        steps = np.concatenate([np.asarray(v) for v in values])
        rows = np.zeros((len(is_step), *steps.shape[1:]), steps.dtype)
        rows[is_step] = steps
        return rows

    columns = {
        "observations": _encode_space(storage.observation_space, _concatenate(observations),
                                      jpeg_encoding=storage._jpeg_encoding),
        "actions": _encode_space(storage.action_space, padded([e.actions for e in group]),
                                 jpeg_encoding=storage._jpeg_encoding),
        "rewards": padded([np.asarray(e.rewards).reshape(-1) for e in group]),
        "terminations": padded([np.asarray(e.terminations).reshape(-1) for e in group]),
        "truncations": padded([np.asarray(e.truncations).reshape(-1) for e in group]),
    }
    if group[0].infos:
        columns["infos"] = _encode_info(_concatenate([episode.infos for episode in group]))
    return pa.RecordBatch.from_pydict(columns)


def _padding_rows(lengths: np.ndarray, pads: np.ndarray) -> np.ndarray:
    """The rows of episodes laid one after another, ``lengths`` rows each, whose last
    ``pads`` rows are padding."""
    first_padding = np.repeat(np.cumsum(lengths) - pads, pads)
    return first_padding + np.arange(pads.sum()) - np.repeat(np.cumsum(pads) - pads, pads)


def _concatenate(parts: list):
    """Episodes' observations (or infos), each a dict, tuple, list or array, joined in one."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: _concatenate([part[key] for part in parts]) for key in first}
    if isinstance(first, tuple):
        return tuple(_concatenate([part[i] for part in parts]) for i in range(len(first)))
    if isinstance(first, list):
        return list(chain.from_iterable(parts))
    return np.concatenate([np.asarray(part) for part in parts])


def _length(observations) -> int:
    while isinstance(observations, (dict, tuple)):
        observations = next(iter(observations.values())) if isinstance(observations, dict) else observations[0]
    return len(observations)


@contextmanager
def _size_measured_once(storage):
    """Has Minari measure the dataset's size once, after the block, instead of after every
    episode written in it (for a Minari release whose files :func:`write_arrow_episodes`
    does not reproduce, which writes through Minari's own ``update_episodes``).

    Minari's Arrow storage re-measures the whole dataset folder after each episode it adds
    (``ArrowStorage.update_episode_metadata`` calls ``get_size``, which stats every file), so
    writing N episodes takes time ~N^2. It came with Minari PR #251 ("auto update dataset
    size", https://github.com/Farama-Foundation/Minari/pull/251, released in Minari 0.5.2) and
    is still so in Minari 0.5.4. Scoped to ``storage``, this instance, for the block: other
    storages, and this one after the block, measure as Minari does.
    """
    storage.get_size = lambda: 0.0  # an instance attribute, over the class's method
    try:
        yield
    finally:
        del storage.get_size
    storage.update_metadata({"dataset_size": storage.get_size()})


def remove_dead_exports(root: Path) -> list[Path]:
    """Delete the temporary folders that killed exports left anywhere in the Minari datasets
    folder ``root`` (beside any dataset id), and return them.

    One is deleted only when its writer is known to have ended: the process that its
    :data:`WRITER_FILE` names ran on this machine and no longer runs. A folder whose writer
    runs on another machine (a datasets folder shared over the network) is kept, and so is
    one of this process (another thread may be writing it). A folder without a readable
    writer file (a writer killed before it wrote one, or an earlier release's) is judged by
    the process id in its name, on this machine.
    """
    removed = []
    for folder in _temporary_exports(root):
        if not _writer_may_run(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _temporary_exports(folder: Path) -> Iterator[Path]:
    """The temporary export folders in ``folder`` and its namespaces, not looking inside
    datasets (a folder with ``data/``, as :func:`minari.list_local_datasets` tells them)."""
    for entry in os.scandir(folder):
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith("."):
            if TEMPORARY_EXPORT.fullmatch(entry.name):
                yield Path(entry.path)
        elif not os.path.isdir(os.path.join(entry.path, "data")):
            yield from _temporary_exports(Path(entry.path))


def _writer_may_run(folder: Path) -> bool:
    try:
        writer = json.loads((folder / WRITER_FILE).read_text())
    except (OSError, ValueError):
        writer = None
    if not isinstance(writer, dict):
        pid = int(TEMPORARY_EXPORT.fullmatch(folder.name)["pid"])
        return pid == os.getpid() or process_running(pid)
    if writer.get("host") != socket.gethostname():
        return True  # whether it runs is unknown here
    return writer.get("pid") == os.getpid() or writer_running(writer)
