"""Simulated users: batched statistical users and LLM users behind one contract.

Every name loads on first use (``from recoworld.simulators import LLMUsers`` works), so
that importing a torch-free module of this package — the users' configs, which
``recoworld run`` checks before it runs (``statistical_config``, ``llm_config``,
``hybrid_config``, ``population``) — imports neither the simulators nor torch.
``statistical_config`` and ``population`` import no LLM code either; ``llm_config`` and
``hybrid_config`` import the LLM layer's core (:mod:`recoworld.llm`, with pydantic, for the
chat model's config), but none of its backends (OpenAI-compatible servers, llama.cpp,
transformers).
"""

from recoworld.lazy import lazy_names

_LAZY = {
    "HybridSimulatorConfig": "recoworld.simulators.hybrid_config",
    "HybridUserConfig": "recoworld.simulators.hybrid_config",
    "HybridUsers": "recoworld.simulators.hybrid",
    "LLMSimulatorConfig": "recoworld.simulators.llm_config",
    "LLMUserConfig": "recoworld.simulators.llm_config",
    "LLMUserError": "recoworld.simulators.llm_shared",
    "LLMUsers": "recoworld.simulators.llm_user",
    "Population": "recoworld.simulators.population",
    "StatisticalUserConfig": "recoworld.simulators.statistical_config",
    "StatisticalUsers": "recoworld.simulators.statistical",
    "SyntheticPopulation": "recoworld.simulators.population",
    "UserSimulator": "recoworld.simulators.base",
    "UserTraits": "recoworld.simulators.population",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)  # PEP 562
