r"""Session dynamics: activity, patience, leaving and returning, fitted to rating sessions.

**Returning and activity** (maximum a posteriori, one pass over all users). In the
simulator a user who leaves returns with probability
:math:`p_b = \sigma(r_0 + r_m(M - \tfrac12) + \log a_b)` after an exponential gap of mean
``gap_days`` / :math:`(a_b(\tfrac12 + M))`, :math:`M` the session's memory (its mean step
quality). With :math:`M` held at its typical value :math:`\bar M`, that is
:math:`p_b = \sigma(x + \log a_b)` and a gap rate
:math:`\lambda_b = a_b / G`. Each session end of a user is then either a return after the
observed gap :math:`g` — likelihood :math:`p_b\lambda_b e^{-\lambda_b g}` — or, for the
user's last session, a silence of :math:`R_b` days until the data set ends, which a
returning user would also show with probability :math:`e^{-\lambda_b R_b}`:
likelihood :math:`1 - p_b + p_b e^{-\lambda_b R_b}`. Censoring at the end of the data is
thus not mistaken for churn. :math:`x`, :math:`G` and every :math:`\log a_b` (with a
standard normal prior, so that users with one session get a finite activity) are fitted
jointly; then :math:`r_0 = x - r_m(\bar M - \tfrac12)` and
``gap_days`` :math:`= G(\tfrac12 + \bar M)`, with :math:`\bar M` the simulated session
memory at leaving.

**Patience** cannot be seen without impressions. It is ranked by the user's mean log
session length — users who rate longer stay longer — and spread on the synthetic
population's logit-normal scale (median 0.8, logit spread 0.6).

**Leaving** (simulated moments). A session's length in the data is its number of
ratings. The simulated users (each fitted user once) are shown, step after step, the 10
best of 50 random candidates by their own click probability — MovieLens users chose what
they rated, so the reference recommender is a good one — and ``leave_base`` and
``leave_length`` are set so that the median and the 80th percentile of the number of
clicks per simulated session match those of ratings per real session:
``leave_base`` by bisection for each ``leave_length`` of a small grid, keeping the one that
matches the 80th percentile best. The other leave weights (mindset, boredom, patience)
keep their defaults: sessions of ratings do not separate them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recoworld.calibration.split import DAY, Sessions
from recoworld.calibration.traits import normal_scores
from recoworld.catalog import Catalog
from recoworld.simulators.population import Population
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers


@dataclass
class ReturnFit:
    """Fitted return model (module docstring).

    Attributes:
        log_activity: ``[n_users]`` :math:`\\log a_b`.
        return_logit: :math:`x`, the return log-odds of an average user.
        mean_gap_days: :math:`G`, the mean gap of an average user.
    """

    log_activity: np.ndarray
    return_logit: float
    mean_gap_days: float

    def to_config(self, config: StatisticalUserConfig, memory_at_leaving: float) -> StatisticalUserConfig:
        """``config`` with ``return_base`` and ``gap_days`` for a typical session memory at leaving."""
        return replace(config,
                       return_base=self.return_logit - config.return_mindset * (memory_at_leaving - 0.5),
                       gap_days=self.mean_gap_days * (0.5 + memory_at_leaving))


def fit_returns(sessions: Sessions, n_users: int, prior_sd: float = 1.0) -> ReturnFit:
    """Fit the return model of the module docstring to ``sessions``."""
    table = sessions.table
    users = torch.tensor(table["user_id"].to_numpy(), dtype=torch.long)
    gap = torch.tensor(table["next_gap_days"].to_numpy(), dtype=torch.float64)
    returned = ~torch.isnan(gap)
    silence = torch.as_tensor((sessions.data_end - table["end"].to_numpy()) / DAY, dtype=torch.float64)
    log_a = torch.zeros(n_users, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    log_G = torch.tensor(math.log(max(float(gap[returned].mean()), 1e-3)) if returned.any() else 0.0,
                         dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_a, x, log_G], max_iter=300, line_search_fn="strong_wolfe")
    g = torch.where(returned, gap, 0.0)

    def closure():
        optimizer.zero_grad()
        z = x + log_a[users]
        log_rate = log_a[users] - log_G
        rate = log_rate.exp()
        came_back = F.logsigmoid(z) + log_rate - rate * g
        silent = torch.logaddexp(F.logsigmoid(-z), F.logsigmoid(z) - rate * silence)
        loglik = torch.where(returned, came_back, silent).sum()
        loss = -(loglik - 0.5 * (log_a / prior_sd).pow(2).sum()) / len(users)
        loss.backward()
        return loss

    optimizer.step(closure)
    return ReturnFit(log_a.detach().numpy().copy(), x.item(), log_G.exp().item())


def patience_from_sessions(sessions: Sessions, n_users: int, median: float = 0.8, spread: float = 0.6) -> np.ndarray:
    """``[n_users]`` patience ranked by mean log session length (module docstring)."""
    mean_log = sessions.table.assign(log_length=np.log(sessions.table["length"])) \
        .groupby("user_id")["log_length"].mean().reindex(range(n_users))
    z = np.nan_to_num(normal_scores(mean_log.to_numpy()), nan=0.0)
    return 1.0 / (1.0 + np.exp(-(math.log(median / (1 - median)) + spread * z)))


@dataclass
class SimulatedSessions:
    """Clicks per simulated session (completed ones) and the session memory at each leaving."""

    clicks: np.ndarray
    memory_at_leaving: np.ndarray


def simulate_sessions(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
                      steps: int = 80, slate_size: int = 10, candidates: int = 50,
                      seed: int = 0) -> SimulatedSessions:
    """Serve the users seeded ``seeds`` the best ``slate_size`` of ``candidates`` random items
    (by their own click probability) for ``steps`` steps; a user who churns stops counting."""
    sim = StatisticalUsers(catalog, config, population)
    n, n_items = len(seeds), catalog.n_items
    sim.reset(n, seed=torch.as_tensor(seeds))
    gen = torch.Generator().manual_seed(seed)
    # Distinct candidates in O(candidates) per user: (start + j * stride) mod N with a stride
    # coprime with N, as the env draws them.
    strides = torch.arange(1, max(n_items, 2))
    strides = strides[torch.gcd(strides, torch.tensor(n_items)) == 1]
    offsets = torch.arange(candidates)
    active = torch.ones(n, dtype=torch.bool)
    running = torch.zeros(n)
    clicks, memories = [], []
    for _ in range(steps):
        start = torch.randint(n_items, (n, 1), generator=gen)
        stride = strides[torch.randint(len(strides), (n, 1), generator=gen)]
        pool = (start + offsets[None, :] * stride) % n_items
        best = sim.click_probabilities(pool).topk(slate_size, dim=1).indices
        response = sim.respond(pool.gather(1, best))
        running += response.clicked.sum(1).float()
        ended = response.left_session & active
        clicks.append(running[ended].numpy().copy())
        memories.append(sim.session_memory[ended].numpy().copy())
        running[response.left_session] = 0.0
        gone = response.churned
        if bool(gone.any()):
            active &= ~gone
            slots = gone.nonzero().flatten()
            sim.reset(n, seed=torch.as_tensor(seeds)[slots], users=slots)
    return SimulatedSessions(np.concatenate(clicks), np.concatenate(memories))


@dataclass
class LeaveFit:
    """Fitted leave parameters and what they reproduce."""

    leave_base: float
    leave_length: float
    target_quantiles: tuple[float, float]
    simulated_quantiles: tuple[float, float]
    memory_at_leaving: float
    clicks_per_session: np.ndarray


QUANTILES = (0.5, 0.8)


def fit_leave(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
              session_lengths, lengths_grid=(0.0, 0.03, 0.1), iterations: int = 6, steps: int = 80) -> LeaveFit:
    """Fit ``leave_base`` and ``leave_length`` by simulated moments (module docstring)."""
    target = tuple(float(q) for q in np.quantile(np.asarray(session_lengths, dtype=np.float64), QUANTILES))

    def run(base: float, length: float) -> SimulatedSessions:
        return simulate_sessions(catalog, replace(config, leave_base=base, leave_length=length),
                                 population, seeds, steps=steps)

    best = None
    for length in lengths_grid:
        low, high = -6.0, 2.0  # a higher base means shorter sessions
        for _ in range(iterations):
            mid = 0.5 * (low + high)
            sessions = run(mid, length)
            median = np.quantile(sessions.clicks, QUANTILES[0]) if len(sessions.clicks) else math.inf
            if median > target[0]:
                low = mid
            else:
                high = mid
        base = 0.5 * (low + high)
        sessions = run(base, length)
        simulated = tuple(float(q) for q in np.quantile(sessions.clicks, QUANTILES)) if len(sessions.clicks) \
            else (math.inf, math.inf)
        error = abs(math.log(max(simulated[0], 0.5) / target[0])) + abs(math.log(max(simulated[1], 0.5) / target[1]))
        if best is None or error < best[0]:
            best = (error, LeaveFit(base, length, target, simulated, float(np.mean(sessions.memory_at_leaving)),
                                    sessions.clicks))
    return best[1]


def sessions_summary(sessions: Sessions) -> pd.Series:
    """Data facts on sessions for the calibration's diagnostics."""
    table = sessions.table
    per_user = table.groupby("user_id").size()
    return pd.Series({
        "sessions": len(table),
        "median_length": float(table["length"].median()),
        "p80_length": float(table["length"].quantile(0.8)),
        "mean_length": float(table["length"].mean()),
        "share_single_session_users": float((per_user == 1).mean()),
        "median_gap_days": float(table["next_gap_days"].median()),
    })
