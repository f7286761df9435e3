"""The tables of ``recoworld ope``: per-cell error metrics and the off-policy learning table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recoworld.apps.ope.config import ESTIMATORS, LEARNED_POLICIES, LOGGING_POLICIES, TARGET_POLICIES


def summarise(runs: pd.DataFrame, truths: pd.DataFrame, estimators: Sequence[str] = tuple(ESTIMATORS)) -> pd.DataFrame:
    """Bias, RMSE, CI coverage and mean CI width per (logging, target, n, estimator), over
    the runs on which the estimator was defined; coverage and width over those of them with
    an interval (a self-normalised estimator defined on the log but on too few resamples
    has NaN bounds: no interval, rather than one that missed). ``estimators`` gives their
    order."""
    merged = runs.merge(truths, on=["logging", "target"])
    merged["error"] = merged["estimate"] - merged["truth"]
    bounded = merged["lower"].notna() & merged["upper"].notna()
    covered = (merged["lower"] <= merged["truth"]) & (merged["truth"] <= merged["upper"])
    merged["covered"] = covered.astype(float).where(bounded)  # NaN: left out of the mean
    merged["width"] = merged["upper"] - merged["lower"]
    keys = ["logging", "target", "n", "estimator"]
    grouped = merged.groupby(keys, sort=False)
    defined = merged.dropna(subset=["estimate"]).groupby(keys, sort=False)
    summary = pd.DataFrame({
        "truth": grouped["truth"].first(),
        "truth_se": grouped["truth_se"].first(),
        "bias": defined["error"].mean(),
        "rmse": defined["error"].apply(lambda e: float(np.sqrt(np.mean(e**2)))),
        "coverage": defined["covered"].mean(),
        "ci_width": defined["width"].mean(),
        "defined": defined["error"].size(),
        "runs": grouped["error"].size(),
    })
    summary["defined"] = summary["defined"].fillna(0).astype(int)
    summary = summary.reset_index()
    order = {"logging": LOGGING_POLICIES, "target": TARGET_POLICIES + LEARNED_POLICIES, "estimator": tuple(estimators)}
    return summary.sort_values(keys, key=lambda column: column.map(order[column.name].index)
                               if column.name in order else column, ignore_index=True)


def learning_table(summary: pd.DataFrame, logging_truths: pd.DataFrame) -> pd.DataFrame:
    """Per (logging policy, learned policy): the true values of both, the gain, and each
    estimator's mean estimate of the learned policy at the largest log size."""
    learned = summary[summary["target"].isin(LEARNED_POLICIES) & (summary["n"] == summary["n"].max())].copy()
    if learned.empty:
        return pd.DataFrame()
    learned["estimate"] = learned["truth"] + learned["bias"]
    table = learned.pivot_table(index=["logging", "target"], columns="estimator", values="estimate", sort=False)
    truths = learned.groupby(["logging", "target"], sort=False)[["truth", "truth_se"]].first()
    table = truths.join(table).reset_index().merge(
        logging_truths.rename(columns={"truth": "logging_truth", "truth_se": "logging_truth_se"}), on="logging")
    table["gain"] = table["truth"] - table["logging_truth"]
    first = ["logging", "target", "logging_truth", "logging_truth_se", "truth", "truth_se", "gain"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.rename(columns={"target": "policy"})
