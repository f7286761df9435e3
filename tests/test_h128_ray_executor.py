"""``experiment.executor=ray`` as a careless user meets it: a rollout that raises in its worker
(where did it raise?). A Ray that is installed but does not import: test_h136_ray_errors.py."""

from __future__ import annotations

import json
import logging
from functools import partial

import pytest

from recoworld.apps.run.app import main as run_app
from run_support import TINY_RUN

TINY = [*TINY_RUN, "agent=random", "experiment.executor=ray"]


def test_the_traceback_of_a_rollout_that_raised_in_its_worker_is_logged_once(local_ray, tmp_path, caplog):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recoworld.apps.run import executor
    from recoworld.apps.run.hooks import part_hooks
    from recoworld.apps.run.rundir import Part, RunDirectory

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[o for o in TINY if not o.startswith("agent=")])
    broken = OmegaConf.create({"_target_": "recoworld.agents.RandomAgent", "no_such_argument": 1})
    parts = [Part("broken", 0), Part("broken", 1)]
    directory = RunDirectory.start(tmp_path, {"config": 1}, parts, resume=False)
    with caplog.at_level(logging.ERROR, logger=executor.__name__), pytest.raises(executor.RolloutsFailed):
        executor.ray_parts(cfg, {"broken": broken}, parts, instantiate(cfg.world), directory,
                           hooks=partial(part_hooks, cfg), on_done=lambda part: None)
    said = sorted(record.getMessage() for record in caplog.records if record.name == executor.__name__)
    assert len(said) == 2, said
    first, again = (said[1], said[0]) if said[0].startswith("agent=broken seed=0 raised in its Ray worker as") \
        else (said[0], said[1])
    seed = first.split()[1]  # the part that failed first has the traceback; the other points to it
    assert first.startswith(f"agent=broken {seed} raised in its Ray worker (pid=")
    # As Python prints a chained error: each traceback under its own header, no terminal colours.
    assert first.count("Traceback (most recent call last):\n") == 2 and "ray::" not in first
    assert 'File "' in first and ", in _remote_part\n" in first  # the worker's frames
    assert "The above exception was the direct cause of the following exception:" in first
    assert first.endswith("TypeError(\"RandomAgent() takes no arguments, not 'no_such_argument'\")")
    assert "\x1b[" not in first
    other = "seed=1" if seed == "seed=0" else "seed=0"
    assert again == (f"agent=broken {other} raised in its Ray worker as agent=broken {seed} did (traceback above): "
                     "InstantiationException: Error in call to target 'recoworld.agents.baselines.RandomAgent': "
                     "TypeError(\"RandomAgent() takes no arguments, not 'no_such_argument'\")")
    assert json.loads((tmp_path / "status.json").read_text())["parts"]["complete"] == []
