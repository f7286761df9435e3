"""``recoworld run``: the Hydra application over ``pkg://recoworld.conf``.

Hydra composes the config from the groups ``world``, ``simulator``, ``env``, ``agent``
and ``experiment`` (validated by :mod:`recoworld.conf.schema`), applies the command line's
overrides, handles ``--multirun`` sweeps, and gives each job its run directory, where
:func:`recoworld.apps.run.runner.run_experiment` writes its outputs. Hydra saves the
config and the overrides in the run directory before the job starts; the job then blanks
any API key in them (:func:`~recoworld.apps.run.runner.redact_secrets`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import recoworld.conf  # noqa: F401  (registers the structured-config schemas)
from recoworld.apps.run.runner import (
    ExperimentConfigError, check_overrides, redact_secrets, resolve_lineup, run_experiment,
)
from recoworld.llm import BudgetExceeded


@hydra.main(version_base="1.3", config_path="pkg://recoworld.conf", config_name="config")
def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    _redact_saved_configs(hydra_cfg)
    try:
        check_overrides(hydra_cfg.overrides.task)
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
    except BudgetExceeded as err:
        # The LLM budget did its job: the run stops, and the message says which limit to raise.
        print(f"recoworld run: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _redact_saved_configs(hydra_cfg) -> None:
    """Blank API keys in the files Hydra saved: ``.hydra/`` of the job, ``multirun.yaml`` of a sweep."""
    saved = []
    if hydra_cfg.output_subdir is not None:
        folder = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir
        saved += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        saved.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    for path in saved:
        if not path.is_file():
            continue
        tree = OmegaConf.to_container(OmegaConf.load(path))
        redacted = redact_secrets(tree)
        if redacted != tree:
            OmegaConf.save(OmegaConf.create(redacted), path)


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
