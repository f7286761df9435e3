"""Debiased matrix factorisation on ratings missing not at random, judged on every rating."""

import numpy as np
import pytest
import torch

from recoworld.apps.ope.mnar_world import statistical_mnar_world
from recoworld.ope.mnar import (
    MatrixFactorization,
    compare_on_all_pairs,
    naive_bayes_propensities,
    simulate_mnar,
)


@pytest.mark.parametrize("make_world", [
    lambda: simulate_mnar(n_users=80, n_items=120, rate=0.1, seed=0),
    # RecoWorld's own statistical users, who rate what they click; judged on expected ratings
    lambda: statistical_mnar_world(n_users=80, n_items=120, shown=0.4, seed=0),
], ids=["low_rank_world", "statistical_users"])
def test_ips_and_dr_mf_beat_naive_mf_on_all_pairs_of_a_small_world(make_world):
    torch.set_num_threads(1)
    world = make_world()
    errors = compare_on_all_pairs(world, n_epochs=150)
    assert errors["ips"] < errors["naive"] and errors["dr"] < errors["naive"]


def test_naive_bayes_propensities_recover_the_true_ones_per_rating():
    world = simulate_mnar(n_users=100, n_items=150, mcar_size=5000, seed=1)
    estimated = naive_bayes_propensities(world["ratings"], world["observed"], world["mcar"])
    seen = world["observed"]
    np.testing.assert_allclose(estimated[seen], world["propensity"][seen], rtol=0.35)


def test_debiased_losses_name_what_they_lack():
    world = simulate_mnar(n_users=10, n_items=10, seed=0)
    with pytest.raises(ValueError, match="loss='ips' needs propensity"):
        MatrixFactorization(loss="ips", n_epochs=1).fit(world["ratings"], world["observed"])
    with pytest.raises(ValueError, match="choose one of"):
        MatrixFactorization(loss="snips")


def test_missing_values_name_the_pair_instead_of_fitting_a_nan_model():
    world = simulate_mnar(n_users=10, n_items=10, seed=0)
    ratings, observed = world["ratings"].copy(), world["observed"]
    i, j = np.argwhere(observed)[0]
    ratings[~observed] = np.nan  # the usual placeholder for unobserved pairs: allowed
    assert np.isfinite(MatrixFactorization(n_epochs=2).fit(ratings, observed).predict()).all()
    ratings[i, j] = np.nan
    with pytest.raises(ValueError, match=rf"ratings\[{i}, {j}\] is nan; mark the pair unobserved"):
        MatrixFactorization(n_epochs=2).fit(ratings, observed)
    imputed = np.full(ratings.shape, 3.0)
    imputed[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"imputed\[0, 1\] is nan"):
        MatrixFactorization(loss="dr", n_epochs=2).fit(world["ratings"], observed, world["propensity"], imputed)
