"""The cost guard of ``recoworld run``: an LLM run's calls, estimated before it starts.

LLM users (``simulator=llm``) make one LLM call per user and step; hybrid users
(``simulator=hybrid``) make one only when a user voices an instruction, which the guard
counts at :data:`HYBRID_CALL_RATE` calls per user-step (a round figure at the voicing rate
of the default users under random slates, measured in ``benchmarks/RESULTS.md``; a good
recommender makes users speak less). The estimate is then::

    users (env.num_envs) x experiment.steps x seeds x agents x segments x calls per user-step

Agent-side LLM calls (``agent=llm_rerank`` and the like) are not counted. A run whose
estimate exceeds ``experiment.max_llm_calls`` (default :data:`DEFAULT_MAX_LLM_CALLS`) is
refused before anything is written, with a message that gives the estimate and the two ways
on: a smaller run (``experiment=llm``) or a limit raised to confirm the cost
(``experiment.max_llm_calls=N``). The LLM cache (``llm.cache_dir``) makes a repeated run
replay its calls, which the estimate does not know about.
"""

from __future__ import annotations

from omegaconf import DictConfig

from recoworld.apps.run.checks import ExperimentConfigError

LLM_USERS = "recoworld.simulators.llm_user.LLMUsers"
HYBRID_USERS = "recoworld.simulators.hybrid.HybridUsers"
#: LLM calls per user-step the guard assumes for each kind of LLM-driven user.
CALL_RATES = {LLM_USERS: 1.0, HYBRID_USERS: 0.1}
HYBRID_CALL_RATE = CALL_RATES[HYBRID_USERS]
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


def _choice(cfg: DictConfig) -> str:
    return "hybrid" if cfg.simulator.get("_target_") == HYBRID_USERS else "llm"
