r"""Off-policy learning: a slate recommender trained from logs, with IPS or DR objectives.

The policy scores candidate :math:`c` linearly from its public item features,
:math:`s_c = \theta^\top \phi_c` with :math:`\phi_c` = [catalog features, standardised
log-popularity], and shows the top ``K`` (:class:`LinearScorer`). It does not personalise:
the episodes schema logs the candidates and the slate but not the user's history, so a
policy learned from a log can only rank items; for first-step users (no history) that is
all any policy can do.

Training maximises an off-policy estimate of the per-position value of the softmax
policy :math:`\pi_\theta(c \mid x) = \mathrm{softmax}_c(s)` over the logged candidates,
with rewards :math:`r_{ik}` (clicks) at positions :math:`k` and the logging policy's
per-position marginals :math:`\mu_{ik}` (the ``position_propensity`` column):

.. math::

    \hat V_\text{IPS}(\theta) = \frac1n \sum_i \sum_k \frac{\pi_\theta(a_{ik})}{\mu_{ik}} r_{ik},\qquad
    \hat V_\text{DR}(\theta) = \frac1n \sum_i \sum_k \Big[\sum_c \pi_\theta(c)\,\hat q_{ick}
        + \frac{\pi_\theta(a_{ik})}{\mu_{ik}} (r_{ik} - \hat q_{i a_{ik} k})\Big],

the item-position (independent) estimators of Li et al. (KDD 2018) applied as learning
objectives (counterfactual risk minimisation: Swaminathan & Joachims, JMLR 2015; DR:
Dudik, Langford & Li, ICML 2011), minus an L2 penalty. :math:`\hat q` is a position-based
click model fitted with cross-fitting (:func:`recoworld.ope.fit_slate_reward_model`).
Maximising either puts the softmax's mass on the items with the highest clicks per
impression, so the greedy slate of the learned scores ranks by that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.agents.base import Recommender, deterministic, top_k
from recoworld.catalog import Catalog
from recoworld.logs import list_column, read_log
from recoworld.ope import LogisticRegression, RidgeRegression, fit_slate_reward_model
from recoworld.types import CANDIDATE_FEATURES, CANDIDATE_IDS, Observation

OBJECTIVES = ("ips", "dr")


def item_features(catalog: Catalog) -> np.ndarray:
    """``[n_items, D + 1]`` public features of every item: catalog features and the
    standardised log-popularity."""
    log_popularity = catalog.log_popularity.cpu().numpy().astype(np.float64)
    spread = log_popularity.std() if log_popularity.std() > 0 else 1.0
    popularity = (log_popularity - log_popularity.mean()) / spread
    return np.concatenate([catalog.features.cpu().numpy().astype(np.float64), popularity[:, None]], axis=1)


@dataclass(eq=False)
class LinearScorer(Recommender):
    """Shows the top ``K`` candidates by ``item_features(catalog) @ weights``.

    Args:
        weights: ``[D + 1]`` coefficients of :func:`item_features` (e.g. from
            :func:`learn_from_log`).

    Deterministic; wrap it in :class:`~recoworld.agents.logging_policies.SoftmaxPolicy`
    for a stochastic version.
    """

    weights: np.ndarray = None
    name = "linear_scorer"

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._features = item_features(self.catalog)
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (self._features.shape[1],):
            raise ValueError(f"weights has shape {weights.shape}, but this catalog's item features need "
                             f"({self._features.shape[1]},): {self.catalog.feature_dim} catalog features + popularity")
        self.weights = weights

    def score(self, obs: Observation) -> np.ndarray:
        return self._features[obs[CANDIDATE_IDS]] @ self.weights

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.score(obs), self.slate_size)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)


@dataclass
class LoggedSlates:
    """What off-policy learning and evaluation read from a log, as arrays.

    Attributes:
        candidate_ids: ``[n, C]`` the candidates of each request.
        action: ``[n, K]`` the candidate index shown at each position.
        reward: ``[n, K]`` the per-position reward (clicks).
        propensity, position_propensity, cascade_propensity: the logging policy's
            ``[n]``, ``[n, K]`` and ``[n, K]`` probabilities (None where not logged).
    """

    candidate_ids: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray | None
    position_propensity: np.ndarray | None
    cascade_propensity: np.ndarray | None

    @classmethod
    def from_log(cls, log: str | Path | pd.DataFrame, reward: str = "clicked") -> LoggedSlates:
        """Read an ``episodes.parquet`` (or a DataFrame of its schema) that logged candidates.

        Args:
            log: the log.
            reward: the per-item list column used as the per-position reward
                (``"clicked"``, ``"watch_fraction"`` or ``"liked"``).
        """
        log = read_log(log)
        if reward not in ("clicked", "watch_fraction", "liked"):
            raise ValueError(f"reward={reward!r}; choose a per-item column: 'clicked', 'watch_fraction' or 'liked'")
        if len(log) == 0:
            raise ValueError("the log has no rows")
        if log["candidate_ids"].isna().any():
            row = int(np.flatnonzero(log["candidate_ids"].isna())[0])
            raise ValueError(f"column 'candidate_ids' is null at row {row}; off-policy learning and evaluation need "
                             "each request's candidates: log with experiment.log_candidates=true "
                             "(rollout(..., log_candidates=True))")
        candidates, slate = list_column(log, "candidate_ids"), list_column(log, "slate")
        found = candidates[:, None, :] == slate[:, :, None]                     # [n, K, C]
        if not found.any(-1).all():
            row, position = np.argwhere(~found.any(-1))[0]
            raise ValueError(f"slate[{row}][{position}] = {slate[row, position]} is not among the row's candidate_ids; "
                             "the log's candidates do not match its slates")
        return cls(candidates, found.argmax(-1), list_column(log, reward).astype(np.float64),
                   _optional(log, "propensity"), _optional(log, "position_propensity"),
                   _optional(log, "cascade_propensity"))

    def observation(self, catalog: Catalog) -> Observation:
        """The part of each request's observation a log keeps: candidates and their features."""
        return Observation({CANDIDATE_IDS: self.candidate_ids,
                            CANDIDATE_FEATURES: catalog.features.cpu().numpy()[self.candidate_ids]})


def _optional(log: pd.DataFrame, name: str) -> np.ndarray | None:
    column = log[name]
    if column.isna().all():
        return None
    if column.isna().any():
        raise ValueError(f"column {name!r} is null at row {int(np.flatnonzero(column.isna())[0])} but not everywhere; "
                         "split the log by agent first")
    return list_column(log, name) if name != "propensity" else column.to_numpy(dtype=np.float64)


def learn_from_log(log: str | Path | pd.DataFrame | LoggedSlates, catalog: Catalog, objective: str = "dr",
                   l2: float = 1e-3, steps: int = 300, learning_rate: float = 0.1, max_weight: float | None = None,
                   n_folds: int = 5, seed: int = 0) -> LinearScorer:
    """Train a :class:`LinearScorer` from a log by the IPS or DR objective of the module docstring.

    Args:
        log: ``episodes.parquet``, a DataFrame of its schema, or :class:`LoggedSlates`; it
            must hold ``candidate_ids`` and ``position_propensity`` (exact propensities, e.g.
            from :class:`~recoworld.agents.logging_policies.EpsilonSoft`).
        catalog: the catalog the log's item ids refer to.
        objective: ``"ips"`` or ``"dr"``.
        l2: penalty on the squared norm of the weights.
        steps, learning_rate: full-batch Adam steps on the objective.
        max_weight: clip the importance weights at this value (None: no clipping).
        n_folds: cross-fitting folds of the DR click model.
        seed: the folds and the initial weights.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}; choose one of {OBJECTIVES}")
    if max_weight is not None and not max_weight > 0:
        raise ValueError(f"max_weight={max_weight}; it must be > 0, or None for no clipping")
    data = log if isinstance(log, LoggedSlates) else LoggedSlates.from_log(log)
    if data.position_propensity is None:
        raise ValueError("the log has no position_propensity; off-policy learning needs the logging policy's "
                         "per-position propensities (log with a policy that states them, e.g. EpsilonSoft)")
    phi = item_features(catalog)[data.candidate_ids]                           # [n, C, d]
    features = torch.tensor(phi)
    action = torch.tensor(data.action)
    reward = torch.tensor(data.reward)
    mu = torch.tensor(data.position_propensity, dtype=torch.float64)
    if objective == "dr":
        q = torch.as_tensor(fit_slate_reward_model(phi, data.action, data.reward, regressor=_click_model(data.reward),
                                                   n_folds=n_folds, seed=seed))         # [n, C, K]
        q_logged = q.gather(1, action[:, None, :])[:, 0, :]                    # [n, K]
    generator = torch.Generator().manual_seed(seed)
    weights = (0.01 * torch.randn(phi.shape[2], generator=generator, dtype=torch.float64)).requires_grad_()
    optimizer = torch.optim.Adam([weights], lr=learning_rate)
    for _ in range(steps):
        pi = torch.softmax(features @ weights, dim=1)                          # [n, C]
        ratio = pi.gather(1, action) / mu                                      # [n, K]
        if max_weight is not None:
            ratio = ratio.clamp(max=max_weight)
        if objective == "ips":
            value = (ratio * reward).sum(1).mean()
        else:
            direct = torch.einsum("nc,nck->n", pi, q)
            value = (direct + (ratio * (reward - q_logged)).sum(1)).mean()
        loss = -value + l2 * weights.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scorer = LinearScorer(weights=weights.detach().numpy().copy())
    scorer.name = f"learned_{objective}"
    return scorer


def _click_model(reward: np.ndarray):
    """Logistic regression for 0/1 rewards, ridge otherwise."""
    return LogisticRegression(alpha=1.0) if np.isin(reward, (0.0, 1.0)).all() else RidgeRegression(alpha=1.0)
