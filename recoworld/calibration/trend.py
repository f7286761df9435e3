r"""The items' pull at the world's date: what is being watched and what was just released.

A world calibrated on the ratings up to a date stands for the users *at* that date, and a
team uses it to predict what they do next. The factorisation of :mod:`~recoworld.calibration.choice`
learns each item's pull averaged over the whole training period; but what users choose
after a date follows what is being watched around it and what was just released, and
films fade as they age. Koren ("Collaborative filtering with temporal dynamics", KDD 2009)
models this as an item bias that drifts from period to period; here the drift is read off
the ratings before the date, as *trend terms* of each item (:data:`TREND_TERMS`):

* its ratings in the last 30 and 7 days before the date, and over all time (log);
* whether it was released in the date's year, or the year before (where the catalog knows
  release years; 0 otherwise);
* whether its first rating is less than 60 days old, and how old it is (log days).

:func:`fit_trend_scaling` generalises Platt scaling (:func:`~recoworld.calibration.choice.platt_scaling`):
on a validation fold cut at an earlier date, it fits

.. math::

    \ell'_{bi} = \Big(a + \sum_k \gamma_k x_{ik}\Big)\,U_b^\top V_i + \sum_k \beta_k x_{ik} + c,

the taste term rescaled per item (a new film's pull follows taste more or less than an old
one's) plus the trend terms, by the balanced log loss of the fit. :meth:`TrendScaling.apply`
writes it for the model fitted on all training ratings, with the trend terms at *its* date,
as a plain :class:`~recoworld.calibration.choice.ChoiceModel` (item vectors rescaled, one
more dimension for the bias), so that the simulator's users see it through their interest
and the items' features like any other part of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recoworld.calibration.choice import ChoiceModel, balanced_pairs
from recoworld.calibration.split import DAY

TREND_TERMS = ("ratings in the last 30 days", "ratings in the last 7 days", "ratings", "released this year",
               "released last year", "first rated in the last 60 days", "days since first rated")
#: How hard the fit holds the weights of standardised terms to 0 (a ridge), for terms that
#: barely vary at a date (a catalog without release years, a quiet week).
TREND_L2 = 1e-3


def trend_terms(ratings: pd.DataFrame, release_year, n_items: int) -> torch.Tensor:
    """``[n_items, len(TREND_TERMS)]`` each item's trend terms at the date of the last of
    ``ratings`` (columns ``item_id``, ``timestamp``, Unix seconds); ``release_year``
    (``[n_items]``, missing as ``<NA>``/NaN, or ``None``) gives the release terms."""
    if len(ratings) == 0:
        raise ValueError("trend terms need the ratings before the date, and none were given: cut the data at a "
                         "later date (a smaller holdout or validation fraction)")
    items, stamps = ratings["item_id"].to_numpy(), ratings["timestamp"].to_numpy().astype(np.float64)
    date = float(stamps.max())

    def count(since: float) -> np.ndarray:
        return np.bincount(items[stamps > date - since], minlength=n_items).astype(np.float64)

    first = np.full(n_items, np.inf)
    np.minimum.at(first, items, stamps)
    rated = np.isfinite(first)
    age_days = np.where(rated, (date - np.where(rated, first, date)) / DAY, 0.0)
    year = pd.Timestamp(date, unit="s").year
    released = (np.full(n_items, np.nan) if release_year is None
                else pd.array(release_year, dtype="Float64").to_numpy(dtype=np.float64, na_value=np.nan))
    columns = [np.log1p(count(30 * DAY)), np.log1p(count(7 * DAY)), np.log1p(count(np.inf)),
               (released == year).astype(np.float64), (released == year - 1).astype(np.float64),
               (rated & (age_days < 60)).astype(np.float64), np.log1p(age_days)]
    return torch.tensor(np.stack(columns, 1), dtype=torch.float32)


@dataclass
class TrendScaling:
    """The fitted :math:`a`, :math:`\\gamma`, :math:`\\beta`, :math:`c` of the module
    docstring, on the trend terms' own scale."""

    taste: float
    taste_by_term: torch.Tensor
    bias_by_term: torch.Tensor
    shift: float

    def logits(self, taste_logits: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """``[n_users, n_items]`` logits from the model's ``U V^T`` and the items' ``terms``."""
        return self.item_scale(terms)[None, :] * taste_logits + self.item_bias(terms)[None, :]

    def item_scale(self, terms: torch.Tensor) -> torch.Tensor:
        # A negative scale would turn an item's pull against the users' taste: an
        # extrapolation of the linear fit, not something the data showed.
        return (self.taste + terms.double() @ self.taste_by_term).clamp_min(0.0).float()

    def item_bias(self, terms: torch.Tensor) -> torch.Tensor:
        return (self.shift + terms.double() @ self.bias_by_term).float()

    def describe(self) -> dict:
        """The weights by name, JSON-ready (the artifact's ``meta["choice"]["trend"]``)."""
        return {"taste": self.taste, "shift": self.shift,
                "taste_by_term": dict(zip(TREND_TERMS, self.taste_by_term.tolist())),
                "bias_by_term": dict(zip(TREND_TERMS, self.bias_by_term.tolist()))}

    def apply(self, model: ChoiceModel, terms: torch.Tensor) -> ChoiceModel:
        """``model`` (unscaled, as :func:`~recoworld.calibration.choice.fit_choice` returns
        it) with the trend at the date of ``terms``: the same logits as :meth:`logits`."""
        n_users = model.user_vectors.shape[0]
        users = torch.cat([model.user_vectors, torch.ones(n_users, 1)], 1)
        items = torch.cat([model.item_vectors * self.item_scale(terms)[:, None], self.item_bias(terms)[:, None]], 1)
        return ChoiceModel(users.contiguous(), items.contiguous())


def fit_trend_scaling(taste_logits: torch.Tensor, terms: torch.Tensor, positive: torch.Tensor,
                      negative: torch.Tensor) -> TrendScaling:
    """Fit :class:`TrendScaling` on a validation fold: ``taste_logits`` ``[n_users, n_items]``
    of the model fitted before the fold, ``terms`` at that model's date, ``positive`` the
    fold's choices and ``negative`` the items each user never chose; each user's negatives
    weigh as much in total as their positives, as in Platt scaling."""
    users, items, chosen, weights = balanced_pairs(positive, negative)
    # Standardised terms condition the fit; the weights go back to the terms' scale below.
    mean, spread = terms.double().mean(0), terms.double().std(0).clamp_min(1e-6)
    x = ((terms.double() - mean) / spread)[items]
    taste = taste_logits[users, items].double()
    y, w = chosen.double(), weights.double()
    k = terms.shape[1]
    params = torch.zeros(2 * k + 2, dtype=torch.float64)
    params[0] = 1.0
    params.requires_grad_(True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        a, gamma, beta, c = params[0], params[1:k + 1], params[k + 1:2 * k + 1], params[-1]
        logit = (a + x @ gamma) * taste + x @ beta + c
        loss = (w * F.binary_cross_entropy_with_logits(logit, y, reduction="none")).sum() / w.sum()
        loss = loss + TREND_L2 * (gamma.pow(2).sum() + beta.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    a, gamma, beta, c = (p.detach() for p in (params[0], params[1:k + 1], params[k + 1:2 * k + 1], params[-1]))
    return TrendScaling(taste=float(a - (gamma * mean / spread).sum()), taste_by_term=gamma / spread,
                        bias_by_term=beta / spread, shift=float(c - (beta * mean / spread).sum()))
