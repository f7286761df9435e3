"""``recoworld run``: the Hydra application over ``pkg://recoworld.conf``.

Hydra composes the config from the groups ``world``, ``simulator``, ``env``, ``agent``
and ``experiment`` (validated by :mod:`recoworld.conf.schema`), applies the command line's
overrides, handles ``--multirun`` sweeps, and gives each job its run directory, where
:func:`recoworld.apps.run.runner.run_experiment` writes its outputs. The whole run happens
inside :func:`~recoworld.apps.run.secrets.redacted_output`, so that no API key reaches the
console, a log or a file (Hydra's ``.hydra/`` files and ``multirun.yaml`` included).

A run stops with a one-line message, not a traceback, when the config is wrong, when the
LLM budget is spent, and when LLM or hybrid users fell back to the statistical response on
more than ``max_fallback_share`` of their steps (the message shows the first backend error
and its fix).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import recoworld.conf  # noqa: F401  (registers the structured-config schemas)
from recoworld.apps.run.checks import override_key, unknown_key_hint
from recoworld.apps.run.plugins import plugin_overrides, register_plugins
from recoworld.apps.run.runner import ExperimentConfigError, check_overrides, resolve_lineup, run_experiment
from recoworld.apps.run.secrets import redacted_output, secrets_in_config
from recoworld.llm import BudgetExceeded


@hydra.main(version_base="1.3", config_path="pkg://recoworld.conf", config_name="config")
def _job(cfg: DictConfig) -> None:
    from recoworld.agents.llm_agents import AgentFallbacksExceeded
    from recoworld.simulators import LLMUserError

    hydra_cfg = HydraConfig.get()
    secrets_in_config(cfg)  # keys set in config files, not only on the command line
    try:
        check_overrides(hydra_cfg.overrides.task)
        lineup = resolve_lineup(
            cfg,
            selected=hydra_cfg.runtime.choices.get("agent"),
            overrides=list(hydra_cfg.overrides.task),
            config_name=hydra_cfg.job.config_name,
        )
        run_experiment(cfg, lineup, Path(hydra_cfg.runtime.output_dir),
                       default=lambda: _default_config(hydra_cfg.overrides.task, hydra_cfg.runtime.choices,
                                                       hydra_cfg.job.config_name))
    except ExperimentConfigError as err:
        # A mistake in the config, not a bug: the message is enough, a traceback would bury it.
        print(f"recoworld run: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except BudgetExceeded as err:
        # The LLM budget did its job: the run stops, and the message says which limit to raise.
        print(f"recoworld run: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except (LLMUserError, AgentFallbacksExceeded) as err:
        # The LLM users failed (on_failure=fail, or past max_fallback_share): the message
        # shows the first error and its fix.
        print(f"recoworld run: stopped: {type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _default_config(overrides: Sequence[str], choices: Mapping, config_name: str
                    ) -> tuple[DictConfig, dict[str, DictConfig]] | None:
    """The config and lineup of the run's config groups (and ``experiment.agents``) without the
    values its command line sets, i.e. the defaults of this RecoWorld: what a resumed run's
    keys are compared with when the saved config lacks them. ``None`` when they do not compose."""
    kept = [o for o in overrides if override_key(o) in choices or override_key(o) == "experiment.agents"]
    try:
        cfg = compose(config_name=config_name, overrides=kept)
        return cfg, resolve_lineup(cfg, selected=choices.get("agent"), overrides=kept, config_name=config_name)
    except Exception:  # noqa: BLE001 - e.g. a key with no default: the keys count as set, and are named
        return None


def main(argv: Sequence[str]) -> int:
    """Run the Hydra app with ``argv`` (overrides and Hydra flags); returns the exit status.

    Hydra reads its arguments from ``sys.argv``, so it is set for the call and restored.
    Hydra itself reports configuration errors (unknown keys, bad values) and exits 1.
    """
    register_plugins()  # the recoworld.agents / recoworld.simulators entry points' configs
    saved = sys.argv
    sys.argv = ["recoworld run", *plugin_overrides(argv)]
    try:
        with redacted_output(argv):
            _job()
    except SystemExit as exit_:
        if exit_.code == 1 and (hint := unknown_key_hint(sys.argv[1:])):
            print(hint, file=sys.stderr)  # key names only, no value
        raise
    finally:
        sys.argv = saved
    return 0
