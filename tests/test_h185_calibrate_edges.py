"""Edges of the calibration's return fit and of the fidelity report's refit advice.

A log in which no user comes back twice fits exponential gaps (on single gaps nothing but
the laws assumed tells the Weibull shape from the spread of the users' paces) instead of being
refused with a message that the gaps do not vary; and ``recoworld fidelity --data`` on a log that changed since the calibration names the
log it was given and the world's folder in its advice to fit the world again."""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.apps.calibrate import CalibrationConfig, calibrate, dynamics
from recoworld.apps.calibrate.fit import summary
from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.apps.fidelity.evaluation import held_out_split, source_data
from recoworld.apps.fidelity.report import main as fidelity_main
from recoworld.calibration.split import cut_sessions, session_ids, time_ordered
from recoworld.data.interactions import load_interactions
from recoworld.simulators.calibrated import CalibratedWorld

DAY = 86_400
HELD = ("the gaps are held exponential (gap_shape 1). Calibrate on a longer log, in which more users come back "
        "several times, to fit it")


def sessions_of(gaps_days: list[list[float]]):
    """The sessions of users ``0..n-1``, user ``u`` with sessions of two ratings ``gaps_days[u]``
    days apart in turn (no gap: one session), each user starting an hour after the last."""
    rows = []
    for user, gaps in enumerate(gaps_days):
        t = 1_000_000 + 3600 * user
        for gap in [*gaps, None]:
            rows += [(user, 0, t, 4), (user, 1, t + 60, 4)]
            t += 60 + (gap or 0) * DAY
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    return cut_sessions(ratings, 30.0)


def once_each(n: int = 20) -> list[list[float]]:
    return [[1.0 + u] for u in range(n)]  # one return each, after 1 to n days


# ------------------------------------------------------------------ the return fit
def test_users_who_each_come_back_once_get_exponential_gaps_with_a_warning():
    sessions = sessions_of(once_each())
    message = ("the shape of the gaps between sessions cannot be fitted (20 followed by a return after 1 to 20 days): "
               "none of the 20 users who come back does so more than once, and a single gap (or gaps of one length) "
               f"tells a user's pace, not the shape; {HELD}")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        fit = dynamics.calibration_returns(sessions, 20)
    exponential = dynamics.fit_returns(sessions, 20)
    assert (fit.gap_shape, fit.gap_shape_fitted) == (1.0, False)
    assert (fit.return_logit, fit.mean_gap_days) == (exponential.return_logit, exponential.mean_gap_days)
    assert np.isfinite(fit.log_activity).all()
    # On single gaps nothing but their assumed laws tells the shape from the paces: the Weibull
    # fit reads every user alike and the whole spread of the gaps as the shape.
    weibull = dynamics.fit_returns(sessions, 20, weibull=True)
    assert weibull.activity_spread < 0.01 and weibull.gap_shape > 1.5


def test_a_shape_fit_that_diverges_on_few_users_who_come_back_twice_holds_the_shape_too(monkeypatch):
    # One user's two gaps against 19 single ones. With the paces integrated out the single gaps
    # no longer pull the shape up (a fit of every user's pace read 94 here), but a fit can
    # still run off to NaN before it stops, as it is made to here.
    sessions = sessions_of([[2.0, 2.5], *once_each(19)])
    assert dynamics.fit_returns(sessions, 20, weibull=True).gap_shape < 3
    fitted = dynamics.fit_returns
    monkeypatch.setattr(dynamics, "fit_returns", lambda *a, weibull=False, **k: replace(
        fitted(*a, weibull=weibull, **k), **(dict(return_logit=math.nan, gap_shape=math.nan) if weibull else {})))
    message = ("the shape of the gaps between sessions cannot be fitted (21 followed by a return after 1 to 19 days): "
               "only 1 of the 20 users who come back do so after gaps of differing length, and a single gap (or gaps "
               f"of one length) tells a user's pace, not the shape; {HELD}")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        fit = dynamics.calibration_returns(sessions, 20)
    assert (fit.gap_shape, fit.gap_shape_fitted) == (1.0, False)
    assert fit.return_logit == fitted(sessions, 20).return_logit


def test_gaps_that_vary_within_users_still_fit_the_shape_without_a_warning(recwarn):
    rng = np.random.default_rng(0)
    sessions = sessions_of([list(rng.exponential(3.0, 4) + 0.1) for _ in range(20)])
    fit = dynamics.calibration_returns(sessions, 20)
    weibull = dynamics.fit_returns(sessions, 20, weibull=True,
                                   length_elasticity=dynamics.gap_length_elasticity(sessions))
    assert fit.gap_shape_fitted and fit.gap_shape == weibull.gap_shape != 1.0
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_a_log_whose_every_gap_is_one_length_is_refused_naming_that_cause():
    # Every return of the log after 2 days, three times per user: timestamps by a rule.
    sessions = sessions_of([[2.0] * 3 for _ in range(8)])
    message = ("the return model does not fit these sessions (32 sessions of 8 users, 24 followed by a return after 2 "
               "to 2 days): the shape of a user's gaps is read off the users who come back more than once, and each "
               "of these 8 does so after gaps all of one length. Calibrate on a log timestamped as the interactions "
               "happened")
    with pytest.raises(CalibrationDataError, match=f"^{re.escape(message)}$"):
        dynamics.calibration_returns(sessions, 8)


@pytest.mark.parametrize("gaps, returns, span, several", [
    # One user's two gaps of 2 days among 39 single returns (refused before: "each of these 1").
    ([[2.0, 2.0], *once_each(39)], 41, "1 to 39", 1),
    # Every user's gaps of one length, 1 to 4 days between users (refused before, as a rule's).
    ([[1.0 + u % 4] * 3 for u in range(8)], 24, "1 to 4", 8),
])
def test_users_whose_own_gaps_are_one_length_hold_the_shape_as_single_gaps_do(gaps, returns, span, several):
    """Gaps all of one length within users tell each user's pace, not the shape; only a log whose
    every gap is one length is refused (above)."""
    sessions = sessions_of(gaps)
    message = (f"the shape of the gaps between sessions cannot be fitted ({returns} followed by a return after {span} "
               f"days): none of the {len(gaps)} users who come back does so after gaps of differing length ({several} "
               "of them more than once, after gaps all of one length), and a single gap (or gaps of one length) tells "
               f"a user's pace, not the shape; {HELD}")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        fit = dynamics.calibration_returns(sessions, len(gaps))
    assert (fit.gap_shape, fit.gap_shape_fitted) == (1.0, False)
    assert fit.return_logit == dynamics.fit_returns(
        sessions, len(gaps), length_elasticity=dynamics.gap_length_elasticity(sessions)).return_logit


def test_a_log_where_each_user_comes_back_once_calibrates_and_the_world_says_the_shape_was_held(tmp_path):
    ratings = time_ordered(simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                             seed=2).data.ratings)
    session = pd.Series(session_ids(ratings, 30.0), index=ratings.index)
    first_two = session.groupby(ratings["user_id"]).rank(method="dense") <= 2
    log = ratings[first_two].rename(columns={"user_id": "user", "item_id": "item"})
    assert (log.assign(s=session).groupby("user")["s"].nunique() == 2).all()  # each user: one return
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="none of the 40 users who come back does so more than once"):
        world = calibrate(CalibrationConfig(lives_iterations=2, leave_steps=20), data=load_interactions(path),
                          progress=False)
    assert world.config.gap_shape == 1.0
    assert world.meta["returns"]["gap_shape_fitted"] is False
    spread = world.meta["returns"]["activity_spread"]
    assert f"gap shape 1.000 (held: not fitted), log activities spread {spread:.2f}" in summary(world)


# ------------------------------------------------------- fidelity's refit advice
@pytest.fixture
def changed_log(log_world, tmp_path):
    """The world of ``log_world``, and its log moved to another path without each user's latest
    interaction (held out: the held-out ratings no longer match the world's)."""
    world, log = log_world
    moved = tmp_path / "moved log.csv"
    table = pd.read_csv(log)
    table.drop(table.groupby("user")["timestamp"].idxmax()).to_csv(moved, index=False)
    return world, log, moved


def test_fidelity_on_a_changed_log_names_the_log_it_was_given_in_its_refit_advice(changed_log, capsys):
    world, log, moved = changed_log
    with pytest.raises(SystemExit):
        fidelity_main(["--world", str(world), "--data", str(moved), "--out", str(moved.parent / "report"),
                       "--no-sessions", "--splits", "", "--agents", "", "--quiet"])
    err = capsys.readouterr().err
    assert err.endswith(
        "the held-out ratings differ from those the world was calibrated without; the data or the split changed "
        f"since: fit the world again, `recoworld calibrate --data {shlex.quote(str(moved))} --users 30 --out "
        f"{shlex.quote(str(world))} --force`\n")
    assert str(log) not in err


def test_the_held_out_split_names_the_world_s_folder_when_told_it(changed_log, tmp_path):
    world_path, _, moved = changed_log
    world = CalibratedWorld.load(world_path)
    message = ("the held-out ratings differ from those the world was calibrated without; the data or the split "
               f"changed since: fit the world again, `recoworld calibrate --data {shlex.quote(str(moved))} --users 30 "
               f"--out {shlex.quote(str(world_path))} --force`")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        held_out_split(world, source_data(world, moved), world_path)
    # The world's own record is left as it was.
    assert world.meta["data"]["source"]["data"] != str(moved)


def test_the_advice_still_names_the_recorded_log_where_the_report_reads_it_there(log_world):
    world_path, log = log_world
    world = CalibratedWorld.load(world_path)
    world.meta["split"]["test_fingerprint"] = "changed"  # in memory: as if the log had changed where it is
    with pytest.raises(ValueError, match=re.escape(f"`recoworld calibrate --data {shlex.quote(str(log))} --users 30 "
                                                   f"--out {shlex.quote(str(world_path))} --force`")):
        held_out_split(world, None, world_path)
