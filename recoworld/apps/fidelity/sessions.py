r"""Session dynamics of the calibrated users against users the fit never saw.

**Held-out users.** A share of the users (:data:`HELD_OUT_SHARE`, drawn as the fidelity
report's held-out users are, :func:`~recoworld.apps.calibrate.folds.fold_in_mask`) is set
aside; the session dynamics — returns and activity (:func:`~recoworld.apps.calibrate.dynamics.fit_returns`)
and the leave hazard, return and gap levels (:func:`~recoworld.apps.calibrate.fit.fit_leaving`) —
are fitted again on the other users' sessions only, with the world's choices and traits.

**Simulated sessions.** Each fitted user lives once
(:func:`~recoworld.apps.calibrate.dynamics.simulate_lives`), served the leave fit's
reference recommender (the 10 best of 50 random candidates by the user's own click
probability), watched for as many days as the real user was (from their first rating to
the end of the data set). Their clicks, stamped in time, are cut into sessions by the rule
that cuts the real ratings (a pause over 30 minutes), so both sides are measured alike.

**Statistics** of a set of sessions (:data:`STATISTICS`):

* ``session_length``: ratings (clicks) per session; p50, p80 and p95 are reported too;
  ``first_session_length`` and ``return_session_length`` split it into each user's first
  session (in MovieLens, the sign-up's burst of ratings) and the sessions after it;
* ``gap_days``: days from a session's end to the user's next session, where one follows;
  ``first_gap_days`` and ``return_gap_days`` split it by the session before the gap (the
  user's first, a later one), as the calibration sets the two apart;
* ``genre_repetition``: per session of two ratings or more, the share of consecutive
  ratings that share a genre, pairs with an item of no genre (the placeholder ``unknown``)
  left out (and the statistic left out for a log whose items have no genres);
* ``gap_vs_length`` and ``gap_vs_mean_rating``: Spearman's correlation between a session's
  length (its mean rating; unrated simulated clicks left out) and the gap that follows it.

**Distances.** For a distribution, the two-sample Kolmogorov–Smirnov statistic and the
1-Wasserstein distance (:mod:`scipy.stats`); for a correlation, the absolute difference.
Each is reported

* *simulated against held-out*, with a 95% bootstrap interval: users are resampled with
  replacement on both sides, each user's sessions kept together
  (:mod:`recoworld.calibration.bootstrap`);
* *noise*: the same distance between two random halves of the held-out users, over
  random halvings (median and 95% interval); undefined with fewer than
  :data:`MIN_HALF_USERS` users in a half (a half of one user is that user, not a sample of
  users, and two users split one way only).

A distance is **within noise** when it does not exceed the noise's upper end: the
simulated sessions differ from the held-out ones no more than the held-out users' two
halves differ in 97.5% of halvings. (Each half has half the users, so the halves' distance
runs about :math:`\sqrt 2` times the sampling noise of the whole held-out set against its
law; the verdict is the issue's criterion, and the numbers are reported for a stricter
reading.)

**The gap law.** The simulator draws a returning user's gap from an exponential law of
mean ``gap_days`` / :math:`(a_b(\tfrac12 + M))`. The section also fits, on the same
sessions, the return model with Weibull gaps of the same mean and a fitted shape
:math:`k` and the mean's elasticity to the session's length (the calibration's law,
:func:`~recoworld.apps.calibrate.dynamics.calibration_returns`; :math:`k = 1` is the
exponential, :math:`k < 1` a heavier tail and more short gaps), and reports both
log-likelihoods per session.

**Keys** of ``metrics.json["sessions"]`` (:func:`session_dynamics`): ``statistics``, one
entry per name of :data:`STATISTICS` with ``title``, ``kind``, ``held_out`` and
``simulated`` (``n``; for a distribution ``mean``, ``p50``, ``p80``, ``p95``, for a
correlation ``value``; each an interval, ``{"value", "low", "high", "n_draws", "n_defined"}``
of :func:`~recoworld.calibration.bootstrap.interval`), ``distance`` and ``noise`` (per
distance name of :data:`DISTANCES`, an interval; the noise's draws are the halvings) and
``within_noise`` (per distance name, a bool, or ``None`` where the distance or the noise's
upper end is undefined); ``held_out_users``, ``fitted_users``,
``share``; ``leave`` and ``returns`` (the refit, as the artifact's ``meta``), ``config``
(the refitted leave and return weights, the gap's shape included) and ``gap_law`` (``sessions``; ``exponential``
and ``weibull``, each with ``log_likelihood`` per session and ``mean_gap_days``; the Weibull
``shape``, ``shape_fitted`` (false: held at 1), ``length_elasticity``, ``activity_spread``
(:math:`\sigma` of the fitted law) and ``activity_modes_spread`` (the standard deviation of
the fitted users' own log activities, their posterior modes, shrunk towards the mean)). ``metrics.json["session_targets"]`` holds :func:`targets`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recoworld.apps.calibrate import dynamics
from recoworld.apps.calibrate.fit import CalibrationConfig, fit_leaving
from recoworld.apps.calibrate.folds import Folds, fold_in_mask
from recoworld.apps.calibrate.progress import torch_threads
from recoworld.apps.fidelity.evaluation import has_genres
from recoworld.calibration.bootstrap import interval, user_draws
from recoworld.calibration.split import DAY, cut_sessions, is_first_session, session_ids, time_ordered
from recoworld.simulators.calibrated import CalibratedPopulation, CalibratedWorld

#: Share of the users held out of the session-dynamics fit.
HELD_OUT_SHARE = 0.5
#: The refitted config's fields the section reports.
REFITTED = ("leave_base", "leave_first_session", "first_session_spread", "quick_visit_share",
            "first_session_patience", "leave_length", "leave_patience", "return_base", "return_first_session",
            "gap_days", "gap_first_session", "gap_first_share", "gap_shape", "gap_length_elasticity", "theme_weight")
#: Fewest held-out users in each half for the half-split noise (module docstring).
MIN_HALF_USERS = 2
#: Quantiles of the session length reported.
LENGTH_QUANTILES = (0.5, 0.8, 0.95)


def session_table(ratings: pd.DataFrame, genres: np.ndarray, gap_minutes: float = 30.0) -> pd.DataFrame:
    """One row per session of ``ratings`` (``user_id``, ``item_id``, ``rating``, ``timestamp``),
    cut as :func:`~recoworld.calibration.split.cut_sessions` cuts them: ``user_id``,
    ``first`` (the user's first session), ``length``, ``next_gap_days`` (NaN where no
    session follows), ``mean_rating`` (over ratings above 0; NaN if none), ``pairs`` (consecutive ratings) and ``same_genre``
    (those sharing a genre of the ``[n_items, n_genres]`` bool ``genres``)."""
    table = cut_sessions(ratings, gap_minutes).table
    ordered = time_ordered(ratings)
    sid = session_ids(ordered, gap_minutes)
    n = len(table)
    rating = ordered["rating"].to_numpy(np.float64)
    rated = rating > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(sid, weights=np.where(rated, rating, 0.0), minlength=n) / np.bincount(
            sid, weights=rated.astype(np.float64), minlength=n)
    pairs, same_genre = dynamics.genre_pairs(ordered, sid, genres, n)
    return pd.DataFrame({
        "user_id": table["user_id"].to_numpy(), "first": is_first_session(table),
        "length": table["length"].to_numpy(),
        "next_gap_days": table["next_gap_days"].to_numpy(), "mean_rating": mean,
        "pairs": pairs, "same_genre": same_genre})


def _lengths(table: pd.DataFrame) -> np.ndarray:
    return table["length"].to_numpy(np.float64)


def _lengths_of(first: bool):
    def lengths(table: pd.DataFrame) -> np.ndarray:
        return table["length"].to_numpy(np.float64)[table["first"].to_numpy() == first]
    return lengths


def _gaps(table: pd.DataFrame) -> np.ndarray:
    gap = table["next_gap_days"].to_numpy(np.float64)
    return gap[np.isfinite(gap)]


def _gaps_of(first: bool):
    def gaps(table: pd.DataFrame) -> np.ndarray:
        gap = table["next_gap_days"].to_numpy(np.float64)[table["first"].to_numpy() == first]
        return gap[np.isfinite(gap)]
    return gaps


def _repetition(table: pd.DataFrame) -> np.ndarray:
    pairs = table["pairs"].to_numpy(np.float64)
    return table["same_genre"].to_numpy(np.float64)[pairs > 0] / pairs[pairs > 0]


def _gap_correlation(column: str):
    def spearman(table: pd.DataFrame) -> float:
        x, gap = table[column].to_numpy(np.float64), table["next_gap_days"].to_numpy(np.float64)
        keep = np.isfinite(x) & np.isfinite(gap)
        if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(gap[keep]) == 0:
            return np.nan
        return float(stats.spearmanr(x[keep], gap[keep]).statistic)
    return spearman


@dataclass(frozen=True)
class Statistic:
    """A statistic of a session table: a ``distribution`` of values (compared by KS and
    1-Wasserstein) or a ``correlation`` (compared by the absolute difference)."""

    kind: str
    of: Callable[[pd.DataFrame], np.ndarray | float]
    title: str


STATISTICS = {
    "session_length": Statistic("distribution", _lengths, "session length (ratings)"),
    "first_session_length": Statistic("distribution", _lengths_of(True), "first session length (ratings)"),
    "return_session_length": Statistic("distribution", _lengths_of(False), "return session length (ratings)"),
    "gap_days": Statistic("distribution", _gaps, "gap to the next session (days)"),
    "first_gap_days": Statistic("distribution", _gaps_of(True), "gap after the first session (days)"),
    "return_gap_days": Statistic("distribution", _gaps_of(False), "gap after a later session (days)"),
    "genre_repetition": Statistic("distribution", _repetition, "consecutive ratings sharing a genre"),
    "gap_vs_length": Statistic("correlation", _gap_correlation("length"), "Spearman: next gap ~ session length"),
    "gap_vs_mean_rating": Statistic("correlation", _gap_correlation("mean_rating"),
                                    "Spearman: next gap ~ session mean rating"),
}
DISTANCES = {"distribution": ("ks", "wasserstein"), "correlation": ("abs_difference",)}


def distances(statistic: Statistic, a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float]:
    """The distances of :data:`DISTANCES` between the sessions ``a`` and ``b``."""
    x, y = statistic.of(a), statistic.of(b)
    if statistic.kind == "correlation":
        return {"abs_difference": abs(x - y)}
    if len(x) == 0 or len(y) == 0:
        return {"ks": np.nan, "wasserstein": np.nan}
    with warnings.catch_warnings():  # on ties scipy falls back to the asymptotic p-value; the statistic is exact
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        ks = float(stats.ks_2samp(x, y).statistic)
    return {"ks": ks, "wasserstein": float(stats.wasserstein_distance(x, y))}


class UserResampler:
    """Sessions of resampled users: each user's sessions stay together."""

    def __init__(self, table: pd.DataFrame):
        self.table = table.reset_index(drop=True)
        self.codes, self.users = pd.factorize(self.table["user_id"])

    @property
    def n_users(self) -> int:
        return len(self.users)

    def take(self, counts: np.ndarray) -> pd.DataFrame:
        """The sessions of user ``u`` repeated ``counts[u]`` times."""
        return self.table.iloc[np.repeat(np.arange(len(self.table)), counts[self.codes])]

    def halves(self, generator: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The sessions of two random halves of the users."""
        first = np.zeros(self.n_users, dtype=bool)
        first[generator.permutation(self.n_users)[: self.n_users // 2]] = True
        mask = first[self.codes]
        return self.table[mask], self.table[~mask]


def summary(statistic: Statistic, table: pd.DataFrame, resampler: UserResampler, draws: np.ndarray) -> dict:
    """The statistic's value (a correlation), or mean and quantiles (a distribution), with intervals."""
    def describe(t: pd.DataFrame) -> dict[str, float]:
        values = statistic.of(t)
        if statistic.kind == "correlation":
            return {"value": values}
        if len(values) == 0:
            return {"n": 0}
        quantiles = {f"p{round(100 * q)}": float(np.quantile(values, q)) for q in LENGTH_QUANTILES}
        return {"mean": float(values.mean()), **quantiles}

    point = describe(table)
    drawn = [describe(resampler.take(counts)) for counts in draws]
    return {"n": len(statistic.of(table)) if statistic.kind == "distribution" else len(table),
            **{key: interval(value, np.array([d.get(key, np.nan) for d in drawn], dtype=np.float64))
               for key, value in point.items() if key != "n"}}


def compare(held_out: pd.DataFrame, simulated: pd.DataFrame, draws: int = 200, seed: int = 0,
            names: Sequence[str] = tuple(STATISTICS)) -> dict:
    """The statistics ``names`` of :data:`STATISTICS` on both session tables, their
    distances with bootstrap intervals, the half-split noise of ``held_out`` and the
    verdicts (module docstring; a verdict is ``None`` where the distance or the noise's
    upper end is undefined)."""
    real, sim = UserResampler(held_out), UserResampler(simulated)
    real_draws, sim_draws = user_draws(real.n_users, draws, seed), user_draws(sim.n_users, draws, seed + 1)
    generator = np.random.default_rng(seed + 2)
    halvings = [real.halves(generator) for _ in range(draws)] if real.n_users >= 2 * MIN_HALF_USERS else []
    out = {}
    for name in names:
        statistic = STATISTICS[name]
        point = distances(statistic, simulated, held_out)
        boot = [distances(statistic, sim.take(s), real.take(r)) for s, r in zip(sim_draws, real_draws)]
        noise = [distances(statistic, a, b) for a, b in halvings]
        entry = {"title": statistic.title, "kind": statistic.kind,
                 "held_out": summary(statistic, held_out, real, real_draws),
                 "simulated": summary(statistic, simulated, sim, sim_draws), "distance": {}, "noise": {},
                 "within_noise": {}}
        for metric in DISTANCES[statistic.kind]:
            entry["distance"][metric] = interval(point[metric], np.array([d[metric] for d in boot]))
            spread = np.array([d[metric] for d in noise])
            middle = float(np.nanmedian(spread)) if np.isfinite(spread).any() else np.nan
            entry["noise"][metric] = interval(middle, spread)
            # None where the statistic is undefined (too few sessions, no variation), or the
            # noise on too many halvings for its upper end: no verdict.
            ceiling = entry["noise"][metric]["high"]
            entry["within_noise"][metric] = (None if np.isnan(point[metric]) or np.isnan(ceiling) else
                                             bool(point[metric] <= ceiling))
        out[name] = entry
    return out


@dataclass
class HeldOutDynamics:
    """The session dynamics fitted without the held-out users, and the simulated sessions."""

    fitted_rows: np.ndarray
    held_out_rows: np.ndarray
    world: CalibratedWorld
    leave: dict
    returns: dict
    gap_law: dict


def refit_without(world: CalibratedWorld, folds: Folds, held_out: np.ndarray,
                  config: CalibrationConfig) -> HeldOutDynamics:
    """A world of the users outside ``held_out`` (rows), its returns, activity, leave
    hazard, return and gap levels fitted on their sessions only (its user ``j`` is row
    ``fitted_rows[j]``)."""
    fitted = np.setdiff1d(np.arange(folds.n_users), held_out)
    ratings = folds.data.ratings
    ratings = ratings[ratings["user_id"].isin(fitted)]
    ratings = ratings.assign(user_id=np.searchsorted(fitted, ratings["user_id"].to_numpy()))
    sessions = cut_sessions(ratings, config.session_gap_minutes)
    returns = dynamics.calibration_returns(sessions, len(fitted))
    users = world.users.iloc[fitted].reset_index(drop=True).assign(activity=np.exp(returns.log_activity))
    population = CalibratedPopulation(users, world.interest[fitted])
    repetition = dynamics.genre_repetition(ratings, dynamics.known_genres(world.catalog), config.session_gap_minutes)
    sim_config, leave, returns_meta = fit_leaving(world.catalog, world.config, population, sessions, returns, config,
                                                  repetition)
    refitted = CalibratedWorld(world.catalog, sim_config, users, world.interest[fitted], world.meta,
                               world.original_item_ids)
    exponential = dynamics.fit_returns(sessions, len(fitted))
    gap_law = {"sessions": len(sessions.table),
               "exponential": {"log_likelihood": exponential.log_likelihood,
                               "mean_gap_days": exponential.mean_gap_days},
               "weibull": {"log_likelihood": returns.log_likelihood, "mean_gap_days": returns.mean_gap_days,
                           "shape": returns.gap_shape, "shape_fitted": returns.gap_shape_fitted,
                           "activity_spread": returns.activity_spread,
                           "activity_modes_spread": float(np.std(returns.log_activity)),
                           "length_elasticity": returns.gap_length_elasticity}}
    return HeldOutDynamics(fitted, held_out, refitted, leave, returns_meta, gap_law)


def session_dynamics(world: CalibratedWorld, data, share: float = HELD_OUT_SHARE, seed: int = 0,
                     draws: int = 200, max_steps: int = 1500, threads: int = 1) -> dict:
    """The report section: the dynamics refitted without a ``share`` of the users, their
    simulated sessions against the held-out users' real ones (module docstring), with
    ``threads`` torch threads (small tensors: more threads only contend)."""
    with torch_threads(threads):
        return _session_dynamics(world, data, share, seed, draws, max_steps)


def _session_dynamics(world: CalibratedWorld, data, share: float, seed: int, draws: int, max_steps: int) -> dict:
    from recoworld.apps.fidelity.splits import settings_of

    config = settings_of(world)
    folds = Folds.cut(data, config.holdout_fraction, config.validation_fraction, config.users, config.seed)
    held_out = fold_in_mask(folds.n_users, share, seed).nonzero().flatten().numpy()
    fit = refit_without(world, folds, held_out, config)
    ratings, genres = folds.data.ratings, dynamics.known_genres(world.catalog)
    data_end = float(ratings["timestamp"].max())
    first = ratings.groupby("user_id")["timestamp"].min().reindex(range(folds.n_users)).to_numpy(np.float64)
    rows = fit.fitted_rows
    slots = np.arange(len(rows))
    simulated = dynamics.simulate_lives(world.catalog, fit.world.config, fit.world.population().pinned(slots, slots),
                                        slots, (data_end - first[rows]) / DAY, max_steps=max_steps, seed=seed)
    real = ratings[ratings["user_id"].isin(held_out)]
    names = measurable(data.has_ratings, has_genres(world.catalog))
    out = compare(session_table(real, genres, config.session_gap_minutes),
                  session_table(simulated, genres, config.session_gap_minutes), draws, seed, names)
    return {"statistics": out, "held_out_users": len(held_out), "fitted_users": len(rows),
            "share": share, "leave": fit.leave, "returns": fit.returns, "gap_law": fit.gap_law,
            "config": {k: getattr(fit.world.config, k) for k in REFITTED}}


def measurable(has_ratings: bool, with_genres: bool) -> list[str]:
    """The names of :data:`STATISTICS` a log can measure: without ratings there is no
    session mean rating to correlate with the next gap, and without genres (every item in
    the placeholder genre) every pair of consecutive items would share one."""
    left_out = {"gap_vs_mean_rating"} if not has_ratings else set()
    left_out |= {"genre_repetition"} if not with_genres else set()
    return [name for name in STATISTICS if name not in left_out]


def targets(section: dict) -> dict[str, bool | None]:
    """The issue's target: session length and gap distributions within the half-split noise
    (KS); ``None`` where there is no verdict (:func:`compare`)."""
    return {f"{name}: KS within the half-split noise": section["statistics"][name]["within_noise"]["ks"]
            for name in ("session_length", "gap_days")}
