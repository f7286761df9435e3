"""Coverage of the OPE estimators' row-bootstrap intervals, and of the standard alternatives.

Draws many logs from problems whose value is known exactly and prints, per estimator and
interval method, the share of logs whose ``1 - alpha`` interval held the truth (with a
Clopper-Pearson 95 % interval of that share), the mean width and the misses on each side:

- ``percentile``: what :meth:`~recoworld.ope.BaseEstimator.estimate_interval` returns (the
  script checks that it reproduces the library's interval on the first log);
- ``BCa``: bias-corrected and accelerated (B. Efron, "Better Bootstrap Confidence
  Intervals", JASA 1987), the acceleration from the jackknife over rounds, in closed form
  from the per-round terms (leave-one-out sums are the total less one row);
- ``studentized``: the bootstrap-t, each replicate divided by its own delta-method
  standard error (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 12);
- ``normal``: the estimate +- z times the delta-method standard error.

All four read the same resamples. A log on which an estimator is undefined, or defined on
fewer resamples than a ``1 - alpha`` interval needs (:class:`~recoworld.ope.UndefinedEstimate`,
:class:`~recoworld.ope.UndefinedInterval`, the library's own rule), has no interval of any
method, and a method whose own quantities are undefined on a log (the bootstrap-t with fewer
finite pivots than :func:`~recoworld.ope.base.min_resamples` asks, BCa without a finite
jackknife) has none there: such logs are counted and printed per estimator and method, and
the coverage is that of the logs with an interval. The problems:

- ``bandit``: 20 discrete contexts, an epsilon-soft logger around a random greedy action,
  a softmax target drawn independently, Bernoulli rewards; IPS, SNIPS, DR and SNDR (the
  doubly robust ones with a fixed reward model off by N(0, 0.15)). ``heavy``: 10 actions,
  epsilon 0.1 (weights up to 100 times the target's probability); ``light``: 4 actions,
  epsilon 0.5. The truth is exact.
- ``session``: a 3-state, 3-action MDP of at most 4 steps, epsilon-soft logger (epsilon 0.3),
  a Dirichlet target; trajectory-wise, per-decision and weighted per-decision IS; the
  truth by backward induction.

    python benchmarks/ope_interval_coverage.py                      # about 7 minutes on 1 core
    python benchmarks/ope_interval_coverage.py --section bandit --weights heavy --n 200 1000 --logs 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import binomtest

from recoworld.ope import (
    DR, IPS, SNDR, SNIPS, BanditFeedback, PerDecisionIS, SessionFeedback, TrajectoryWiseIS, WeightedPerDecisionIS,
)
from recoworld.ope.base import UndefinedEstimate, UndefinedInterval, min_resamples

BANDIT_ESTIMATORS = {"IPS": IPS(), "SNIPS": SNIPS(), "DR": DR(), "SNDR": SNDR()}
SESSION_ESTIMATORS = {"TrajectoryWiseIS": TrajectoryWiseIS(), "PerDecisionIS": PerDecisionIS(),
                      "WeightedPerDecisionIS": WeightedPerDecisionIS()}
N_CONTEXTS = 20
N_STATES, N_SESSION_ACTIONS, HORIZON = 3, 3, 4


def _draw(rng, probabilities):
    index = (rng.random(len(probabilities))[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return np.minimum(index, probabilities.shape[1] - 1)


def _epsilon_soft(rng, n_rows, n_actions, epsilon):
    policy = np.full((n_rows, n_actions), epsilon / n_actions)
    policy[np.arange(n_rows), rng.integers(0, n_actions, n_rows)] += 1 - epsilon
    return policy


class BanditProblem:
    def __init__(self, weights: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        n_actions, epsilon, temperature = {"light": (4, 0.5, 1.0), "heavy": (10, 0.1, 2.0)}[weights]
        self.p_context = rng.dirichlet(np.ones(N_CONTEXTS))
        self.q = rng.uniform(0.05, 0.95, (N_CONTEXTS, n_actions))
        self.logging = _epsilon_soft(rng, N_CONTEXTS, n_actions, epsilon)
        logits = temperature * rng.normal(size=(N_CONTEXTS, n_actions))
        self.target = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        self.q_model = np.clip(self.q + rng.normal(0, 0.15, self.q.shape), 0, 1)
        self.truth = float(np.einsum("x,xa,xa->", self.p_context, self.target, self.q))
        self.estimators = BANDIT_ESTIMATORS

    def sample(self, n: int, seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        x = rng.choice(N_CONTEXTS, n, p=self.p_context)
        action = _draw(rng, self.logging[x])
        reward = (rng.random(n) < self.q[x, action]).astype(np.float64)
        return BanditFeedback(action, reward, self.logging[x, action]), self.target[x], self.q_model[x]


class SessionProblem:
    def __init__(self, seed: int = 0, epsilon: float = 0.3):
        rng = np.random.default_rng(seed)
        shape = (N_STATES, N_SESSION_ACTIONS)
        self.initial = rng.dirichlet(np.ones(N_STATES))
        self.mean_reward = rng.uniform(0, 1, shape)
        self.transition = rng.dirichlet(np.ones(N_STATES), size=shape)
        self.leave = rng.uniform(0.1, 0.3, shape)
        self.logging = _epsilon_soft(rng, N_STATES, N_SESSION_ACTIONS, epsilon)
        self.target = rng.dirichlet(np.full(N_SESSION_ACTIONS, 0.8), size=N_STATES)
        q = np.zeros((HORIZON + 1, *shape))
        for t in reversed(range(HORIZON)):
            q[t] = self.mean_reward + (1 - self.leave) * (self.transition @ (self.target * q[t + 1]).sum(axis=1))
        self.truth = float(self.initial @ (self.target * q[0]).sum(axis=1))
        self.estimators = SESSION_ESTIMATORS

    def sample(self, n: int, seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        state, action = np.zeros((n, HORIZON), dtype=np.int64), np.zeros((n, HORIZON), dtype=np.int64)
        reward, mask = np.zeros((n, HORIZON)), np.zeros((n, HORIZON), dtype=bool)
        s, alive = _draw(rng, np.broadcast_to(self.initial, (n, N_STATES))), np.ones(n, dtype=bool)
        for t in range(HORIZON):
            a = _draw(rng, self.logging[s])
            state[:, t], action[:, t], mask[:, t] = s, a, alive
            reward[:, t] = rng.random(n) < self.mean_reward[s, a]
            alive &= rng.random(n) >= self.leave[s, a]
            s = _draw(rng, self.transition[s, a])
        reward[~mask] = 0.0
        feedback = SessionFeedback(reward, self.logging[state, action], mask=mask, action=action)
        return feedback, self.target[state, action]


def resample_counts(n_rounds: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``[n_bootstrap, n_rounds]``: how often each round is drawn; the draws of
    ``estimate_interval`` with this seed (one chunk, so while ``n_rounds`` stays under 8 million / n_bootstrap)."""
    rows = np.random.default_rng(seed).integers(0, n_rounds, size=(n_bootstrap, n_rounds))
    rows += np.arange(n_bootstrap)[:, None] * n_rounds
    return np.bincount(rows.ravel(), minlength=n_bootstrap * n_rounds).reshape(n_bootstrap, n_rounds).astype(float)


def _gradient(estimator, sums: np.ndarray, n_rounds: int) -> np.ndarray:
    """The gradient of ``estimator._combine`` at ``sums [..., m]``, by complex steps (exact
    to rounding for the ratios of sums the estimators combine)."""
    gradient = np.empty(sums.shape)
    for j in range(sums.shape[-1]):
        step = 1e-30 * np.maximum(np.abs(sums[..., j]), 1.0)
        shifted = sums.astype(complex)
        shifted[..., j] += 1j * step
        gradient[..., j] = estimator._combine(shifted, n_rounds).imag / step
    return gradient


def _delta_se(estimator, terms: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Delta-method standard error of the estimate from rounds drawn ``counts [B, n]`` times."""
    n_rounds = len(terms)
    influence = _gradient(estimator, sums, n_rounds) @ terms.T
    mean = (counts * influence).sum(axis=1) / n_rounds
    return np.sqrt(np.maximum((counts * influence**2).sum(axis=1) - n_rounds * mean**2, 0.0))


def intervals(estimator, terms: np.ndarray, counts: np.ndarray, alpha: float) -> dict[str, tuple[float, float] | None]:
    """Each method's ``(lower, upper)`` from the resamples ``counts``, ``None`` for a method
    undefined on this log; :class:`UndefinedEstimate` or :class:`UndefinedInterval` where
    the library would refuse the estimator's interval (module docstring)."""
    n_rounds = len(terms)
    total = terms.sum(axis=0)
    estimate = estimator._value(terms)  # the library's refusal of an estimator undefined on the log
    sums = counts @ terms
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = estimator._combine(sums, n_rounds)
        jackknife = estimator._combine(total - terms, n_rounds - 1)
    defined = np.isfinite(replicates)
    # and of one defined on too few resamples, by the same rule
    estimator._check_defined(int(defined.sum()), len(counts), alpha, estimate)
    replicates, jackknife = replicates[defined], jackknife[np.isfinite(jackknife)]
    tails = np.array([alpha / 2, 1 - alpha / 2])
    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.size
    bias = ndtri(np.clip(below, 0.5 / replicates.size, 1 - 0.5 / replicates.size))
    z = ndtri(tails)
    bca = None
    if jackknife.size:  # one round, or every leave-one-out undefined: no acceleration
        spread = jackknife.mean() - jackknife
        acceleration = (spread**3).sum() / (6 * ((spread**2).sum()) ** 1.5) if (spread**2).sum() > 0 else 0.0
        bca = tuple(np.quantile(replicates, ndtr(bias + (bias + z) / (1 - acceleration * (bias + z)))))
    se = float(_delta_se(estimator, terms, np.ones((1, n_rounds)), total[None])[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        pivots = (replicates - estimate) / _delta_se(estimator, terms, counts[defined], sums[defined])
    pivots = pivots[np.isfinite(pivots)]  # a resample of one repeated round has no spread: no pivot
    studentized = None
    if pivots.size >= min_resamples(alpha):
        t_low, t_high = np.quantile(pivots, tails)
        studentized = (estimate - t_high * se, estimate - t_low * se)
    return {
        "percentile": tuple(np.quantile(replicates, tails)),
        "BCa": bca,
        "studentized": studentized,
        "normal": (estimate + z[0] * se, estimate + z[1] * se),
    }


METHODS = ("percentile", "BCa", "studentized", "normal")


def coverage(problem, label: str, n_rounds: int, n_logs: int, n_bootstrap: int, alpha: float) -> None:
    start = time.perf_counter()
    outcomes = {(name, method): [] for name in problem.estimators for method in METHODS}
    # per estimator and method, the logs without an interval, by why: "estimate" (undefined on
    # the log), "interval" (on too few resamples), "method" (the method's own quantities)
    undefined = {key: {} for key in outcomes}
    for log in range(n_logs):
        data = problem.sample(n_rounds, seed=(10_000 if label.startswith("bandit") else 7_000) * n_rounds + log)
        counts = resample_counts(n_rounds, n_bootstrap, seed=log)
        for name, estimator in problem.estimators.items():
            try:
                found = intervals(estimator, estimator._round_terms(*data), counts, alpha)
            except (UndefinedEstimate, UndefinedInterval) as refused:
                why = "estimate" if isinstance(refused, UndefinedEstimate) else "interval"
                for method in METHODS:
                    undefined[name, method][why] = undefined[name, method].get(why, 0) + 1
                continue
            if log == 0:  # the percentile column is the library's own interval
                library = estimator.estimate_interval(*data, n_bootstrap=n_bootstrap, alpha=alpha, seed=log)
                assert np.allclose((library.lower, library.upper), found["percentile"], rtol=1e-9), name
            for method, bounds in found.items():
                if bounds is None:
                    undefined[name, method]["method"] = undefined[name, method].get("method", 0) + 1
                    continue
                lower, upper = bounds
                outcomes[name, method].append((lower <= problem.truth <= upper, upper - lower, lower > problem.truth))
    print(f"\n== {label}, {n_rounds} rounds, {n_logs} logs, {n_bootstrap} resamples, "
          f"{1 - alpha:.0%} intervals; truth {problem.truth:.4f}")
    for (name, method), rows in outcomes.items():
        missing = undefined[name, method]
        gaps = (f"  undefined on {sum(missing.values())} of {n_logs} logs ("
                + ", ".join(f"{why} {count}" for why, count in missing.items()) + ")") if missing else ""
        if not rows:
            print(f"{name:22s} {method:12s} no interval on any log{gaps}")
            continue
        covered, width, above = np.array(rows, dtype=float).T
        hits = int(covered.sum())
        share = binomtest(hits, len(covered)).proportion_ci(method="exact")
        below = int(above.sum())  # the interval lies above the truth
        print(f"{name:22s} {method:12s} coverage {hits / len(covered):.3f} [{share.low:.3f}, {share.high:.3f}]"
              f"  mean width {width.mean():.4f}  misses: truth below {below}, above {len(covered) - hits - below}"
              + gaps)
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("bandit", "session", "all"), default="all")
    parser.add_argument("--weights", nargs="+", choices=("heavy", "light"), default=["heavy", "light"])
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1000], help="rounds per log")
    parser.add_argument("--logs", type=int, default=500)
    parser.add_argument("--large-n", type=int, default=5000, help="one more heavy-weight bandit size (0: none)")
    parser.add_argument("--large-logs", type=int, default=300)
    parser.add_argument("--session-logs", type=int, default=400)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--world", type=int, default=0, help="seed of the problem (not of the logs)")
    args = parser.parse_args()
    settings = dict(n_bootstrap=args.n_bootstrap, alpha=args.alpha)
    if args.section in ("bandit", "all"):
        for weights in args.weights:
            problem = BanditProblem(weights, args.world)
            for n_rounds in args.n:
                coverage(problem, f"bandit, {weights} weights (world {args.world})", n_rounds, args.logs, **settings)
            if weights == "heavy" and args.large_n:
                coverage(problem, f"bandit, {weights} weights (world {args.world})", args.large_n, args.large_logs,
                         **settings)
    if args.section in ("session", "all"):
        problem = SessionProblem(args.world)
        for n_rounds in args.n:
            coverage(problem, f"sessions of {HORIZON} steps (world {args.world})", n_rounds, args.session_logs,
                     **settings)


if __name__ == "__main__":
    main()
