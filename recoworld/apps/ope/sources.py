"""The logs ``recoworld ope evaluate`` reads, as single-action bandit problems or slate logs.

Three layouts (``--format``, guessed from ``--log`` when ``auto``):

* ``recoworld``: the episodes schema of :mod:`recoworld.logs` (``episodes.parquet``, or a
  run directory: the rollouts its ``status.json`` lists as complete, as ``recoworld view``
  reads them, with a warning when the run did not complete), logged with
  ``experiment.log_candidates=true`` and an agent that states its propensities: evaluated
  as slates. A user-step logged twice (a part copied or read twice) is refused, and so is a
  propensity column logged on some rows only.
* ``obd``: the Open Bandit Dataset (``--log obd`` for the cached sample, fetched on first
  use, or ``--log obd:FOLDER`` for a folder in its layout), ``--obd-policy`` and
  ``--obd-campaign`` choosing the file: single impressions with their position.
* ``table``: a CSV or Parquet table with one row per logged round and the columns
  ``action`` (int, ``0..n_actions-1``), ``reward`` (number, or true/false read as 1/0),
  ``pscore`` (the logging policy's probability of the action, at its position when there
  is one, in ``(0, 1]``), optionally ``position`` (int, for lists) and any number of
  ``context_*`` columns (numbers: the context, which the reward model uses); other columns
  are kept for the policy and otherwise ignored (a Parquet file's named index is read as a
  column, as ``recoworld calibrate --data`` reads it). A bad cell is refused with the file, its
  column and row (counted from 1, after the header, as ``recoworld calibrate --data``
  counts); rows that repeat earlier ones in every column although a column is distinct on
  all others are copies, and the report warns of them
  (:func:`repeated_rows`). A ``.csv`` may be compressed (``log.csv.gz``). ``--n-actions``
  defaults to the largest action + 1; item ids that are strings, or integers far from ``0..n-1``, must be mapped to
  ``0..n_actions-1`` first (e.g. with ``pandas.factorize``, the same map the policy uses).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.data.interactions import _column_fix, _read_errors, _unindexed
from recoworld.ope import BanditFeedback, per_action_features
from recoworld.wording import plural

FORMATS = ("auto", "recoworld", "obd", "table")
TABLE_COLUMNS = ("action", "reward", "pscore")
#: Largest reward-model design (rounds x actions x positions x features) built from context.
MAX_CONTEXT_DESIGN = 50_000_000
#: Largest design of action and position indicators (a log without context). It is a
#: broadcast view, scored a chunk of rounds at a time, but every fit and refit of the reward
#: model scores all of it: the Open Bandit sample's is 0.2 billion numbers; a catalog of
#: thousands of actions reaches hundreds of billions, which no run gets through.
MAX_INDICATOR_DESIGN = 500_000_000
#: Fewest rounds of a table log: the reward model behind DM and DR is cross-fitted over 5
#: folds of distinct rounds on every bootstrap resample.
MIN_ROUNDS = 20


def guess_format(log: str) -> str:
    """The layout of ``--log`` when ``--format auto``."""
    if log == "obd" or log.startswith("obd:"):
        return "obd"
    path = Path(log)
    if ".csv" in path.suffixes:
        return "table"
    if path.suffix == ".parquet" and path.is_file():
        import pyarrow.parquet as pq

        from recoworld.logs import VERSION_KEY

        try:
            metadata = pq.read_schema(path).metadata or {}
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid: not a Parquet file, or a cut one
            raise ValueError(f"--log {log} cannot be read as Parquet ({str(error).strip()}); write it again as "
                             "Parquet (pandas.DataFrame.to_parquet), or give a CSV") from None
        return "recoworld" if VERSION_KEY in metadata else "table"
    if path.is_file():
        raise ValueError(f"--log {log}: a file named *{''.join(path.suffixes)} is neither a table log (.csv, "
                         ".csv.gz or .parquet) nor a RecoWorld log (a run directory or an episodes .parquet); "
                         "convert it, or give --format")
    return "recoworld"


def read_recoworld(log: str, agent: str | None) -> pd.DataFrame:
    """The rows of ``agent`` (required when the log holds several) of a RecoWorld log or run directory."""
    from recoworld.logs import read_log

    if _run_with_status(log):
        from recoworld.apps.run.run_log import read_run_log

        # The rollouts its status.json lists as complete, as view and export read them (a part
        # of an unfinished rollout on disk is no part of the log), by agent and seed as read_log
        # orders a folder's parts, not in status.json's order: that is the order the rollouts
        # finished in, which a parallel run does not fix, and the bootstrap resamples rows by
        # their position.
        frame = read_run_log(log).log.sort_values(["agent", "seed"], kind="stable").reset_index(drop=True)
    else:
        frame = read_log(Path(log))  # a log file, or a run directory of parts (of a release before status.json)
    agents = frame["agent"].unique().tolist()
    if agent is None and len(agents) > 1:
        raise ValueError(f"{log} holds the rows of {len(agents)} agents {agents}; choose one with --agent")
    if agent is not None:
        if agent not in agents:
            raise ValueError(f"--agent {agent!r} is not in {log}; it holds {agents}")
        frame = frame[frame["agent"] == agent].reset_index(drop=True)
    _check_recoworld_rows(frame, log)
    return frame


def unfinished_run(log: str) -> str | None:
    """What to say of the run directory ``log`` when its run did not complete (its state,
    the rollouts read, what to do: :func:`~recoworld.apps.run.run_log.run_note`); ``None``
    for a complete run, or a log that is no run directory with a ``status.json``."""
    if not _run_with_status(log):
        return None
    from recoworld.apps.run.run_log import run_note, run_status

    return run_note(log, run_status(Path(log)))


def _run_with_status(log: str) -> bool:
    from recoworld.apps.run.rundir import STATUS_FILE

    return (Path(log) / STATUS_FILE).is_file()


def _check_recoworld_rows(frame: pd.DataFrame, log: str) -> None:
    """Each user-step once (a part read twice would count its rounds twice and narrow every
    interval), and each propensity column logged on every row or on none. Rows of one
    user-step that differ (two runs of one seed with other settings, merged) are not
    repeats: what they showed and saw tells them apart."""
    from recoworld.metrics import STEP_KEYS

    repeated = np.zeros(len(frame), dtype=bool)
    same_step = frame.duplicated(STEP_KEYS, keep=False).to_numpy()
    if same_step.any():
        rows = frame[same_step]
        content = rows[[*STEP_KEYS, "episode_seed"]].assign(
            **{column: rows[column].astype(str) for column in ("slate", "candidate_ids", "clicked")})
        repeated[same_step] = content.duplicated().to_numpy()
    if repeated.any():
        row = int(np.argmax(repeated))
        seed, user, episode, step = frame.loc[row, STEP_KEYS].tolist()
        raise ValueError(f"{log}: row {row + 1} repeats seed {seed}, user {user}, episode {episode}, step {step} of an "
                         f"earlier row ({int(repeated.sum())} of {len(frame)} rows are repeats): the log holds a "
                         "rollout twice (a part copied or read twice, or a seed repeated in experiment.seeds); "
                         "read each rollout once")
    for column in ("propensity", "position_propensity", "cascade_propensity"):
        missing = frame[column].isna().to_numpy()
        if missing.any() and not missing.all():
            row = int(np.argmax(missing))
            raise ValueError(f"{log}: {column} is missing at row {row + 1} ({int(missing.sum())} of {len(frame)} rows) "
                             "but logged on the others; drop the rows without it, or log them again with an agent "
                             "that states its propensities")


def read_table(log: str, n_actions: int | None) -> tuple[pd.DataFrame, BanditFeedback, np.ndarray | None, int]:
    """``(rows, feedback, context [n, d] or None, n_actions)`` of a table (module docstring)."""
    path = Path(log)
    if not path.is_file():
        raise ValueError(f"--log {log}: no such file; give a CSV or Parquet table with the columns "
                         f"{list(TABLE_COLUMNS)}")
    frame = _read(path, log)
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:  # with the columns it has, and a near name to rename (' reward', 'Reward') or the separator to use
        header = [str(c) for c in frame.columns]
        raise ValueError(f"{log} lacks the column(s) {missing}; a table log needs {list(TABLE_COLUMNS)}, optionally "
                         f"'position' and 'context_*' columns; its columns are {header}{_column_fix(header, missing)}")
    if len(frame) < MIN_ROUNDS:
        raise ValueError(f"{log} has {plural(len(frame), 'round')}, but an evaluation needs at least {MIN_ROUNDS} "
                         "(the reward model behind DM and DR is cross-fitted over 5 folds of the rounds); log more "
                         "rounds")
    action = _column(frame, "action", log)
    for name in [c for c in ("action", "position") if c in frame.columns]:  # an empty cell is NaN, no id
        absent = frame[name].isna().to_numpy()
        if name == "position" and absent.all():  # the log is not of lists: no round to drop
            raise ValueError(f"{log}: position is empty in every row; drop the column for a log of single actions")
        if absent.any():
            row = int(np.argmax(absent))
            raise ValueError(f"{log}: {name} is missing at row {row + 1} ({int(absent.sum())} of {len(frame)} "
                             f"rounds); drop the rounds without a logged {name}")
    largest = int(np.max(action)) + 1
    if n_actions is not None and n_actions < largest:
        raise ValueError(f"--n-actions {n_actions}, but the log's actions reach {largest - 1}; give --n-actions "
                         f"{largest} or more (the actions the policy chooses among), or leave it out")
    distinct = len(np.unique(action))
    if n_actions is None and distinct < largest / 2:
        appear = "appears" if distinct == 1 else "appear"
        raise ValueError(f"{log}: the action ids reach {largest - 1}, but only {plural(distinct, 'distinct id')} "
                         f"{appear}; map them to 0..n_actions-1 (e.g. pandas.factorize, and the same map in the "
                         f"policy), or give --n-actions {largest} if the policy really chooses among {largest} actions")
    position = _column(frame, "position", log) if "position" in frame.columns else None
    reward, pscore = _column(frame, "reward", log), _column(frame, "pscore", log)
    try:
        feedback = BanditFeedback(action, reward, pscore, position)
    except ValueError as error:
        raise ValueError(f"{log}: {_as_row(str(error))}") from None
    context_columns = [c for c in frame.columns if c.startswith("context_")]
    context = np.column_stack([_column(frame, c, log) for c in context_columns]) if context_columns else None
    if context is not None and not np.isfinite(context).all():
        row, column = np.argwhere(~np.isfinite(context))[0]
        rounds = int((~np.isfinite(context)).any(1).sum())
        what = "missing" if np.isnan(context[row, column]) else f"{context[row, column]}"
        raise ValueError(f"{log}: {context_columns[column]} is {what} at row {row + 1} ({rounds} of {len(frame)} rounds); "
                         "impute it or drop those rounds")
    return frame, feedback, context, n_actions or largest


def _read(path: Path, log: str) -> pd.DataFrame:
    """The table at ``path`` (a Parquet file's named index read as a column); a file pandas or
    pyarrow cannot read (empty, not UTF-8, not CSV, not Parquet) is refused naming it and the
    fix, as ``recoworld calibrate --data`` refuses it, not with the reader's bare message."""
    kind = "csv" if ".csv" in path.suffixes else "parquet"
    with _read_errors(path, "table log", kind):
        # a Parquet written from a table indexed by a column (set_index("action")) keeps it as the
        # index: a column again, and the rows numbered in file order, as the errors count them
        return pd.read_csv(path) if kind == "csv" else _unindexed(pd.read_parquet(path))
    # _read_errors reads an empty CSV as no rows; a table log needs at least its header
    raise ValueError(f"{log} is empty; a table log needs a header row with the columns {list(TABLE_COLUMNS)} and "
                     "a row per logged round")


def repeated_rows(frame: pd.DataFrame, log: str) -> str | None:
    """A warning when rows of a table log repeat earlier rows in every column although one
    column (a context, an id, a time) is distinct on the rows that do not repeat: then the
    repeats are copies (a join that matched twice, a part exported twice), each counted as
    another round. Repeats in a log of few distinct values are ordinary and pass."""
    repeated = frame.duplicated().to_numpy()
    if not repeated.any():
        return None
    distinct = frame[~repeated]
    keys = [c for c in frame.columns if c not in TABLE_COLUMNS and c != "position" and distinct[c].is_unique]
    if not keys:
        return None
    row = int(np.argmax(repeated))
    return (f"{log}: {int(repeated.sum())} of {len(frame)} rows repeat an earlier row in every column (the first at "
            f"row {row + 1}), although {keys[0]!r} is distinct on every other row: the log looks duplicated (a join that "
            "matched twice, a part exported twice), and each copy counts as another round, moving the estimates and "
            "narrowing the intervals; drop them (pandas drop_duplicates) unless they are rounds of their own")


def _as_row(message: str) -> str:
    """A check's message on a column (``pscore[7] is nan``, an array index from 0) in the
    table's terms (``pscore at row 8 is nan``, a row counted from 1 after the header), as
    every other error on a table log counts its rows."""
    return re.sub(r"^(action|reward|pscore|position)\[(\d+)\]",
                  lambda found: f"{found[1]} at row {int(found[2]) + 1}", message)


#: What each checked column of a table log must hold, said in its error.
_MUST_HOLD = {
    "action": "0-based integer action ids; map item ids to 0..n_actions-1 (e.g. pandas.factorize)",
    "position": "0-based integer positions",
    "pscore": "the logging policy's probability of the logged action, a number in (0, 1]",
    "reward": "numbers (true/false reads as 1/0)",
}


def _column(frame: pd.DataFrame, name: str, log: str) -> np.ndarray:
    """A numeric column of a table log, or an error naming its first non-number; a boolean
    reward (clicked or not) or context reads as 1/0."""
    values = frame[name]
    integral = name in ("action", "position", "pscore")  # true/false is no id, position nor probability
    if not pd.api.types.is_numeric_dtype(values) or (integral and pd.api.types.is_bool_dtype(values)):
        bad = (pd.to_numeric(values, errors="coerce").isna() & values.notna()).to_numpy()
        row = int(np.argmax(bad)) if bad.any() else 0
        what = _MUST_HOLD.get(name, "numbers; encode it as numbers (e.g. one-hot columns) or rename it")
        raise ValueError(f"{log}: {name} holds {values.iloc[row]!r} at row {row + 1}, but it must hold {what}")
    return values.to_numpy(np.float64) if name not in ("action", "position") else values.to_numpy()


def read_obd(log: str, behavior_policy: str, campaign: str) -> tuple[pd.DataFrame, BanditFeedback, None, int]:
    """``(rows, feedback, None, n_items)`` of an Open Bandit Dataset file (module docstring)."""
    from recoworld.data.obd import load_open_bandit

    folder = None if log == "obd" else log[len("obd:"):]
    if folder is None:
        from recoworld.data.fetch import fetch

        folder = fetch("open-bandit", None)
    data = load_open_bandit(behavior_policy, campaign, folder)
    return data.log, data.feedback(), None, data.n_items


def features_of(context: np.ndarray | None, n_actions: int, n_positions: int, n_rounds: int):
    """``rows -> [len(rows), A, P, d]`` reward-model features: per-action linear models of the
    context plus a position effect (:func:`~recoworld.ope.per_action_features`), or, without
    a context, action and position indicators (a broadcast view: no copy per round). A
    design the fit could not hold in memory (over ``n_rounds`` rounds) is refused up front."""
    if context is not None:
        size = len(context) * n_actions * n_positions * (context.shape[1] * n_actions + n_actions + n_positions)
        if size > MAX_CONTEXT_DESIGN:
            raise ValueError(f"the reward model's design would hold {size:,} numbers (rounds x actions x positions "
                             f"x features > {MAX_CONTEXT_DESIGN:,}); drop context_* columns or rounds")
        return lambda rows: per_action_features(context[rows], n_actions, n_positions)
    size = n_rounds * n_actions * n_positions * (n_actions + n_positions)
    if size > MAX_INDICATOR_DESIGN:
        raise ValueError(f"the reward model's design would hold {size:,} numbers "
                         f"({plural(n_rounds, 'round', spec=',')} x {plural(n_actions, 'action', spec=',')} x "
                         f"{plural(n_positions, 'position')} x {n_actions + n_positions:,} indicators > "
                         f"{MAX_INDICATOR_DESIGN:,}): the direct and doubly robust estimators cannot be fitted on "
                         "this many actions; evaluate a log of fewer rounds or actions (e.g. the most shown items)")
    indicators = np.concatenate([
        np.broadcast_to(np.eye(n_actions)[:, None, :], (n_actions, n_positions, n_actions)),
        np.broadcast_to(np.eye(n_positions)[None], (n_actions, n_positions, n_positions)),
    ], axis=2)
    return lambda rows: np.broadcast_to(indicators, (len(rows), *indicators.shape))
