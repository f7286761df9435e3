"""``recoworld export minari RUN_DIR``: a run's episode log as a Minari dataset for offline RL.

Each user episode of the log (an agent, a seed, a user slot and the slot's episode) becomes
one Minari episode of ``T`` steps. The encoding, which the dataset's spaces record:

- **Action**: the slate shown at the step, ``MultiDiscrete([n_items] * K)``: the catalog
  ids of the ``K`` items, top to bottom.
- **Observation** (``T + 1`` per episode: the one before each step, then the one after the
  last), a ``Dict`` of what the recommender saw before choosing the slate, rebuilt from the log:

  - ``history_items`` ``(H,)`` int64: the user's last ``H`` clicked items in this episode,
    newest first (within one slate, the lower position is the newer click), ``-1`` padded;
  - ``session`` ``(2,)`` int64: sessions the user completed, and steps already served in
    the current session;
  - ``instruction_in_force`` ``Discrete(2)``: an instruction of the user was in force.

  (The candidates the agent chose from are in the log only with
  ``experiment.log_candidates=true``; the slate's items are the action.)
- **Reward**: the env's reward of the step, as logged.
- **Termination**: the user churned at the step. **Truncation**: the episode reached
  ``env.max_steps``, or the run ended before the user's episode did (its last step).

Episodes are ordered by agent, seed, user slot and episode; each carries the env seed of its
user (``episode_seed``) as its Minari ``seed``. Minari writes the dataset under
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), in its Arrow format, and
:func:`write_dataset` makes it appear whole or not at all: an export that fails, is stopped
by Ctrl-C or is killed leaves no dataset under its id. The dataset of a run that did not
complete holds the rollouts complete so far, and its description says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.logs import TEMPORARY_SUFFIX, list_column, process_running, replacing

#: Clicked items kept in ``history_items`` (the Slate env's default ``history_length``).
HISTORY = 10


def observation_space(history: int):
    from gymnasium import spaces

    return spaces.Dict({
        "history_items": spaces.Box(-1, np.iinfo(np.int64).max, (history,), dtype=np.int64),
        "session": spaces.Box(0, np.iinfo(np.int64).max, (2,), dtype=np.int64),
        "instruction_in_force": spaces.Discrete(2),
    })


def episode_buffers(log: pd.DataFrame, history: int = HISTORY) -> list:
    """One ``minari.EpisodeBuffer`` per user episode of ``log`` (see the module docstring)."""
    from minari.data_collector import EpisodeBuffer

    log = log.sort_values(["agent", "seed", "user", "episode", "step"], kind="stable").reset_index(drop=True)
    slates, clicked = list_column(log, "slate").astype(np.int64), list_column(log, "clicked").astype(bool)
    buffers = []
    for number, rows in enumerate(log.groupby(["agent", "seed", "user", "episode"], sort=False).indices.values()):
        episode = log.iloc[rows]
        terminations = episode["terminated"].to_numpy(bool)
        truncations = episode["truncated"].to_numpy(bool).copy()
        truncations[-1] |= not terminations[-1]  # the run's end cuts an episode still going
        buffers.append(EpisodeBuffer(
            id=number, seed=int(episode["episode_seed"].iat[0]),
            observations=_observations(episode, slates[rows], clicked[rows], history),
            actions=slates[rows], rewards=episode["reward"].to_numpy(np.float64).tolist(),
            terminations=terminations.tolist(), truncations=truncations.tolist()))
    return buffers


def _observations(episode: pd.DataFrame, slates: np.ndarray, clicked: np.ndarray, history: int) -> dict:
    steps = len(episode)
    clicks: list[int] = []  # newest first
    items = np.full((steps + 1, history), -1, dtype=np.int64)
    for t in range(steps + 1):
        items[t, :min(history, len(clicks))] = clicks[:history]
        if t < steps:
            clicks[:0] = slates[t][clicked[t]][::-1].tolist()
    session = np.zeros((steps + 1, 2), dtype=np.int64)
    session[:steps, 0] = episode["session"].to_numpy()
    session[:steps, 1] = episode["session_step"].to_numpy()
    last = episode.iloc[-1]
    ended = bool(last["left_session"])
    session[steps] = (int(last["session"]) + ended, 0 if ended else int(last["session_step"]) + 1)
    in_force = episode["instruction_in_force"].to_numpy(np.int64)
    # After the last step: in force if the instruction still held or was just voiced.
    after = int(bool(in_force[-1]) or pd.notna(last["instruction_text"]))
    return {"history_items": items, "session": session, "instruction_in_force": np.append(in_force, after)}


def default_dataset_id(run_dir: Path) -> str:
    """``recoworld/<run directory's name>-v0``, with the characters Minari refuses replaced."""
    name = re.sub(r"[^-_\w]", "_", run_dir.resolve().name).strip("-_") or "run"
    return f"recoworld/{name}-v0"


def export_minari(run_dir: str | Path, dataset_id: str | None = None, *, agent: str | None = None,
                  history: int = HISTORY, segment: str | None = None):
    """Write the run's log as the Minari dataset ``dataset_id`` and return it (a ``MinariDataset``).

    The dataset is written whole or not at all (:func:`write_dataset`). The log is that of
    :func:`~recoworld.apps.run.run_log.read_run_log`: a rollout listed as complete but
    missing or damaged on disk is refused, and a run that did not complete gives the
    rollouts complete so far, which the dataset's description then says.

    Args:
        run_dir: a ``recoworld run`` directory (its catalog gives ``n_items``).
        dataset_id: Minari's ``(namespace/)name-vN`` (default :func:`default_dataset_id`).
        agent: export only this agent's episodes (one behaviour policy); default all.
        history: clicked items kept in ``history_items``.
        segment: export the episodes of this one of the run's ``experiment.segments``.

    Raises:
        FileNotFoundError, FileExistsError, ValueError: the run, the id or an argument is
            refused (the message names it and the fix); nothing is written.
    """
    import minari
    from gymnasium import spaces

    from recoworld.apps.view.data import run_catalog
    from recoworld.apps.run.run_log import read_run_log

    if not isinstance(history, int) or history < 1:
        raise ValueError(f"history={history!r}: give the number of clicked items per observation, an integer >= 1")
    run_dir = Path(run_dir)
    dataset_id = dataset_id or default_dataset_id(run_dir)
    _check_new_dataset_id(dataset_id)  # before the log is read: a refusal costs nothing
    catalog = run_catalog(run_dir)  # first: a folder that is not a run is named as such
    run = read_run_log(run_dir, segment)
    log = run.log
    agents = list(dict.fromkeys(log["agent"]))
    if agent is not None:
        if agent not in agents:
            raise ValueError(f"agent={agent!r} is not in the log of {run_dir}; its agents are {agents}")
        log, agents = log[log["agent"] == agent], [agent]
    if log.empty:
        raise ValueError(f"the log of {run_dir} holds no step to export")
    name = run_dir.resolve().name + ("" if segment is None else f", segment {segment}")
    description = (f"RecoWorld run {name}: slates (catalog ids) shown to simulated users; see "
                   "recoworld.apps.export.minari_dataset for the encoding.")
    if run.note:
        description += f" Partial: {run.note}."
    slate_size = len(log["slate"].iat[0])
    write_dataset(dataset_id, episode_buffers(log, history), observation_space=observation_space(history),
                  action_space=spaces.MultiDiscrete(np.full(slate_size, catalog.n_items, dtype=np.int64)),
                  metadata={"algorithm_name": ", ".join(agents), "description": description})
    return minari.load_dataset(dataset_id)


def _check_new_dataset_id(dataset_id: str) -> None:
    """Refuse an id Minari cannot create, or one that names a folder already there."""
    from minari.dataset.minari_dataset import DATASET_ID_RE
    from minari.dataset.minari_storage import MinariStorage
    from minari.storage import get_dataset_path

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None:
        raise ValueError(f"dataset id {dataset_id!r} is not (namespace/)name-vN: give e.g. --dataset-id "
                         "recoworld/smoke-v0 (letters, digits, '-' and '_', then a version)")
    path = get_dataset_path(dataset_id)
    if not path.exists():
        return
    another = f"give another --dataset-id (a new version, -v{int(match.group('version')) + 1})"
    try:
        MinariStorage.read_raw_metadata(path / "data")
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        # `minari delete` lists only readable datasets, so it cannot remove this one.
        raise FileExistsError(f"{path} holds no whole Minari dataset ({type(err).__name__}: {err}; an export killed "
                              f"by an earlier release leaves such a folder): {another}, or delete the folder "
                              f"{path}") from None
    raise FileExistsError(f"Minari dataset {dataset_id!r} already exists in {get_dataset_path()}: {another}, or "
                          f"delete it first (minari delete {dataset_id})")


def write_dataset(dataset_id: str, episodes: list, *, observation_space, action_space, metadata: dict) -> Path:
    """Write ``episodes`` (``EpisodeBuffer``) as the new Minari dataset ``dataset_id``, in
    Minari's Arrow format, with ``metadata`` (``algorithm_name``, ``description``) besides
    what Minari records; returns its folder.

    The dataset is written whole or not at all: into a hidden temporary folder beside its
    own (which :func:`minari.list_local_datasets` skips), renamed to the id's folder at the
    end. An error or Ctrl-C deletes the temporary folder; a killed export leaves it under
    its ``.tmp`` name, and the next export of the id deletes it once its process has ended.

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
    _remove_dead_exports(path)
    with replacing(path, folder=True) as folder:
        storage = MinariStorage.new(folder / "data", observation_space=observation_space, action_space=action_space,
                                    data_format="arrow")
        # What minari.create_dataset_from_buffers records, less its warnings about an env, an
        # author and a code link: the dataset's encoding is not an env's, and a run has neither.
        storage.update_metadata({"dataset_id": dataset_id, **metadata, "minari_version": minari.__version__})
        with _size_measured_once(storage):
            storage.update_episodes(episodes)
        if path.exists():
            raise FileExistsError(f"Minari dataset {dataset_id!r} appeared in {get_dataset_path()} while this "
                                  "export ran (another export of the same id?); it is left as it is, and this "
                                  "export is not written: give another --dataset-id")
    return path


@contextmanager
def _size_measured_once(storage):
    """Has Minari measure the dataset's size once, after the block, instead of after every
    episode written in it.

    Minari's Arrow storage re-measures the whole dataset folder after each episode it adds
    (``ArrowStorage.update_episode_metadata`` calls ``get_size``, which stats every file), so
    writing N episodes takes time ~N^2. It came with Minari PR #251 ("auto update dataset
    size", https://github.com/Farama-Foundation/Minari/pull/251, released in Minari 0.5.2) and is still so
    in Minari 0.5.4 and on its main branch (commit 1880118a, July 2026); no upstream issue
    tracks it yet. Scoped to ``storage``, this instance, for the block: other storages, and
    this one after the block, measure as Minari does. ``tests/test_minari.py`` checks both
    that an export measures once and whether the installed Minari still needs this: remove
    it when that test says so.
    """
    storage.get_size = lambda: 0.0  # an instance attribute, over the class's method
    try:
        yield
    finally:
        del storage.get_size
    storage.update_metadata({"dataset_size": storage.get_size()})


def _remove_dead_exports(path: Path) -> None:
    """Delete the temporary folders that killed exports of ``path`` left beside it."""
    for folder in path.parent.glob(f".{path.name}.*{TEMPORARY_SUFFIX}"):
        pid = folder.name[len(path.name) + 2:-len(TEMPORARY_SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not process_running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recoworld export minari", description="Write a run's episodes as a Minari dataset for "
        "offline RL (minari.load_dataset reads it; written under $MINARI_DATASETS_PATH).")
    parser.add_argument("run_dir", help="directory of a `recoworld run`")
    parser.add_argument("--dataset-id", help="Minari id, (namespace/)name-vN (default: recoworld/<run name>-v0)")
    parser.add_argument("--agent", help="export only this agent's episodes (default: every agent of the run)")
    parser.add_argument("--history", type=int, default=HISTORY, help=f"clicked items per observation ({HISTORY})")
    parser.add_argument("--segment", metavar="NAME", help="export the episodes of this one of the run's "
                        "experiment.segments (default: the run's whole population)")
    args = parser.parse_args(argv)
    from recoworld.apps.run.run_log import run_note, run_status

    run_dir = Path(args.run_dir)
    try:
        status = run_status(run_dir)
        # First, as a long export should not hide it (a run without a complete rollout is refused).
        if status and status["parts"]["complete"] and (note := run_note(run_dir, status)):
            print(f"recoworld export minari: warning: {note}", file=sys.stderr)
        dataset = export_minari(run_dir, args.dataset_id, agent=args.agent, history=args.history,
                                segment=args.segment)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"recoworld export minari: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a datasets folder that cannot be written, a full disk: nothing is left
        print(f"recoworld export minari: could not write the dataset: {error}", file=sys.stderr)
        return 1
    print(f"Minari dataset {dataset.spec.dataset_id}: {dataset.total_episodes} episodes, "
          f"{dataset.total_steps} steps (minari.load_dataset({dataset.spec.dataset_id!r}))")
    return 0
