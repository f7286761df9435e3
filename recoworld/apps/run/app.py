"""``recoworld run``: the Hydra application over ``pkg://recoworld.conf``.

Hydra composes the config from the groups ``world``, ``simulator``, ``env``, ``agent``
and ``experiment`` (validated by :mod:`recoworld.conf.schema`), applies the command line's
overrides, handles ``--multirun`` sweeps, and gives each job its run directory, where
:func:`recoworld.apps.run.runner.run_experiment` writes its outputs. The whole run happens
inside :func:`~recoworld.apps.run.secrets.redacted_output`, so that no API key reaches the
console, a log or a file (Hydra's ``.hydra/`` files and ``multirun.yaml`` included).

A run stops with a one-line message, not a traceback, when the config is wrong (the
mistakes the composed config shows alone, such as ``experiment.steps=0`` or an empty
``experiment.seeds``, before torch and the runner load), when the LLM budget is spent,
when LLM or hybrid users fell back to the statistical response on more than
``max_fallback_share`` of their steps (the message shows the first backend error and its
fix), and when Ray rollouts failed (``experiment.executor=ray``: each named with its
agent and seed). ``experiment.executor=ray`` is checked before the run directory is touched
(:func:`~recoworld.apps.run.executor.check_executor`: Ray installed, the address reachable).

In a ``--multirun`` a job that stops so raises :class:`JobFailed` instead of exiting: Hydra
records the job as failed and runs the others. Hydra then skips the end of the sweep (its
sweeper raises the first failed job's error), so :func:`main` ends it with
:func:`~recoworld.apps.merge_multirun.end_stopped_sweeps`: the sweep is merged, the jobs that did not
finish are named with their state, and the exit status is 1; after Ctrl-C the unfinished jobs
are named and the command that finishes the sweep is given.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

import recoworld.conf  # noqa: F401  (registers the structured-config schemas)
from recoworld.apps.merge_multirun import end_stopped_sweeps
from recoworld.apps.run import hydra_files
from recoworld.apps.run.checks import (
    ExperimentConfigError, check_overrides, check_segments, check_world, experiment_settings, override_key,
    unknown_key_hint, world_path_hint,
)
from recoworld.apps.run.plugins import PluginConflict, plugin_overrides, register_plugins
from recoworld.apps.run.secrets import guard_worker, redacted_output, secrets_in_config
from recoworld.llm import BudgetExceeded

# A launcher's worker (hydra/launcher=joblib, ray) imports this module when it receives a job, before
# Hydra writes the job's .hydra/ files there: its outputs are guarded from then on, as the run's are.
guard_worker()

#: Hydra's override of its config search path: a plug-in's ``conf/`` folder, whose agents
#: ``experiment.agents`` may name.
SEARCH_PATH = "hydra.searchpath"


class JobFailed(CompactHydraException):
    """A job of a ``--multirun`` stopped with one of the one-line messages of a run (the
    message is the line): Hydra records it as failed and goes on with the other jobs."""


@hydra.main(version_base="1.3", config_path="pkg://recoworld.conf", config_name="config")
def _job(cfg: DictConfig) -> None:
    # Hydra has rewritten .hydra/ in the job's folder: a run that does not start there (the
    # folder refuses it, or it stops first) puts back the files of the run that did.
    with hydra_files.restored(HydraConfig.get().runtime.output_dir):
        _run_job(cfg, HydraConfig.get())


def _run_job(cfg: DictConfig, hydra_cfg) -> None:
    secrets_in_config(cfg)  # keys set in config files, not only on the command line
    try:
        # The checks that read the composed config alone (the runner repeats them for its
        # Python callers) answer experiment.steps=0 or a calibrated user on a synthetic
        # world before the run's machinery loads, which takes seconds.
        check_overrides(hydra_cfg.overrides.task)
        experiment_settings(cfg)
        check_world(cfg)
        check_segments(cfg)
    except ExperimentConfigError as err:
        _stop(hydra_cfg, f"recoworld run: error: {err}")
    # The run's machinery (torch, the simulators, the runner) loads only once Hydra has a job to
    # run and its config passed those checks: --help, --cfg and a refused config answer without it.
    from recoworld.agents.llm_agents import AgentFallbacksExceeded
    from recoworld.apps.run.executor import RolloutsFailed, check_executor
    from recoworld.apps.run.runner import resolve_lineup, run_experiment
    from recoworld.simulators import LLMUserError

    try:
        check_executor(cfg.experiment)
        # A plug-in's conf/ given as hydra.searchpath (a Hydra override, not the task's) holds
        # agents that experiment.agents may name: each agent is composed with it.
        overrides = [*hydra_cfg.overrides.task,
                     *(o for o in hydra_cfg.overrides.hydra if override_key(o) == SEARCH_PATH)]
        lineup = resolve_lineup(
            cfg,
            selected=hydra_cfg.runtime.choices.get("agent"),
            overrides=overrides,
            config_name=hydra_cfg.job.config_name,
        )
        run_experiment(cfg, lineup, Path(hydra_cfg.runtime.output_dir),
                       default=lambda: _default_config(overrides, hydra_cfg.runtime.choices,
                                                       hydra_cfg.job.config_name))
    except ExperimentConfigError as err:
        # A mistake in the config, not a bug: the message is enough, a traceback would bury it.
        _stop(hydra_cfg, f"recoworld run: error: {err}")
    except BudgetExceeded as err:
        # The LLM budget did its job: the run stops, and the message says which limit to raise.
        _stop(hydra_cfg, f"recoworld run: stopped: {err}")
    except (LLMUserError, AgentFallbacksExceeded, RolloutsFailed) as err:
        # The LLM users failed (on_failure=fail, or past max_fallback_share), or Ray rollouts
        # did: the message shows the first error and its fix, or names each failed rollout.
        _stop(hydra_cfg, f"recoworld run: stopped: {type(err).__name__}: {err}")


def _stop(hydra_cfg, message: str) -> None:
    """End the run with ``message``: exit 1, or in a multirun fail this job (:class:`JobFailed`),
    the message logged to its log file too (a job stopped before its run began has no
    ``status.json`` to hold it)."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        print(message, file=sys.stderr)
        raise SystemExit(1) from None
    logging.getLogger(__name__).error(message)
    raise JobFailed(f"{message} (job {hydra_cfg.job.num}: {hydra_cfg.runtime.output_dir})") from None


def _default_config(overrides: Sequence[str], choices: Mapping, config_name: str
                    ) -> tuple[DictConfig, dict[str, DictConfig]] | None:
    """The config and lineup of the run's config groups (and ``experiment.agents``) without the
    values its command line sets, i.e. the defaults of this RecoWorld: what a resumed run's
    keys are compared with when the saved config lacks them. ``None`` when they do not compose."""
    from recoworld.apps.run.runner import resolve_lineup

    kept = [o for o in overrides if override_key(o) in choices or override_key(o) in ("experiment.agents", SEARCH_PATH)]
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
    try:
        register_plugins()  # the recoworld.agents / recoworld.simulators entry points' configs
    except PluginConflict as err:  # an installation problem, not a bug: the message names the fix
        print(f"recoworld run: error: {err}", file=sys.stderr)
        return 1
    saved = sys.argv
    sys.argv = ["recoworld run", *plugin_overrides(argv)]
    try:
        with redacted_output(argv):
            try:
                _job()
            except BaseException as stop:
                # A --multirun that Hydra did not end (a job failed, or Ctrl-C): merged and named.
                end_stopped_sweeps(interrupted=isinstance(stop, KeyboardInterrupt))
                raise
    except SystemExit as exit_:
        if exit_.code == 1 and (hint := world_path_hint(sys.argv[1:]) or unknown_key_hint(sys.argv[1:])):
            print(hint, file=sys.stderr)  # key names and a world's path only, no secret value
        raise
    finally:
        sys.argv = saved
    return 0
