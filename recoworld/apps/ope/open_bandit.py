"""The Open Bandit Dataset section of ``recoworld ope --obd``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: The estimators whose interval is redrawn by refitting the reward model.
MODEL_BASED = ("DM", "DR", "SNDR")


def run_obd_section(cache_dir: Path | None, n_mc: int, seed: int = 0, n_refits: int = 20) -> pd.DataFrame:
    """The Open Bandit Dataset section: ``recoworld.data.obd.obd_study``'s result as rows,
    with the intervals of DM, DR and SNDR redrawn by refitting the reward model.

    ``obd_study`` estimates the Bernoulli-TS policy's click rate from the uniform-random
    logs and reports the on-policy value of the TS logs; its model-based intervals hold the
    reward model fixed. Here the same estimators (the same logistic model on item and
    position indicators, cross-fitted on 5 folds with the same seed, so the same point
    estimates) get :func:`~recoworld.ope.refit.refit_interval`'s interval over ``n_refits``
    resamples, each refitting the model (:class:`~recoworld.ope.evaluation.BanditProblem`);
    the column ``interval`` says which rows were redrawn.
    """
    from recoworld.data.obd import obd_study  # the data set's loader, imported only when asked for

    rows = obd_rows(obd_study(cache_dir=cache_dir, n_mc=n_mc, seed=seed))
    if "estimator" in rows and rows["estimator"].isin(MODEL_BASED).any():
        refit_model_based(rows, cache_dir, n_mc, seed, n_refits)
    return rows


def refit_model_based(rows: pd.DataFrame, cache_dir: Path | None, n_mc: int, seed: int, n_refits: int,
                      campaign: str = "all") -> None:
    """Redraw the intervals of the DM, DR and SNDR ``rows`` in place (see :func:`run_obd_section`)."""
    from recoworld.apps.ope.sources import features_of
    from recoworld.data.fetch import fetch
    from recoworld.data.obd import N_POSITIONS, bts_distribution, load_bts_prior, load_open_bandit
    from recoworld.ope.evaluation import BanditProblem
    from recoworld.ope.refit import refit_interval

    path = fetch("open-bandit", None if cache_dir is None else Path(cache_dir))
    logged = load_open_bandit("random", campaign, path)
    policy = bts_distribution(*load_bts_prior(campaign, path), slate_length=N_POSITIONS, n_mc=n_mc, seed=seed)
    feedback = logged.feedback()
    problem = BanditProblem(feedback, policy.action_dist(feedback.n_rounds),
                            features_of(None, logged.n_items, N_POSITIONS, feedback.n_rounds))
    _, lower, upper = refit_interval(lambda r: problem.estimates(MODEL_BASED, r, seed), problem.n, n_refits,
                                     0.05, seed, n_folds=problem.n_folds)
    rows["interval"] = "rows"
    for name, low, high in zip(MODEL_BASED, lower, upper):
        at = rows["estimator"] == name
        rows.loc[at, ["ci_low", "ci_high"]] = [float(low), float(high)]
        rows.loc[at, "interval"] = f"refit ({n_refits} resamples)"


def obd_rows(result: dict) -> pd.DataFrame:
    """Rows of an ``obd_study`` result (see :func:`run_obd_section`)."""
    if not isinstance(result, dict):
        raise TypeError(f"obd_study returned {type(result).__name__}; expected a dict")
    if isinstance(result.get("rows"), list):
        return pd.DataFrame(result["rows"])
    return pd.DataFrame([{key: value for key, value in result.items() if np.ndim(value) == 0}])
