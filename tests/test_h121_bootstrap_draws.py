"""The fidelity report's bootstrap intervals say how many resamples stand behind them, and
refuse bounds when the metric is undefined on more than 5% of the resamples
(``recoworld.calibration.bootstrap``); the page shows such an interval as undefined; the
slate rows of ``recoworld ope evaluate`` list their columns in the bandit rows' order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.calibration import bootstrap


def test_the_floor_is_95_percent_of_the_draws_asked_for():
    assert [bootstrap.least_defined(n) for n in (10, 20, 39, 40, 200, 1000)] == [10, 19, 38, 38, 190, 950]
    ramp = np.linspace(0.0, 1.0, 200)
    for undefined, bounded in ((10, True), (11, False)):
        draws = ramp.copy()
        draws[:undefined] = np.nan
        entry = bootstrap.interval(0.5, draws)
        assert (entry["n_draws"], entry["n_defined"]) == (200, 200 - undefined)
        assert np.isfinite([entry["low"], entry["high"]]).all() == bounded, undefined
        assert entry["value"] == 0.5, "the value is kept either way"
    # The same share of a quick run's 20 draws: one undefined draw leaves an interval, two do not.
    assert np.isfinite(bootstrap.interval(0.5, np.r_[np.nan, ramp[:19]])["low"])
    assert np.isnan(bootstrap.interval(0.5, np.r_[np.nan, np.inf, ramp[:18]])["high"])
    assert bootstrap.interval(0.5, np.array([]))["n_draws"] == 0  # no draw: no interval, not an error


def test_a_normal_bootstrap_counts_every_draw():
    weights = bootstrap.user_draws(30, draws=20, seed=0)
    auc = bootstrap.mean_auc(torch.linspace(0.6, 0.9, 30), weights)
    assert (auc["n_draws"], auc["n_defined"]) == (20, 20)
    assert auc["low"] <= auc["value"] <= auc["high"]
    rmse = bootstrap.user_rmse(np.array([1.0, -2.0, 0.5]), np.array([0, 1, 2]), 30, weights)
    # the counts are counts, not square roots of them
    assert (rmse["n_draws"], rmse["n_defined"]) == (20, 20) and rmse["value"] == pytest.approx(np.sqrt(5.25 / 3))


def test_a_metric_only_one_user_of_many_defines_has_no_interval():
    n_users = 40
    weights = bootstrap.user_draws(n_users, draws=200, seed=1)
    drawn = int((weights[:, 0] > 0).sum())  # resamples that hold user 0
    assert drawn < bootstrap.least_defined(200), "the setting: many resamples miss user 0"
    auc = torch.full((n_users,), float("nan"))
    auc[0] = 0.8
    entry = bootstrap.mean_auc(auc, weights)
    # Before: the bounds were the percentiles of the few resamples that drew user 0, [0.8, 0.8].
    assert entry["value"] == pytest.approx(0.8) and np.isnan(entry["low"]) and np.isnan(entry["high"])
    assert (entry["n_draws"], entry["n_defined"]) == (200, drawn)
    # F1 pooled over lists of which only user 0's holds a chosen item (and a "yes"):
    users = torch.arange(n_users).repeat_interleave(2)
    labels = torch.zeros(2 * n_users, dtype=torch.bool)
    labels[0] = True
    probability = torch.full((2 * n_users,), 0.15)  # each in the middle of its bin
    probability[0] = 0.95
    f1 = bootstrap.pooled_f1(probability, labels, users, n_users, weights)
    assert f1["value"] == 1.0 and np.isnan(f1["low"]) and f1["n_defined"] == drawn
    # A reliability bin of user 0 alone: no interval for its observed share.
    curve = bootstrap.reliability(probability, labels, users, n_users, weights)["curve"]
    lonely = next(c for c in curve if c["bin"][0] == 0.9)
    assert lonely["n"] == 1 and np.isnan(lonely["observed"]["low"]) and lonely["observed"]["n_defined"] == drawn
    crowded = next(c for c in curve if c["bin"][0] == 0.1)
    assert np.isfinite(crowded["observed"]["low"]) and crowded["observed"]["n_defined"] == 200


def test_the_page_shows_an_undefined_interval_as_such():
    from recoworld.apps.fidelity.page import _with_interval, splits_section
    from recoworld.logs import strict_json

    refused = bootstrap.interval(0.8, np.r_[np.full(150, np.nan), np.full(50, 0.8)])
    assert _with_interval(refused) == "0.800 [n/a: 50 of 200 resamples defined]"
    assert _with_interval(bootstrap.interval(0.8, np.linspace(0.7, 0.9, 200))) == "0.800 [0.705, 0.895]"
    # One scored user: every draw defined, yet no interval (splits.without_intervals).
    assert _with_interval({**bootstrap.interval(0.8, np.full(20, 0.8)), "low": np.nan, "high": np.nan}) == "0.800 [n/a]"
    # As metrics.json holds it: the bounds null, the counts kept.
    stored = json.loads(json.dumps(strict_json(refused)))
    assert stored == {"value": 0.8, "low": None, "high": None, "n_draws": 200, "n_defined": 50}
    assert _with_interval(stored) == "0.800 [n/a: 50 of 200 resamples defined]"
    model = {"auc": refused, "decision_threshold": {"1:1": 0.5, "1:3": 0.5, "1:9": 0.5},
             "calibration": {"ece": refused, "curve": []},
             **{f"f1_1to{m}{at}": refused for m in (1, 3, 9) for at in ("", "_at_validation_threshold")}}
    split = {"held_out": 10, "users": 3, "train": 100, "models": {"calibrated user": model}}
    text = "\n".join(splits_section({"latest": split}, {"latest: AUC >= 0.92": False}))
    assert "| calibrated user | 0.8000 [n/a: 50 of 200 resamples defined] |" in text


def test_the_calibration_plot_draws_a_bin_without_an_interval_hollow(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from recoworld.apps.fidelity.page import plot_calibration

    class Kept:  # pyplot, keeping the axes drawn on
        def __getattr__(self, name):
            return getattr(plt, name)

        def subplots(self, *args, **kwargs):
            fig, self.axes = plt.subplots(*args, **kwargs)
            return fig, self.axes

    curve = [{"predicted": 0.15, "observed": bootstrap.interval(0.2, np.linspace(0.1, 0.3, 40))},
             {"predicted": 0.95, "observed": bootstrap.interval(1.0, np.r_[np.full(30, np.nan), np.ones(10)])}]
    splits = {"latest": {"models": {"calibrated user": {"calibration": {"curve": curve}}}}}
    kept = Kept()
    plot_calibration(kept, splits, tmp_path)
    hollow = [line for line in kept.axes[0, 0].lines if to_rgba(line.get_markerfacecolor()) == to_rgba("white")]
    assert [list(line.get_xdata()) for line in hollow] == [[0.95]], "only the bin without an interval"
    assert (tmp_path / "calibration.png").stat().st_size > 1000
    plt.close("all")


def test_a_distance_whose_noise_has_no_upper_end_gets_no_verdict():
    from recoworld.apps.fidelity.page import _targets, sessions_section
    from recoworld.apps.fidelity.sessions import compare, targets

    rng = np.random.default_rng(0)
    n = 60

    def table(gaps: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"user_id": np.arange(n), "first": True, "length": rng.integers(1, 5, n),
                             "next_gap_days": gaps, "mean_rating": 3.0, "pairs": 0, "same_genre": 0})

    # Only users 0 and 1 of the held-out users return: a halving that puts both in one half
    # leaves the other without a gap, so about half the halvings have no distance.
    held_out = table(np.r_[2.0, 3.0, np.full(n - 2, np.nan)])
    entry = compare(held_out, table(rng.exponential(50.0, n)), draws=20, seed=0, names=["gap_days"])["gap_days"]
    noise = entry["noise"]["ks"]
    assert np.isfinite(noise["value"]) and np.isnan(noise["high"]) and 0 < noise["n_defined"] < 19
    assert np.isfinite(entry["distance"]["ks"]["value"])
    # Before: the distance against a NaN upper end read "outside noise" (False).
    assert entry["within_noise"] == {"ks": None, "wasserstein": None}
    assert targets({"statistics": {"session_length": entry, "gap_days": entry}}) == {
        "session_length: KS within the half-split noise": None, "gap_days: KS within the half-split noise": None}
    assert _targets({"gap_days: KS within the half-split noise": None}) == [
        "- gap_days: KS within the half-split noise: n/a (undefined)"]
    section = {"statistics": {"gap_days": entry}, "held_out_users": n, "fitted_users": n, "config": {
        k: 0.0 for k in ("leave_base", "leave_length", "leave_patience", "return_base", "gap_days", "gap_shape")}}
    text = "\n".join(sessions_section(section, None))
    assert f"[n/a: {noise['n_defined']} of 20 halvings defined] | n/a |" in text
