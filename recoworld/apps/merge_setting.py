"""A run's *setting*: what tells its values apart from other runs' once its seeds are pooled.

The overrides of its job (:func:`run_setting`, ``experiment.seeds`` and the
:func:`result_neutral` keys aside), the keys at which its saved config differs from that of
a run of the same overrides (:func:`with_config_columns`), and the segment of
``experiment.segments`` a value is of (:func:`run_rows`). The manual is
:mod:`recoworld.apps.merge`'s docstring.
"""

from __future__ import annotations

import json
from pathlib import Path

from recoworld.apps.merge_runs import METRICS_FILE

#: The override that names a run's seeds: runs differing only by it are pooled.
SEEDS_KEY = "experiment.seeds"
#: The column of the rows of ``experiment.segments``, and its value for the whole population.
SEGMENT_KEY = "segment"
ALL_USERS = "(all)"
#: In a column of saved-config keys: a run without a ``status.json``, and a key its config lacks.
UNKNOWN, ABSENT = "(unknown)", "(absent)"
#: The columns of :func:`run_rows` that are no part of a setting.
ROW_FIELDS = ("run", "agent", "metric", "seed", "value")


def result_neutral(key: str) -> bool:
    """Whether an override of ``key`` changes no row of a run's log, and so is no part of a
    setting: the keys of ``experiment`` outside what a resumed run must repeat
    (:data:`~recoworld.apps.run.checks.EXPERIMENT_IDENTITY`: ``resume``, ``executor``,
    ``progress``, ``plots``...) and the :data:`~recoworld.apps.run.checks.OPERATIONAL_LLM_KEYS`
    of an ``llm`` node."""
    from recoworld.apps.run.checks import EXPERIMENT_IDENTITY, OPERATIONAL_LLM_KEYS

    node, _, leaf = key.rpartition(".")
    if node == "experiment":
        return leaf not in (*EXPERIMENT_IDENTITY, "agents")
    return (node == "llm" or node.endswith(".llm")) and leaf in OPERATIONAL_LLM_KEYS


def run_setting(run: Path) -> dict[str, str]:
    """The overrides of the job that wrote ``run`` (``key -> value``, :func:`run_overrides`),
    ``experiment.seeds`` and the :func:`result_neutral` keys aside."""
    setting = {}
    for override in run_overrides(run):
        key, _, value = str(override).partition("=")
        key = key.lstrip("+~")
        if key != SEEDS_KEY and not result_neutral(key):
            setting[key] = value
    return setting


def run_overrides(run: Path) -> list:
    """The command line's overrides of the job that ran ``run``: the ``overrides`` its
    ``status.json`` keeps, written by the run itself once it started. Not
    ``.hydra/overrides.yaml`` first: it is Hydra's, which ``recoworld run`` puts back when a
    start into the folder is refused, but which a run of an earlier release left holding a
    refused command's overrides, as does a start killed while it was refused. A run whose
    status has none (of an earlier release, or a damaged one, which :func:`saved_config`
    reports) is read from that file; none at all gives ``[]``."""
    from omegaconf import OmegaConf

    from recoworld.apps.run.rundir import RunDirectoryError, read_status

    try:
        status = read_status(run) or {}
    except RunDirectoryError:
        status = {}
    if isinstance(overrides := status.get("overrides"), list):
        return overrides
    path = run / ".hydra" / "overrides.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else []


def read_metrics(run: Path) -> dict:
    """``run``'s ``metrics.json``.

    Raises:
        ValueError: the file is damaged or is not a run's ``metrics.json`` (the message names
            it and what is wrong).
    """
    path = run / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        from recoworld.apps.run.run_log import resume_advice

        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); if its run is complete, "
                         f"{resume_advice(run)} to write it again") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("agents"), dict):
        raise ValueError(f"{path} is not a recoworld run's {METRICS_FILE} (it has no 'agents' mapping)")
    return metrics


def run_rows(run: Path, metrics: dict) -> list[dict]:
    """One row per (segment, agent, metric, seed) of ``metrics``, ``run``'s
    :func:`read_metrics`, with its setting (``segment``: ``None`` for the whole population).

    Raises:
        ValueError: the file is not a run's ``metrics.json`` or holds no value (the message
            names it and what is wrong).
    """
    path = run / METRICS_FILE
    try:
        setting = run_setting(run)
    except Exception as err:  # noqa: BLE001 - YAML's and OmegaConf's errors alike
        raise ValueError(f"{run / '.hydra' / 'overrides.yaml'} cannot be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())})") from None
    rows = []
    try:
        populations = {None: metrics["agents"],
                       **{str(name): segment["agents"] for name, segment in (metrics.get("segments") or {}).items()}}
        for segment, agents in populations.items():
            for agent, summary in agents.items():
                for name, value in summary["metrics"].items():
                    for seed, x in zip(summary["seeds"], value["per_seed"], strict=True):
                        rows.append({**setting, SEGMENT_KEY: segment, "run": str(run), "agent": agent, "metric": name,
                                     "seed": int(seed), "value": float("nan") if x is None else float(x)})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a recoworld run's {METRICS_FILE} ({type(err).__name__}: {err})") from None
    if not rows:
        raise ValueError(f"{path} holds no value of any seed (no agent with a seed and a metric), so it is not a "
                         f"complete run's {METRICS_FILE}")
    return rows


def pooled_versions(versions: dict[str, object]) -> str | None:
    """Whether the runs' metrics may be pooled, by the episodes schema version of the logs
    they were computed from (``versions``: run -> the ``schema_version`` of its
    ``metrics.json``, :data:`recoworld.logs.SCHEMA_VERSION` when it was written; ``None``
    where it has none, a hand-made file: pooled with the versions this RecoWorld reads, named
    as version "none" beside one it does not). Runs of one version pool as before (``None``
    returned). Runs of versions that this RecoWorld reads as one log
    (:data:`~recoworld.logs.READABLE_VERSIONS`: an earlier one lacks only columns that later
    ones added, and a column changes meaning only with a version this RecoWorld does not
    read) pool too: the returned line names them, for the console.

    Raises:
        ValueError: the versions differ and one is not read by this RecoWorld (a newer
            RecoWorld wrote it, say): whether its metrics mean what the others' do is
            unknown here. The message names each version, its runs and the fix.
    """
    from recoworld.logs import READABLE_VERSIONS, SCHEMA_VERSION

    by_version: dict[str, list[str]] = {}
    for run, version in versions.items():
        by_version.setdefault("none" if version is None else str(version), []).append(run)
    unread = [version for version in by_version if version not in (*READABLE_VERSIONS, "none")]
    if not unread:  # a run without a version (a hand-made metrics.json) pools with any this RecoWorld reads
        by_version.pop("none", None)
    if len(by_version) < 2:
        return None
    groups = " and ".join(f"version {version} ({_some(runs)})" for version, runs in
                          sorted(by_version.items(), key=lambda pair: _version_order(pair[0])))
    if unread:
        raise ValueError(f"the runs' metrics come from episodes logs of different schema versions, {groups}, and this "
                         f"RecoWorld reads versions {', '.join(READABLE_VERSIONS)} only, so whether the metrics of "
                         f"version {', '.join(unread)} mean what the others' do is unknown here; merge them with the "
                         f"RecoWorld release that wrote version {', '.join(unread)} if it reads the others, rerun "
                         "those runs with this one, or merge each version's runs on its own, each with its own --out")
    lacking = "; ".join(f"version {version} lacks only {', '.join(READABLE_VERSIONS[version])}"
                        for version in sorted(by_version, key=_version_order) if READABLE_VERSIONS[version])
    return (f"runs of episodes schema {groups} are pooled: this RecoWorld reads them as one log of version "
            f"{SCHEMA_VERSION}" + (f" ({lacking})" if lacking else ""))


def _version_order(version: str) -> tuple:
    """Versions in number order ("2" before "10"), the unnumbered after them ("²" among them:
    ``isdigit`` takes it, ``int`` does not)."""
    return (0, int(version), "") if version.isdecimal() else (1, 0, version)


def _some(runs: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``runs``, and how many more."""
    return ", ".join(runs[:shown]) + (f" and {len(runs) - shown} more" if len(runs) > shown else "")


def saved_config(run: Path) -> dict | None:
    """The config that ``run`` ran, as its ``status.json`` keeps it (resolved, result-neutral
    keys left out); ``None`` without one.

    Raises:
        ValueError: the ``status.json`` is damaged (the message names it).
    """
    from recoworld.apps.run.rundir import RunDirectoryError, read_status

    try:
        status = read_status(run)
    except RunDirectoryError:
        raise ValueError(f"{run / 'status.json'} is damaged, so the config {run} ran is unknown") from None
    return None if status is None else status.get("config")


def with_config_columns(long, configs: dict[str, dict | None]):
    """``long`` (the runs' :func:`run_rows`) with a column for each key of the saved configs
    (``configs``: run -> :func:`saved_config`) at which runs of the same overrides and agent
    differ, holding each run's value (:mod:`recoworld.apps.merge`), and those keys."""
    overrides = [c for c in long.columns if c not in (*ROW_FIELDS, SEGMENT_KEY)]
    pairs = long[["run", "agent", *overrides]].fillna("(default)").drop_duplicates(["run", "agent"])
    flat = {(run, agent): _setting_config(configs[run], agent) for run, agent in zip(pairs["run"], pairs["agent"])}
    settings: dict[tuple, list[dict]] = {}  # (agent, overrides) -> the saved configs known
    for pair in pairs.itertuples(index=False):
        if (config := flat[(pair.run, pair.agent)]) is not None:
            settings.setdefault((pair.agent, *pair[2:]), []).append(config)
    differing: list[str] = []
    for configs_of_setting in settings.values():
        for key in dict.fromkeys(key for config in configs_of_setting for key in config):
            values = {config.get(key, ABSENT) for config in configs_of_setting}
            if len(values) > 1 and key not in overrides and key not in differing:
                differing.append(key)
    long = long.copy()
    for key in differing:
        long[key] = [UNKNOWN if flat[pair] is None else flat[pair].get(key, ABSENT)
                     for pair in zip(long["run"], long["agent"])]
    return long, differing


def _setting_config(config: dict | None, agent: str) -> dict[str, str] | None:
    """``config`` (a saved one) as ``dotted key -> value`` for the rows of ``agent``: its
    ``agents`` entry under ``agent`` (the other agents decide none of its results), without
    ``experiment.seeds`` and the :func:`result_neutral` keys."""
    if config is None:
        return None
    tree = {**{key: value for key, value in config.items() if key != "agents"},
            "agent": (config.get("agents") or {}).get(agent)}
    return {key: value for key, value in _dotted(tree) if key != SEEDS_KEY and not result_neutral(key)}


def _dotted(tree, prefix: str = ""):
    """``(dotted key, value)`` of each leaf of ``tree``, the value as an override writes it."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _dotted(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree if isinstance(tree, str) else json.dumps(tree)
