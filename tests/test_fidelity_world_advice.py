"""``recoworld fidelity`` adds no advice of its own to a world that cannot be read
(:class:`UnreadableWorld`, whose message gives the advice for the data the world was fitted
on: a log's world is fitted again from its log, never with a bare ``--force``, which fits
MovieLens-100K), whatever that message's wording; any other error of the world gets the hint."""

import pytest

from recoworld.apps.fidelity import report
from recoworld.simulators.calibrated import UnreadableWorld


def _failing(error):
    def ensure_world(path, progress):
        raise error
    return ensure_world


def test_an_unreadable_world_keeps_its_own_advice_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "ensure_world", _failing(UnreadableWorld("world.json is cut short; fit it again")))
    with pytest.raises(UnreadableWorld) as error:
        report._world(tmp_path, progress=False)
    assert str(error.value) == "world.json is cut short; fit it again"


def test_another_error_of_the_world_gets_the_command_for_its_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "ensure_world", _failing(ValueError("the fit found no ratings")))
    with pytest.raises(ValueError) as error:
        report._world(tmp_path, progress=False)
    assert str(error.value) == f"the fit found no ratings (recoworld calibrate --out {tmp_path} --force)"
