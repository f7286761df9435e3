"""A file where a part's SB3 training curves go stops the run before its first part, in the
line a file where its rollout scalars go gets (SB3 used to fail on it as it trained)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.hooks import check_curve_folders
from recoworld.apps.run.rundir import Part


@pytest.mark.parametrize("segment", [None, "young"])
def test_a_file_where_the_sb3_training_curves_go_is_refused_before_the_parts_run(segment, tmp_path):
    agent = tmp_path / "tensorboard" / ("agent=ppo" if segment is None else f"segment={segment}/agent=ppo")
    agent.mkdir(parents=True)
    (agent / "sb3").write_text("my notes\n")
    parts = [Part("ppo", 0, segment), Part("ppo", 1, segment)]
    check_curve_folders(OmegaConf.create({"tensorboard": False}), tmp_path, parts)  # no curves: nothing to refuse
    with pytest.raises(ExperimentConfigError) as refused:
        check_curve_folders(OmegaConf.create({"tensorboard": True}), tmp_path, parts)
    assert str(refused.value) == (
        f"experiment.tensorboard=true writes event files in {agent}/sb3, but {agent}/sb3 is a file: move it away, "
        "then finish the run with experiment.resume=true (or run with experiment.tensorboard=false)")
    assert (agent / "sb3").read_text() == "my notes\n"
