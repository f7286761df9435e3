"""The return fit (:func:`recoworld.apps.calibrate.dynamics.fit_returns`) on logs drawn from
its own model: users return with probability sigmoid(x + log a) after Weibull gaps of mean
G / a, log a ~ N(0, spread^2), and the data stop at a fixed date."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from recoworld.apps.calibrate import dynamics
from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.calibration.split import DAY, Sessions, cut_sessions
from test_h185_calibrate_edges import once_each, sessions_of

END_DAY = 200.0


def returning_users(n: int, spread: float, shape: float = 1.0, mean_gap: float = 5.0, odds: float = 4.0,
                    seed: int = 0) -> tuple[Sessions, np.ndarray]:
    """The sessions (one rating each) of ``n`` users of activities ``a`` drawn with
    ``spread``, and ``log a``: returns that would come after :data:`END_DAY` are cut off."""
    rng = np.random.default_rng(seed)
    rows = []
    log_activity = rng.normal(0, spread, n)
    scale = mean_gap / math.gamma(1 + 1 / shape)
    for user, a in enumerate(np.exp(log_activity)):
        t = rng.uniform(0, 50)
        while True:
            rows.append((user, t))
            if rng.random() > odds * a / (1 + odds * a):
                break
            t += scale / a * rng.weibull(shape)
            if t > END_DAY:
                break
    table = pd.DataFrame(rows, columns=["user_id", "day"])
    table["start"] = table["end"] = table["day"] * 86_400
    table["length"] = 1
    table["next_gap_days"] = table.groupby("user_id")["day"].shift(-1) - table["day"]
    return Sessions(table, END_DAY * 86_400), log_activity


def test_return_fit_recovers_activity_and_treats_the_end_as_censoring():
    sessions, log_activity = returning_users(400, spread=0.7)
    fit = dynamics.fit_returns(sessions, len(log_activity))
    assert fit.mean_gap_days == pytest.approx(5.0, rel=0.15)
    # p = sigmoid(x + log a) = 0.8 at a = 1 (x = log 4), whatever the cut-off did
    assert fit.return_logit == pytest.approx(np.log(4.0), abs=0.25)
    assert fit.activity_spread == pytest.approx(0.7, abs=0.15)
    assert stats.spearmanr(fit.log_activity, log_activity).statistic > 0.5


@pytest.mark.parametrize("shape, spread", [(1.0, 0.7), (1.0, 1.5), (0.6, 1.5)])
def test_weibull_return_fit_recovers_the_shape_and_the_spread_of_paces(shape, spread):
    """A fit of every user's pace with the shape (its maximum a posteriori, the spread held at
    1) read 3.8 days for the mean gap of 5 at a spread of 1.5."""
    sessions, log_activity = returning_users(1000, spread=spread, shape=shape)
    fit = dynamics.fit_returns(sessions, len(log_activity), weibull=True)
    assert fit.gap_shape == pytest.approx(shape, rel=0.06)
    assert fit.activity_spread == pytest.approx(spread, rel=0.1)
    assert fit.mean_gap_days == pytest.approx(5.0, rel=0.15)
    assert fit.return_logit == pytest.approx(np.log(4.0), abs=0.25)


def test_a_spread_held_away_from_the_datas_moves_the_shape():
    # Single gaps of 1 to 19 days and one user's two: a spread of paces held at 1 is wider than
    # these gaps', and the shape narrows each user's gaps to make up for it.
    sessions = sessions_of([[2.0, 2.5], *once_each(19)])
    fitted = dynamics.fit_returns(sessions, 20, weibull=True)
    held = dynamics.fit_returns(sessions, 20, weibull=True, activity_spread=1.0)
    assert held.activity_spread == 1.0 and fitted.activity_spread < 0.1
    assert held.gap_shape > 2 * fitted.gap_shape


@pytest.mark.parametrize("seed", [0, 1])
def test_few_users_with_several_gaps_do_not_pull_the_shape_up(seed):
    """300 users return once after exponential gaps of their own pace, 2% of them four times:
    each single gap set its user's pace in a joint fit, which read a shape of 10.5 and 12.8."""
    rng = np.random.default_rng(seed)
    rows = []
    for user, pace in enumerate(np.exp(rng.normal(0, 0.7, 300))):
        t = 1_000_000 + 3600 * user
        for gap in [*(3.0 / pace * rng.exponential(1.0, 4 if rng.random() < 0.02 else 1) + 0.05), None]:
            rows.append((user, t, t, 1, gap))
            t += (gap or 0) * 86_400
    table = pd.DataFrame(rows, columns=["user_id", "start", "end", "length", "next_gap_days"])
    fit = dynamics.fit_returns(Sessions(table, table["end"].max()), 300, weibull=True)
    assert 0.75 < fit.gap_shape < 1.25


def grid_log_likelihood(sessions: Sessions, fit: dynamics.ReturnFit) -> float:
    """The marginal log-likelihood per session at ``fit``'s parameters, each user's integral
    over their log activity taken on a fine grid."""
    grid = torch.linspace(-12 * fit.activity_spread, 12 * fit.activity_spread, 40_001, dtype=torch.float64)
    density = torch.as_tensor(stats.norm.logpdf(grid.numpy(), scale=fit.activity_spread))
    parameters = (torch.tensor(v, dtype=torch.float64) for v in (fit.return_logit, math.log(fit.mean_gap_days),
                                                                 math.log(fit.gap_shape)))
    x, log_G, log_k = parameters
    total = 0.0
    for user in sessions.table["user_id"].unique():
        mine = Sessions(sessions.table[sessions.table["user_id"] == user], sessions.data_end)
        terms = dynamics._ReturnData.of(mine, 0.0).per_user(x, log_G, log_k, grid[None])[0]
        total += torch.logsumexp(terms + density, 0).item() + math.log(grid[1] - grid[0])
    return total / len(sessions.table)


def test_the_marginal_likelihood_is_the_integral_over_each_users_activity():
    """The adaptive quadrature's log-likelihood is what a fine grid over every user's log
    activity gives, at the fitted parameters."""
    sessions, log_activity = returning_users(60, spread=1.2, shape=0.7, seed=3)
    fit = dynamics.fit_returns(sessions, len(log_activity), weibull=True)
    assert grid_log_likelihood(sessions, fit) == pytest.approx(fit.log_likelihood, abs=1e-6)


@pytest.mark.parametrize("gaps, weibull", [
    ([[0.1, 5.0, 40.0], *[[]] * 100], False),
    ([[2.0, 2.5], *[[]] * 50], True),
])
def test_users_whose_posterior_is_far_from_normal_get_the_nodes_their_integral_needs(gaps, weibull):
    """One user comes back, the others are silent for weeks after their only session: their
    posterior is the prior cut off by the odds of that silence. On 20 nodes each the fit's
    log-likelihood was 1.8% and 1.3% off the grid's, at parameters that chased the error
    (spreads of the log activities 9.4 and 0.97, against 4.8 and 1.2 now)."""
    sessions = sessions_of(gaps)
    fit = dynamics.fit_returns(sessions, len(gaps), weibull=weibull)
    assert grid_log_likelihood(sessions, fit) == pytest.approx(fit.log_likelihood, abs=1e-6)


def test_users_whose_posterior_is_near_normal_keep_twenty_nodes(monkeypatch):
    # Nodes are added only where twice as many change a user's integral: a log of the model
    # fits as on 20 nodes for everyone, in the same time.
    sessions, log_activity = returning_users(200, spread=1.0, shape=0.8, seed=4)
    adaptive = dynamics.fit_returns(sessions, len(log_activity), weibull=True)
    monkeypatch.setattr(dynamics, "MAX_ACTIVITY_NODES", dynamics.ACTIVITY_NODES)
    twenty = dynamics.fit_returns(sessions, len(log_activity), weibull=True)
    for name in ("return_logit", "mean_gap_days", "gap_shape", "activity_spread", "log_likelihood"):
        assert getattr(adaptive, name) == getattr(twenty, name), name
    np.testing.assert_array_equal(adaptive.log_activity, twenty.log_activity)


@pytest.mark.parametrize("fitted, words", [
    (True, "with Weibull gaps of shape 0.640 whose mean"),
    (False, "with gaps held exponential (too few users come back after gaps of differing length to fit a shape) "
            "whose mean"),
])
def test_the_fidelity_page_says_whether_the_gap_shape_was_fitted_or_held(fitted, words):
    from recoworld.apps.fidelity import page

    law = {"sessions": 120, "exponential": {"log_likelihood": -2.7, "mean_gap_days": 30.0},
           "weibull": {"log_likelihood": -2.6, "mean_gap_days": 40.0, "shape": 0.64 if fitted else 1.0,
                       "shape_fitted": fitted, "activity_spread": 1.5, "activity_modes_spread": 1.1,
                       "length_elasticity": 0.2}}
    section = {"statistics": {}, "held_out_users": 40, "fitted_users": 40, "gap_law": law,
               "config": {k: 0.0 for k in ("leave_base", "leave_length", "leave_patience", "return_base",
                                           "gap_days", "gap_shape")}}
    text = "\n".join(page.sessions_section(section, {}))
    assert f"-2.6000 {words} falls with the session's length to the power -0.200" in text
    assert ("of the newcomers who return, " + ("" if fitted else "held ") + "gap shape 0.000") in text
    assert ("for an average user, the users' log activities ~ N(0, 1.50²), the fitted users' own (posterior modes, "
            "shrunk towards the mean) spread 1.10; the calibration's law") in text


def test_the_fit_summed_part_by_part_is_the_fit_of_the_whole_log(monkeypatch):
    sessions, log_activity = returning_users(200, spread=1.0, shape=0.8, seed=4)
    whole = dynamics.fit_returns(sessions, 210, weibull=True)  # 10 users without sessions
    monkeypatch.setattr(dynamics, "SESSIONS_PER_PART", 37)
    assert len(dynamics._ReturnData.of(sessions, 0.0).parts()) > 10
    parts = dynamics.fit_returns(sessions, 210, weibull=True)
    for name in ("return_logit", "mean_gap_days", "gap_shape", "activity_spread", "log_likelihood"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name), rel=1e-6), name
    np.testing.assert_allclose(parts.log_activity, whole.log_activity, atol=1e-6)
    assert (whole.log_activity[200:] == 0).all()  # no sessions: the prior's mode


@pytest.mark.parametrize("spread", [0.0, -0.5, 5e-5, math.nan])
def test_a_held_spread_that_is_no_spread_is_refused_naming_it(spread):
    sessions, _ = returning_users(20, spread=1.0)
    message = (f"activity_spread={spread}: the spread of the users' log activities is at least 0.0001; leave it "
               "None to fit it")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dynamics.fit_returns(sessions, 20, activity_spread=spread)


@pytest.mark.parametrize("gaps, returns", [
    ([[2.0]], "the one return comes after 2 days"),
    ([[3.0], [3.0, 3.0], []], "all 3 returns come after 3 days"),
])
def test_a_weibull_fit_to_gaps_all_of_one_length_is_refused_naming_the_fix(gaps, returns):
    """Gaps of one length fit a higher shape ever better: the fit ran off to NaN, silently."""
    sessions = sessions_of(gaps)
    message = (f"weibull=True, but {returns}: the Weibull shape is read off gaps of differing length, and gaps all "
               "of one length fit a higher shape ever better (the likelihood grows without bound). Fit exponential "
               "gaps (weibull=False), as calibration_returns does where no user's own gaps differ")
    with pytest.raises(CalibrationDataError, match=f"^{re.escape(message)}$"):
        dynamics.fit_returns(sessions, len(gaps), weibull=True)
    exponential = dynamics.fit_returns(sessions, len(gaps))  # the fix the message names
    assert all(math.isfinite(getattr(exponential, name)) for name in ("return_logit", "mean_gap_days",
                                                                      "activity_spread", "log_likelihood"))
    assert np.isfinite(exponential.log_activity).all()


@pytest.mark.parametrize("gaps, users", [([[]], "1 user, one session"), ([[], [], []], "3 users, one session each")])
def test_sessions_without_a_return_are_refused(gaps, users):
    # They fitted return odds and a mean gap (of 2,022 days) to nothing, or kept the first guess.
    message = (f"no user comes back ({users}): the return odds and the gaps between sessions cannot be read off the "
               "sessions. Fit a log in which users come back")
    for weibull in (False, True):
        with pytest.raises(CalibrationDataError, match=f"^{re.escape(message)}$"):
            dynamics.fit_returns(sessions_of(gaps), len(gaps), weibull=weibull)


@pytest.mark.parametrize("gap", [0.0, -1.0, math.inf])
def test_a_return_after_no_positive_gap_is_refused_naming_the_user(gap):
    # A gap of 0 days fitted NaN: its log, -inf, times the shape less 1 (0 for exponential gaps).
    rows = [(user, 1_000_000.0 + 3600 * user, 1, next_gap) for user, gaps in enumerate([[2.0, 5.0], [1.0, gap]])
            for next_gap in [*gaps, math.nan]]
    table = pd.DataFrame(rows, columns=["user_id", "start", "length", "next_gap_days"]).assign(end=lambda t: t["start"])
    message = (f"1 of the 4 gaps to a user's next session are no positive number of days (user 1's next_gap_days "
               f"{gap:g}): a session ends at a pause, so the next starts a positive, finite number of days later. Cut "
               "the ratings into sessions with cut_sessions, at pauses of gap_minutes above 0")
    with pytest.raises(CalibrationDataError, match=f"^{re.escape(message)}$"):
        dynamics.fit_returns(Sessions(table, 2_000_000.0), 2)


def test_the_calibration_refuses_sessions_cut_at_no_pause_instead_of_fitting_nan():
    # Cut at pauses of -1 minutes, two ratings of one second are two sessions 0 days apart: the
    # calibration warned that the shape was held and returned a fit of NaN.
    rows = [(user, item, 1_000_000 + 3600 * user + DAY * day, 4) for user in range(5)
            for item, day in enumerate([0.0, 0.0, 1.5, 4.0 + user])]
    sessions = cut_sessions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]), -1.0)
    message = ("5 of the 15 gaps to a user's next session are no positive number of days (user 0's next_gap_days 0): "
               "a session ends at a pause, so the next starts a positive, finite number of days later. Cut the "
               "ratings into sessions with cut_sessions, at pauses of gap_minutes above 0")
    with pytest.raises(CalibrationDataError, match=f"^{re.escape(message)}$"):
        dynamics.calibration_returns(sessions, 5)


def test_sessions_of_a_user_beyond_n_users_are_refused_naming_them():
    message = ("sessions of user 1, but n_users=1: the users are the rows 0 to 0 of the fit's log activities; give "
               "n_users above every user_id")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dynamics.fit_returns(sessions_of([[2.0, 3.0], [1.0]]), 1)


def test_one_users_fit_is_the_weibull_fit_of_their_gaps():
    """Watched to their last session, one user returns for sure after gaps of their own pace,
    the spread of paces nothing: the fit is the plain maximum likelihood fit of the gaps."""
    gaps = [1.0, 3.0, 9.0]
    fit = dynamics.fit_returns(sessions_of([gaps]), 1, weibull=True)
    shape, _, scale = stats.weibull_min.fit(gaps, floc=0)
    assert fit.gap_shape == pytest.approx(shape, rel=1e-4)
    assert fit.mean_gap_days == pytest.approx(scale * math.gamma(1 + 1 / shape), rel=1e-4)
    assert fit.return_logit > 10 and fit.activity_spread < 0.01
    assert dynamics.fit_returns(sessions_of([gaps]), 1).mean_gap_days == pytest.approx(np.mean(gaps), rel=1e-4)
