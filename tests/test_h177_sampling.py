"""Thompson-sampling propensities at their edges: replayed IPS weights that fall as the slate
gets likelier, a reachability judgment that keeps rare but reachable slates, and single-slot
Beta races of tiny parameters that still sum to 1."""

import numpy as np
import pytest

from recoworld.agents.sampling import (MAX_SAMPLES, Tallies, beta_top_one_propensity, monte_carlo_propensities,
                                       reachable)

ROWS = 2000


def independent_positions(rate: float, rows: int = ROWS, positions: int = 6) -> dict[str, np.ndarray]:
    """Replayed propensities (the defaults) of a slate whose every position a replay matches
    independently with probability ``rate``: a slate of probability ``rate ** positions``."""
    def draw(rng, n, active):
        return (rng.random((n, len(active), positions)) >= rate).astype(np.int64)

    return monte_carlo_propensities(draw, np.zeros((rows, positions), dtype=np.int64), 100, seed=0)


def test_replayed_ips_weights_rise_as_the_slate_gets_rarer_and_are_unbiased_but_for_the_cap_where_replayed():
    rates = [0.5, 0.4, 0.3, 0.2, 0.1]                    # slates of 0.016, 0.0041, 7e-4, 6e-5, 1e-6
    estimates = [independent_positions(rate) for rate in rates]
    weights = [1 / estimate["slate"] for estimate in estimates]
    means = np.array([weight.mean() for weight in weights])
    # reading the rows judged out of reach as 1/(n+1) gave 64, 190, 198, 115, 101: the slate
    # of 6e-5 weighed less than the one of 7e-4
    assert (np.diff(means) > 0).all(), means
    assert max(weight.max() for weight in weights) == MAX_SAMPLES + 1
    for rate, estimate, weight in zip(rates[:3], estimates, weights):
        p = rate**6
        out_of_reach = (estimate["draws"] == 100) & (estimate["slate"] == 1 / (MAX_SAMPLES + 1))
        assert not out_of_reach.any(), rate       # the point estimates cut 17 % of the rows of 0.0041
        expected = (1 - (1 - p) ** (MAX_SAMPLES + 1)) / p                      # the cap's truncation
        assert abs(weight.mean() - expected) < 4 * weight.std() / np.sqrt(ROWS), (rate, weight.mean(), expected)
    rarest = estimates[-1]
    out_of_reach = rarest["draws"] == 100                 # a slate of 1e-6 never came up in 100 draws
    assert out_of_reach.any()
    np.testing.assert_array_equal(rarest["slate"][out_of_reach], 1 / (MAX_SAMPLES + 1))
    np.testing.assert_array_equal(rarest["cascade"][:, -1], rarest["slate"])


@pytest.mark.parametrize("prefixes, within", [
    ([10, 1, 0], True),                  # step 3 tried once: 0.007 = 0.1 * 0.1 * 0.7 is within 512
    ([10, 0, 0], True),                  # 0.1^(3/1) = 0.001 by the point estimates, (0.16 * 0.26)^(3/2) = 0.009
    ([60, 20, 5, 0, 0, 0, 0, 0, 0, 0], False),   # (0.68 * 0.43 * 0.45 * 0.45)^(10/4) = 9e-4
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], True),      # seen: always within reach
])
def test_reachable_bounds_the_steps_the_first_phase_tried(prefixes, within):
    counts = np.array([prefixes], dtype=float)
    assert reachable(Tallies(counts, counts, np.array([100])), MAX_SAMPLES)[0] == within


def test_single_slot_beta_races_of_tiny_parameters_sum_to_1_and_match_their_draws():
    # betaincinv(0.05, 0.05, u) rounds to 1 for u above 0.92: those arms tied, and a row of
    # Beta(2, 2) against two Beta(0.05, 0.05) summed to 1.006
    alpha = np.array([[2.0, 0.05, 0.05, 0.05], [0.05, 0.05, 0.3, 2.0], [0.05, 0.05, 0.05, 1.0]])
    beta = np.array([[2.0, 0.05, 0.05, 0.05], [0.05, 0.05, 0.05, 5.0], [0.05, 0.1, 0.05, 1.0]])
    every = np.stack([beta_top_one_propensity(alpha, beta, np.full(3, c)) for c in range(4)], 1)
    np.testing.assert_allclose(every.sum(1), 1.0, atol=1e-6)
    # draws compared by logit = log G_a - log G_b of Beta = G_a / (G_a + G_b): exact where
    # rng.beta rounds draws near 1 to 1.0 and ties them
    n = 200_000
    rng = np.random.default_rng(0)
    logit = np.log(rng.standard_gamma(alpha, (n, 3, 4))) - np.log(rng.standard_gamma(beta, (n, 3, 4)))
    assert np.isfinite(logit).all()
    frequency = np.stack([(logit.argmax(-1) == c).mean(0) for c in range(4)], 1)
    assert (np.abs(frequency - every) < 4 * np.sqrt(every * (1 - every) / n) + 1e-6).all(), frequency - every


@pytest.mark.parametrize(("a", "b"), [(0.01, 5.0), (0.02, 300.0), (5.0, 0.01), (5.0, 0.015)])
def test_a_race_of_arms_massed_at_one_end_sums_to_1(a, b):
    # Massed near 0 (a tiny), the nodes above the median lie at x ~ 1e-20, where 1 - y rounds
    # to 0; massed near 1 (b tiny), those below it round to 1: the mirror follows the node.
    alpha, beta = np.full((3, 3), a), np.full((3, 3), b)
    propensities = beta_top_one_propensity(alpha, beta, np.arange(3))
    assert propensities == pytest.approx(np.full(3, 1 / 3), abs=1e-5)
