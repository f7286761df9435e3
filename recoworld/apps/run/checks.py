"""What ``recoworld run`` checks before it touches the run directory, and what of a config a
resumed run must repeat.

- :func:`experiment_settings` constructs :class:`~recoworld.conf.schema.ExperimentConfig`
  from the composed config, which checks seeds, steps and threads (Hydra composes the
  schema without constructing it);
- :func:`check_segments` and :func:`check_overrides` refuse what the runner cannot do;
- :func:`run_identity` is the part of a config that decides the rows of the log, and
  :func:`config_differences` names the keys where two of them differ (a resumed run whose
  config differs from the saved one is refused with them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from recoworld.conf.schema import ExperimentConfig

#: The simulator whose population specs ``experiment.segments`` restrict.
CALIBRATED_USERS = "recoworld.simulators.calibrated.calibrated_users"

#: Settings of a chat model (any ``llm`` node) that change how calls are made, paid for or
#: cached, not what the model answers: a resumed run may change them (e.g. raise a budget
#: that stopped the run, or point to the server's new address).
OPERATIONAL_LLM_KEYS = frozenset({
    "api_key", "api_key_env", "base_url", "n_threads", "batch_size", "cache_dir", "max_concurrency",
    "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "max_total_tokens", "max_cost_usd", "max_calls",
})

#: Keys of ``experiment`` that decide which rollouts run and what they log.
EXPERIMENT_IDENTITY = ("seeds", "steps", "log_candidates", "segments")


class ExperimentConfigError(ValueError):
    """The config asks for something the runner cannot do (the message says what to change)."""


def experiment_settings(cfg: DictConfig) -> ExperimentConfig:
    """``cfg.experiment`` as a checked :class:`ExperimentConfig`.

    Raises:
        ExperimentConfigError: a value is out of range; the message names the key, the
            value and the fix.
    """
    try:
        settings = OmegaConf.to_object(cfg.experiment)
        if not isinstance(settings, ExperimentConfig):  # a plain mapping, not the schema's node
            settings = ExperimentConfig(**settings)
    except ValueError as err:
        raise ExperimentConfigError(str(err)) from None
    return settings


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse overrides of ``simulator.llm``: the LLM and hybrid users' chat model is the
    root ``llm`` node (``simulator.llm`` only refers to it), so there is one key for each
    setting."""
    for override in overrides:
        key = override_key(override)
        if key == "simulator.llm" or key.startswith("simulator.llm."):
            raise ExperimentConfigError(f"{override!r}: the simulator's chat model is the root llm node; "
                                        f"override llm{key[len('simulator.llm'):]} instead")


def override_key(override: str) -> str:
    """The key of a command-line override (``+a.b=1`` -> ``a.b``)."""
    return override.lstrip("+~").split("=", 1)[0]


def check_segments(cfg: DictConfig) -> None:
    """Refuse ``experiment.segments`` that the simulator cannot draw, before anything runs."""
    segments = cfg.experiment.get("segments")
    if not segments:
        return
    if cfg.simulator.get("_target_") != CALIBRATED_USERS:
        raise ExperimentConfigError(
            f"experiment.segments selects fitted users by population specs, but the simulator is "
            f"{cfg.simulator.get('_target_')}; use simulator=calibrated (world=movielens)")
    for name, spec in segments.items():
        if not isinstance(spec, DictConfig):
            raise ExperimentConfigError(f"experiment.segments.{name}={spec!r}; a segment is a population spec "
                                        "such as {patience: low}")


def run_identity(cfg: DictConfig, lineup: Mapping[str, DictConfig]) -> dict:
    """What a resumed run must repeat: the resolved world, simulator, env, device and
    kernel, the agents of the lineup, and ``experiment``'s :data:`EXPERIMENT_IDENTITY`,
    without the :data:`OPERATIONAL_LLM_KEYS` of any ``llm`` node. (Progress bars, plots and
    torch threads change no row of the log.)"""
    tree = {key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
            for key in ("world", "simulator", "env", "device", "kernel")}
    tree["agents"] = {name: OmegaConf.to_container(agent, resolve=True) for name, agent in lineup.items()}
    experiment = cfg.experiment
    tree["experiment"] = {key: OmegaConf.to_container(experiment[key], resolve=True)
                          if OmegaConf.is_config(experiment.get(key)) else experiment.get(key)
                          for key in EXPERIMENT_IDENTITY}
    return _without_operational_llm_keys(tree)


def _without_operational_llm_keys(tree, parent: str | None = None):
    if isinstance(tree, dict):
        return {key: _without_operational_llm_keys(value, key) for key, value in tree.items()
                if not (parent == "llm" and key in OPERATIONAL_LLM_KEYS)}
    if isinstance(tree, list):
        return [_without_operational_llm_keys(value) for value in tree]
    return tree


def config_differences(saved: Mapping, now: Mapping) -> list[str]:
    """``key: saved X, now Y`` for every dotted key whose value differs between two
    identities (a key present in one only counts, with the value ``absent``)."""
    before, after = _flatten(saved), _flatten(now)
    return [f"{key}: saved {before.get(key, 'absent')!r}, now {after.get(key, 'absent')!r}"
            for key in sorted(before.keys() | after.keys()) if before.get(key, _ABSENT) != after.get(key, _ABSENT)]


_ABSENT = object()


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
