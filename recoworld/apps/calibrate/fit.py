"""``recoworld calibrate``: fit the statistical user model to MovieLens-100K, or to any
interaction log, and save the world.

The steps, in order (each is documented in its module):

1. split each user's ratings in time: the last 20% are held out for the fidelity report,
   the last 20% of what remains is a validation fold (:mod:`~recoworld.calibration.split`);
2. build the catalog's popularity and quality from the training split only; cut sessions
   from all timestamps, fit activity and returns, and rank patience
   (:mod:`~recoworld.apps.calibrate.dynamics`): a log whose sessions cannot be calibrated
   (no return, gaps of one length or too heavy-tailed) is refused here, before the choice
   fits, which take minutes on a large log;
3. fit the choice model on the training split minus the validation fold, and Platt-scale
   it on the validation fold (:mod:`~recoworld.calibration.choice`), or, for a world cut
   at a date, scale it with the items' trend at that date (:mod:`~recoworld.calibration.trend`);
   fit the rating response on the validation fold's ratings (:mod:`~recoworld.calibration.ratings`);
4. fit the choice model again on the whole training split, apply the scaling, and
   decompose it into the simulator's interest, quality weight, popularity bias and
   threshold;
5. read the descriptive traits off the training ratings (:mod:`~recoworld.calibration.traits`);
6. fit the leave hazard by simulated moments, then the leave, return and gap levels of
   first and later sessions by simulated lives (:mod:`~recoworld.apps.calibrate.dynamics`);
7. save the artifact (:class:`~recoworld.simulators.calibrated.CalibratedWorld`).

Usage::

    recoworld calibrate                 # into the cache (what load_calibrated_world reads)
    recoworld calibrate --force         # fit again even if the artifact exists
    recoworld calibrate --out DIR --users 200   # a quick fit on 200 random users
    recoworld calibrate --data log.parquet --items items.csv --user-table users.csv --out DIR

``--data`` reads a log in the layout of :mod:`recoworld.data.interactions` (user, item,
timestamp, optional rating and click; optional item and user tables); the world it writes
is used as the MovieLens one is: ``recoworld run world=movielens world.path=DIR``. A world
already at ``--out`` is read, not fitted again, unless ``--force``; with ``--data``, only if it
was fitted on that log's interactions, in any row order (but for that of a user's rows of one
time, which the held-out split reads), and on its item and user tables (a world of another
log, of an earlier version of this one, or of other tables, is refused with the fix).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.apps.calibrate import dynamics
from recoworld.apps.calibrate.choices import ValidationFit, fit_training_choices, fit_validation_choices
from recoworld.apps.calibrate.folds import (FINGERPRINT_OF, CalibrationDataError, Folds, fingerprint, subsample,
                                            tables_fingerprints, training_catalog)
from recoworld.apps.calibrate.progress import Stages, torch_threads
from recoworld.calibration import traits
from recoworld.calibration.choice import ChoiceFitConfig, UtilityTerms
from recoworld.calibration.ratings import RatingResponse, fit_rating_response
from recoworld.calibration.split import Sessions, cut_sessions, time_ordered
from recoworld.catalog import Catalog
from recoworld.config_checks import POSITIVE, check_number
from recoworld.data.fetch import FetchError
from recoworld.data.movielens import MovieLens100K, load_movielens_100k
from recoworld.logs import writer_lock
from recoworld.simulators.calibrated import CalibratedPopulation, CalibratedWorld, default_path, is_world
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
        session_gap_minutes: a pause longer than this many minutes (> 0) starts a new session.
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
        lives_iterations: rounds of the simulated-lives fit of the session, return and gap
            levels (:func:`~recoworld.apps.calibrate.dynamics.fit_lives`, the slowest stage
            on a small log); 0 keeps their starting values, for a world whose sessions are
            not used (the fidelity report's split worlds: sessions do not enter the click
            probabilities).
        threads: torch threads during the fit (the tensors are small: one thread wastes
            nothing and keeps a busy machine from slowing the fit down).
        seed: seed of the user subsample.
        split: how the held-out ratings are cut (:data:`~recoworld.apps.calibrate.folds.SPLITS`):
            ``"latest"``, each user's latest ``holdout_fraction``; ``"time"``, every
            rating after the date that leaves that share of all ratings after it (the
            fidelity report fits such worlds to test other periods and users).
        held_out_users: share of the users folded in rather than fitted: the item side
            never sees them (0 for a world to use).
    """

    holdout_fraction: float = 0.2
    validation_fraction: float = 0.2
    session_gap_minutes: float = 30.0
    choice: ChoiceFitConfig = field(default_factory=ChoiceFitConfig)
    exposure_odds: float = 1.0
    users: int | None = None
    leave_steps: int = 80
    leave_users: int = 300
    lives_iterations: int = 20
    threads: int = 1
    seed: int = 0
    split: str = "latest"
    held_out_users: float = 0.0

    def __post_init__(self) -> None:
        # At 0 minutes every rating starts a session of its own unless it shares the previous
        # one's second, and below 0 every one does, with no pause after those in the same
        # second: sessions of single ratings, not visits (the return fit refused only the
        # pauseless ones, after the data were read and split).
        try:
            check_number("CalibrationConfig", "session_gap_minutes", self.session_gap_minutes, POSITIVE)
        except ValueError as error:
            raise ValueError(f"{error} (the pause, in minutes, after which a user's next rating starts a new "
                             "session; 30 is the usual web-analytics rule)") from None


def calibrate(config: CalibrationConfig | None = None, path: str | Path | None = None,
              data: MovieLens100K | None = None, progress: bool = True) -> CalibratedWorld:
    """Fit the calibrated world and save it at ``path`` (``None``: do not save).

    Args:
        config: the fit's settings (defaults: :class:`CalibrationConfig`).
        path: the artifact folder to write.
        data: the ratings, items and users to fit (default: MovieLens-100K from the cache);
            any data set in :class:`~recoworld.data.movielens.MovieLens100K`'s layout works,
            such as an :class:`~recoworld.data.interactions.InteractionLog`; its ``source``
            (where the report re-reads it) is recorded in ``meta["data"]["source"]``.
        progress: show the stages on stderr.
    """
    config = config or CalibrationConfig()
    if config.exposure_odds <= 0:
        raise ValueError(f"exposure_odds={config.exposure_odds}; it is a ratio of item counts and must be > 0")
    stages = Stages(8 if data is not None else 9, progress)
    with torch_threads(config.threads):
        source = {"kind": "movielens-100k"} if data is None else data.source or {"kind": "given"}
        if data is None:
            with stages.stage("reading MovieLens-100K"):
                data = load_movielens_100k()
        world = _fit(data, config, stages)
        world.meta["data"]["source"] = source
    world.meta["timings_s"] = {**stages.timings, "total": stages.elapsed}
    if path is not None:
        world.save(path)
        if progress:
            print(f"calibrated world saved in {path} ({stages.elapsed:.1f}s)", file=sys.stderr)
    return world


def ensure_world(path: str | Path | None = None, progress: bool = True) -> CalibratedWorld:
    """The calibrated world at ``path`` (default: the cache), fitted and saved first if missing.

    Processes that find it missing at once (the jobs of a sweep on a fresh machine) fit it
    once: each holds the lock of ``NAME.fit`` (:func:`recoworld.logs.writer_lock`, the hidden
    ``.NAME.fit.lock`` beside the world) while it looks and fits, so the others wait, with a
    warning, and load the world the first one saved."""
    path = default_path() if path is None else Path(path).expanduser()
    if not is_world(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not the world's own lock: the save inside takes that one, and it is not reentrant.
        with writer_lock(path.with_name(f"{path.name}.fit")):
            if not is_world(path):
                calibrate(path=path, progress=progress)
    return CalibratedWorld.load(path)


def _fit(data: MovieLens100K, config: CalibrationConfig, stages: Stages) -> CalibratedWorld:
    meta: dict = {"calibration": _jsonable(asdict(config))}
    with stages.stage("splitting ratings in time"):
        folds = Folds.cut(data, config.holdout_fraction, config.validation_fraction, config.users, config.seed,
                          config.split, config.held_out_users)
        folds.check_enough(dynamics.REFERENCE_CANDIDATES, config.holdout_fraction, config.validation_fraction)
        source = data.source
        name = f"{Path(source['data']).stem}-calibrated" if source.get("data") else "movielens-100k-calibrated"
        catalog = training_catalog(folds.data.items, folds.split.train, name)
        meta["data"], meta["split"] = folds.describe()
    # Before the choice fits: a log the returns cannot be fitted to is refused at once.
    with stages.stage("cutting sessions and fitting returns"):
        sessions = cut_sessions(folds.data.ratings, config.session_gap_minutes)
        returns = dynamics.calibration_returns(sessions, folds.n_users)
        patience = dynamics.patience_from_sessions(sessions, folds.n_users)
    with stages.stage("fitting choices on the validation fold"):
        validation = fit_validation_choices(folds, config.choice)
    with stages.stage("fitting choices on the training split"):
        terms, catalog, meta["choice"] = fit_training_choices(folds, config.choice, validation, catalog)
    with stages.stage("reading traits off the ratings"):
        user_traits = read_traits(folds, catalog, terms)
    with stages.stage("fitting the rating response"):
        response = fit_ratings(folds, validation)
        meta["ratings"] = asdict(response)
    meta["sessions"] = dynamics.sessions_summary(sessions).to_dict()  # here: world.json keeps its keys' order
    sim_config = user_config(terms, response, config.exposure_odds)
    users = users_table(folds, user_traits, sessions, returns, patience, terms, response)
    population = CalibratedPopulation(users, terms.interest)
    with stages.stage("fitting the leave hazard by simulated moments"):
        repetition = dynamics.genre_repetition(folds.data.ratings, dynamics.known_genres(catalog),
                                               config.session_gap_minutes)
        sim_config, meta["leave"], meta["returns"] = fit_leaving(catalog, sim_config, population, sessions, returns,
                                                                 config, repetition)
    with stages.stage("assembling the world"):
        items = folds.data.items  # row i is item i
        world = CalibratedWorld(catalog, sim_config, users, terms.interest, meta,
                                original_ids(items, pd.Series(np.arange(len(items)))))
    return world


def read_traits(folds: Folds, catalog: Catalog, terms: UtilityTerms) -> dict[str, np.ndarray]:
    """Step 5: each user's descriptive traits, read off the training ratings."""
    train, n_users, n_items = folds.split.train, folds.n_users, folds.n_items
    straying = traits.genre_straying(train, catalog.genre_weights, n_users)
    return {
        "favourite_genre": traits.favourite_genres(train, catalog.genre_weights, catalog.genre_names, n_users),
        "novelty": NOVELTY_RATIO * terms.interest_weight * np.nan_to_num(traits.normal_scores(straying)),
        "conformity": traits.conformity(train, n_users, n_items),
        "rating_offsets": traits.rating_offsets(train, n_users, n_items),
        "genre_straying": straying,
    }


def fit_ratings(folds: Folds, validation: ValidationFit) -> RatingResponse:
    """Step 3's rating response, on the validation fold's ratings (the catalog's quality and
    the users' rating offsets from the ratings before the fold); a log without ratings
    keeps the simulator's default response."""
    if not folds.data.has_ratings:
        default = StatisticalUserConfig()
        return RatingResponse(default.rating_center, default.rating_slope, default.rating_quality,
                              default.rating_noise, 0.0)
    inner = folds.inner
    inner_catalog = training_catalog(folds.data.items, inner.train, "validation")
    inner_offsets = traits.rating_offsets(inner.train, folds.n_users, folds.n_items)
    cols = torch.tensor(inner.test["item_id"].to_numpy())
    return fit_rating_response(validation.utility, inner_catalog.quality[cols],
                               inner_offsets[inner.test["user_id"].to_numpy()], inner.test["rating"].to_numpy())


def user_config(terms: UtilityTerms, response: RatingResponse, exposure_odds: float) -> StatisticalUserConfig:
    """The simulator's config from the fitted choices and ratings (before the leave fit)."""
    return StatisticalUserConfig(
        interest_weight=terms.interest_weight, quality_weight=terms.quality_weight,
        click_threshold=terms.threshold + math.log(exposure_odds),
        novelty_session_spread=SESSION_NOVELTY_RATIO * terms.interest_weight,
        # No drift: the ratings do not identify drift within sessions, and the synthetic
        # default is a step proportional to the interest weight that pulls every fitted
        # user towards the catalog's common direction (package docstring).
        interest_drift=0.0,
        # The ratings were fitted on the utility before the exposure shift; undo it there.
        rating_center=response.rating_center + response.rating_slope * math.log(exposure_odds),
        rating_slope=response.rating_slope,
        rating_quality=response.rating_quality, rating_noise=response.rating_noise,
        # A rating log holds one rating per user and item: a fitted user never clicks a film twice.
        rewatch=False,
    )


def users_table(folds: Folds, user_traits: dict[str, np.ndarray], sessions: Sessions, returns: dynamics.ReturnFit,
                patience: np.ndarray, terms: UtilityTerms, response: RatingResponse) -> pd.DataFrame:
    """One row per fitted user: :attr:`CalibratedWorld.users`."""
    users, train, n_users = folds.data.users, folds.split.train, folds.n_users
    per_user = sessions.table.groupby("user_id")["length"]
    user_ids = users.get("source_id", users["user_id"])
    return pd.DataFrame({
        "user_id": user_ids.to_numpy(),
        "original_id": original_ids(users, user_ids),
        "age": users["age"].to_numpy(),
        "gender": users["gender"].to_numpy(),
        "occupation": users["occupation"].to_numpy(),
        "zip_code": users["zip_code"].to_numpy(),
        "favourite_genre": user_traits["favourite_genre"],
        "n_ratings": np.bincount(train["user_id"], minlength=n_users),
        "n_sessions": per_user.size().reindex(range(n_users), fill_value=0).to_numpy(),
        "mean_rating": train.groupby("user_id")["rating"].mean().reindex(range(n_users)).to_numpy(),
        "patience": patience,
        "activity": np.exp(returns.log_activity),
        "novelty": user_traits["novelty"],
        "conformity": user_traits["conformity"],
        "popularity_bias": terms.popularity_bias.numpy(),
        "rating_bias": response.offset_weight * user_traits["rating_offsets"],
        "genre_straying": user_traits["genre_straying"],
        "mean_session_length": per_user.mean().reindex(range(n_users)).to_numpy(),
    })


def original_ids(table: pd.DataFrame, dense_ids: pd.Series) -> np.ndarray:
    """The data's own id, as text, of each row of ``table`` (its ``original_id`` column): data
    given without one (in Python, in the layout of MovieLens-100K) are known by their dense ids."""
    return np.asarray(table.get("original_id", dense_ids).astype(str), dtype=object)


def fit_leaving(catalog: Catalog, sim_config: StatisticalUserConfig, population: CalibratedPopulation,
                sessions: Sessions, returns: dynamics.ReturnFit, config: CalibrationConfig,
                genre_repetition: float = math.nan) -> tuple[StatisticalUserConfig, dict, dict]:
    """Step 6's leave hazard by simulated moments, the returns at the simulated memory at
    leaving, then the leave, return and gap levels and the session theme's weight by
    simulated lives (the theme on the data's ``genre_repetition``,
    :func:`~recoworld.apps.calibrate.dynamics.genre_repetition`; NaN keeps the config's):
    the final config, ``meta["leave"]`` and ``meta["returns"]``."""
    # A random subset of users keeps the dozens of simulated runs quick.
    n_users = len(population.all_users)
    rows = np.sort(np.random.default_rng(config.seed).permutation(n_users)[: config.leave_users])
    leave = dynamics.fit_leave(catalog, sim_config, population.pinned(rows, rows), rows,
                               dynamics.habitual_lengths(sessions.table), steps=config.leave_steps)
    sim_config = returns.to_config(leave.to_config(sim_config), leave.memory_at_leaving)
    sim_config = replace(sim_config, first_session_patience=dynamics.first_session_patience(sessions.table))
    sim_config, gap_factor = dynamics.fit_lives(
        catalog, sim_config, population.pinned(rows, rows), rows, dynamics.observation_windows(sessions, n_users)[rows],
        replace(dynamics.LifeTargets.of(sessions.table), genre_repetition=genre_repetition), config.session_gap_minutes,
        iterations=config.lives_iterations)
    leave_meta = {**leave.describe(), "grid_leave_base": leave.leave_base, "leave_base": sim_config.leave_base,
                  "grid_leave_patience": leave.leave_patience, "leave_patience": sim_config.leave_patience,
                  "leave_first_session": sim_config.leave_first_session,
                  "first_session_spread": sim_config.first_session_spread,
                  "quick_visit_share": sim_config.quick_visit_share, "theme_weight": sim_config.theme_weight,
                  "genre_repetition": genre_repetition,
                  "first_session_patience": sim_config.first_session_patience}
    returns_meta = {"return_logit": returns.return_logit, "mean_gap_days": returns.mean_gap_days,
                    "gap_shape_fitted": returns.gap_shape_fitted, "return_fit_gap_shape": returns.gap_shape,
                    "activity_spread": returns.activity_spread,
                    "gap_length_elasticity": returns.gap_length_elasticity, "gap_scale": gap_factor,
                    "return_base": sim_config.return_base, "return_first_session": sim_config.return_first_session,
                    "gap_first_session": sim_config.gap_first_session, "gap_first_share": sim_config.gap_first_share}
    return sim_config, leave_meta, returns_meta


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
        ratings_line(world),
        f"leave: base {c.leave_base:.2f}, first session {c.leave_first_session:+.2f} "
        f"(spread {c.first_session_spread:.2f}), quick visits "
        f"{c.quick_visit_share:.0%}, length {c.leave_length:.2f}, session theme {c.theme_weight:.2f}, "
        f"patience {c.leave_patience:.1f} (clicks per session p50/p80/p95 of the grid fit, base "
        f"{m['leave']['grid_leave_base']:.2f} and patience {m['leave']['grid_leave_patience']:.1f}: simulated sessions "
        f"{m['leave']['simulated_quantiles']}, data {m['leave']['target_quantiles']})",
        f"return: base {c.return_base:.2f} ({c.return_first_session:+.2f} after a first session), gap_days "
        f"{c.gap_days:.2f} (after a first session, x{math.exp(c.gap_first_session):.2f} for "
        f"{c.gap_first_share:.0%} of those who return), gap shape {c.gap_shape:.3f}"
        + ("" if m["returns"].get("gap_shape_fitted", True) else " (held: not fitted)")
        + (f" (the return fit's {m['returns']['return_fit_gap_shape']:.3f})"
           # held, the shape comes back from its log: equal but for the last bit
           if not math.isclose(m["returns"].get("return_fit_gap_shape", c.gap_shape), c.gap_shape) else "")
        + (f", log activities spread {m['returns']['activity_spread']:.2f}" if "activity_spread" in m["returns"] else ""),
    ]
    if "timings_s" in m:
        lines.append(f"time: {m['timings_s']['total']:.1f}s")
    return "\n".join(lines)


def ratings_line(world: CalibratedWorld) -> str:
    """The summary's line on the rating response: fitted, or the simulator's defaults kept
    for a log without ratings (a world saved before recorded which only as fitted)."""
    c = world.config
    kept = "" if world.meta.get("data", {}).get("has_ratings", True) else " defaults (no ratings in the log):"
    return (f"ratings:{kept} center {c.rating_center:.2f}, slope {c.rating_slope:.3f}, quality {c.rating_quality:.3f}, "
            f"noise {c.rating_noise:.3f}")


def fitted_on_other_data(world: CalibratedWorld, data: MovieLens100K) -> str | None:
    """What the saved ``world`` was calibrated on, when that is not ``data`` (``None`` when it
    is, or when the world's record cannot tell): a world at ``--out`` is kept without
    ``--force``, and a log given with ``--data`` (and its ``--items`` and ``--user-table``) is
    not to be answered with another's world. The record
    (:func:`~recoworld.apps.calibrate.folds.data_fingerprints`) is the fingerprint of the
    ratings it fitted in time order (the same log sorted otherwise is the same; a world saved
    before hashed them in the log's row order, and is read that way), of the same users drawn
    again where it fitted a subset, and those of its item and user tables (a world saved
    before records none, and its tables are taken as the same); ``split="time"`` keeps users
    by date, which is not redrawn."""
    recorded, settings = world.meta.get("data", {}), world.meta.get("calibration", {})
    if "fingerprint" not in recorded or settings.get("split", "latest") != "latest":
        return None
    users = settings.get("users")
    try:
        fitted = data if users is None else subsample(data, users, settings.get("seed", 0))
    except CalibrationDataError:  # the log has fewer users than the world fitted
        fitted = None
    source = recorded.get("source", {})
    if fitted is not None and _ratings_fingerprint(recorded, fitted) == recorded["fingerprint"]:
        return _other_tables(recorded, fitted, source)
    if source.get("kind") != "interactions":
        return "MovieLens-100K"
    if source.get("data") == data.source.get("data"):
        return f"an earlier version of {source['data']} (its interactions have changed since)"
    return str(source.get("data"))


def _ratings_fingerprint(recorded: dict, data: MovieLens100K) -> str:
    """The fingerprint of ``data``'s ratings as the world's ``recorded`` one was taken: in
    time order, or, by a world saved before, in the log's row order."""
    ordered = recorded.get("fingerprint_of") == FINGERPRINT_OF
    return fingerprint(time_ordered(data.ratings) if ordered else data.ratings)


def _other_tables(recorded: dict, data: MovieLens100K, source: dict) -> str | None:
    """The log the world fitted with the item or user table it fitted, where ``data``'s
    differs from it (``None`` where neither does, or the world records neither). Without a
    table, in the world and in ``data``, the table is the log's ids, which have changed."""
    now = tables_fingerprints(data)
    for table, kind, article in (("items", "item", "an"), ("users", "user", "a")):
        key = f"{table}_fingerprint"
        if key not in recorded or recorded[key] == now[key]:
            continue
        fitted_table = source.get(table)
        if fitted_table is None and data.source.get(table) is None:  # both tables the log's ids: those changed
            if source.get("data") == data.source.get("data"):
                return f"an earlier version of {source.get('data')} (its {kind} ids have changed since)"
            return f"{source.get('data')}, whose {kind} ids differ"
        if fitted_table is None:
            return f"{source.get('data')} without {article} {kind} table"
        if fitted_table == data.source.get(table):
            return (f"{source.get('data')} with an earlier version of its {kind} table {fitted_table} (its {table} "
                    "have changed since)")
        return f"{source.get('data')} with the {kind} table {fitted_table}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld calibrate [--data PATH [--items PATH] [--user-table PATH]] [--out DIR] [--force]
    [--users N] [--quiet]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="recoworld calibrate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="an interaction log, CSV or Parquet: columns "
                        "user, item, timestamp [, rating] [, click] (default: MovieLens-100K)")
    parser.add_argument("--items", type=Path, default=None, help="the log's item table: item [, title] [, genres]")
    parser.add_argument("--user-table", type=Path, default=None, help="the log's user table: user [, age] "
                        "[, gender] [, occupation] [, zip_code]")
    parser.add_argument("--out", type=Path, default=None, help="artifact folder (default: the cache, which "
                        "load_calibrated_world() reads; required with --data)")
    parser.add_argument("--force", action="store_true", help="fit again even if the artifact exists (it is "
                        "replaced once the new fit is written)")
    parser.add_argument("--users", type=int, default=None, help="fit on this many random users only")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.data is None and (args.items or args.user_table):
        parser.error("--items and --user-table describe the log of --data; give --data PATH too")
    if args.data is not None and args.out is None:
        parser.error("--data needs --out DIR: the cache's world is MovieLens-100K's")
    path = args.out or default_path()
    # Refused before the fit, which takes a minute: saving would fail only after it.
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        parser.error(f"--out {path}: {existing} is a file, and the calibrated world is a folder; give a new or "
                     "empty folder (or one that holds a calibrated world)")
    if path.is_dir() and any(path.iterdir()) and not is_world(path):
        parser.error(f"--out {path} holds files but no calibrated world; give a new or empty folder")
    data = None
    if args.data is not None:
        from recoworld.data.interactions import load_interactions

        try:
            data = load_interactions(args.data, args.items, args.user_table)
        except (ValueError, FileNotFoundError) as error:
            print(f"recoworld calibrate: {error}", file=sys.stderr)
            return 2
    if is_world(path) and not args.force:
        try:
            world = CalibratedWorld.load(path)
        except (ValueError, FileNotFoundError) as error:  # a damaged or older world: the message says what to do
            print(f"recoworld calibrate: {error}", file=sys.stderr)
            return 2
        other = None if data is None else fitted_on_other_data(world, data)
        if other is not None:
            given = "".join(f" {flag} {value}" for flag, value in (("--items", args.items),
                                                                   ("--user-table", args.user_table)) if value)
            print(f"recoworld calibrate: --out {path} holds a world calibrated on {other}, not on the log of --data "
                  f"{args.data}{given and ' with' + given}; --force fits it again on --data (replacing that world once "
                  "the fit ends), or give another --out", file=sys.stderr)
            return 2
        source = world.meta.get("data", {}).get("source", {})
        if data is None and source.get("kind", "movielens-100k") != "movielens-100k":
            # Read and shown, as any world at --out is; but the command's data is MovieLens-100K,
            # which --force would fit there: say that this world is another's.
            fitted_on = source.get("data") or source.get("read_from") or "tables other than MovieLens-100K's"
            print(f"{path} already holds a calibrated world, fitted on {fitted_on}, not on MovieLens-100K; --force "
                  f"fits MovieLens-100K there instead (--data {shlex.quote(str(fitted_on))} for that log's)"
                  if source.get("data") else
                  f"{path} already holds a calibrated world, fitted on {fitted_on}, not on MovieLens-100K; --force "
                  "fits MovieLens-100K there instead", file=sys.stderr)
        else:
            print(f"{path} already holds a calibrated world; --force fits it again", file=sys.stderr)
    else:
        try:
            world = calibrate(CalibrationConfig(users=args.users), data=data, progress=not args.quiet)
        except (CalibrationDataError, FetchError) as error:  # FetchError: MovieLens-100K could not be fetched
            print(f"recoworld calibrate: {error}", file=sys.stderr)
            return 2
        world.save(path, replace=True)
    print(summary(world))
    print(f"artifact: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
