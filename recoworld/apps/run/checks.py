"""What ``recoworld run`` checks before it touches the run directory, and what of a config a
resumed run must repeat.

- :func:`experiment_settings` refuses a root or ``experiment`` key that the schema lacks (one
  added with Hydra's ``+``, which Hydra lets through and the schema would drop) and constructs
  :class:`~recoworld.conf.schema.ExperimentConfig` from the composed config, which checks
  seeds, steps and threads (Hydra composes the schema without constructing it);
- :func:`check_required` (with :func:`check_arguments`: a world, simulator or agent key that
  its ``_target_`` does not take), :func:`check_world`, :func:`check_segments`,
  :func:`check_action_format` and :func:`check_overrides` refuse what the runner cannot do, and
  :func:`unknown_key_hint` adds to Hydra's refusal of an unknown key the keys it may have
  meant, in the words :func:`experiment_settings` uses for an added one;
- of those, the checks that read the composed config alone (:func:`check_overrides`,
  :func:`experiment_settings`, :func:`check_world`, :func:`check_segments`) need no torch:
  ``recoworld run`` makes them before it loads the runner, and the runner makes them again
  for its Python callers;
- :func:`run_identity` is the part of a config that decides the rows of the log, and
  :func:`config_differences` names the keys where two of them differ (a resumed run whose
  config differs from the saved one is refused with them) and the keys a newer RecoWorld
  added that take their default (which do not block a resume).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from recoworld.conf.schema import ExperimentConfig

#: The simulator whose population specs ``experiment.segments`` restrict.
CALIBRATED_USERS = "recoworld.simulators.calibrated.calibrated_users"
#: The generated catalog of ``world=synthetic``.
SYNTHETIC_CATALOG = "recoworld.catalog.Catalog.synthetic"
#: Where RecoWorld's own agents live; each one's ``act`` returns a slate of candidate positions.
OWN_AGENTS = "recoworld.agents."

#: Settings of a chat model (any ``llm`` node) that change how calls are made, paid for or
#: cached, not what the model answers: a resumed run may change them (e.g. raise a budget
#: that stopped the run, or point to the server's new address).
OPERATIONAL_LLM_KEYS = frozenset({
    "api_key", "api_key_env", "base_url", "n_threads", "batch_size", "cache_dir", "max_concurrency",
    "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "max_total_tokens", "max_cost_usd", "max_calls",
})

#: Keys of ``experiment`` that decide which rollouts run and what they log.
EXPERIMENT_IDENTITY = ("seeds", "steps", "log_candidates", "segments")


class ExperimentConfigError(ValueError):
    """The config asks for something the runner cannot do (the message says what to change)."""


def experiment_settings(cfg: DictConfig) -> ExperimentConfig:
    """``cfg.experiment`` as a checked :class:`ExperimentConfig`.

    Raises:
        ExperimentConfigError: a value is out of range; the message names the key, the
            value and the fix. Or a key of the root or of ``experiment`` that the schema
            (:class:`~recoworld.conf.schema.RecoWorldConfig`) lacks: Hydra's ``+`` adds it
            (``+experiment.stesp=5``), and the run would ignore it; the message names the key,
            the nearest one and the keys there are.
    """
    # Imported here: the schema pulls in Hydra's ConfigStore and the users' config modules
    # (torch-free, so recoworld run checks with it before the runner loads), which the readers
    # of a run directory (recoworld view, export, merge) never need.
    from recoworld.conf.schema import ExperimentConfig, RecoWorldConfig

    _refuse_added_keys(cfg, None, RecoWorldConfig)
    if isinstance(cfg.get("experiment"), DictConfig):
        _refuse_added_keys(cfg.experiment, "experiment", ExperimentConfig)
    try:
        settings = OmegaConf.to_object(cfg.experiment)
        if not isinstance(settings, ExperimentConfig):  # a plain mapping, not the schema's node
            settings = ExperimentConfig(**settings)
    except ValueError as err:
        raise ExperimentConfigError(str(err)) from None
    return settings


def _refuse_added_keys(node: DictConfig, parent: str | None, schema: type) -> None:
    """Refuse a key of ``node`` (the config at ``parent``, ``None`` for the root) that is no
    field of the dataclass ``schema``."""
    keys = [field.name for field in dataclasses.fields(schema)]
    for key in node.keys():
        if key not in keys:
            raise ExperimentConfigError(not_a_key(f"{parent}.{key}" if parent else str(key), keys))


def not_a_key(full_key: str, keys: Sequence[str]) -> str:
    """``KEY is not a key of `PARENT`; did you mean PARENT.NEAREST? Its keys: ...``: a key that
    the config at its parent lacks (``keys``: the ones it has), and the nearest of them."""
    parent, _, name = full_key.rpartition(".")
    keys = sorted(str(k) for k in keys)
    nearest = difflib.get_close_matches(name, keys, n=1)
    where = f"`{parent}`" if parent else "the config"
    return (f"{full_key} is not a key of {where}"
            + (f"; did you mean {parent + '.' if parent else ''}{nearest[0]}?" if nearest else ".")
            + f" Its keys: {', '.join(keys)}")


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse overrides of ``simulator.llm``: the LLM and hybrid users' chat model is the
    root ``llm`` node (``simulator.llm`` only refers to it), so there is one key for each
    setting."""
    for override in overrides:
        key = override_key(override)
        if key == "simulator.llm" or key.startswith("simulator.llm."):
            raise ExperimentConfigError(f"{override!r}: the simulator's chat model is the root llm node; "
                                        f"override llm{key[len('simulator.llm'):]} instead")


def override_key(override: str) -> str:
    """The key of a command-line override (``+a.b=1`` -> ``a.b``)."""
    return override.lstrip("+~").split("=", 1)[0]


def world_path_hint(argv: Sequence[str]) -> str | None:
    """For a run that Hydra refused because ``world=`` names a folder (a calibrated world's)
    rather than one of the world configs, the override that runs on that folder; ``None``
    when no ``world=`` override looks like a path."""
    for arg in argv:
        if override_key(arg) != "world" or "=" not in arg:
            continue
        value = arg.split("=", 1)[1]
        if "/" in value or "\\" in value or Path(value).is_dir():
            return (f"recoworld run: world={value} names a folder, but world= takes a world config "
                    f"(movielens, synthetic); to run on a calibrated world's folder give "
                    f"world=movielens world.path={value}")
    return None


def unknown_key_hint(argv: Sequence[str]) -> str | None:
    """For a run that Hydra refused because an override names a key the config lacks
    (``agent.alpah=1``), the keys that node has and the nearest to the one given; ``None``
    when that is not why (Hydra's own message then stands alone). Composes the config again,
    so it is asked only after a failure."""
    from hydra import compose, initialize_config_module
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:  # a sweep's first value stands for the sweep: the keys are the same
        overrides = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override()
                     else o.input_line for o in OverridesParser.create().parse_overrides(
                         [a for a in argv if not a.startswith("-") and not override_key(a).startswith("hydra")])]
    except Exception:  # noqa: BLE001 - overrides Hydra could not parse: its message says why
        return None

    def composed(chosen: Sequence[str]) -> DictConfig:
        with initialize_config_module("recoworld.conf", version_base="1.3"):
            return compose("config", overrides=list(chosen))

    try:
        composed(overrides)
        return None
    except ConfigCompositionException as error:
        cause = error.__cause__
        if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or not cause.full_key:
            return None
        full_key = cause.full_key
    except Exception:  # noqa: BLE001 - a hint is a nicety; Hydra has reported the error already
        return None
    parent, _, name = full_key.rpartition(".")
    try:
        node = composed([o for o in overrides if override_key(o) != full_key
                         and not override_key(o).startswith(f"{full_key}.")])
    except Exception:  # noqa: BLE001
        return None
    node = OmegaConf.select(node, parent) if parent else node
    if not OmegaConf.is_dict(node):
        return None
    return f"recoworld run: {not_a_key(full_key, list(node.keys()))}"


def check_required(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> None:
    """Refuse a config that leaves a required value (``???``, e.g. ``agent=sb3_model``'s
    ``load_path``) unset, before anything runs: building the object would otherwise stop the
    run in a traceback after its directory was started. So, for the same reason, does a key
    that a world, simulator or agent ``_target_`` does not take (:func:`check_arguments`)."""
    for part in ("world", "simulator", "env", "experiment"):
        node = cfg.get(part)
        for key in sorted(OmegaConf.missing_keys(node)) if isinstance(node, DictConfig) else ():
            raise ExperimentConfigError(f"{key} has no value (??? in the {part} config); give it on the command "
                                        f"line, e.g. {key}=VALUE")
    for name, agent in lineup.items():
        for key in sorted(OmegaConf.missing_keys(agent)):
            if cfg.get("agent") is not None:
                raise ExperimentConfigError(f"agent={name} requires {key} (??? in its config); give it on the "
                                            f"command line, e.g. {key}=VALUE")
            # The agents of experiment.agents take no agent.* overrides (resolve_lineup).
            raise ExperimentConfigError(f"agent={name} requires {key} (??? in its config), which an agent of "
                                        f"experiment.agents cannot be given; run it alone: agent={name} {key}=VALUE")
    check_arguments(cfg, lineup)


def check_arguments(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> None:
    """Refuse a key of the world, the simulator or an agent (or of a config nested in one, with
    its own ``_target_``) that its RecoWorld ``_target_`` does not take, before anything runs:
    a key added with Hydra's ``+`` (``+simulator.foo=1``) would otherwise stop the run, its
    directory started, in Python's ``TypeError`` or Hydra's wrapper of it. A target that takes
    any keyword (``**kwargs``) is not checked (building it refuses what it does not take), nor
    one outside RecoWorld: a plug-in's keys are
    :func:`~recoworld.apps.run.plugins.fit_plugin_config`'s to check."""
    for part in ("world", "simulator"):
        if isinstance(cfg.get(part), DictConfig):
            _check_target_arguments(cfg[part], part)
    for agent in lineup.values():
        _check_target_arguments(agent, "agent")


def _check_target_arguments(node: DictConfig, path: str) -> None:
    """Refuse a key of ``node`` (the config at ``path``) that its ``_target_`` does not take,
    in the words of the env's own check (``has no argument``); then the same for each config
    nested in it. Keys that start with ``_`` are Hydra's (``_target_``, ``_partial_``...)."""
    from recoworld.config_checks import did_you_mean

    target = node.get("_target_")
    known = _keywords(target) if isinstance(target, str) and target.startswith("recoworld.") else None
    for key in (str(k) for k in node.keys()) if known is not None else ():
        if key not in known and not key.startswith("_"):
            takes = f"its arguments are {', '.join(known)}" if known else "it takes no arguments"
            raise ExperimentConfigError(f"{path}.{key}: {target} has no argument {key!r}"
                                        f"{did_you_mean(key, known)}; {takes}")
    for key in node.keys():
        try:
            value = node[key]
        except Exception:  # noqa: BLE001 - an interpolation that does not resolve: building it says why
            continue
        if isinstance(value, DictConfig):
            _check_target_arguments(value, f"{path}.{key}")


def keyword_arguments(target) -> tuple[list[str], bool]:
    """The names ``target`` takes as keyword arguments (in the order its constructors name
    them), and whether it takes any name.

    A class's ``**kwargs`` are followed: into the dataclass that the class names as
    ``keyword_config`` (SlateQAgent's ``**config`` build a SlateQConfig), else up its bases'
    constructors (a subclass that hands them to ``super().__init__`` takes what that one
    names); ``**kwargs`` that end nowhere named (a function's) take any name."""
    named: dict[str, None] = {}  # in order, each once
    constructors = [(target, target)]  # (the class whose constructor it is, what to read the names of)
    if isinstance(target, type):  # the bases' constructors after the one the class itself calls
        defining = [c for c in target.__mro__ if "__init__" in vars(c)]
        constructors = [(defining[0], target)] + [(c, vars(c)["__init__"]) for c in defining[1:]]
    for owner, constructor in constructors:
        if constructor is object.__init__:
            return list(named), False
        parameters = inspect.signature(constructor).parameters
        named.update((name, None) for name, p in parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self")
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return list(named), False
        config = vars(owner).get("keyword_config") if isinstance(owner, type) else None
        if config is not None:
            named.update((field.name, None) for field in dataclasses.fields(config) if field.init)
            return list(named), False
    return list(named), True


def _keywords(target: str) -> list[str] | None:
    """The keyword arguments that ``target`` (a class or function) takes, in its signature's
    order; a class's ``**kwargs`` followed where they go (:func:`keyword_arguments`:
    up its bases' constructors, or into the dataclass it names as ``keyword_config``, as
    SlateQAgent's go to SlateQConfig). ``None`` where it takes any name (a function's
    ``**kwargs``) or has no signature to read (building it then says what is wrong)."""
    from hydra.utils import get_object

    try:
        names, any_name = keyword_arguments(get_object(target))
    except Exception:  # noqa: BLE001 - a target that does not import, or a builtin without a signature
        return None
    return None if any_name else names


def check_world(cfg: DictConfig) -> None:
    """Refuse the calibrated users on the generated catalog, before anything runs: their
    interests are fitted to the MovieLens movies' features, so on other items they mean
    nothing (and the simulator would refuse the catalog only once the first rollout starts,
    in the words of the Python API)."""
    if cfg.simulator.get("_target_") == CALIBRATED_USERS and cfg.world.get("_target_") == SYNTHETIC_CATALOG:
        raise ExperimentConfigError(
            "simulator=calibrated: the users fitted to MovieLens-100K rate the calibrated world's movies, but "
            "world=synthetic generates other items; use world=movielens, or another simulator on world=synthetic "
            "(simulator=statistical, llm or hybrid)")


def check_action_format(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> None:
    """Refuse ``env.action_format=scores`` for RecoWorld's own agents, before anything runs:
    each returns a slate (``env.slate_size`` candidate positions), which that env would refuse
    at the first step, deep in the rollout, as an action of the wrong shape. A plug-in agent
    may return one score per candidate, and is left to the env's own check."""
    if cfg.env.get("action_format", "slate") != "scores":
        return
    for name, agent in lineup.items():
        if str(agent.get("_target_", "")).startswith(OWN_AGENTS):
            raise ExperimentConfigError(
                f"env.action_format=scores makes the env take one score per candidate, but agent={name} returns a "
                "slate of env.slate_size candidate positions, as every RecoWorld agent does; leave "
                "env.action_format=slate (SB3 agents train on scores in an env of their own whatever it is)")


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


def run_identity(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> dict:
    """What a resumed run must repeat: the resolved world, simulator, env, device and
    kernel, the agents of the lineup, and ``experiment``'s :data:`EXPERIMENT_IDENTITY`,
    without the :data:`OPERATIONAL_LLM_KEYS` of any ``llm`` node. (Progress bars, plots and
    torch threads change no row of the log.)"""
    tree = {key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
            for key in ("world", "simulator", "env", "device", "kernel")}
    tree["agents"] = {name: OmegaConf.to_container(agent, resolve=True) for name, agent in lineup.items()}
    experiment = cfg.experiment
    tree["experiment"] = {key: OmegaConf.to_container(experiment[key], resolve=True)
                          if OmegaConf.is_config(experiment.get(key)) else experiment.get(key)
                          for key in EXPERIMENT_IDENTITY}
    return _without_operational_llm_keys(tree)


def _without_operational_llm_keys(tree, parent: str | None = None):
    if isinstance(tree, dict):
        return {key: _without_operational_llm_keys(value, key) for key, value in tree.items()
                if not (parent == "llm" and key in OPERATIONAL_LLM_KEYS)}
    if isinstance(tree, list):
        return [_without_operational_llm_keys(value) for value in tree]
    return tree


def config_differences(saved: Mapping, now: Mapping,
                       default: Callable[[], Mapping | None] | None = None) -> tuple[list[str], dict]:
    """Compare the identity of a saved run with that of the run resuming it.

    Args:
        default: gives the identity of the resuming run's config with no value set on the
            command line (``None`` when it cannot be known); called only when ``now`` holds
            keys that ``saved`` lacks.

    Returns:
        ``key: saved X, now Y`` for every dotted key whose value differs, and the keys
        ``saved`` lacks that take their default in ``now`` with their values: a RecoWorld
        newer than the saved run added them, and their default keeps what that run did. An
        absent key that is not at its default (set on the command line) is a difference.
    """
    before, after = _flatten(saved), _flatten(now)
    fresh = [key for key in after if key not in before]
    defaults = _flatten((default() if default is not None and fresh else None) or {})
    added = {key: after[key] for key in fresh if defaults.get(key, _ABSENT) == after[key]}
    differences = []
    for key in sorted(before.keys() | after.keys()):
        if key in added or before.get(key, _ABSENT) == after.get(key, _ABSENT):
            continue
        if key in before:
            was = repr(before[key])
        elif key in defaults:
            was = f"absent (a key added since that run; its default is {defaults[key]!r})"
        else:
            was = "absent"
        differences.append(f"{key}: saved {was}, now {repr(after[key]) if key in after else 'absent'}")
    return differences, added


_ABSENT = object()


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
