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
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), in its Arrow format.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.logs import list_column

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
                  history: int = HISTORY):
    """Write the run's log as the Minari dataset ``dataset_id`` and return it (a ``MinariDataset``).

    Args:
        run_dir: a ``recoworld run`` directory (its catalog gives ``n_items``).
        dataset_id: Minari's ``(namespace/)name-vN`` (default :func:`default_dataset_id`).
        agent: export only this agent's episodes (one behaviour policy); default all.
        history: clicked items kept in ``history_items``.
    """
    import minari

    from recoworld.apps.view.data import run_catalog
    from recoworld.logs import read_log

    if not isinstance(history, int) or history < 1:
        raise ValueError(f"history={history!r}: give the number of clicked items per observation, an integer >= 1")
    run_dir = Path(run_dir)
    dataset_id = dataset_id or default_dataset_id(run_dir)
    _check_new_dataset_id(dataset_id)  # before the log is read: a refusal costs nothing
    log = read_log(run_dir)
    agents = list(dict.fromkeys(log["agent"]))
    if agent is not None:
        if agent not in agents:
            raise ValueError(f"agent={agent!r} is not in the log of {run_dir}; its agents are {agents}")
        log, agents = log[log["agent"] == agent], [agent]
    if log.empty:
        raise ValueError(f"the log of {run_dir} holds no step to export")
    n_items, slate_size = run_catalog(run_dir).n_items, len(log["slate"].iat[0])
    with warnings.catch_warnings():
        # The dataset names no env on purpose: its observations are the log's encoding
        # above, not the Slate env's observation dict, so Minari's "no env spec" notes do not apply.
        warnings.filterwarnings("ignore", "`eval_env` is set to None", UserWarning)
        warnings.filterwarnings("ignore", "env_spec is None", UserWarning)
        # A run has no author to name, and its code is the installed recoworld (named in the config).
        warnings.filterwarnings("ignore", "`(author|author_email|code_permalink)` is set to None", UserWarning)
        return _create(minari, run_dir, dataset_id, log, agents, history, n_items, slate_size)


def _check_new_dataset_id(dataset_id: str) -> None:
    """Refuse an id Minari cannot create, or one that names a dataset already there."""
    from minari.dataset.minari_dataset import DATASET_ID_RE
    from minari.storage import get_dataset_path

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None:
        raise ValueError(f"dataset id {dataset_id!r} is not (namespace/)name-vN: give e.g. --dataset-id "
                         "recoworld/smoke-v0 (letters, digits, '-' and '_', then a version)")
    if get_dataset_path(dataset_id).exists():
        raise FileExistsError(f"Minari dataset {dataset_id!r} already exists in {get_dataset_path()}: give another "
                              f"--dataset-id (a new version, -v{int(match.group('version')) + 1}), or delete it first "
                              f"(minari delete {dataset_id})")


def _create(minari, run_dir, dataset_id, log, agents, history, n_items, slate_size):
    import shutil

    from gymnasium import spaces
    from minari.storage import get_dataset_path

    episodes = episode_buffers(log, history)
    try:
        dataset = minari.create_dataset_from_buffers(
            dataset_id, [], observation_space=observation_space(history),
            action_space=spaces.MultiDiscrete(np.full(slate_size, n_items, dtype=np.int64)),
            algorithm_name=", ".join(agents), data_format="arrow",
            description=f"RecoWorld run {run_dir.resolve().name}: slates (catalog ids) shown to simulated users; "
                        "see recoworld.apps.export.minari_dataset for the encoding.")
        storage = dataset.storage
        # Minari 0.5's Arrow storage re-measures the whole dataset folder after each episode
        # it adds, which makes a write of N episodes take time ~N^2 (minutes for a few
        # thousand episodes); the size is measured once, after the last.
        storage.get_size = lambda: 0.0
        try:
            storage.update_episodes(episodes)
        finally:
            del storage.get_size
        storage.update_metadata({"dataset_size": storage.get_size()})
    except BaseException:
        # A dataset cut short would load as a smaller one: none is left (the id was new).
        shutil.rmtree(get_dataset_path(dataset_id), ignore_errors=True)
        raise
    return minari.MinariDataset(storage)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recoworld export minari", description="Write a run's episodes as a Minari dataset for "
        "offline RL (minari.load_dataset reads it; written under $MINARI_DATASETS_PATH).")
    parser.add_argument("run_dir", help="directory of a `recoworld run`")
    parser.add_argument("--dataset-id", help="Minari id, (namespace/)name-vN (default: recoworld/<run name>-v0)")
    parser.add_argument("--agent", help="export only this agent's episodes (default: every agent of the run)")
    parser.add_argument("--history", type=int, default=HISTORY, help=f"clicked items per observation ({HISTORY})")
    args = parser.parse_args(argv)
    try:
        dataset = export_minari(args.run_dir, args.dataset_id, agent=args.agent, history=args.history)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"recoworld export minari: {error}", file=sys.stderr)
        return 2
    from recoworld.apps.run.rundir import unfinished_note

    if note := unfinished_note(args.run_dir):
        print(f"recoworld export minari: warning: {note}", file=sys.stderr)
    print(f"Minari dataset {dataset.spec.dataset_id}: {dataset.total_episodes} episodes, "
          f"{dataset.total_steps} steps (minari.load_dataset({dataset.spec.dataset_id!r}))")
    return 0
