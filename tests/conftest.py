"""Fixtures shared by several test modules."""

import pytest

from recoworld import Catalog
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig


@pytest.fixture(scope="session")
def small_world():
    """A world calibrated on a small simulated data set, and that data set."""
    catalog = Catalog.synthetic(150, n_genres=6, feature_dim=6, seed=2)
    data = simulated_dataset(catalog, n_users=80, seed=1).data
    config = CalibrationConfig(choice=ChoiceFitConfig(dim=6, l2=0.03), leave_steps=20, leave_users=40)
    return calibrate(config, data=data, progress=False), data


@pytest.fixture(scope="session")
def _ray_of_the_session():
    """Shuts down, when the session (this xdist worker) ends, the Ray that ``local_ray`` started."""
    ray = pytest.importorskip("ray")
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray(_ray_of_the_session):
    """Ray on this machine with 4 logical CPUs (a module's long-lived ``sharded_twins`` hold
    two), started once for the session, not per module: its start-up and its task workers'
    imports of torch and RecoWorld are paid once. One it finds initialised is used as it is;
    a test that needs a process without Ray shuts it down, and the next module using this
    fixture starts it again."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        # address="local": a Ray of the tests' own, even where a cluster runs on this machine (or
        # a stopped one left /tmp/ray/ray_current_cluster), which ray.init() would join, refusing num_cpus.
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture(scope="module")
def sharded_twins(local_ray):
    """An unsharded env and a sharded one of the same five users (shards of users 0-2 and
    3-4: an uneven split), with short episodes (``max_steps=3``) so that the autoreset of
    finished users is crossed. Shared by a module's tests: each shard is a Ray actor, a worker
    process of its own that imports torch and RecoWorld, the slow part of building it. Each
    test resets both first and gives both the same calls; the shards hold one CPU each until
    the module ends."""
    from recoworld.envs.sharded import ShardedVectorEnv
    from recoworld.envs.slate import SlateVectorEnv

    kwargs = {"slate_size": 3, "num_candidates": 10, "max_steps": 3}
    whole, sharded = SlateVectorEnv(num_envs=5, **kwargs), ShardedVectorEnv(5, 2, **kwargs)
    yield whole, sharded
    sharded.close()
    whole.close()


@pytest.fixture
def hooks_by_value(request, local_ray):
    """Ray's workers cannot import a test module: the hooks of the requesting one travel by value."""
    local_ray.cloudpickle.register_pickle_by_value(request.module)
    yield
    local_ray.cloudpickle.unregister_pickle_by_value(request.module)


@pytest.fixture(scope="module")
def log_world(tmp_path_factory):
    """A world fitted by ``recoworld calibrate --data`` from a log of 40 users, and the log (one
    per test module: modules damage copies of it)."""
    folder = tmp_path_factory.mktemp("log_world")
    ratings = simulated_dataset(Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=3), n_users=40,
                                seed=2).data.ratings
    log = folder / "log.csv"
    ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(log, index=False)
    world = folder / "world"
    assert calibrate_main(["--data", str(log), "--users", "30", "--out", str(world), "--quiet"]) == 0
    return world, log
