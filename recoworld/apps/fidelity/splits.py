r"""The fidelity report's three splits, each against the same baselines, with intervals.

**Splits.**

* ``latest``: each user's latest ratings, held out of the world under test (the split the
  world was calibrated with).
* ``time``: a global time cut — every rating after the date that leaves the latest 20% of
  all ratings after it, for the users seen before it. The report fits a world of its own,
  with the world's settings, on the ratings before the cut.
* ``users``: held-out users. A world is fitted with 10% of the users folded in: the item
  side of the choice model never sees them, and each one's interest is fitted on their
  own early ratings (their first 80%) with the items held fixed
  (:func:`~recoworld.calibration.choice.fit_choice`); their latest ratings are held out.

In every split the *calibrated user* is the simulator's click probability of the fitted
(or folded-in) user at a session start, as in the rest of the report.

**Baselines**, each fitted on the split's training ratings (for ``users``, the held-out
users' early ratings included, as a recommender would), each turned into probabilities by
Platt scaling on a validation fold (the same fit on the ratings before each user's latest
20% of training ratings, scaled there), as the calibrated user is:

* *popularity*: the item's number of training ratings (log);
* *recent popularity*: its ratings in the :data:`RECENT_DAYS` days before the user's
  held-out period (the cut date, or the user's first held-out rating);
* *MF*: the logistic matrix factorisation of the calibrated user with every rating weighed
  alike, no item-to-item term (:data:`~recoworld.apps.fidelity.evaluation.BASELINE`); its
  ratings are the biased MF's;
* *EASE*: the item-to-item model of Steck, "Embarrassingly shallow autoencoders for sparse
  data", WWW 2019, closed form, on all ratings alike.

**Metrics**, each with a 95% bootstrap interval over the users the split scores, those
with held-out ratings (for ``users``, the folded-in ones), resampled alone so that every
resample holds as many of them as the split (:mod:`recoworld.calibration.bootstrap`;
a split that scores one user has no interval, and neither has a metric undefined on more
than 5% of the resamples, such as a reliability bin of one or two users: their ends are
NaN, and each interval says on how many draws it rests, ``n_draws`` and ``n_defined``):
mean per-user AUC against never-rated items; F1 at 1:1, 1:3 and 1:9; rating RMSE; and
the calibration curve of the 1:1 lists with its expected calibration error.

**A split that cannot be scored** raises
:class:`~recoworld.apps.calibrate.folds.CalibrationDataError` saying why
(:func:`check_scorable`): nothing held out (no user rated both before and after the time
cut; no folded-in user with held-out ratings; too few users to fold any in), an empty
validation fold, or a split world the calibration refuses. ``recoworld fidelity`` then
reports the reason in place of the split.

**Decision thresholds.** F1 is reported twice per mix: for "would watch" = probability
above 1/2, and above a threshold chosen for that mix on the *validation* fold's lists
(:func:`~recoworld.calibration.metrics.f1_threshold`). Even a probability calibrated to
the mix maximises F1 at about half the best F1, not at 1/2 (Lipton, Elkan and
Naryanaswamy, 2014), and the models' probabilities are calibrated to the even mix only;
choosing the threshold on the test lists would fit the score to them. The validation
lists are built as the test lists are (:func:`decision_lists`), from the validation
fold's ratings against the items never rated in training, and scored with each model
fitted without that fold (for the calibrated user, the choice model its Platt scaling was
fitted on: step 3 of :mod:`recoworld.apps.calibrate.fit`). The targets read F1 at the
validation-chosen threshold.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from recoworld.apps.calibrate.choices import fit_validation_choices
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.folds import CalibrationDataError, Folds
from recoworld.apps.calibrate.progress import torch_threads
from recoworld.apps.fidelity.evaluation import (
    BASELINE,
    RATING_MF_L2,
    at_least,
    rating_level,
    short_lists,
    simulated_probabilities,
)
from recoworld.calibration import bootstrap
from recoworld.calibration.choice import (
    ChoiceFitConfig,
    fit_choice,
    neighbourhood_scores,
    platt_scaling,
    rating_weights,
)
from recoworld.calibration.metrics import Lists, f1_threshold, one_to_m_lists, user_auc
from recoworld.calibration.ratings import expected_rating, fit_rating_mf
from recoworld.calibration.split import DAY, Split, interaction_matrix
from recoworld.simulators.calibrated import CalibratedWorld

SPLIT_KINDS = ("latest", "time", "users")
RATIOS = (1, 3, 9)
#: The window of recent popularity.
RECENT_DAYS = 30
#: Share of the users held out of the ``users`` split's fit.
HELD_OUT_USERS = 0.1
#: EASE's penalty (as the calibrated user's item-to-item term).
EASE_L2 = 1000.0
BASELINES = ("popularity", "recent popularity", "MF", "EASE")
#: Fewest scored users whose resampling gives an interval (one user resampled is always itself).
MIN_INTERVAL_USERS = 2


def settings_of(world: CalibratedWorld) -> CalibrationConfig:
    """The :class:`CalibrationConfig` the world was fitted with (from its ``meta``)."""
    settings = dict(world.meta.get("calibration", {}))
    settings["choice"] = ChoiceFitConfig(**settings.get("choice", {}))
    return CalibrationConfig(**settings)


def split_world(world: CalibratedWorld, data, kind: str) -> tuple[CalibratedWorld, Folds]:
    """The world under test on split ``kind`` and its folds: the world itself for
    ``latest``, a world fitted for the split otherwise (module docstring)."""
    config = settings_of(world)
    if kind == "time":
        config = replace(config, split="time")
    elif kind == "users":
        config = replace(config, held_out_users=HELD_OUT_USERS)
    elif kind != "latest":
        raise ValueError(f"split {kind!r}; choose among {SPLIT_KINDS}")
    try:
        folds = Folds.cut(data, config.holdout_fraction, config.validation_fraction, config.users, config.seed,
                          config.split, config.held_out_users)
    except ValueError as error:  # e.g. too few users to fold 10% of them in
        raise CalibrationDataError(f"split {kind} cannot be cut: {error}") from None
    check_scorable(folds, kind)
    if kind == "latest":
        return world, folds
    # Sessions do not enter the click probabilities: a small fit of the leave hazard will do,
    # and the simulated lives (half of a small world's fit) are not fitted at all.
    return calibrate(replace(config, leave_users=min(config.leave_users, 60), leave_steps=20, lives_iterations=0),
                     data=data, progress=False), folds


def scored_users(folds: Folds, kind: str) -> torch.Tensor:
    """``[n_users]`` the users split ``kind`` scores: those with held-out ratings (for
    ``users``, among the folded-in users)."""
    held = torch.zeros(folds.n_users, dtype=torch.bool)
    held[torch.tensor(folds.split.test["user_id"].to_numpy(np.int64))] = True
    return held & folds.fold_in if kind == "users" else held


def check_scorable(folds: Folds, kind: str) -> None:
    """Raise :class:`~recoworld.apps.calibrate.folds.CalibrationDataError`, saying why, if
    split ``kind`` holds out nothing to score or leaves nothing to choose thresholds on."""
    when = "" if folds.cut_time is None else f" (cut at {_date(folds.cut_time)})"
    if not scored_users(folds, kind).any():
        why = {"time": "no user rated something both before and after the cut",
               "users": "no folded-in user has held-out ratings"}.get(kind, "no user has held-out ratings")
        raise CalibrationDataError(f"split {kind}{when} holds out nothing to score: {why}")
    if folds.inner.test.empty:
        raise CalibrationDataError(f"split {kind}{when} has an empty validation fold (cut at "
                                   f"{_date(folds.inner_cut_time) if folds.inner_cut_time else 'each user'}), "
                                   "on which the baselines are scaled and the thresholds chosen")


def _date(stamp: int) -> str:
    return pd.Timestamp(stamp, unit="s").strftime("%Y-%m-%d %H:%M")


def bootstrap_draws(scored: torch.Tensor, draws: int, seed: int) -> np.ndarray:
    """``[draws, n_users]`` resamples of the ``scored`` users alone (the others weigh 0):
    each resample holds as many scored users as the split, so none is empty of them."""
    rows = scored.nonzero().flatten().numpy()
    weights = np.zeros((draws, len(scored)))
    weights[:, rows] = bootstrap.user_draws(len(rows), draws, seed)
    return weights


def without_intervals(tree):
    """``tree`` with every interval's ends undefined (NaN): one user cannot be resampled."""
    if isinstance(tree, dict):
        if {"value", "low", "high"} <= set(tree):
            return {**tree, "low": float("nan"), "high": float("nan")}
        return {key: without_intervals(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [without_intervals(value) for value in tree]
    return tree


def reference_times(split: Split, cut_time: int | None) -> np.ndarray:
    """``[n_users]`` the start of each user's held-out period in ``split``: ``cut_time``
    for a split cut at a date, else their first held-out rating (their last training
    rating if none is held out)."""
    if cut_time is not None:
        return np.full(split.n_users, cut_time, dtype=np.int64)
    first = split.test.groupby("user_id")["timestamp"].min()
    last_train = split.train.groupby("user_id")["timestamp"].max()
    fallback = last_train.reindex(range(split.n_users)).fillna(0).to_numpy()
    return first.reindex(range(split.n_users)).fillna(pd.Series(fallback)).to_numpy().astype(np.int64)


def recent_counts(train: pd.DataFrame, times: np.ndarray, n_items: int, days: float = RECENT_DAYS) -> torch.Tensor:
    """``[n_users, n_items]`` each item's training ratings in the ``days`` before each user's time."""
    order = np.argsort(train["timestamp"].to_numpy(), kind="stable")
    stamps, items = train["timestamp"].to_numpy()[order], train["item_id"].to_numpy()[order]
    counts = np.zeros((len(times), n_items))
    for i in range(n_items):
        at = stamps[items == i]
        counts[:, i] = np.searchsorted(at, times, side="left") - np.searchsorted(at, times - days * DAY, side="left")
    return torch.tensor(counts, dtype=torch.float32)


def baseline_scores(name: str, ratings: pd.DataFrame, folds: Folds, times: np.ndarray) -> torch.Tensor:
    """``[n_users, n_items]`` scores of baseline ``name`` fitted on ``ratings``."""
    n_users, n_items = folds.n_users, folds.n_items
    if name == "popularity":
        return torch.log1p(torch.tensor(np.bincount(ratings["item_id"], minlength=n_items),
                                        dtype=torch.float32))[None, :].expand(n_users, n_items).contiguous()
    if name == "recent popularity":
        return torch.log1p(recent_counts(ratings, times, n_items))
    weights = rating_weights(ratings, n_users, n_items, None)
    if name == "MF":
        return fit_choice(weights, BASELINE).logits()
    if name == "EASE":
        return neighbourhood_scores(weights, EASE_L2)
    raise ValueError(f"baseline {name!r}; choose among {BASELINES}")


def baseline_probabilities(name: str, folds: Folds) -> tuple[torch.Tensor, torch.Tensor]:
    """Baseline ``name`` fitted without the validation fold and Platt-scaled on it, and
    fitted on the split's training ratings with that scaling: the probabilities of both,
    each fold's recent popularity counted before its own held-out period."""
    inner, n_users, n_items = folds.inner, folds.n_users, folds.n_items
    times = reference_times(folds.split, folds.cut_time)
    validation = baseline_scores(name, inner.train, folds, reference_times(inner, folds.inner_cut_time))
    positive = interaction_matrix(inner.test, n_users, n_items)
    never = ~interaction_matrix(folds.split.train, n_users, n_items)
    scale, shift = platt_scaling(validation, positive, never)
    return (torch.sigmoid(scale * validation + shift),
            torch.sigmoid(scale * baseline_scores(name, folds.split.train, folds, times) + shift))


def calibrated_validation_probabilities(world: CalibratedWorld, folds: Folds) -> torch.Tensor:
    """The calibrated user's choice probabilities on the validation fold: the choice model
    fitted without the fold and Platt-scaled on it, at the world's exposure odds."""
    config = settings_of(world)
    fit = fit_validation_choices(folds, config.choice)
    return torch.sigmoid(fit.logits - float(np.log(config.exposure_odds)))


def decision_lists(positive: torch.Tensor, never: torch.Tensor, seed: int) -> dict[int, Lists]:
    """The 1:m lists of every mix of :data:`RATIOS` (mix ``m`` drawn with ``seed + m``), for
    the test and the validation fold alike."""
    return {m: one_to_m_lists(positive, never, m, seed=seed + m) for m in RATIOS}


def decision_thresholds(probability: torch.Tensor, lists: dict[int, Lists]) -> dict[int, float]:
    """Per mix, the threshold that maximises F1 on ``lists`` (module docstring)."""
    return {m: f1_threshold(probability[shown.users, shown.items], shown.labels) for m, shown in lists.items()}


def model_scores(probability: torch.Tensor, positive: torch.Tensor, never: torch.Tensor, lists: dict[int, Lists],
                 thresholds: dict[int, float], weights: np.ndarray) -> dict:
    """AUC, F1 at every 1:m (at 1/2 and at the validation-chosen ``thresholds``) and the
    1:1 calibration curve of one model, with intervals."""
    n_users = probability.shape[0]
    entry = {"auc": bootstrap.mean_auc(user_auc(probability, positive, never), weights),
             "decision_threshold": {f"1:{m}": t for m, t in thresholds.items()}}
    for m, shown in lists.items():
        p = probability[shown.users, shown.items]
        entry[f"f1_1to{m}"] = bootstrap.pooled_f1(p, shown.labels, shown.users, n_users, weights)
        entry[f"f1_1to{m}_at_validation_threshold"] = bootstrap.pooled_f1(p, shown.labels, shown.users, n_users,
                                                                          weights, thresholds[m])
        if m == 1:
            entry["calibration"] = bootstrap.reliability(p, shown.labels, shown.users, n_users, weights)
    return entry


def rating_errors(world: CalibratedWorld, calibrated: torch.Tensor, split: Split, rows: torch.Tensor,
                  weights: np.ndarray) -> dict:
    """RMSE with intervals of the calibrated user, the biased MF, the item mean and the
    global mean on the held-out ratings of the users in ``rows``."""
    test, train = split.test[rows.numpy()[split.test["user_id"].to_numpy()]], split.train
    users, items = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    real = test["rating"].to_numpy(np.float64)
    level = rating_level(world, calibrated, torch.tensor(users), torch.tensor(items))
    mf = fit_rating_mf(train["user_id"], train["item_id"], train["rating"], split.n_users, split.n_items,
                       l2=RATING_MF_L2)
    sums = np.bincount(train["item_id"], weights=train["rating"].to_numpy(np.float64), minlength=split.n_items)
    counts = np.bincount(train["item_id"], minlength=split.n_items)
    item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), train["rating"].mean())
    predictions = {"calibrated user": expected_rating(level, world.config.rating_noise).numpy(),
                   "MF": mf.predict(users, items).numpy(), "item mean": item_mean[items],
                   "global mean": np.full(len(real), train["rating"].mean())}
    return {name: bootstrap.user_rmse(p - real, users, split.n_users, weights) for name, p in predictions.items()}


def evaluate_split(world: CalibratedWorld, data, kind: str, seed: int = 0, draws: int = 200,
                   threads: int = 1) -> dict:
    """Every model's scores on split ``kind`` (module docstring), with ``threads`` torch
    threads (the tensors are small: more threads only contend on a busy machine)."""
    with torch_threads(threads):
        return _evaluate_split(world, data, kind, seed, draws)


def _evaluate_split(world: CalibratedWorld, data, kind: str, seed: int, draws: int) -> dict:
    tested, folds = split_world(world, data, kind)
    split, inner, n_users, n_items = folds.split, folds.inner, folds.n_users, folds.n_items
    rows = folds.fold_in if kind == "users" else torch.ones(n_users, dtype=torch.bool)
    positive = interaction_matrix(split.test, n_users, n_items) & rows[:, None]
    trained = interaction_matrix(split.train, n_users, n_items)
    never = ~(interaction_matrix(split.test, n_users, n_items) | trained)
    lists = decision_lists(positive, never, seed)
    short = short_lists(lists)
    # The validation fold's lists: its ratings against the items never rated in training.
    validation_lists = decision_lists(interaction_matrix(inner.test, n_users, n_items) & rows[:, None], ~trained, seed)
    scored = scored_users(folds, kind)
    weights = bootstrap_draws(scored, draws, seed)
    calibrated = simulated_probabilities(tested)
    models = {"calibrated user": (calibrated_validation_probabilities(tested, folds), calibrated),
              **{name: baseline_probabilities(name, folds) for name in BASELINES}}
    out = {"models": {name: model_scores(p, positive, never, lists, decision_thresholds(validation, validation_lists),
                                         weights) for name, (validation, p) in models.items()},
           "users": int((positive.any(1)).sum()), "held_out": int(positive.sum()), "train": len(split.train),
           "cut_time": folds.cut_time, **({"short_lists": short} if short else {})}
    if folds.data.has_ratings:
        out["rmse"] = rating_errors(tested, calibrated, split, rows, weights)
    return out if scored.sum() >= MIN_INTERVAL_USERS else without_intervals(out)


def split_targets(splits: dict, auc: float, f1: float, margin: float) -> dict[str, bool | None]:
    """The issue's targets: on ``latest``, AUC >= ``auc`` and F1 at 1:1 (at the threshold
    chosen on the validation fold) >= ``f1``; on ``time``, AUC at least ``margin`` above
    both popularity baselines and no worse than the best baseline (``None`` where a figure
    is undefined)."""
    out = {}
    if "latest" in splits:
        models = splits["latest"]["models"]["calibrated user"]
        out[f"latest: AUC >= {auc}"] = at_least(models["auc"]["value"], auc)
        out[f"latest: F1 at 1:1 (validation-chosen threshold) >= {f1}"] = \
            at_least(models["f1_1to1_at_validation_threshold"]["value"], f1)
    if "time" in splits:
        models = {k: v["auc"]["value"] for k, v in splits["time"]["models"].items()}
        popular = np.max([models["popularity"], models["recent popularity"]])  # NaN if either is
        out[f"time cut: AUC >= popularity baselines + {margin}"] = at_least(models["calibrated user"],
                                                                            popular + margin)
        out["time cut: AUC >= best baseline"] = at_least(models["calibrated user"],
                                                         np.max([models[b] for b in BASELINES]))
    return out
