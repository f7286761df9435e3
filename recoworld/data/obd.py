"""The Open Bandit Dataset (OBD): real logged recommendations with real propensities.

Y. Saito, S. Aihara, M. Matsutani, Y. Narita. "Open Bandit Dataset and Pipeline: Towards
Realistic and Reproducible Off-Policy Evaluation", NeurIPS 2021 Datasets and Benchmarks.

ZOZOTOWN, a fashion e-commerce site, filled a three-item list (positions 1..3 of the page)
with one of two behaviour policies, each serving a random share of the traffic during the
same week (24-30 November 2019): uniform ``"random"`` and Bernoulli Thompson sampling
``"bts"``, in three campaigns (``"all"`` items, ``"men"``, ``"women"``). The small sample
that ships in obp's source distribution holds 10,000 impressions per policy x campaign;
``recoworld data fetch open-bandit`` puts it in the cache together with the BTS priors
(``prior_bts.yaml``). :func:`load_open_bandit` reads it, or the full data set, from a folder
in OBD's layout ``{random,bts}/{all,men,women}/{campaign}.csv`` + ``item_context.csv``.

Mapping to the log schema (:data:`recoworld.logs.COLUMNS`). An OBD row is one impression:
the item ``item_id`` at ``position`` of a three-item list, whether it was clicked, and
``propensity_score``, the probability that the behaviour policy put that item at that
position. The sample draws rows, not lists (no two rows share a list), so each row becomes
one log row with

* ``slate = [item_id]`` and the extra column ``position = position - 1`` (0-based, the
  place on the page; the other two items of the list are not in the sample);
* ``position_propensity = [propensity_score]``: OBD's score is exactly the schema's
  item-position marginal;
* ``propensity`` and ``cascade_propensity`` null: OBD logs neither the whole list's
  probability nor its prefixes;
* ``clicked = [click]``, ``reward = click``, ``agent`` = the behaviour policy;
* extra columns ``timestamp``, ``user_feature_0..3`` (hashed categories) and
  ``user_item_affinity`` (one value per item).

Columns of the schema that describe simulated users (sessions, satisfaction, ratings, ...)
have no OBD counterpart and are absent, so :func:`recoworld.logs.read_log` rejects the
frame: it is an OBD log, not a RecoWorld run. For the estimators of :mod:`recoworld.ope`,
:meth:`OpenBanditData.feedback` gives a position-aware :class:`~recoworld.ope.BanditFeedback`.

The BTS policy did not look at the context: it drew a click rate for every item from its
Beta distribution and showed the three highest draws in order.
:func:`~recoworld.data.bts_policy.bts_distribution` (re-exported here) computes that
policy's slate distribution from :func:`load_bts_prior` by seeded Monte Carlo. The
production system updated its Beta parameters during the week, so the ``propensity_score``
of the ``bts`` logs varies over time and the published priors reproduce it only roughly;
like OBP's own benchmark, :func:`obd_study` takes the priors as the evaluation policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from omegaconf import OmegaConf

from recoworld.data.bts_policy import SlateDistribution, bts_distribution
from recoworld.data.tables import check_column, numeric_column
from recoworld.logs import SCHEMA, _to_arrow, list_column
from recoworld.ope import DM, DR, IPS, SNDR, SNIPS, BanditFeedback, LogisticRegression, fit_reward_model
from recoworld.ope.base import BaseEstimator, check_resamples

__all__ = [
    "BEHAVIOR_POLICIES", "CAMPAIGNS", "N_POSITIONS", "OpenBanditData", "SlateDistribution",
    "bts_distribution", "load_bts_prior", "load_open_bandit", "obd_study",
]

BEHAVIOR_POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
N_POSITIONS = 3
PRIOR_FILE = "prior_bts.yaml"
_USER_FEATURES = tuple(f"user_feature_{j}" for j in range(4))
_LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score", *_USER_FEATURES)
_ITEM_COLUMNS = ("item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3")
_LAYOUT = (
    "the Open Bandit Dataset layout is {random,bts}/{all,men,women}/<campaign>.csv with item_context.csv "
    "beside each (recoworld data fetch open-bandit, or the folder obp/dataset/obd of obp's source distribution)"
)


@dataclass
class OpenBanditData:
    """One behaviour policy x campaign of the Open Bandit Dataset.

    Attributes:
        behavior_policy: ``"random"`` or ``"bts"``.
        campaign: ``"all"``, ``"men"`` or ``"women"``.
        log: one row per impression, in time order (see the module docstring).
        items: one row per item, row ``i`` is ``item_id == i``: ``item_feature_0`` (a
            standardised number) and ``item_feature_1..3`` (hashed categories; the hashes
            differ between the two policies' files).
    """

    behavior_policy: str
    campaign: str
    log: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_items(self) -> int:
        return len(self.items)

    def feedback(self) -> BanditFeedback:
        """The impressions as rounds: action = item, 0-based position, reward = click."""
        return BanditFeedback(
            action=list_column(self.log, "slate")[:, 0],
            reward=self.log["reward"].to_numpy(np.float64),
            pscore=list_column(self.log, "position_propensity")[:, 0],
            position=self.log["position"].to_numpy(),
        )


def load_open_bandit(behavior_policy: str = "random", campaign: str = "all",
                     path: str | Path | None = None) -> OpenBanditData:
    """Read one behaviour policy x campaign of the Open Bandit Dataset.

    Args:
        behavior_policy: ``"random"`` or ``"bts"``.
        campaign: ``"all"``, ``"men"`` or ``"women"``.
        path: a folder in OBD's layout; ``None`` fetches the small sample into the cache
            first if it is not there (:func:`recoworld.data.fetch.fetch`).

    Raises:
        FileNotFoundError: a file of the layout is missing.
        ValueError: an unknown policy or campaign, or a damaged file (the message names
            the file, the column and the row).
    """
    _check_choice(behavior_policy, "behavior_policy", BEHAVIOR_POLICIES)
    _check_choice(campaign, "campaign", CAMPAIGNS)
    root = _data_folder(path)
    folder = root / behavior_policy / campaign
    if not folder.is_dir():
        _name_the_layout_meant(root)
    items = _read_items(folder / "item_context.csv")
    log = _read_log(folder / f"{campaign}.csv", behavior_policy, len(items))
    return OpenBanditData(behavior_policy, campaign, log, items)


def load_bts_prior(campaign: str = "all", path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The BTS policy's Beta parameters ``(alpha, beta)``, one per item of ``campaign``.

    ``path`` is ``prior_bts.yaml`` (obp's ``obp/policy/conf/prior_bts.yaml``) or a folder
    holding it; ``None`` takes it from the cache, fetching it first if needed.
    """
    _check_choice(campaign, "campaign", CAMPAIGNS)
    file = _data_folder(path)
    file = file if file.suffix in (".yaml", ".yml") else file / PRIOR_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist; it ships in obp's source distribution as "
                                "obp/policy/conf/prior_bts.yaml (recoworld data fetch open-bandit)")
    priors = OmegaConf.to_container(OmegaConf.load(file))
    if not isinstance(priors, dict) or campaign not in priors:
        listed = sorted(priors) if isinstance(priors, dict) else []
        raise ValueError(f"{file} has no priors for campaign {campaign!r}; it lists {listed}")
    try:
        alpha, beta = (np.asarray(priors[campaign][key], dtype=np.float64) for key in ("alpha", "beta"))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{file}: campaign {campaign!r} needs numeric lists 'alpha' and 'beta' ({err!r})") from None
    if alpha.ndim != 1 or alpha.shape != beta.shape:
        raise ValueError(f"{file}: campaign {campaign!r} has {alpha.size} alpha and {beta.size} beta values; "
                         "it needs one of each per item")
    if not (np.isfinite(alpha) & np.isfinite(beta) & (alpha > 0) & (beta > 0)).all():
        raise ValueError(f"{file}: campaign {campaign!r} has a Beta parameter that is not a positive number")
    return alpha, beta


# --- the study ----------------------------------------------------------------------------

class _OnPolicyMean(BaseEstimator):
    """The mean logged reward, for the bootstrap interval of the on-policy value."""

    def _round_terms(self, reward: np.ndarray) -> np.ndarray:
        return np.asarray(reward, dtype=np.float64)[:, None]


def obd_study(cache_dir: str | Path | None = None, n_mc: int = 100_000, seed: int = 0, campaign: str = "all",
              *, path: str | Path | None = None, n_bootstrap: int = 1000, alpha: float = 0.05) -> dict:
    """Estimate the BTS policy's click rate from the uniform-random logs, and compare.

    The evaluation policy is :func:`bts_distribution` of the campaign's priors (``n_mc``
    draws); the logged data are the ``random`` impressions, whose propensity is
    ``1 / n_items`` at every position. The truth is the click rate observed in the
    ``bts`` logs of the same week (on-policy). Estimators: IPS, SNIPS, and DM, DR, SNDR
    with a logistic reward model on item and position indicators, cross-fitted on 5
    folds (the policy ignores the context, and about 40 clicks in 10,000 impressions
    support no richer model); then IPS at each position alone against the on-policy click
    rate at that position: the per-position terms of independent (item-position) IPS,
    whose sum estimates the clicks per three-item list. Whole-slate and cascade estimators
    do not apply: the sample holds single impressions, not complete lists. Intervals hold
    the fitted reward model fixed (:meth:`~recoworld.ope.BaseEstimator.estimate_interval`),
    so DM's is far narrower than its real uncertainty. The estimates with the defaults are
    in ``benchmarks/RESULTS.md``.

    Args:
        cache_dir: the cache root for :func:`recoworld.data.fetch.fetch` (``None``: the
            default cache); ignored when ``path`` is given.
        n_mc, seed: Monte-Carlo draws and seed of the BTS distribution; ``seed`` also seeds
            the folds and the bootstrap.
        campaign: ``"all"``, ``"men"`` or ``"women"``.
        path: a folder in OBD's layout holding ``prior_bts.yaml`` too, instead of the cache.
        n_bootstrap, alpha: percentile-bootstrap ``1 - alpha`` intervals over impressions.

    Returns:
        ``{"campaign", "n_logged", "n_on_policy", "n_mc", "mc_standard_error", "rows"}``,
        ``mc_standard_error`` the largest standard error of a BTS marginal, and ``rows`` a
        list of ``{estimator, estimate, ci_low, ci_high, on_policy, on_policy_ci_low,
        on_policy_ci_high, rel_error}`` with ``rel_error = |estimate - on_policy| / on_policy``.
    """
    check_resamples(n_bootstrap, alpha)  # before the download and the Monte-Carlo draws
    if path is None:
        from recoworld.data.fetch import fetch

        path = fetch("open-bandit", None if cache_dir is None else Path(cache_dir))
    logged = load_open_bandit("random", campaign, path)
    on_policy = load_open_bandit("bts", campaign, path)
    prior = load_bts_prior(campaign, path)
    if prior[0].size != logged.n_items:
        raise ValueError(f"prior_bts.yaml has {prior[0].size} items for campaign {campaign!r}, "
                         f"but its item_context.csv lists {logged.n_items}")
    policy = bts_distribution(*prior, slate_length=N_POSITIONS, n_mc=n_mc, seed=seed)
    feedback = logged.feedback()
    action_dist = policy.action_dist(feedback.n_rounds)
    bootstrap = {"n_bootstrap": n_bootstrap, "alpha": alpha, "seed": seed}
    rows = _whole_log_rows(feedback, action_dist, on_policy, logged.n_items, seed, bootstrap)
    rows += _per_position_rows(feedback, action_dist, on_policy, bootstrap)
    return {
        "campaign": campaign, "n_logged": feedback.n_rounds, "n_on_policy": len(on_policy.log), "n_mc": n_mc,
        "mc_standard_error": float(policy.standard_error.max()), "rows": rows,
    }


def _whole_log_rows(feedback: BanditFeedback, action_dist: np.ndarray, on_policy: OpenBanditData, n_items: int,
                    seed: int, bootstrap: dict) -> list[dict]:
    """IPS, SNIPS, DM, DR and SNDR on every logged impression against the on-policy click rate."""
    # Item and position indicators, the same in every round: a view, not n copies.
    indicators = np.concatenate([
        np.broadcast_to(np.eye(n_items)[:, None, :], (n_items, N_POSITIONS, n_items)),
        np.broadcast_to(np.eye(N_POSITIONS)[None], (n_items, N_POSITIONS, N_POSITIONS)),
    ], axis=2)
    features = np.broadcast_to(indicators, (feedback.n_rounds, *indicators.shape))
    estimated_rewards = fit_reward_model(feedback, features, LogisticRegression(), n_folds=5, seed=seed)
    truth = _OnPolicyMean().estimate_interval(on_policy.log["reward"].to_numpy(np.float64), **bootstrap)
    rows = []
    for estimator in (IPS(), SNIPS(), DM(), DR(), SNDR()):
        value = estimator.estimate_interval(feedback, action_dist, estimated_rewards, **bootstrap)
        rows.append(_row(type(estimator).__name__, value, truth))
    return rows


def _per_position_rows(feedback: BanditFeedback, action_dist: np.ndarray, on_policy: OpenBanditData,
                       bootstrap: dict) -> list[dict]:
    """IPS of the impressions at each position against the on-policy click rate there."""
    clicks = on_policy.log["reward"].to_numpy(np.float64)
    rows = []
    for k in range(N_POSITIONS):
        at_k = feedback.position == k
        shown = BanditFeedback(feedback.action[at_k], feedback.reward[at_k], feedback.pscore[at_k])
        value = IPS().estimate_interval(shown, action_dist[at_k, :, k], **bootstrap)
        truth_k = _OnPolicyMean().estimate_interval(clicks[on_policy.log["position"].to_numpy() == k], **bootstrap)
        rows.append(_row(f"IPS (position {k})", value, truth_k))
    return rows


def _row(name: str, value, truth) -> dict:
    return {
        "estimator": name, "estimate": value.estimate, "ci_low": value.lower, "ci_high": value.upper,
        "on_policy": truth.estimate, "on_policy_ci_low": truth.lower, "on_policy_ci_high": truth.upper,
        # Undefined (NaN) where no click was observed on-policy.
        "rel_error": abs(value.estimate - truth.estimate) / truth.estimate if truth.estimate else float("nan"),
    }


# --- reading the files --------------------------------------------------------------------

def _check_choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} {value!r} is not one of {choices}")


def _data_folder(path: str | Path | None) -> Path:
    if path is None:
        from recoworld.data.fetch import fetch

        return fetch("open-bandit")
    return Path(path).expanduser()


def _name_the_layout_meant(root: Path) -> None:
    """Raise ``FileNotFoundError`` naming the folder in OBD's layout that ``root`` holds or
    lies inside (the cache root, an unpacked sdist, a policy's folder: the usual slips)."""
    for meant in (root / "open-bandit", root / "obp" / "dataset" / "obd", root.parent, root.parent.parent):
        if meant != root and all((meant / policy).is_dir() for policy in BEHAVIOR_POLICIES):
            raise FileNotFoundError(f"{root} is not a folder in the Open Bandit Dataset layout, but {meant} is: pass "
                                    f"that folder; {_LAYOUT}")


def _read_csv(file: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist; {_LAYOUT}")
    try:
        # Every field as text: values are checked column by column below, naming the row.
        table = pd.read_csv(file, index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not a readable CSV file ({err}); fetch it again") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(table.columns[:8]) + (", ..." if len(table.columns) > 8 else "")
        raise ValueError(f"{file} lacks column(s) {', '.join(missing)}; its columns are {found}")
    if table.empty:
        raise ValueError(f"{file} has its header but no rows; the file is damaged, fetch it again")
    return table.reset_index(drop=True)


def _read_items(file: Path) -> pd.DataFrame:
    table = _read_csv(file, _ITEM_COLUMNS)
    # Log rows name items by id; the ids must be the rows of this table, in order.
    ids = np.arange(len(table))
    numeric_column(table, "item_id", file, "its row number (items are listed as 0, 1, 2, ...)", lambda x: x == ids)
    return pd.DataFrame({
        "item_id": ids,
        "item_feature_0": numeric_column(table, "item_feature_0", file, "a number"),
        **{f"item_feature_{j}": table[f"item_feature_{j}"].to_numpy() for j in (1, 2, 3)},
    })


def _read_log(file: Path, behavior_policy: str, n_items: int) -> pd.DataFrame:
    table = _read_csv(file, _LOG_COLUMNS)
    n = len(table)
    item = numeric_column(table, "item_id", file, f"an item id in 0..{n_items - 1} (item_context.csv)",
                    lambda x: (x >= 0) & (x < n_items) & (x == np.round(x))).astype(np.int64)
    position = numeric_column(table, "position", file, f"a position in 1..{N_POSITIONS}",
                        lambda x: np.isin(x, np.arange(1, N_POSITIONS + 1))).astype(np.int64) - 1
    click = numeric_column(table, "click", file, "0 or 1", lambda x: np.isin(x, (0, 1))).astype(bool)
    pscore = numeric_column(table, "propensity_score", file, "a probability in (0, 1]", lambda x: (x > 0) & (x <= 1))
    affinity = [c for c in table.columns if c.startswith("user-item_affinity_")]
    if len(affinity) != n_items:
        raise ValueError(f"{file} has {len(affinity)} user-item_affinity_* columns, but item_context.csv "
                         f"lists {n_items} items; the two files come from different campaigns")
    affinity = np.stack([numeric_column(table, c, file, "a number") for c in affinity], axis=1)
    columns = {"agent": behavior_policy, "slate": item[:, None], "propensity": None,
               "position_propensity": pscore[:, None], "cascade_propensity": None,
               "clicked": click[:, None], "reward": click.astype(np.float32)}
    arrays = {name: _to_arrow(value, SCHEMA.field(name), n) for name, value in columns.items()}
    arrays["user_item_affinity"] = _to_arrow(affinity, pa.field("user_item_affinity", pa.list_(pa.float64())), n)
    log = pa.table(arrays).to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    timestamp = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601", errors="coerce")
    check_column(table, "timestamp", file, "a date and time", timestamp.notna().to_numpy())
    log.insert(2, "position", position)
    return log.assign(timestamp=timestamp, **{c: table[c].to_numpy() for c in _USER_FEATURES})
