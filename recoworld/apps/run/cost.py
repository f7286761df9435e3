"""The cost guard of ``recoworld run``: an LLM run's calls, estimated before it starts.

LLM users (``simulator=llm``) make one LLM call per user and step; hybrid users
(``simulator=hybrid``) make one only when a user voices an instruction, which the guard
counts at :data:`HYBRID_CALL_RATE` calls per user-step (a round figure at the voicing rate
of the default users under random slates, measured in ``benchmarks/RESULTS.md``; a good
recommender makes users speak less). The estimate is then::

    users (env.num_envs) x experiment.steps x seeds x agents x segments x calls per user-step

Agent-side LLM calls (``agent=llm_rerank`` and the like) are not counted. An agent that
acts on a copy of the run's users (the SB3 agents train on one, the planning oracle plans on
one) is refused on LLM-driven users (:func:`check_copied_users`): every copied user-step
would be an uncounted call, and their chat model cannot be copied. A run whose
estimate exceeds ``experiment.max_llm_calls`` (default :data:`DEFAULT_MAX_LLM_CALLS`) is
refused before anything is written, with a message that gives the estimate and the two ways
on: a smaller run (``experiment=llm``) or a limit raised to confirm the cost
(``experiment.max_llm_calls=N``). The LLM cache (``llm.cache_dir``) makes a repeated run
replay its calls, which the estimate does not know about.
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
#: Agents that act on a copy of the env's users: SB3 agents train on one (unless they load a
#: saved model), the planning oracle simulates on one.
SB3_AGENT = "recoworld.agents.sb3.SB3Agent"
PLANNING_ORACLE = "recoworld.agents.planning.PlanningOracle"
#: The default ``experiment.max_llm_calls``.
DEFAULT_MAX_LLM_CALLS = 20_000


def estimated_llm_calls(cfg: DictConfig, n_agents: int) -> int:
    """The LLM calls a run of ``n_agents`` agents on ``cfg`` would make (0 for simulators
    that make none)."""
    rate = CALL_RATES.get(cfg.simulator.get("_target_"), 0.0)
    experiment = cfg.experiment
    segments = 1 + len(experiment.get("segments") or {})
    user_steps = int(cfg.env.num_envs) * int(experiment.steps) * len(experiment.seeds) * n_agents * segments
    return round(user_steps * rate)


def check_llm_cost(cfg: DictConfig, n_agents: int) -> None:
    """Refuse a run whose estimated LLM calls exceed ``experiment.max_llm_calls``.

    Raises:
        ExperimentConfigError: with the estimate, its factors and the overrides that go on.
    """
    calls = estimated_llm_calls(cfg, n_agents)
    limit = cfg.experiment.get("max_llm_calls", DEFAULT_MAX_LLM_CALLS)
    if calls <= limit:
        return
    experiment = cfg.experiment
    rate = CALL_RATES[cfg.simulator.get("_target_")]
    segments = 1 + len(experiment.get("segments") or {})
    factors = (f"{int(cfg.env.num_envs)} users x {int(experiment.steps)} steps x {len(experiment.seeds)} seeds x "
               f"{n_agents} agents" + (f" x {segments} segments" if segments > 1 else "")
               + (f" x {rate:g} calls per user-step" if rate != 1.0 else ""))
    raise ExperimentConfigError(
        f"this run would make about {calls:,} LLM calls ({factors}), above experiment.max_llm_calls={limit:,}. "
        f"Try a small run first with experiment=llm (e.g. recoworld run simulator={_choice(cfg)} experiment=llm), "
        f"or confirm the cost with experiment.max_llm_calls={calls}")


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
