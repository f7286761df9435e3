"""Fixtures shared by several test modules."""

import pytest

from recoworld import Catalog
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig


@pytest.fixture(scope="session")
def small_world():
    """A world calibrated on a small simulated data set, and that data set."""
    catalog = Catalog.synthetic(150, n_genres=6, feature_dim=6, seed=2)
    data = simulated_dataset(catalog, n_users=80, seed=1).data
    config = CalibrationConfig(choice=ChoiceFitConfig(dim=6, l2=0.03), leave_steps=20, leave_users=40)
    return calibrate(config, data=data, progress=False), data
