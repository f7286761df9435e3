"""The lineup of a robustness study serving one world after another.

The configured world is ``recoworld run``'s config, composed with Hydra from
``recoworld.conf`` with the command's overrides (``world=synthetic``,
``simulator.config.leave_base=-2.5``, ``env.slate_size=5``, ...): the catalog, the
simulator and the env are built from their ``_target_`` as the runner builds them, and
each agent of the lineup is composed as ``agent=NAME``
(:func:`recoworld.apps.run.runner.resolve_lineup`). A world of the study is the
configured simulator with some fields of its
:class:`~recoworld.simulators.statistical.StatisticalUserConfig` changed
(:func:`~recoworld.apps.robustness.space.world_config`), so the users' traits, the catalog
and the env stay those of the configured world. Each rollout is a fresh simulator, env and
agent, run by :func:`recoworld.envs.rollout.rollout`. :meth:`Lineup.identity`, the configured
world and the agents as composed, is what a resumed study must compose alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from recoworld.apps.robustness.space import world_config
from recoworld.apps.robustness.study import REWARD_PER_STEP, RobustnessConfig
from recoworld.apps.run.checks import override_key, run_identity
from recoworld.apps.run.runner import CALIBRATED_USERS, ensure_calibrated, resolve_lineup
from recoworld.apps.run.secrets import redact_secrets
from recoworld.envs.rollout import rollout
from recoworld.logs import EpisodeLog
from recoworld.metrics import METRICS, WHOLE_LIFE_METRICS, run_metrics
from recoworld.simulators.statistical import StatisticalUserConfig

#: The simulators whose users follow ``StatisticalUserConfig``, and how each takes a world's
#: config: the statistical users take it whole, the calibrated ones as fields overriding the fit.
STATISTICAL_USERS = "recoworld.simulators.statistical.StatisticalUsers"
CONFIG_ARGUMENT: dict[str, Callable[[StatisticalUserConfig], object]] = {
    STATISTICAL_USERS: lambda config: config,
    CALIBRATED_USERS: asdict,
}


class Lineup:
    """The agents of ``config.agents`` and the configured world, built once.

    Args:
        config: the study's settings (agents, users, steps, metric).
        overrides: Hydra overrides of ``recoworld run``'s config for the configured world.

    Calling the lineup with ``(values, seeds)`` runs every agent over every seed in the
    world whose parameters take ``values`` and returns each agent's mean score.
    """

    def __init__(self, config: RobustnessConfig, overrides: Sequence[str] = ()):
        check_overrides(overrides, config)
        self.config = config
        names = ",".join(config.agents)
        composed = [*overrides, f"env.num_envs={config.users}", f"experiment.agents=[{names}]"]
        self._composed = composed
        with initialize_config_module("recoworld.conf", version_base="1.3"):
            self.cfg = compose("config", overrides=composed)
            self.agents = resolve_lineup(self.cfg, overrides=composed)
        target = self.cfg.simulator.get("_target_")
        if target not in CONFIG_ARGUMENT:
            raise ValueError(f"simulator {target} does not take a StatisticalUserConfig; a robustness study varies "
                             "the statistical users' parameters: use simulator=statistical, or world=movielens "
                             "(simulator=calibrated)")
        self.to_argument = CONFIG_ARGUMENT[target]
        ensure_calibrated(self.cfg)
        self.catalog = instantiate(self.cfg.world)
        self.make_env = instantiate(self.cfg.env, _partial_=True, _convert_="object")
        self.make_simulator = instantiate(self.cfg.simulator, _partial_=True, _convert_="object")
        with closing(self.make_simulator(catalog=self.catalog)) as simulator:
            self.base: StatisticalUserConfig = simulator.config
        self.features = self.catalog.features.cpu().numpy()
        self.popularity = self.catalog.popularity.cpu().numpy()
        self.on_rollout: Callable[[], None] | None = None

    def __call__(self, values: Mapping[str, float], seeds: Sequence[int]) -> dict[str, float]:
        world = world_config(self.base, values)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.experiment.torch_threads)
        try:
            return {name: float(np.mean([self.score(name, world, seed) for seed in seeds]))
                    for name in self.agents}
        finally:
            torch.set_num_threads(threads)

    def identity(self) -> dict:
        """The configured world and the agents as composed (secrets blanked), which a
        resumed study must compose alike (:mod:`~recoworld.apps.robustness.studydir`)."""
        return redact_secrets(run_identity(self.cfg, self.agents))

    def default_identity(self) -> dict | None:
        """:meth:`identity` with the config groups the overrides choose (``world=synthetic``)
        and the agents, but none of the values they set: this RecoWorld's defaults, which a
        key added since a study began takes when it resumes
        (:func:`~recoworld.apps.run.checks.config_differences`). ``None`` if it does not compose."""
        kept = [o for o in self._composed if "." not in override_key(o) or override_key(o) == "experiment.agents"]
        try:
            with initialize_config_module("recoworld.conf", version_base="1.3"):
                cfg = compose("config", overrides=kept)
                agents = resolve_lineup(cfg, overrides=kept)
        except Exception:  # noqa: BLE001 - e.g. a key with no default: the added keys count as set, and are named
            return None
        return redact_secrets(run_identity(cfg, agents))

    def score(self, name: str, world: StatisticalUserConfig, seed: int) -> float:
        """Agent ``name``'s score in one rollout seeded ``seed`` in ``world``."""
        c = self.config
        log = None if c.metric == REWARD_PER_STEP else EpisodeLog()
        with closing(self.make_simulator(catalog=self.catalog, config=self.to_argument(world))) as simulator, \
                closing(self.make_env(simulator=simulator)) as env:
            agent = instantiate(self.agents[name], _convert_="object")
            result = rollout(env, agent, c.steps, seed, logger=log, label=name)
        if self.on_rollout is not None:
            self.on_rollout()
        max_steps = self.cfg.env.max_steps
        score = (result.reward_per_interaction if log is None else
                 run_metrics(log.to_pandas(), self.features, self.popularity, max_steps, c.steps)[c.metric])
        if np.isnan(score):
            why = (f"--steps {c.steps} is below the env's max_steps ({max_steps}), which cuts first episodes; give "
                   f"--steps {max_steps} or more, or rank by another metric"
                   if c.metric in WHOLE_LIFE_METRICS and c.steps < max_steps
                   else "e.g. no session ended; run more steps or rank by another metric")
            raise ValueError(f"metric {c.metric} is undefined for agent {name} (seed {seed}, {c.users} users, "
                             f"{c.steps} steps): {why}")
        return float(score)


def check_overrides(overrides: Sequence[str], config: RobustnessConfig) -> None:
    """Refuse overrides that the study sets itself, and an unknown metric."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == "agent" or key.startswith(("agent.", "experiment.agents")):
            raise ValueError(f"{override!r}: the lineup is the study's agents setting (--agents a,b,c)")
        if key == "env.num_envs":
            raise ValueError(f"{override!r}: the users served at once are the study's users setting (--users N)")
    if config.metric != REWARD_PER_STEP and config.metric not in METRICS:
        raise ValueError(f"metric={config.metric!r}; choose {REWARD_PER_STEP} or one of {', '.join(METRICS)}")
