"""Plug-ins of ``recoworld run``: any importable agent or simulator class, and named configs
that installed packages register through entry points.

**Any importable class.** ``recoworld run agent._target_=my_pkg.MyAgent`` and
``simulator._target_=my_pkg.MyUsers`` build that class. With no ``agent=NAME`` chosen, the
``agent.KEY=VALUE`` overrides start a fresh agent config (:func:`plugin_overrides` turns them
into Hydra's ``+agent.KEY=VALUE``). A simulator class gets ``catalog=`` from the run, and
the keys of the simulator config it replaced (``path``, ``population``, ``device``...) only
where its constructor names them (itself, a base class's constructor that its ``**kwargs``
reach, or the dataclass that the class names as ``keyword_config`` when its ``**kwargs``
build one: :func:`~recoworld.apps.run.checks.keyword_arguments`): :func:`fit_plugin_targets`
leaves out, with a logged note, the keys a class outside RecoWorld does not take. A key you set yourself
(``+simulator.budget=5``, ``agent.temperature=0.3``), or that a plug-in's own config gives,
must be taken: one the class does not take stops the run, naming the key and the arguments
the class takes, so that a misspelt key is an error, never a silent default (RecoWorld's own
classes keep their strict check too). A ``_target_`` that does not import stops the run before it starts,
naming the module that is missing, and so does a class that is not a
``recoworld.agents.Recommender`` (an agent) or a ``recoworld.simulators.UserSimulator`` (a
simulator): the run calls their methods. Each agent that ``experiment.agents`` lists is
checked so too, as ``agent=NAME`` would be, before the run starts.

**Entry points.** An installed distribution registers named configs in the groups
``recoworld.agents`` and ``recoworld.simulators``; in its ``pyproject.toml``::

    [project.entry-points."recoworld.agents"]
    my_agent = "my_pkg.configs:my_agent"

where ``my_agent`` is a function returning the config as a dict (with its ``_target_``), or
such a dict itself. :func:`register_plugins`, called when ``recoworld run`` starts, stores
each in Hydra's ConfigStore, so ``recoworld run agent=my_agent`` and
``experiment.agents=[random,my_agent]`` find it like a file of ``conf/agent/``. A name that
RecoWorld already ships is refused, naming the distribution.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class PluginConflict(ValueError):
    """Two installed distributions, or a distribution and RecoWorld itself, claim one config
    name: ``recoworld run`` stops with the message, which names both and the fix."""


#: Entry-point group -> the Hydra config group its configs join.
GROUPS = {"recoworld.agents": "agent", "recoworld.simulators": "simulator"}


def plugin_configs() -> dict[str, dict[str, dict]]:
    """Per Hydra group, the configs that installed distributions register, by name.

    An entry point that fails to load, or gives no dict config with a ``_target_``, is left
    out with a warning naming it, its distribution and the fix: one broken package must not
    take every other plug-in, and ``recoworld run`` itself, down with it.

    Raises:
        ValueError: two distributions register one name in one group.
    """
    configs: dict[str, dict[str, dict]] = {group: {} for group in GROUPS.values()}
    owners: dict[tuple[str, str], str] = {}
    for entry_group, group in GROUPS.items():
        for entry in entry_points(group=entry_group):
            distribution = entry.dist.name if entry.dist is not None else "an unknown distribution"
            where = f"entry point {entry.name} = {entry.value} (group {entry_group}, distribution {distribution})"
            try:
                loaded = entry.load()
                config = loaded() if callable(loaded) else loaded
            except Exception as error:  # noqa: BLE001 - any error of a third party's code
                log.warning("skipping %s: it failed to load (%s: %s); fix or uninstall %s", where,
                            type(error).__name__, error, distribution)
                continue
            if not isinstance(config, Mapping) or "_target_" not in config:
                log.warning("skipping %s: it gave %s; it must be (or return) a dict config with a _target_, e.g. "
                            "{'_target_': 'my_pkg.MyAgent'}", where, type(config).__name__)
                continue
            if (group, entry.name) in owners:
                raise PluginConflict(f"{group}={entry.name} is registered by both {owners[group, entry.name]} and "
                                 f"{distribution}; uninstall one, or rename its entry point")
            owners[group, entry.name] = distribution
            configs[group][entry.name] = dict(config)
    return configs


def register_plugins() -> dict[str, list[str]]:
    """Store every entry-point config in Hydra's ConfigStore; returns the names per group.

    Raises:
        ValueError: a plug-in's name is one of RecoWorld's own configs of that group.
    """
    from importlib.resources import files

    store = ConfigStore.instance()
    registered = {}
    for group, configs in plugin_configs().items():
        shipped = {path.name.removesuffix(".yaml") for path in files("recoworld.conf").joinpath(group).iterdir()}
        for name, config in configs.items():
            if name in shipped:
                raise PluginConflict(f"the plug-in config {group}={name} is also one of RecoWorld's own "
                                 f"(conf/{group}/{name}.yaml); register it under another name")
            store.store(group=group, name=name, node=config)
        registered[group] = sorted(configs)
    return registered


def plugin_overrides(overrides: Sequence[str]) -> list[str]:
    """``overrides`` with ``agent.KEY=VALUE`` made ``+agent.KEY=VALUE`` when no ``agent=NAME``
    is chosen (the default agent is null, a node Hydra cannot add keys to otherwise)."""
    keys = [o.split("=", 1)[0] for o in overrides]
    if any(key.lstrip("+~") == "agent" or key.startswith("agent@") for key in keys):
        return list(overrides)
    return [f"+{o}" if o.startswith("agent.") else o for o in overrides]


def fit_plugin_targets(cfg: DictConfig, overrides: Sequence[str] | None = None) -> None:
    """Fit ``cfg.simulator`` and ``cfg.agent`` to their ``_target_``, a class or function
    outside RecoWorld (see the module's docstring; :func:`fit_plugin_config` for each).

    ``overrides`` are the command line's (Hydra's own, when ``None`` inside ``recoworld run``).

    Raises:
        ExperimentConfigError: as :func:`fit_plugin_config`.
    """
    if overrides is None:
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else ()
    for group in ("simulator", "agent"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            fit_plugin_config(node, group, overrides)


def fit_plugin_config(node: DictConfig, group: str, overrides: Sequence[str] = ()) -> None:
    """Fit one config of ``group`` (``agent`` or ``simulator``) to its ``_target_`` where that
    is outside RecoWorld: ``cfg.agent`` and ``cfg.simulator`` (:func:`fit_plugin_targets`), and
    each agent that ``experiment.agents`` lists
    (:func:`~recoworld.apps.run.runner.resolve_lineup`), before the run starts.

    ``overrides`` are the command line's: a key set there, or any key of a config whose
    ``_target_`` was not swapped there, is meant for the target; the other keys came with the
    config whose ``_target_`` was swapped, and are left out where the target does not take them.

    Raises:
        ExperimentConfigError: a key meant for the target that it does not take, a target
            that does not import, or a class that does not subclass its group's base
            (:data:`BASES`).
    """
    from recoworld.apps.run.checks import ExperimentConfigError, keyword_arguments, override_key

    target = node.get("_target_")
    if not target or target.startswith("recoworld."):
        return
    built = _imported(target, group)
    _check_base(built, target, group)
    try:
        named, any_name = keyword_arguments(built)
    except (TypeError, ValueError):  # no signature to read: instantiate calls it as it is
        return
    set_here = {key.split(".")[1] for key in map(override_key, overrides) if key.startswith(f"{group}.")}
    swapped = "_target_" in set_here
    extra = [key for key in node if key not in named and not str(key).startswith("_")]
    meant = [key for key in extra if key in set_here or not swapped]
    if meant and not any_name:
        takes = f"it takes {', '.join(sorted(named))}" if named else "it takes no arguments"
        raise ExperimentConfigError(f"{target} takes no argument {meant[0]!r} ({group}.{meant[0]}); {takes}: "
                                    "check the key's spelling")
    inherited = [key for key in extra if key not in meant]
    if inherited:
        log.info("%s does not take %s; leaving them out of %s", target,
                 ", ".join(f"{group}.{key}" for key in inherited), group)
        with open_dict(node):
            for key in inherited:
                del node[key]


def _imported(target: str, group: str):
    """The object that ``target`` (``package.module.Name``) names: refused, before the run
    starts, with an :class:`ExperimentConfigError` naming the module that is not there (a
    misspelt target, or a dependency the plug-in's package lacks) or the missing name. An
    error that the plug-in's own code raises as it is imported goes up with its traceback."""
    from recoworld.apps.run.checks import ExperimentConfigError

    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        module = ".".join(parts[:cut])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and (module == error.name or module.startswith(error.name + ".")):
                continue  # that prefix is no module: a shorter one may be
            raise ExperimentConfigError(
                f"{group}._target_={target}: importing {module} failed, as it needs the module {error.name!r}, "
                f"which is not installed; install it (a dependency of the package {parts[0]})") from None
        break
    else:
        raise ExperimentConfigError(f"{group}._target_={target}: no module {parts[0]!r} is installed; check the "
                                    f"spelling, or install the package that provides it (pip install -e PATH)")
    for depth, name in enumerate(parts[cut:], start=cut):
        if not hasattr(found, name):
            raise ExperimentConfigError(f"{group}._target_={target}: {'.'.join(parts[:depth])} has no {name!r}; "
                                        "check the spelling")
        found = getattr(found, name)
    return found


#: Per group, the base class that a plug-in class must subclass, and what ``recoworld run`` calls on it.
BASES = {"agent": ("recoworld.agents.Recommender", "setup, act, update"),
         "simulator": ("recoworld.simulators.UserSimulator", "reset, respond, close")}
#: Per group, where the README says how to write a plug-in of it.
GUIDES = {"agent": "README: A new agent is a subclass of recoworld.agents.Recommender",
          "simulator": "README: Plug in your own simulator, and recoworld.check_simulator to see what else it needs"}


def _base(group: str) -> type:
    module, name = BASES[group][0].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _check_base(built, target: str, group: str) -> None:
    """Refuse, before the run starts, a plug-in class that does not subclass its group's base
    (:data:`BASES`): the run would otherwise start, then fail on the first method of the base
    that the class lacks, with an ``AttributeError`` that does not say why. A function (a
    factory) is not checked: what it returns is known only once it is called
    (:func:`check_returned`)."""
    from recoworld.apps.run.checks import ExperimentConfigError

    if isinstance(built, type) and not issubclass(built, _base(group)):
        base_name, methods = BASES[group]
        raise ExperimentConfigError(f"{group}._target_={target} is a class that does not subclass {base_name}, "
                                    f"whose methods ({methods}) recoworld run calls: subclass it ({GUIDES[group]})")


def check_returned(made, factory, group: str) -> None:
    """Refuse what ``factory`` (a ``_target_`` of ``group``, as Hydra's ``_partial_`` built it,
    or its text) returned when it is no instance of its group's base (:data:`BASES`): the run
    calls the base's methods on it, and would fail on the first one it lacks, with an
    ``AttributeError`` that names neither the factory nor the fix.

    Raises:
        ExperimentConfigError: naming the factory, the type it returned and the fix.
    """
    from recoworld.apps.run.checks import ExperimentConfigError

    if isinstance(made, _base(group)):
        return
    base_name, methods = BASES[group]
    kind = type(made)
    what = "None" if made is None else "an instance of " + (
        kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}")
    raise ExperimentConfigError(
        f"{group}._target_={_qualified(factory)} returned {what}, which is no {base_name}, whose methods ({methods}) "
        f"recoworld run calls: return an instance of a subclass of it ({GUIDES[group]})")


def _qualified(factory) -> str:
    """``package.module.name`` of ``factory``, or of the function a ``functools.partial`` wraps;
    a ``_target_`` given as its text is that text."""
    if isinstance(factory, str):
        return factory
    function = getattr(factory, "func", factory)
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(factory)


def target_name(agent: Mapping) -> str:
    """The lineup's name of an agent given by its class alone (``agent._target_=my_pkg.MyAgent``,
    no ``agent=NAME``): the class's own ``name`` (as RecoWorld's agents set it), else the
    class's name; ``agent`` where there is no class to ask."""
    from recoworld.agents.base import Recommender

    target = agent.get("_target_") if isinstance(agent, Mapping) else None
    try:
        cls = get_object(target) if isinstance(target, str) else None
    except Exception:  # noqa: BLE001 - building the agent will name the import error
        cls = None
    if not isinstance(cls, type):
        return "agent"
    name = getattr(cls, "name", None)
    own = isinstance(name, str) and name != Recommender.name and re.fullmatch(r"[A-Za-z0-9_.-]+", name)
    return name if own else cls.__name__
