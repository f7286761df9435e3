"""The experiment runner behind ``recoworld run``: a lineup of agents over several seeds.

From a composed config (see ``conf/config.yaml``) it builds the world's catalog once, then
for every agent of the lineup and every seed — a *part* of the run — a fresh simulator,
vector env and agent, all with ``hydra.utils.instantiate`` from their ``_target_``, and
runs :func:`~recoworld.envs.rollout.rollout`. The run directory
(:mod:`recoworld.apps.run.rundir`: what is written when, and how a run resumes) receives:

- ``status.json``: the state of the run (running, failed, interrupted, complete), its
  error, the parts complete, the config a resumed run must repeat, and (under ``recoworld
  run``) ``overrides``, the command line's overrides of its latest start;
- ``lineup.yaml``: the resolved config of every agent that ran;
- ``episodes/agent=<agent>/seed=<seed>.parquet``: every interaction of one part, in the
  schema of :mod:`recoworld.logs` (``read_log(run_dir)`` reads them all);
- ``metrics.json``: per agent, each metric of :mod:`recoworld.metrics` as a mean across
  seeds with its 95% Student-t interval and the per-seed values, plus the retention curve,
  and under ``simulator`` the counters of :meth:`UserSimulator.metrics
  <recoworld.simulators.base.UserSimulator.metrics>` per rollout in the same form (for LLM
  and hybrid users: LLM calls, tokens, cache hits, latency, parse failures, fallback steps);
- ``returns.png``, ``learning.png`` and ``retention.png`` (see :mod:`recoworld.apps.run.report`).

The config is checked (:mod:`recoworld.apps.run.checks`) before the run directory is
touched. ``metrics.json`` and the plots are written only when every part is complete; a
failed or interrupted run (Ctrl-C, or ``kill``: SIGTERM is taken as Ctrl-C) leaves
``status.json`` saying so and its complete parts, which ``experiment.resume=true`` keeps.

Hydra writes the composed config to ``.hydra/`` next to them; a start that the folder refuses,
or that stops before its run starts, puts back the files it rewrote
(:mod:`~recoworld.apps.run.hydra_files`). The run's own config and overrides are in
``status.json``, which the viewer, the Minari export, ``recoworld merge`` and ``ope evaluate`` read.
Each simulator is closed (:meth:`~recoworld.simulators.base.UserSimulator.close`) when its
rollout ends, and what the simulator config builds once for all rollouts — the chat model of
LLM users — when the run ends, errors included. API keys never reach the run directory: :func:`redact_secrets`
blanks them in ``lineup.yaml`` and ``status.json`` and ``recoworld run`` in the files of ``.hydra/``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from recoworld.apps.calibrate.fit import ensure_world
from recoworld.apps.calibrate.progress import torch_threads
from recoworld.apps.run import hydra_files, report
from recoworld.apps.run.executor import built, instantiated, ray_parts, rollout_part
from recoworld.apps.run.cost import check_llm_cost, check_copied_users
from recoworld.apps.run.hooks import (
    TrainingProgress, check_curve_folders, check_tensorboard, complete_parts_scalars, part_hooks,
    with_training_logs,
)
from recoworld.apps.run.plugins import fit_plugin_config, fit_plugin_targets, target_name
from recoworld.apps.run.privileged import unserved
from recoworld.apps.run.checks import (
    CALIBRATED_USERS,
    ExperimentConfigError,
    check_action_format,
    check_overrides,
    check_required,
    check_segments,
    check_world,
    experiment_settings,
    override_key,
    run_identity,
)
from recoworld.apps.run.rundir import Part, RunDirectory, how_to_finish, unwritable
from recoworld.apps.run.secrets import redact_secrets, redact_text
from recoworld.apps.interrupts import kill_stops_like_ctrl_c
from recoworld.catalog import Catalog
from recoworld.envs.rollout import EachStep
from recoworld.logs import SCHEMA_VERSION, read_log
from recoworld.metrics import METRICS, seed_summary, summarize
from recoworld.simulators.calibrated import is_world, missing_world_file

CALIBRATED_CATALOG = "recoworld.simulators.calibrated.calibrated_catalog"
log = logging.getLogger(__name__)

__all__ = ["ExperimentConfigError", "check_overrides", "redact_secrets", "resolve_lineup", "run_experiment"]


def resolve_lineup(
    cfg: DictConfig,
    selected: str | None = None,
    overrides: Sequence[str] = (),
    config_name: str = "config",
) -> dict[str, DictConfig]:
    """The agents to run, by name, with their configs.

    With ``agent=NAME`` (``cfg.agent`` set) the lineup is that one agent, named
    ``selected`` (Hydra's choice for the ``agent`` group). Otherwise every name of
    ``cfg.experiment.agents`` is composed as ``agent=NAME`` together with the run's other
    ``overrides``, in Hydra's compose API (which needs Hydra initialised, as it is inside
    ``recoworld run``), so that each agent's config is exactly what ``recoworld run
    agent=NAME ...`` would use.

    An agent or simulator whose ``_target_`` is outside RecoWorld, ``cfg``'s or one that
    ``experiment.agents`` lists, is checked first (:func:`~recoworld.apps.run.plugins.fit_plugin_config`:
    it imports, subclasses its base, and takes the keys its config gives).

    A privileged agent (the Oracle) whose channel the simulator lacks
    (:mod:`recoworld.apps.run.privileged`) is left out of the lineup with a logged note;
    chosen alone with ``agent=NAME`` it is an :class:`ExperimentConfigError`.
    """
    if cfg.agent is not None and "_target_" not in cfg.agent:  # agent.KEY=VALUE without agent=NAME
        # As typed: the command line adds the "+" that Hydra needs for a key of a null group.
        given = " ".join(o.removeprefix("+") for o in overrides if _is_agent_override(o)) or "agent"
        raise ExperimentConfigError(
            f"{given} sets an agent's keys, but no agent is chosen; give agent=NAME with it (NAME a config of "
            "conf/agent/, e.g. agent=linucb) to run that agent alone, or agent._target_=my_pkg.MyAgent for a class "
            "of your own: experiment.agents runs each agent it lists with its own config")
    fit_plugin_targets(cfg)
    if cfg.agent is not None:
        return _served(cfg, {selected or target_name(cfg.agent): cfg.agent}, alone=True)
    names = list(cfg.experiment.agents)
    if not names:
        raise ExperimentConfigError("experiment.agents is empty; name at least one config of conf/agent/, "
                                    "or pass agent=NAME")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ExperimentConfigError(f"experiment.agents lists {repeated} more than once; "
                                    "each agent runs once per seed")
    if not GlobalHydra.instance().is_initialized():
        raise RuntimeError("resolving experiment.agents needs Hydra's config search path: call this inside "
                           "recoworld run, or within hydra.initialize_config_module('recoworld.conf')")
    kept = [o for o in overrides if not _is_agent_override(o)]
    # With the run's config and overrides, so that a hydra.searchpath (a plug-in's conf/) is searched too.
    options = GlobalHydra.instance().config_loader().get_group_options("agent", config_name=config_name,
                                                                       overrides=kept)
    unknown = [n for n in names if n not in options]
    if unknown:
        raise ExperimentConfigError(f"experiment.agents names {unknown[0]!r}, but there is no agent config "
                                    f"{unknown[0]!r}; available: {', '.join(options)} "
                                    f"(add one as conf/agent/{unknown[0]}.yaml)")
    lineup = {name: compose(config_name=config_name, overrides=[*kept, f"agent={name}"]).agent for name in names}
    for name, agent in lineup.items():  # checked as agent=NAME is, before the run directory is written
        try:
            fit_plugin_config(agent, "agent", kept)
        except ExperimentConfigError as err:
            raise ExperimentConfigError(f"experiment.agents lists {name}: {err}") from None
    return _served(cfg, lineup, alone=False)


def _served(cfg: DictConfig, lineup: dict[str, DictConfig], alone: bool) -> dict[str, DictConfig]:
    """``lineup`` less the privileged agents whose channel ``cfg``'s simulator lacks."""
    notes = unserved(cfg, lineup)
    if notes and (alone or len(notes) == len(lineup)):
        raise ExperimentConfigError(f"{'; '.join(notes.values())}; implement it on the simulator, or run "
                                    "agents that need no privileged channel")
    for name, note in notes.items():
        log.warning("skipping %s: %s (implement it on the simulator to run %s)", name, note, name)
    return {name: agent for name, agent in lineup.items() if name not in notes}


def _is_agent_override(override: str) -> bool:
    key = override_key(override)
    return key == "agent" or key.startswith(("agent.", "agent@"))


def run_experiment(
    cfg: DictConfig,
    lineup: dict[str, DictConfig],
    run_dir: str | Path,
    console: Console | None = None,
    default: Callable[[], tuple[DictConfig, dict[str, DictConfig]] | None] | None = None,
) -> dict:
    """Run every agent of ``lineup`` over ``cfg.experiment.seeds`` and write the run directory.

    ``default`` gives the config and lineup that the run's config groups give with no value
    set on the command line (``None`` if they cannot be known): a resumed run whose saved
    config lacks a key takes it for one that RecoWorld added since if its value is the
    default's (:func:`~recoworld.apps.run.checks.config_differences`).

    Returns the content of ``metrics.json``.

    Raises:
        ExperimentConfigError: the experiment's settings are out of range, or the run
            directory cannot take the run (it holds results and ``experiment.resume`` is
            false, or the saved config differs); nothing is written then. A full disk, a
            spent quota or a read-only file system stops the run with a
            :class:`~recoworld.apps.run.rundir.RunDirectoryError` that says what to free and
            how to resume (:func:`~recoworld.apps.run.rundir.unwritable`).
        Exception: whatever building or running a part raised; ``status.json`` then says
            ``failed`` (``interrupted`` for KeyboardInterrupt, and for SIGTERM, which this
            function takes as Ctrl-C while it runs) and the complete parts stay.
    """
    settings = experiment_settings(cfg)
    check_required(cfg, lineup)
    check_world(cfg)
    check_segments(cfg)
    check_llm_cost(cfg, lineup)
    check_copied_users(cfg, lineup)
    check_action_format(cfg, lineup)
    check_tensorboard(cfg.experiment)
    console = console or Console()
    segments = _segment_configs(cfg)
    plan = [Part(name, seed, segment) for segment in segments for name in lineup for seed in settings.seeds]
    directory = None
    try:
        directory = RunDirectory.start(run_dir, _identity((cfg, lineup)), plan, settings.resume, redact=redact_text,
                                       default=None if default is None else lambda: _identity(default()))
        # The folder stays locked (status.json's writer) until the run has recorded its ending.
        with directory, directory.recording(), kill_stops_like_ctrl_c(), torch_threads(settings.torch_threads):
            hydra_files.started(directory.path)  # .hydra/ is this run's: no earlier run's to put back
            if (overrides := _job_overrides(directory.path)) is not None:
                # The run's own record of its command line, saved with the status's next write (each
                # run makes one: a part begins, or the run ends); Hydra's .hydra/overrides.yaml is
                # rewritten by any later start in the folder, a refused one included.
                directory.status["overrides"] = overrides
            catalog = _build_world(cfg, lineup, settings.seeds)
            for segment, segment_cfg in segments.items():
                _run_parts(segment_cfg, lineup, segment, catalog, directory, console)
            # lineup.yaml: the agents as they ran, SB3's tensorboard_log in the run directory.
            metrics = _write_results(cfg, with_training_logs(cfg, lineup, directory.path), segments, catalog,
                                     directory)
            directory.complete()
    except KeyboardInterrupt:
        if directory is not None:
            console.print(f"interrupted: {directory.progress} in {directory.path}; "
                          f"{how_to_finish(directory.path, 'the run')}", soft_wrap=True)
        raise
    except OSError as err:
        # A full disk is no bug: one line that says what to free and how to go on, not a traceback.
        stopped = unwritable(err, Path(run_dir), None if directory is None else directory.progress)
        if stopped is None:
            raise
        raise stopped from err
    report.print_summary(metrics, console, directory.path)
    return metrics


def _job_overrides(run_dir: Path) -> list[str] | None:
    """The command line's overrides (Hydra's ``overrides.task``, secrets blanked) of the Hydra
    job whose folder is ``run_dir``; ``None`` for a run outside one (a Python caller's)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    job = HydraConfig.get()
    if Path(job.runtime.output_dir).resolve() != run_dir.resolve():
        return None
    return [redact_text(str(override)) for override in job.overrides.task]


def _identity(config: tuple[DictConfig, dict[str, DictConfig]] | None) -> dict | None:
    """What the run directory keeps of a config and its lineup, and compares on resume (secrets blanked)."""
    return None if config is None else redact_secrets(run_identity(*config))


def _segment_configs(cfg: DictConfig) -> dict[str | None, DictConfig]:
    """The run's config (under ``None``) and, for each of ``experiment.segments``, a copy whose
    simulator population is narrowed to the segment's spec."""
    configs: dict[str | None, DictConfig] = {None: cfg}
    base = OmegaConf.to_container(cfg.simulator.population, resolve=True) if cfg.simulator.get("population") else {}
    for name, spec in (cfg.experiment.get("segments") or {}).items():
        segment = copy.deepcopy(cfg)
        segment.simulator.population = {**base, **OmegaConf.to_container(spec, resolve=True)}
        configs[str(name)] = segment
    return configs


def _build_world(cfg: DictConfig, lineup: dict[str, DictConfig], seeds: list[int]) -> Catalog:
    ensure_calibrated(cfg)
    catalog = built("world", instantiated, config=cfg.world)  # a value it refuses: one line, no wrapper
    log.info("world %s (%d items), %d users, lineup %s, seeds %s", catalog.name, catalog.n_items,
             cfg.env.num_envs, list(lineup), seeds)
    return catalog


def _run_parts(cfg: DictConfig, lineup: dict[str, DictConfig], segment: str | None, catalog: Catalog,
               directory: RunDirectory, console: Console) -> None:
    """The rollouts of ``lineup`` over the seeds on ``cfg``'s simulator that ``directory``
    does not hold yet: one fresh simulator, env and agent each, each rollout's log one part,
    recorded with the simulator's metrics once its file is in place."""
    experiment = cfg.experiment
    parts = [Part(name, int(seed), segment) for name in lineup for seed in experiment.seeds]
    # A file in the way of the curves is one line, whichever executor runs the parts, before the
    # complete parts' scalars are written (a resume that turns TensorBoard on) or any part runs.
    check_curve_folders(experiment, directory.path, parts)
    complete_parts_scalars(cfg, lineup, directory.path, [part for part in parts if directory.completed(part)])
    if all(directory.completed(part) for part in parts):
        return
    with ExitStack() as run:
        progress = run.enter_context(_progress(console, experiment.progress))
        tasks = {name: progress.add_task(name if segment is None else f"{segment}/{name}",
                                         total=len(experiment.seeds) * experiment.steps) for name in lineup}
        for part in parts:
            if directory.completed(part):
                progress.advance(tasks[part.agent], experiment.steps)
        todo = [part for part in parts if not directory.completed(part)]
        if experiment.get("executor", "local") == "ray":  # one Ray task per part (executor.py)
            # Each task builds its part's hooks, and its SB3 agent's tensorboard_log, for its part folder.
            hooks = partial(part_hooks, OmegaConf.create({"experiment": OmegaConf.to_container(experiment)}))
            ray_parts(cfg, lineup, todo, catalog, directory, hooks,
                      on_done=lambda part: progress.advance(tasks[part.agent], experiment.steps))
            return
        # Copies of the composed lineup (which the run directory keeps and compares on resume):
        # each segment's SB3 agents train into the segment's own folder of the run directory.
        logged = with_training_logs(cfg, lineup, directory.path, segment)
        make_env = instantiate(cfg.env, _partial_=True, _convert_="object")
        # The simulator's nested configs (e.g. its chat model) are built here, once for all
        # rollouts; what of them can be closed is closed when the run ends.
        make_simulator = instantiate(cfg.simulator, _partial_=True, _convert_="object")
        for nested in make_simulator.keywords.values():
            if callable(getattr(nested, "close", None)):
                run.callback(nested.close)
        for part in todo:
            task = tasks[part.agent]
            outcome = rollout_part(make_simulator, make_env, logged[part.agent], catalog, part, experiment,
                                   directory.begin(part),
                                   hooks=[EachStep(lambda n, task=task: progress.advance(task, n)),
                                          TrainingProgress(progress, f"{part.agent} seed {part.seed}"),
                                          *part_hooks(cfg, directory.path, part)])
            directory.record(part, outcome.rows, outcome.seconds, outcome.simulator, outcome.kernels, outcome.agent_stats)


def _write_results(cfg: DictConfig, lineup: dict[str, DictConfig], segments: dict[str | None, DictConfig],
                   catalog: Catalog, directory: RunDirectory) -> dict:
    """``lineup.yaml``, the plots and ``metrics.json``, from every part of the run, each written whole."""
    experiment = cfg.experiment
    features, popularity = catalog.features.cpu().numpy(), catalog.popularity.cpu().numpy()
    # which lives the rollout cannot have cut (metrics.whole_lives)
    horizon = {"steps": int(experiment.steps), "max_steps": int(cfg.env.max_steps)}
    frame, agents = _summaries(directory, lineup, experiment.seeds, None, features, popularity, horizon)
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "world": {"name": catalog.name, "n_items": catalog.n_items},
        "num_envs": int(cfg.env.num_envs),
        "steps": horizon["steps"],
        "max_steps": horizon["max_steps"],
        "seeds": [int(s) for s in experiment.seeds],
        "interval": "95% Student-t interval of the mean across seeds (per_seed holds the values)",
        "metric_definitions": METRICS,
        # Which kernels stepped the rollouts (kernel=auto decides per machine); one entry per
        # distinct choice, which is one entry unless a resumed run moved machines.
        "kernels": _distinct([record.get("kernels", {}) for record in directory.status["parts"]["complete"]]),
        "agents": agents,
    }
    if len(segments) > 1:
        metrics["segments"] = {
            name: {"population": OmegaConf.to_container(segment.simulator.population),
                   "agents": _summaries(directory, lineup, experiment.seeds, name, features, popularity,
                                        horizon)[1]}
            for name, segment in segments.items() if name is not None}
    resolved = {name: OmegaConf.to_container(agent, resolve=True) for name, agent in lineup.items()}
    directory.write_text("lineup.yaml", OmegaConf.to_yaml(OmegaConf.create(redact_secrets(resolved))))
    if experiment.plots:
        for name, plot in (("returns.png", lambda path: report.plot_returns(frame, path, **horizon)),
                           ("learning.png", lambda path: report.plot_learning_curves(frame, path)),
                           ("retention.png", lambda path: report.plot_retention(agents, path))):
            with directory.replacing(name) as temporary:
                plot(temporary)
    directory.write_text("metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _distinct(values: list[dict]) -> list[dict]:
    return [value for i, value in enumerate(values) if value not in values[:i]]


def _summaries(directory: RunDirectory, lineup: dict[str, DictConfig], seeds: Sequence[int], segment: str | None,
               features, popularity, horizon: dict[str, int]) -> tuple:
    """The log of ``segment``'s parts (in lineup and seed order) and its :func:`summarize`,
    with each agent's rollout seconds, simulator and agent counters from the parts' records."""
    parts = [Part(name, int(seed), segment) for name in lineup for seed in seeds]
    frame = read_log([directory.path / part.file for part in parts])
    agents = summarize(frame, features, popularity, **horizon)
    for name, summary in agents.items():
        records = [directory.completed(part) for part in parts if part.agent == name]
        summary["seconds"] = round(sum(record["seconds"] for record in records), 3)
        for counters in ("simulator", "agent_stats"):  # the simulator's work, and the agent's (LLM requests...)
            per_seed = [record.get(counters, {}) for record in records]
            if any(per_seed):
                keys = dict.fromkeys(key for m in per_seed for key in m)
                summary[counters] = {key: seed_summary([m.get(key, float("nan")) for m in per_seed]) for key in keys}
    return frame, agents


def ensure_calibrated(cfg: DictConfig) -> None:
    """Fits the cache's calibrated world on first use when the world or the simulator reads
    it. A folder given as ``world.path`` (or ``simulator.path``) must hold a world already:
    fitting MovieLens-100K into a mistyped folder would run the wrong world silently. One that
    holds a world's world.json but not its tensors.pt (half a world) is refused before the run
    starts, with the loader's error for it (:func:`~recoworld.simulators.calibrated.missing_world_file`),
    which gives the command that fits it again from the data its world.json names."""
    paths = {cfg.world.get("path"): "world.path"} if cfg.world.get("_target_") == CALIBRATED_CATALOG else {}
    if cfg.simulator.get("_target_") == CALIBRATED_USERS:
        paths.setdefault(cfg.simulator.get("path"), "simulator.path")
    for path, key in paths.items():
        if path is None:
            ensure_world(None)
        elif Path(path).expanduser().is_file():
            # A log given where its world goes: calibrating into the file's name would fail too.
            raise ExperimentConfigError(
                f"{key}={path} is a file, and a calibrated world is a folder; give the folder that `recoworld "
                f"calibrate --out DIR` wrote (a log is fitted first: `recoworld calibrate --data {path} --out DIR`, "
                f"if {path} is one), or leave {key} unset for the cache's world")
        elif not is_world(path):
            raise ExperimentConfigError(
                f"{key}={path} holds no calibrated world (no world.json there); give the folder that `recoworld "
                f"calibrate --out DIR` wrote, fit MovieLens-100K there first with `recoworld calibrate --out "
                f"{path}`, or leave {key} unset for the cache's world")
        elif (half := missing_world_file(path)) is not None:
            # A save is never half a world (world_folder.save): it was copied or cut by hand. The
            # loader's own error says how to fit a log's world again from that log, never from MovieLens-100K.
            raise ExperimentConfigError(f"{key}={path}: {half}, or leave {key} unset for the cache's world")


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled,
    )
