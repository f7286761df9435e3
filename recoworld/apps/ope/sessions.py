r"""The session section of ``recoworld ope``: multi-step episodes, whose value no formula gives.

Each logged trajectory is one new user of ``RecoWorld/Slate-v0`` served ``H`` steps
(``max_steps = H``; shorter when the user churns) by a logging policy with exact
propensities; the reward is the clicks of each step, and the value of a policy is
``V = E[sum_{t < H} r_t]`` (no discount). A slate's clicks change the user's history,
satiation and mindset, and so the rewards of later steps: the value of a policy is a
property of whole trajectories.

**Logging policies**: epsilon-soft and softmax by default (``--session-logging``); the
uniform one shows each of the 20 slates with probability 1/20, so a deterministic
target's weight after ``H`` steps is ``20^H`` on a ``20^-H`` share of the trajectories,
which no log of this size samples.

**Truth** by on-policy Monte Carlo: the target serves ``session_truth_users`` held-out
users for ``H`` steps; each step adds the exact expected clicks of the slate shown in the
user's current state (the env's privileged ``expected_clicks``, before the user responds,
read by the rollout's :class:`~recoworld.envs.rollout.ExpectedClicks` hook) rather than the
clicks drawn, which has the same mean and a smaller variance (Rao-Blackwellisation). The standard error over users is reported with the truth.

**Actions and states.** A session estimator needs a finite action set: an action is one of
the ``C!/(C-K)!`` ranked slates of the step's candidates (20 for the default ``C = 5``,
``K = 2``), and the policies' slate probabilities are their exact propensities. The state
features for fitted Q evaluation are what the log keeps: the step (one-hot), the features
of the step's candidates (:func:`~recoworld.agents.off_policy.item_features`), and the clicks
so far per step served.

**Estimators**: trajectory-wise IS, per-decision IS, weighted per-decision IS, per-decision
doubly robust and weighted DR (Q-function from :meth:`FittedQEvaluation.estimate_q`,
cross-fitted over 2 folds of trajectories), and fitted Q evaluation. Intervals: the
importance-sampling forms resample trajectories; DR, WDR and FQE refit their Q-function on
every resample (:func:`~recoworld.ope.refit.refit_interval` says why), and FQE's interval
adds its estimated bias (:func:`fqe_interval`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from recoworld import ope
from recoworld.agents.logging_policies import all_slates
from recoworld.agents.off_policy import LoggedSlates, item_features
from recoworld.apps.ope.intervals import refit_interval, row_interval
from recoworld.envs.rollout import ExpectedClicks, rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.logs import EpisodeLog
from recoworld.ope.evaluation import value_or_nan
from recoworld.ope.refit import bias_aware_interval
from recoworld.types import CANDIDATE_IDS, Observation

#: Held-out session users are seeded from here on (logs use seeds below ``TRUTH_SEED`` of the study).
SESSION_TRUTH_SEED = 2 * 10**9
SESSION_ESTIMATORS = {
    "IS": ope.TrajectoryWiseIS(), "PDIS": ope.PerDecisionIS(), "WPDIS": ope.WeightedPerDecisionIS(),
    "DR": ope.PerDecisionDR(), "WDR": ope.WeightedPerDecisionDR(),
    # one hidden layer and large batches: the study fits it 3 + session_refits times per (log, target)
    "FQE": ope.FittedQEvaluation(hidden_sizes=(64,), n_epochs=8, batch_size=512, learning_rate=5e-3),
}
#: Estimators whose interval refits their Q-function on every resample (the others resample trajectories).
SESSION_REFIT = ("DR", "WDR", "FQE")


class SessionStudy:
    """The session world (catalog shared with the one-step study, its own ``C``, ``K``, ``H``),
    and the machinery to log trajectories, find the truth and estimate.

    Args:
        config: the :class:`~recoworld.apps.ope.config.StudyConfig` (its ``session_*``
            fields, ``horizon``, and the shared policy, bootstrap and catalog settings).
        catalog: the items.
    """

    def __init__(self, config, catalog):
        self.config = config
        self.catalog = catalog
        self.item_features = item_features(catalog)
        self.slates = all_slates(config.session_candidates, config.session_slate_size)     # [A, K]
        C = config.session_candidates
        # candidate indices of a ranked slate -> its action id
        self.codes = {int(code): a for a, code in enumerate(self.slates @ (C ** np.arange(self.slates.shape[1])))}

    def env(self, n_users: int) -> SlateVectorEnv:
        c = self.config
        return SlateVectorEnv(num_envs=n_users, catalog=self.catalog, slate_size=c.session_slate_size,
                              num_candidates=c.session_candidates, max_steps=c.horizon)

    def true_value(self, policy) -> tuple[float, float]:
        """``(V, standard error)`` of ``policy`` by on-policy Monte Carlo (module docstring)."""
        c = self.config
        truth = ExpectedClicks()
        rollout(self.env(c.session_truth_users), policy, n_steps=c.horizon, seed=0, env_seed=SESSION_TRUTH_SEED,
                hooks=[truth], learn=False)
        returns = truth.total
        return float(returns.mean()), float(returns.std(ddof=1) / np.sqrt(len(returns)))

    def log(self, policy, n: int, seed: int) -> pd.DataFrame:
        """The first episode of ``n`` users served ``H`` steps by ``policy``, in the episodes schema."""
        log = EpisodeLog(None)
        rollout(self.env(n), policy, n_steps=self.config.horizon, seed=seed, logger=log, log_candidates=True)
        frame = log.to_pandas()
        return frame[frame["episode"] == 0].reset_index(drop=True)

    def trajectories(self, log: pd.DataFrame) -> Trajectories:
        """The log as padded ``[n, H]`` arrays (see :class:`Trajectories`)."""
        return Trajectories.from_log(log, self)

    def estimate(self, trajectories: Trajectories, targets: dict, seed: int) -> list[dict]:
        """Every session estimator's estimate and interval for every target, on one log.

        The importance-sampling estimators resample trajectories; DR, WDR and FQE refit the
        Q-function on every resample (:func:`~recoworld.ope.refit.refit_interval`), and FQE's
        interval is then widened by its estimated bias (:func:`fqe_interval`).
        """
        c = self.config
        data = trajectories
        feedback = data.feedback()
        refitted = [name for name in c.session_estimators if name in SESSION_REFIT]
        rows = []
        for target_name, target in targets.items():
            dist = data.action_distribution(target)                                   # [n, H, A]
            pscore = np.take_along_axis(dist, data.action[:, :, None], 2)[:, :, 0]
            intervals = {}
            if refitted:
                # DR's value rides along whenever FQE is asked for: it is FQE's bias estimate
                names = [*refitted, *(["DR"] if "FQE" in refitted and "DR" not in refitted else [])]
                def estimates_on(resample, dist=dist, names=names):
                    return q_function_estimates(data, dist, names, resample)

                estimate, lower, upper = refit_interval(estimates_on, data.n, c.session_refits, c.alpha, seed)
                intervals = {name: (estimate[j], lower[j], upper[j]) for j, name in enumerate(names)}
                if "FQE" in intervals:
                    intervals["FQE"] = fqe_interval(intervals["FQE"], intervals["DR"], c.alpha, c.session_refits)
            for name in c.session_estimators:
                if name in intervals:
                    estimate, lower, upper = intervals[name]
                    replicates = None
                else:
                    estimate, lower, upper, replicates = row_interval(
                        SESSION_ESTIMATORS[name], feedback, pscore, n_bootstrap=c.n_bootstrap, alpha=c.alpha, seed=seed)
                rows.append({"target": target_name, "estimator": name, "estimate": float(estimate),
                             "lower": float(lower), "upper": float(upper), "n_replicates": replicates})
        return rows


def q_function_estimates(data: Trajectories, dist: np.ndarray, names: list[str], resample: np.ndarray) -> np.ndarray:
    """The estimates of ``names`` (of DR, WDR, FQE) on the trajectories ``resample`` (indices,
    with repeats), each fitting its Q-function afresh: DR and WDR share one cross-fitted over
    2 folds of the resample (copies of a trajectory in one fold), FQE fits its own on the
    whole resample. DR and WDR are NaN where undefined, which :func:`refit_interval` counts as
    such: WDR where the target gives no trajectory weight at some step, both on a resample
    of one trajectory's copies."""
    part, part_dist = data.subset(resample), dist[resample]
    feedback = part.feedback()
    fqe = SESSION_ESTIMATORS["FQE"]
    values = {}
    doubly_robust = {"DR", "WDR"} & set(names)
    if doubly_robust and len(np.unique(resample)) < 2:
        # copies of one trajectory leave no second fold to fit the Q-function on
        values.update(dict.fromkeys(doubly_robust, np.nan))
    elif doubly_robust:
        # copies of a trajectory share a fold: none is scored by a Q-function fitted on its own copy
        q_hat, v_hat = fqe.estimate_q(feedback, part_dist, n_folds=2, groups=resample)
        pscore = np.take_along_axis(part_dist, part.action[:, :, None], 2)[:, :, 0]
        for name in doubly_robust:
            # WDR is undefined (NaN) where the target gives no trajectory weight at some step
            values[name] = value_or_nan(SESSION_ESTIMATORS[name], feedback, pscore, q_hat=q_hat, v_hat=v_hat)
    if "FQE" in names:
        values["FQE"] = fqe.estimate_policy_value(feedback, part_dist)
    return np.array([float(values[name]) for name in names])


def fqe_interval(refitted: tuple, doubly_robust: tuple, alpha: float, n_refits: int) -> tuple[float, float, float]:
    """FQE's ``(estimate, lower, upper)`` from the refitted intervals (``n_refits`` resamples)
    of FQE and DR: FQE's standard error, widened by the bias bound ``|FQE - DR|``
    (:func:`~recoworld.ope.refit.bias_aware_interval`).

    Why: FQE's Q-function is fitted where the logging policy acted, and extrapolates to the
    slates the target prefers and the log rarely shows; that error is a bias that no
    resampling sees. Cross-fitted per-decision DR is unbiased for any Q-function, so its
    distance from FQE estimates FQE's bias.
    """
    estimate, lower, upper = refitted
    se = (upper - estimate) / student_t.ppf(1 - alpha / 2, n_refits - 1)
    wide_lower, wide_upper = bias_aware_interval(estimate, se, abs(estimate - doubly_robust[0]), alpha)
    # never narrower than the refitted interval, whose Student quantile the normal one lacks
    return estimate, min(lower, wide_lower), max(upper, wide_upper)


class Trajectories:
    """Logged trajectories as arrays: ``reward``, ``pscore`` (the logging policy's slate
    probability), ``mask`` ``[n, H]``; ``action`` ``[n, H]`` slate ids; ``candidate_ids``
    ``[n, H, C]``; ``features`` ``[n, H, d]`` state features. Padding repeats the last real
    step's candidates (its values are masked)."""

    def __init__(self, reward, pscore, mask, action, candidate_ids, features, slate_action):
        self.reward, self.pscore, self.mask = reward, pscore, mask
        self.action, self.candidate_ids, self.features = action, candidate_ids, features
        self.slate_action = slate_action     # [n, H, K] candidate indices

    @property
    def n(self) -> int:
        return len(self.reward)

    @classmethod
    def from_log(cls, log: pd.DataFrame, study: SessionStudy) -> Trajectories:
        if log["propensity"].isna().any():
            raise ValueError("the session log has no propensity; log it with a policy that states its slate "
                             "probabilities (e.g. EpsilonSoft, SoftmaxPolicy)")
        data = LoggedSlates.from_log(log)
        H, C = study.config.horizon, study.config.session_candidates
        user, step = log["user"].to_numpy(), log["step"].to_numpy()
        n = int(user.max()) + 1
        last = np.zeros(n, dtype=np.int64)
        np.maximum.at(last, user, step)
        index = np.minimum(np.arange(H)[None, :], last[:, None])                       # pad with the last step
        row = np.full((n, H), -1)
        row[user, step] = np.arange(len(log))
        row = np.take_along_axis(row, index, 1)
        mask = np.arange(H)[None, :] <= last[:, None]
        reward = data.reward.sum(1)[row] * mask
        codes = data.action @ (C ** np.arange(data.action.shape[1]))
        action = np.vectorize(study.codes.__getitem__)(codes)[row]
        candidate_ids = data.candidate_ids[row]
        clicks_so_far = np.cumsum(reward, axis=1) - reward
        features = np.concatenate([
            np.broadcast_to(np.eye(H), (n, H, H)),
            study.item_features[candidate_ids].reshape(n, H, -1),
            (clicks_so_far / np.maximum(np.arange(H), 1))[:, :, None],
        ], axis=2)
        return cls(reward, data.propensity[row], mask, action, candidate_ids, features, data.action[row])

    def subset(self, rows: np.ndarray) -> Trajectories:
        return Trajectories(self.reward[rows], self.pscore[rows], self.mask[rows], self.action[rows],
                            self.candidate_ids[rows], self.features[rows], self.slate_action[rows])

    def feedback(self) -> ope.SessionFeedback:
        return ope.SessionFeedback(self.reward, pscore=self.pscore, mask=self.mask, action=self.action,
                                   features=self.features)

    def action_distribution(self, policy) -> np.ndarray:
        """``[n, H, A]``: ``policy``'s exact probability of every ranked slate at every step."""
        n, H, C = self.candidate_ids.shape
        obs = Observation({CANDIDATE_IDS: self.candidate_ids.reshape(n * H, C)})
        slates = all_slates(C, self.slate_action.shape[2])
        dist = np.stack([policy.propensities(obs, np.broadcast_to(s, (n * H, len(s))))["slate"] for s in slates], 1)
        return dist.reshape(n, H, len(slates))


def run_sessions(config, catalog, targets: dict, logging_policy, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The session grid; returns ``(runs, truths)`` like :func:`~recoworld.apps.ope.study.run_study`.

    Args:
        config: the study's configuration.
        catalog: the items.
        targets: name -> target policy.
        logging_policy: ``name -> a fresh logging policy`` (a callable).
        progress: called with 1 after each log.
    """
    study = SessionStudy(config, catalog)
    truth = {name: study.true_value(target) for name, target in targets.items()}
    truths = pd.DataFrame([{"logging": logging, "target": name, "truth": value, "truth_se": error}
                           for logging in config.session_logging for name, (value, error) in truth.items()])
    runs = []
    for logging in config.session_logging:
        for n in config.session_log_sizes:
            for seed in range(config.session_seeds):
                data = study.trajectories(study.log(logging_policy(logging), n, seed))
                env = study.env(1)
                for target in targets.values():   # the logs hold the candidates; the targets need the catalog
                    target.setup(env, seed=0)
                for row in study.estimate(data, targets, seed):
                    runs.append({"logging": logging, "n": n, "seed": seed, **row})
                if progress is not None:
                    progress(1)
    return pd.DataFrame(runs), truths
