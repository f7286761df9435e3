"""``recoworld merge`` of a sweep whose runs have ``experiment.segments``: each segment's
metrics pooled across the sweep's seeds, beside the whole population's."""

import json

import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.apps import cli
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.calibration.choice import ChoiceFitConfig
from recoworld.metrics import mean_interval


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A small calibrated world (segments narrow its fitted population)."""
    catalog = Catalog.synthetic(120, n_genres=6, feature_dim=6, seed=3)
    data = simulated_dataset(catalog, n_users=60, seed=2).data
    path = tmp_path_factory.mktemp("world") / "artifact"
    calibrate(CalibrationConfig(choice=ChoiceFitConfig(dim=6, l2=0.03), leave_steps=10, leave_users=30), path=path,
              data=data, progress=False)
    return path


def test_a_sweep_with_segments_is_merged_per_segment(artifact, tmp_path):
    sweep = tmp_path / "sweep"
    assert cli.main(["run", "--multirun", "agent=random", f"world.path={artifact}", "env.num_envs=8",
                     "env.num_candidates=20", "env.slate_size=4", "experiment.steps=6", "experiment.progress=false",
                     "experiment.plots=false", "experiment.segments={impatient: {patience: low}}",
                     "experiment.seeds=[0],[1]", f"hydra.sweep.dir={sweep}"]) == 0
    table = pd.read_csv(sweep / "sweep.csv", keep_default_na=False)
    assert table[["segment", "agent", "seeds", "n_seeds", "runs"]].values.tolist() == [
        ["(all)", "random", "0 1", 2, "0;1"], ["impatient", "random", "0 1", 2, "0;1"]]
    per_seed = [json.loads((sweep / job / "metrics.json").read_text())["segments"]["impatient"]["agents"]["random"]
                ["metrics"]["ctr"]["per_seed"][0] for job in ("0", "1")]
    pooled = mean_interval(per_seed)
    impatient = table.iloc[1]
    assert (impatient["ctr"], impatient["ctr_ci_low"], impatient["ctr_ci_high"]) == pytest.approx(
        (pooled.mean, pooled.low, pooled.high))
