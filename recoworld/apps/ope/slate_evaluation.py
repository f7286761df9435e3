"""``recoworld ope evaluate`` on a RecoWorld log: slate estimators, and selection with RecoWorld's users.

The log's rows are read as slates (:class:`~recoworld.agents.off_policy.LoggedSlates`); the
estimators are those of the study (:data:`~recoworld.apps.ope.config.ESTIMATORS`) that the
logged propensities allow, with the study's click model and intervals
(:meth:`~recoworld.apps.ope.study.Study.estimate`: DM and cascade DR refit the click model
on every resample).

:func:`select_for_slates` is simulate-then-select with the simulator as the world: logs of
the same size, slate length and candidates are drawn from RecoWorld's users on the log's
catalog by the logging policy (popularity under softmax or epsilon-soft exploration) whose
median log slate propensity is closest to the real log's (:func:`log_probability`: by the
full prefix, or the positions', where the log has no whole slate's), so that the spread of
the weights is alike; the truth is the policy's on-policy value among held-out simulated
users. The simulated users stand in for the log's: the recommendation says which estimator
copes with a log of this shape and this policy, not how the log's users behave. A
simulated log is drawn :data:`SIMULATED_USERS` users at a time (:func:`simulated_log`).

The value estimated is that of the reward the log's run paid (:func:`paid_reward`: clicks,
watch time or likes, each read per position from the log), and the simulated truth is of
the same reward.

The logged propensities are checked before any policy is loaded, with the log's column
names in the errors (:func:`check_propensities`); the weights of each layout are tested for
support (:func:`~recoworld.ope.diagnostics.support_problem`), DM's by the position weights,
since its click model learns each item's clicks at each position.

An error the agent raises (in ``setup``, ``act``, ``propensities``...) stops the command with
one line naming ``--policy``, the method, the step of the evaluation it was called in, and the
error with the file and line that raised it (:class:`GuardedAgent`), as ``ope evaluate`` names
a bandit policy's; RecoWorld's own errors are not taken for the agent's.

A whole slate's ``propensity`` that is too large (the top position's probability logged in
its place, say) is caught only where the log also has ``position_propensity`` or
``cascade_propensity`` to hold it against (:func:`check_slate_within_positions`, and the
cascade's full prefix): alone, a propensity column gives no sign of it beyond weights that
average surely below 1, which are reported as a target the log does not identify.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.errors import HydraException

from recoworld.apps.ope.config import ESTIMATORS, REWARD_COLUMNS, StudyConfig
from recoworld.apps.ope.judgement import judge
from recoworld.wording import plural
from recoworld.ope.base import min_resamples
from recoworld.ope.diagnostics import weight_diagnostics
from recoworld.ope.selection import Selection, summarise_errors

#: Which logged propensity each slate estimator needs (DM needs none).
NEEDS = {"IPS": "propensity", "SNIPS": "propensity", "IIPS": "position_propensity",
         "SNIIPS": "position_propensity", "RIPS": "cascade_propensity", "SNRIPS": "cascade_propensity",
         "CascadeDR": "cascade_propensity"}
#: Which weights each estimator reweights by (the diagnostics that judge it).
LAYOUT = {"IPS": "slate", "SNIPS": "slate", "IIPS": "position", "SNIIPS": "position", "RIPS": "cascade",
          "SNRIPS": "cascade", "CascadeDR": "cascade"}
#: The log's column behind each layout of weights.
COLUMN = {"slate": "propensity", "position": "position_propensity", "cascade": "cascade_propensity"}
#: Users a simulated log is drawn from at once (:func:`simulated_log`).
SIMULATED_USERS = 5_000
#: Candidate logging policies of the simulated logs: (kind, temperature or epsilon).
SIMULATED_LOGGERS = (("softmax", 0.1), ("softmax", 0.3), ("softmax", 1.0), ("softmax", 3.0),
                     ("epsilon_soft", 0.1), ("epsilon_soft", 0.5), ("epsilon_soft", 1.0))


#: The agent's methods that the evaluation calls: an error in one is the agent's (:class:`GuardedAgent`).
AGENT_METHODS = ("setup", "act", "propensities", "evaluation_propensities", "action_distribution",
                 "next_item_distribution", "update", "finish")


class AgentRaised(Exception):
    """A method of the evaluated agent raised: the method, and its error in one line. Not a
    ``ValueError``, so that no check of RecoWorld's on the way takes it for one of its own."""

    def __init__(self, method: str, error: Exception):
        from recoworld.apps.ope.policies import raised

        super().__init__(f"{method} raised {raised(error)}")
        self.method = method


class GuardedAgent:
    """The evaluated agent, each call of its :data:`AGENT_METHODS` raising :class:`AgentRaised`
    where the agent's code raises; every other attribute is the agent's own."""

    def __init__(self, agent):
        self._agent = agent

    def __getattr__(self, name: str):
        if name == "_agent":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        value = getattr(self._agent, name)
        if name not in AGENT_METHODS or not callable(value):
            return value

        def guarded(*args, **kwargs):
            try:
                return value(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the user's agent may raise anything
                raise AgentRaised(name, error) from None

        return guarded


@contextmanager
def agent_step(spec: str, step: str) -> Iterator[None]:
    """Turn the agent's error in ``step`` of the evaluation into a usage error naming ``--policy``,
    the step and the error, in place of a traceback."""
    try:
        yield
    except AgentRaised as error:
        raise ValueError(f"--policy {spec!r}: {error} while {step}; fix the agent (call its {error.method} in Python "
                         "for the traceback)") from None


def run_folder(log: str) -> Path | None:
    """The run directory the log comes from: ``--log`` itself, or up to three folders above an
    episodes part, holding a run's config (in its ``status.json``, or Hydra's
    ``.hydra/config.yaml``); None for a log outside a run directory. Another command's
    ``status.json`` above a log (``recoworld robustness`` writes one too) is not a run's."""
    from recoworld.apps.run.rundir import RunDirectoryError, read_status

    path = Path(log).resolve()
    for folder in (path, *path.parents[:3]):
        if (folder / ".hydra" / "config.yaml").is_file():
            return folder
        try:
            status = read_status(folder) or {}
        except RunDirectoryError:  # damaged: not a run this can read, as where there is none
            continue
        if isinstance(status.get("config"), dict) and isinstance(status["config"].get("world"), dict):
            return folder
    return None


def run_config(log: str):
    """The config that the log's run ran, as the viewer reads it
    (:func:`recoworld.apps.view.data.run_config`: its ``status.json``'s, not ``.hydra/config.yaml``,
    which a refused later start into the folder rewrites); None for a log outside a run directory."""
    from recoworld.apps.view.data import run_config as ran

    folder = run_folder(log)
    return None if folder is None else ran(folder)[0]


def paid_reward(log: str) -> str:
    """The reward the log's run paid (its ``env.reward``), as a key of
    :data:`~recoworld.apps.ope.config.REWARD_COLUMNS`: ``clicks`` for a log outside a run
    directory. A reward that is no sum over the slate's positions (``retention``, ``mix``, a
    weighted mapping) is refused: the log holds no per-position column of it to weight."""
    from omegaconf import OmegaConf

    from recoworld.rewards import RewardWeights

    ran = run_config(log)
    if ran is None:
        return "clicks"
    # The config is kept unresolved: the run paid the reward its interpolation gave.
    spec = OmegaConf.select(ran, "env.reward", default="clicks")
    spec = OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else spec
    weights = {name: weight for name, weight in RewardWeights.parse(spec).as_dict().items() if weight}
    if list(weights.values()) == [1.0] and next(iter(weights)) in REWARD_COLUMNS:
        return next(iter(weights))
    raise ValueError(f"{log}: its run paid env.reward={spec} (weights {weights}), but a slate log holds a reward per "
                     f"position only for {', '.join(REWARD_COLUMNS)} (columns {', '.join(REWARD_COLUMNS.values())}); "
                     "evaluate the log of a run paid one of them (env.reward=clicks, say)")


def load_catalog(log: str, world: str | None, composed):
    """The log's catalog: ``--world``, else the world of its run (:func:`run_config`), else ``synthetic``."""
    from hydra.utils import instantiate

    ran = run_config(log) if world is None else None
    if ran is not None:
        return instantiate(ran.world)
    if world is not None and composed is not None:
        return instantiate(composed.world)
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("recoworld.conf", version_base=None):
        return instantiate(compose(config_name="config", overrides=[f"world={world or 'synthetic'}"]).world)


def check_recommender(agent, spec: str) -> None:
    """Refuse a ``--policy`` that is no Recommender (without ``setup`` and ``act``), before it
    is set up: a bandit policy of a table log given for a RecoWorld log failed on its missing
    ``setup`` with an AttributeError and a traceback."""
    missing = [name for name in ("setup", "act") if not callable(getattr(agent, name, None))]
    if missing:
        bandit = (" (its action_dist(rows, n_actions, n_positions) is what a table or Open Bandit log asks of a "
                  "policy)" if callable(getattr(agent, "action_dist", None)) else "")
        raise ValueError(f"--policy {spec!r} is {type(agent).__name__}, which has no {' nor '.join(missing)}: a "
                         f"RecoWorld log is evaluated with a Recommender{bandit}; subclass "
                         "recoworld.agents.base.Recommender, or give an agent config name or an SB3 .zip")


def evaluate_slate_log(args) -> dict:
    """The report of a RecoWorld log (see :mod:`recoworld.apps.ope.evaluate`)."""
    from recoworld.agents.off_policy import LoggedSlates
    from recoworld.apps.ope.policies import PolicyOnLog, load_agent, policy_kwargs
    from recoworld.apps.ope.sources import read_recoworld
    from recoworld.apps.ope.study import EVALUATION_PSCORE, Study, target_side
    from recoworld.envs.slate import SlateVectorEnv

    frame = read_recoworld(args.log, args.agent)
    reward = paid_reward(args.log)
    try:
        data = LoggedSlates.from_log(frame, reward=REWARD_COLUMNS[reward])
    except ValueError as error:  # slates of several lengths, a slate item outside its candidates
        raise ValueError(f"{args.log}: {error}") from None
    folds = StudyConfig().n_folds
    if len(data.action) < folds:  # said here in the log's terms, not as the study's log_sizes and n_folds
        raise ValueError(f"{args.log} holds {plural(len(data.action), 'logged slate')}, but an evaluation needs at "
                         f"least {folds} (the click model behind DM and cascade DR is cross-fitted over {folds} folds "
                         "of the slates); log more rounds")
    check_propensities(data, args.log)
    try:
        agent, composed = load_agent(args.policy, policy_kwargs(args.policy_arg), args.world, args.override,
                                     args.sb3_algo)
        catalog = load_catalog(args.log, args.world, composed)
    except HydraException as error:  # a --world or --override that conf/ refuses
        raise composition_error(args, error) from None
    check_recommender(agent, args.policy)
    agent = GuardedAgent(agent)
    n, K = data.action.shape
    C = data.candidate_ids.shape[1]
    if data.candidate_ids.max() >= catalog.n_items:
        raise ValueError(f"the log shows item {int(data.candidate_ids.max())}, but the catalog {catalog.name!r} has "
                         f"{plural(catalog.n_items, 'item')}; give the log's world with --world")
    env = SlateVectorEnv(num_envs=1, catalog=catalog, slate_size=K, num_candidates=C, max_steps=1)
    with agent_step(args.policy, f"being set up for the log's catalog ({plural(catalog.n_items, 'item')}; slates of "
                                 f"{K} from {plural(C, 'candidate')})"):
        agent.setup(env, seed=args.seed)
    template, _ = env.reset(seed=args.seed)
    target = PolicyOnLog(agent, template, args.policy)
    on_log = f"asked about the log's {n} rows"
    with agent_step(args.policy, on_log):
        side = target_side(target, data.observation(catalog), data.action)
    logged = [name for name in ESTIMATORS if name not in NEEDS or getattr(data, NEEDS[name]) is not None]
    if logged == ["DM"]:
        raise ValueError(f"{args.log} logged no propensities (columns propensity, position_propensity, "
                         "cascade_propensity are null); log with an agent that states them")
    # the policy's propensities() (or evaluation_propensities()) may leave out "position" and "cascade" (Recommender.propensities)
    stated = [layout for layout, argument in EVALUATION_PSCORE.items() if argument in side.propensities]
    estimators = [name for name in logged if (name not in LAYOUT or LAYOUT[name] in stated)
                  and (name != "CascadeDR" or target.exact_following)]
    if estimators == ["DM"]:
        wanted = [layout for layout, column in COLUMN.items() if getattr(data, column) is not None]
        raise ValueError(f"--policy {args.policy!r}: its {target.propensity_method}() gives "
                         f"{', '.join(map(repr, stated))}, but "
                         f"{args.log} logged only {', '.join(COLUMN[layout] for layout in wanted)}: no weighting "
                         f"estimator has both; return {' or '.join(map(repr, wanted))} from "
                         f"{target.propensity_method}() too")
    config = StudyConfig(log_sizes=(n,), num_candidates=C, slate_size=K, n_items=catalog.n_items,
                         estimators=tuple(estimators), n_bootstrap=args.bootstrap, n_refits=args.refits,
                         alpha=args.alpha, learned=(), sessions=False, truth_users=args.truth_users, reward=reward)
    study = Study(config, catalog)
    with agent_step(args.policy, on_log):
        rows = study.estimate(frame, {"policy": target}, args.seed)
    # the columns in the bandit rows' order (evaluate_bandit): how the interval was drawn, then its count
    rows = [{**{key: value for key, value in row.items() if key not in ("target", "n_replicates")},
             "interval": "refit" if row["estimator"] in ("DM", "CascadeDR") else "rows",
             "n_replicates": row["n_replicates"]} for row in rows]
    diagnostics = slate_diagnostics(data, side.propensities)
    selection = select_for_slates(study, agent, target, data, estimators, args)
    # DM's click model learns each item's clicks at each position: it needs the log to show the
    # target's items at their positions
    layout = {**LAYOUT, "DM": next(name for name in ("position", "cascade", "slate") if name in diagnostics)}
    trusted, sentence, warnings = judge(rows, diagnostics, layout, tuple(LAYOUT), selection, args, COLUMN)
    if args.world is None and run_folder(args.log) is None:
        warnings.append(f"{args.log} is not in a run directory and no --world was given: its catalog was taken to be "
                        f"world=synthetic's ({catalog.n_items} items); give --world if the log came from another world")
    unstated = [layout for layout in ("position", "cascade") if layout not in stated]
    if unstated:
        skipped = [name for name in logged if name in LAYOUT and LAYOUT[name] in unstated]
        warnings.append(f"--policy {args.policy!r}: its {target.propensity_method}() gives no "
                        f"{' nor '.join(map(repr, unstated))}, "
                        f"so {', '.join(skipped)} were left out; return them to have these estimators")
    if (frame["step"] > 0).any():
        warnings.append(f"{int((frame['step'] > 0).sum())} of {n} rows are later steps of an episode; the policy saw "
                        "them as a first step (empty history), which is exact only for policies that ignore history")
    return {"kind": "slate", "n": n, "slate_length": K, "candidates": C,
            "value": f"expected {reward} per slate (column {REWARD_COLUMNS[reward]})",
            "estimates": rows,
            "diagnostics": diagnostics, "selection": _as_dict(selection),
            "verdict": {"trustworthy": trusted, "sentence": sentence}, "warnings": warnings}


def composition_error(args, error: Exception) -> ValueError:
    """Hydra's refusal of ``--world`` or an ``--override`` (a world config that does not exist,
    a key the config lacks) in one line, without the config search path."""
    given = [*([f"--world {args.world}"] if args.world else []), *(f"--override {o}" for o in args.override)]
    reason = " ".join(str(error).split("Config search path")[0].split())
    return ValueError(f"--policy {args.policy!r}{' with ' + ' '.join(given) if given else ''}: the config does not "
                      f"compose ({reason}); give a world of conf/world and overrides of keys it has")


def check_propensities(data, log: str) -> None:
    """The logged propensities checked as the slate estimators will read them
    (:class:`~recoworld.ope.SlateFeedback`: each in (0, 1], prefixes non-increasing, the full
    prefix's equal to the whole slate's), and the whole slate's against its positions'
    (:func:`check_slate_within_positions`), before any policy is loaded; an error names the
    log and its columns, and counts rows from 0 as the log (of ``--agent``) holds them."""
    from recoworld.ope import SlateFeedback

    given = {"pscore": data.propensity, "pscore_item_position": data.position_propensity,
             "pscore_cascade": data.cascade_propensity}
    if all(value is None for value in given.values()):
        return
    try:
        SlateFeedback(data.reward, **given)
    except ValueError as error:
        message = str(error)
        for name, column in (("pscore_item_position", "position_propensity"), ("pscore_cascade", "cascade_propensity"),
                             ("pscore", "propensity")):
            message = re.sub(rf"\b{name}\b", column, message)
        raise ValueError(f"{log}: {message}") from None
    if data.propensity is not None and data.position_propensity is not None:
        check_slate_within_positions(data.propensity, data.position_propensity, log)


def check_slate_within_positions(propensity: np.ndarray, position_propensity: np.ndarray, log: str) -> None:
    """Refuse a whole slate's probability above that of one of its items at its position.

    The logged slate shows item ``a_k`` at position ``k``, so the event "this whole slate" lies
    within "``a_k`` at position ``k``": ``propensity <= position_propensity[k]`` for every
    ``k``, whatever the logger. A row above it says that ``propensity`` is not the whole
    slate's probability; the usual cause is the top position's probability logged in its
    place. The mean importance weight may not reveal that: a slate's probability logged too
    large lowers the weights, which reads as part of the target outside the log's support,
    and only once the mean is surely below 1 (an epsilon-soft logger's log, whose lower
    positions are nearly certain once the top one is drawn, averages about 0.93).
    """
    bound = position_propensity.min(axis=1)
    above = propensity > bound * (1 + 1e-6) + 1e-12  # beyond float rounding of one probability
    if not above.any():
        return
    row = int(np.flatnonzero(above)[0])
    position = int(position_propensity[row].argmin())
    raise ValueError(
        f"{log}: propensity exceeds position_propensity on {int(above.sum())} of {len(propensity)} rows (row {row}: "
        f"propensity {propensity[row]:.6g}, but position_propensity[{position}] is {bound[row]:.6g}); a whole slate "
        "is never more probable than one of its items at its position, so propensity is not the whole ranked "
        "slate's probability (the top position's, logged in its place?): log propensity as the probability of the "
        "whole slate, or leave it null to evaluate with position_propensity alone")


def slate_diagnostics(data, target: dict) -> dict:
    """Weight diagnostics per layout both the log and the target state: whole slate,
    positions, cascade (full prefix)."""
    from recoworld.apps.ope.study import EVALUATION_PSCORE

    out = {}
    for layout, column in COLUMN.items():
        logged, given = getattr(data, column), EVALUATION_PSCORE[layout]
        if logged is not None and given in target:
            out[layout] = weight_diagnostics(np.asarray(target[given]) / logged)
    return out


def select_for_slates(study, agent, target, data, estimators, args) -> Selection:
    """Simulate-then-select with RecoWorld's users (module docstring)."""
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy
    from recoworld.agents.off_policy import LoggedSlates

    n = len(data.action)
    # the spread is matched on a column the log has, the whole slate's where it can be
    column = next(column for column in COLUMN.values() if getattr(data, column) is not None)
    wanted = np.median(log_probability(getattr(data, column), column))

    def logger(kind, value):
        return (SoftmaxPolicy(base=MostPopularAgent(), temperature=value) if kind == "softmax"
                else EpsilonSoft(base=MostPopularAgent(), epsilon=value))

    def spread(policy):
        simulated = LoggedSlates.from_log(study.log(policy, min(n, 500), 10**8))
        return np.median(log_probability(getattr(simulated, column), column))

    kind, value = min(SIMULATED_LOGGERS, key=lambda choice: abs(spread(logger(*choice)) - wanted))
    with agent_step(args.policy, f"serving {study.config.truth_users} simulated users for its true value "
                                 "(simulate-then-select)"):
        truth, _ = study.true_value(agent)
    config = study.config
    # only the estimates count here: the fewest resamples and refits whose intervals are allowed
    study.config = StudyConfig(**{**config.__dict__, "n_bootstrap": min_resamples(config.alpha), "n_refits": 2})
    errors = []
    for s in range(args.sims):
        with agent_step(args.policy, f"asked about simulated log {s + 1} of {args.sims} (simulate-then-select)"):
            rows = study.estimate(simulated_log(study, logger(kind, value), n, s, args.sims), {"policy": target},
                                  args.seed + s)
        errors.append([next(r["estimate"] for r in rows if r["estimator"] == name) - truth for name in estimators])
    study.config = config
    bias, rmse, recommended = summarise_errors(np.asarray(errors), estimators)
    return Selection(bias, rmse, recommended, truth, args.sims,
                     f"simulate-then-select (RecoWorld users; logger {kind} {value} matched on the propensity spread)")


def log_probability(propensity: np.ndarray, column: str) -> np.ndarray:
    """``[n]`` log-probability of each logged slate by ``column``: the whole slate's, the
    full prefix's, or for positions alone the sum over positions (the slate's probability
    were the positions independent)."""
    if column == "position_propensity":
        return np.log(propensity).sum(1)
    return np.log(propensity if column == "propensity" else propensity[:, -1])


def simulated_log(study, policy, n: int, seed: int, sims: int):
    """``study.log(policy, n, seed)`` drawn :data:`SIMULATED_USERS` users at a time: a log of
    a million rounds is never one env of a million users. Part ``j`` has seed
    ``seed + j * sims``, apart from every other simulated log's (``seed < sims``)."""
    parts = [study.log(policy, min(SIMULATED_USERS, n - start), seed + j * sims)
             for j, start in enumerate(range(0, n, SIMULATED_USERS))]
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _as_dict(selection: Selection) -> dict:
    from dataclasses import asdict

    return asdict(selection)
