"""The cost guard of ``recoworld run``: an LLM run's calls, estimated before it starts.

Both sides of a run may call an LLM, and the guard counts both, per agent of the lineup:

- the users: LLM users (``simulator=llm``) make one LLM call per user and step; hybrid users
  (``simulator=hybrid``) make one only when a user voices an instruction, which the guard
  counts at :data:`HYBRID_CALL_RATE` calls per user-step (a round figure at the voicing rate
  of the default users under random slates, measured in ``benchmarks/RESULTS.md``; a good
  recommender makes users speak less);
- the agent: an LLM agent (``agent=llm_rerank``, ``llm_bandit``, ``llm_tools``) makes at most
  one request per user-step. With ``llm_when: always`` it makes that one at every user-step;
  with ``llm_when: instruction`` only while the user has a current instruction, which the
  guard counts at the upper bound, 1, except for the tool agent's LLM planner, which plans
  once per instruction and reuses the plan while it is current: it is counted at the
  voicing rate, :data:`HYBRID_CALL_RATE` (:func:`agent_call_rate`).

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

from collections.abc import Mapping

from omegaconf import DictConfig

from recoworld.apps.run.checks import ExperimentConfigError

LLM_USERS = "recoworld.simulators.llm_user.LLMUsers"
HYBRID_USERS = "recoworld.simulators.hybrid.HybridUsers"
#: LLM calls per user-step the guard assumes for each kind of LLM-driven user.
CALL_RATES = {LLM_USERS: 1.0, HYBRID_USERS: 0.1}
HYBRID_CALL_RATE = CALL_RATES[HYBRID_USERS]
#: The LLM agents, with the ``llm_when`` their class defaults to.
LLM_TOOL_AGENT = "recoworld.agents.llm_tools.LLMToolAgent"
LLM_AGENTS = {"recoworld.agents.llm_rerank.LLMRerank": "always", "recoworld.agents.llm_bandit.LLMBandit": "always",
              LLM_TOOL_AGENT: "instruction"}
#: Agents that act on a copy of the env's users: SB3 agents train on one (unless they load a
#: saved model), the planning oracle simulates on one.
SB3_AGENT = "recoworld.agents.sb3.SB3Agent"
PLANNING_ORACLE = "recoworld.agents.planning.PlanningOracle"
#: The default ``experiment.max_llm_calls``.
DEFAULT_MAX_LLM_CALLS = 20_000


def agent_call_rate(agent: DictConfig) -> float:
    """The LLM requests per user-step the agent configured by ``agent`` makes (0 for an agent
    without an LLM): 1 with ``llm_when: always``; with ``llm_when: instruction`` 1 too (an
    upper bound: a request at every step with a current instruction), but the tool agent's
    LLM planner, which asks once per instruction, at :data:`HYBRID_CALL_RATE`."""
    target = agent.get("_target_")
    if target not in LLM_AGENTS or agent.get("planner", "llm") != "llm":
        return 0.0
    when = agent.get("llm_when", LLM_AGENTS[target])
    return HYBRID_CALL_RATE if when == "instruction" and target == LLM_TOOL_AGENT else 1.0


def estimated_llm_calls(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> int:
    """The LLM calls a run of the agents of ``lineup`` (name: config) on ``cfg`` would make,
    its users' and its agents' (0 where neither has an LLM)."""
    return round(_user_steps(cfg) * sum(_rates(cfg, lineup).values()))


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
    user_rate = CALL_RATES.get(cfg.simulator.get("_target_"), 0.0)
    agent_rates = {name: agent_call_rate(agent) for name, agent in lineup.items()}
    segments = 1 + len(experiment.get("segments") or {})
    factors = (f"{int(cfg.env.num_envs)} users x {int(experiment.steps)} steps x {len(experiment.seeds)} seeds"
               + (f" x {segments} segments" if segments > 1 else ""))
    if not any(agent_rates.values()):  # the users' calls alone
        factors += f" x {len(lineup)} agents" + (f" x {user_rate:g} calls per user-step" if user_rate != 1.0 else "")
    else:
        users = f"{len(lineup)} agents x {user_rate:g}" if len(lineup) > 1 else f"{user_rate:g}"
        terms = [f"{users} of the users"] * bool(user_rate) + [
            f"{rate:g} of agent {name}" for name, rate in agent_rates.items() if rate]
        total = sum(_rates(cfg, lineup).values())
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


def _rates(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> dict[str, float]:
    """Each agent's LLM calls per user-step, its users' and its own."""
    user_rate = CALL_RATES.get(cfg.simulator.get("_target_"), 0.0)
    return {name: user_rate + agent_call_rate(agent) for name, agent in lineup.items()}


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
        if agent.get("_target_") == PLANNING_ORACLE:
            raise ExperimentConfigError(
                f"agent={name} plans on copies of the run's users at every step, but {users} cannot be copied and "
                f"would be called at every simulated step; run it on simulator=statistical or calibrated")
        if agent.get("_target_") != SB3_AGENT or agent.get("load_path") is not None:
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
