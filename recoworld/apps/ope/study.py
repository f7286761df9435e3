r"""``recoworld ope``: how well each off-policy estimator recovers a value the simulator knows.

The setting is a one-step slate bandit: each logged round is a fresh user of
``RecoWorld/Slate-v0`` (first step: no history) served ``K`` of ``C`` candidates by a
*logging* policy; the reward is the clicks, observed per position. For every logging
policy, log size and seed the study logs ``n`` rounds (:func:`~recoworld.envs.rollout.rollout`
into the episodes schema, candidates included), reads them back as slates, and asks every
estimator for the value of every *target* policy, with a percentile-bootstrap CI.

**Truth.** The value of a target policy is ``V = E_user E_{slate ~ pi} E[clicks]``. The
inner expectation is exact: the env's privileged ``expected_clicks`` (the simulator's sum
of the cascade's examination-weighted click probabilities of the slate), read by the
rollout's :class:`~recoworld.envs.rollout.ExpectedClicks` hook.
The outer ones are on-policy Monte Carlo over ``truth_users`` held-out users (never in
any log) and, for a stochastic target, ``truth_draws`` slates per user; the table states
the standard error of the truth, which should be far below the estimators' RMSE.

**Estimators.** Standard, independent (item-position) and reward-interaction (cascade)
slate IPS and their self-normalised forms, with exact propensities of both policies;
the direct method and cascade DR on a position-based click model cross-fitted by slate
(:func:`~recoworld.ope.fit_slate_reward_model`). The simulated users browse as a cascade
(a click changes whether later positions are examined), so standard and cascade IPS are
unbiased and independent IPS is not; DM is as biased as its click model. Intervals are
percentile bootstraps over logged slates, except for the direct method and cascade DR,
whose intervals refit the click model on every resample
(:func:`~recoworld.apps.ope.intervals.refit_interval` says why).

**Targets**: the greedy and softmax policies on popularity, and, per logging policy, the
policies learned off-policy from it (:func:`~recoworld.agents.off_policy.learn_from_log`,
IPS and DR objectives) on a training log that no evaluation log shares; the report sets
each learned policy's estimated and true value beside the logging policy's true value.

**Metrics** per (logging, target, n, estimator) over the seeds: bias and RMSE relative to
``V``, coverage of the ``1 - alpha`` bootstrap interval, and the number of runs on which the
estimator was defined (a self-normalised estimator is undefined when no logged slate has
weight). The settings are :class:`~recoworld.apps.ope.config.StudyConfig`; see
:mod:`recoworld.apps.ope.summary` and :mod:`recoworld.apps.ope.report` for the outputs, and
``recoworld ope --help`` for the flags (:mod:`recoworld.apps.ope.options`); ``--obd`` adds
the Open Bandit Dataset section (:mod:`recoworld.apps.ope.open_bandit`).

**Sessions**: multi-step episodes, with the truth by on-policy Monte Carlo, in
:mod:`recoworld.apps.ope.sessions` (``--no-sessions`` skips them, ``--horizon``,
``--session-log-sizes`` and ``--session-seeds`` enlarge them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld import ope
from recoworld.agents.logging_policies import SoftmaxPolicy
from recoworld.agents.off_policy import LoggedSlates, item_features, learn_from_log
from recoworld.apps.interrupts import write_then_show
from recoworld.apps.ope import options, report
from recoworld.apps.ope.config import (
    ESTIMATORS,
    LEARNING_SEED,
    REWARD_COLUMNS,
    TRUTH_SEED,
    StudyConfig,
    make_policy,
)
from recoworld.apps.ope.intervals import refit_interval, row_interval
from recoworld.apps.ope.open_bandit import run_obd_section
from recoworld.apps.ope.sessions import run_sessions
from recoworld.apps.ope.summary import learning_table, summarise
from recoworld.catalog import Catalog
from recoworld.envs.rollout import ExpectedClicks, StepTrace, rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.logs import EpisodeLog, check_new_folder
from recoworld.ope.refit import refits_defining


class Study:
    """One world (catalog, env shape) and the machinery to log, find the truth and estimate."""

    def __init__(self, config: StudyConfig, catalog: Catalog | None = None):
        self.config = config
        self.catalog = Catalog.synthetic(config.n_items, seed=0) if catalog is None else catalog
        self.item_features = item_features(self.catalog)

    def env(self, n_users: int) -> SlateVectorEnv:
        c = self.config
        return SlateVectorEnv(num_envs=n_users, catalog=self.catalog, slate_size=c.slate_size,
                              num_candidates=c.num_candidates, max_steps=1, reward=c.reward)

    def true_value(self, policy) -> tuple[float, float]:
        """``(V, standard error)`` of ``policy`` over the held-out users (module docstring):
        each draw serves the same users (the env reset with :data:`TRUTH_SEED`) one slate.
        A reward other than clicks has no exact expectation: its truth is the reward paid."""
        c = self.config
        env = self.env(c.truth_users)
        draws = 1 if getattr(policy, "temperature", 1.0) == 0 else c.truth_draws
        per_user = np.zeros(c.truth_users)
        for draw in range(draws):
            truth = ExpectedClicks() if c.reward == "clicks" else StepTrace()
            rollout(env, policy, n_steps=1, seed=0, env_seed=TRUTH_SEED, hooks=[truth], setup=draw == 0, learn=False)
            per_user += (truth.total if c.reward == "clicks" else truth.arrays()["reward"][0]) / draws
        return float(per_user.mean()), float(per_user.std(ddof=1) / np.sqrt(c.truth_users))

    def log(self, policy, n: int, seed: int) -> pd.DataFrame:
        """``n`` first-step rounds logged by ``policy``, in the episodes schema."""
        log = EpisodeLog(None)
        rollout(self.env(n), policy, n_steps=1, seed=seed, logger=log, log_candidates=True)
        return log.to_pandas()

    def estimate(self, log: pd.DataFrame, targets: dict, seed: int) -> list[dict]:
        """Every estimator's estimate and interval for every target, on one log: rows of
        ``{target, estimator, estimate, lower, upper, n_replicates}``, NaN where undefined
        and ``n_replicates`` as :func:`~recoworld.apps.ope.intervals.row_interval` gives it;
        for the refitted DM and cascade DR, the refits that defined them where some did not
        (a resample of fewer distinct slates than ``n_folds`` leaves a fold of the click model
        empty: an undefined refit, counted by :func:`~recoworld.ope.refit.refit_interval`), else
        ``None``."""
        c = self.config
        data = LoggedSlates.from_log(log, reward=REWARD_COLUMNS[c.reward])
        feedback = ope.SlateFeedback(data.reward, pscore=data.propensity, pscore_item_position=data.position_propensity,
                                     pscore_cascade=data.cascade_propensity)
        obs = data.observation(self.catalog)
        features = self.item_features[data.candidate_ids]
        sides = {name: target_side(target, obs, data.action) for name, target in targets.items()}

        def click_model(rows: np.ndarray) -> np.ndarray:
            # watch fractions are no 0/1 outcome: least squares for them
            regressor = ope.RidgeRegression() if c.reward == "watch_time" else ope.LogisticRegression()
            return ope.fit_slate_reward_model(features[rows], data.action[rows], data.reward[rows],
                                              regressor=regressor, n_folds=c.n_folds, seed=seed, groups=rows)

        refitted = [name for name in ("DM", "CascadeDR") if name in c.estimators]
        defined = []  # per call of model_based, the values it defined

        def model_based(rows: np.ndarray) -> np.ndarray:
            # DM and cascade DR with the click model refitted on the resample ``rows``
            model, part = click_model(rows), subset(feedback, rows)
            values = []
            for side in sides.values():
                inputs = model_inputs(side, model, data.action, rows)
                for name in refitted:
                    given = {key: value[rows] for key, value in side.propensities.items()}
                    values.append(ESTIMATORS[name].estimate_policy_value(part, **given, **inputs))
            defined.append(np.isfinite(values))
            return np.array(values)

        if refitted:
            # a resample of fewer distinct slates than folds is an undefined refit (NaN), not an error
            estimate, lower, upper = refit_interval(model_based, len(data.action), c.n_refits, c.alpha, seed,
                                                    n_folds=c.n_folds)
            refit = np.stack([estimate, lower, upper], 1).reshape(len(sides), len(refitted), 3)
            # the first call is the whole log's estimate
            counted = np.reshape(refits_defining(estimate, defined[1:], c.n_refits), (len(sides), len(refitted)))
        rows = []
        for t, target_name in enumerate(sides):
            for name in c.estimators:
                if name in refitted:
                    estimate, lower, upper = refit[t, refitted.index(name)]
                    replicates = counted[t, refitted.index(name)]
                else:
                    estimate, lower, upper, replicates = row_interval(
                        ESTIMATORS[name], feedback, **sides[target_name].propensities, n_bootstrap=c.n_bootstrap,
                        alpha=c.alpha, seed=seed)
                rows.append({"target": target_name, "estimator": name, "estimate": float(estimate),
                             "lower": float(lower), "upper": float(upper), "n_replicates": replicates})
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


#: The estimators' argument for each of a policy's propensities (:meth:`Recommender.propensities`).
EVALUATION_PSCORE = {"slate": "evaluation_pscore", "position": "evaluation_pscore_item_position",
                     "cascade": "evaluation_pscore_cascade"}


@dataclass
class TargetSide:
    """What a target policy says about one log, independent of any click model: its
    probabilities of the logged slates (``propensities``, the ``evaluation_pscore*`` arguments
    of those it states: ``"position"`` and ``"cascade"`` are optional),
    its position marginals ``marginals`` ``[n, C, K]`` and the distribution of each
    position's item given the logged items above it, ``following`` ``[n, K, C]``."""

    propensities: dict
    marginals: np.ndarray
    following: np.ndarray


def subset(feedback: ope.SlateFeedback, rows: np.ndarray) -> ope.SlateFeedback:
    """The logged slates ``rows`` (indices, with repeats) of ``feedback``."""
    def pick(value):
        return None if value is None else value[rows]
    return ope.SlateFeedback(feedback.reward[rows], pscore=pick(feedback.pscore),
                             pscore_item_position=pick(feedback.pscore_item_position),
                             pscore_cascade=pick(feedback.pscore_cascade))


def target_side(target, obs: dict, action: np.ndarray) -> TargetSide:
    """The :class:`TargetSide` of ``target`` on logged ``action`` ``[n, K]``."""
    propensities = target.propensities(obs, action)
    stated = {argument: propensities[key] for key, argument in EVALUATION_PSCORE.items() if key in propensities}
    return TargetSide(stated, target.action_distribution(obs), target.next_item_distribution(obs, action))


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


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld ope [flags]``: run the study and write the report (see ``--help``)."""
    parser = options.parser()
    args = parser.parse_args(argv)
    config = options.study_config(args, parser)
    try:
        check_new_folder(args.out)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    write_then_show("recoworld ope", args.out, lambda: _run(args, config),
                    lambda path, tables: report.show(path, config, seconds=time.perf_counter() - start, **tables))
    return 0


def _obd_section(args) -> pd.DataFrame:
    """The Open Bandit Dataset section, first: a data set that cannot be fetched stops the
    study before its minutes, with the way to get it by hand."""
    from recoworld.data.fetch import FetchError

    try:
        return run_obd_section(args.obd_cache_dir, args.obd_mc)
    except FetchError as error:
        raise SystemExit(f"recoworld ope: error: --obd: {error}") from None


def _run(args, config: StudyConfig) -> tuple[Path, dict]:
    """Run the study and write its report; returns the report's folder and the tables to
    show (:func:`recoworld.apps.ope.report.show`'s keywords)."""
    from rich.progress import Progress
    from threadpoolctl import threadpool_limits

    obd = _obd_section(args) if args.obd else None
    # numpy's BLAS threads fight over a small machine's cores and slow the click models down
    with threadpool_limits(limits=args.threads), Progress(transient=True) as bar:
        task = bar.add_task("one-step slates", total=len(config.logging) * len(config.log_sizes) * config.seeds)
        runs, truths, logging_truths = run_study(config, progress=lambda k: bar.advance(task, k))
        sessions = None
        if config.sessions:
            task = bar.add_task("sessions", total=len(config.session_logging) * len(config.session_log_sizes)
                                * config.session_seeds)
            session_runs, session_truths = run_session_study(config, progress=lambda k: bar.advance(task, k))
            sessions = report.Section(session_runs, session_truths,
                                      summarise(session_runs, session_truths, config.session_estimators))
    summary = summarise(runs, truths)
    tables = {"truths": truths, "summary": summary, "obd": obd, "learning": learning_table(summary, logging_truths),
              "sessions": sessions}
    path = report.write(args.out, config, runs, plots=not args.no_plots, **tables)
    return path, tables
