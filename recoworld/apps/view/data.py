"""What the session viewer shows, read from a run directory.

:func:`run_catalog` rebuilds the run's catalog from the config it ran (:func:`run_config`;
titles and genres are not in the log, which stores catalog ids), and :func:`viewer_payload`
turns the episode log into the page's data: one entry per user episode (an agent, a seed, a user slot and the
slot's episode), each holding its steps column by column (see :func:`viewer_payload`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recoworld.logs import COLUMNS, list_column

#: Per-item columns of the log shown in each slate row, in slate order.
ITEM_COLUMNS = ("examined", "clicked", "watch_fraction", "liked", "rating")
#: Per-step columns shown beside the slate.
STEP_COLUMNS = ("step", "rollout_step", "session", "session_step", "reward", "satisfaction", "left_session",
                "returned", "churned", "return_gap", "terminated", "truncated", "instruction_in_force",
                "compliance")
#: Columns of the schema that hold booleans (one per step, or one per item): the page gets
#: their values as 0 and 1.
BOOLEAN_COLUMNS = frozenset(name for name, dtype, _, _ in COLUMNS
                            if pa.types.is_boolean(dtype.value_type if pa.types.is_list(dtype) else dtype))
#: Columns the page places itself or leaves out (who and where, the candidates, propensities);
#: any other column, such as one a later schema adds, is shown as it is.
PLACED = {"agent", "seed", "user", "episode", "episode_seed", "slate", "candidate_ids", "propensity",
          "position_propensity", "cascade_propensity", "instruction_text", *ITEM_COLUMNS, *STEP_COLUMNS}


def run_catalog(run_dir: str | Path):
    """The catalog of the run in ``run_dir``, rebuilt from the ``world`` of :func:`run_config`.

    Raises:
        FileNotFoundError: the directory does not exist, or holds no saved config (it is not
            a ``recoworld run`` directory; the runs in it are named, where it is a sweep's
            folder or a folder of runs).
        ValueError: ``run_dir`` is a file, or its saved config is damaged or does not build.
    """
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    config, saved = run_config(run_dir)
    try:
        return instantiate(config.world)
    except HydraException as err:
        raise ValueError(f"the run's catalog could not be rebuilt from the `world` node of {saved}: "
                         f"{_first_line(err)}") from None


def run_config(run_dir: str | Path):
    """The config that the run in ``run_dir`` ran (an OmegaConf node with its ``world``,
    ``simulator``, ``env`` and ``agents``), and the file it was read from.

    That is the ``config`` of its ``status.json``, which only a run that started there writes.
    Not ``.hydra/config.yaml`` first: it is Hydra's, which ``recoworld run`` puts back when a
    start into the folder is refused, but which a run of an earlier release left describing a
    refused config, as does a start killed while it was refused. A folder whose ``status.json``
    holds no config (a run of a release before it), or is damaged (which reading its log
    reports), is read from ``.hydra/config.yaml``.

    Raises:
        FileNotFoundError, ValueError: as :func:`run_catalog`.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from recoworld.apps.run.rundir import STATUS_FILE, RunDirectoryError, read_status

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist: give the directory of a `recoworld run`")
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file: give the directory of a `recoworld run` (the folder it wrote)")
    try:
        status = read_status(run_dir)
    except RunDirectoryError:
        status = None
    if isinstance(config := (status or {}).get("config"), dict) and isinstance(config.get("world"), dict):
        return OmegaConf.create(config), run_dir / STATUS_FILE
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        # A sweep's folder (multirun/DATE/TIME) or a day's (outputs/DATE) holds runs: name them.
        runs = sorted((p for p in run_dir.iterdir() if (p / ".hydra" / "config.yaml").is_file()
                       or (p / STATUS_FILE).is_file()),
                      key=lambda p: (not p.name.isdecimal(), int(p.name) if p.name.isdecimal() else 0, p.name))
        if runs:
            listed = ", ".join(p.name for p in runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
            raise FileNotFoundError(f"{run_dir} is not a run's directory, but holds {len(runs)} run(s) ({listed}): "
                                    f"give one of them, e.g. {runs[0]}")
        raise FileNotFoundError(f"{saved} does not exist: give the directory of a `recoworld run` "
                                "(it saves its config under .hydra/)")
    try:
        config = OmegaConf.load(saved)
        config.world  # noqa: B018 - a file without a world is no run's config
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ValueError(f"{saved} is damaged or was edited ({type(err).__name__}: {_first_line(err)}): the run's "
                         "catalog is rebuilt from its `world` node; restore the file") from None
    return config, saved


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def viewer_payload(log: pd.DataFrame, catalog, *, title: str, max_users: int | None = None,
                   note: str | None = None) -> dict[str, Any]:
    """The page's data: every user episode of ``log`` with titles and genres from ``catalog``.

    Args:
        log: an episode log as :func:`recoworld.logs.read_log` returns it. Columns the page
            does not place itself (see :data:`PLACED`; a later schema's per-item reasons,
            say) are shown as they are: a list the slate's length beside each item, anything
            else beside the step.
        catalog: the run's :class:`~recoworld.catalog.Catalog`.
        title: the page's heading (the run directory's name).
        max_users: keep only the first ``max_users`` user slots of each agent and seed
            (``None`` keeps all), so that a large run still gives a page a browser opens.
        note: what the page says above all else (a run that did not complete: which part
            of it the page shows), or ``None``.

    Returns:
        ``title``, ``note``, ``agents``, ``seeds``, ``items`` (catalog id: title and genres,
        for every item shown), ``extra_columns``, ``booleans`` (the columns whose values are
        sent as 0 and 1) and ``episodes``: per user episode its ``agent``, ``seed``, ``user``,
        ``episode``, ``episode_seed`` (in decimal digits, a string: exact in a browser) and
        ``columns``, which maps each of
        :data:`STEP_COLUMNS`, ``slate``, :data:`ITEM_COLUMNS`, ``instruction_text`` and the
        extra columns to the episode's values in step order (a list per step for the
        per-item ones). Column by column, with booleans as 0 and 1 and whole numbers without
        a decimal point, a step takes about a third of the page that a record naming each of
        its fields would; every value is kept (floats to 4 decimals, as shown).
    """
    if max_users is not None:
        log = log[log["user"] < max_users]
    log = log.sort_values(["agent", "seed", "user", "episode", "step"], kind="stable").reset_index(drop=True)
    # Columns the page does not place, when they hold anything (the LLM users' words are
    # null in a statistical run).
    extra = [c for c in log.columns if c not in PLACED and log[c].notna().any()]
    slates = list_column(log, "slate").astype(np.int64) if len(log) else np.zeros((0, 0), np.int64)
    # Whole columns as Python lists, each made in one pass (see _plain_column): a cell at a
    # time through pandas, or even a value at a time through _plain, takes minutes for a
    # run of a few hundred thousand steps.
    booleans = [name for name in (*STEP_COLUMNS, *ITEM_COLUMNS) if name in BOOLEAN_COLUMNS]
    columns = {name: _plain_column(log[name], bits=name in booleans)
               for name in (*STEP_COLUMNS, "instruction_text", *extra)}
    columns["slate"] = slates.tolist()
    for name in ITEM_COLUMNS:
        columns[name] = _plain_column(list_column(log, name), bits=name in booleans) if len(log) else []
    episode_seeds = log["episode_seed"].to_numpy()
    episodes = []
    # Sorted above, an episode's steps are consecutive rows.
    for (agent, seed, user, episode), rows in log.groupby(["agent", "seed", "user", "episode"], sort=False).indices.items():
        steps = slice(int(rows[0]), int(rows[-1]) + 1)
        episodes.append({"agent": str(agent), "seed": int(seed), "user": int(user), "episode": int(episode),
                         # A string: a user's seed is a 64-bit integer, which a browser's
                         # JSON numbers (doubles) would round past 2**53.
                         "episode_seed": str(int(episode_seeds[rows[0]])),
                         "columns": {name: values[steps] for name, values in columns.items()}})
    shown = np.unique(slates) if slates.size else np.zeros(0, np.int64)
    return {
        "title": title,
        "note": note,
        "agents": list(dict.fromkeys(str(agent) for agent in log["agent"].unique())),
        "seeds": sorted({int(s) for s in log["seed"].unique()}),
        "items": {str(int(i)): _item(catalog, int(i)) for i in shown},
        "episodes": episodes,
        "extra_columns": extra,
        "booleans": booleans,
    }


def _item(catalog, item: int) -> dict[str, Any]:
    genres = catalog.genres[item].nonzero().flatten().tolist()
    return {"title": str(catalog.titles[item]), "genres": [catalog.genre_names[g] for g in genres]}


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _plain_column(values: pd.Series | np.ndarray, bits: bool = False) -> list:
    """``[_plain(v, bits) for v in values.tolist()]``, the same list, made a whole column at a
    time where ``values`` is a numpy column (or the 2-D array of a list column: a list per
    row) of booleans, integers or float32; other columns (text, nullable ones) go a value
    at a time through :func:`_plain`."""
    dtype = values.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or dtype.kind == "f" and dtype.itemsize > 4:
        return [_plain(v, bits) for v in values.tolist()]
    array = np.asarray(values)
    if dtype.kind == "b":
        return (array.astype(np.int8) if bits else array).tolist()
    if dtype.kind in "iu":
        return array.tolist()
    # A float32 (or float16) value times 10**4 is exact in float64 (a 24-bit significand
    # times 10**4 < 2**14 fits in 53 bits), so numpy's rounding (scale, round half to even,
    # divide) gives Python's round(value, 4) to the bit; float64 columns (none in the
    # schema) go through _plain.
    with np.errstate(invalid="ignore"):  # a signalling NaN is as quiet as any: None
        rounded = np.round(array.astype(np.float64), 4)
    plain = rounded.astype(object)
    whole = np.isfinite(rounded) & (rounded == np.trunc(rounded))
    plain[whole] = [int(v) for v in rounded[whole].tolist()]
    plain[np.isnan(rounded)] = None
    plain[rounded == np.inf] = "inf"
    plain[rounded == -np.inf] = "-inf"
    return plain.tolist()


def _plain(value, bits: bool = False):
    """A JSON-ready copy of a cell: numpy scalars as Python ones (booleans as 0 and 1 with
    ``bits``), floats to 4 decimals and whole ones as integers, NaN and NA as ``None``,
    infinity as the string ``"inf"`` (JSON has no infinity; a churned user's return gap)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v, bits) for v in value]
    if _missing(value):
        return None
    if isinstance(value, (np.bool_, bool)):
        return int(value) if bits else bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        value = round(value, 4)
        return int(value) if value.is_integer() else value
    return str(value)
