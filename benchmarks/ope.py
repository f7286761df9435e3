"""Time and peak memory of every estimator in recoworld.ope on a large synthetic log.

    python benchmarks/ope.py [--n 1000000] [--slate-length 10] [--n-items 10] [--fqe-n 20000]

The log is ``n`` slates of ``slate_length`` positions, each position filled from
``n_items`` candidates by a per-position logging policy, with cascade clicks. The same log
is read three ways: as slates (slate estimators), as one (action, position) per slate
(single-action estimators, ``action_dist`` of shape ``[n, n_items, slate_length]``), and
as sessions of ``slate_length`` steps (session estimators). Fitted Q evaluation trains a
network and runs on the first ``--fqe-n`` sessions only.

Time: best of ``--repeats`` runs. Memory: peak of numpy/Python allocations made during
the call (tracemalloc), inputs excluded; for FQE, torch allocates outside tracemalloc, so
the growth of the resident set during the call (sampled every 5 ms) is shown instead.

An estimator undefined on the log (:class:`~recoworld.ope.UndefinedEstimate`: its
normalising weights sum to 0), or an interval defined on too few resamples
(:class:`~recoworld.ope.UndefinedInterval`), is timed up to its refusal, printed as
``undefined`` in the estimate column and counted at the end.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
import tracemalloc

import numpy as np

from recoworld import ope


def synthetic_log(n: int, slate_length: int, n_items: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.full(n_items, 2.0), size=slate_length)
    target = rng.dirichlet(np.full(n_items, 0.5), size=slate_length)
    attraction = rng.uniform(0.02, 0.3, size=(n_items, slate_length))
    slates = np.empty((n, slate_length), dtype=np.int64)
    for k in range(slate_length):
        slates[:, k] = np.minimum(np.searchsorted(np.cumsum(logging[k]), rng.random(n)), n_items - 1)
    positions = np.arange(slate_length)
    attractive = rng.random((n, slate_length)) < attraction[slates, positions]
    reward = (attractive & (np.cumsum(attractive, axis=1) == 1)).astype(np.float64)
    mu, pi = logging[positions, slates], target[positions, slates]
    return dict(slates=slates, reward=reward, mu=mu, pi=pi, logging=logging, target=target, attraction=attraction)


def cases(log: dict, fqe_n: int):
    n, slate_length = log["reward"].shape
    rng = np.random.default_rng(1)
    mu_cascade, pi_cascade = np.cumprod(log["mu"], axis=1), np.cumprod(log["pi"], axis=1)
    slate_feedback = ope.SlateFeedback(log["reward"], pscore=mu_cascade[:, -1], pscore_item_position=log["mu"],
                                       pscore_cascade=mu_cascade)
    q_hat = log["attraction"][log["slates"], np.arange(slate_length)]
    slate_inputs = dict(evaluation_pscore=pi_cascade[:, -1], evaluation_pscore_item_position=log["pi"],
                        evaluation_pscore_cascade=pi_cascade, q_hat=q_hat, v_hat=q_hat * 0.9)
    slate = [ope.SlateIPS(), ope.SlateIndependentIPS(), ope.SlateRewardInteractionIPS(), ope.SelfNormalizedSlateIPS(),
             ope.SelfNormalizedSlateIndependentIPS(), ope.SelfNormalizedSlateRewardInteractionIPS(), ope.SlateCascadeDR()]
    for estimator in slate:
        yield "slate", estimator, (slate_feedback,), slate_inputs

    position = rng.integers(0, slate_length, size=n)
    rows = np.arange(n)
    bandit_feedback = ope.BanditFeedback(log["slates"][rows, position], log["reward"][rows, position],
                                         log["mu"][rows, position], position=position)
    action_dist = np.broadcast_to(log["target"].T[None], (n,) + log["target"].T.shape)
    estimated = np.broadcast_to(log["attraction"][None], action_dist.shape)
    bandit = [ope.Replay(), ope.IPS(max_weight=100.0), ope.SNIPS(), ope.DM(), ope.DR(), ope.SNDR(),
              ope.SwitchDR(tau=20.0), ope.DRos(lambda_=10.0), ope.SubGaussianIPS(lambda_=0.05)]
    for estimator in bandit:
        yield "bandit", estimator, (bandit_feedback, action_dist, estimated), {}

    session_feedback = ope.SessionFeedback(log["reward"], log["mu"])
    session = [ope.TrajectoryWiseIS(0.95), ope.PerDecisionIS(0.95), ope.WeightedPerDecisionIS(0.95),
               ope.PerDecisionDR(0.95), ope.TrajectoryWiseDR(0.95), ope.WeightedPerDecisionDR(0.95)]
    for estimator in session:
        yield "session", estimator, (session_feedback, log["pi"], q_hat, q_hat * 0.9), {}

    yield "bootstrap", ope.SelfNormalizedSlateRewardInteractionIPS(), (slate_feedback,), \
        dict(slate_inputs, n_bootstrap=100, seed=0)

    small = slice(0, fqe_n)
    features = np.concatenate([np.eye(log["target"].shape[1])[log["slates"][small]],
                               np.broadcast_to(np.eye(slate_length), (fqe_n, slate_length, slate_length))], axis=2)
    fqe_feedback = ope.SessionFeedback(log["reward"][small], log["mu"][small], action=log["slates"][small],
                                       features=features)
    fqe_dist = np.broadcast_to(log["target"][None], (fqe_n,) + log["target"].shape)
    yield "session (FQE)", ope.FittedQEvaluation(discount=0.95, hidden_sizes=(64, 64), n_epochs=1, batch_size=4096), \
        (fqe_feedback, fqe_dist), {}


def rss_growth(call) -> float:
    """Peak growth of the resident set (MiB) during ``call``, sampled every 5 ms from /proc."""
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()

    before, peak, done = rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return (max(peak[0], rss()) - before) / 2**20


def measure(estimator, args, kwargs, repeats: int):
    """``(seconds, memory, value)``: the best time, the peak memory and the estimate, or the
    refusal (:class:`~recoworld.ope.UndefinedEstimate`, :class:`~recoworld.ope.UndefinedInterval`)
    in place of the estimate where the log leaves it undefined (timed up to the refusal)."""
    method = estimator.estimate_interval if "n_bootstrap" in kwargs else estimator.estimate_policy_value

    def call():
        try:
            return method(*args, **kwargs)
        except (ope.UndefinedEstimate, ope.UndefinedInterval) as refused:
            return refused

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = call()
        seconds.append(time.perf_counter() - start)
    if isinstance(estimator, ope.FittedQEvaluation):
        memory = f"{rss_growth(call):9.1f} (RSS)"
    else:
        tracemalloc.start()
        call()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        memory = f"{peak / 2**20:9.1f}"
    value = value.estimate if isinstance(value, ope.PolicyValueInterval) else value
    return min(seconds), memory, value


def shown(value) -> str:
    """The estimate column: the number, or why there is none."""
    if isinstance(value, ope.UndefinedInterval):
        return f"{value.estimate:10.4f} (interval undefined: defined on {value.n_replicates} of {value.n_bootstrap})"
    if isinstance(value, ope.UndefinedEstimate):
        return f"{'undefined':>10}"
    return f"{value:10.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--slate-length", type=int, default=10)
    parser.add_argument("--n-items", type=int, default=10)
    parser.add_argument("--fqe-n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    start = time.perf_counter()
    log = synthetic_log(options.n, options.slate_length, options.n_items)
    print(f"{options.n:,} slates x {options.slate_length} positions, {options.n_items} candidates per position "
          f"(generated in {time.perf_counter() - start:.1f}s); FQE on {options.fqe_n:,} sessions")
    print(f"{'setting':<14} {'estimator':<40} {'time (s)':>9} {'peak MiB':>15} {'estimate':>10}")
    undefined, calls = [], 0
    for setting, estimator, args, kwargs in cases(log, options.fqe_n):
        # FQE twice: its first call pays a one-off import inside torch.optim
        repeats = 2 if isinstance(estimator, ope.FittedQEvaluation) else 1 if "n_bootstrap" in kwargs else options.repeats
        seconds, memory, value = measure(estimator, args, kwargs, repeats)
        label = repr(estimator) if len(repr(estimator)) <= 40 else type(estimator).__name__
        if "n_bootstrap" in kwargs:
            label = f"{type(estimator).__name__[:24]}.interval(B=100)"
        print(f"{setting:<14} {label:<40} {seconds:9.3f} {memory:>15} {shown(value)}")
        calls += 1
        if isinstance(value, ope.UndefinedEstimate | ope.UndefinedInterval):
            undefined.append(label)
    print(f"undefined on this log: {len(undefined)} of {calls}" + (f" ({', '.join(undefined)})" if undefined else ""))


if __name__ == "__main__":
    main()
