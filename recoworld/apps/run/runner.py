"""The experiment runner behind ``recoworld run``: a lineup of agents over several seeds.

From a composed config (see ``conf/config.yaml``) it builds the world's catalog once, then
for every agent of the lineup and every seed a fresh simulator, vector env and agent —
all with ``hydra.utils.instantiate`` from their ``_target_`` — and runs
:func:`~recoworld.envs.rollout.rollout`. The run directory receives:

- ``lineup.yaml``: the resolved config of every agent that ran;
- ``episodes.parquet``: every interaction, in the schema of :mod:`recoworld.logs`;
- ``metrics.json``: per agent, each metric of :mod:`recoworld.metrics` as a mean across
  seeds with its 95% Student-t interval and the per-seed values, plus the retention curve,
  and under ``simulator`` the counters of :meth:`UserSimulator.metrics
  <recoworld.simulators.base.UserSimulator.metrics>` per rollout in the same form (for LLM
  and hybrid users: LLM calls, tokens, cache hits, latency, parse failures, fallback steps);
- ``returns.png``, ``learning.png`` and ``retention.png`` (see :mod:`recoworld.apps.run.report`).

Hydra writes the composed config to ``.hydra/`` next to them. Each simulator is closed
(:meth:`~recoworld.simulators.base.UserSimulator.close`) when its rollout ends, and what the
simulator config builds once for all rollouts — the chat model of LLM users — when the run
ends, errors included. API keys never reach the run directory: :func:`redact_secrets`
blanks them in ``lineup.yaml`` and ``recoworld run`` in the files of ``.hydra/``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack, closing
from pathlib import Path

import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recoworld.apps.calibrate.fit import ensure_world
from recoworld.apps.run import report
from recoworld.catalog import Catalog
from recoworld.envs.rollout import EachStep, RolloutResult, rollout
from recoworld.logs import SCHEMA_VERSION, EpisodeLog, read_log
from recoworld.metrics import METRICS, seed_summary, summarize

#: The simulator whose population specs ``experiment.segments`` restrict.
CALIBRATED_CATALOG = "recoworld.simulators.calibrated.calibrated_catalog"
CALIBRATED_USERS = "recoworld.simulators.calibrated.calibrated_users"
log = logging.getLogger(__name__)

#: What replaces an API key in a file of the run directory.
REDACTED = "<redacted>"
_KEY_OVERRIDE = re.compile(r"(api_key=)[^,]*")


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
    key = _override_key(override)
    return key == "agent" or key.startswith(("agent.", "agent@"))


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse overrides of ``simulator.llm``: the LLM and hybrid users' chat model is the
    root ``llm`` node (``simulator.llm`` only refers to it), so there is one key for each
    setting."""
    for override in overrides:
        key = _override_key(override)
        if key == "simulator.llm" or key.startswith("simulator.llm."):
            raise ExperimentConfigError(f"{override!r}: the simulator's chat model is the root llm node; "
                                        f"override llm{key[len('simulator.llm'):]} instead")


def redact_secrets(tree):
    """``tree`` (plain dicts, lists and scalars) with every API key blanked: the value of a
    set ``api_key`` entry (an interpolation such as ``${oc.env:MY_KEY}`` names the variable,
    not the key, and is kept), and ``VALUE`` in strings holding ``...api_key=VALUE`` (the
    command line's overrides, as Hydra saves them)."""
    if isinstance(tree, dict):
        return {k: REDACTED if k == "api_key" and isinstance(v, str) and not v.startswith("${")
                else redact_secrets(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact_secrets(v) for v in tree]
    if isinstance(tree, str):
        return _KEY_OVERRIDE.sub(rf"\g<1>{REDACTED}", tree)
    return tree


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
    check_segments(cfg)
    resolved = {name: OmegaConf.to_container(agent, resolve=True) for name, agent in lineup.items()}
    OmegaConf.save(OmegaConf.create(redact_secrets(resolved)), run_dir / "lineup.yaml")
    log_path = run_dir / "episodes.parquet"
    threads = torch.get_num_threads()
    torch.set_num_threads(experiment.torch_threads)
    try:
        catalog, results, usage = _run_lineup(cfg, lineup, seeds, log_path, console)
    finally:
        torch.set_num_threads(threads)

    features = catalog.features.cpu().numpy()
    popularity = catalog.popularity.cpu().numpy()
    frame = read_log(log_path)
    agents = summarize(frame, features, popularity)
    for name, summary in agents.items():
        summary["seconds"] = round(sum(r.seconds for r in results if r.agent == name), 3)
        per_seed = usage[name]
        if any(per_seed):
            keys = dict.fromkeys(key for m in per_seed for key in m)
            summary["simulator"] = {key: seed_summary([m.get(key, float("nan")) for m in per_seed]) for key in keys}
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
                console: Console) -> tuple[Catalog, list[RolloutResult], dict[str, list[dict]]]:
    """Every rollout of the run, one fresh simulator, env and agent each, logged to ``log_path``;
    also each agent's simulator metrics, one dict per seed."""
    experiment = cfg.experiment
    ensure_calibrated(cfg)
    catalog = instantiate(cfg.world)
    make_env = instantiate(cfg.env, _partial_=True, _convert_="object")
    log.info("world %s (%d items), %d users, lineup %s, seeds %s", catalog.name, catalog.n_items,
             cfg.env.num_envs, list(lineup), seeds)

    results: list[RolloutResult] = []
    usage: dict[str, list[dict]] = defaultdict(list)
    with ExitStack() as run:
        # The simulator's nested configs (e.g. its chat model) are built here, once for all
        # rollouts; what of them can be closed is closed when the run ends.
        make_simulator = instantiate(cfg.simulator, _partial_=True, _convert_="object")
        for part in make_simulator.keywords.values():
            if callable(getattr(part, "close", None)):
                run.callback(part.close)
        episode_log = run.enter_context(EpisodeLog(log_path))
        progress = run.enter_context(_progress(console, experiment.progress))
        for name, agent_cfg in lineup.items():
            task = progress.add_task(name, total=len(seeds) * experiment.steps)
            for seed in seeds:
                with closing(make_simulator(catalog=catalog)) as simulator, \
                        closing(make_env(simulator=simulator)) as env:
                    agent = instantiate(agent_cfg, _convert_="object")
                    results.append(rollout(
                        env, agent, experiment.steps, seed, logger=episode_log, label=name,
                        hooks=[EachStep(lambda n, task=task: progress.advance(task, n))],
                        log_candidates=experiment.log_candidates,
                    ))
                    usage[name].append(simulator.metrics())
    return catalog, results, usage


def ensure_calibrated(cfg: DictConfig) -> None:
    """Fits the calibrated world on first use when the world or the simulator reads it."""
    paths = {cfg.world.get("path")} if cfg.world.get("_target_") == CALIBRATED_CATALOG else set()
    if cfg.simulator.get("_target_") == CALIBRATED_USERS:
        paths.add(cfg.simulator.get("path"))
    for path in paths:
        ensure_world(path)


def check_segments(cfg: DictConfig) -> None:
    """Refuse ``experiment.segments`` that the simulator cannot draw, before anything runs."""
    segments = cfg.experiment.get("segments")
    if not segments:
        return
    if cfg.simulator.get("_target_") != CALIBRATED_USERS:
        raise ExperimentConfigError(
            f"experiment.segments selects fitted users by population specs, but the simulator is "
            f"{cfg.simulator.get('_target_')}; use simulator=calibrated (world=movielens)")
    for name, spec in segments.items():
        if not isinstance(spec, DictConfig):
            raise ExperimentConfigError(f"experiment.segments.{name}={spec!r}; a segment is a population spec "
                                        "such as {patience: low}")


def _run_segments(cfg: DictConfig, lineup: dict[str, DictConfig], seeds: list[int], run_dir: Path,
                  console: Console, features, popularity) -> dict[str, dict]:
    """The lineup again on each of ``experiment.segments`` (named population specs), the
    simulator's population restricted to the segment; each segment's log is
    ``segments/<name>/episodes.parquet``. Returns ``{name: {"population", "agents"}}``."""
    base = OmegaConf.to_container(cfg.simulator.population, resolve=True) if cfg.simulator.population else {}
    out = {}
    for name, spec in cfg.experiment.segments.items():
        spec = OmegaConf.to_container(spec, resolve=True)
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
