"""Structured configs: the dataclasses that type-check ``recoworld run``'s YAML configs.

Each YAML option of a closed group starts its defaults list with the schema it follows,
e.g. ``world/synthetic.yaml``::

    defaults:
      - /schema/world/synthetic@_here_
      - _self_

so a key the schema lacks — in the file or in an override such as
``env.slate_sise=5`` — is an error that names the key, and a value of the wrong type
(``env.slate_size=ten``) is refused. Schemas live in the ConfigStore group ``schema/...``
so that they do not show up as selectable options of ``world``, ``env`` and the others.

The ``agent`` group is open on purpose: an agent config is any YAML file in
``conf/agent/`` with a ``_target_`` and its constructor's parameters. Overrides of keys
it does not have are still refused (Hydra composes in struct mode), and a misspelt
parameter in the file fails when the agent is instantiated, naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional  # Optional, not "X | None": OmegaConf reads these annotations

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from recoworld.simulators.hybrid import HybridSimulatorConfig
from recoworld.simulators.llm_shared import ChatModelNode
from recoworld.simulators.llm_user import LLMSimulatorConfig
from recoworld.simulators.population import SyntheticPopulation
from recoworld.simulators.statistical import StatisticalUserConfig


@dataclass
class SyntheticWorldConfig:
    """A generated catalog: :meth:`recoworld.catalog.Catalog.synthetic`."""

    _target_: str = "recoworld.catalog.Catalog.synthetic"
    n_items: int = 1000
    n_genres: int = 12
    feature_dim: int = 16
    popularity_exponent: float = 1.0
    multi_genre_prob: float = 0.3
    seed: int = 0
    name: Optional[str] = None


@dataclass
class MovieLensWorldConfig:
    """The calibrated MovieLens-100K world's catalog:
    :func:`recoworld.simulators.calibrated.calibrated_catalog`.

    ``path`` is the calibrated-world artifact folder; ``null`` reads RecoWorld's cache, where
    the first use fetches MovieLens-100K and calibrates the world (``recoworld calibrate``).
    Choosing this world makes ``simulator=calibrated`` (its fitted users) the default simulator.
    """

    _target_: str = "recoworld.simulators.calibrated.calibrated_catalog"
    path: Optional[str] = None


@dataclass
class StatisticalSimulatorConfig:
    """Batched statistical users: :class:`recoworld.simulators.statistical.StatisticalUsers`.

    ``config`` holds every field of
    :class:`~recoworld.simulators.statistical.StatisticalUserConfig` (how users respond;
    its module's docstring gives the equations) and ``population`` every field of
    :class:`~recoworld.simulators.population.SyntheticPopulation` (who the users are).
    Both become those dataclasses when the simulator is instantiated with
    ``_convert_="object"``; the catalog comes from the world.
    """

    _target_: str = "recoworld.simulators.statistical.StatisticalUsers"
    config: StatisticalUserConfig = field(default_factory=StatisticalUserConfig)
    population: SyntheticPopulation = field(default_factory=SyntheticPopulation)
    device: str = "${device}"
    kernel: str = "${kernel}"


@dataclass
class CalibratedSimulatorConfig:
    """The users fitted to MovieLens-100K: :func:`recoworld.simulators.calibrated.calibrated_users`.

    ``population`` is a population spec selecting and weighting the fitted users, e.g.
    ``{age: [0, 24], favourite_genre: Sci-Fi}`` or ``{patience: low}`` (the spec language is
    in :mod:`recoworld.simulators.calibrated`); ``config`` overrides fitted fields of
    :class:`~recoworld.simulators.statistical.StatisticalUserConfig`, e.g.
    ``{leave_base: -2.0}``; ``path`` is the world's artifact.
    """

    _target_: str = "recoworld.simulators.calibrated.calibrated_users"
    path: Optional[str] = "${oc.select:world.path,null}"
    population: Any = None
    config: Any = None
    device: str = "${device}"
    kernel: str = "${kernel}"


@dataclass
class SlateEnvConfig:
    """``RecoWorld/Slate-v0``'s native vector env built by ``gymnasium.make_vec``.

    ``num_envs`` users are served in lock-step; the other fields are the env's arguments
    (see :class:`recoworld.envs.slate.SlateEnv`'s manual). ``reward`` is a preset name
    (``clicks``, ``watch_time``, ``retention``, ``compliance``, ``mix``) or a mapping of
    weights such as ``{clicks: 1.0, retention: 5.0}``.
    """

    _target_: str = "gymnasium.make_vec"
    id: str = "RecoWorld/Slate-v0"
    vectorization_mode: str = "vector_entry_point"
    num_envs: int = 256
    slate_size: int = 10
    num_candidates: int = 50
    history_length: int = 10
    max_steps: int = 100
    reward: Any = "clicks"
    action_format: str = "slate"
    candidate_features: bool = True
    kernel: str = "${kernel}"


@dataclass
class ExperimentConfig:
    """What to run: a lineup of agents, each over several seeds.

    Attributes:
        agents: names of configs in ``conf/agent/`` run one after the other. Ignored
            when ``agent=NAME`` selects a single agent.
        seeds: one rollout per agent and seed; seed ``s`` serves the users seeded
            ``s*num_envs .. s*num_envs + num_envs - 1``, so seeds never share a user, and
            every agent meets the same users under the same seed.
        steps: batched env steps per rollout.
        progress: show a progress bar.
        plots: write the PNG plots.
        torch_threads: torch intra-op threads. The statistical simulator works on small
            tensors for which extra threads cost more than they give, above all on a busy
            machine.
        log_candidates: also log each request's candidate ids (needed to replay the
            requests to another policy for off-policy evaluation; each row grows by a list of
            candidate ids).
        segments: named population specs (``simulator=calibrated``), e.g.
            ``{young_scifi: {age: [0, 24], favourite_genre: Sci-Fi}, impatient: {patience: low}}``;
            the lineup runs again on each segment (the simulator's population restricted
            to it) and ``metrics.json`` gains ``segments``, their results per agent.
    """

    agents: list[str] = field(default_factory=lambda: ["random", "most_popular", "oracle"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 100
    progress: bool = True
    plots: bool = True
    torch_threads: int = 1
    log_candidates: bool = False
    segments: Any = None


@dataclass
class RecoWorldConfig:
    """The root of ``recoworld run``'s config: one option of each group, the device, the
    kernel (``torch``, or ``c``: the statistical users' step and the env's bookkeeping in
    fused CPU kernels, see :class:`recoworld.envs.slate.SlateEnv`), and ``llm``, the chat
    model of the LLM and hybrid users (``simulator=llm``/``hybrid`` refer to it as
    ``llm: ${llm}``): every field of :class:`recoworld.llm.LLMConfig`."""

    world: Any = MISSING
    simulator: Any = MISSING
    env: Any = MISSING
    agent: Any = None
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    device: str = "cpu"
    kernel: str = "torch"
    llm: ChatModelNode = field(default_factory=ChatModelNode)


SCHEMAS = {
    "schema/recoworld": RecoWorldConfig,
    "schema/world/synthetic": SyntheticWorldConfig,
    "schema/world/movielens": MovieLensWorldConfig,
    "schema/simulator/statistical": StatisticalSimulatorConfig,
    "schema/simulator/calibrated": CalibratedSimulatorConfig,
    "schema/simulator/llm": LLMSimulatorConfig,
    "schema/simulator/hybrid": HybridSimulatorConfig,
    "schema/env/slate": SlateEnvConfig,
    "schema/experiment/default": ExperimentConfig,
}


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore under ``schema/...`` (idempotent)."""
    store = ConfigStore.instance()
    for path, node in SCHEMAS.items():
        group, name = path.rsplit("/", 1)
        store.store(group=group, name=name, node=node)
