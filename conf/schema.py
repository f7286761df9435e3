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

# The users' configs come from their torch-free modules: composing a config (and so a
# mistake in it, --help and --cfg) does not import torch or the simulators.
from recoworld.simulators.hybrid_config import HybridSimulatorConfig
from recoworld.simulators.llm_config import ChatModelNode, LLMSimulatorConfig
from recoworld.simulators.population import SyntheticPopulation
from recoworld.simulators.statistical_config import StatisticalUserConfig


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
    check_responses: bool = True
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
        resume: finish the run already in the run directory (``hydra.run.dir``): the
            rollouts its ``status.json`` lists as complete are kept and the others run;
            the config must repeat the saved one (world, simulator, env, device, kernel,
            lineup, seeds, steps, log_candidates, segments). Without it, a run into a
            directory that holds results is refused.
        executor: where the rollouts run: ``local`` (one after the other in this
            process) or ``ray`` (each agent x seed x segment a Ray task, see
            :mod:`recoworld.apps.run.executor`; needs ``pip install 'recoworld[ray]'``). Both
            write the same log rows and metrics.
        ray_address: with ``executor=ray``, the cluster to join (``auto``,
            ``ray://HOST:10001``); ``None`` starts Ray on this machine with all its cores.
        ray_retries: with ``executor=ray``, how many times a rollout whose Ray worker died
            (a crash, out of memory, a lost node) runs again; it is seeded, so a rerun logs
            the rows of an uninterrupted one. An error the rollout raises is not retried.
        tensorboard: also write TensorBoard event files under ``<run_dir>/tensorboard/``:
            per agent and seed the rollout's return, reward, CTR, return rate and
            compliance per step, and SB3 agents' training curves (needs the
            ``tensorboard`` extra; see :mod:`recoworld.apps.run.hooks`).
        max_llm_calls: the cost guard of LLM-driven users and LLM agents: a run whose estimated LLM
            calls exceed it is refused before it starts, with the estimate; raise it to
            confirm the cost (see :mod:`recoworld.apps.run.cost`).

    Hydra composes this schema without constructing it; ``recoworld run`` constructs it
    (``OmegaConf.to_object``) before it loads the runner, and the runner again before it
    touches the run directory. Construction refuses an empty or repeated seed list, a
    negative seed, ``steps`` or ``torch_threads`` below 1, naming the key, the value and
    the fix.
    """

    agents: list[str] = field(default_factory=lambda: ["random", "most_popular", "oracle"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 100
    progress: bool = True
    plots: bool = True
    torch_threads: int = 1
    log_candidates: bool = False
    segments: Any = None
    resume: bool = False
    executor: str = "local"
    ray_address: Optional[str] = None
    ray_retries: int = 3
    tensorboard: bool = False
    max_llm_calls: int = 20_000

    def __post_init__(self) -> None:
        self._check_executor()
        seeds = list(self.seeds)
        if not seeds:
            raise ValueError("experiment.seeds=[] is empty; give at least one seed, e.g. experiment.seeds=[0]")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"experiment.seeds={seeds} holds {seed!r}; a seed is an integer >= 0 (seed s "
                                 "serves the users seeded s*num_envs ...), e.g. experiment.seeds=[0,1,2]")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"experiment.seeds={seeds} lists seed {repeated[0]} more than once; a seed is one "
                             "rollout per agent, and a repeated one would run and count the same users twice: "
                             "give distinct seeds, e.g. experiment.seeds=[0,1,2]")
        for key in ("steps", "torch_threads"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"experiment.{key}={value!r}; it must be an integer >= 1, e.g. "
                                 f"experiment.{key}={1 if key == 'torch_threads' else 100}")
        if isinstance(self.max_llm_calls, bool) or not isinstance(self.max_llm_calls, int) or self.max_llm_calls < 0:
            raise ValueError(f"experiment.max_llm_calls={self.max_llm_calls!r}; it must be an integer >= 0 (the "
                             "LLM calls a run may make before it is refused), e.g. experiment.max_llm_calls=20000")

    def _check_executor(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ValueError(f"experiment.executor={self.executor!r}; choose local (this process) or ray "
                             "(Ray tasks), e.g. experiment.executor=ray")
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(f"experiment.ray_address={self.ray_address!r} is set but experiment.executor="
                             f"{self.executor}; add experiment.executor=ray, or drop the address")
        if self.ray_address is not None and not (isinstance(self.ray_address, str) and self.ray_address.strip()):
            raise ValueError(f"experiment.ray_address={self.ray_address!r}; give a cluster address such as auto "
                             "or ray://HOST:10001, or leave it null to start Ray on this machine")
        retries = self.ray_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"experiment.ray_retries={retries!r}; give how many times a rollout whose Ray worker "
                             "died runs again, an integer >= 0, e.g. experiment.ray_retries=3")


@dataclass
class RecoWorldConfig:
    """The root of ``recoworld run``'s config: one option of each group, the device, the
    kernel (``auto``: the C kernels on CPU where they run, torch otherwise; ``torch``; or
    ``c``: the statistical users' step and the env's bookkeeping in fused CPU kernels, see
    :class:`recoworld.envs.slate.SlateEnv`), and ``llm``, the chat
    model of the LLM and hybrid users (``simulator=llm``/``hybrid`` refer to it as
    ``llm: ${llm}``): every field of :class:`recoworld.llm.LLMConfig`."""

    world: Any = MISSING
    simulator: Any = MISSING
    env: Any = MISSING
    agent: Any = None
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    device: str = "cpu"
    kernel: str = "auto"
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
