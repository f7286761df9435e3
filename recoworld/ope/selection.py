r"""Choosing an estimator for a log by simulation: *simulate-then-select*.

No estimator is best on every log: IPS is unbiased but its variance grows with the weights;
DM has little variance but the bias of its reward model; DR and SNDR sit between. Which one
errs least depends on the log's size, the spread of its propensities and how well a reward
model fits, so the choice is made on simulated logs *of the same shape*, whose true value
is known, by root mean squared error. The protocol follows the synthetic-data robustness
evaluation of Saito et al. ("Evaluating the Robustness of Off-Policy Evaluation", RecSys
2021) and the policy-adaptive pseudo-logs of Udagawa et al. ("Policy-Adaptive Estimator
Selection for Off-Policy Evaluation", AAAI 2023), with worlds built from the log itself.
(SLOPE, Su, Srinath & Krishnamurthy, "Adaptive Estimator Selection for Off-Policy
Evaluation", ICML 2020, chooses by Lepski's rule on the real log instead; it needs a family
ordered by bias, which IPS, DR and DM are not.)

A simulated world of :func:`simulate_then_select` keeps the log's rounds (contexts,
positions, the evaluation policy's distribution ``pi_i``) and replaces the rest:

* **logging**: ``mu_i(a_i) = pscore_i`` for the logged action and the rest of the mass
  spread evenly over the other actions, so the simulated propensities and weights have the
  spread of the real ones (exactly, for a uniform logger);
* **rewards**: ``q_i(a) = clip(q_hat_i(a) + kappa (pi_i(a) - 1/A), r_min, r_max)``, the
  cross-fitted reward model of the real log plus a term no reward model of the log's features can
  absorb when ``pi`` depends on the context, sized so that DM's bias in the world equals
  the bias the real log shows: ``kappa = c / mean_i sum_a pi_i(a) (pi_i(a) - 1/A)`` with
  ``c``, the mean DR correction ``mean_i w_i (r_i - q_hat_i(a_i))``, shrunk towards 0 by
  one standard error (soft thresholding: a correction within noise injects nothing).
  0/1 rewards are drawn as Bernoulli (``[r_min, r_max] = [0, 1]``), other rewards as ``q``
  plus Gaussian noise with the real residuals' spread, ``q`` kept within the range of the
  logged rewards (ratings of 1..5 stay in 1..5: clipped to ``[0, 1]``, every action of such
  a world would be worth 1, and the recommendation would be that of a world without
  differences);
* **truth**: ``V = mean_i sum_a pi_i(a) q_i(a)``, exact.

Every estimator then runs on each simulated log as on the real one (reward model refitted)
and the one of least RMSE is recommended. :func:`verdict` says plainly when no estimate
deserves trust. It judges the RMSE against the simulated value measured from the floor of
the logged rewards, ``V - r_floor`` (:func:`reward_floor`: 0 for 0/1 rewards, the value
itself; else the rewards' 1% quantile, a logged value). A share of the value alone would
change with where a scale starts (ratings 1..5 shifted by 100 would pass any RMSE, centred
on 0 none); a share of the range ``r_max - r_min`` would jump with one reward that is not
0/1 in a log of rare clicks (a value of 0.03 judged against 1), and so would the lowest
logged reward with one dislike of -1 in such a log: a quantile is a floor that one round of
a log of more than 100 cannot move. (Only the verdict reads the floor: the simulated worlds
keep the whole logged range ``[r_min, r_max]``.) A value at the floor (a log without
clicks) leaves nothing to judge an RMSE against, and no estimate is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recoworld.ope._validation import check_count
from recoworld.ope.diagnostics import MIN_ESS
from recoworld.ope.evaluation import (
    BANDIT_ESTIMATORS,
    MODEL_BASED,
    WEIGHTING,
    BanditProblem,
)
from recoworld.ope.feedback import BanditFeedback

#: The recommended estimator's simulated RMSE, relative to the simulated value above the floor
#: of the logged rewards (:func:`reward_floor`; 0 for 0/1 rewards), above which no estimate is
#: called trustworthy.
MAX_RELATIVE_RMSE = 0.25
#: A simulated value within this share of the rewards' size (at least 1) of the floor of the
#: logged rewards is at it: float rounding of a mean of rewards at the floor.
AT_FLOOR = 1e-9
#: The quantile of the logged rewards that is their floor (:func:`reward_floor`).
FLOOR_QUANTILE = 0.01


@dataclass(frozen=True)
class Selection:
    """The outcome of a selection: per-estimator ``bias`` and ``rmse`` over the simulated
    logs (dicts by estimator name), the ``recommended`` estimator, the simulated truths'
    mean ``value`` and the number of simulated logs ``n_sims``; ``protocol`` names it.
    ``r_min``, the floor of the rewards' scale (:func:`reward_floor`: the logged rewards' 1%
    quantile; 0 for 0/1 rewards and for clicks), is where :func:`verdict` measures the value
    from."""

    bias: dict
    rmse: dict
    recommended: str
    value: float
    n_sims: int
    protocol: str
    r_min: float = 0.0


def reward_floor(reward: np.ndarray) -> float:
    """Where :func:`verdict` measures a value from: 0 for 0/1 rewards (clicks), else the
    :data:`FLOOR_QUANTILE` quantile of the logged ``reward``, taken as a logged value. Not the
    lowest reward, which one round moves: a single dislike of -1 in a log of 3% clicks would
    judge a value of 0.03 against 1.03."""
    if np.isin(reward, (0.0, 1.0)).all():
        return 0.0
    return float(np.quantile(reward, FLOOR_QUANTILE, method="lower"))


def simulate_then_select(problem: BanditProblem, n_sims: int = 20, seed: int = 0,
                         estimators=tuple(BANDIT_ESTIMATORS)) -> Selection:
    """Run ``estimators`` on ``n_sims`` simulated logs shaped like ``problem`` (module
    docstring) and recommend the one of least RMSE."""
    if not n_sims >= 2:
        raise ValueError(f"n_sims={n_sims}; an RMSE needs at least 2 simulated logs")
    check_count(n_sims, "n_sims", 2)
    check_count(seed, "seed", 0)
    f, dist = problem.feedback, problem.action_dist
    n, n_actions = dist.shape[0], dist.shape[1]
    rows, position = np.arange(n), f.position_or_zero
    pi = dist[rows, :, position]                                                   # [n, A]
    q_hat = problem.reward_model(rows, seed)[rows, :, position]                    # [n, A]
    residual = f.reward - q_hat[rows, f.action]
    correction = problem.weights() * residual
    shrunk = np.sign(correction.mean()) * max(0.0, abs(correction.mean()) - correction.std(ddof=1) / np.sqrt(n))
    spread = ((pi - 1.0 / n_actions) * pi).sum(1).mean()
    kappa = shrunk / spread if spread > 1e-12 else 0.0
    binary = np.isin(f.reward, (0.0, 1.0)).all()
    low, high = (0.0, 1.0) if binary else (float(f.reward.min()), float(f.reward.max()))
    # q = clip(q_hat + kappa (pi - 1/A), r_min, r_max), in place: a log of many rounds and
    # actions holds few [n, A] arrays at once
    q = q_hat
    q += kappa * pi
    q -= kappa / n_actions
    np.clip(q, low, high, out=q)
    noise = residual.std() if not binary else 0.0
    rest = (1.0 - f.pscore) / max(n_actions - 1, 1)
    cumulative = np.repeat(rest[:, None], n_actions, axis=1)
    cumulative[rows, f.action] = f.pscore
    np.cumsum(cumulative, axis=1, out=cumulative)                               # the logging policy's CDF
    truth = float(np.einsum("ia,ia->i", pi, q).mean())
    rng = np.random.default_rng(seed)
    errors = np.empty((n_sims, len(estimators)))
    for s in range(n_sims):
        action = (cumulative > rng.random(n)[:, None]).argmax(1)
        mean = q[rows, action]
        reward = (rng.random(n) < mean).astype(np.float64) if binary else mean + noise * rng.standard_normal(n)
        pscore = np.where(action == f.action, f.pscore, rest)
        simulated = replace(problem, feedback=BanditFeedback(action, reward, pscore, f.position))
        errors[s] = simulated.estimates(estimators, seed=seed + s + 1) - truth
    bias, rmse, recommended = summarise_errors(errors, estimators)
    return Selection(bias, rmse, recommended, truth, n_sims, "simulate-then-select (plausible worlds from the log)",
                     reward_floor(f.reward))


def summarise_errors(errors: np.ndarray, estimators) -> tuple[dict, dict, str]:
    """``(bias, rmse, recommended)`` of the ``[n_sims, len(estimators)]`` errors of the
    simulated logs: an estimator's NaN errors (a self-normalised estimator undefined on a
    simulated log) are left out, its bias and RMSE are NaN where it was undefined on every
    log, and the recommended estimator is the one of least RMSE among the others."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": NaN, as documented
        bias = dict(zip(estimators, np.nanmean(errors, 0).tolist()))
        rmse = dict(zip(estimators, np.sqrt(np.nanmean(errors**2, 0)).tolist()))
    recommended = min(rmse, key=lambda name: np.inf if np.isnan(rmse[name]) else rmse[name])
    return bias, rmse, recommended


def verdict(selection: Selection, ess: float, min_ess: float = MIN_ESS,
            max_relative_rmse: float = MAX_RELATIVE_RMSE, weighting=WEIGHTING) -> tuple[bool, str]:
    """``(trustworthy, sentence)``: the recommended estimate is trusted when its simulated
    RMSE is at most ``max_relative_rmse`` of the simulated value above ``selection.r_min``,
    the floor of the logged rewards (:func:`reward_floor`, module docstring), and, for an
    estimator that reweights rounds, the log's effective sample size is at least
    ``min_ess``. A simulated value at the floor (a log of no clicks, or of one rating, whose
    simulated logs hold no other reward) leaves no value above it to judge an RMSE against:
    then no estimate is trusted, and the sentence says why. (A value below the floor, of a
    target that chooses the rarest low rewards, is measured down from it.)"""
    name, floor = selection.recommended, selection.r_min
    scale = abs(selection.value - floor)
    side = "above" if selection.value >= floor else "below"
    of = ("the value" if floor == 0
          else f"the value {side} {floor:g}, the floor of the logged rewards (their {FLOOR_QUANTILE:.0%} quantile)")
    if name in weighting and ess < min_ess:
        return False, (f"no estimate is trustworthy: the effective sample size is {ess:.1f} (< {min_ess:g}), "
                       f"too few rounds carry the weight for {name}; log more data or evaluate a policy closer "
                       "to the logging policy")
    if scale <= AT_FLOOR * max(1.0, abs(floor)):
        return False, (f"no estimate is trustworthy: the simulated value is at the floor of the logged rewards, "
                       f"{floor:g}, which leaves nothing above it to judge the simulated RMSE of the best estimator, "
                       f"{name} ({selection.rmse[name]:.2g}), against; log until some of the target policy's choices "
                       f"are rewarded above {floor:g}")
    relative = selection.rmse[name] / scale
    if relative > max_relative_rmse:
        return False, (f"no estimate is trustworthy: even the best estimator, {name}, erred by "
                       f"{relative:.0%} of {of} (RMSE) on simulated logs of this shape "
                       f"(threshold {max_relative_rmse:.0%})")
    model = " (reward-model based)" if name in MODEL_BASED else ""
    return True, (f"{name}{model} is recommended: the least RMSE on {selection.n_sims} simulated logs of this shape "
                  f"({relative:.0%} of {of})")
