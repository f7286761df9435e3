"""The numbers of the fidelity report: the calibrated user and the MF baselines on held-out ratings.

Each stage of :func:`evaluate` is one function, named after the report's section it
fills (:mod:`recoworld.apps.fidelity.report` describes the sections and the models):
:func:`choice_scores` and :func:`segment_scores` (discrimination and the 1:m protocol),
:func:`rating_scores` (ratings), :func:`consumption_realism` (aggregate realism) and
:func:`targets`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.apps.calibrate.folds import CalibrationDataError, fingerprint, subsample
from recoworld.apps.calibrate.progress import Stages, torch_threads
from recoworld.calibration.choice import ChoiceFitConfig, fit_choice, rating_weights
from recoworld.calibration.metrics import (Lists, concentration_curve, decide, expected_decisions,
                                           genre_shares, gini, one_to_m_lists, rmse, user_auc)
from recoworld.calibration.ratings import RatingMF, expected_rating, fit_rating_mf, star_probabilities
from recoworld.calibration.split import Split, holdout_split, interaction_matrix
from recoworld.data.interactions import UNKNOWN
from recoworld.data.movielens import MovieLens100K, load_movielens_100k
from recoworld.simulators.calibrated import CalibratedWorld
from recoworld.simulators.population_specs import select
from recoworld.simulators.statistical import StatisticalUsers

#: The plain MF baseline: the choice model's factorisation alone, with every rating
#: weighed alike (its L2 chosen on the same validation fold).
BASELINE = ChoiceFitConfig(half_life=None, l2=0.03, neighbourhood_weight=0.0, sequence_weight=0.0)
#: The rating baseline's L2 penalty, chosen on the validation fold by RMSE
#: (``benchmarks/RESULTS.md``).
RATING_MF_L2 = 0.15
RATIOS = (1, 3, 9)
#: Population segments (specs of :mod:`recoworld.simulators.calibrated`) the discrimination
#: results are broken down by.
SEGMENTS = {
    "women": {"gender": "F"}, "men": {"gender": "M"}, "under 25": {"age": [0, 24]}, "45 and over": {"age": [45, None]},
    "low patience": {"patience": "low"}, "high patience": {"patience": "high"},
    "mostly Sci-Fi": {"favourite_genre": "Sci-Fi"}, "mostly Horror": {"favourite_genre": "Horror"},
}
TARGETS = {"auc": 0.90, "f1_1to1": 0.75}


@dataclass(frozen=True)
class HeldOut:
    """The split as ``[n_users, n_items]`` masks: held-out (``positive``), trained, and
    never rated (``never``)."""

    split: Split
    positive: torch.Tensor
    trained: torch.Tensor
    never: torch.Tensor

    @classmethod
    def of(cls, split: Split, n_users: int, n_items: int) -> HeldOut:
        positive = interaction_matrix(split.test, n_users, n_items)
        trained = interaction_matrix(split.train, n_users, n_items)
        return cls(split, positive, trained, ~(positive | trained))


def split_summary(held: HeldOut) -> dict:
    """The split's sizes for the report: its training and held-out rows, and the users who
    hold a held-out row, those scored (a user too light to hold one out is not: counted, the
    report's opening line would give a larger count than its split section)."""
    return {"train": len(held.split.train), "held_out": len(held.split.test), "users": int(held.positive.any(1).sum())}


def source_data(world: CalibratedWorld, data: str | Path | None = None, items: str | Path | None = None,
                users: str | Path | None = None) -> MovieLens100K:
    """The data the world was calibrated on, read again from where ``meta["data"]["source"]``
    says (MovieLens-100K for worlds that do not say), or, for an interaction log that moved,
    from ``data`` with its tables ``items`` and ``users`` (those not given are read from
    where they were)."""
    source = world.meta.get("data", {}).get("source", {"kind": "movielens-100k"})
    if data is not None and source["kind"] != "interactions":
        raise ValueError(f"--data {data}: this world was not calibrated on an interaction log (its data: "
                         f"{source['kind']}); leave --data out")
    if source["kind"] == "movielens-100k":
        return load_movielens_100k()
    if source["kind"] == "interactions":
        from recoworld.data.interactions import load_interactions

        if data is not None:
            return load_interactions(data, items if items is not None else source.get("items"),
                                     users if users is not None else source.get("users"))
        return load_interactions(source["data"], source.get("items"), source.get("users"))
    raise ValueError("this world was calibrated on data given in Python (calibrate(data=...)); pass the same "
                     "data to the report (evaluate(world, data=...))")


def data_name(world: CalibratedWorld) -> str:
    """What the world was calibrated on, for the report's title: MovieLens-100K, or the log's file."""
    source = world.meta.get("data", {}).get("source", {"kind": "movielens-100k"})
    if source["kind"] == "movielens-100k":
        return "MovieLens-100K"
    return Path(source["data"]).name if source.get("data") else "data given in Python"


def held_out_split(world: CalibratedWorld, data: MovieLens100K | None = None,
                   folder: str | Path | None = None) -> tuple[MovieLens100K, Split]:
    """The data and the split the world was calibrated on (checked against its fingerprint);
    ``folder``, where the world is, for the advice to fit it again (``None``: named FOLDER)."""
    settings = world.meta.get("calibration", {})
    data = data if data is not None else source_data(world)
    if settings.get("users") is not None:
        data = _fitted_users(data, settings["users"], settings.get("seed", 0))
    split = holdout_split(data.ratings, settings.get("holdout_fraction", 0.2), len(data.users), len(data.items))
    expected = world.meta.get("split", {}).get("test_fingerprint")
    if expected is not None and fingerprint(split.test) != expected:
        raise ValueError("the held-out ratings differ from those the world was calibrated without; the data or "
                         f"the split changed since: fit the world again, {refit_advice(world, data, folder)}")
    if split.test.empty:
        raise ValueError("the world was calibrated without held-out ratings (holdout_fraction=0)")
    return data, split


def _fitted_users(data: MovieLens100K, users: int, seed: int) -> MovieLens100K:
    """The ``users`` users of ``data`` drawn with ``seed`` that the world fitted, refused
    naming the world's setting where ``data`` has fewer: the refusal of
    :func:`~recoworld.apps.calibrate.folds.subsample` names calibrate's ``--users``, which
    is not ``recoworld fidelity``'s (the kinds of users to evaluate)."""
    try:
        return subsample(data, users, seed)
    except CalibrationDataError:
        total = len(data.users)
        raise CalibrationDataError(
            f"the world was calibrated on {users} users drawn from its data (its calibration setting users={users}), "
            f"but the data has {total} users: give the data the world was fitted on, or calibrate a world on this "
            f"data (`recoworld calibrate --users` 1..{total}, or every user)") from None


def refit_advice(world: CalibratedWorld, data: MovieLens100K, folder: str | Path | None = None) -> str:
    """How to fit ``world`` again into ``folder`` (:meth:`CalibratedWorld.refit_advice`) from
    ``data``: a log read from where the report was told it is now (``--data``) is the one to
    fit, not the path the world recorded."""
    recorded = world.meta.get("data", {}).get("source", {})
    if recorded.get("kind") == "interactions" and data.source.get("kind") == "interactions":
        world = replace(world, meta={**world.meta, "data": {**world.meta["data"], "source": data.source}})
    return world.refit_advice(folder)


def simulated_probabilities(world: CalibratedWorld, chunk: int = 256) -> torch.Tensor:
    """``[n_users, n_items]``: each fitted user's click probability of every item at a session start."""
    population = world.population()
    n_users, n_items = len(world.users), world.catalog.n_items
    out = torch.empty(n_users, n_items)
    items = torch.arange(n_items)
    for start in range(0, n_users, chunk):
        rows = np.arange(start, min(start + chunk, n_users))
        sim = StatisticalUsers(world.catalog, world.config, population.pinned(rows, rows))
        sim.reset(len(rows), seed=torch.as_tensor(rows))
        out[rows] = sim.click_probabilities(items[None, :].expand(len(rows), n_items).contiguous())
    return out


def simulated_consumption(probability: torch.Tensor, allowed: torch.Tensor, counts: torch.Tensor,
                          seed: int = 0) -> torch.Tensor:
    r"""``[n_items]`` times each item is consumed when user ``b`` takes ``counts[b]`` allowed items.

    The choice models are fitted with each user's unchosen items weighted up to the mass
    of the chosen ones, so their logit is the log-odds of choosing an item *plus* a
    per-user constant (the log of that weight): the implied chance that the user picks
    item :math:`i` out of the whole catalog is proportional to the odds
    :math:`p_{bi}/(1 - p_{bi})`, not to :math:`p_{bi}`. Items are drawn without replacement
    with those weights (Efraimidis and Spirakis, "Weighted random sampling with a
    reservoir", IPL 2006: the largest keys :math:`u^{1/w}`).
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(probability.shape, generator=gen, dtype=torch.float64)
    p = probability.double().clamp(1e-12, 1 - 1e-12)
    keys = torch.log(u) / (p / (1 - p))
    keys = keys.masked_fill(~allowed, -torch.inf)
    order = torch.argsort(keys, dim=1, descending=True)
    taken = torch.arange(probability.shape[1])[None, :] < counts[:, None]
    consumed = torch.zeros(probability.shape[1])
    consumed.index_add_(0, order[taken], torch.ones(int(taken.sum())))
    return consumed


def evaluate(world: CalibratedWorld, data: MovieLens100K | None = None, seed: int = 0,
             stages: Stages | None = None, threads: int = 1) -> dict:
    """Every number of the report, as a dict (plots' data under ``"curves"``).

    ``threads``: torch threads meanwhile; the tensors are small, so one thread wastes
    nothing and keeps a busy machine from slowing the run down.
    """
    with torch_threads(threads):
        return _evaluate(world, data, seed, stages or Stages(5, False, "fidelity"))


def _evaluate(world: CalibratedWorld, data: MovieLens100K | None, seed: int, stages: Stages) -> dict:
    with stages.stage("recomputing the held-out split"):
        data, split = held_out_split(world, data)
        held = HeldOut.of(split, len(data.users), len(data.items))
    with stages.stage("simulating the calibrated users"):
        calibrated = simulated_probabilities(world)
    has_ratings = data.has_ratings
    with stages.stage("fitting the MF baselines"):
        train = split.train
        baseline = torch.sigmoid(fit_choice(rating_weights(train, *held.positive.shape, None), BASELINE).logits())
        rating_mf = (fit_rating_mf(train["user_id"], train["item_id"], train["rating"], *held.positive.shape,
                                   l2=RATING_MF_L2) if has_ratings else None)
    models = {"calibrated user": calibrated, "MF baseline": baseline}
    results: dict = {"models": {}}
    lists = {m: one_to_m_lists(held.positive, held.never, m, seed=seed + m) for m in RATIOS}
    short = short_lists(lists)
    if short:
        results["short_lists"] = short
    with stages.stage("scoring choices and ratings"):
        members = segment_members(world.users)
        for name, probability in models.items():
            auc = user_auc(probability, held.positive, held.never)
            results["models"][name] = choice_scores(probability, auc, lists)
            for segment, entry in segment_scores(probability, auc, members, lists[1]).items():
                results.setdefault("segments", {}).setdefault(segment, {
                    "population": SEGMENTS[segment], "users": int(members[segment].sum())})[name] = entry
        # A log without ratings has nothing to score the rating response against.
        results["ratings"] = rating_scores(world, calibrated, rating_mf, split, seed) if has_ratings else None
    with stages.stage("simulating consumption"):
        results.update(consumption_realism(world, models, held, seed))
    results["targets"] = targets(results["models"])
    results["split"] = split_summary(held)
    results["data"] = {"name": data_name(world), "has_ratings": has_ratings, "has_genres": has_genres(world.catalog)}
    return results


# ------------------------------------------------------- discrimination and 1:m
def choice_scores(probability: torch.Tensor, auc: torch.Tensor, lists: dict[int, Lists]) -> dict:
    """A model's mean per-user ``auc`` and its decisions on each 1:m list (thresholded at
    1/2, and as Bernoulli draws)."""
    entry = {"auc": float(auc.nanmean()), "auc_users": int((~torch.isnan(auc)).sum())}
    for m, shown in lists.items():
        p = probability[shown.users, shown.items]
        entry[f"1:{m}"] = asdict(decide(p, shown.labels))
        entry[f"1:{m} (Bernoulli draws)"] = asdict(expected_decisions(p, shown.labels))
    return entry


def short_lists(lists: dict[int, Lists]) -> dict[str, float]:
    """The mixes whose lists hold fewer than ``m`` never-rated items per held-out one (to one
    decimal), and how many they hold: a user who left fewer items unrated is given all of
    them (:func:`~recoworld.calibration.metrics.one_to_m_lists`), so on a small catalog the
    1:9 lists are a lower mix, which the report says."""
    ratios = {m: float((~shown.labels).sum() / shown.labels.sum()) for m, shown in lists.items()}
    return {f"1:{m}": ratio for m, ratio in ratios.items() if round(ratio, 1) < m}


def segment_members(users: pd.DataFrame) -> dict[str, torch.Tensor]:
    """A ``[n_users]`` mask per segment of :data:`SEGMENTS` that has members in ``users``."""
    members = {}
    for segment, spec in SEGMENTS.items():
        try:
            members[segment] = torch.as_tensor(select(users, spec)[0])
        except ValueError:  # no user in this segment (e.g. data other than MovieLens)
            continue
    return members


def segment_scores(probability: torch.Tensor, auc: torch.Tensor, members: dict[str, torch.Tensor],
                   shown: Lists) -> dict[str, dict]:
    """Per segment: the mean AUC of its users and the F1 on their 1:1 lists; both NaN
    (undefined, not 0) for a segment none of whose users has held-out ratings (a log's users
    with too few interactions to hold one out)."""
    scores = {}
    for segment, inside_segment in members.items():
        inside = inside_segment[shown.users]
        f1 = decide(probability[shown.users[inside], shown.items[inside]], shown.labels[inside]).f1
        scores[segment] = {"auc": float(auc[inside_segment].nanmean()), "f1_1to1": f1 if inside.any() else np.nan}
    return scores


# ------------------------------------------------------------------ ratings
def rating_scores(world: CalibratedWorld, calibrated: torch.Tensor, rating_mf: RatingMF, split: Split,
                  seed: int) -> dict:
    """RMSE of each rating predictor on the held-out ratings and the star distributions.

    The calibrated response is the simulator's at the held-out pairs: the rating level
    from the click probability's logit, the item's quality and the user's rating bias.
    """
    test, train = split.test, split.train
    rows, cols = torch.tensor(test["user_id"].to_numpy()), torch.tensor(test["item_id"].to_numpy())
    real_stars = test["rating"].to_numpy()
    config = world.config
    level = rating_level(world, calibrated, rows, cols)
    stars = star_probabilities(level, config.rating_noise)
    gen = torch.Generator().manual_seed(seed)
    drawn = torch.multinomial(stars.float(), 1, generator=gen)[:, 0].numpy() + 1
    mf_prediction = rating_mf.predict(rows, cols).numpy()
    n_items = split.n_items
    sums = np.bincount(train["item_id"], weights=train["rating"].to_numpy(np.float64), minlength=n_items)
    counts = np.bincount(train["item_id"], minlength=n_items)
    raw_item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), train["rating"].mean())
    return {
        "rmse": {
            "calibrated user": rmse(expected_rating(level, config.rating_noise).numpy(), real_stars),
            "MF baseline": rmse(mf_prediction, real_stars),
            "item mean": rmse(raw_item_mean[cols.numpy()], real_stars),
            "global mean": rmse(np.full(len(real_stars), train["rating"].mean()), real_stars),
        },
        "rmse_of_simulated_draws": rmse(drawn, real_stars),
        "distribution": {
            "held-out": star_shares(real_stars),
            "calibrated user (draws)": star_shares(drawn),
            "MF baseline (rounded)": star_shares(np.clip(np.round(mf_prediction), 1, 5).astype(int)),
        },
    }


def rating_level(world: CalibratedWorld, calibrated: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor) -> torch.Tensor:
    """The simulator's rating level at pairs ``(rows, cols)``, from the click probability's
    logit, the item's quality and the user's rating bias."""
    config = world.config
    utility = torch.logit(calibrated[rows, cols].double().clamp(1e-7, 1 - 1e-7))
    bias = torch.tensor(world.users["rating_bias"].to_numpy())[rows]
    return (config.rating_center + config.rating_slope * utility
            + config.rating_quality * world.catalog.quality[cols].double() + bias)


def star_shares(stars) -> list[float]:
    """Shares of 1 to 5 stars among ``stars``."""
    counts = np.bincount(np.asarray(stars, dtype=np.int64), minlength=6)[1:6]
    return (counts / max(counts.sum(), 1)).tolist()


# -------------------------------------------------------- aggregate realism
def consumption_realism(world: CalibratedWorld, models: dict[str, torch.Tensor], held: HeldOut, seed: int) -> dict:
    """``aggregate``, ``genre_shares`` and ``curves`` of the held-out consumption and of
    each model's simulated one (:func:`simulated_consumption`: each user takes, among the
    items they did not rate in training, as many as they really did in the held-out period)."""
    catalog = world.catalog
    n_items = held.positive.shape[1]
    consumption = {"held-out": held.positive.sum(0).float()}
    for name, probability in models.items():
        consumption[name] = simulated_consumption(probability, ~held.trained, held.positive.sum(1), seed=seed)
    order = catalog.popularity.numpy()
    weights = catalog.genre_weights.numpy()
    curves, shares, aggregate = {}, {}, {}
    for name, counts in consumption.items():
        x, y = concentration_curve(counts.numpy(), order)
        curves[name] = (x, y)
        shares[name] = genre_shares(counts.numpy(), weights)
        top = int(round(0.1 * n_items))
        aggregate[name] = {"gini": gini(counts.numpy()), "top10%_share": float(y[top - 1]),
                           "items_consumed": int((counts > 0).sum())}
    if not has_genres(catalog):  # one placeholder genre: every share is 1, every distance 0, nothing measured
        return {"aggregate": aggregate, "genre_shares": None,
                "curves": {name: {"x": x.tolist(), "y": y.tolist()} for name, (x, y) in curves.items()}}
    for name in models:
        aggregate[name]["genre_total_variation"] = float(0.5 * np.abs(shares[name] - shares["held-out"]).sum())
    return {
        "aggregate": aggregate,
        "genre_shares": {name: dict(zip(catalog.genre_names, map(float, s))) for name, s in shares.items()},
        "curves": {name: {"x": x.tolist(), "y": y.tolist()} for name, (x, y) in curves.items()},
    }


def has_genres(catalog) -> bool:
    """Whether the catalog's items have genres: a log calibrated without an item table, or
    with one without a ``genres`` column, puts every item in the one placeholder genre
    ``unknown`` (:mod:`recoworld.data.interactions`), which no genre statistic can read."""
    return any(name != UNKNOWN for name in catalog.genre_names)


def at_least(value: float, floor: float) -> bool | None:
    """The verdict ``value >= floor``; ``None`` (no verdict) where either is undefined (NaN)."""
    return None if np.isnan(value) or np.isnan(floor) else bool(value >= floor)


def targets(models: dict) -> dict[str, bool | None]:
    """Whether the calibrated user meets :data:`TARGETS` and beats the MF baseline's AUC
    (``None`` where a figure is undefined)."""
    calibrated = models["calibrated user"]
    return {
        "auc >= 0.90": at_least(calibrated["auc"], TARGETS["auc"]),
        "auc >= MF baseline": at_least(calibrated["auc"], models["MF baseline"]["auc"]),
        "F1 at 1:1 >= 0.75": at_least(calibrated["1:1"]["f1"], TARGETS["f1_1to1"]),
    }
