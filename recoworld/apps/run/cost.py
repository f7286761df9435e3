"""The cost guard of ``recoworld run``: an LLM run's calls, estimated before it starts.

Both sides of a run may call an LLM, and the guard counts both, per agent of the lineup:

- the users: LLM users (``simulator=llm``) make one LLM call per user and step; hybrid users
  (``simulator=hybrid``) make one only when a user voices an instruction, which the guard
  counts at :data:`HYBRID_CALL_RATE` calls per user-step (a round figure at the voicing rate
  of the default users under random slates, measured in ``benchmarks/RESULTS.md``; a good
  recommender makes users speak less);
- the agent: an LLM agent (a subclass of
  :class:`~recoworld.agents.llm_agents.LLMRecommender`: ``agent=llm_rerank``, ``llm_bandit``,
  ``llm_tools``, or a plug-in that subclasses one) makes at most one request per user-step.
  With ``llm_when: always`` it makes that one at every user-step; with ``llm_when:
  instruction`` only while the user has a current instruction, which the guard counts at the
  upper bound, 1, except for the tool agent's LLM planner, which plans once per instruction
  and reuses the plan while it is current: on statistical or hybrid users it is counted at
  their voicing rate, :data:`HYBRID_CALL_RATE`; LLM users voice far more often (about one
  step in two), so there it is counted at the upper bound, 1 (:func:`agent_call_rate`).

The estimate is then::

    users (env.num_envs) x experiment.steps x seeds x segments
        x sum over the agents of (the users' calls + the agent's calls per user-step)

Repairs of invalid replies (``max_repairs``) are extra calls that the estimate leaves out. An
agent that acts on a copy of the run's users (the SB3 agents train on one, the planning
oracle plans on one) is refused on LLM-driven users (:func:`check_copied_users`): every
copied user-step would be an uncounted call, and their chat model cannot be copied. A run
whose estimate exceeds ``experiment.max_llm_calls`` (default :data:`DEFAULT_MAX_LLM_CALLS`)
is refused before anything is written, with a message that gives the estimate and the two
ways on: a smaller run (``experiment=llm``) or a limit raised to confirm the cost
(``experiment.max_llm_calls=N``). The LLM cache (``llm.cache_dir``, which the agents'
``agent.llm.cache_dir`` shares by default) makes a repeated run replay its calls, which the
estimate does not know about.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping

from omegaconf import DictConfig

from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.plugins import _imported

LLM_USERS = "recoworld.simulators.llm_user.LLMUsers"
HYBRID_USERS = "recoworld.simulators.hybrid.HybridUsers"
#: LLM calls per user-step the guard assumes for each kind of LLM-driven user.
CALL_RATES = {LLM_USERS: 1.0, HYBRID_USERS: 0.1}
HYBRID_CALL_RATE = CALL_RATES[HYBRID_USERS]
#: The base class of the LLM agents, and the tool agent's, whose LLM planner asks once per instruction.
LLM_AGENT = "recoworld.agents.llm_agents.LLMRecommender"
LLM_TOOL_AGENT = "recoworld.agents.llm_tools.LLMToolAgent"
#: Agents that act on a copy of the env's users: SB3 agents train on one (unless they load a
#: saved model), the planning oracle simulates on one.
SB3_AGENT = "recoworld.agents.sb3.SB3Agent"
PLANNING_ORACLE = "recoworld.agents.planning.PlanningOracle"
#: The default ``experiment.max_llm_calls``.
DEFAULT_MAX_LLM_CALLS = 20_000


def agent_call_rate(agent: DictConfig, users: str | None = None) -> float:
    """The LLM requests per user-step the agent configured by ``agent`` makes on the users
    whose ``_target_`` is ``users`` (0 for an agent without an LLM): 1 with ``llm_when:
    always``; with ``llm_when: instruction`` 1 too (an upper bound: a request at every step
    with a current instruction), but the tool agent's LLM planner, which asks once per
    instruction, at :data:`HYBRID_CALL_RATE` on users that voice at that rate (all but LLM users).

    The agent's class is loaded from its ``_target_``, so that a subclass of an LLM agent is
    counted as one, with the ``llm_when`` and ``planner`` its class defaults to."""
    cls = _agent_class(agent.get("_target_"))
    if not _subclasses(cls, LLM_AGENT):
        return 0.0
    if agent.get("planner", _class_default(cls, "planner", "llm")) != "llm":
        return 0.0
    when = agent.get("llm_when", _class_default(cls, "llm_when", "always"))
    planner = when == "instruction" and _subclasses(cls, LLM_TOOL_AGENT)
    return HYBRID_CALL_RATE if planner and users != LLM_USERS else 1.0


def _agent_class(target: str | None) -> type | None:
    """The class ``target`` names; None for a factory function, or a target that does not
    import (the run then fails on it with its own error)."""
    if not target:
        return None
    try:
        found = _imported(target, "agent")
    except ExperimentConfigError:
        return None
    return found if isinstance(found, type) else None


def _subclasses(cls: type | None, base: str) -> bool:
    """Whether ``cls`` is the class ``base`` names or a subclass of it. A subclass has imported
    its base's module: where that is not loaded, ``cls`` is none (and a run without an LLM
    agent does not import the LLM stack for this)."""
    module, name = base.rsplit(".", 1)
    loaded = sys.modules.get(module)
    return cls is not None and loaded is not None and issubclass(cls, getattr(loaded, name))


def _class_default(cls: type, name: str, fallback: str) -> str:
    """The default of the argument ``name`` of ``cls`` (the nearest ``__init__`` along its
    MRO that names it), or ``fallback``."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        parameter = inspect.signature(init).parameters.get(name) if inspect.isfunction(init) else None
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return fallback


def estimated_llm_calls(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> int:
    """The LLM calls a run of the agents of ``lineup`` (name: config) on ``cfg`` would make,
    its users' and its agents' (0 where neither has an LLM)."""
    user_rate, agent_rates = _rates(cfg, lineup)
    return round(_user_steps(cfg) * sum(user_rate + rate for rate in agent_rates.values()))


def check_llm_cost(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> None:
    """Refuse a run whose estimated LLM calls exceed ``experiment.max_llm_calls``.

    Raises:
        ExperimentConfigError: with the estimate, its factors and the overrides that go on.
    """
    calls = estimated_llm_calls(cfg, lineup)
    limit = cfg.experiment.get("max_llm_calls", DEFAULT_MAX_LLM_CALLS)
    if calls <= limit:
        return
    experiment = cfg.experiment
    user_rate, agent_rates = _rates(cfg, lineup)
    segments = 1 + len(experiment.get("segments") or {})
    factors = (f"{int(cfg.env.num_envs)} users x {int(experiment.steps)} steps x {len(experiment.seeds)} seeds"
               + (f" x {segments} segments" if segments > 1 else ""))
    if not any(agent_rates.values()):  # the users' calls alone
        factors += f" x {len(lineup)} agents" + (f" x {user_rate:g} calls per user-step" if user_rate != 1.0 else "")
    else:
        users = f"{len(lineup)} agents x {user_rate:g}" if len(lineup) > 1 else f"{user_rate:g}"
        terms = [f"{users} of the users"] * bool(user_rate) + [
            f"{rate:g} of agent {name}" for name, rate in agent_rates.items() if rate]
        total = sum(user_rate + rate for rate in agent_rates.values())
        factors += f" x {total:g} call{'s' * (total != 1)} per user-step: {', '.join(terms)}"
    example = " ".join([f"simulator={_choice(cfg)}"] * bool(user_rate)
                       + [f"agent={name}" for name, rate in agent_rates.items() if rate and len(lineup) == 1]
                       + ["experiment=llm"])
    raise ExperimentConfigError(
        f"this run would make about {calls:,} LLM calls ({factors}), above experiment.max_llm_calls={limit:,}. "
        f"Try a small run first with experiment=llm (e.g. recoworld run {example}), "
        f"or confirm the cost with experiment.max_llm_calls={calls}")


def _user_steps(cfg: DictConfig) -> int:
    """The user-steps one agent of the lineup is run for."""
    experiment = cfg.experiment
    segments = 1 + len(experiment.get("segments") or {})
    return int(cfg.env.num_envs) * int(experiment.steps) * len(experiment.seeds) * segments


def _rates(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> tuple[float, dict[str, float]]:
    """The LLM calls per user-step of the run's users, and of each agent of ``lineup`` itself."""
    users = cfg.simulator.get("_target_")
    return CALL_RATES.get(users, 0.0), {name: agent_call_rate(agent, users) for name, agent in lineup.items()}


def check_copied_users(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> None:
    """Refuse an agent that acts on a copy of the env's users (an SB3 agent trains on one for
    ``total_timesteps`` steps; the planning oracle simulates each step's next steps on one)
    when the users are LLM-driven: their chat model cannot be copied, and every copied
    user-step would be an LLM call the cost guard does not count.

    Raises:
        ExperimentConfigError: naming the agent, the simulator and the way on.
    """
    if cfg.simulator.get("_target_") not in CALL_RATES:
        return
    users = f"simulator={_choice(cfg)}'s users speak through a chat model, which"
    for name, agent in lineup.items():
        cls = _agent_class(agent.get("_target_"))
        if _subclasses(cls, PLANNING_ORACLE):
            raise ExperimentConfigError(
                f"agent={name} plans on copies of the run's users at every step, but {users} cannot be copied and "
                f"would be called at every simulated step; run it on simulator=statistical or calibrated")
        if not _subclasses(cls, SB3_AGENT) or agent.get("load_path") is not None:
            continue
        algo = agent.get("algo", "PPO")
        raise ExperimentConfigError(
            f"agent={name} trains on a copy of the run's users before it is scored, but {users} training would "
            f"call at every step of its budget and cannot copy; train it on statistical users and score the saved "
            f"model here: recoworld run agent={name} simulator=statistical +agent.save_path=model.zip, then "
            f"recoworld run agent=sb3_model agent.load_path=model.zip{'' if algo == 'PPO' else f' agent.algo={algo}'} "
            f"simulator={_choice(cfg)}")


def _choice(cfg: DictConfig) -> str:
    return "hybrid" if cfg.simulator.get("_target_") == HYBRID_USERS else "llm"
