"""The experiment runner behind ``recoworld run``: a lineup of agents over several seeds.

From a composed config (see ``conf/config.yaml``) it builds the world's catalog once, then
for every agent of the lineup and every seed a fresh simulator, vector env and agent —
all with ``hydra.utils.instantiate`` from their ``_target_`` — and runs
:func:`~recoworld.experiment.loop.rollout`. The run directory receives:

- ``lineup.yaml``: the resolved config of every agent that ran;
- ``episodes.parquet``: every interaction, in the schema of :mod:`recoworld.logs`;
- ``metrics.json``: per agent, each metric of :mod:`recoworld.metrics` as a mean across
  seeds with its 95% Student-t interval and the per-seed values, plus the retention curve;
- ``returns.png``, ``learning.png`` and ``retention.png`` (see :mod:`recoworld.experiment.report`).

Hydra writes the composed config to ``.hydra/`` next to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recoworld.catalog import Catalog
from recoworld.experiment import report
from recoworld.experiment.loop import RolloutResult, rollout
from recoworld.logs import SCHEMA_VERSION, EpisodeLog, read_log
from recoworld.metrics import METRICS, summarize

#: The simulator whose population specs ``experiment.segments`` restrict.
CALIBRATED_USERS = "recoworld.simulators.calibrated.calibrated_users"
log = logging.getLogger(__name__)


class ExperimentConfigError(ValueError):
    """The config asks for something the runner cannot do (the message says what to change)."""


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
    """
    if cfg.agent is not None:
        return {selected or "agent": cfg.agent}
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
    options = GlobalHydra.instance().config_loader().get_group_options("agent")
    unknown = [n for n in names if n not in options]
    if unknown:
        raise ExperimentConfigError(f"experiment.agents names {unknown[0]!r}, but there is no agent config "
                                    f"{unknown[0]!r}; available: {', '.join(options)} "
                                    f"(add one as conf/agent/{unknown[0]}.yaml)")
    kept = [o for o in overrides if not _is_agent_override(o)]
    return {name: compose(config_name=config_name, overrides=[*kept, f"agent={name}"]).agent for name in names}


def _is_agent_override(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "agent" or key.startswith(("agent.", "agent@"))


def run_experiment(
    cfg: DictConfig,
    lineup: dict[str, DictConfig],
    run_dir: str | Path,
    console: Console | None = None,
) -> dict:
    """Run every agent of ``lineup`` over ``cfg.experiment.seeds`` and write the run directory.

    Returns the content of ``metrics.json``.
    """
    experiment = cfg.experiment
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    seeds = [int(s) for s in experiment.seeds]
    if not seeds:
        raise ExperimentConfigError("experiment.seeds is empty; give at least one seed, e.g. experiment.seeds=[0]")
    if experiment.steps < 1:
        raise ExperimentConfigError(f"experiment.steps={experiment.steps}; a rollout needs at least one step")
    resolved = {name: OmegaConf.to_container(agent, resolve=True) for name, agent in lineup.items()}
    OmegaConf.save(OmegaConf.create(resolved), run_dir / "lineup.yaml")
    log_path = run_dir / "episodes.parquet"
    threads = torch.get_num_threads()
    torch.set_num_threads(experiment.torch_threads)
    try:
        catalog, results = _run_lineup(cfg, lineup, seeds, log_path, console)
    finally:
        torch.set_num_threads(threads)

    features = catalog.features.cpu().numpy()
    popularity = catalog.popularity.cpu().numpy()
    frame = read_log(log_path)
    agents = summarize(frame, features, popularity)
    for name, summary in agents.items():
        summary["seconds"] = round(sum(r.seconds for r in results if r.agent == name), 3)
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "world": {"name": catalog.name, "n_items": catalog.n_items},
        "num_envs": int(cfg.env.num_envs),
        "steps": int(experiment.steps),
        "seeds": seeds,
        "interval": "95% Student-t interval of the mean across seeds (per_seed holds the values)",
        "metric_definitions": METRICS,
        "agents": agents,
    }
    if experiment.get("segments"):
        metrics["segments"] = _run_segments(cfg, lineup, seeds, run_dir, console, features, popularity)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if experiment.plots:
        report.plot_returns(frame, run_dir / "returns.png")
        report.plot_learning_curves(frame, run_dir / "learning.png")
        report.plot_retention(agents, run_dir / "retention.png")
    report.print_summary(metrics, console, run_dir)
    return metrics


def _run_lineup(cfg: DictConfig, lineup: dict[str, DictConfig], seeds: list[int], log_path: Path,
                console: Console) -> tuple[Catalog, list[RolloutResult]]:
    """Every rollout of the run, one fresh simulator, env and agent each, logged to ``log_path``."""
    experiment = cfg.experiment
    catalog = instantiate(cfg.world)
    make_simulator = instantiate(cfg.simulator, _partial_=True, _convert_="object")
    make_env = instantiate(cfg.env, _partial_=True, _convert_="object")
    log.info("world %s (%d items), %d users, lineup %s, seeds %s", catalog.name, catalog.n_items,
             cfg.env.num_envs, list(lineup), seeds)

    results: list[RolloutResult] = []
    with EpisodeLog(log_path) as episode_log, _progress(console, experiment.progress) as progress:
        for name, agent_cfg in lineup.items():
            task = progress.add_task(name, total=len(seeds) * experiment.steps)
            for seed in seeds:
                env = make_env(simulator=make_simulator(catalog=catalog))
                agent = instantiate(agent_cfg, _convert_="object")
                results.append(rollout(
                    env, agent, experiment.steps, seed, logger=episode_log, label=name,
                    progress=lambda n, task=task: progress.advance(task, n),
                    log_candidates=experiment.log_candidates,
                ))
                env.close()
    return catalog, results


def _run_segments(cfg: DictConfig, lineup: dict[str, DictConfig], seeds: list[int], run_dir: Path,
                  console: Console, features, popularity) -> dict[str, dict]:
    """The lineup again on each of ``experiment.segments`` (named population specs), the
    simulator's population restricted to the segment; each segment's log is
    ``segments/<name>/episodes.parquet``. Returns ``{name: {"population", "agents"}}``."""
    if cfg.simulator.get("_target_") != CALIBRATED_USERS:
        raise ExperimentConfigError(
            f"experiment.segments selects fitted users by population specs, but the simulator is "
            f"{cfg.simulator.get('_target_')}; use simulator=calibrated (world=movielens)")
    base = OmegaConf.to_container(cfg.simulator.population, resolve=True) if cfg.simulator.population else {}
    out = {}
    for name, spec in cfg.experiment.segments.items():
        spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec
        if not isinstance(spec, dict):
            raise ExperimentConfigError(f"experiment.segments.{name}={spec!r}; a segment is a population spec "
                                        "such as {patience: low}")
        segment = cfg.copy()
        segment.simulator.population = {**base, **spec}
        log_path = run_dir / "segments" / str(name) / "episodes.parquet"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.experiment.torch_threads)
        try:
            _run_lineup(segment, lineup, seeds, log_path, console)
        finally:
            torch.set_num_threads(threads)
        out[str(name)] = {"population": segment.simulator.population and
                          OmegaConf.to_container(segment.simulator.population),
                          "agents": summarize(read_log(log_path), features, popularity)}
    return out


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled,
    )
