"""Experiments: the rollout loop, and the runner behind ``recoworld run``.

:func:`rollout` drives one agent against a vector env and logs every interaction; the
runner (:mod:`recoworld.apps.run.runner`, which needs Hydra) runs a lineup of agents over
several seeds from a config and writes a run directory.
"""

from recoworld.apps.run.loop import RolloutResult, population_seed, rollout

__all__ = ["RolloutResult", "population_seed", "rollout"]
