"""``CalibrationConfig.session_gap_minutes`` is checked when the config is built: a pause of
0 minutes or less cuts no visits, and a value that is no finite number is no pause."""

from __future__ import annotations

import re

import pytest

from recoworld.apps.calibrate.fit import CalibrationConfig

RULE = ("(the pause, in minutes, after which a user's next rating starts a new session; 30 is the usual "
        "web-analytics rule)")


@pytest.mark.parametrize("minutes", [0, 0.0, -30.0])
def test_a_session_gap_of_zero_minutes_or_less_is_refused_naming_the_value_and_the_rule(minutes):
    message = f"CalibrationConfig.session_gap_minutes={minutes!r}: must be > 0 {RULE}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CalibrationConfig(session_gap_minutes=minutes)


@pytest.mark.parametrize("minutes", [float("nan"), float("inf"), "30", True])
def test_a_session_gap_that_is_no_finite_number_is_refused(minutes):
    message = f"CalibrationConfig.session_gap_minutes={minutes!r}: must be a finite number > 0 {RULE}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CalibrationConfig(session_gap_minutes=minutes)


def test_a_positive_session_gap_is_kept_as_given():
    assert CalibrationConfig(session_gap_minutes=45).session_gap_minutes == 45
    assert CalibrationConfig(session_gap_minutes=0.5).session_gap_minutes == 0.5
