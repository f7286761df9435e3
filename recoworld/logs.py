"""The interaction log: one row per user-step, the table that metrics and OPE read.

A rollout (:func:`recoworld.envs.rollout.rollout`) appends one batch of rows per env
step to an :class:`EpisodeLog`, which writes them to Parquet in row groups (or keeps them
in memory). :func:`read_log` reads a log back — or checks a pandas DataFrame that claims to
be one — and refuses anything that is not this schema, naming what is wrong.

The schema is defined once, in :data:`COLUMNS` (name, Arrow type, nullable, meaning), and
carries :data:`SCHEMA_VERSION` in the Parquet metadata. Change the version whenever a
column is added, removed, renamed or changes meaning; readers check it.

Only real interactions are logged: rows of a vector env's autoreset step (which carry no
interaction, see the env manual) never reach the log. Per-item columns are lists in slate
order (position 0 is the top of the slate) and have the slate's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Version of the column layout below; stored in the file's metadata and checked on read.
SCHEMA_VERSION = 1
VERSION_KEY = b"recoworld.schema_version"

#: (name, type, nullable, meaning) of every column, in file order.
COLUMNS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    # --- who and when
    ("agent", pa.string(), False, "label of the agent that chose the slate (its config name in a lineup)"),
    ("seed", pa.int64(), False, "seed of the rollout (experiment.seeds)"),
    ("user", pa.int32(), False, "user slot of the vector env, 0..num_envs-1"),
    ("episode", pa.int32(), False,
     "index of the episode within the user slot, 0 for the slot's first user; a slot starts a new "
     "episode (a new user) when the previous one churned or was truncated"),
    ("episode_seed", pa.int64(), False,
     "the env's seed of this user episode; a single SlateEnv reset with it replays the same user"),
    ("step", pa.int32(), False, "step within the episode, 0-based"),
    ("rollout_step", pa.int32(), False, "step of the rollout, 0-based (the same for all slots of a batch)"),
    ("session", pa.int32(), False, "sessions the user had completed before this step (0 in the first session)"),
    ("session_step", pa.int32(), False, "steps already served in the current session before this one"),
    # --- what was shown, and how it was chosen
    ("slate", pa.list_(pa.int64()), False, "catalog ids of the items shown, top to bottom"),
    ("candidate_ids", pa.list_(pa.int64()), True,
     "catalog ids of the request's candidates the agent chose from; null unless experiment.log_candidates"),
    ("propensity", pa.float64(), True,
     "probability that the agent's policy chose this whole ranked slate; null when the agent does not say"),
    ("position_propensity", pa.list_(pa.float64()), True,
     "per position k, probability that the item at k was chosen for position k; null when unknown"),
    ("cascade_propensity", pa.list_(pa.float64()), True,
     "per position k, probability that positions 0..k are as shown; null when unknown"),
    # --- per-item feedback (lists in slate order)
    ("examined", pa.list_(pa.bool_()), False, "the user looked at the position (cascade); unexamined items get no feedback"),
    ("clicked", pa.list_(pa.bool_()), False, "the user opened the item"),
    ("watch_fraction", pa.list_(pa.float32()), False, "share of the item consumed, in [0, 1]; 0 unless clicked"),
    ("liked", pa.list_(pa.bool_()), False, "the user liked the item"),
    ("rating", pa.list_(pa.int8()), False, "explicit rating 1..5 of a clicked item, 0 where none was given"),
    # --- per-step outcome
    ("reward", pa.float32(), False, "the env's reward for the slate (env.reward)"),
    ("satisfaction", pa.float32(), False, "the user's mindset after the step, in [0, 1]"),
    ("left_session", pa.bool_(), False, "the session ended after this step (the user returns later or churns)"),
    ("returned", pa.bool_(), False, "the user ended the session and will come back (only where left_session)"),
    ("churned", pa.bool_(), False, "the user left for good; the episode ends here (terminated)"),
    ("return_gap", pa.float32(), False,
     "days until the next session where returned; 0 while the session goes on; inf where churned"),
    ("terminated", pa.bool_(), False, "the episode ended at this step because the user churned"),
    ("truncated", pa.bool_(), False, "the episode was cut at this step by env.max_steps"),
    # --- reflective instructions
    ("instruction_text", pa.string(), True, "the instruction the user voiced at this step; null when silent"),
    ("instruction_in_force", pa.bool_(), False, "an instruction of the user was in force when the slate was shown"),
    ("compliance", pa.float32(), True,
     "how well the slate followed the instruction in force, in [0, 1]; null where none was in force"),
)

COLUMN_DOCS: dict[str, str] = {name: doc for name, _, _, doc in COLUMNS}
SCHEMA = pa.schema(
    [pa.field(name, dtype, nullable, metadata={"doc": doc}) for name, dtype, nullable, doc in COLUMNS],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
LIST_COLUMNS = tuple(name for name, dtype, _, _ in COLUMNS if pa.types.is_list(dtype))
REQUIRED = tuple(name for name, _, nullable, _ in COLUMNS if not nullable)


class LogSchemaError(ValueError):
    """A log is not (this version of) the episodes schema."""


class EpisodeLog:
    """Rows of the episodes schema, written to Parquet as they come, or kept in memory.

    Args:
        path: the Parquet file to write; ``None`` keeps the rows in memory
            (:meth:`to_pandas`).
        row_group_size: rows buffered before a row group is written.

    Use as a context manager, or call :meth:`close`, so that the file is complete.
    """

    def __init__(self, path: str | Path | None = None, *, row_group_size: int = 65_536):
        self.path = None if path is None else Path(path)
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._kept: list[pa.RecordBatch] = []
        self._writer: pq.ParquetWriter | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")

    def append(self, columns: Mapping[str, Any]) -> None:
        """Add a batch of ``n`` rows given column by column.

        Each value is an array of ``n`` values (``[n, K]`` for list columns), a scalar
        repeated on every row, ``None`` for a nullable column with no value on any row, or
        a ``numpy.ma.MaskedArray`` whose masked entries become nulls.
        """
        unknown = sorted(set(columns) - set(COLUMN_DOCS))
        if unknown:
            raise LogSchemaError(f"columns {unknown} are not in the episodes schema; see recoworld.logs.COLUMNS")
        missing = [name for name in REQUIRED if columns.get(name) is None]
        if missing:
            raise LogSchemaError(f"rows lack required columns {missing}")
        n = _row_count(columns)
        if n == 0:
            return
        arrays = [_to_arrow(columns.get(f.name), f, n) for f in SCHEMA]
        batch = pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
        self.rows += n
        if self._writer is None:
            self._kept.append(batch)
            return
        self._pending.append(batch)
        self._pending_rows += n
        if self._pending_rows >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one row group (file mode)."""
        if self._writer is not None and self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, SCHEMA), row_group_size=self._pending_rows)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def to_table(self) -> pa.Table:
        """The rows kept in memory (``path=None``) as an Arrow table."""
        if self.path is not None:
            raise RuntimeError(f"this log writes to {self.path}; read it with read_log() after close()")
        return pa.Table.from_batches(self._kept, SCHEMA)

    def to_pandas(self) -> pd.DataFrame:
        """The rows kept in memory as a DataFrame, as :func:`read_log` returns it."""
        return _to_frame(self.to_table())

    def __enter__(self) -> EpisodeLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_log(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A log as a DataFrame with the schema's columns, after checking it is one.

    Args:
        source: a Parquet file written by :class:`EpisodeLog` (``episodes.parquet`` of a
            run directory), or a DataFrame that should hold the same columns (list
            columns holding sequences); a DataFrame is checked and returned as it is,
            extra columns included.

    Raises:
        LogSchemaError: the file's schema version is missing or differs from
            :data:`SCHEMA_VERSION`, a column is missing, or a column has the wrong type.
    """
    if isinstance(source, pd.DataFrame):
        return _check_frame(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; a run directory holds its log as episodes.parquet")
    schema = pq.read_schema(path)
    found = (schema.metadata or {}).get(VERSION_KEY)
    if found is None:
        raise LogSchemaError(f"{path} has no {VERSION_KEY.decode()} in its metadata; it was not written by "
                             "recoworld.logs.EpisodeLog")
    if found.decode() != str(SCHEMA_VERSION):
        raise LogSchemaError(f"{path} has episodes schema version {found.decode()}, but this RecoWorld reads "
                             f"version {SCHEMA_VERSION}; read it with the RecoWorld release that wrote it")
    missing = [name for name in COLUMN_DOCS if name not in schema.names]
    if missing:
        raise LogSchemaError(f"{path} lacks columns {missing} of schema version {SCHEMA_VERSION}")
    for name, dtype, _, _ in COLUMNS:
        if not schema.field(name).type.equals(dtype):
            raise LogSchemaError(f"{path}: column {name!r} has type {schema.field(name).type}, expected {dtype}")
    return _to_frame(pq.read_table(path))


def list_column(log: pd.DataFrame, name: str) -> np.ndarray:
    """A list column (e.g. ``slate``, ``clicked``) as a 2-D array ``[rows, K]``.

    All rows must hold lists of one length, as they do within one run; rows of runs with
    different slate sizes must be split first. Works on the Arrow-backed columns that
    :func:`read_log` returns and on object columns of sequences alike.
    """
    column = log[name]
    if len(column) == 0:
        return np.zeros((0, 0))
    if isinstance(column.dtype, pd.ArrowDtype):
        lists = pa.array(column.array)
        lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        if lists.null_count:
            raise LogSchemaError(f"column {name!r} is null at row {int(np.flatnonzero(np.isnan(lengths))[0])}")
        values = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    else:
        rows = column.to_numpy()
        lengths = np.fromiter((len(v) for v in rows), dtype=np.int64, count=len(rows))
        values = None
    if lengths.min() != lengths.max():
        raise LogSchemaError(f"column {name!r} holds lists of lengths {int(lengths.min())}..{int(lengths.max())}; "
                             "split the log by slate size first")
    if values is None:
        return np.stack(rows)
    return values.reshape(len(column), int(lengths[0]))


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # List columns stay Arrow-backed: one numpy array per cell would cost far more memory.
    frame = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    frame.attrs["recoworld.schema_version"] = SCHEMA_VERSION
    return frame


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    version = frame.attrs.get("recoworld.schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise LogSchemaError(f"the DataFrame is marked with episodes schema version {version}; "
                             f"this RecoWorld reads version {SCHEMA_VERSION}")
    missing = [name for name in COLUMN_DOCS if name not in frame.columns]
    if missing:
        raise LogSchemaError(f"the DataFrame lacks columns {missing} of episodes schema version {SCHEMA_VERSION}; "
                             "see recoworld.logs.COLUMNS for what each holds")
    for name, dtype, nullable, _ in COLUMNS:
        column = frame[name]
        if not nullable and column.isna().any():
            raise LogSchemaError(f"column {name!r} has a missing value at row {int(np.flatnonzero(column.isna())[0])}; "
                                 "it may not be null")
        kind = column.dtype.kind
        if (pa.types.is_integer(dtype) and kind not in "iu") or (pa.types.is_floating(dtype) and kind not in "fiu") \
                or (pa.types.is_boolean(dtype) and kind != "b"):
            raise LogSchemaError(f"column {name!r} has dtype {column.dtype}, expected {dtype}")
    return frame


def _row_count(columns: Mapping[str, Any]) -> int:
    for name in REQUIRED:
        value = columns[name]
        if isinstance(value, (np.ndarray, list, tuple, pa.Array)):
            return len(value)
    raise LogSchemaError("give at least one required column as an array, so that the number of rows is known")


def _to_arrow(value: Any, field: pa.Field, n: int) -> pa.Array:
    dtype = field.type
    if value is None:
        return pa.nulls(n, dtype)
    if isinstance(value, pa.Array):
        return value.cast(dtype)
    if pa.types.is_list(dtype):
        array = np.asarray(value)
        if array.ndim != 2 or len(array) != n:
            raise LogSchemaError(f"column {field.name!r} needs an array [{n}, K]; got shape {array.shape}")
        width = array.shape[1]
        values = pa.array(array.reshape(-1).astype(dtype.value_type.to_pandas_dtype(), copy=False))
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, values, type=dtype)
    if pa.types.is_string(dtype):
        if isinstance(value, str):
            return pa.array([value] * n, dtype)
        return pa.array(np.asarray(value, dtype=object), dtype)
    if np.ndim(value) == 0:
        return pa.array(np.full(n, value, dtype=dtype.to_pandas_dtype()))
    mask = np.ma.getmaskarray(value) if isinstance(value, np.ma.MaskedArray) else None
    data = np.ma.getdata(value) if mask is not None else np.asarray(value)
    if len(data) != n:
        raise LogSchemaError(f"column {field.name!r} has {len(data)} values for {n} rows")
    return pa.array(data.astype(dtype.to_pandas_dtype(), copy=False), mask=mask)
