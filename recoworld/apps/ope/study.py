r"""``recoworld ope``: how well each off-policy estimator recovers a value the simulator knows.

The setting is a one-step slate bandit: each logged round is a fresh user of
``RecoWorld/Slate-v0`` (first step: no history) served ``K`` of ``C`` candidates by a
*logging* policy; the reward is the clicks, observed per position. For every logging
policy, log size and seed the study logs ``n`` rounds (:func:`~recoworld.apps.run.loop.rollout`
into the episodes schema, candidates included), reads them back as slates, and asks every
estimator for the value of every *target* policy, with a percentile-bootstrap CI.

**Truth.** The value of a target policy is ``V = E_user E_{slate ~ pi} E[clicks]``. The
inner expectation is exact: :meth:`StatisticalUsers.expected_clicks` sums the cascade's
examination-weighted click probabilities of the slate (the env's ground-truth channel).
The outer ones are on-policy Monte Carlo over ``truth_users`` held-out users (never in
any log) and, for a stochastic target, ``truth_draws`` slates per user; the table states
the standard error of the truth, which should be far below the estimators' RMSE.

**Estimators.** Standard, independent (item-position) and reward-interaction (cascade)
slate IPS and their self-normalised forms, with exact propensities of both policies;
the direct method and cascade DR on a position-based click model cross-fitted by slate
(:func:`~recoworld.ope.fit_slate_reward_model`). The simulated users browse as a cascade
(a click changes whether later positions are examined), so standard and cascade IPS are
unbiased and independent IPS is not; DM is as biased as its click model. Intervals are
percentile bootstraps over logged slates, except for the direct method, whose interval
refits the click model on every resample
(:func:`~recoworld.apps.ope.intervals.refit_interval` says why).

**Targets**: the greedy and softmax policies on popularity, and, per logging policy, the
policies learned off-policy from it (:func:`~recoworld.agents.off_policy.learn_from_log`,
IPS and DR objectives) on a training log that no evaluation log shares; the report sets
each learned policy's estimated and true value beside the logging policy's true value.

**Metrics** per (logging, target, n, estimator) over the seeds: bias and RMSE relative to
``V``, coverage of the ``1 - alpha`` bootstrap interval, and the number of runs on which the
estimator was defined (a self-normalised estimator is undefined when no logged slate has
weight). See :mod:`recoworld.apps.ope.report` for the outputs, and
``recoworld ope --help`` for the flags; ``--obd`` adds the Open Bandit Dataset section.

**Sessions**: multi-step episodes, with the truth by on-policy Monte Carlo, in
:mod:`recoworld.apps.ope.sessions` (``--no-sessions`` skips them, ``--horizon``,
``--session-log-sizes`` and ``--session-seeds`` enlarge them).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld import ope
from recoworld.agents.baselines import MostPopularAgent
from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy
from recoworld.agents.off_policy import OBJECTIVES, LoggedSlates, item_features, learn_from_log
from recoworld.catalog import Catalog
from recoworld.envs.slate import SlateVectorEnv
from recoworld.apps.run.loop import rollout
from recoworld.apps.ope.intervals import refit_interval, row_interval
from recoworld.apps.ope.sessions import SESSION_ESTIMATORS, run_sessions
from recoworld.logs import EpisodeLog

#: Held-out users are seeded from here on; logs use seeds below it.
TRUTH_SEED = 10**9
#: The training logs of the learned targets are seeded here: no evaluation log shares them.
LEARNING_SEED = 10**6
LOGGING_POLICIES = ("uniform", "epsilon_soft", "softmax")
TARGET_POLICIES = ("greedy", "softmax")
LEARNED_POLICIES = tuple(f"learned_{objective}" for objective in OBJECTIVES)
ESTIMATORS = {
    "IPS": ope.SlateIPS(), "SNIPS": ope.SelfNormalizedSlateIPS(),
    "IIPS": ope.SlateIndependentIPS(), "SNIIPS": ope.SelfNormalizedSlateIndependentIPS(),
    "RIPS": ope.SlateRewardInteractionIPS(), "SNRIPS": ope.SelfNormalizedSlateRewardInteractionIPS(),
    "DM": ope.SlateDM(), "CascadeDR": ope.SlateCascadeDR(),
}


@dataclass
class StudyConfig:
    """The grid and the world of the study (flags of ``recoworld ope`` in brackets).

    The default finishes in about two minutes on two CPU cores; ``--log-sizes 500 2000 8000
    --seeds 50 --truth-users 100000 --session-log-sizes 500 2000 --session-seeds 50`` is a
    fuller study (an hour or so).
    """

    logging: tuple[str, ...] = LOGGING_POLICIES        # --logging
    targets: tuple[str, ...] = TARGET_POLICIES         # --targets
    log_sizes: tuple[int, ...] = (500, 2000)           # --log-sizes
    seeds: int = 10                                    # --seeds: logs per (logging, n)
    n_items: int = 200                                 # --n-items: synthetic catalog
    num_candidates: int = 10                           # --candidates: C
    slate_size: int = 3                                # --slate-size: K
    epsilon: float = 0.3                               # --epsilon of the epsilon-soft logger
    logging_temperature: float = 1.0                   # --logging-temperature
    target_temperature: float = 0.5                    # --target-temperature
    truth_users: int = 20_000                          # --truth-users
    truth_draws: int = 4                               # --truth-draws per user (stochastic targets)
    n_bootstrap: int = 200                             # --bootstrap
    alpha: float = 0.05                                # --alpha
    n_folds: int = 5                                   # --folds of the click model
    n_refits: int = 20                                 # --refits: model refits behind DM's and FQE's CI
    estimators: tuple[str, ...] = field(default_factory=lambda: tuple(ESTIMATORS))
    learned: tuple[str, ...] = OBJECTIVES              # --learned objectives (none: --learned with no value)
    sessions: bool = True                              # --no-sessions skips the session section
    horizon: int = 5                                   # --horizon H: steps per logged episode
    session_logging: tuple[str, ...] = ("epsilon_soft", "softmax")  # --session-logging
    session_log_sizes: tuple[int, ...] = (500,)        # --session-log-sizes: trajectories per log
    session_seeds: int = 5                             # --session-seeds
    session_refits: int = 6                            # --session-refits: Q-function refits behind FQE's CI
    session_candidates: int = 5                        # --session-candidates: C of the session world
    session_slate_size: int = 2                        # --session-slate-size: K of the session world
    session_truth_users: int = 20_000                  # --session-truth-users: on-policy Monte Carlo
    session_estimators: tuple[str, ...] = field(default_factory=lambda: tuple(SESSION_ESTIMATORS))

    def __post_init__(self):
        for name, allowed, given in (("logging", LOGGING_POLICIES, self.logging),
                                     ("targets", TARGET_POLICIES, self.targets),
                                     ("estimators", tuple(ESTIMATORS), self.estimators),
                                     ("session_logging", LOGGING_POLICIES, self.session_logging),
                                     ("session_estimators", tuple(SESSION_ESTIMATORS), self.session_estimators)):
            unknown = [g for g in given if g not in allowed]
            if unknown or not given:
                raise ValueError(f"{name}={list(given)}; choose one or more of {list(allowed)}")
        unknown = [g for g in self.learned if g not in OBJECTIVES]
        if unknown:
            raise ValueError(f"learned={list(self.learned)}; choose none or more of {list(OBJECTIVES)}")
        if not self.log_sizes or min(self.log_sizes) < self.n_folds:
            raise ValueError(f"log_sizes={list(self.log_sizes)}; each log needs at least n_folds={self.n_folds} rounds")
        if self.seeds < 2 or self.session_seeds < 2:
            name, value = ("seeds", self.seeds) if self.seeds < 2 else ("session_seeds", self.session_seeds)
            raise ValueError(f"{name}={value}; bias and RMSE need at least 2 logs per cell")
        if min(self.n_refits, self.session_refits) < 2:
            raise ValueError(f"n_refits={self.n_refits}, session_refits={self.session_refits}; a standard error "
                             "needs at least 2 refits")
        if self.horizon < 1 or not self.session_log_sizes or min(self.session_log_sizes) < 2:
            raise ValueError(f"horizon={self.horizon}, session_log_sizes={list(self.session_log_sizes)}; each "
                             "session log needs at least 2 trajectories (2 folds of the Q-function) of >= 1 step")
        if not 1 <= self.session_slate_size <= self.session_candidates <= self.n_items:
            raise ValueError(f"need 1 <= session_slate_size ({self.session_slate_size}) <= session_candidates "
                             f"({self.session_candidates}) <= n_items ({self.n_items})")
        if not 1 <= self.slate_size <= self.num_candidates <= self.n_items:
            raise ValueError(f"need 1 <= slate_size ({self.slate_size}) <= candidates ({self.num_candidates}) "
                             f"<= n_items ({self.n_items})")


def make_policy(name: str, config: StudyConfig, role: str):
    """A logging (``role="logging"``) or target policy of the study, by name; all score by popularity."""
    base = MostPopularAgent()
    if role == "logging":
        policies = {"uniform": lambda: EpsilonSoft(base=base, epsilon=1.0),
                    "epsilon_soft": lambda: EpsilonSoft(base=base, epsilon=config.epsilon),
                    "softmax": lambda: SoftmaxPolicy(base=base, temperature=config.logging_temperature)}
    else:
        policies = {"greedy": lambda: SoftmaxPolicy(base=base, temperature=0.0),
                    "softmax": lambda: SoftmaxPolicy(base=base, temperature=config.target_temperature)}
    policy = policies[name]()
    policy.name = name
    return policy


class Study:
    """One world (catalog, env shape) and the machinery to log, find the truth and estimate."""

    def __init__(self, config: StudyConfig):
        self.config = config
        self.catalog = Catalog.synthetic(config.n_items, seed=0)
        self.item_features = item_features(self.catalog)

    def env(self, n_users: int) -> SlateVectorEnv:
        c = self.config
        return SlateVectorEnv(num_envs=n_users, catalog=self.catalog, slate_size=c.slate_size,
                              num_candidates=c.num_candidates, max_steps=1)

    def true_value(self, policy) -> tuple[float, float]:
        """``(V, standard error)`` of ``policy`` over the held-out users (module docstring)."""
        c = self.config
        env = self.env(c.truth_users)
        policy.setup(env, seed=0)
        obs, _ = env.reset(seed=TRUTH_SEED)
        draws = 1 if getattr(policy, "temperature", 1.0) == 0 else c.truth_draws
        per_user = np.zeros(c.truth_users)
        for _ in range(draws):
            slates = env.world.candidates.gather(1, torch.as_tensor(policy.act(obs), device=env.world.device))
            per_user += env.world.simulator.expected_clicks(slates).cpu().numpy().astype(np.float64) / draws
        return float(per_user.mean()), float(per_user.std(ddof=1) / np.sqrt(c.truth_users))

    def log(self, policy, n: int, seed: int) -> pd.DataFrame:
        """``n`` first-step rounds logged by ``policy``, in the episodes schema."""
        log = EpisodeLog(None)
        rollout(self.env(n), policy, n_steps=1, seed=seed, logger=log, log_candidates=True)
        return log.to_pandas()

    def estimate(self, log: pd.DataFrame, targets: dict, seed: int) -> list[dict]:
        """Every estimator's estimate and interval for every target, on one log."""
        c = self.config
        data = LoggedSlates.from_log(log)
        feedback = ope.SlateFeedback(data.reward, pscore=data.propensity, pscore_item_position=data.position_propensity,
                                     pscore_cascade=data.cascade_propensity)
        obs = data.observation(self.catalog)
        features = self.item_features[data.candidate_ids]
        sides = {name: target_side(target, obs, data.action) for name, target in targets.items()}

        def click_model(rows: np.ndarray) -> np.ndarray:
            return ope.fit_slate_reward_model(features[rows], data.action[rows], data.reward[rows],
                                              regressor=ope.LogisticRegression(), n_folds=c.n_folds, seed=seed,
                                              groups=rows)

        def direct_method(rows: np.ndarray) -> np.ndarray:
            model = click_model(rows)
            return np.array([model_inputs(side, model, data.action, rows)["v_hat"][:, 0].mean()
                             for side in sides.values()])

        full_model = click_model(np.arange(len(data.action)))
        if "DM" in c.estimators:
            dm = dict(zip(sides, zip(*refit_interval(direct_method, len(data.action), c.n_refits, c.alpha, seed))))
        rows = []
        for target_name, side in sides.items():
            inputs = {**side.propensities, **model_inputs(side, full_model, data.action)}
            for name in c.estimators:
                if name == "DM":
                    estimate, lower, upper = dm[target_name]
                    rows.append({"target": target_name, "estimator": name, "estimate": estimate,
                                 "lower": lower, "upper": upper})
                    continue
                estimate, lower, upper = row_interval(ESTIMATORS[name], feedback, **inputs,
                                                      n_bootstrap=c.n_bootstrap, alpha=c.alpha, seed=seed)
                rows.append({"target": target_name, "estimator": name, "estimate": estimate,
                             "lower": lower, "upper": upper})
        return rows

    def learned_policies(self, logging_name: str) -> dict:
        """The targets learned off-policy from ``logging_name``'s training log (seed
        :data:`LEARNING_SEED`, ``max(log_sizes)`` slates), one per objective, shown greedily."""
        c = self.config
        if not c.learned:
            return {}
        log = self.log(make_policy(logging_name, c, "logging"), max(c.log_sizes), LEARNING_SEED)
        policies = {}
        for objective in c.learned:
            scorer = learn_from_log(log, self.catalog, objective=objective, n_folds=c.n_folds, seed=0)
            policy = SoftmaxPolicy(base=scorer, temperature=0.0)
            policy.name = scorer.name
            policies[scorer.name] = policy
        return policies


@dataclass
class TargetSide:
    """What a target policy says about one log, independent of any click model: its
    probabilities of the logged slates (``propensities``, the ``evaluation_pscore*`` arguments),
    its position marginals ``marginals`` ``[n, C, K]`` and the distribution of each
    position's item given the logged items above it, ``following`` ``[n, K, C]``."""

    propensities: dict
    marginals: np.ndarray
    following: np.ndarray


def target_side(target, obs: dict, action: np.ndarray) -> TargetSide:
    """The :class:`TargetSide` of ``target`` on logged ``action`` ``[n, K]``."""
    propensities = target.propensities(obs, action)
    return TargetSide({"evaluation_pscore": propensities["slate"],
                       "evaluation_pscore_item_position": propensities["position"],
                       "evaluation_pscore_cascade": propensities["cascade"]},
                      target.action_distribution(obs), target.next_item_distribution(obs, action))


def model_inputs(side: TargetSide, click_model: np.ndarray, action: np.ndarray, rows: np.ndarray | None = None) -> dict:
    """``q_hat`` and ``v_hat`` of the slate estimators on the logged rows ``rows`` (all by default).

    ``click_model`` ``[m, C, K]`` (one per row of ``rows``) predicts the click at position
    ``k`` of each candidate. With positions after ``k`` filled by the target (its marginals
    ``m``), the model's clicks from ``k`` on are ``q_hat_ik = r(a_ik, k) + tail_ik`` with
    ``tail_ik = sum_{l > k} sum_c m_icl r(c, l)``, and ``v_hat_ik`` averages ``q_hat_ik``
    over the target's choice at ``k`` given the logged items before it.
    """
    rows = np.arange(len(action)) if rows is None else rows
    action = action[rows]
    expected = np.einsum("nck,nck->nk", side.marginals[rows], click_model)        # model clicks at k
    tail = np.cumsum(expected[:, ::-1], axis=1)[:, ::-1] - expected               # positions after k
    logged = np.take_along_axis(click_model, action[:, None, :], 1)[:, 0, :]
    following = np.einsum("nkc,nck->nk", side.following[rows], click_model)
    return {"q_hat": logged + tail, "v_hat": following + tail}


def target_inputs(target, obs: dict, action: np.ndarray, click_model: np.ndarray) -> dict:
    """Every slate estimator's target-side arguments: :func:`target_side` and :func:`model_inputs`."""
    side = target_side(target, obs, action)
    return {**side.propensities, **model_inputs(side, click_model, action)}


def run_study(config: StudyConfig, progress=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run the one-step grid; returns ``(runs, truths, logging_truths)``: one row per (logging,
    n, seed, target, estimator); one per (logging, target) with its value and standard error;
    one per logging policy with its own value (what a learned target should beat)."""
    study = Study(config)
    targets = {name: make_policy(name, config, "target") for name in config.targets}
    truth = {name: study.true_value(target) for name, target in targets.items()}
    truths, logging_truths, runs = [], [], []
    for logging_name in config.logging:
        value, error = study.true_value(make_policy(logging_name, config, "logging"))
        logging_truths.append({"logging": logging_name, "truth": value, "truth_se": error})
        learned = study.learned_policies(logging_name)
        for name, target in learned.items():
            truth[name] = study.true_value(target)
        for name in [*targets, *learned]:
            truths.append({"logging": logging_name, "target": name, "truth": truth[name][0],
                           "truth_se": truth[name][1]})
        for n in config.log_sizes:
            for seed in range(config.seeds):
                log = study.log(make_policy(logging_name, config, "logging"), n, seed)
                for row in study.estimate(log, {**targets, **learned}, seed):
                    runs.append({"logging": logging_name, "n": n, "seed": seed, **row})
                if progress is not None:
                    progress(1)
    return pd.DataFrame(runs), pd.DataFrame(truths), pd.DataFrame(logging_truths)


def run_session_study(config: StudyConfig, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The session section (:mod:`recoworld.apps.ope.sessions`) with this study's
    catalog and policies; returns ``(runs, truths)``."""
    targets = {name: make_policy(name, config, "target") for name in config.targets}
    return run_sessions(config, Catalog.synthetic(config.n_items, seed=0), targets,
                        lambda name: make_policy(name, config, "logging"), progress=progress)


def summarise(runs: pd.DataFrame, truths: pd.DataFrame, estimators: Sequence[str] = tuple(ESTIMATORS)) -> pd.DataFrame:
    """Bias, RMSE, CI coverage and mean CI width per (logging, target, n, estimator), over
    the runs on which the estimator was defined; ``estimators`` gives their order."""
    merged = runs.merge(truths, on=["logging", "target"])
    merged["error"] = merged["estimate"] - merged["truth"]
    merged["covered"] = (merged["lower"] <= merged["truth"]) & (merged["truth"] <= merged["upper"])
    merged["width"] = merged["upper"] - merged["lower"]
    keys = ["logging", "target", "n", "estimator"]
    grouped = merged.groupby(keys, sort=False)
    defined = merged.dropna(subset=["estimate"]).groupby(keys, sort=False)
    summary = pd.DataFrame({
        "truth": grouped["truth"].first(),
        "truth_se": grouped["truth_se"].first(),
        "bias": defined["error"].mean(),
        "rmse": defined["error"].apply(lambda e: float(np.sqrt(np.mean(e**2)))),
        "coverage": defined["covered"].mean(),
        "ci_width": defined["width"].mean(),
        "defined": defined["error"].size(),
        "runs": grouped["error"].size(),
    })
    summary["defined"] = summary["defined"].fillna(0).astype(int)
    summary = summary.reset_index()
    order = {"logging": LOGGING_POLICIES, "target": TARGET_POLICIES + LEARNED_POLICIES, "estimator": tuple(estimators)}
    return summary.sort_values(keys, key=lambda column: column.map(order[column.name].index)
                               if column.name in order else column, ignore_index=True)


def learning_table(summary: pd.DataFrame, logging_truths: pd.DataFrame) -> pd.DataFrame:
    """Per (logging policy, learned policy): the true values of both, the gain, and each
    estimator's mean estimate of the learned policy at the largest log size."""
    learned = summary[summary["target"].isin(LEARNED_POLICIES) & (summary["n"] == summary["n"].max())].copy()
    if learned.empty:
        return pd.DataFrame()
    learned["estimate"] = learned["truth"] + learned["bias"]
    table = learned.pivot_table(index=["logging", "target"], columns="estimator", values="estimate", sort=False)
    truths = learned.groupby(["logging", "target"], sort=False)[["truth", "truth_se"]].first()
    table = truths.join(table).reset_index().merge(
        logging_truths.rename(columns={"truth": "logging_truth", "truth_se": "logging_truth_se"}), on="logging")
    table["gain"] = table["truth"] - table["logging_truth"]
    first = ["logging", "target", "logging_truth", "logging_truth_se", "truth", "truth_se", "gain"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.rename(columns={"target": "policy"})


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld ope [flags]``: run the study and write the report (see ``--help``)."""
    defaults = StudyConfig()
    parser = argparse.ArgumentParser(
        prog="recoworld ope",
        description="Estimator study: logs from simulated users under several logging policies, every slate "
                    "estimator's bias, RMSE and bootstrap-CI coverage against the simulator's true value.",
        epilog="A fuller study: --log-sizes 500 2000 8000 --seeds 50 --truth-users 100000 --session-log-sizes 500 "
               "2000 --session-seeds 50 (an hour or so). --no-sessions skips the multi-step section.")
    parser.add_argument("--out", type=Path, default=Path("ope_study"), help="output directory (default: ope_study)")
    parser.add_argument("--logging", nargs="+", default=list(defaults.logging), choices=LOGGING_POLICIES)
    parser.add_argument("--targets", nargs="+", default=list(defaults.targets), choices=TARGET_POLICIES)
    parser.add_argument("--estimators", nargs="+", default=list(defaults.estimators), choices=list(ESTIMATORS))
    parser.add_argument("--log-sizes", nargs="+", type=int, default=list(defaults.log_sizes))
    parser.add_argument("--learned", nargs="*", default=list(defaults.learned), choices=OBJECTIVES,
                        help="objectives of the policies learned from each logging policy (none: no learned targets)")
    parser.add_argument("--no-sessions", action="store_true", help="skip the multi-step session section")
    parser.add_argument("--session-logging", nargs="+", default=list(defaults.session_logging),
                        choices=LOGGING_POLICIES)
    parser.add_argument("--session-log-sizes", nargs="+", type=int, default=list(defaults.session_log_sizes),
                        help="trajectories per session log")
    parser.add_argument("--session-estimators", nargs="+", default=list(defaults.session_estimators),
                        choices=list(SESSION_ESTIMATORS))
    simple = {"seeds": int, "n_items": int, "slate_size": int, "epsilon": float, "logging_temperature": float,
              "target_temperature": float, "truth_users": int, "truth_draws": int, "alpha": float, "horizon": int,
              "session_seeds": int, "session_refits": int, "session_candidates": int, "session_slate_size": int, "session_truth_users": int}
    for name, kind in simple.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name),
                            help=f"(default: {getattr(defaults, name)})")
    parser.add_argument("--candidates", type=int, default=defaults.num_candidates, help="candidates per request C")
    parser.add_argument("--bootstrap", type=int, default=defaults.n_bootstrap, help="bootstrap resamples per CI")
    parser.add_argument("--folds", type=int, default=defaults.n_folds, help="cross-fitting folds of the click model")
    parser.add_argument("--refits", type=int, default=defaults.n_refits,
                        help="model refits behind the intervals of DM and FQE (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default: 1)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--obd", action="store_true",
                        help="add the Open Bandit Dataset section (recoworld.data.obd.obd_study; downloads the sample)")
    parser.add_argument("--obd-cache-dir", type=Path, default=None, help="data cache for --obd")
    parser.add_argument("--obd-mc", type=int, default=10_000, help="Monte-Carlo draws of the Bernoulli-TS policy (--obd)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in fields(StudyConfig) if hasattr(args, f.name)}
    values.update(num_candidates=args.candidates, n_bootstrap=args.bootstrap, n_folds=args.folds,
                  n_refits=args.refits, sessions=not args.no_sessions)
    for name in ("logging", "targets", "estimators", "log_sizes", "learned", "session_logging", "session_log_sizes",
                 "session_estimators"):
        values[name] = tuple(values[name])
    try:
        config = StudyConfig(**values)
    except ValueError as error:
        parser.error(str(error))

    from rich.progress import Progress
    from threadpoolctl import threadpool_limits

    from recoworld.apps.run import ope_report

    start = time.perf_counter()
    # numpy's BLAS threads fight over a small machine's cores (12x slower click models measured on 2)
    with threadpool_limits(limits=args.threads), Progress(transient=True) as bar:
        task = bar.add_task("one-step slates", total=len(config.logging) * len(config.log_sizes) * config.seeds)
        runs, truths, logging_truths = run_study(config, progress=lambda k: bar.advance(task, k))
        sessions = None
        if config.sessions:
            task = bar.add_task("sessions", total=len(config.session_logging) * len(config.session_log_sizes)
                                * config.session_seeds)
            session_runs, session_truths = run_session_study(config, progress=lambda k: bar.advance(task, k))
            sessions = ope_report.Section(session_runs, session_truths,
                                          summarise(session_runs, session_truths, config.session_estimators))
    summary = summarise(runs, truths)
    obd = run_obd_section(args.obd_cache_dir, args.obd_mc) if args.obd else None
    ope_report.write(args.out, config, runs, truths, summary, obd=obd, plots=not args.no_plots,
                     seconds=time.perf_counter() - start, learning=learning_table(summary, logging_truths),
                     sessions=sessions)
    return 0


def run_obd_section(cache_dir: Path | None, n_mc: int, seed: int = 0) -> pd.DataFrame:
    """The Open Bandit Dataset section: ``recoworld.data.obd.obd_study``'s result as rows.

    ``obd_study`` estimates the Bernoulli-TS policy's click rate from the uniform-random
    logs and reports the on-policy value of the TS logs; a dict with a ``"rows"`` list of
    dicts gives one row each, any other dict becomes one row of its scalar entries.
    """
    from recoworld.data.obd import (
        obd_study,  # the data set's loader, imported only when asked for
    )

    result = obd_study(cache_dir=cache_dir, n_mc=n_mc, seed=seed)
    return obd_rows(result)


def obd_rows(result: dict) -> pd.DataFrame:
    """Rows of an ``obd_study`` result (see :func:`run_obd_section`)."""
    if not isinstance(result, dict):
        raise TypeError(f"obd_study returned {type(result).__name__}; expected a dict")
    if isinstance(result.get("rows"), list):
        return pd.DataFrame(result["rows"])
    return pd.DataFrame([{key: value for key, value in result.items() if np.ndim(value) == 0}])
