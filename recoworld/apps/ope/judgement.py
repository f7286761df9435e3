"""The verdict of ``recoworld ope evaluate``'s report, for table and slate logs alike: which
estimates to trust, and a note on each (:func:`judge`)."""

from __future__ import annotations

import numpy as np

from recoworld.ope.diagnostics import INCONSISTENT, NOT_IDENTIFIED, support_problem
from recoworld.ope.selection import Selection, verdict


def judge(rows: list[dict], diagnostics: dict, layout: dict, weighting: tuple, selection: Selection, args,
          propensity: dict) -> tuple[bool, str, list[str]]:
    """``(trustworthy, sentence, warnings)`` of a report, and a ``note`` on each estimate row.

    ``layout`` maps each estimator to the weights (a key of ``diagnostics``) whose support
    it needs: a weighting estimator's own, and for DM the weights of the choices its reward
    model learns from; ``weighting`` names the estimators that reweight rounds; ``propensity``
    names the logged column behind each layout.
    :func:`~recoworld.ope.diagnostics.support_problem` is asked about each layout: a row
    whose layout is not identified, or whose propensities are inconsistent (weighting
    estimators only: DM reads no propensity), is noted so; a weighting estimator with an
    effective sample size below ``--min-ess`` is noted with it. The verdict is
    :func:`~recoworld.ope.selection.verdict`'s unless the log's propensities are
    inconsistent, or the recommended estimator's layout is not identified: then no estimate
    is trustworthy, and the sentence says why.
    """
    problems = {name: support_problem(values, propensity[name]) for name, values in diagnostics.items()}
    for row in rows:
        name = row["estimator"]
        found = problems.get(layout.get(name))
        if found is not None and (found.kind == NOT_IDENTIFIED or name in weighting):
            row["note"] = found.kind
        elif name in weighting and diagnostics[layout[name]]["ess"] < args.min_ess:
            row["note"] = f"ESS {diagnostics[layout[name]]['ess']:.0f} < {args.min_ess:g}"
        else:
            row["note"] = ""
    recommended = selection.recommended
    ess = diagnostics[layout[recommended]]["ess"] if recommended in weighting else np.inf
    trusted, sentence = verdict(selection, ess, args.min_ess, args.max_relative_rmse, weighting=weighting)
    inconsistent = [found for found in problems.values() if found is not None and found.kind == INCONSISTENT]
    own = problems.get(layout.get(recommended))
    if inconsistent:
        trusted, sentence = False, f"no estimate is trustworthy: {inconsistent[0].sentence}"
    elif own is not None:
        trusted = False
        sentence = f"no estimate is trustworthy: {recommended}, the least RMSE on simulated logs, is {own.sentence}"
    named = len(diagnostics) > 1
    warnings = [f"{name} weights: {found.sentence}" if named else found.sentence
                for name, found in problems.items() if found is not None and found.sentence not in sentence]
    return trusted, sentence, warnings
