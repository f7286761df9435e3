"""What the session viewer shows, read from a run directory.

:func:`run_catalog` rebuilds the run's catalog from its saved config (titles and genres are
not in the log, which stores catalog ids), and :func:`viewer_payload` turns the episode log
into the page's data: one entry per user episode (an agent, a seed, a user slot and the
slot's episode), each a list of steps with the slate and the user's reactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recoworld.logs import list_column

#: Per-item columns of the log shown in each slate row, in slate order.
ITEM_COLUMNS = ("examined", "clicked", "watch_fraction", "liked", "rating")
#: Per-step columns shown beside the slate.
STEP_COLUMNS = ("step", "rollout_step", "session", "session_step", "reward", "satisfaction", "left_session",
                "returned", "churned", "return_gap", "terminated", "truncated", "instruction_in_force",
                "compliance")
#: Columns the page places itself or leaves out (who and where, the candidates, propensities);
#: any other column, such as one a later schema adds, is shown as it is.
PLACED = {"agent", "seed", "user", "episode", "episode_seed", "slate", "candidate_ids", "propensity",
          "position_propensity", "cascade_propensity", "instruction_text", *ITEM_COLUMNS, *STEP_COLUMNS}


def run_catalog(run_dir: str | Path):
    """The catalog of the run in ``run_dir``, rebuilt from its ``.hydra/config.yaml``.

    Raises:
        FileNotFoundError: the directory holds no saved config (not a ``recoworld run``
            directory).
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{saved} does not exist: give the directory of a `recoworld run` "
                                "(it saves its config under .hydra/)")
    return instantiate(OmegaConf.load(saved).world)


def viewer_payload(log: pd.DataFrame, catalog, *, title: str, max_users: int | None = None) -> dict[str, Any]:
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
    """
    if max_users is not None:
        log = log[log["user"] < max_users]
    log = log.sort_values(["agent", "seed", "user", "episode", "step"], kind="stable").reset_index(drop=True)
    # Columns the page does not place, when they hold anything (the LLM users' words are
    # null in a statistical run).
    extra = [c for c in log.columns if c not in PLACED and log[c].notna().any()]
    slates = list_column(log, "slate").astype(np.int64) if len(log) else np.zeros((0, 0), np.int64)
    # Whole columns as Python lists, read once: a cell at a time through pandas takes
    # seconds per ten thousand steps.
    columns = {name: log[name].tolist() for name in (*STEP_COLUMNS, "instruction_text", *extra)}
    columns["slate"] = slates.tolist()
    columns.update({name: list_column(log, name).tolist() for name in ITEM_COLUMNS} if len(log) else {})
    steps = [_step(columns, i, extra) for i in range(len(log))]
    episodes = []
    for (agent, seed, user, episode), rows in log.groupby(["agent", "seed", "user", "episode"], sort=False).indices.items():
        episodes.append({"agent": str(agent), "seed": int(seed), "user": int(user), "episode": int(episode),
                         "episode_seed": int(log["episode_seed"].iat[rows[0]]),
                         "steps": [steps[i] for i in rows]})
    shown = np.unique(slates) if slates.size else np.zeros(0, np.int64)
    return {
        "title": title,
        "agents": list(dict.fromkeys(log["agent"].astype(str))),
        "seeds": sorted({int(s) for s in log["seed"]}),
        "items": {str(int(i)): _item(catalog, int(i)) for i in shown},
        "episodes": episodes,
        "extra_columns": extra,
    }


def _item(catalog, item: int) -> dict[str, Any]:
    genres = catalog.genres[item].nonzero().flatten().tolist()
    return {"title": str(catalog.titles[item]), "genres": [catalog.genre_names[g] for g in genres]}


def _step(columns: dict[str, list], i: int, extra: list[str]) -> dict:
    step = {name: _plain(columns[name][i]) for name in STEP_COLUMNS}
    step["slate"] = columns["slate"][i]
    for name in ITEM_COLUMNS:
        step[name] = [_plain(v) for v in columns[name][i]]
    text = columns["instruction_text"][i]
    step["instruction_text"] = None if _missing(text) else str(text)
    step["extra"] = {name: _plain(columns[name][i]) for name in extra}
    return step


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _plain(value):
    """A JSON-ready copy of a cell: numpy scalars as Python ones, NaN and NA as ``None``,
    infinity as the string ``"inf"`` (JSON has no infinity; a churned user's return gap)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if _missing(value):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return ("inf" if value > 0 else "-inf") if np.isinf(value) else round(value, 4)
    return str(value)
