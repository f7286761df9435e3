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

Users do not follow the trend alike. Koren's model scales the item bias per user
(:math:`c_u(t)\,b_i(t)`); here the scaling follows *user terms* read off the same ratings
(:data:`USER_TREND_TERMS`: how many ratings the user has given before the date, log), so
that it carries over from the validation fold's date to the world's: a user who has rated
many films has seen what everyone is watching and turns to new releases, a newcomer follows
the crowd.

:func:`fit_trend_scaling` generalises Platt scaling (:func:`~recoworld.calibration.choice.platt_scaling`):
on a validation fold cut at an earlier date, it fits

.. math::

    \ell'_{bi} = \Big(a + \sum_k \gamma_k x_{ik}\Big)\,U_b^\top V_i + \sum_k \beta_k x_{ik} + c
    + \sum_j z_{bj}\Big(\sum_k \delta_{jk} x_{ik} + \epsilon_j\Big),

the taste term rescaled per item (a new film's pull follows taste more or less than an old
one's), the trend terms :math:`x_{ik}`, and their weights moved by the user terms
:math:`z_{bj}`, by the balanced log loss of the fit. :meth:`TrendScaling.apply` writes it
for the model fitted on all training ratings, with the trend and user terms at *its* date,
as a plain :class:`~recoworld.calibration.choice.ChoiceModel` (item vectors rescaled, one
more dimension for the bias and one per user term), so that the simulator's users see it
through their interest and the items' features like any other part of the logits. The
terms and the penalty were chosen on the validation fold (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recoworld.calibration.choice import ChoiceModel, chunk_rows, row_counts
from recoworld.calibration.split import DAY

TREND_TERMS = ("ratings in the last 30 days", "ratings in the last 7 days", "ratings", "released this year",
               "released last year", "first rated in the last 60 days", "days since first rated")
#: What each user brings to how they follow the trend, at the date (log).
USER_TREND_TERMS = ("ratings given",)
#: How hard the fit holds the weights of standardised terms to 0 (a ridge), for terms that
#: barely vary at a date (a catalog without release years, a quiet week).
TREND_L2 = 1e-3


def trend_terms(ratings: pd.DataFrame, release_year, n_items: int) -> torch.Tensor:
    """``[n_items, len(TREND_TERMS)]`` each item's trend terms at the date of the last of
    ``ratings`` (columns ``item_id``, ``timestamp``, Unix seconds); ``release_year``
    (``[n_items]``, missing as ``<NA>``/NaN, or ``None``) gives the release terms."""
    date = _date_of(ratings)
    items, stamps = ratings["item_id"].to_numpy(), ratings["timestamp"].to_numpy().astype(np.float64)

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


def user_trend_terms(ratings: pd.DataFrame, n_users: int) -> torch.Tensor:
    """``[n_users, len(USER_TREND_TERMS)]`` each user's terms at the date of the last of
    ``ratings`` (column ``user_id``): the log of the ratings they gave up to it."""
    _date_of(ratings)
    given = np.bincount(ratings["user_id"].to_numpy(), minlength=n_users).astype(np.float64)
    return torch.tensor(np.log1p(given)[:, None], dtype=torch.float32)


def _date_of(ratings: pd.DataFrame) -> float:
    if len(ratings) == 0:
        raise ValueError("trend terms need the ratings before the date, and none were given: cut the data at a "
                         "later date (a smaller holdout or validation fraction)")
    return float(ratings["timestamp"].max())


@dataclass
class TrendScaling:
    """The fitted :math:`a`, :math:`\\gamma`, :math:`\\beta`, :math:`c`, :math:`\\delta`
    (``bias_by_user_term``, ``[n_user_terms, n_terms]``) and :math:`\\epsilon`
    (``shift_by_user_term``) of the module docstring, on the terms' own scales."""

    taste: float
    taste_by_term: torch.Tensor
    bias_by_term: torch.Tensor
    shift: float
    bias_by_user_term: torch.Tensor
    shift_by_user_term: torch.Tensor

    def logits(self, taste_logits: torch.Tensor, terms: torch.Tensor, user_terms: torch.Tensor) -> torch.Tensor:
        """``[n_users, n_items]`` logits from the model's ``U V^T``, the items' ``terms``
        and the users' ``user_terms``."""
        return (self.item_scale(terms)[None, :] * taste_logits + self.item_bias(terms)[None, :]
                + user_terms @ self.bias_by_user(terms))

    def item_scale(self, terms: torch.Tensor) -> torch.Tensor:
        # A negative scale would turn an item's pull against the users' taste: an
        # extrapolation of the linear fit, not something the data showed.
        return (self.taste + terms.double() @ self.taste_by_term).clamp_min(0.0).float()

    def item_bias(self, terms: torch.Tensor) -> torch.Tensor:
        return (self.shift + terms.double() @ self.bias_by_term).float()

    def bias_by_user(self, terms: torch.Tensor) -> torch.Tensor:
        """``[n_user_terms, n_items]``: how much each unit of a user term adds to each item's logit."""
        return (self.bias_by_user_term @ terms.double().T + self.shift_by_user_term[:, None]).float()

    def describe(self) -> dict:
        """The weights by name, JSON-ready (the artifact's ``meta["choice"]["trend"]``)."""
        return {"taste": self.taste, "shift": self.shift,
                "taste_by_term": dict(zip(TREND_TERMS, self.taste_by_term.tolist())),
                "bias_by_term": dict(zip(TREND_TERMS, self.bias_by_term.tolist())),
                "bias_by_user_term": {user: {"shift": shift, **dict(zip(TREND_TERMS, row))} for user, row, shift in
                                      zip(USER_TREND_TERMS, self.bias_by_user_term.tolist(),
                                          self.shift_by_user_term.tolist())}}

    def apply(self, model: ChoiceModel, terms: torch.Tensor, user_terms: torch.Tensor) -> ChoiceModel:
        """``model`` (unscaled, as :func:`~recoworld.calibration.choice.fit_choice` returns
        it) with the trend and user terms at their date: the same logits as :meth:`logits`."""
        n_users = model.user_vectors.shape[0]
        # The user terms centred, their mean's part moved into the item bias: the same
        # logits with shorter vectors, which keep the simulator's interest weight (the
        # product of the longest user and item vectors) from growing with them.
        mean = user_terms.float().mean(0)
        by_user = self.bias_by_user(terms)
        users = torch.cat([model.user_vectors, torch.ones(n_users, 1), user_terms.float() - mean], 1)
        items = torch.cat([model.item_vectors * self.item_scale(terms)[:, None],
                           (self.item_bias(terms) + mean @ by_user)[:, None], by_user.T], 1)
        return ChoiceModel(users.contiguous(), items.contiguous())


def fit_trend_scaling(taste_logits: torch.Tensor, terms: torch.Tensor, user_terms: torch.Tensor,
                      positive: torch.Tensor, negative: torch.Tensor, chunk_users: int | None = None) -> TrendScaling:
    """Fit :class:`TrendScaling` on a validation fold: ``taste_logits`` ``[n_users, n_items]``
    of the model fitted before the fold, ``terms`` and ``user_terms`` at that model's date,
    ``positive`` the fold's choices and ``negative`` the items each user never chose; each
    user's negatives weigh as much in total as their positives, as in Platt scaling (each
    chosen item weighs 1; users with no positive or no negative count for nothing).

    L-BFGS minimises the balanced log loss plus :data:`TREND_L2`'s ridge. The loss and its
    gradient are sums over pairs, taken ``chunk_users`` users at a time (:class:`TrendFold`),
    so that no list of the fold's pairs, nor a float64 table of all of them, is made."""
    # Standardised terms condition the fit; the weights go back to the terms' scales below.
    x_scale, z_scale = Standardised.of(terms), Standardised.of(user_terms)
    x, z = x_scale(terms), z_scale(user_terms)
    fold = TrendFold(taste_logits, positive, negative, chunk_users)
    k, m = terms.shape[1], user_terms.shape[1]
    params = torch.zeros(2 * k + 2 + m * (k + 1), dtype=torch.float64)
    params[0] = 1.0
    params.requires_grad_(True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def split(p: torch.Tensor):
        by_user = p[2 * k + 2:].reshape(m, k + 1)
        return p[0], p[1:k + 1], p[k + 1:2 * k + 1], p[2 * k + 1], by_user[:, :k], by_user[:, k]

    def closure():
        a, gamma, beta, c, delta, epsilon = split(params.detach())
        loss, taste_residual, residual, user_residual = fold.sums(a + x @ gamma, x @ beta + c,
                                                                  x @ delta.T + epsilon, z)
        ridge = gamma.pow(2).sum() + beta.pow(2).sum() + delta.pow(2).sum() + epsilon.pow(2).sum()
        # The logit's derivative in each weight, summed against the residuals by item.
        by_user = torch.cat([user_residual.T @ x, user_residual.sum(0)[:, None]], 1)
        gradient = torch.cat([taste_residual.sum()[None], x.T @ taste_residual, x.T @ residual, residual.sum()[None],
                              by_user.flatten()])
        ridge_gradient = 2 * params.detach()
        ridge_gradient[0] = ridge_gradient[2 * k + 1] = 0.0  # a and c are not held to 0
        params.grad = gradient + TREND_L2 * ridge_gradient
        return loss + TREND_L2 * ridge

    optimizer.step(closure)
    return _on_term_scales(*(p.detach() for p in split(params)), x_scale, z_scale)


class TrendFold:
    r"""A validation fold's balanced log loss of the logits
    :math:`\ell_{bi} = s_i t_{bi} + o_i + z_b^\top g_i` (``scale``, ``bias``, ``by_user`` of
    the items, ``user_terms`` of the users, the taste logits :math:`t`), and its residuals
    :math:`r_{bi} = w_{bi}(\sigma(\ell_{bi}) - y_{bi})` summed by item, as :meth:`sums` gives
    them; :func:`fit_trend_scaling` writes the gradient from these.

    Only the users with both a chosen and a never-chosen item count, with the weights of
    :func:`fit_trend_scaling`; they go
    ``chunk_users`` at a time (default: :data:`~recoworld.calibration.choice.CHUNK_PAIRS`
    pairs' worth) through float64 buffers made once per fit, so that the fit holds a few
    chunks' tables and makes none per step."""

    def __init__(self, taste_logits: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 chunk_users: int | None = None):
        n_items = taste_logits.shape[1]
        self.taste_logits, self.positive, self.negative = taste_logits, positive, negative
        step = chunk_rows(n_items, chunk_users)
        n_positive, n_negative = row_counts(positive), row_counts(negative)
        kept = ((n_positive > 0) & (n_negative > 0)).nonzero().flatten()
        # Each counted user's negatives weigh as much in total as their positives.
        self.negative_weight = n_positive.double() / n_negative.clamp_min(1).double()
        self.total = 2.0 * float(n_positive[kept].double().sum())
        self.chunks = list(kept.split(step))
        self.taste, self.logit, self.weight, self.softplus = torch.empty(4, min(step, len(kept)), n_items,
                                                                         dtype=torch.float64)

    def sums(self, scale: torch.Tensor, bias: torch.Tensor, by_user: torch.Tensor, user_terms: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss (over the total weight), and the residuals over the total weight summed by
        item: times the taste logits (``[n_items]``), alone (``[n_items]``), and times each
        user term (``[n_items, n_user_terms]``)."""
        loss = torch.zeros((), dtype=torch.float64)
        taste_residual, residual = torch.zeros(2, len(scale), dtype=torch.float64)
        user_residual = torch.zeros(len(scale), user_terms.shape[1], dtype=torch.float64)
        for users in self.chunks:
            taste, logit, weight, softplus = (table[:len(users)] for table in
                                              (self.taste, self.logit, self.weight, self.softplus))
            chosen = self.positive[users]
            # The chosen pairs weigh 1, the never chosen ones the user's negative weight, the rest 0.
            weight.copy_(self.negative[users]).mul_(self.negative_weight[users, None]).masked_fill_(chosen, 1.0)
            taste.copy_(self.taste_logits[users])
            torch.mul(taste, scale, out=logit).add_(bias).addmm_(user_terms[users], by_user.T)
            # The log loss is softplus(l) on the pairs not chosen and softplus(-l) = softplus(l) - l
            # on the chosen ones (of weight 1).
            torch.logaddexp(logit, torch.zeros(()), out=softplus)
            loss += torch.dot(softplus.flatten(), weight.flatten()) - logit[chosen].sum()
            residual_table = logit.sigmoid_().mul_(weight)
            residual_table[chosen] -= 1.0
            residual += residual_table.sum(0)
            taste_residual += taste.mul_(residual_table).sum(0)
            user_residual += residual_table.T @ user_terms[users]
        return loss / self.total, taste_residual / self.total, residual / self.total, user_residual / self.total


@dataclass
class Standardised:
    """Terms' column ``mean`` and ``spread``; calling it standardises terms."""

    mean: torch.Tensor
    spread: torch.Tensor

    @classmethod
    def of(cls, terms: torch.Tensor) -> Standardised:
        return cls(terms.double().mean(0), terms.double().std(0).clamp_min(1e-6))

    def __call__(self, terms: torch.Tensor) -> torch.Tensor:
        return (terms.double() - self.mean) / self.spread


def _on_term_scales(a, gamma, beta, c, delta, epsilon, x_scale: Standardised, z_scale: Standardised) -> TrendScaling:
    """The weights fitted on standardised terms, written for the terms as they are: with
    :math:`\\tilde x = (x - \\mu)/\\sigma` and :math:`\\tilde z = (z - \\nu)/\\tau`, the
    user part :math:`\\tilde z_j(\\tilde x\\,\\delta_j + \\epsilon_j)` is
    :math:`(z_j - \\nu_j)(x\\,D_j + d_j)/\\tau_j`; its :math:`\\nu_j` part is an item bias."""
    mu, sigma, nu, tau = x_scale.mean, x_scale.spread, z_scale.mean, z_scale.spread
    by_user = delta / sigma  # [m, k]: D
    shift_by_user = epsilon - (delta * mu / sigma).sum(1)  # d
    return TrendScaling(taste=float(a - (gamma * mu / sigma).sum()), taste_by_term=gamma / sigma,
                        bias_by_term=beta / sigma - ((nu / tau)[:, None] * by_user).sum(0),
                        shift=float(c - (beta * mu / sigma).sum() - (nu / tau * shift_by_user).sum()),
                        bias_by_user_term=by_user / tau[:, None], shift_by_user_term=shift_by_user / tau)
