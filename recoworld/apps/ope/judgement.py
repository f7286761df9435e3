"""The verdict of ``recoworld ope evaluate``'s report, for table and slate logs alike: which
estimates to trust, and a note on each (:func:`judge`)."""

from __future__ import annotations

import numpy as np

from recoworld.ope.diagnostics import INCONSISTENT, NOT_IDENTIFIED, support_problem
from recoworld.ope.selection import Selection, verdict

#: The note on an estimate the log leaves undefined (a self-normalised estimator whose
#: normalising weights sum to 0: the target gives no logged choice, or no logged choice at
#: some position, any probability); the table prints no number for it.
UNDEFINED = "undefined: its weights sum to 0"
#: The note on an estimate without an interval: a self-normalised estimator defined on the
#: log but on fewer bootstrap resamples than a ``1 - alpha`` interval needs
#: (:class:`~recoworld.ope.base.UndefinedInterval`: the log has very few rounds with weight,
#: and a resample that draws none of them has no estimate), or, for a refitted interval
#: (SNDR's), on fewer than 95% of its refits (:func:`~recoworld.ope.refit.refit_interval`);
#: the table prints the estimate without bounds.
#: Filled in with the resamples it was defined on and those drawn (``--bootstrap``, or
#: ``--refits`` for a refitted interval).
UNDEFINED_INTERVAL = "interval undefined: defined on {defined} of {drawn} resamples"
#: Why a recommended estimate has no interval, and the fix, after "defined on only m of the
#: n": of its bootstrap resamples, or of its refits (:func:`~recoworld.ope.refit.refit_interval`:
#: a resample of fewer distinct rounds than the reward model's cross-fitting folds leaves a
#: fold empty).
RESAMPLES_UNDEFINED = ("bootstrap resamples (the log has very few rounds with weight, and a resample that draws none "
                       "of them has no estimate); log more rounds, or with a policy that also makes the target's "
                       "choices")
REFITS_UNDEFINED = ("refits of its reward model (a resample of fewer distinct rounds than the model's cross-fitting "
                    "folds has no estimate, nor, for a self-normalised estimator, one that draws no round with "
                    "weight); log more rounds")


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
    effective sample size below ``--min-ess`` is noted with it, an estimate the log leaves
    undefined (NaN) with :data:`UNDEFINED`, and a defined estimate whose resampled interval
    is not (NaN bounds and the ``n_replicates`` it was defined on, of ``args.bootstrap`` or,
    refitted, ``args.refits``)
    with :data:`UNDEFINED_INTERVAL`, before its ESS note if it has one. The verdict is
    :func:`~recoworld.ope.selection.verdict`'s unless the log's propensities are
    inconsistent, the recommended estimator's layout is not identified, its estimate is
    undefined on the log, or its interval is: then no estimate is trustworthy, and the
    sentence says why.
    """
    problems = {name: support_problem(values, propensity[name]) for name, values in diagnostics.items()}
    for row in rows:
        name = row["estimator"]
        found = problems.get(layout.get(name))
        if found is not None and (found.kind == NOT_IDENTIFIED or name in weighting):
            row["note"] = found.kind
        elif not _defined(row["estimate"]):
            row["note"] = UNDEFINED
        else:
            notes = []
            if _interval_refused(row):
                notes.append(UNDEFINED_INTERVAL.format(defined=row["n_replicates"], drawn=_drawn(row, args)))
            if name in weighting and diagnostics[layout[name]]["ess"] < args.min_ess:
                notes.append(f"ESS {diagnostics[layout[name]]['ess']:.0f} < {args.min_ess:g}")
            row["note"] = "; ".join(notes)
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
    elif not all(_defined(row["estimate"]) for row in rows if row["estimator"] == recommended):
        trusted = False
        sentence = (f"no estimate is trustworthy: {recommended}, the least RMSE on simulated logs, is undefined on "
                    "this log (its normalising weights sum to 0: the target policy gives the logged choices no "
                    "probability); log with a policy that also makes the target's choices")
    elif any(_interval_refused(row) for row in rows if row["estimator"] == recommended):
        refused = next(row for row in rows if row["estimator"] == recommended)
        trusted = False
        sentence = (f"no estimate is trustworthy: {recommended}, the least RMSE on simulated logs, has no interval "
                    f"on this log: it is defined on only {refused['n_replicates']} of the {_drawn(refused, args)} "
                    + (REFITS_UNDEFINED if refused["interval"] == "refit" else RESAMPLES_UNDEFINED))
    named = len(diagnostics) > 1
    warnings = [f"{name} weights: {found.sentence}" if named else found.sentence
                for name, found in problems.items() if found is not None and found.sentence not in sentence]
    return trusted, sentence, warnings


def _drawn(row: dict, args) -> int:
    """The resamples behind a row's interval: ``--refits`` for one that refits its model,
    else ``--bootstrap``."""
    return args.refits if row["interval"] == "refit" else args.bootstrap


def _interval_refused(row: dict) -> bool:
    """Whether a row holds a defined estimate whose resampled interval was refused for too
    few defined resamples (its bounds NaN, or None once read from JSON, with the count)."""
    return (_defined(row["estimate"]) and _defined(row.get("n_replicates"))
            and not (_defined(row["lower"]) and _defined(row["upper"])))


def _defined(estimate) -> bool:
    """Whether an estimate is a number (an undefined one is NaN, or None once read from JSON)."""
    return estimate is not None and bool(np.isfinite(estimate))
