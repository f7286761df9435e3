"""The contract every recommender agent fulfils.

An agent serves a batch of ``B`` requests at once. Plugging in your own agent means
subclassing :class:`Recommender` and implementing :meth:`Recommender.act`; online
learners also implement :meth:`Recommender.update`, and stochastic agents
:meth:`Recommender.propensities` so that their logs can be used for off-policy evaluation.

Observations are the batched numpy dicts of ``RecoWorld/Slate-v0``'s vector env (see its
manual), read through :class:`recoworld.types.Observation` (``obs.candidate_ids [B, C]``,
``obs.candidate_features [B, C, D]``, ``obs.history_items``, ...); the rollout loop hands
agents that typed view, and ``Observation(obs)`` makes one from a plain dict. Actions are
candidate indices ``[B, K]``: position ``k`` of user ``b``'s slate shows candidate
``action[b, k]``. After each step learners receive a :class:`recoworld.types.Feedback`.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod

import numpy as np

from recoworld.config_checks import check_fields, did_you_mean

# Observation and Feedback belong to the shared language; re-exported here for agents' code.
from recoworld.types import Feedback, Observation  # noqa: F401


#: How to build the vector env that agents serve (a batch of users), for the errors that ask for one.
VECTOR_ENV = ("gymnasium.make_vec('RecoWorld/Slate-v0', num_envs=B, vectorization_mode='vector_entry_point') "
              "(num_envs=1 for one user)")


class AgentNotSetUp(RuntimeError, AttributeError):
    """An agent used before :meth:`Recommender.setup` gave it the env's world. An
    ``AttributeError`` too, so that ``hasattr`` on an agent that is not set up answers
    ``False``."""


class _NamedArguments:
    """Refuses a keyword argument that an agent's constructor does not take, naming the
    nearest one it does (``LinUCB(alpah=1)``). In ``__new__`` because a dataclass agent's
    ``__init__`` is generated; on a base of :class:`Recommender`, below its ``__init__``,
    so that ``inspect.signature`` of an agent class still reads that class's constructor."""

    def __new__(cls, *args, **kwargs):
        if kwargs:
            _refuse_unknown_arguments(cls, tuple(kwargs))
        if args and cls.__init__ is Recommender.__init__:
            raise TypeError(f"{cls.__name__}() takes no arguments")
        return super().__new__(cls)


class Recommender(_NamedArguments, ABC):
    """A slate recommender for a batch of users.

    An agent is built from its hyperparameters (a misspelt one is named, with the nearest
    of its arguments) and set up with :meth:`setup` before it acts: using it before raises
    :class:`AgentNotSetUp`.

    Attributes:
        name: label used in metrics and plots.
        learns: True for agents whose :meth:`update` changes their behaviour.
    """

    name: str = "recommender"
    learns: bool = False
    _set_up: bool = False  # whether setup() has run: what an attribute missing before it means

    def __init__(self) -> None:
        """An agent without hyperparameters takes no arguments. The call goes on to the next
        base's ``__init__`` (``torch.nn.Module``'s, for an agent that is also a module), so an
        agent with other bases calls ``super().__init__()``; one that calls each base's
        ``__init__`` by name calls ``Recommender.__init__(self)`` first, before the others'
        (after them, it would run theirs again: a module's submodules would be lost)."""
        super().__init__()

    def __getattr__(self, name: str):
        # Python calls this only for an attribute its usual lookup did not find; but
        # ``getattr(agent, name, default)`` on an absent name comes here too, and pays for
        # the error built below. A base after this one may serve such attributes itself
        # (torch.nn.Module keeps submodules, parameters and buffers outside __dict__): it
        # answers first.
        following = _following_getattr(type(self), __class__)  # __class__: this module's Recommender
        if following is not None:
            try:
                return following(self, name)
            except AttributeError:
                pass
        # A property that raised AttributeError lands here under its own name, its error
        # already dropped by Python: running it again to name what it missed would run its
        # body twice, so the message names the property instead.
        kind = type(self).__name__
        is_property = isinstance(getattr(type(self), name, None), property)
        if self._set_up or name.startswith("__"):
            if is_property:
                raise AttributeError(f"property {name!r} of {kind!r} object raised AttributeError "
                                     f"(type(agent).{name}.fget(agent) shows its error)", name=name, obj=self)
            raise AttributeError(f"{kind!r} object has no attribute {name!r}", name=name, obj=self)
        missing = f"its property {name!r} raised AttributeError" if is_property else f"it has no {name!r} yet"
        raise AgentNotSetUp(f"{kind} is not set up ({missing}): call agent.setup(env, seed) before act(), "
                            "update() or propensities() (recoworld.envs.rollout and the runner do); if its "
                            "class overrides setup, that setup must call super().setup(env, seed)")

    def __post_init__(self):
        """Dataclass agents check their hyperparameters when built: types, finiteness and
        the ranges their classes declare in ``RANGES`` (:mod:`recoworld.config_checks`)."""
        check_fields(self)

    def setup(self, env, seed: int | None = None) -> None:
        """Called once before a run with the (vector) env, whose ``catalog``,
        ``slate_size`` and ``num_candidates`` describe the world, and a seed for the
        agent's own randomness. Agents must not read simulator state from ``env``; the
        only exception is the documented privileged channel used by
        :class:`~recoworld.agents.baselines.Oracle`.

        An agent that overrides ``setup`` calls ``super().setup(env, seed)`` in it: this sets
        ``catalog``, ``slate_size``, ``num_candidates`` and ``rng``, and marks the agent set up,
        so that a missing attribute is reported as one rather than as a missing ``setup`` call."""
        env = env.unwrapped
        check_served_env(self, env)
        self.catalog = env.catalog
        self.slate_size = env.slate_size
        self.num_candidates = env.num_candidates
        self.rng = np.random.default_rng(seed)
        self._set_up = True

    @abstractmethod
    def act(self, obs: Observation) -> np.ndarray:
        """Candidate indices ``[B, K]``, distinct within each row."""

    def update(self, feedback: Feedback) -> None:
        """Learn from one step's feedback. Non-learning agents ignore it."""

    def finish(self) -> None:
        """Called by the runner when a rollout has ended, before it keeps the rollout's log:
        raise to fail the part when the rollout cannot stand as this agent's (the LLM agents
        raise when too many of their requests fell back). Optional: nothing by default."""

    def stats(self) -> dict[str, float | int]:
        """Counters of this agent's work in the rollout, flat and JSON-ready (e.g. LLM
        requests, fallbacks, tokens); the runner writes them to ``metrics.json`` under the
        agent's ``agent_stats`` entry. Optional: none by default."""
        return {}

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray] | None:
        """Probabilities with which :meth:`act` would choose ``action`` given ``obs``.

        Returns ``None`` when unknown, else a dict with ``"slate"`` ``[B]`` (the whole
        ranked slate), and optionally ``"position"`` ``[B, K]`` (candidate at position k)
        and ``"cascade"`` ``[B, K]`` (positions 0..k as shown). Deterministic agents
        return ones.

        An agent that can only estimate them reads these for its logs, where their inverse
        weighs the logged rows, and may add ``evaluation_propensities(obs, action)``, of the
        same form, unbiased for the probabilities themselves: what off-policy evaluation asks
        of the policy it evaluates (the Thompson samplers, :mod:`recoworld.agents.sampling`).
        """
        return None


def check_served_env(agent: Recommender, env) -> None:
    """``ValueError`` for an env that ``agent`` cannot serve: a single-user env (``SlateEnv``,
    ``InstructEnv``), whose observations have no batch dimension (agents read them as ``C``
    users of one candidate each, or fail deep inside ``act``), or a vector env that does not
    tell the world's catalog (Gymnasium's ``"sync"`` and ``"async"`` loops over single envs).
    An agent that works before ``Recommender.setup`` calls it first, with ``env.unwrapped``."""
    if getattr(env, "single", False):
        raise ValueError(f"{type(agent).__name__} serves a batch of users, but {type(env).__name__} serves one, "
                         f"with observations that have no batch dimension; set it up with a vector env, {VECTOR_ENV}")
    if not hasattr(env, "catalog"):
        raise ValueError(f"{type(agent).__name__} reads the world (catalog, slate_size, num_candidates) from the env "
                         f"it is set up with, which {type(env).__name__} does not give; set it up with RecoWorld's "
                         f"own vector env, {VECTOR_ENV}")


@functools.cache
def _following_getattr(cls: type, recommender: type):
    """The ``__getattr__`` of the first class after ``recommender`` (:class:`Recommender` as
    the agent's class knows it, also after this module is reloaded) in ``cls``'s MRO that has
    one (``torch.nn.Module``'s, for an agent that is also a module), or ``None``."""
    mro = cls.__mro__
    for base in mro[mro.index(recommender) + 1:]:
        if "__getattr__" in vars(base):
            return vars(base)["__getattr__"]
    return None


@functools.cache
def _arguments(cls: type) -> tuple[str, ...] | None:
    """The keyword arguments of ``cls``'s constructor; ``None`` if it takes any (``**kwargs``)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # after self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


def _refuse_unknown_arguments(cls: type, given: tuple[str, ...]) -> None:
    """``TypeError`` naming the first of ``given`` that ``cls`` does not take, with the
    nearest argument it does take."""
    known = _arguments(cls)
    if known == ():
        raise TypeError(f"{cls.__name__}() takes no arguments, not {given[0]!r}")
    for key in given if known is not None else ():
        if key not in known:
            raise TypeError(f"{cls.__name__} has no argument {key!r}{did_you_mean(key, known)}; its arguments are "
                            f"{', '.join(known)}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (``[B, k]``)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def deterministic(action: np.ndarray) -> dict[str, np.ndarray]:
    """Propensities of an agent that always chooses what it chose."""
    ones = np.ones(action.shape, dtype=np.float64)
    return {"slate": ones[:, 0].copy(), "position": ones, "cascade": ones.copy()}


def require_scorer(base, wrapper: str) -> None:
    """Refuse a ``base`` agent without ``score(obs) -> [B, C]``, which ``wrapper`` builds on."""
    if not callable(getattr(base, "score", None)):
        raise TypeError(f"{wrapper} needs a base agent with score(obs) -> [B, C] candidate scores "
                        f"(e.g. MostPopularAgent, LinUCB, SlateQAgent, LinearScorer); got {type(base).__name__}")


class ScorerWrapper(Recommender):
    """An agent built on a scoring agent ``self.base``: it sets the base up (unless
    ``self.setup_base`` is False, for a base already set up and trained) and passes the
    feedback and the start of each rollout on, so the base goes on learning underneath."""

    base: Recommender
    setup_base: bool

    @property
    def learns(self) -> bool:
        return self.base.learns

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        if self.setup_base:
            self.base.setup(env, seed)

    def begin_rollout(self, n_steps: int, num_envs: int) -> None:
        """Pass the start of a rollout on to the base, if it listens for it: a base that
        learns across rollouts (SlateQ) must forget the last rollout's users then."""
        begin = getattr(self.base, "begin_rollout", None)
        if begin is not None:
            begin(n_steps, num_envs)

    def update(self, feedback: Feedback) -> None:
        self.base.update(feedback)
