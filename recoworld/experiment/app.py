"""``recoworld run``: the Hydra application over ``pkg://recoworld.conf``.

Hydra composes the config from the groups ``world``, ``simulator``, ``env``, ``agent``
and ``experiment`` (validated by :mod:`recoworld.conf.schema`), applies the command line's
overrides, handles ``--multirun`` sweeps, and gives each job its run directory, where
:func:`recoworld.experiment.runner.run_experiment` writes its outputs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import recoworld.conf  # noqa: F401  (registers the structured-config schemas)
from recoworld.experiment.runner import ExperimentConfigError, resolve_lineup, run_experiment


@hydra.main(version_base="1.3", config_path="pkg://recoworld.conf", config_name="config")
def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    try:
        lineup = resolve_lineup(
            cfg,
            selected=hydra_cfg.runtime.choices.get("agent"),
            overrides=list(hydra_cfg.overrides.task),
            config_name=hydra_cfg.job.config_name,
        )
        run_experiment(cfg, lineup, Path(hydra_cfg.runtime.output_dir))
    except ExperimentConfigError as err:
        # A mistake in the config, not a bug: the message is enough, a traceback would bury it.
        print(f"recoworld run: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: Sequence[str]) -> int:
    """Run the Hydra app with ``argv`` (overrides and Hydra flags); returns the exit status.

    Hydra reads its arguments from ``sys.argv``, so it is set for the call and restored.
    Hydra itself reports configuration errors (unknown keys, bad values) and exits 1.
    """
    saved = sys.argv
    sys.argv = ["recoworld run", *argv]
    try:
        _job()
    finally:
        sys.argv = saved
    return 0
