r"""Ratings: the simulator's rating response, fitted by ordinal regression, and an MF baseline.

The statistical user rates a clicked item
:math:`\mathrm{clip}(\mathrm{round}(\mu), 1, 5)` with
:math:`\mu = r_0 + r_v v + r_q q_i + b_b + r_\epsilon\epsilon` and :math:`\epsilon` standard
logistic. That is an ordinal logistic model with cut points half-way between the stars:

.. math::

    P(\text{rating} \le k) = \sigma\Big(\frac{k + \tfrac12 - m}{r_\epsilon}\Big),
    \qquad m = r_0 + r_v v + r_q q_i + w\,o_b, \quad k = 1..4,

(McCullagh, "Regression models for ordinal data", JRSS B 1980) whose parameters are
fitted by maximum likelihood on observed ratings, with :math:`o_b` the user's rating
offset (:func:`recoworld.calibration.traits.rating_offsets`) and :math:`b_b = w\,o_b`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STARS = torch.arange(1, 6, dtype=torch.float64)


@dataclass
class RatingResponse:
    """Fitted rating parameters (names as in ``StatisticalUserConfig``; ``offset_weight`` is :math:`w`)."""

    rating_center: float
    rating_slope: float
    rating_quality: float
    rating_noise: float
    offset_weight: float

    def level(self, utility, quality, offset) -> torch.Tensor:
        """:math:`m` for tensors of equal shape."""
        return (self.rating_center + self.rating_slope * torch.as_tensor(utility, dtype=torch.float64)
                + self.rating_quality * torch.as_tensor(quality, dtype=torch.float64)
                + self.offset_weight * torch.as_tensor(offset, dtype=torch.float64))


def star_probabilities(level: torch.Tensor, noise: float | torch.Tensor) -> torch.Tensor:
    """``[n, 5]`` probabilities of 1..5 stars for rating levels ``level`` ``[n]``."""
    level = torch.as_tensor(level, dtype=torch.float64)
    below = torch.sigmoid((STARS[None, :4] + 0.5 - level[:, None]) / noise)
    cumulative = torch.cat([below, torch.ones(len(level), 1, dtype=torch.float64)], 1)
    return torch.diff(cumulative, dim=1, prepend=torch.zeros(len(level), 1, dtype=torch.float64))


def expected_rating(level: torch.Tensor, noise: float) -> torch.Tensor:
    """Mean rating for levels ``level`` under the clipped, rounded logistic response."""
    return (star_probabilities(level, noise) * STARS).sum(1)


def fit_rating_response(utility, quality, offset, ratings) -> RatingResponse:
    """Maximum-likelihood fit of the ordinal model of the module docstring.

    Args:
        utility: the simulator's click utility :math:`v` of each rated (user, item) pair.
        quality: the item's standardised quality :math:`q_i`.
        offset: the user's rating offset :math:`o_b`.
        ratings: the observed stars, 1..5.
    """
    X = torch.stack([torch.as_tensor(a, dtype=torch.float64) for a in (utility, quality, offset)], 1)
    r = torch.tensor(np.asarray(ratings), dtype=torch.long) - 1
    if len(r) == 0:
        raise ValueError("no ratings to fit the rating response on")
    weights = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    center = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    log_noise = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, center, log_noise], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        p = star_probabilities(center + X @ weights, log_noise.exp())
        loss = -torch.log(p[torch.arange(len(r)), r].clamp_min(1e-12)).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    w = weights.detach().tolist()
    return RatingResponse(center.item(), w[0], w[1], log_noise.exp().item(), w[2])


@dataclass
class RatingMF:
    r"""Biased matrix factorisation of explicit ratings, :math:`\hat r = \mu + b_b + b_i + p_b^\top q_i`
    (Koren, Bell and Volinsky, "Matrix factorization techniques for recommender systems",
    IEEE Computer 2009): the rating baseline of the fidelity report."""

    mean: float
    user_bias: torch.Tensor
    item_bias: torch.Tensor
    user_vectors: torch.Tensor
    item_vectors: torch.Tensor

    def predict(self, users, items) -> torch.Tensor:
        users, items = torch.tensor(np.asarray(users)), torch.tensor(np.asarray(items))
        return (self.mean + self.user_bias[users] + self.item_bias[items]
                + (self.user_vectors[users] * self.item_vectors[items]).sum(1)).double()


def fit_rating_mf(users, items, ratings, n_users: int, n_items: int, dim: int = 16, l2: float = 0.15,
                  steps: int = 300, learning_rate: float = 0.02, seed: int = 0) -> RatingMF:
    """Full-batch Adam on the squared error with an L2 penalty on biases and vectors (per rating)."""
    users, items = torch.tensor(np.asarray(users)), torch.tensor(np.asarray(items))
    r = torch.tensor(np.asarray(ratings), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    P = (0.01 * torch.randn(n_users, dim, generator=gen)).requires_grad_()
    Q = (0.01 * torch.randn(n_items, dim, generator=gen)).requires_grad_()
    bu, bi = torch.zeros(n_users, requires_grad=True), torch.zeros(n_items, requires_grad=True)
    mean = float(r.mean())
    optimizer = torch.optim.Adam([P, Q, bu, bi], lr=learning_rate)
    for _ in range(steps):
        pu, qi = P[users], Q[items]
        error = mean + bu[users] + bi[items] + (pu * qi).sum(1) - r
        penalty = (pu.pow(2).sum(1) + qi.pow(2).sum(1) + bu[users] ** 2 + bi[items] ** 2).mean()
        loss = error.pow(2).mean() + l2 * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return RatingMF(mean, bu.detach(), bi.detach(), P.detach(), Q.detach())
