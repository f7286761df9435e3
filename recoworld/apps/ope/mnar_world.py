r"""Ratings missing not at random, drawn from RecoWorld's own statistical users.

:func:`recoworld.ope.mnar.simulate_mnar` draws a low-rank world of its own; here the world
is :class:`~recoworld.simulators.StatisticalUsers` on a synthetic catalog, whose rating
response (:mod:`recoworld.simulators.statistical`) gives every user's rating of every item:
a clicked item is rated :math:`R = \mathrm{clip}(\mathrm{round}(\ell + r_\epsilon\epsilon), 1, 5)`
with :math:`\ell = r_0 + r_v v + r_q q_i + b_b`, :math:`v` the user's utility of the item
and :math:`\epsilon` a standard logistic draw independent of the click, so

.. math::

    E[R] = 1 + \sum_{k=1}^{4} P(R > k) = 1 + \sum_{k=1}^{4} \sigma\Big(\frac{\ell - k - 1/2}{r_\epsilon}\Big).

**Exposure, missing not at random**: each user is shown every item with probability
``shown``, clicks a shown item with the simulator's :math:`\sigma(v)` and rates what they
click, so a rating is observed with probability ``shown * sigma(v)``; the utility drives
both the click and the rating, and high ratings are over-represented among the observed.
A ``mcar_size`` sample of ratings of random pairs (users asked to rate random items) is
the missing-completely-at-random sample that naive Bayes propensities need.

The users are fresh (no history, no satiation): the ratings are those of each user's
first visit, the state in which :math:`v` is a property of the pair alone.
"""

from __future__ import annotations

import numpy as np
import torch

from recoworld.catalog import Catalog
from recoworld.simulators.statistical import StatisticalUsers


def expected_rating(level: np.ndarray, noise: float) -> np.ndarray:
    """``E[clip(round(level + noise * eps), 1, 5)]`` for a standard logistic ``eps`` (module docstring)."""
    if noise <= 0:
        return np.clip(np.round(level), 1, 5)
    thresholds = np.arange(1, 5) + 0.5
    return 1 + (1 / (1 + np.exp(-(level[..., None] - thresholds) / noise))).sum(-1)


def statistical_mnar_world(n_users: int = 200, n_items: int = 300, shown: float = 0.2, mcar_size: int = 500,
                           seed: int = 0) -> dict:
    """A MNAR rating world of :class:`~recoworld.simulators.StatisticalUsers` (module docstring).

    Returns the dict that :func:`recoworld.ope.mnar.compare_on_all_pairs` reads:
    ``"ratings"`` ``[U, I]`` one drawn rating 1..5 per pair (read where observed),
    ``"truth"`` the expected ratings :math:`E[R]`, ``"observed"`` (bool), ``"propensity"``
    (the true ``shown * sigma(v)``) and ``"mcar"`` (drawn ratings of ``mcar_size`` random pairs).
    """
    if not 0 < shown <= 1:
        raise ValueError(f"shown={shown}; it is the probability that a user is shown an item, in (0, 1]")
    catalog = Catalog.synthetic(n_items, seed=seed)
    users = StatisticalUsers(catalog)
    users.reset(n_users, seed=seed)
    items = torch.arange(n_items).expand(n_users, n_items)
    click = users.click_probabilities(items).double().numpy()                  # sigma(v) [U, I]
    c = users.config
    level = c.rating_center + c.rating_slope * np.log(click / (1 - click))
    level += c.rating_quality * catalog.quality.numpy()[None, :] + users.state.rating_bias.numpy()[:, None]
    rng = np.random.default_rng(seed)
    uniform = rng.random((3, n_users, n_items))
    drawn = np.clip(np.round(level + c.rating_noise * np.log(uniform[0] / (1 - uniform[0]))), 1, 5)
    observed = (uniform[1] < shown) & (uniform[2] < click)
    mcar = drawn.ravel()[rng.choice(drawn.size, size=min(mcar_size, drawn.size), replace=False)]
    return {"ratings": drawn, "truth": expected_rating(level, c.rating_noise), "observed": observed,
            "propensity": shown * click, "mcar": mcar}
