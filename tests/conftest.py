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


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine's two cores for a test module (one it finds initialised is used as
    it is), shut down after the module when the fixture started it."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
