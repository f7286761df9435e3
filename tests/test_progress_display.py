"""calibrate and fidelity show their stages with rich; off a terminal each stage still
leaves one informative line."""

import io

import pytest
from rich.console import Console

from recoworld.apps.calibrate.progress import Stages


def captured(enabled=True):
    out = io.StringIO()
    return Stages(2, enabled, "calibrate", console=Console(file=out, width=100, force_terminal=False)), out


def test_each_stage_leaves_one_line_with_its_count_name_and_seconds():
    stages, out = captured()
    with stages.stage("reading MovieLens-100K"):
        pass
    with stages.stage("splitting ratings in time"):
        pass
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["✓ [calibrate 1/2] reading MovieLens-100K",
                                                       "✓ [calibrate 2/2] splitting ratings in time"]
    assert list(stages.timings) == ["reading MovieLens-100K", "splitting ratings in time"]
    assert stages.done == 2


def test_quiet_stages_print_nothing_but_still_time_the_stages():
    stages, out = captured(enabled=False)
    with stages.stage("assembling the world"):
        pass
    assert out.getvalue() == ""
    assert "assembling the world" in stages.timings


def test_a_failing_stage_raises_and_is_not_counted():
    stages, out = captured()
    with pytest.raises(RuntimeError, match="boom"), stages.stage("fitting the rating response"):
        raise RuntimeError("boom")
    assert stages.done == 0 and stages.timings == {}
    lines = [line for line in out.getvalue().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("✗ [calibrate 1/2] fitting the rating response: failed after ")


def test_a_stage_stopped_by_ctrl_c_says_so():
    stages, out = captured()
    with pytest.raises(KeyboardInterrupt), stages.stage("fitting the leave hazard"):
        raise KeyboardInterrupt
    assert out.getvalue().startswith("✗ [calibrate 1/2] fitting the leave hazard: stopped after ")
