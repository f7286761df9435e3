"""``recoworld export minari RUN_DIR``: a run's episode log as a Minari dataset for offline RL.

Each user episode of the log (an agent, a seed, a user slot and the slot's episode) becomes
one Minari episode of ``T`` steps. The encoding, which the dataset's spaces record:

- **Action**: the slate shown at the step, ``MultiDiscrete([n_items] * K)``: the catalog
  ids of the ``K`` items, top to bottom.
- **Observation** (``T + 1`` per episode: the one before each step, then the one after the
  last), a ``Dict`` of what the recommender saw before choosing the slate, rebuilt from the log:

  - ``history_items`` ``(H,)`` int64: the user's last ``H`` clicked items in this episode,
    newest first (within one slate, top first: the env's ``history_items``), ``-1`` padded
    (``H``: ``--history``, by default the run's ``env.history_length``);
  - ``session`` ``(2,)`` int64: sessions the user completed, and steps already served in
    the current session;
  - ``instruction_in_force`` ``Discrete(2)``: an instruction of the user was in force.

  (The candidates the agent chose from are in the log only with
  ``experiment.log_candidates=true``; the slate's items are the action.)
- **Reward**: the env's reward of the step, as logged.
- **Termination**: the user churned at the step. **Truncation**: the episode reached
  ``env.max_steps``, or the run ended before the user's episode did (its last step).
- **Infos**: what the users said, when the log holds any words, as Gymnasium lays infos out
  (``T + 1`` per episode: the reset's, then each step's): ``infos[name][t + 1]`` holds the
  words of step ``t`` and ``infos[name][0]`` is ``""``; ``""`` also where the user said
  nothing (Minari's Arrow storage keeps strings, not nulls: a null-only column would change
  the file's schema). One key per kind of words the log holds:

  - ``instruction_text``: the reflective instruction the user voiced at the step (the
    observation after it shows it in force);
  - ``mindset_text`` (LLM users): the user's mindset in their own words after the step;
  - ``item_reasons`` (LLM users), ``(T + 1, K)``: the reason the user gave for each item
    of the slate, top to bottom.

  Minari reads them back as numpy string arrays: ``episode.infos["mindset_text"][t + 1]``.

Episodes are ordered by agent, seed, user slot and episode; each carries the env seed of its
user (``episode_seed``) as its Minari ``seed``. Minari writes the dataset under
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), in its Arrow format, and
:func:`write_dataset` makes it appear whole or not at all: an export that fails, is stopped
by Ctrl-C or is killed leaves no dataset under its id (a killed export's hidden temporary
folder is removed by the next export into the same Minari folder, once its process has
ended). The dataset of a run that did not complete holds the rollouts complete so far, and
its description says so.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recoworld.apps.export.minari_episodes import HISTORY, episode_buffers, observation_space
from recoworld.apps.export.minari_writer import write_dataset


def default_dataset_id(run_dir: Path, segment: str | None = None) -> str:
    """``recoworld/<run directory's name>-v0``, or ``recoworld/<run>-<segment>-v0`` for one of
    its segments (a dataset of its own, not a version of the run's), with the characters
    Minari refuses replaced."""
    parts = {"run": run_dir.resolve().name, **({} if segment is None else {"segment": segment})}
    name = "-".join(re.sub(r"[^-_\w]", "_", part).strip("-_") or kind for kind, part in parts.items())
    return f"recoworld/{name}-v0"


def export_minari(run_dir: str | Path, dataset_id: str | None = None, *, agent: str | None = None,
                  history: int | None = None, segment: str | None = None):
    """Write the run's log as the Minari dataset ``dataset_id`` and return it (a ``MinariDataset``).

    The dataset is written whole or not at all (:func:`write_dataset`). The log is that of
    :func:`~recoworld.apps.run.run_log.read_run_log`: a rollout listed as complete but
    missing or damaged on disk is refused, and a run that did not complete gives the
    rollouts complete so far, which the dataset's description then says.

    Args:
        run_dir: a ``recoworld run`` directory (its catalog gives ``n_items``).
        dataset_id: Minari's ``(namespace/)name-vN`` (default :func:`default_dataset_id`).
        agent: export only this agent's episodes (one behaviour policy); default all.
        history: clicked items kept in ``history_items`` (default: the run's
            ``env.history_length``, what its agents saw; 10 where its config does not say).
        segment: export the episodes of this one of the run's ``experiment.segments``.

    Raises:
        FileNotFoundError, FileExistsError, ValueError: the run, the id, an argument or the
            datasets folder is refused (the message names it and the fix); nothing is written.
        DatasetNotWritten: writing in the datasets folder failed (it cannot be written, the
            disk is full); the message names the folder and the fix, and nothing is left
            under the id.
    """
    import minari

    from recoworld.apps.run.run_log import run_status

    run_dir = Path(run_dir)
    return minari.load_dataset(_export(run_dir, run_status(run_dir), dataset_id, agent=agent, history=history,
                                       segment=segment))


def _export(run_dir: Path, status: dict | None, dataset_id: str | None, *, agent: str | None,
            history: int | None, segment: str | None) -> str:
    """:func:`export_minari` of the run whose ``status.json`` the caller read as ``status``,
    up to the dataset written: returns its id."""
    from gymnasium import spaces

    from recoworld.apps.run.run_log import read_run_log_at
    from recoworld.apps.view.data import run_catalog, run_config

    if history is not None and (not isinstance(history, int) or history < 1):
        raise ValueError(f"history={history!r}: give the number of clicked items per observation, an integer >= 1")
    dataset_id = dataset_id or default_dataset_id(run_dir, segment)
    _check_new_dataset_id(dataset_id)  # before the log is read: a refusal costs nothing
    catalog = run_catalog(run_dir)  # first: a folder that is not a run is named as such
    if history is None:
        history = int(run_config(run_dir)[0].get("env", {}).get("history_length") or HISTORY)
    run = read_run_log_at(run_dir, status, segment)
    log = run.log
    agents = lineup_order(run_dir, status, set(log["agent"]))
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
    # Built before the write, so that only the write's own OSError is blamed on the datasets folder.
    episodes, space = episode_buffers(log, history), observation_space(history)
    try:
        write_dataset(dataset_id, episodes, observation_space=space,
                      action_space=spaces.MultiDiscrete(np.full(slate_size, catalog.n_items, dtype=np.int64)),
                      metadata={"algorithm_name": ", ".join(agents), "description": description})
    except FileExistsError:  # another export took the id meanwhile: its own message
        raise
    except OSError as err:
        raise DatasetNotWritten(f"could not write the dataset {dataset_id!r} in the Minari datasets "
                                f"folder {_datasets_folder_name()} ({err}); nothing is left under the id: free "
                                f"space there, or {DATASETS_FOLDER_FIX}") from err
    return dataset_id


def lineup_order(run_dir: Path, status: dict | None, agents: set[str]) -> list[str]:
    """``agents`` in the order of the run's lineup (its saved config in ``status.json``, else
    its ``lineup.yaml``), any it does not name after them, sorted; all sorted without either.
    Not the log's order: that is the order in which the rollouts finished, which a parallel
    run (``experiment.executor=ray``) does not fix, and the same run would export another
    ``algorithm_name``."""
    lineup = list(((status or {}).get("config") or {}).get("agents") or {})
    if not lineup and (run_dir / "lineup.yaml").is_file():
        import yaml

        try:
            saved = yaml.safe_load((run_dir / "lineup.yaml").read_text())
        except yaml.YAMLError:
            saved = None  # a damaged file orders nothing: sorted
        lineup = list(saved) if isinstance(saved, dict) else []
    return [name for name in lineup if name in agents] + sorted(agents - set(lineup))


class DatasetNotWritten(OSError):
    """The dataset could not be written in the Minari datasets folder (a folder that cannot
    be written, a full disk): the message names the folder and the fix; nothing is left
    under the id."""


#: Where the fix to an unusable datasets folder lies.
DATASETS_FOLDER_FIX = ("set MINARI_DATASETS_PATH to a folder you can write (unset, Minari uses "
                       "~/.minari/datasets)")


def _datasets_folder() -> Path:
    """Minari's datasets folder (``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``),
    made if missing.

    Raises:
        ValueError: the folder cannot be made (a path through a file, a file system that
            refuses it); the message names the folder and :data:`DATASETS_FOLDER_FIX`.
    """
    from minari.storage import get_dataset_path

    try:
        return get_dataset_path()
    except OSError as err:  # Minari makes the folder itself, and says no more than the OS
        raise ValueError(f"the Minari datasets folder {_datasets_folder_name()} cannot be made ({err.strerror}: "
                         f"{err.filename}): {DATASETS_FOLDER_FIX}") from None


def _datasets_folder_name() -> str:
    value = os.environ.get("MINARI_DATASETS_PATH")
    return "~/.minari/datasets" if value is None else f"{value} (MINARI_DATASETS_PATH)"


def _check_new_dataset_id(dataset_id: str) -> None:
    """Refuse an id Minari cannot create, one that names a folder already there, or a
    datasets folder that cannot be made (:func:`_datasets_folder`)."""
    from minari.dataset.minari_dataset import DATASET_ID_RE
    from minari.dataset.minari_storage import MinariStorage
    from minari.storage import get_dataset_path

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None:
        raise ValueError(f"dataset id {dataset_id!r} is not (namespace/)name-vN: give e.g. --dataset-id "
                         "recoworld/smoke-v0 (letters, digits, '-' and '_', then a version)")
    _datasets_folder()
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recoworld export minari", description="Write a run's episodes as a Minari dataset for "
        "offline RL (minari.load_dataset reads it; written under $MINARI_DATASETS_PATH).")
    parser.add_argument("run_dir", help="directory of a `recoworld run`")
    parser.add_argument("--dataset-id", help="Minari id, (namespace/)name-vN (default: recoworld/<run name>-v0, "
                        "with --segment recoworld/<run name>-<segment>-v0)")
    parser.add_argument("--agent", help="export only this agent's episodes (default: every agent of the run)")
    parser.add_argument("--history", type=int, help="clicked items per observation (default: the run's "
                        f"env.history_length, what its agents saw; {HISTORY} where its config does not say)")
    parser.add_argument("--segment", metavar="NAME", help="export the episodes of this one of the run's "
                        "experiment.segments (default: the run's whole population)")
    args = parser.parse_args(argv)
    import minari

    from recoworld.apps.run.run_log import run_note, run_status

    run_dir = Path(args.run_dir)
    try:
        status = run_status(run_dir)  # once: the warning and the dataset describe the same state
        # First, as a long export should not hide it (a run without a complete rollout is refused).
        if status and status["parts"]["complete"] and (note := run_note(run_dir, status)):
            print(f"recoworld export minari: warning: {note}", file=sys.stderr)
        dataset_id = _export(run_dir, status, args.dataset_id, agent=args.agent, history=args.history,
                             segment=args.segment)
    except KeyboardInterrupt:
        # write_dataset renames the whole dataset into place last, and deletes its temporary when stopped.
        print(f"recoworld export minari: stopped before the dataset was complete; no dataset under "
              f"{args.dataset_id or default_dataset_id(run_dir, args.segment)}", file=sys.stderr)
        raise
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"recoworld export minari: {error}", file=sys.stderr)
        return 2
    except DatasetNotWritten as error:
        print(f"recoworld export minari: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the run's files that cannot be read, say
        print(f"recoworld export minari: could not export: {error}", file=sys.stderr)
        return 1
    try:
        dataset = minari.load_dataset(dataset_id)
    except KeyboardInterrupt:
        print(f"recoworld export minari: stopped after the dataset {dataset_id} was written whole", file=sys.stderr)
        raise
    print(f"Minari dataset {dataset.spec.dataset_id}: {dataset.total_episodes} episodes, "
          f"{dataset.total_steps} steps (minari.load_dataset({dataset.spec.dataset_id!r}))")
    return 0
