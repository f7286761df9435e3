"""Steps 3 and 4 of ``recoworld calibrate`` (:mod:`~recoworld.apps.calibrate.fit`): the
choice model fitted without the validation fold and scaled on it, then fitted on the whole
training split, scaled alike and written in the simulator's terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recoworld.apps.calibrate.folds import CalibrationDataError, Folds
from recoworld.calibration.choice import (ChoiceFitConfig, UtilityTerms, decompose, fit_choice, platt_scaling,
                                          rating_weights)
from recoworld.calibration.metrics import user_auc
from recoworld.calibration.split import interaction_matrix
from recoworld.calibration.trend import TrendScaling, fit_trend_scaling, trend_terms, user_trend_terms
from recoworld.catalog import Catalog, popularity_score


@dataclass
class ValidationFit:
    """What the choice model fitted without the validation fold says about that fold:
    its per-user ``auc``, the Platt ``scale`` and ``shift``, the scaled ``logits`` of
    every (user, item) pair and the ``utility`` at each of the fold's ratings; for a world
    cut at a date, the ``trend`` scaling that replaces Platt's
    (:mod:`~recoworld.calibration.trend`)."""

    auc: float
    scale: float
    shift: float
    logits: torch.Tensor
    utility: torch.Tensor
    trend: TrendScaling | None = None


def fit_validation_choices(folds: Folds, choice: ChoiceFitConfig) -> ValidationFit:
    """Step 3: the choice model on the training split minus the validation fold, Platt-scaled
    on that fold; with the items' trend and the users' terms at the fold's date where the
    world is cut at a date (``split="time"``): such a world stands for its users at that
    date, and is asked what they do after it. Each user's latest ratings have no one date,
    so the other split keeps Platt's scaling (benchmarks/RESULTS.md has both on both)."""
    inner, n_users, n_items = folds.inner, folds.n_users, folds.n_items
    model = fit_choice(rating_weights(inner.train, n_users, n_items, choice.half_life), choice, folds.fold_in,
                       inner.train)
    positive = interaction_matrix(inner.test, n_users, n_items)
    never = ~interaction_matrix(folds.split.train, n_users, n_items)
    logits = model.logits()
    auc = float(user_auc(logits, positive, never).nanmean())
    scale, shift = platt_scaling(logits, positive, never)
    # Both are needed: the scale is fitted over every (user, item) pair, so it can come out
    # positive while each user's own later choices rank below chance (a log of one user).
    if not (scale > 0 and auc > 0.5):
        users = f"{folds.n_users} user{'s' * (folds.n_users != 1)}"
        raise CalibrationDataError(
            f"the choice model fitted before the validation fold ranks that fold's choices at AUC {auc:.3f} (Platt "
            f"scale {scale:.3g}): no better than chance, so there is no taste to calibrate. The log is too small or "
            f"too random ({users}, {len(folds.data.ratings)} interactions); calibrate on a longer log")
    trend = None
    if folds.kind == "time":
        terms = trend_terms(inner.train, release_years(folds), n_items)
        user_terms = user_trend_terms(inner.train, n_users)
        trend = fit_trend_scaling(logits, terms, user_terms, positive, never)
        scaled = trend.logits(logits, terms, user_terms)
    else:
        scaled = scale * logits + shift
    rows, cols = torch.tensor(inner.test["user_id"].to_numpy()), torch.tensor(inner.test["item_id"].to_numpy())
    return ValidationFit(auc, scale, shift, scaled, scaled[rows, cols], trend)


def release_years(folds: Folds):
    """The items' release years, where the data has them (``None`` otherwise)."""
    return folds.data.items["release_year"] if "release_year" in folds.data.items else None


def fit_training_choices(folds: Folds, choice: ChoiceFitConfig, validation: ValidationFit,
                         catalog: Catalog) -> tuple[UtilityTerms, Catalog, dict]:
    """Step 4: the choice model on the whole training split, with the validation fold's
    Platt scaling, in the simulator's terms; the catalog with the fitted features; and
    ``meta["choice"]``."""
    model = fit_choice(rating_weights(folds.split.train, folds.n_users, folds.n_items, choice.half_life), choice,
                       folds.fold_in, folds.split.train)
    if validation.trend is not None:
        train = folds.split.train
        model = validation.trend.apply(model, trend_terms(train, release_years(folds), folds.n_items),
                                       user_trend_terms(train, folds.n_users))
    else:
        model.scale, model.shift = validation.scale, validation.shift
    pop_score = popularity_score(catalog)
    terms = decompose(model, pop_score, catalog.quality)
    catalog = Catalog(terms.features, catalog.genres, catalog.genre_names, catalog.titles, catalog.popularity,
                      catalog.quality, name=catalog.name)
    meta = {"validation_auc": validation.auc, "platt_scale": validation.scale, "platt_shift": validation.shift,
            "decomposition_error": float((terms.utility(pop_score, catalog.quality) - model.logits()).abs().max())}
    if validation.trend is not None:
        meta["trend"] = validation.trend.describe()
    return terms, catalog, meta
