"""The Open Bandit Dataset section of ``recoworld ope --obd``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def run_obd_section(cache_dir: Path | None, n_mc: int, seed: int = 0) -> pd.DataFrame:
    """The Open Bandit Dataset section: ``recoworld.data.obd.obd_study``'s result as rows.

    ``obd_study`` estimates the Bernoulli-TS policy's click rate from the uniform-random
    logs and reports the on-policy value of the TS logs; a dict with a ``"rows"`` list of
    dicts gives one row each, any other dict becomes one row of its scalar entries.
    """
    from recoworld.data.obd import (
        obd_study,  # the data set's loader, imported only when asked for
    )

    result = obd_study(cache_dir=cache_dir, n_mc=n_mc, seed=seed)
    return obd_rows(result)


def obd_rows(result: dict) -> pd.DataFrame:
    """Rows of an ``obd_study`` result (see :func:`run_obd_section`)."""
    if not isinstance(result, dict):
        raise TypeError(f"obd_study returned {type(result).__name__}; expected a dict")
    if isinstance(result.get("rows"), list):
        return pd.DataFrame(result["rows"])
    return pd.DataFrame([{key: value for key, value in result.items() if np.ndim(value) == 0}])
