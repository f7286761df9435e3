"""The time-cut world's trend scaling on its validation fold only, three ways.

The time split's validation fold is every training rating after an earlier date
(``Folds.inner_cut_time``). The trend scaling (:mod:`recoworld.calibration.trend`) is
fitted on that fold, so its AUC there is in-sample; two honest readings go with it:

* *cross-fitted*: the scaling fitted on a random half of the fold's users and scored on
  the other half, both ways, averaged over two draws of the halves;
* *nested*: the calibration's steps 3 and 4 one date earlier: the choice model fitted
  before a cut of the fold's own training ratings, the scaling fitted on the ratings
  between that cut and the fold's date, then applied to the model fitted before the
  fold's date with the terms at that date, and scored on the fold, as the world is on
  the held-out ratings.

It prints the three for the trend scaling with the users' terms and with them held at 0
(the items' terms only), and never reads the held-out ratings after the cut.

Usage::

    python benchmarks/time_cut_validation.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from recoworld.apps.calibrate.choices import release_years
from recoworld.apps.calibrate.fit import CalibrationConfig
from recoworld.apps.calibrate.folds import Folds
from recoworld.apps.calibrate.progress import torch_threads
from recoworld.calibration.choice import fit_choice, rating_weights
from recoworld.calibration.metrics import user_auc
from recoworld.calibration.split import interaction_matrix, time_cut, time_cut_split
from recoworld.calibration.trend import fit_trend_scaling, trend_terms, user_trend_terms
from recoworld.data.movielens import load_movielens_100k


def halves(positive: torch.Tensor, seed: int) -> torch.Tensor:
    """``[n_users]`` mask of a random half of the users with a positive."""
    users = positive.any(1).nonzero().flatten().numpy()
    np.random.default_rng(seed).shuffle(users)
    mask = torch.zeros(positive.shape[0], dtype=torch.bool)
    mask[torch.as_tensor(users[:len(users) // 2])] = True
    return mask


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and no stray options
    config = CalibrationConfig(split="time")
    with torch_threads(1):
        folds = Folds.cut(load_movielens_100k(), config.holdout_fraction, config.validation_fraction, kind="time")
        n_users, n_items, years = folds.n_users, folds.n_items, release_years(folds)
        inner = folds.inner
        earlier = time_cut_split(inner.train, time_cut(inner.train, config.validation_fraction), n_users, n_items)

        def taste(train):
            return fit_choice(rating_weights(train, n_users, n_items, config.choice.half_life), config.choice,
                              None, train).logits()

        logits, earlier_logits = taste(inner.train), taste(earlier.train)
        positive = interaction_matrix(inner.test, n_users, n_items)
        never = ~interaction_matrix(folds.split.train, n_users, n_items)
        earlier_positive = interaction_matrix(earlier.test, n_users, n_items)
        earlier_never = ~interaction_matrix(inner.train, n_users, n_items)
        terms, earlier_terms = trend_terms(inner.train, years, n_items), trend_terms(earlier.train, years, n_items)
        for name, keep in (("items' terms only", 0.0), ("items' and users' terms", 1.0)):
            users = keep * user_trend_terms(inner.train, n_users)
            earlier_users = keep * user_trend_terms(earlier.train, n_users)
            scaling = fit_trend_scaling(logits, terms, users, positive, never)
            in_sample = float(user_auc(scaling.logits(logits, terms, users), positive, never).nanmean())
            cross = []
            for seed in (0, 1):
                auc = torch.full((n_users,), float("nan"), dtype=torch.float64)
                first = halves(positive, seed)
                for fitted_on in (first, ~first):
                    half = fit_trend_scaling(logits, terms, users, positive & fitted_on[:, None], never)
                    scored = user_auc(half.logits(logits, terms, users), positive & ~fitted_on[:, None], never)
                    auc[~fitted_on] = scored[~fitted_on].double()
                cross.append(float(auc.nanmean()))
            nested = fit_trend_scaling(earlier_logits, earlier_terms, earlier_users, earlier_positive, earlier_never)
            nested_auc = float(user_auc(nested.logits(logits, terms, users), positive, never).nanmean())
            print(f"{name}: in-sample {in_sample:.4f}, cross-fitted {np.mean(cross):.4f}, nested {nested_auc:.4f}")


if __name__ == "__main__":
    main()
