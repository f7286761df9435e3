"""``recoworld calibrate --data``: a log whose sessions cannot be calibrated is refused before
the choice fits start (a minute or more on a large log), with the message it always had, as
one line and exit status 2."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from recoworld.apps.calibrate import dynamics
from recoworld.apps.calibrate import fit as calibrate_fit

N_USERS, PER_USER, N_ITEMS = 10, 10, 60
DAY = 86_400


class ChoiceFitReached(Exception):
    """Raised by the stand-in choice fits: the calibration got past the log's own checks."""


@pytest.fixture(autouse=True)
def no_choice_fit(monkeypatch):
    def reached(*args, **kwargs):
        raise ChoiceFitReached

    monkeypatch.setattr(calibrate_fit, "fit_validation_choices", reached)
    monkeypatch.setattr(calibrate_fit, "fit_training_choices", reached)


def write_log(tmp_path, gaps_s: list[float]):
    """A log of 10 users of 10 interactions each over 60 items, each user's interactions
    ``gaps_s`` apart in turn (a few seconds between users, so the times are not dates)."""
    rows = []
    for user in range(N_USERS):
        t = 1_000_000 + 7 * user
        for k in range(PER_USER):
            rows.append((f"u{user}", (6 * user + k) % N_ITEMS, t, 1 + (user + k) % 5))
            t += gaps_s[k % len(gaps_s)]
    path = tmp_path / "log.csv"
    pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]).to_csv(path, index=False)
    return path


def refusal(tmp_path, capsys, gaps_s: list[float]) -> str:
    """What ``recoworld calibrate`` writes on refusing the log: the status must be 2, and
    nothing else may be written."""
    path = write_log(tmp_path, gaps_s)
    assert calibrate_fit.main(["--data", str(path), "--out", str(tmp_path / "world"), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert not (tmp_path / "world").exists()
    return err


def test_a_log_in_which_no_user_comes_back_is_refused_before_the_choice_fit(tmp_path, capsys):
    assert refusal(tmp_path, capsys, [60]) == (
        f"recoworld calibrate: no user comes back within the log ({N_USERS} sessions of {N_USERS} users, one each, "
        "cut at pauses of the session gap): the return probability and the gaps between sessions cannot be read off "
        "it. Calibrate on a log that spans several sessions per user\n")


def test_gaps_all_of_one_length_are_refused_before_the_choice_fit(tmp_path, capsys):
    sessions, returns = N_USERS * PER_USER, N_USERS * (PER_USER - 1)
    assert refusal(tmp_path, capsys, [2 * DAY]) == (
        f"recoworld calibrate: the return model does not fit these sessions ({sessions} sessions of {N_USERS} users, "
        f"{returns} followed by a return after 2 to 2 days): the shape of a user's gaps is read off the users who "
        f"come back more than once, and each of these {N_USERS} does so after gaps all of one length. Calibrate on a "
        "log timestamped as the interactions happened\n")


def test_gaps_too_heavy_tailed_are_refused_before_the_choice_fit(tmp_path, capsys, monkeypatch):
    # No log the loader accepts has gaps this heavy-tailed: the return fit is made to find them.
    fitted = dynamics.fit_returns
    monkeypatch.setattr(dynamics, "fit_returns", lambda *a, **k: replace(fitted(*a, **k), gap_shape=0.02))
    returns = N_USERS * (PER_USER - 1)
    assert refusal(tmp_path, capsys, [DAY, 3 * DAY]) == (
        "recoworld calibrate: the gaps between sessions are too heavy-tailed for the simulated users (Weibull shape "
        f"0.02, below the 0.05 they can draw; {returns} returns after 1 to 3 days): check the timestamps' unit, or "
        "drop the users whose returns span years\n")


def test_a_log_whose_sessions_calibrate_goes_on_to_the_choice_fit(tmp_path):
    """The refusals above come from the sessions, not from stand-in fits that stop every log."""
    path = write_log(tmp_path, [DAY, 3 * DAY])
    with pytest.raises(ChoiceFitReached):
        calibrate_fit.main(["--data", str(path), "--out", str(tmp_path / "world"), "--quiet"])
