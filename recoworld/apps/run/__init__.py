"""Experiments: the runner behind ``recoworld run``.

The runner (:mod:`recoworld.apps.run.runner`, which needs Hydra) runs a lineup of agents
over several seeds from a config and writes a run directory; each rollout is
:func:`recoworld.envs.rollout.rollout`, the one loop, re-exported here. The re-exported
names load on first use, so that the commands that only read a run's directory
(:mod:`~recoworld.apps.run.run_log`: ``recoworld view``, ``export``, ``merge``) start
without importing torch.
"""

from recoworld.lazy import lazy_names

_LAZY = {"RolloutResult": "recoworld.envs.rollout", "population_seed": "recoworld.envs.rollout",
         "rollout": "recoworld.envs.rollout"}

__all__ = list(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)  # PEP 562
