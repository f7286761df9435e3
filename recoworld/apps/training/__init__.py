"""Training LLM recommenders in the loop with simulated users (TRL's GRPO, environment mode).

Needs the ``rl-llm`` extra (``pip install -e ".[rl-llm]"``) for ``trl`` and ``datasets``;
importing this package does not import them.
"""

from recoworld.apps.training.grpo import (
    DEFAULT_ENV,
    DEFAULT_REWARD,
    RecommendationEnvironment,
    group_user_seed,
    make_environment_factory,
    user_dataset,
)

__all__ = ["DEFAULT_ENV", "DEFAULT_REWARD", "RecommendationEnvironment", "group_user_seed",
           "make_environment_factory", "user_dataset"]
