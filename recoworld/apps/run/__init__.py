"""Experiments: the runner behind ``recoworld run``.

The runner (:mod:`recoworld.apps.run.runner`, which needs Hydra) runs a lineup of agents
over several seeds from a config and writes a run directory; each rollout is
:func:`recoworld.envs.rollout.rollout`, the one loop, re-exported here.
"""

from recoworld.envs.rollout import RolloutResult, population_seed, rollout

__all__ = ["RolloutResult", "population_seed", "rollout"]
