r"""Metrics of a recommender's run, computed from the logged columns of :mod:`recoworld.logs`.

Every function is pure. The scalar metrics take columns as arrays (per-item columns as
``[rows, K]`` arrays, see :func:`recoworld.logs.list_column`); the two table builders take
the log of one agent as a DataFrame and group it into episodes and sessions, of which
:func:`whole_lives` and :func:`ended_sessions` keep the ones that means over lives count.

Whole lives. A rollout runs a fixed number of steps (``experiment.steps``); when a user's
episode (their life: until they churn or ``env.max_steps`` cuts it) ends, the slot takes a
new user, and the rollout's end cuts the life in progress. A mean over the lives, or the
sessions, that happened to end in the log leans toward the short ones (length-biased
sampling): of two lives that start late, the short one ends in time and is counted, the
long one is cut and left out. Return per episode, watch time and session length therefore
count *whole lives* (:func:`whole_lives`): per seed, the episodes that started early enough
to end in the log whatever their length, at rollout step ``s <= steps - env.max_steps``,
and every session of them that the user ended. Whether a slot's next user starts in time
depends on how long the users before them lived, never on their own life, so the lives
taken are a fair sample of the population (Wald's identity); for a learning agent, of the
users who arrived in the rollout's first ``steps - env.max_steps + 1`` steps, met by the
agent as it was then. Watch time and session length pool the sessions of those lives:
total watch time (slates) over the number of sessions ended, the mean session of an
unending rollout. A session cut by ``env.max_steps`` was not ended by the user and counts
in neither.

When they are defined. ``experiment.steps >= env.max_steps`` makes the three defined in
every seed (each slot's first user is whole), and each step beyond adds users. With fewer
steps, or without ``max_steps`` (:func:`run_metrics`' argument), the lives taken are each
slot's first, and the three are defined (NaN otherwise) only in a seed where every one of
them churned within the rollout.

Intervals. :func:`mean_interval` is a Student-t interval over independent replications;
the runner applies it across seeds (see :func:`summarize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recoworld.logs import LogSchemaError, list_column

EPISODE_KEYS = ["seed", "user", "episode"]
SESSION_KEYS = [*EPISODE_KEYS, "session"]
#: What identifies a row of one agent's log: a user-step happens once.
STEP_KEYS = [*EPISODE_KEYS, "step"]

#: Per-seed metrics of :func:`run_metrics`, in display order, with their meaning.
METRICS: dict[str, str] = {
    "return_per_episode": "mean return (sum of rewards) of a user's whole episode, over the episodes that started "
                          "by rollout step steps - env.max_steps (all of them end in the rollout)",
    "ctr": "clicks / items shown",
    "watch_time": "mean watch time (sum of watch fractions) of a session the user ended, over those episodes' sessions",
    "session_length": "mean number of slates in a session the user ended, over those episodes' sessions",
    "return_rate": "share of session ends after which the user returns",
    "compliance": "mean compliance over steps with an instruction in force",
    "coverage": "share of catalog items shown at least once",
    "diversity": "mean pairwise 1 - cosine of item features within a slate",
    "novelty": "mean -log2 popularity of the items shown",
    "exposure_gini": "Gini coefficient of the position-discounted exposure over all catalog items",
    "head_exposure": "share of exposure on the head items (the 20% most popular)",
    "mid_exposure": "share of exposure on the mid items (the next 30% by popularity)",
    "tail_exposure": "share of exposure on the tail items (the 50% least popular)",
    "serendipity": "clicks on items outside the popular head, per item shown (Ge et al. 2010)",
}
#: The metrics over whole lives (:func:`whole_lives`), defined once ``experiment.steps >= env.max_steps``.
WHOLE_LIFE_METRICS = ("return_per_episode", "watch_time", "session_length")


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided confidence interval (``nan`` bounds when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int


def mean_interval(values, confidence: float = 0.95) -> Interval:
    r"""Student-t interval :math:`\bar x \pm t_{n-1,(1+c)/2}\, s/\sqrt n` for the mean of ``values``.

    NaN values (a metric undefined for a replication) are dropped first. With fewer than
    two values the bounds are NaN; with no values the mean is NaN too.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def seed_summary(values, confidence: float = 0.95) -> dict:
    """``{"mean", "ci_low", "ci_high", "per_seed"}`` of one value per seed (:func:`mean_interval`),
    NaN as ``None``: the form of every metric in ``metrics.json``."""
    interval = mean_interval(values, confidence)
    return {"mean": _json(interval.mean), "ci_low": _json(interval.low), "ci_high": _json(interval.high),
            "per_seed": [_json(v) for v in values]}


# ----------------------------------------------------------------- tables
def episode_table(log: pd.DataFrame) -> pd.DataFrame:
    """One row per user episode of ``log`` (one agent's rows).

    Columns: ``seed``, ``user``, ``episode``, ``return`` (sum of ``reward``), ``steps``,
    ``start`` (the ``rollout_step`` of its first step), ``completed`` (the episode ended in
    the log: ``terminated`` or ``truncated``).
    """
    ended = log["terminated"].to_numpy() | log["truncated"].to_numpy()
    grouped = log.assign(_ended=ended).groupby(EPISODE_KEYS, sort=True)
    table = grouped.agg(**{"return": ("reward", "sum"), "steps": ("reward", "size"),
                           "start": ("rollout_step", "min"), "completed": ("_ended", "any")})
    table["return"] = table["return"].astype(np.float64)
    return table.reset_index()


def session_table(log: pd.DataFrame) -> pd.DataFrame:
    """One row per session of ``log`` (one agent's rows).

    Columns: ``seed``, ``user``, ``episode``, ``session``, ``steps``, ``watch_time`` (sum
    of the watch fractions of all its slates), ``completed`` (the user ended it:
    ``left_session`` on its last step), ``returned`` and ``churned`` (how it ended).
    """
    watch = list_column(log, "watch_fraction").sum(axis=1) if len(log) else np.zeros(0)
    grouped = log.assign(_watch=watch).groupby(SESSION_KEYS, sort=True)
    table = grouped.agg(
        steps=("reward", "size"), watch_time=("_watch", "sum"), completed=("left_session", "any"),
        returned=("returned", "any"), churned=("churned", "any"),
    )
    table["watch_time"] = table["watch_time"].astype(np.float64)
    return table.reset_index()


def whole_lives(episodes: pd.DataFrame, max_steps: int | None = None, steps: int | None = None) -> pd.DataFrame:
    """The rows of an :func:`episode_table` that are a fair sample of user lives: per seed,
    the episodes certain to end in the log whatever their length (see the module's "Whole
    lives"); none of a seed where one of them did not end.

    An episode lasts at most ``max_steps`` steps (``env.max_steps``), so one that starts at
    rollout step ``s`` ends by the rollout's last step ``last = steps - 1`` if ``s <= last +
    1 - max_steps``: those are taken. Give ``steps`` (``experiment.steps``): without it the
    last step is read from the log, one step early where every slot sat in its autoreset
    step at the end, and then whether a life that started at the bound is taken depends on
    its own length. Where that bound is below 0 (a rollout shorter than
    ``max_steps``), or ``max_steps`` is None, the episodes that start at step 0 are taken
    (each slot's first), and a seed is kept only if every one of them ended.

    Raises:
        ValueError: an episode started in time to end and had not: it is longer than
            ``max_steps``, which is then not the env's ``env.max_steps``; or a row lies
            beyond ``steps``.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps={max_steps}; give the env's env.max_steps, at least 1")
    last = (episodes["start"] + episodes["steps"] - 1).groupby(episodes["seed"]).transform("max")
    if steps is not None:
        if (last >= steps).any():
            raise ValueError(f"the log holds rollout step {int(last.max())}, beyond steps={steps}; give the "
                             "experiment.steps the rollout ran with")
        last = pd.Series(steps - 1, index=episodes.index)
    latest_start = 0 if max_steps is None else (last + 1 - max_steps).clip(lower=0)
    lives = episodes[episodes["start"] <= latest_start]
    unended = lives[~lives["completed"]]
    if max_steps is not None and (last[unended.index] + 1 >= max_steps).any():
        longer = unended[last[unended.index] + 1 >= max_steps].iloc[0]
        raise ValueError(
            f"seed {longer['seed']}, user {longer['user']}, episode {longer['episode']} started at rollout step "
            f"{longer['start']} and had not ended after {longer['steps']} steps, at the rollout's last step "
            f"{last[longer.name]}: longer than max_steps={max_steps}; give the env.max_steps the rollout ran with")
    return lives[~lives["seed"].isin(unended["seed"])]


def ended_sessions(sessions: pd.DataFrame, lives: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`session_table` that the user ended (``completed``), within the
    episodes ``lives`` (rows of an :func:`episode_table`, e.g. :func:`whole_lives`)."""
    within = sessions.merge(lives[EPISODE_KEYS], on=EPISODE_KEYS)
    return within[within["completed"]]


# ---------------------------------------------------------------- scalars
def click_through_rate(clicked: np.ndarray) -> float:
    """Clicks per item shown: ``clicked.sum() / clicked.size`` for ``clicked`` ``[rows, K]``.

    Every item of a slate counts as shown, examined or not.
    """
    clicked = np.asarray(clicked)
    return float(clicked.sum() / clicked.size) if clicked.size else math.nan


def return_rate(left_session: np.ndarray, returned: np.ndarray) -> float:
    """Share of session ends (``left_session``) after which the user returns (``returned``)."""
    left = np.asarray(left_session, dtype=bool)
    ends = int(left.sum())
    return float((np.asarray(returned, dtype=bool) & left).sum() / ends) if ends else math.nan


def instruction_compliance(compliance: np.ndarray, in_force: np.ndarray) -> float:
    """Mean ``compliance`` over the steps with an instruction in force (NaN when none had one)."""
    in_force = np.asarray(in_force, dtype=bool)
    if not in_force.any():
        return math.nan
    return float(np.asarray(compliance, dtype=np.float64)[in_force].mean())


def catalog_coverage(slates: np.ndarray, n_items: int) -> float:
    """Share of the ``n_items`` catalog items that appear in at least one slate."""
    slates = np.asarray(slates)
    return float(len(np.unique(slates)) / n_items) if slates.size else 0.0


def intra_slate_diversity(slates: np.ndarray, features: np.ndarray) -> float:
    r"""Mean over slates of the mean pairwise cosine distance of their items' features.

    For a slate of ``K`` items with unit feature vectors :math:`\hat f_1..\hat f_K`,
    :math:`\frac{1}{K(K-1)}\sum_{i\ne j}(1-\hat f_i\cdot\hat f_j)
    = 1 - \frac{\lVert\sum_i \hat f_i\rVert^2 - K}{K(K-1)}`, computed that way in
    :math:`O(KD)` per slate. An item whose features are all zero has no direction: its
    cosine with any item is taken as 0 (distance 1). NaN for slates of one item.
    """
    slates = np.asarray(slates)
    if slates.ndim != 2 or slates.shape[1] < 2 or len(slates) == 0:
        return math.nan
    unit = np.asarray(features, dtype=np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    k = slates.shape[1]
    shown = unit[slates]
    summed = shown.sum(axis=1)
    # Subtract the self-products actually present, not K: a zero feature row adds 0, not 1.
    self_products = (shown * shown).sum(axis=(1, 2))
    similarity = ((summed * summed).sum(axis=1) - self_products) / (k * (k - 1))
    return float((1.0 - similarity).mean())


def novelty(slates: np.ndarray, popularity: np.ndarray) -> float:
    r"""Mean self-information :math:`-\log_2 p_i` of the items shown, with :math:`p_i` the
    item's share of all interactions (the catalog's popularity).

    Zhou et al. (PNAS 2010) take :math:`p_i = k_i/u`, the share of users who consumed the
    item; where each user consumes an item once, the share of interactions is
    :math:`k_i/(u\bar n)` for :math:`\bar n` interactions per user, so every value here is
    theirs plus :math:`\log_2\bar n` bits, the same for all agents of a world. Compare
    novelty across agents of one world, not with published figures. An item of popularity 0
    is counted at :math:`p_i = 10^{-12}` (about 40 bits).
    """
    slates = np.asarray(slates)
    if slates.size == 0:
        return math.nan
    p = np.maximum(np.asarray(popularity, dtype=np.float64), 1e-12)
    return float(-np.log2(p)[slates].mean())


POPULARITY_GROUPS = ("head", "mid", "tail")


def item_exposure(slates: np.ndarray, n_items: int) -> np.ndarray:
    r"""``[N]`` exposure of every item: the sum over its impressions of the position weight
    :math:`1/\log_2(k + 2)` (position ``k`` 0-based), the attention model of Singh &
    Joachims ("Fairness of Exposure in Rankings", KDD 2018) and of DCG."""
    slates = np.asarray(slates)
    weight = 1.0 / np.log2(np.arange(slates.shape[1]) + 2.0) if slates.ndim == 2 else np.ones(0)
    return np.bincount(slates.ravel(), weights=np.broadcast_to(weight, slates.shape).ravel(), minlength=n_items)


def gini(values: np.ndarray) -> float:
    r"""Gini coefficient of non-negative ``values``: 0 when equal, :math:`1 - 1/N` when one
    holds all; :math:`G = \sum_i (2i - N - 1) x_{(i)} / (N \sum x)` over the sorted values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0 or x.sum() <= 0:
        return math.nan
    rank = np.arange(1, x.size + 1)
    return float(((2 * rank - x.size - 1) * x).sum() / (x.size * x.sum()))


def popularity_groups(popularity: np.ndarray) -> np.ndarray:
    """``[N]`` group of every item by popularity: 0 head (the 20% most popular items), 1 mid
    (the next 30%), 2 tail (the 50% least popular); ties broken by item id. The split
    follows Abdollahpouri et al. ("Managing Popularity Bias in Recommender Systems with
    Personalized Re-ranking", FLAIRS 2019), with the catalog's popularity as training popularity."""
    popularity = np.asarray(popularity, dtype=np.float64)
    rank = np.empty(len(popularity), dtype=np.int64)
    rank[np.argsort(-popularity, kind="stable")] = np.arange(len(popularity))
    return np.digitize(rank, [math.ceil(0.2 * len(popularity)), math.ceil(0.5 * len(popularity))])


def exposure_shares(slates: np.ndarray, groups: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Share of the exposure (:func:`item_exposure`) that falls on each group; ``groups`` is
    ``[N]`` group ids (e.g. :func:`popularity_groups`, a provider, an attribute), or
    ``[N, G]`` booleans of multi-valued attributes such as genres (an item's exposure
    counts for each of its groups, shared equally). NaN where nothing was shown."""
    groups = np.asarray(groups)
    exposure = item_exposure(slates, len(groups))
    if groups.ndim == 2:
        membership = groups.astype(np.float64) / np.maximum(groups.sum(1, keepdims=True), 1)
    else:
        membership = np.eye(n_groups or int(groups.max()) + 1)[groups]
    total = exposure.sum()
    return exposure @ membership / total if total > 0 else np.full(membership.shape[1], math.nan)


def serendipity(slates: np.ndarray, clicked: np.ndarray, popularity: np.ndarray) -> float:
    """Serendipity after Ge, Delgado-Battenfeld & Jannach ("Beyond Accuracy", RecSys 2010):
    the share of items shown that are *unexpected*, outside what a primitive popularity
    recommender would show (the head of :func:`popularity_groups`), and *useful*, clicked."""
    slates = np.asarray(slates)
    if slates.size == 0:
        return math.nan
    unexpected = popularity_groups(popularity)[slates] != 0
    return float((unexpected & np.asarray(clicked, dtype=bool)).mean())


def exposure_metrics(slates: np.ndarray, clicked: np.ndarray, popularity: np.ndarray) -> dict[str, float]:
    """The exposure-fairness and serendipity entries of :data:`METRICS`."""
    shares = exposure_shares(slates, popularity_groups(popularity), len(POPULARITY_GROUPS))
    return {"exposure_gini": gini(item_exposure(slates, len(popularity))),
            **{f"{name}_exposure": float(share) for name, share in zip(POPULARITY_GROUPS, shares)},
            "serendipity": serendipity(slates, clicked, popularity)}


def retention_curve(session: np.ndarray, churned: np.ndarray) -> np.ndarray:
    r"""Share of users still active after ``n`` sessions, ``n = 0, 1, ...`` (Kaplan–Meier).

    Args:
        session: index (0-based) of each *completed* session.
        churned: whether the user churned after it (else they returned).

    With :math:`d_k` churns among the :math:`e_k` users who ended their session ``k``,
    :math:`S(0) = 1` and :math:`S(n) = \prod_{k<n}(1 - d_k/e_k)`. Users whose episode was
    cut (by ``env.max_steps`` or the end of the rollout) before they ended session ``k``
    leave the risk set without counting as churned, as censored lifetimes do (Kaplan and
    Meier, JASA 1958). The curve stops at the last session index that some user ended.
    """
    session = np.asarray(session, dtype=np.int64)
    churned = np.asarray(churned, dtype=bool)
    if len(session) == 0:
        return np.ones(1)
    ended = np.bincount(session)
    churns = np.bincount(session, weights=churned.astype(np.float64), minlength=len(ended))
    if (ended == 0).any():  # no user reached some session: the curve is unknown from there on
        last = int(np.flatnonzero(ended == 0)[0])
        ended, churns = ended[:last], churns[:last]
    return np.concatenate([[1.0], np.cumprod(1.0 - churns / ended)])


# ---------------------------------------------------------------- per run
def run_metrics(log: pd.DataFrame, features: np.ndarray, popularity: np.ndarray,
                max_steps: int | None = None, steps: int | None = None) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one agent's rows of one seed.

    Args:
        log: rows of one agent and one seed, as :func:`recoworld.logs.read_log` gives them.
        features: ``[N, D]`` item features of the catalog (for diversity).
        popularity: ``[N]`` item popularity shares of the catalog (for novelty; ``N`` for
            coverage).
        max_steps: the env's ``env.max_steps``: return per episode, watch time and session
            length count the lives that started by rollout step ``steps - max_steps``
            (:func:`whole_lives`); without it, each slot's first.
        steps: the rollout's steps (``experiment.steps``); without it, read from the log.
    """
    lives = whole_lives(episode_table(log), max_steps, steps)
    sessions = ended_sessions(session_table(log), lives)
    slates = list_column(log, "slate")
    return {
        "return_per_episode": _mean(lives["return"]),
        "ctr": click_through_rate(list_column(log, "clicked")),
        "watch_time": _mean(sessions["watch_time"]),
        "session_length": _mean(sessions["steps"]),
        "return_rate": return_rate(log["left_session"].to_numpy(), log["returned"].to_numpy()),
        "compliance": instruction_compliance(log["compliance"].to_numpy(dtype=np.float64, na_value=np.nan),
                                             log["instruction_in_force"].to_numpy()),
        "coverage": catalog_coverage(slates, len(popularity)),
        "diversity": intra_slate_diversity(slates, features),
        "novelty": novelty(slates, popularity),
        **exposure_metrics(slates, list_column(log, "clicked"), popularity),
    }


def summarize(log: pd.DataFrame, features: np.ndarray, popularity: np.ndarray,
              confidence: float = 0.95, max_steps: int | None = None, steps: int | None = None) -> dict[str, dict]:
    """Per agent: each metric's mean across seeds with its t-interval, and the retention curve.

    Each metric is computed per seed (:func:`run_metrics`, given ``max_steps`` and ``steps``); seeds are the
    independent replications — each one a fresh population and a freshly set-up agent — so the
    interval stays valid for learning agents, whose episodes within a run depend on each
    other. The retention curve pools the sessions of all seeds.

    Returns ``{agent: {"metrics": {name: {"mean", "ci_low", "ci_high", "per_seed"}},
    "retention": [S(0), S(1), ...], "retention_at_risk": [e_0, e_1, ...], "seeds": [...],
    "interactions", "episodes", "sessions"}}`` with NaN turned into ``None``, where
    ``e_k`` is the number of users who ended session ``k`` (the curve's tail rests on few).

    Raises:
        LogSchemaError: a user-step (:data:`STEP_KEYS`) of an agent appears twice: rows
            logged twice would be counted twice, and a repeated seed merged into one.
        ValueError: an episode outlived ``max_steps`` (:func:`whole_lives`).
    """
    summary: dict[str, dict] = {}
    for agent, rows in log.groupby("agent", sort=False):
        repeated = rows.duplicated(STEP_KEYS)
        if repeated.any():
            seed, user, episode, step = rows.loc[repeated, STEP_KEYS].iloc[0].tolist()
            raise LogSchemaError(f"the log holds agent {agent!r}'s seed {seed}, user {user}, episode {episode}, "
                                 f"step {step} more than once: its rows were logged twice (a seed repeated in "
                                 "experiment.seeds, or a part read twice); read each rollout once")
        seeds = sorted(rows["seed"].unique().tolist())
        per_seed = [run_metrics(rows[rows["seed"] == s], features, popularity, max_steps, steps) for s in seeds]
        metrics = {name: seed_summary([m[name] for m in per_seed], confidence) for name in METRICS}
        episodes, sessions = episode_table(rows), session_table(rows)
        ended = sessions[sessions["completed"]]
        retention = retention_curve(ended["session"].to_numpy(), ended["churned"].to_numpy())
        summary[str(agent)] = {
            "metrics": metrics,
            "retention": retention.tolist(),
            "retention_at_risk": np.bincount(ended["session"].to_numpy(), minlength=len(retention) - 1)
                                 [: len(retention) - 1].tolist(),
            "seeds": seeds,
            "interactions": len(rows),
            "episodes": {"completed": int(episodes["completed"].sum()), "all": len(episodes)},
            "sessions": {"completed": len(ended), "all": len(sessions)},
        }
    return summary


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def _json(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
