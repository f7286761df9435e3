"""The policy of ``recoworld ope evaluate``: loaded from a name, and asked about logged rows.

``--policy`` is one of

* the name of an agent config, ``conf/agent/NAME.yaml``, instantiated with Hydra (with the
  ``--world`` and any ``--override`` given, as ``recoworld run agent=NAME`` would);
* ``module:Attribute``, a class (instantiated with the ``--policy-arg KEY=VALUE`` given) or
  an object, of an importable module (the current folder's included) or of a ``.py`` file
  (``policies/mine.py:MyBandit``, which imports the modules beside it by their name, but for
  one that an installed module of its name hides: the error names both);
* a path to a Stable-Baselines3 model ``.zip`` (``--sb3-algo`` names its algorithm),
  wrapped in :class:`~recoworld.agents.sb3.SB3Recommender`.

On a RecoWorld log the policy is a :class:`~recoworld.agents.base.Recommender`, set up on
an env with the log's catalog, slate length and candidates, and :class:`PolicyOnLog` asks
it about each logged row. On a table or the Open Bandit Dataset it is a *bandit policy*: an
object with ``action_dist(rows: pandas.DataFrame, n_actions, n_positions)`` returning the
``[n, n_actions, n_positions]`` (or ``[n, n_actions]``) probabilities of every action for
each logged row (the row's columns are its context). It is asked twice, and probabilities
that change between the calls (a sampled choice, an unseeded generator) are warned of: the
report would not repeat. An error the policy raises, on import, construction or call, is a
usage error naming it and the file and line that raised it.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recoworld.types import Observation

#: Draws of ``act`` behind the propensities of a policy that states none.
ACT_DRAWS = 200


#: RecoWorld's packages, whose folders are not the user's code (an editable install maps the
#: repository's top-level agents/, envs/ and simulators/ into ``recoworld.*``).
OWN_PACKAGES = ("recoworld", "recoworld.agents", "recoworld.envs", "recoworld.simulators")


def raised(error: Exception, calls: int = 1) -> str:
    """``RuntimeError: boom (mypol.py, line 12)``: an error of the user's code, said in one
    line with where it was raised, in place of a traceback: the deepest frame below the
    ``calls`` that made the call (the caller's, and any helper of its own it went through)
    that is the user's, neither Python's nor an installed library's nor
    RecoWorld's own (a policy's ``obs["no_such_field"]`` raises in ``recoworld/types.py``,
    but the line to fix is the policy's); else, when every such frame is RecoWorld's (its
    own agents given as ``--policy``), the deepest of those."""
    import sysconfig
    import traceback

    libraries = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")})
    own = _own_folders()
    ours, users = [], []
    for frame in traceback.extract_tb(error.__traceback__)[calls:]:
        if os.path.realpath(frame.filename).startswith(own):
            ours.append(frame)
        elif not frame.filename.startswith((*libraries, "<")):  # "<frozen importlib._bootstrap>"
            users.append(frame)
    frame = (users or ours or [None])[-1]
    where = f" ({frame.filename}, line {frame.lineno})" if frame else ""
    return f"{type(error).__name__}: {error}{where}"


def _own_folders() -> tuple[str, ...]:
    """The folders of :data:`OWN_PACKAGES`, from their modules' files, each ending in a separator
    (``recoworld/`` is not ``recoworld_plugins/``)."""
    import importlib.util

    folders = set()
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)  # the package's file, without running its __init__
        if spec is not None and spec.origin:
            folders.add(os.path.join(os.path.dirname(os.path.realpath(spec.origin)), ""))
    return tuple(folders)


def load_object(spec: str, kwargs: dict):
    """``module:Attribute``: the attribute, instantiated with ``kwargs`` when it is a class."""
    module_name, _, attribute = spec.rpartition(":")  # a Windows path has a colon of its own
    if module_name.endswith(".py") and not Path(module_name).expanduser().is_file():
        raise ValueError(f"--policy {spec!r}: no such file {module_name}; give the path of the policy's .py file, or "
                         "module:Attribute of an importable module")
    try:
        target = getattr(_module(module_name), attribute)
    except Exception as error:  # noqa: BLE001 - the user's module may raise anything on import
        fix = "give module:Attribute of an importable module"
        if module_name.endswith(".py") and isinstance(error, ImportError):
            fix = (_hidden_neighbour(Path(module_name), error) or "fix the file's imports: modules beside it import "
                   "by their name; a package's module is given as package.module:Class")
        # below this frame and _module's: a module that is not found was raised nowhere to fix
        raise ValueError(f"--policy {spec!r}: cannot import {attribute!r} from {module_name!r} "
                         f"({raised(error, calls=2)}); {fix}") from None
    if not isinstance(target, type):
        return target
    try:
        return target(**kwargs)
    except Exception as error:  # noqa: BLE001 - the user's constructor may raise anything
        import inspect

        given = " ".join(f"--policy-arg {key}={value!r}" for key, value in kwargs.items()) or "no --policy-arg"
        raise ValueError(f"--policy {spec!r} with {given}: {attribute}() raised {raised(error)}; give --policy-arg "
                         f"KEY=VALUE for the arguments of {attribute}{inspect.signature(target)}") from None


def _hidden_neighbour(file: Path, error: ImportError) -> str | None:
    """``team/yaml.py beside it is hidden by the installed module yaml (...): rename it``,
    where the module that ``file`` failed to import from has a file or package of that name
    beside ``file``, but an installed module of the name was imported in its place: the
    file's folder is last on ``sys.path`` (:func:`_module`), although ``python team/mine.py``
    puts it first. ``None`` otherwise."""
    import sys

    top, folder = (error.name or "").partition(".")[0], file.expanduser().resolve().parent
    beside = [name for name in (f"{top}.py", top) if top and (folder / name).exists()]
    installed = sys.modules.get(top)
    origin = getattr(installed, "__file__", None)  # None: built in, which no file can replace
    if not beside or installed is None or (origin and Path(origin).resolve().is_relative_to(folder)):
        return None
    return (f"{file.parent / beside[0]} beside it is hidden by the installed module {top} ({origin or 'built in'}): "
            "rename it")


def _module(name: str):
    """The module ``name``, or the file ``name`` when it ends in ``.py`` (``policies/mine.py``).
    A module in the current folder imports as it does under ``python -m``, and a file imports
    the modules beside it as it does under ``python policies/mine.py``: the ``recoworld``
    script's own folder is first on ``sys.path``, not the current one nor the file's, which go
    last here, so that no file of theirs shadows an installed module."""
    import sys

    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        registered = _registered_name(path)
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        spec = importlib.util.spec_from_file_location(registered, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[registered] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[registered]
            raise
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    return importlib.import_module(name)


#: Loads of a policy file registered under a name of their own (:func:`_registered_name`).
_LOADS = itertools.count(1)


def _registered_name(path: Path) -> str:
    """The name a policy file's module is registered under, as an import would register it
    (dataclasses and pickle look a class's module up by name): the file's own, ``mine`` for
    ``mine.py``, where no other module imports by that name, so that a child process that has the
    file's folder on its path imports it back; else one of its own per load. A ``numpy.py``
    must not replace numpy, nor a ``scipy.py`` the scipy imported later, and a file loaded
    again must not take the name of its earlier load, whose objects pickle by it."""
    import sys

    stem = path.stem
    if stem.isidentifier() and stem not in sys.modules:
        found = importlib.util.find_spec(stem)  # the file itself, where its folder is on sys.path already
        if found is None or (found.origin and Path(found.origin).resolve() == path):
            return stem
    return f"_recoworld_policy_{stem}_{next(_LOADS)}"


def policy_kwargs(pairs: Sequence[str]) -> dict:
    """``KEY=VALUE`` pairs as keyword arguments, each value read as YAML (``0.5``, ``true``, ``[1, 2]``)."""
    import yaml

    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--policy-arg {pair!r}; write KEY=VALUE")
        if key in kwargs:
            raise ValueError(f"--policy-arg {key} is given twice ({kwargs[key]!r} and {value!r}); give it once")
        try:
            kwargs[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or "not YAML"
            raise ValueError(f"--policy-arg {pair!r}: the value {value!r} is not valid YAML ({problem}); quote a "
                             "string, write a list as [1, 2]") from None
    return kwargs


def load_agent(spec: str, kwargs: dict, world: str | None, overrides: list[str], sb3_algo: str):
    """The Recommender named by ``spec`` (module docstring) and the composed run config it came
    with (``None`` unless ``spec`` is an agent config name)."""
    if spec.endswith(".zip"):
        from recoworld.agents.sb3 import SB3Recommender, algorithm_class

        if not Path(spec).is_file():
            raise ValueError(f"--policy {spec}: no such file; give the path of a model saved by Stable-Baselines3")
        return SB3Recommender(model=algorithm_class(sb3_algo).load(spec, device="cpu")), None
    if ":" in spec:
        return load_object(spec, kwargs), None
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_module("recoworld.conf", version_base=None):
        options = GlobalHydra.instance().config_loader().get_group_options("agent")
        if spec not in options:
            raise ValueError(f"--policy {spec!r} is not an agent config (available: {', '.join(options)}), "
                             "module:Attribute, nor a .zip of Stable-Baselines3")
        world_override = [f"world={world}"] if world else []
        cfg = compose(config_name="config", overrides=[*world_override, *overrides, f"agent={spec}"])
    return instantiate(cfg.agent, **kwargs), cfg


class PolicyOnLog:
    """A Recommender asked about logged rows, with what the slate estimators need.

    * :meth:`propensities`: the agent's own (``"slate"``, and ``"position"`` and
      ``"cascade"`` where it gives them), from its ``evaluation_propensities`` where it has
      one: an agent that estimates its propensities (the Thompson samplers) reads them for
      the weight's numerator there, unbiased for the probabilities themselves, and in
      ``propensities`` for a logger's denominator, whose inverse is unbiased and which weighs
      too much as a numerator (:mod:`recoworld.agents.sampling`); when it states none, the frequencies of
      :data:`ACT_DRAWS` calls of ``act``; when it returns ones (the convention of
      deterministic agents, "what it chose"), 1 where its slate agrees with the logged one
      and 0 elsewhere.
    * :meth:`action_distribution` ``[B, C, K]``: the agent's own, else from ``act``.
    * :meth:`next_item_distribution` ``[B, K, C]``: the agent's own, or for a deterministic
      agent its item at each position; otherwise the position marginals, exact at the top
      position only (all that DM uses), and :attr:`exact_following` is False (cascade DR,
      which needs every position, is then skipped).

    Observations hold what a log keeps (candidates and their features); the other fields
    are those of a user's first step (empty history, no instruction), exact for step-0 rows.
    The agent's propensities are checked as the slate estimators will read them, and an
    error names them in its terms (``spec``, the ``--policy`` given, and the method that gave
    them and its key), not the estimators' ``evaluation_pscore*``.
    """

    def __init__(self, agent, template: dict, spec: str):
        self.agent, self.template, self.spec = agent, template, spec
        self.deterministic = False

    def full(self, obs: dict) -> Observation:
        n = len(obs["candidate_ids"])
        filled = {key: np.broadcast_to(value[:1], (n, *value.shape[1:])).copy()
                  for key, value in self.template.items() if key not in obs}
        return Observation({**filled, **obs})

    def propensities(self, obs, action):
        obs, action = self.full(obs), np.asarray(action)
        method = self.propensity_method
        given = getattr(self.agent, method)(obs, action)
        if given is not None and not ("slate" in given and np.all(np.asarray(given["slate"]) == 1.0)):
            # "position" and "cascade" are optional (Recommender.propensities): the estimators
            # that need one the agent leaves out are left out
            return self.checked(given, action, method)
        m = 1 if given is not None else ACT_DRAWS
        self.deterministic = given is not None
        slate, position, cascade = np.zeros(len(action)), np.zeros(action.shape), np.zeros(action.shape)
        for draw in self._draws(obs, m):
            same = draw == action
            slate += same.all(1)
            position += same
            cascade += np.cumprod(same, axis=1)
        return {"slate": slate / m, "position": position / m, "cascade": cascade / m}

    @property
    def propensity_method(self) -> str:
        """The agent's method that :meth:`propensities` asks: ``"evaluation_propensities"``
        where it has one (its own estimates for the evaluation side), else ``"propensities"``
        (an agent without them states exact ones, or none)."""
        return "evaluation_propensities" if callable(getattr(self.agent, "evaluation_propensities", None)) \
            else "propensities"

    def checked(self, given: dict, action: np.ndarray, method: str) -> dict:
        """The agent's ``given`` propensities of ``action`` ``[B, K]``, from its ``method``
        (``"propensities"`` or ``"evaluation_propensities"``), as float64, each in ``[0, 1]``
        and of its shape, the cascade's non-increasing; else a ``ValueError`` naming
        ``--policy``, the method and the key."""
        from recoworld.ope import _validation as v

        B, K = action.shape
        checked = {}
        try:
            if "slate" not in given:
                raise ValueError(f"{method}() gave {sorted(given)} but no 'slate', the whole slate's probability "
                                 "(Recommender.propensities); return it, or None when the probabilities are unknown")
            for key in ("slate", "position", "cascade"):
                if key in given:
                    name = f"{method}(obs, action)[{key!r}]"
                    shape, dims = ((B,), "(slates,)") if key == "slate" else ((B, K), "(slates, positions)")
                    checked[key] = v.probability(given[key], name, shape, dims)
                    if key == "cascade":
                        v.non_increasing(checked[key], name)
        except (ValueError, TypeError) as error:
            raise ValueError(f"--policy {self.spec!r}: {error} (asked about {B} logged slates of {K}); return the "
                             "probabilities with which act would choose the given slates") from None
        return checked

    def action_distribution(self, obs):
        obs = self.full(obs)
        if callable(getattr(self.agent, "action_distribution", None)):
            return np.asarray(self.agent.action_distribution(obs), dtype=np.float64)
        m = 1 if self.deterministic else ACT_DRAWS
        B, C = obs["candidate_ids"].shape[:2]
        counts = None
        for draw in self._draws(obs, m):                                            # [B, K]
            counts = np.zeros((B, C, draw.shape[1])) if counts is None else counts
            np.add.at(counts, (np.arange(B)[:, None], draw, np.arange(draw.shape[1])[None]), 1.0)
        return counts / m

    def next_item_distribution(self, obs, action):
        obs = self.full(obs)
        if callable(getattr(self.agent, "next_item_distribution", None)):
            return np.asarray(self.agent.next_item_distribution(obs, action), dtype=np.float64)
        return np.swapaxes(self.action_distribution(obs), 1, 2)

    @property
    def exact_following(self) -> bool:
        return callable(getattr(self.agent, "next_item_distribution", None)) or self.deterministic

    def _draws(self, obs, n: int):
        """``n`` slates ``[B, K]`` of ``act``, one at a time: ``n`` copies of a large log's
        slates are never held at once."""
        for _ in range(n):
            yield np.asarray(self.agent.act(obs))
