"""``recoworld calibrate``: fit the statistical user model to MovieLens-100K and save the world.

The steps, in order (each is documented in its module):

1. split each user's ratings in time: the last 20% are held out for the fidelity report,
   the last 20% of what remains is a validation fold (:mod:`~recoworld.calibration.split`);
2. build the catalog's popularity and quality from the training split only;
3. fit the choice model on the training split minus the validation fold, and Platt-scale
   it on the validation fold (:mod:`~recoworld.calibration.choice`); fit the rating
   response on the validation fold's ratings (:mod:`~recoworld.calibration.ratings`);
4. fit the choice model again on the whole training split, apply the Platt scaling, and
   decompose it into the simulator's interest, quality weight, popularity bias and
   threshold;
5. read the descriptive traits off the training ratings (:mod:`~recoworld.calibration.traits`);
6. cut sessions from all timestamps, fit activity and returns, rank patience, and fit the
   leave hazard by simulated moments (:mod:`~recoworld.apps.calibrate.dynamics`);
7. save the artifact (:class:`~recoworld.simulators.calibrated.CalibratedWorld`).

Usage::

    recoworld calibrate                 # into the cache (what load_calibrated_world reads)
    recoworld calibrate --force         # fit again even if the artifact exists
    recoworld calibrate --out DIR --users 200   # a quick fit on 200 random users
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.apps.calibrate import dynamics
from recoworld.calibration import traits
from recoworld.calibration.choice import ChoiceFitConfig, decompose, fit_choice, platt_scaling, rating_weights
from recoworld.calibration.metrics import user_auc
from recoworld.calibration.ratings import fit_rating_response
from recoworld.calibration.split import Split, cut_sessions, holdout_split, interaction_matrix
from recoworld.catalog import Catalog
from recoworld.data.movielens import MovieLens100K, load_movielens_100k
from recoworld.simulators.calibrated import CalibratedPopulation, CalibratedWorld, default_path
from recoworld.simulators.statistical import StatisticalUserConfig

# The synthetic population's novelty spread and session spread against its interest
# weight (0.5 and 0.3 against 4): the calibrated world keeps these ratios, because the
# data rank users by novelty seeking but do not fix its scale.
NOVELTY_RATIO = 0.5 / 4.0
SESSION_NOVELTY_RATIO = 0.3 / 4.0


@dataclass
class CalibrationConfig:
    r"""Settings of :func:`calibrate`.

    Attributes:
        holdout_fraction: share of each user's latest ratings held out for fidelity.
        validation_fraction: share of the remaining ratings (the latest) used to
            Platt-scale the choice model and fit the rating response.
        session_gap_minutes: a pause longer than this starts a new session.
        choice: the choice model's hyperparameters.
        exposure_odds: the assumed ratio of unwanted to wanted items among those a user
            examines, which sets the level of click-through that the data cannot (see
            :mod:`recoworld.calibration`): 1 (the default) makes :math:`\sigma(v)` the
            choice probability in an even mix, as in the 1:1 protocol; the catalog-wide
            rate of MovieLens-100K (a user rates about 6% of the movies) is about 15. The
            click threshold grows by its logarithm.
        users: fit on this many randomly drawn users only (``None``: all), for quick runs.
        leave_steps: steps of each simulated-moments run of the leave fit.
        leave_users: users (drawn at random) simulated in each of those runs.
        threads: torch threads during the fit (one is fastest for these sizes on a
            shared machine).
        seed: seed of the user subsample.
    """

    holdout_fraction: float = 0.2
    validation_fraction: float = 0.2
    session_gap_minutes: float = 30.0
    choice: ChoiceFitConfig = field(default_factory=ChoiceFitConfig)
    exposure_odds: float = 1.0
    users: int | None = None
    leave_steps: int = 80
    leave_users: int = 300
    threads: int = 1
    seed: int = 0


class Stages:
    """A one-line progress display of the fit's stages, on stderr."""

    def __init__(self, total: int, enabled: bool, label: str = "calibrate"):
        self.total, self.enabled, self.done, self.label = total, enabled, 0, label
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        if self.enabled:
            print(f"\r[{self.label} {self.done + 1}/{self.total}] {name} ...", end="", file=sys.stderr, flush=True)
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 2)
        self.done += 1
        if self.enabled:
            print(f"\r[{self.label} {self.done}/{self.total}] {name}: {self.timings[name]:.1f}s" + " " * 20,
                  file=sys.stderr, flush=True)

    @property
    def elapsed(self) -> float:
        return round(time.perf_counter() - self.start, 2)


@contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def calibrate(config: CalibrationConfig | None = None, path: str | Path | None = None,
              data: MovieLens100K | None = None, progress: bool = True) -> CalibratedWorld:
    """Fit the calibrated world and save it at ``path`` (``None``: do not save).

    Args:
        config: the fit's settings (defaults: :class:`CalibrationConfig`).
        path: the artifact folder to write.
        data: the ratings, items and users to fit (default: MovieLens-100K from the cache);
            any data set in :class:`~recoworld.data.movielens.MovieLens100K`'s layout works.
        progress: show the stages on stderr.
    """
    config = config or CalibrationConfig()
    if config.exposure_odds <= 0:
        raise ValueError(f"exposure_odds={config.exposure_odds}; it is a ratio of item counts and must be > 0")
    stages = Stages(8 if data is not None else 9, progress)
    with torch_threads(config.threads):
        if data is None:
            with stages.stage("reading MovieLens-100K"):
                data = load_movielens_100k()
        world = _fit(data, config, stages)
    world.meta["timings_s"] = {**stages.timings, "total": stages.elapsed}
    if path is not None:
        world.save(path)
        if progress:
            print(f"calibrated world saved in {path} ({stages.elapsed:.1f}s)", file=sys.stderr)
    return world


def ensure_world(path: str | Path | None = None, progress: bool = True) -> CalibratedWorld:
    """The calibrated world at ``path`` (default: the cache), fitted and saved first if missing."""
    path = default_path() if path is None else Path(path).expanduser()
    if not (path / "world.json").is_file():
        calibrate(path=path, progress=progress)
    return CalibratedWorld.load(path)


def subsample(data: MovieLens100K, n_users: int, seed: int) -> MovieLens100K:
    """``n_users`` random users of ``data`` with their ratings, ids made dense again (items kept)."""
    total = len(data.users)
    if not 1 <= n_users <= total:
        raise ValueError(f"users={n_users}; choose 1..{total}")
    chosen = np.sort(np.random.default_rng(seed).choice(total, n_users, replace=False))
    new_id = pd.Series(np.arange(n_users), index=chosen)
    ratings = data.ratings[data.ratings["user_id"].isin(chosen)]
    ratings = ratings.assign(user_id=new_id[ratings["user_id"]].to_numpy())
    users = data.users.iloc[chosen].reset_index(drop=True).assign(source_id=chosen)
    return MovieLens100K(ratings.reset_index(drop=True), data.items, users.assign(user_id=np.arange(n_users)))


def training_catalog(items: pd.DataFrame, train: pd.DataFrame, name: str) -> Catalog:
    """The items with popularity and quality (mean rating) from ``train`` only."""
    n_items = len(items)
    counts = np.bincount(train["item_id"], minlength=n_items)
    sums = np.bincount(train["item_id"], weights=train["rating"].to_numpy(dtype=np.float64), minlength=n_items)
    # An item without training ratings gets the mean rating: unknown, not bad.
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), train["rating"].mean())
    table = pd.DataFrame({"title": items["title"], "genres": items["genres"], "popularity": counts, "quality": mean})
    return Catalog.from_dataframe(table, features=None, name=name)


def popularity_score(catalog: Catalog) -> torch.Tensor:
    """The standardised log-popularity the simulator reads (``StatisticalUsers._pop_score``)."""
    lp = catalog.log_popularity
    return (lp - lp.mean()) / lp.std().clamp_min(1e-6) if lp.numel() > 1 else lp * 0


def _fit(data: MovieLens100K, config: CalibrationConfig, stages: Stages) -> CalibratedWorld:
    meta: dict = {"calibration": _jsonable(asdict(config))}
    with stages.stage("splitting ratings in time"):
        if config.users is not None:
            data = subsample(data, config.users, config.seed)
        n_users, n_items = len(data.users), len(data.items)
        ratings = data.ratings
        split = holdout_split(ratings, config.holdout_fraction, n_users, n_items)
        inner = holdout_split(split.train, config.validation_fraction, n_users, n_items)
        catalog = training_catalog(data.items, split.train, "movielens-100k-calibrated")
        inner_catalog = training_catalog(data.items, inner.train, "validation")
        meta["data"] = {
            "n_users": n_users, "n_items": n_items, "n_ratings": len(ratings),
            "fingerprint": _fingerprint(ratings),
            "source_user_ids": [int(x) for x in data.users.get("source_id", data.users["user_id"])],
        }
        meta["split"] = {"train": len(split.train), "test": len(split.test), "validation": len(inner.test),
                         "test_fingerprint": _fingerprint(split.test)}

    with stages.stage("fitting choices on the validation fold"):
        model = fit_choice(rating_weights(inner.train, n_users, n_items, config.choice.half_life), config.choice)
        positive = interaction_matrix(inner.test, n_users, n_items)
        never = ~interaction_matrix(split.train, n_users, n_items)
        logits = model.logits()
        validation_auc = float(user_auc(logits, positive, never).nanmean())
        scale, shift = platt_scaling(logits, positive, never)
        model.scale, model.shift = scale, shift
        rows, cols = torch.tensor(inner.test["user_id"].to_numpy()), torch.tensor(inner.test["item_id"].to_numpy())
        validation_utility = model.logits()[rows, cols]

    with stages.stage("fitting choices on the training split"):
        model = fit_choice(rating_weights(split.train, n_users, n_items, config.choice.half_life), config.choice)
        model.scale, model.shift = scale, shift
        pop_score = popularity_score(catalog)
        terms = decompose(model, pop_score, catalog.quality)
        catalog = Catalog(terms.features, catalog.genres, catalog.genre_names, catalog.titles, catalog.popularity,
                          catalog.quality, name=catalog.name)
        meta["choice"] = {"validation_auc": validation_auc, "platt_scale": scale, "platt_shift": shift,
                          "decomposition_error": float((terms.utility(pop_score, catalog.quality)
                                                        - model.logits()).abs().max())}

    with stages.stage("reading traits off the ratings"):
        train = split.train
        straying = traits.genre_straying(train, catalog.genre_weights, n_users)
        gap = traits.conformity_gap(train, n_users, n_items)
        offsets = traits.rating_offsets(train, n_users, n_items)
        favourite = traits.favourite_genres(train, catalog.genre_weights, catalog.genre_names, n_users)
        novelty = NOVELTY_RATIO * terms.interest_weight * np.nan_to_num(traits.normal_scores(straying))
        conformity = traits.percentiles(-np.nan_to_num(gap, nan=np.nanmean(gap)))

    with stages.stage("fitting the rating response"):
        inner_offsets = traits.rating_offsets(inner.train, n_users, n_items)
        response = fit_rating_response(
            validation_utility, inner_catalog.quality[cols], inner_offsets[inner.test["user_id"].to_numpy()],
            inner.test["rating"].to_numpy())
        meta["ratings"] = asdict(response)

    with stages.stage("cutting sessions and fitting returns"):
        sessions = cut_sessions(ratings, config.session_gap_minutes)
        returns = dynamics.fit_returns(sessions, n_users)
        patience = dynamics.patience_from_sessions(sessions, n_users)
        per_user = sessions.table.groupby("user_id")["length"]
        meta["sessions"] = dynamics.sessions_summary(sessions).to_dict()

    sim_config = StatisticalUserConfig(
        interest_weight=terms.interest_weight, quality_weight=terms.quality_weight,
        click_threshold=terms.threshold + math.log(config.exposure_odds),
        novelty_session_spread=SESSION_NOVELTY_RATIO * terms.interest_weight,
        # No drift: the synthetic default (0.05 of a unit interest per click) is a step in
        # logit units proportional to the interest weight, about six times the synthetic
        # one here, and pulled every user towards the catalog's common direction, so that
        # after a dozen random slates most items were clickable and recommenders barely
        # differed. The ratings do not identify drift within sessions (module docstring).
        interest_drift=0.0,
        # The ratings were fitted on the utility before the exposure shift; undo it there.
        rating_center=response.rating_center + response.rating_slope * math.log(config.exposure_odds),
        rating_slope=response.rating_slope,
        rating_quality=response.rating_quality, rating_noise=response.rating_noise,
    )
    users = pd.DataFrame({
        "user_id": data.users.get("source_id", data.users["user_id"]).to_numpy(),
        "age": data.users["age"].to_numpy(),
        "gender": data.users["gender"].to_numpy(),
        "occupation": data.users["occupation"].to_numpy(),
        "zip_code": data.users["zip_code"].to_numpy(),
        "favourite_genre": favourite,
        "n_ratings": np.bincount(train["user_id"], minlength=n_users),
        "n_sessions": per_user.size().reindex(range(n_users), fill_value=0).to_numpy(),
        "mean_rating": train.groupby("user_id")["rating"].mean().reindex(range(n_users)).to_numpy(),
        "patience": patience,
        "activity": np.exp(returns.log_activity),
        "novelty": novelty,
        "conformity": conformity,
        "popularity_bias": terms.popularity_bias.numpy(),
        "rating_bias": response.offset_weight * offsets,
        "genre_straying": straying,
        "mean_session_length": per_user.mean().reindex(range(n_users)).to_numpy(),
    })
    population = CalibratedPopulation(users, terms.interest)

    with stages.stage("fitting the leave hazard by simulated moments"):
        # A random subset of users keeps the dozens of simulated runs quick.
        rows = np.sort(np.random.default_rng(config.seed).permutation(n_users)[: config.leave_users])
        leave = dynamics.fit_leave(catalog, sim_config, population.pinned(rows, rows), rows,
                                   sessions.table["length"].to_numpy(), steps=config.leave_steps)
        sim_config = replace(sim_config, leave_base=leave.leave_base, leave_length=leave.leave_length)
        sim_config = returns.to_config(sim_config, leave.memory_at_leaving)
        meta["leave"] = {"leave_base": leave.leave_base, "leave_length": leave.leave_length,
                         "target_quantiles": list(leave.target_quantiles),
                         "simulated_quantiles": list(leave.simulated_quantiles),
                         "memory_at_leaving": leave.memory_at_leaving}
        meta["returns"] = {"return_logit": returns.return_logit, "mean_gap_days": returns.mean_gap_days}

    with stages.stage("assembling the world"):
        world = CalibratedWorld(catalog, sim_config, users, terms.interest, meta)
    return world


def _fingerprint(ratings: pd.DataFrame) -> str:
    table = ratings[["user_id", "item_id", "rating", "timestamp"]].to_numpy(dtype=np.int64)
    return hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()[:16]


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def summary(world: CalibratedWorld) -> str:
    """A few lines on what was fitted."""
    c, m = world.config, world.meta
    lines = [
        f"users {len(world.users)}, items {world.catalog.n_items}, feature dim {world.catalog.feature_dim}",
        f"choice: interest_weight {c.interest_weight:.2f}, quality_weight {c.quality_weight:.3f}, "
        f"click_threshold {c.click_threshold:.2f}, validation AUC {m['choice']['validation_auc']:.4f}",
        f"ratings: center {c.rating_center:.2f}, slope {c.rating_slope:.3f}, quality {c.rating_quality:.3f}, "
        f"noise {c.rating_noise:.3f}",
        f"leave: base {c.leave_base:.2f}, length {c.leave_length:.2f} (clicks per session p50/p80 simulated "
        f"{m['leave']['simulated_quantiles']}, data {m['leave']['target_quantiles']})",
        f"return: base {c.return_base:.2f}, gap_days {c.gap_days:.2f}",
    ]
    if "timings_s" in m:
        lines.append(f"time: {m['timings_s']['total']:.1f}s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld calibrate [--out DIR] [--force] [--users N] [--quiet]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="recoworld calibrate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="artifact folder (default: the cache, which "
                        "load_calibrated_world() reads)")
    parser.add_argument("--force", action="store_true", help="fit again even if the artifact exists")
    parser.add_argument("--users", type=int, default=None, help="fit on this many random users only")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    path = args.out or default_path()
    if (path / "world.json").is_file() and not args.force:
        print(f"{path} already holds a calibrated world; --force fits it again", file=sys.stderr)
        world = CalibratedWorld.load(path)
    else:
        if (path / "world.json").is_file():
            import shutil

            shutil.rmtree(path)
        world = calibrate(CalibrationConfig(users=args.users), path=path, progress=not args.quiet)
    print(summary(world))
    print(f"artifact: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
