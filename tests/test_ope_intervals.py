"""Intervals that refit the model, and the bias-aware interval that FQE's uses."""

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t

from recoworld.apps.ope.sessions import fqe_interval
from recoworld.ope.refit import bias_aware_interval, refit_interval


@pytest.mark.parametrize("bias_over_se", [0.0, 0.5, 2.0, 8.0])
def test_bias_aware_interval_covers_at_the_worst_bias_it_allows(bias_over_se):
    lower, upper = bias_aware_interval(1.0, 0.1, 0.1 * bias_over_se, alpha=0.05)
    critical = (upper - 1.0) / 0.1
    assert lower == pytest.approx(1.0 - 0.1 * critical)
    # an estimate biased by exactly the bound: P(|N(t, 1)| <= c) = 0.95
    assert norm.cdf(critical - bias_over_se) - norm.cdf(-critical - bias_over_se) == pytest.approx(0.95, abs=1e-9)
    if bias_over_se == 0:
        assert critical == pytest.approx(norm.ppf(0.975))


def test_bias_aware_interval_refuses_a_negative_bound():
    with pytest.raises(ValueError, match=r"se=0.1, bias_bound=-1.0; both must be finite and >= 0"):
        bias_aware_interval(0.0, 0.1, -1.0, alpha=0.05)


def test_refit_interval_uses_students_quantile_over_its_replicates():
    data = np.random.default_rng(0).normal(size=50)
    estimate, lower, upper = refit_interval(lambda rows: data[rows].mean(), 50, n_refits=4, alpha=0.05, seed=0)
    assert estimate == pytest.approx(data.mean())
    rng = np.random.default_rng(0)
    replicates = np.array([data[rng.integers(0, 50, 50)].mean() for _ in range(4)])
    assert upper - estimate == pytest.approx(student_t.ppf(0.975, 3) * replicates.std(ddof=1))
    assert estimate - lower == pytest.approx(upper - estimate)


def test_fqe_interval_holds_its_own_refitted_interval_and_the_doubly_robust_estimate():
    refitted, doubly_robust = (1.0, 0.9, 1.1), (1.3, 1.0, 1.6)
    estimate, lower, upper = fqe_interval(refitted, doubly_robust, alpha=0.05, n_refits=5)
    assert estimate == 1.0 and lower <= 0.9 and upper >= 1.3
    assert fqe_interval(refitted, (1.0, 0.7, 1.3), alpha=0.05, n_refits=5) == pytest.approx(refitted)
