r"""Session dynamics: activity, patience, leaving and returning, fitted to rating sessions.

**Returning and activity** (maximum marginal likelihood, one pass over all users). In the
simulator a user who leaves returns with probability
:math:`p_b = \sigma(r_0 + r_m(M - \tfrac12) + \log a_b)` after a gap of mean
``gap_days`` / :math:`(a_b(\tfrac12 + M))`, Weibull of shape :math:`k` (``gap_shape``),
:math:`M` the session's memory. With :math:`M` held at its typical value :math:`\bar M`,
that is :math:`p_b = \sigma(x + \log a_b)` and a gap of mean :math:`G / a_b`, survival
:math:`S_b(g) = e^{-(g/s_b)^k}` with scale :math:`s_b = G / (a_b\Gamma(1 + 1/k))`. Each
session end of a user is then either a return after the observed gap :math:`g` —
likelihood :math:`p_b f_b(g)`, :math:`f_b` the gap's density — or, for the user's last
session, a silence of :math:`R_b` days until the data set ends, which a returning user
would also show with probability :math:`S_b(R_b)`: likelihood
:math:`1 - p_b + p_b S_b(R_b)`. Censoring at the end of the data is thus not mistaken for
churn. :math:`x`, :math:`G`, :math:`k` (the calibration fits it: real gaps are heavier-tailed
than an exponential's, :math:`k < 1`; ``weibull=False`` holds :math:`k = 1`, as the calibration
does where no user's own gaps differ, :func:`calibration_returns`) maximise the likelihood
with each user's :math:`\log a_b \sim N(0, \sigma^2)` integrated out, :math:`\sigma` fitted
too (:func:`fit_returns`), and each :math:`\log a_b` is its posterior mode (a user with one
session gets a finite activity, near the average); then
:math:`r_0 = x - r_m(\bar M - \tfrac12)` and ``gap_days`` :math:`= G(\tfrac12 + \bar M)`,
with :math:`\bar M` the simulated session memory at leaving. With ``length_elasticity``
the gap's mean after a session of :math:`L` ratings is
:math:`G (L/\tilde L)^{-\varepsilon} / a_b` (``gap_length_elasticity``; :math:`\tilde L`
the median session, so that :math:`G` stays the mean gap after a typical
session). :math:`\varepsilon` is read off the returns alone
(:func:`gap_length_elasticity`): the within-user slope of the log gap on the log length of
the session before it (in MovieLens a long session is followed by an earlier return), which
the users' traits cannot carry. Fitted inside the likelihood it would also lean on the
censored last sessions, whose lengths the end of the data cuts.

**Patience** cannot be seen without impressions. It is ranked by the user's mean log
session length — users who rate longer stay longer — and spread on the synthetic
population's logit-normal scale (median 0.8, logit spread 0.6).

**Leaving** (simulated moments). A session's length in the data is its number of
ratings. The simulated users (each fitted user once) are shown, step after step, the 10
best of 50 random candidates by their own click probability
(:class:`ReferenceRecommender`; MovieLens users chose what they rated, so the reference
recommender is a good one) until each has ended their first session, and ``leave_base``,
``leave_length`` and ``leave_patience`` are set so that the 50th, 80th and 95th
percentiles (:data:`QUANTILES`) of clicks per simulated session match those of ratings
per real session: ``leave_base`` by bisection on the median for each
``(leave_length, leave_patience)`` of a small grid (:data:`LEAVE_GRID`), keeping the pair
whose three quantiles are nearest in log ratio (:func:`quantile_error`). A session still
under way when a run stops counts as at least as long as it was (Kaplan–Meier); a session
without a click is left out, as it leaves no rating. ``leave_patience`` carries the spread
of session length *between* users (patience is ranked by each user's mean log session
length): a constant hazard gives each user geometric session lengths, whose tail is far
lighter than the data's. The leave weights on mindset and boredom keep their defaults:
sessions of ratings do not separate them.

**Lives** (simulated moments). The first sessions do not show everything: later ones
start with satiation left over, and the returns' likelihood fit sets the gap's mean,
which the heavy tail of real gaps drags far above their median. So the
same users then live several sessions, each watched for as many days as the data watch
them (:func:`simulate_lives`), their clicks cut into sessions by the rule that cuts the
ratings, and their levels are searched together until the lives are the data's
(:func:`fit_lives`), each for a user's first session and for the sessions they return
for apart: the leave hazard's level on their length (the later sessions' on its 80th
percentile, the patience weight on its 95th), the return odds on the share of
sessions another one follows, and the gap's scale and shape on the gaps after the
sessions users return for (their 80th percentile and median); and the share of quick
visits, the gaps' mixture after a first session and the session theme's weight (the
docstring of :func:`fit_lives` lists them all). The first session
is set apart (``leave_first_session``, ``return_first_session``, ``gap_first_session``)
because it is of another kind: in MovieLens it is the sign-up, where a newcomer rates a
burst of movies. The visits they return for are short, often a single rating, and the
burst's length is unrelated to the later visits' (the share of patience in a first
session, :func:`first_session_patience`, is read before the search). After the sign-up
60% of newcomers are not seen again, where 80% of visits are followed by another, and
those who come back mostly do so within a day (median 1.1 days, against 4.9 after a
later visit). One level for both gave first sessions too short and later ones too long,
and next gaps that grew with the session's length where the data's shrink
(``benchmarks/RESULTS.md``). The fidelity report compares these lives with users the fit
never saw (:mod:`recoworld.apps.fidelity.sessions`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.calibration.split import DAY, Sessions, cut_sessions, is_first_session, session_ids, time_ordered
from recoworld.calibration.traits import normal_scores
from recoworld.catalog import Catalog, RandomCandidates
from recoworld.data.interactions import UNKNOWN
from recoworld.simulators.population import Population
from recoworld.simulators.statistical import MIN_GAP_SHAPE, StatisticalUserConfig, StatisticalUsers


#: Gauss–Hermite nodes of the integral over each user's activity at first (:func:`fit_returns`).
ACTIVITY_NODES = 20
#: The most nodes a user's integral is doubled to (NumPy's Gauss–Hermite weights are NaN from 400).
MAX_ACTIVITY_NODES = 320
#: How far a user's log marginal likelihood on n nodes may lie from that on 2n for n to do.
ACTIVITY_TOLERANCE = 1e-6
#: Rounds of re-centring the nodes on the users' posterior modes, at most.
ACTIVITY_ROUNDS = 10
#: Sessions per part of the likelihood's evaluation (:meth:`_ReturnData.parts`).
SESSIONS_PER_PART = 50_000
#: The least spread of the users' log activities, fitted or held (:func:`fit_returns`).
MIN_ACTIVITY_SPREAD = 1e-4
#: The fewest sessions users return for on which :func:`fit_lives` fits their level, patience
#: weight and quick-visit share. Those are read on the later sessions' 80th and 95th
#: percentiles and their share of single ratings; the 95th of 20 values or fewer is an
#: interpolation between the two largest, and at 30 it lies below the second largest, with
#: six values above the 80th. Each round of the fit simulates about as many later sessions
#: as the data hold (fewer, for the users it samples): with a handful, the positions it steps
#: on are noise, and the three levels ran to their bounds (3 users returning once).
MIN_LATER_SESSIONS = 30
#: The fewest returns after a first session on which :func:`fit_lives` splits them between
#: the first-session law and the regulars' (``gap_first_share``). The share is read on their
#: median and that law's factor on their first quartile: a handful of gaps, which one law
#: fits as well as a mixture, do not tell the share, and it ran to its bound (on 3 and on 10
#: newcomers returning, drawn from a share of 0.7). 30 leave seven gaps below the quartile,
#: as :data:`MIN_LATER_SESSIONS` leave six above the 80th percentile.
MIN_FIRST_RETURNS = 30


@dataclass
class ReturnFit:
    """Fitted return model (module docstring).

    Attributes:
        log_activity: ``[n_users]`` :math:`\\log a_b`.
        return_logit: :math:`x`, the return log-odds of an average user.
        mean_gap_days: :math:`G`, the mean gap of an average user.
        gap_shape: :math:`k`, the Weibull shape of a user's gaps (1: exponential).
        gap_length_elasticity: :math:`\varepsilon` (0: the session's length does not matter).
        reference_length: :math:`\tilde L`, the length at which the mean gap is :math:`G`.
        log_likelihood: the fit's marginal log-likelihood per session (the users' activities
            integrated out).
        gap_shape_fitted: whether :math:`k` was fitted (false: held at 1,
            :func:`calibration_returns`).
        activity_spread: :math:`\\sigma` of the law :math:`\\log a_b \\sim N(0, \\sigma^2)`, held or
            fitted (the posterior modes of ``log_activity`` spread less: shrunk towards 0).
    """

    log_activity: np.ndarray
    return_logit: float
    mean_gap_days: float
    gap_shape: float = 1.0
    gap_length_elasticity: float = 0.0
    reference_length: float = 1.0
    log_likelihood: float = math.nan
    gap_shape_fitted: bool = False
    activity_spread: float = 1.0

    def to_config(self, config: StatisticalUserConfig, memory_at_leaving: float) -> StatisticalUserConfig:
        """``config`` with ``return_base``, ``gap_days``, ``gap_shape`` and
        ``gap_length_elasticity`` for a typical session memory at leaving."""
        return replace(config,
                       return_base=self.return_logit - config.return_mindset * (memory_at_leaving - 0.5),
                       gap_days=self.mean_gap_days * self.reference_length ** self.gap_length_elasticity
                       * (0.5 + memory_at_leaving), gap_shape=self.gap_shape,
                       gap_length_elasticity=self.gap_length_elasticity)


def fit_returns(sessions: Sessions, n_users: int, weibull: bool = False, length_elasticity: float = 0.0,
                activity_spread: float | None = None) -> ReturnFit:
    r"""Fit the return model of the module docstring to ``sessions``; with ``weibull``, a
    user's gaps follow a Weibull law of mean :math:`G/a_b` whose shape :math:`k` is fitted
    too (:math:`k = 1` is the simulator's exponential); the mean falls with the session's
    length as :math:`(L/\tilde L)^{-\varepsilon}`, :math:`\varepsilon` = ``length_elasticity``
    (:func:`gap_length_elasticity`; 0: not at all).

    The users' :math:`\log a_b \sim N(0, \sigma^2)` are integrated out, not fitted:
    :math:`x`, :math:`G`, :math:`k` and :math:`\sigma` maximise the marginal likelihood,
    each user's integral taken by adaptive Gauss–Hermite quadrature (:data:`ACTIVITY_NODES`
    nodes centred on the user's posterior mode and scaled by its curvature; Liu and Pierce,
    Biometrika 1994), and each user's :math:`\log a_b` is then that posterior mode. Once the
    fit settles (and in every round from the fourth where it does not), a user whose integral
    on twice the nodes differs by more than :data:`ACTIVITY_TOLERANCE` gets twice the nodes,
    up to :data:`MAX_ACTIVITY_NODES`, and the fit goes on. Few users need them: one who never
    came back in a long watch, where the paces spread widely, whose posterior is the prior cut
    off by the odds of their silence, far from normal (20 nodes missed the log-likelihood by
    1.8% on a log of 100 such users and one who came back three times).
    ``activity_spread`` holds :math:`\sigma` instead (a prior, at least
    :data:`MIN_ACTIVITY_SPREAD`). A held spread moves :math:`G`, and where most users come
    back once it moves the shape too: held wider than the data's spread of paces, it pulls
    the shape up, narrower, down.

    Fitting every :math:`\log a_b` jointly with :math:`k` instead (their maximum a
    posteriori) lets a user with a single gap set their pace at it, whose likelihood grows
    without bound with :math:`k`: on logs in which few users come back several times after
    exponential gaps, that fit read shapes far above 1 (``benchmarks/return_fit.py``).

    Sessions of users outside ``0 .. n_users - 1`` are a :class:`ValueError`; sessions the
    model cannot be fitted to a
    :class:`~recoworld.apps.calibrate.folds.CalibrationDataError`: no return, a return after
    no pause, or (``weibull``) every return after gaps of one length, whose likelihood grows
    without bound with :math:`k`."""
    if activity_spread is not None and not (math.isfinite(activity_spread) and activity_spread >= MIN_ACTIVITY_SPREAD):
        raise ValueError(f"activity_spread={activity_spread}: the spread of the users' log activities is at least "
                         f"{MIN_ACTIVITY_SPREAD}; leave it None to fit it")
    data = _ReturnData.of(sessions, length_elasticity)
    data.check(n_users, weibull)
    x = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    log_G = torch.tensor(math.log(float(data.gap[data.returned].mean())), dtype=torch.float64, requires_grad=True)
    log_k = torch.tensor(0.0, dtype=torch.float64, requires_grad=weibull)
    log_sd = torch.tensor(0.0 if activity_spread is None else math.log(activity_spread), dtype=torch.float64,
                          requires_grad=activity_spread is None)
    parameters = [x, log_G] + [log_sd] * (activity_spread is None) + [log_k] * weibull
    counts = [ACTIVITY_NODES * 2 ** i for i in range(int(math.log2(MAX_ACTIVITY_NODES / ACTIVITY_NODES)) + 1)]
    rules = {count: _gauss_hermite(count) for count in counts}
    # A user without sessions keeps the prior's mode, 0, and adds nothing to the likelihood.
    mode, scale = torch.zeros(n_users, dtype=torch.float64), torch.ones(n_users, dtype=torch.float64)
    node_count = torch.full((n_users,), ACTIVITY_NODES)
    parts = data.parts()
    groups = [(part, ACTIVITY_NODES) for part in parts]  # the parts' users by their node count

    def log_spread() -> torch.Tensor:
        # The floor keeps a spread fitted to nothing (every user alike) from dividing by zero.
        return log_sd.clamp_min(math.log(MIN_ACTIVITY_SPREAD))

    def log_prior(b: torch.Tensor) -> torch.Tensor:
        return -0.5 * (b / log_spread().exp()) ** 2 - log_spread()

    def marginal(part: _ReturnData, count: int) -> torch.Tensor:
        """``[n_users]``: each user's log marginal likelihood, on ``count`` nodes."""
        nodes, log_weights = rules[count]
        centre, width = mode[part.ids], scale[part.ids]
        b = centre[:, None] + width[:, None] * nodes
        return torch.logsumexp(part.per_user(x, log_G, log_k, b) + log_prior(b) + log_weights + width.log()[:, None],
                               1)

    def slope_and_curvature(part: _ReturnData, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The first and second derivatives of each user's log posterior at ``b`` (each a
        function of the user's own :math:`\log a_b` alone)."""
        with torch.enable_grad():
            b = b.detach().requires_grad_(True)
            value = (part.per_user(x, log_G, log_k, b[:, None]) + log_prior(b[:, None])).sum()
            slope, = torch.autograd.grad(value, b, create_graph=True)
            curvature, = torch.autograd.grad(slope.sum(), b)
        return slope.detach(), curvature.detach()

    def recentre() -> None:
        r"""Each user's posterior mode (Newton's steps, at most one unit each) and
        :math:`1/\sqrt{-h}`, :math:`h` the curvature there, into ``mode`` and ``scale``."""
        with torch.no_grad():
            for part in parts:
                b = mode[part.ids]
                for _ in range(50):
                    slope, curvature = slope_and_curvature(part, b)
                    step = torch.where(curvature < 0, -slope / curvature, slope).clamp(-1.0, 1.0)
                    b = b + step
                    if step.abs().max() < 1e-9:
                        break
                mode[part.ids] = b
                scale[part.ids] = (-slope_and_curvature(part, b)[1]).clamp_min(1e-12).rsqrt()

    def enough_nodes() -> bool:
        """Whether every user's integral agrees with the one on twice the nodes; a user whose
        does not gets twice the nodes, in ``node_count`` and ``groups``."""
        before = node_count.clone()
        with torch.no_grad():
            for part in parts:
                for count in counts[:-1]:  # a user raised to 2 * count is checked there in turn
                    few = node_count[part.ids] == count
                    if few.any():
                        users = part.of_users(few)  # the part itself where all are
                        off = (marginal(users, count) - marginal(users, 2 * count)).abs() > ACTIVITY_TOLERANCE
                        node_count[users.ids[off]] = 2 * count
        groups[:] = [(part.of_users(same), count) for part in parts for count in counts
                     if (same := node_count[part.ids] == count).any()]
        return bool((node_count == before).all())

    previous, settled = None, False
    for done in range(ACTIVITY_ROUNDS):
        recentre()
        # The nodes are checked once the fit settles, and in every round from the fourth where it
        # does not: a quadrature that misses moves the likelihood with the nodes' centres, and the
        # fit with it (on logs of the model it settles in three or four).
        if (settled or done >= 3) and not enough_nodes():
            settled = False  # fit again on the added nodes
        if settled:
            break
        optimizer = torch.optim.LBFGS(parameters, max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            # Part by part, each part's graph freed by its backward: a whole log's would hold
            # every session at every node at once.
            optimizer.zero_grad()
            total = 0.0
            for part, count in groups:
                loss = -marginal(part, count).sum() / len(data.users)
                loss.backward()
                total += loss.item()
            return torch.tensor(total, dtype=torch.float64)

        optimizer.step(closure)
        current = torch.stack([p.detach() for p in parameters])
        settled = previous is not None and bool((current - previous).abs().max() < 1e-7)
        previous = current
    else:  # the rounds ran out before the fit settled: the nodes are still checked at its last parameters
        recentre()
        enough_nodes()
    with torch.no_grad():
        per_session = sum(marginal(part, count).sum().item() for part, count in groups) / len(data.users)
    return ReturnFit(mode.numpy().copy(), x.item(), log_G.exp().item(), log_k.exp().item(),
                     length_elasticity, data.reference_length, per_session, weibull, log_spread().exp().item())


@dataclass
class _ReturnData:
    """The sessions as the return likelihood reads them (:func:`fit_returns`), in order of
    their users."""

    users: torch.Tensor  # [n_sessions] each session's user, as an index into ids
    ids: torch.Tensor  # [n_users] the users (rows of ReturnFit.log_activity)
    gap: torch.Tensor  # [n_sessions] days to the next session, NaN after a user's last
    returned: torch.Tensor  # [n_sessions] bool: another session followed
    silence: torch.Tensor  # [n_sessions] days from the session's end to the data's
    log_length: torch.Tensor  # [n_sessions] log of the length over the median length
    reference_length: float
    length_elasticity: float

    @classmethod
    def of(cls, sessions: Sessions, length_elasticity: float) -> "_ReturnData":
        table = sessions.table
        order = np.argsort(table["user_id"].to_numpy(), kind="stable")
        ids, users = np.unique(table["user_id"].to_numpy()[order], return_inverse=True)
        gap = torch.tensor(table["next_gap_days"].to_numpy()[order], dtype=torch.float64)
        reference_length = float(table["length"].median())
        return cls(torch.as_tensor(users, dtype=torch.long), torch.as_tensor(ids, dtype=torch.long), gap,
                   ~torch.isnan(gap),
                   torch.as_tensor((sessions.data_end - table["end"].to_numpy()[order]) / DAY, dtype=torch.float64),
                   torch.tensor(np.log(table["length"].to_numpy()[order] / reference_length), dtype=torch.float64),
                   reference_length, length_elasticity)

    def check(self, n_users: int, weibull: bool) -> None:
        """Refuse sessions :func:`fit_returns` cannot fit (its docstring), naming why."""
        if len(self.ids) and (self.ids[0] < 0 or self.ids[-1] >= n_users):
            raise ValueError(f"sessions of user {int(self.ids[0] if self.ids[0] < 0 else self.ids[-1])}, but "
                             f"n_users={n_users}: the users are the rows 0 to {n_users - 1} of the fit's log "
                             "activities; give n_users above every user_id")
        gaps = self.gap[self.returned]
        if not len(gaps):
            users = f"{len(self.ids)} users, one session each" if len(self.ids) != 1 else "1 user, one session"
            raise CalibrationDataError(
                f"no user comes back ({users}): the return odds and the gaps between sessions cannot be read off "
                "the sessions. Fit a log in which users come back")
        pauseless = ~(gaps > 0) | gaps.isinf()
        if pauseless.any():
            user = int(self.ids[self.users[self.returned][pauseless][0]])
            raise CalibrationDataError(
                f"{int(pauseless.sum())} of the {len(gaps)} gaps to a user's next session are no positive number of "
                f"days (user {user}'s next_gap_days {float(gaps[pauseless][0]):g}): a session ends at a pause, so "
                "the next starts a positive, finite number of days later. Cut the ratings into sessions with "
                "cut_sessions, at pauses of gap_minutes above 0")
        if weibull and bool((gaps == gaps[0]).all()):
            every = "the one return comes" if len(gaps) == 1 else f"all {len(gaps)} returns come"
            raise CalibrationDataError(
                f"weibull=True, but {every} after {float(gaps[0]):.3g} days: the Weibull shape is read off gaps of "
                "differing length, and gaps all of one length fit a higher shape ever better (the likelihood grows "
                "without bound). Fit exponential gaps (weibull=False), as calibration_returns does where no user's "
                "own gaps differ")

    def parts(self) -> list["_ReturnData"]:
        """The sessions about :data:`SESSIONS_PER_PART` at a time, each user's in one part:
        the likelihood and its gradient are summed part by part, each part's
        ``[sessions, nodes]`` tensors small enough for the allocator to reuse (whole logs'
        were fresh pages at every step: several times slower, and heavier, on large logs;
        ``benchmarks/RESULTS.md``)."""
        users = self.users.numpy()
        cuts = [0]
        for start in np.flatnonzero(np.r_[True, users[1:] != users[:-1]]):
            if start - cuts[-1] >= SESSIONS_PER_PART:
                cuts.append(int(start))
        cuts.append(len(users))
        return [self._rows(slice(a, b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def of_users(self, chosen: torch.Tensor) -> "_ReturnData":
        """The sessions of the users ``chosen`` (``[n_users]`` bool)."""
        if chosen.all():
            return self
        rows = chosen[self.users]
        return _ReturnData((chosen.cumsum(0) - 1)[self.users[rows]], self.ids[chosen], self.gap[rows],
                           self.returned[rows], self.silence[rows], self.log_length[rows], self.reference_length,
                           self.length_elasticity)

    def _rows(self, rows: slice) -> "_ReturnData":
        first, last = int(self.users[rows.start]), int(self.users[rows.stop - 1])
        return _ReturnData(self.users[rows] - first, self.ids[first:last + 1], self.gap[rows], self.returned[rows],
                           self.silence[rows], self.log_length[rows], self.reference_length, self.length_elasticity)

    def per_user(self, x, log_G, log_k, b: torch.Tensor) -> torch.Tensor:
        """``[n_users, m]``: the log-likelihood of each user's sessions at their ``m`` log
        activities ``b`` (``[n_users, m]``)."""
        return torch.zeros(b.shape, dtype=torch.float64).index_add_(
            0, self.users, self.log_likelihood(x, log_G, log_k, b[self.users]))

    def log_likelihood(self, x, log_G, log_k, log_a: torch.Tensor) -> torch.Tensor:
        """``[n_sessions, m]``: each session's log-likelihood at its user's ``m`` log activities
        ``log_a`` (module docstring)."""
        z = x + log_a
        k = log_k.exp()
        # Weibull scale of mean G L^-eps / a: s = G L^-eps / (a Gamma(1 + 1/k)).
        log_scale = log_G - log_a - self.length_elasticity * self.log_length[:, None] - torch.lgamma(1.0 + 1.0 / k)
        log_gap = torch.where(self.returned, self.gap, 1.0).log()[:, None]
        came_back = F.logsigmoid(z) + log_k - log_scale + (k - 1) * (log_gap - log_scale) \
            - ((log_gap - log_scale) * k).exp()
        log_silence = self.silence.clamp_min(1e-9).log()[:, None]
        # log(1 - p + p S) = log(1 - p) + log(1 + e^z S): no logaddexp, whose second derivative
        # is NaN where S underflows (the posterior modes take it).
        silent = F.logsigmoid(-z) + F.softplus(z - ((log_silence - log_scale) * k).exp())
        return torch.where(self.returned[:, None], came_back, silent)


def _gauss_hermite(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``count`` nodes :math:`t_i` and log weights :math:`w_i` with
    :math:`\sum_i e^{w_i + g(t_i)} \approx \int e^{g(t)} dt / \sqrt{2\pi}` (Gauss–Hermite: exact
    where :math:`e^{g(t) + t^2/2}` is a polynomial of degree below ``2 * count``; the
    :math:`1/\sqrt{2\pi}` is the normal density's, which :func:`fit_returns`' prior leaves out)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)  # weight exp(-t^2 / 2)
    nodes = torch.tensor(nodes)
    return nodes, torch.tensor(np.log(weights)) + 0.5 * nodes ** 2 - 0.5 * math.log(2 * math.pi)


def gap_length_elasticity(sessions: Sessions, min_gaps: int = 3) -> float:
    r""":math:`\varepsilon \ge 0` of the module docstring: minus the slope of the log gap on
    the log length of the session before it, within users (each user's means taken out;
    users with at least ``min_gaps`` gaps), 0 where longer sessions do not bring the next
    one sooner."""
    table = sessions.table.dropna(subset=["next_gap_days"])
    table = table[table.groupby("user_id")["length"].transform("size") >= min_gaps]
    if table.empty:
        return 0.0
    # Gaps are longer than the session cut's pause by construction; the floor only guards log(0).
    log_gap = np.log(np.maximum(table["next_gap_days"].to_numpy(), 1e-9))
    log_length = np.log(table["length"].to_numpy())
    users = table["user_id"].to_numpy()
    gap_within = log_gap - pd.Series(log_gap).groupby(users).transform("mean").to_numpy()
    length_within = log_length - pd.Series(log_length).groupby(users).transform("mean").to_numpy()
    spread = float((length_within ** 2).sum())
    return max(0.0, -float((gap_within * length_within).sum()) / spread) if spread > 0 else 0.0


def calibration_returns(sessions: Sessions, n_users: int) -> ReturnFit:
    r"""The calibration's return law on ``sessions``: Weibull gaps whose mean falls with the
    session's length by :func:`gap_length_elasticity`.

    The gaps' shape :math:`k` is told from the spread of the users' paces by the users whose
    own gaps differ in length. A user who comes back once shows one gap, which a slow pace
    or a heavy tail explain alike: where no user comes back twice, only the laws assumed
    for both split the spread of the gaps between them (the fit reads every user alike and
    the whole spread as the shape). So there, and where the fit runs off to NaN, the gaps
    are held exponential (:math:`k = 1`, the simulator's own law; the spread of the users'
    gaps is then carried by their paces), with a warning, and
    :attr:`ReturnFit.gap_shape_fitted` is false (``meta["returns"]`` of the world). With
    the paces integrated out (:func:`fit_returns`), a few users whose gaps differ among
    many single gaps do not pull the shape up.

    Users who come back several times after gaps all of one length (``[2, 2]``) tell their
    pace and no shape, as a single gap does: where no user's gaps differ, the gaps are held
    exponential too.

    Sessions it cannot be fitted to are a
    :class:`~recoworld.apps.calibrate.folds.CalibrationDataError`: no return at all; returns
    of users coming back more than once, every gap of the log of one length (timestamps
    written by a rule, not as the interactions happened); or gaps too heavy-tailed for the
    simulator."""
    returned = sessions.table.dropna(subset=["next_gap_days"])
    gaps = returned["next_gap_days"]
    if gaps.empty:
        raise CalibrationDataError(
            f"no user comes back within the log ({len(sessions.table)} sessions of {n_users} users, one each, "
            "cut at pauses of the session gap): the return probability and the gaps between sessions cannot be "
            "read off it. Calibrate on a log that spans several sessions per user")
    per_user = returned.groupby("user_id")["next_gap_days"]
    several, varied = int((per_user.size() > 1).sum()), int((per_user.nunique() > 1).sum())
    span = f"{len(gaps)} followed by a return after {gaps.min():.3g} to {gaps.max():.3g} days"
    # A rule wrote the times where every gap of the log is one length. Gaps of one length within
    # users but not between them tell paces, not a shape, as single gaps do: held exponential below.
    if several and gaps.nunique() == 1:
        raise CalibrationDataError(
            f"the return model does not fit these sessions ({len(sessions.table)} sessions of {n_users} users, "
            f"{span}): the shape of a user's gaps is read off the users who come back more than once, and each of "
            f"these {several} does so after gaps all of one length. Calibrate on a log timestamped as the "
            "interactions happened")
    elasticity = gap_length_elasticity(sessions)
    fit = fit_returns(sessions, n_users, weibull=True, length_elasticity=elasticity) if varied else None
    if fit is None or not (all(math.isfinite(v) for v in (fit.return_logit, fit.mean_gap_days, fit.gap_shape,
                                                          fit.activity_spread, fit.log_likelihood))
                           and np.isfinite(fit.log_activity).all()):
        # Exponential gaps: a user's likelihood peaks at a finite pace, which the prior bounds.
        fit = fit_returns(sessions, n_users, length_elasticity=elasticity)
        users = per_user.ngroups
        who = (f"only {varied} of the {users} users who come back do so after gaps of differing length" if varied else
               f"none of the {users} users who come back does so after gaps of differing length ({several} of them "
               "more than once, after gaps all of one length)" if several else
               f"none of the {users} users who come back does so more than once")
        warnings.warn(f"the shape of the gaps between sessions cannot be fitted ({span}): {who}, and a single gap "
                      "(or gaps of one length) tells a user's pace, not the shape; the gaps are held exponential "
                      "(gap_shape 1). Calibrate on a longer log, in which more users come back several times, to fit "
                      "it", UserWarning, stacklevel=2)
    if fit.gap_shape < MIN_GAP_SHAPE:
        raise CalibrationDataError(
            f"the gaps between sessions are too heavy-tailed for the simulated users (Weibull shape "
            f"{fit.gap_shape:.3g}, below the {MIN_GAP_SHAPE} they can draw; {len(gaps)} returns after "
            f"{gaps.min():.3g} to {gaps.max():.3g} days): check the timestamps' unit, or drop the users whose "
            "returns span years")
    return fit


def patience_from_sessions(sessions: Sessions, n_users: int, median: float = 0.8, spread: float = 0.6) -> np.ndarray:
    """``[n_users]`` patience ranked by mean log session length (module docstring)."""
    mean_log = sessions.table.assign(log_length=np.log(sessions.table["length"])) \
        .groupby("user_id")["log_length"].mean().reindex(range(n_users))
    z = np.nan_to_num(normal_scores(mean_log.to_numpy()), nan=0.0)
    return 1.0 / (1.0 + np.exp(-(math.log(median / (1 - median)) + spread * z)))


#: The reference recommender's slate and the random candidates it picks the slate from.
REFERENCE_SLATE, REFERENCE_CANDIDATES = 10, 50


class ReferenceRecommender:
    """The good recommender of the leave fit: each step it shows every user the best
    ``slate_size`` of ``candidates`` random distinct items by the user's own click
    probability (MovieLens users chose what they rated), the films the user already
    clicked last (MovieLens asks for one rating per film: a film seen again would be a
    click the data cannot hold)."""

    def __init__(self, n_items: int, slate_size: int = REFERENCE_SLATE, candidates: int = REFERENCE_CANDIDATES,
                 seed: int = 0):
        self.slate_size = slate_size
        self.generator = torch.Generator().manual_seed(seed)
        self.candidates = RandomCandidates(n_items, candidates)
        self.n_items = n_items
        self.seen: torch.Tensor | None = None  # [n, n_items] bool: what each user clicked

    def slates(self, sim: StatisticalUsers, serving: torch.Tensor | None = None) -> torch.Tensor:
        """``[n, slate_size]`` item ids for the ``n`` users of ``sim``; only the users
        ``serving`` (bool ``[n]``, default all) are scored, the others get their first
        candidates (a valid slate, which a simulator holding them idle does not read)."""
        n = sim.n_users
        if self.seen is None or len(self.seen) != n:
            self.seen = torch.zeros(n, self.n_items, dtype=torch.bool)
        pool = self.candidates.draw(n, self.generator)  # every row's: the draws do not hang on who is served
        rows = torch.arange(n) if serving is None else serving.nonzero().flatten()
        if len(rows) == 1 and n > 1:
            # torch's bmm of a single matrix takes another path, which rounds otherwise: score
            # a pair, so that a user's slate is the one the whole batch's scores would give.
            rows = torch.cat([rows, (rows + 1) % n]).sort().values
        slates = pool[:, :self.slate_size].clone()
        if len(rows):
            # The sigmoid over every row, as for the whole batch: torch's vectorised and scalar
            # loops round differently, so an element's last bit hangs on its place in the tensor.
            utility = torch.zeros(pool.shape)
            # Distinct catalog ids and slots of the batch, built here: scored without a check.
            utility[rows] = sim.utility_valid(pool[rows], rows)
            candidates = pool[rows]
            score = torch.sigmoid(utility)[rows] - self.seen[rows].gather(1, candidates).float()  # in [-1, 1]
            slates[rows] = candidates.gather(1, score.topk(self.slate_size, dim=1).indices)
        return slates

    def clicked(self, slates: torch.Tensor, clicked: torch.Tensor) -> None:
        """Remember the films of ``slates`` the users ``clicked`` (both ``[n, slate_size]``)."""
        self.seen[clicked.nonzero(as_tuple=True)[0], slates[clicked]] = True

    def forget(self, users: torch.Tensor) -> None:
        """New users in the slots ``users``: nothing seen."""
        self.seen[users] = False


def kaplan_meier_quantiles(values: np.ndarray, censored: np.ndarray, weights: np.ndarray,
                           levels) -> tuple[float, ...]:
    """Quantiles at ``levels`` of right-censored, weighted ``values`` by the Kaplan–Meier
    estimator (Kaplan and Meier, JASA 1958): a censored value counts as at least that
    large; ``inf`` where the estimate never reaches the level."""
    order = np.lexsort((censored, values))  # at a tie, completed values first
    v, c, w = values[order], censored[order], weights[order]
    at_risk = w[::-1].cumsum()[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(c | (at_risk <= 0), 1.0, 1.0 - w / at_risk)
    reached = 1.0 - np.cumprod(factor)
    at = np.searchsorted(reached, np.asarray(levels, dtype=np.float64) - 1e-12)
    return tuple(float(v[i]) if i < len(v) else math.inf for i in at)


@dataclass
class FirstSessions:
    """Each simulated user's first session: its ``clicks``, and whether it was still under
    way when the run stopped (``censored``)."""

    clicks: np.ndarray
    censored: np.ndarray

    def quantiles(self, levels) -> tuple[float, ...]:
        """Kaplan–Meier quantiles of clicks per session. Sessions without a click are left
        out: they leave no rating in the data."""
        keep = self.clicks > 0
        return kaplan_meier_quantiles(self.clicks[keep], self.censored[keep], np.ones(int(keep.sum())), levels)


def serve_reference(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds, steps: int,
                    slate_size: int = REFERENCE_SLATE, candidates: int = REFERENCE_CANDIDATES, seed: int = 0,
                    serving: torch.Tensor | None = None):
    """Serve the users seeded ``seeds`` the :class:`ReferenceRecommender`'s slates for up to
    ``steps`` steps, yielding ``(sim, slates, response)`` after each. Once the caller has
    read a step, its churned users restart (as the same seeds) only to keep the batch
    stepping: what they do next is not theirs to count.

    ``serving`` (bool ``[n]``, default all) holds the users whose steps the caller still
    reads; the caller clears a user's entry in place once it no longer does. The others
    are not scored, and the C kernel holds them idle (their response is zeros; the torch
    one steps them on their first candidates): most users of a run are done long before
    its last step. The users served step as they would among all, to the bit."""
    sim = StatisticalUsers(catalog, config, population)
    n, seeds = len(seeds), torch.as_tensor(seeds)
    sim.reset(n, seed=seeds)
    recommender = ReferenceRecommender(catalog.n_items, slate_size, candidates, seed)
    for _ in range(steps):
        slates = recommender.slates(sim, serving)
        # The slates are valid by construction: distinct candidates of the catalog.
        response = sim.respond_valid(slates, None if serving is None else ~serving)
        recommender.clicked(slates, response.clicked)
        yield sim, slates, response
        gone = response.churned.nonzero().flatten()
        if len(gone):
            sim.reset(n, seed=seeds[gone], users=gone)
            recommender.forget(gone)


def first_sessions(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
                   steps: int = 80, slate_size: int = REFERENCE_SLATE, candidates: int = REFERENCE_CANDIDATES,
                   seed: int = 0) -> FirstSessions:
    """Serve the users seeded ``seeds`` the :class:`ReferenceRecommender`'s slates until
    each has ended their first session, for at most ``steps`` steps."""
    n = len(seeds)
    in_first = torch.ones(n, dtype=torch.bool)
    clicks = torch.zeros(n)
    for _, _, response in serve_reference(catalog, config, population, seeds, steps, slate_size, candidates, seed,
                                          serving=in_first):
        clicks += torch.where(in_first, response.clicked.sum(1).float(), 0.0)
        in_first &= ~response.left_session  # in place: serve_reference stops serving them
        if not bool(in_first.any()):
            break
    return FirstSessions(clicks.numpy(), in_first.numpy())


def memory_at_leaving(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
                      steps: int = 240, seed: int = 0) -> float:
    """The mean session memory at leaving over every session the users seeded ``seeds``
    end in ``steps`` steps of the :class:`ReferenceRecommender` (a churned user starts
    again): the typical memory at which the return fit's ``return_base`` and ``gap_days``
    are set. Later sessions start with satiation left over from earlier ones, so the first
    sessions alone would overstate it."""
    total, count = 0.0, 0
    for sim, _, response in serve_reference(catalog, config, population, seeds, steps, seed=seed):
        total += float(sim.session_memory[response.left_session].sum())
        count += int(response.left_session.sum())
    return total / count if count else 0.5


def simulate_lives(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
                   windows_days, max_steps: int = 1500, slate_size: int = REFERENCE_SLATE,
                   candidates: int = REFERENCE_CANDIDATES, seed: int = 0) -> pd.DataFrame:
    """The clicks of the users seeded ``seeds`` over several sessions, served the
    :class:`ReferenceRecommender`'s slates, as a ratings table (``user_id``: the user's
    position in ``seeds``; ``item_id``, ``rating``: 0 for an unrated click, ``timestamp``
    in seconds from the user's first session).

    A user is watched for ``windows_days[j]`` days, as a real user is seen from their first
    rating to the end of the data set, or until they churn; each step of a session lasts a
    second (sessions are minutes, gaps days) and a session's next one starts
    ``Response.return_gap`` days after it ends. ``max_steps`` bounds the run; a user still
    watched then is cut there, as by the end of a data set.
    """
    horizon = torch.as_tensor(np.asarray(windows_days, dtype=np.float64) * DAY)
    clock = torch.zeros(len(seeds), dtype=torch.float64)
    watched = clock < horizon
    rows = []
    served = serve_reference(catalog, config, population, seeds, max_steps if bool(watched.any()) else 0,
                             slate_size, candidates, seed, serving=watched)
    for _, slates, response in served:
        clicked = response.clicked & watched[:, None]
        user, position = clicked.nonzero(as_tuple=True)
        rows.append((user.numpy(), slates[user, position].numpy(), response.rating[user, position].numpy(),
                     clock[user].numpy()))
        clock += 1.0
        clock = torch.where(response.left_session, clock + response.return_gap.double() * DAY, clock)
        watched &= (clock < horizon) & ~response.churned  # in place: serve_reference stops serving them
        if not bool(watched.any()):
            break
    columns = [np.concatenate(column) for column in zip(*rows)] if rows else [np.zeros(0)] * 4
    user, item, rating, stamp = columns
    return pd.DataFrame({"user_id": user.astype(np.int64), "item_id": item.astype(np.int64),
                         "rating": rating.astype(np.int64), "timestamp": stamp.astype(np.int64)})


def observation_windows(sessions: Sessions, n_users: int) -> np.ndarray:
    """``[n_users]`` days from each user's first session to the end of the data (0 for a
    user without sessions): how long the data watch each user."""
    first = sessions.table.groupby("user_id")["start"].min().reindex(range(n_users))
    return np.nan_to_num((sessions.data_end - first.to_numpy(np.float64)) / DAY, nan=0.0)


@dataclass(frozen=True)
class LifeTargets:
    """What a simulated life is fitted to (:func:`fit_lives`), each split by whether the
    session is the user's first: the medians of the first sessions' length and of the
    sessions users return for, the first sessions' 90th percentile and the later sessions'
    80th and 95th; the medians of the gaps after each kind, the 80th percentile of those
    after a later session (``gap_upper``) and the first quartile of those after a first
    session; the share of each kind that another
    session follows within the user's window; the share of the later sessions that hold a
    single rating (a visit for one thing); and, where the caller gives it
    (:func:`genre_repetition`, which needs the items' genres), how often consecutive
    ratings of a session share a genre. NaN where there is none to measure (no
    returning user, say). ``at_quantile`` holds, per quantile, the share of the values below
    it, ties counted half (:meth:`position`): about the quantile's level, but lengths are
    counts, and a median of 4 may leave 40% below it. ``later_sessions`` counts the sessions
    users return for, and ``first_returns`` the gaps after a first session (the newcomers
    who return), each None where the targets were not taken of a table: not counted."""

    first_length: float
    return_length: float
    gap_days: float
    first_gap_days: float = math.nan
    first_return_share: float = math.nan
    return_share: float = math.nan
    first_gap_quartile: float = math.nan
    first_length_tail: float = math.nan
    return_length_upper: float = math.nan
    return_length_tail: float = math.nan
    gap_upper: float = math.nan
    single_share: float = math.nan
    genre_repetition: float = math.nan
    at_quantile: dict = field(default_factory=dict)
    later_sessions: int | None = None
    first_returns: int | None = None

    #: The quantiles, by name: the values of a session table each is taken of, and its level.
    QUANTILES = {"first_length": ("first_length", 0.5), "return_length": ("return_length", 0.5),
                 "gap_days": ("gap_days", 0.5), "first_gap_days": ("first_gap", 0.5),
                 "first_gap_quartile": ("first_gap", 0.25), "first_length_tail": ("first_length", 0.9),
                 "return_length_upper": ("return_length", 0.8), "return_length_tail": ("return_length", 0.95),
                 "gap_upper": ("gap_days", 0.8)}

    @staticmethod
    def values(table: pd.DataFrame) -> dict[str, np.ndarray]:
        """The values behind the quantiles (:data:`QUANTILES`) of ``table``: the first
        sessions' lengths, the later ones', and the gaps after later and after first ones."""
        first = is_first_session(table)
        length = table["length"].to_numpy(np.float64)
        gap = table["next_gap_days"].to_numpy(np.float64)
        return {"first_length": length[first], "return_length": length[~first],
                "gap_days": gap[~first & np.isfinite(gap)], "first_gap": gap[first & np.isfinite(gap)]}

    @classmethod
    def of(cls, table: pd.DataFrame) -> LifeTargets:
        """The targets of a session table (``user_id``, ``length``, ``next_gap_days``; each
        user's sessions in time order, as :func:`~recoworld.calibration.split.cut_sessions`
        gives them)."""
        first = is_first_session(table)
        returned = np.isfinite(table["next_gap_days"].to_numpy(np.float64))
        values = cls.values(table)
        quantiles = {name: float(np.quantile(values[of], q)) if len(values[of]) else math.nan
                     for name, (of, q) in cls.QUANTILES.items()}

        def share(kind: np.ndarray) -> float:
            return float(returned[kind].mean()) if kind.any() else math.nan

        later = values["return_length"]
        single = float((later == 1).mean()) if len(later) else math.nan
        targets = cls(**quantiles, first_return_share=share(first), return_share=share(~first), single_share=single,
                      later_sessions=len(later), first_returns=len(values["first_gap"]))
        return replace(targets, at_quantile=targets.position(table))

    def position(self, table: pd.DataFrame) -> dict[str, float]:
        """Per quantile of :data:`QUANTILES`, the share of ``table``'s values below it, ties
        counted half (NaN without values): it moves smoothly with a fit's levels where
        the quantile of counts jumps, so :func:`fit_lives` steps on it."""
        out, values = {}, self.values(table)
        for name, (of, _) in self.QUANTILES.items():
            v, m = values[of], getattr(self, name)
            out[name] = float(((v < m) + 0.5 * (v == m)).mean()) if len(v) and not math.isnan(m) else math.nan
        return out


def known_genres(catalog: Catalog) -> np.ndarray:
    """The ``[n_items, n_genres]`` bool genre table of ``catalog`` without the placeholder
    genre ``unknown`` (that of an item table's empty cell, and of every item of a log read
    without one; MovieLens-100K's own label of two films of no known genre): an item in it
    alone has no genre, a row of zeros, which :func:`genre_pairs` leaves out of every pair."""
    table = catalog.genres.numpy().astype(bool)
    table[:, [i for i, name in enumerate(catalog.genre_names) if name == UNKNOWN]] = False
    return table


def genre_pairs(ordered: pd.DataFrame, sid: np.ndarray, genres, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per session ``0..n-1`` of the time-``ordered`` ratings (session ids ``sid``): its pairs
    of consecutive ratings of items with a genre, and how many of them share one
    (``genres``, the ``[n_items, n_genres]`` 0/1 table, :func:`known_genres`). A pair with an
    item of no genre (a row of zeros) is left out: whether its items share a genre is not
    known, and counted as one genre, the placeholder ``unknown``, two such items would."""
    item_genres = np.asarray(genres, dtype=bool)[ordered["item_id"].to_numpy()]
    known = item_genres.any(1)
    paired = (sid[1:] == sid[:-1]) & known[1:] & known[:-1]
    shared = (item_genres[1:] & item_genres[:-1]).any(1) & paired
    return np.bincount(sid[1:][paired], minlength=n), np.bincount(sid[1:][shared], minlength=n)


def genre_repetition(ratings: pd.DataFrame, genres, gap_minutes: float) -> float:
    """The mean, over the sessions of two ratings or more, of the share of consecutive
    ratings that share a genre (the fidelity report's ``genre_repetition``), pairs with an
    item of no genre left out (:func:`genre_pairs`; ``genres`` as :func:`known_genres` gives
    them); NaN without such a session."""
    ordered = time_ordered(ratings)
    sid = session_ids(ordered, gap_minutes)
    pairs, shared = genre_pairs(ordered, sid, genres, int(sid.max()) + 1 if len(sid) else 0)
    kept = pairs > 0
    return float((shared[kept] / pairs[kept]).mean()) if kept.any() else math.nan


def habitual_lengths(table: pd.DataFrame) -> np.ndarray:
    """The lengths of the sessions users return for (every session where no user returns):
    the sessions whose shape the leave weights follow, the first session having a shift of
    its own (:func:`fit_lives`)."""
    later = ~is_first_session(table)
    length = table["length"].to_numpy()
    return length[later] if later.any() else length


def first_session_patience(table: pd.DataFrame) -> float:
    """The share of the patience term in a user's first session (``first_session_patience``),
    read off a session table: Spearman's correlation between each returning user's first
    session length and the median length of their later sessions, floored at 0. Patience
    is what ranks users' sessions, so a first session ranked as the later ones keeps its
    whole weight (1), and one unrelated to them none (0)."""
    first = is_first_session(table)
    later = table[~first].groupby("user_id")["length"].median()
    opening = table[first].set_index("user_id")["length"].reindex(later.index).to_numpy()
    if len(later) < 3 or np.ptp(opening) == 0 or np.ptp(later.to_numpy()) == 0:
        return 1.0  # too few returning users, or lengths all alike, to tell: every session alike
    correlation = stats.spearmanr(opening, later.to_numpy()).statistic
    return float(min(1.0, max(0.0, correlation)))


def fit_lives(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds, windows_days,
              targets: LifeTargets, gap_minutes: float = 30.0, iterations: int = 20,
              max_steps: int = 1500) -> tuple[StatisticalUserConfig, float]:
    """``config`` with the leave hazard's levels, the return odds and the gaps set so that
    the users seeded ``seeds`` (:func:`simulate_lives` over their ``windows_days``, cut into
    sessions as the ratings are) live the data's ``targets``; and the gap's factor (on
    ``gap_days``).

    Twelve levels are searched together, one life of every user per step, each on the target
    it moves most, for a user's first session and for the sessions they return for apart:
    the hazard's level in a first session (``leave_base + leave_first_session``) on the
    first sessions' median length, and its spread between newcomers
    (``first_session_spread``) on their 90th percentile; ``leave_base`` on the later
    sessions' 80th percentile (``return_length_upper``), not their median: the median (4
    ratings in MovieLens) lies among the quick visits, which end after their first step
    with one to three ratings whatever the level, so it barely moves with the level, while
    the 80th percentile lies among the sessions that run their course, which the level
    sets (on MovieLens the median held the level at its bound and the sessions users return
    for at half the data's 80th percentile; freed, it ran the level down until that
    percentile was three times the data's, ``benchmarks/RESULTS.md``), and the patience
    weight (``leave_patience``, the spread of the later sessions' length between users) on
    their 95th percentile (``return_length_tail``), as the first sessions' spread is on
    theirs: the grid fit's weight, read where the quick visits are missing, gave the sessions
    that run their course a tail twice the data's once their level was right. The two
    targets do not pin the two levels apart: a higher level with a larger weight gives much
    the same sessions (a weight of 18.5 with the level 1.5 higher, where the truth was 2),
    so the weight fitted is the best point the lengths give, weakly identified, and
    ``recoworld robustness`` draws it over the grid fit's range. The return
    odds after a first session (``return_base + return_first_session``) and after a later
    one (``return_base``) on the shares of each followed by another session; the factor on
    ``gap_days`` on the 80th percentile of the gaps after a later session (``gap_upper``),
    and the gaps' Weibull shape (``gap_shape``) on their median, no lower than the return
    fit's and no higher than 1 (the exponential; a shape the return fit held at 1 stays):
    at a fixed mean the shape moves the median far more than the 80th percentile. The
    return fit reads every gap's spread around a user's pace as the shape's, at the typical
    session memory, where a simulated gap's mean also moves with its session's own memory
    and length: that spread on top of the return fit's shape gave the later gaps a tail
    longer than the data's (on MovieLens an 80th percentile of 22 to 25 days against 15 to
    18 in held-out users), which a lighter shape takes back; and after a first
    session, the share of newcomers who return by the first-session law
    (``gap_first_share``, :func:`~recoworld.simulators.equations.first_gap_law`; its logit)
    on the median gap, and that law's factor (``gap_first_session`` apart) on the first
    quartile, the others returning as regulars do; the share of quick visits
    (``quick_visit_share``, :func:`~recoworld.simulators.equations.quick_visit`; its logit)
    on the share of later sessions that hold a single rating; and the session theme's weight
    (``theme_weight``, :func:`~recoworld.simulators.equations.theme_appeal`) on how often
    consecutive ratings share a genre (``targets.genre_repetition``; without it, the weight
    keeps its start). A quantile is matched by the share of values below it
    (:meth:`LifeTargets.position`). Each level steps towards its target, its step growing
    while the direction holds and halving when it turns (a sign search with the step
    factors of Rprop, Riedmiller and Braun 1993): unlike a bisection, a level that an early
    step sent the wrong way — while the other levels were still far off, who returns changes
    what a returning session looks like — can come back. A level whose target is NaN (no
    returning user, no second return) keeps its start: without returns in the data the
    base follows the first sessions; without gaps after a first session, every newcomer who
    returns takes the first-session law (``gap_first_share`` 1). With fewer than
    :data:`MIN_LATER_SESSIONS` later sessions in the data, their level, the patience weight
    and the quick-visit share keep their starts (the grid fit's, the config's), with a
    warning; with fewer than :data:`MIN_FIRST_RETURNS` returns after a first session,
    ``gap_first_share`` is held at 1 (every newcomer who returns does so by the first-session
    law, as where none returns), with a warning, and that law's factor is set on their
    median gap instead of their first quartile. A level whose simulated value equals its
    target stays, step and heading too."""
    # The starts: the grid fit's base, the return fit's odds, the gap fit's scale and shape. Leave and
    # return levels are logits (a higher leave level: shorter sessions); gap levels are log
    # factors on gap_days (a larger factor: longer gaps), and the shape's its log. The bounds keep a level plausible:
    # a sign-up's burst can be many times a habitual session, so its level reaches far lower,
    # and so does the later sessions': the grid fit reads it off first sessions without the
    # quick visits, and the sessions that run their course beside a third of one-step visits
    # are longer (on MovieLens 4 to 6 below the grid's base).
    genres = known_genres(catalog)
    level = {"first": config.leave_base + config.leave_first_session, "base": config.leave_base,
             "first_return": config.return_base + config.return_first_session, "return": config.return_base,
             "first_gap": config.gap_first_session, "first_gap_share": 0.0, "gap": 0.0,
             "quick": -3.0, "theme": config.theme_weight, "first_spread": config.first_session_spread,
             "patience": config.leave_patience, "shape": math.log(config.gap_shape)}
    bounds = {"first": (config.leave_base - 8.0, config.leave_base + 1.0),
              "base": (config.leave_base - 8.0, config.leave_base + 3.0),
              "first_return": (config.return_base - 6.0, config.return_base + 4.0),
              "return": (config.return_base - 4.0, config.return_base + 4.0),
              "first_gap": (math.log(0.002), math.log(2.0)), "first_gap_share": (-4.0, 4.0),
              "gap": (math.log(0.05), math.log(2.0)), "quick": (-8.0, 2.0), "theme": (0.0, 8.0),
              "first_spread": (0.0, 4.0), "patience": (0.0, 40.0), "shape": _shape_bounds(config.gap_shape)}
    # Each level's target, and whether a larger level raises it.
    aims = {"first": ("first_length", False), "base": ("return_length_upper", False),
            "first_return": ("first_return_share", True), "return": ("return_share", True),
            "first_gap": ("first_gap_quartile", True), "first_gap_share": ("first_gap_days", False),
            "gap": ("gap_upper", True), "quick": ("single_share", True),
            "theme": ("genre_repetition", True), "first_spread": ("first_length_tail", True),
            "patience": ("return_length_tail", True), "shape": ("gap_days", True)}
    # A first-session level without a target keeps its shift from the later sessions' level.
    shifts = {"first_return": ("return", config.return_first_session),
              "first_gap": ("gap", config.gap_first_session)}
    fixed = {name for name, (target, _) in aims.items() if math.isnan(getattr(targets, target))}
    if "first_gap_share" in fixed:  # no gap after a first session: one law for every newcomer
        fixed.add("first_gap")
    held = hold_later_sessions(targets.later_sessions, config) | hold_first_gap_share(targets.first_returns)
    fixed |= held
    if "first_gap_share" in held:  # one law for the newcomers' returns: its factor on their median, the steadier
        aims["first_gap"] = ("first_gap_days", True)
    step = {name: (high - low) / 8 for name, (low, high) in bounds.items()}
    heading = dict.fromkeys(level, 0)

    def value(name: str) -> float:
        if name == "base" and name in fixed - held:  # nobody returns: one level, the first sessions'
            return level["first"]
        if name in shifts and name in fixed:
            later, shift = shifts[name]
            return value(later) + shift
        return level[name]

    def share(name: str, kept: float) -> float:  # a share is searched as its logit; ``kept`` without a target
        return kept if name in fixed else 1.0 / (1.0 + math.exp(-level[name]))

    def fitted() -> StatisticalUserConfig:
        base, first = value("base"), value("first")
        first_return, back = value("first_return"), value("return")
        gap, first_gap = value("gap"), value("first_gap")
        return replace(config, leave_base=base, leave_first_session=first - base, return_base=back,
                       return_first_session=first_return - back, gap_days=config.gap_days * math.exp(gap),
                       gap_first_session=first_gap - gap, gap_first_share=share("first_gap_share", 1.0),
                       quick_visit_share=share("quick", config.quick_visit_share), theme_weight=value("theme"),
                       first_session_spread=value("first_spread"), leave_patience=value("patience"),
                       gap_shape=math.exp(value("shape")))

    for _ in range(iterations):
        lives = simulate_lives(catalog, fitted(), population, seeds, windows_days, max_steps=max_steps)
        table = cut_sessions(lives, gap_minutes).table
        simulated = LifeTargets.of(table) if len(table) else LifeTargets(0.0, math.nan, math.nan, math.nan, 0.0, 0.0)
        if "theme" not in fixed:
            simulated = replace(simulated, genre_repetition=genre_repetition(lives, genres, gap_minutes))
        below = targets.position(table)
        for name, (target, rising) in aims.items():
            if name in fixed:
                continue
            if target in LifeTargets.QUANTILES:  # fewer values below the data's quantile: too high
                now, wanted = -below[target], -targets.at_quantile[target]
            else:
                now, wanted = getattr(simulated, target), getattr(targets, target)
            if now == wanted:  # on target: neither way is better, so the level, step and heading stay
                continue
            # Too high: move the level the way that lowers it. No gap or share at all counts
            # as too high (fewer, shorter gaps wanted), no session length as too low.
            too_high = not now <= wanted if rising else now > wanted
            direction = -1 if too_high == rising else 1
            step[name] *= 0.5 if direction == -heading[name] else 1.2 if direction == heading[name] else 1.0
            heading[name] = direction
            low, high = bounds[name]
            level[name] = min(max(level[name] + direction * step[name], low), high)
    return fitted(), math.exp(value("gap"))


def _shape_bounds(gap_shape: float) -> tuple[float, float]:
    """The log gap shape's range in :func:`fit_lives`: between the return fit's and 1. The
    return fit's is the heaviest tail the data give, before the simulated sessions' own
    spread of means adds to it; 1, the exponential, the lightest, as real gaps are heavier
    (and a shape the return fit held at 1, for want of users whose gaps differ, stays)."""
    return min(math.log(gap_shape), 0.0), max(math.log(gap_shape), 0.0)


def hold_later_sessions(later_sessions: int | None, config: StatisticalUserConfig) -> set[str]:
    """The levels of :func:`fit_lives` held at their starts because the data return for too
    few sessions (:data:`MIN_LATER_SESSIONS`; none held where nobody returns, which the fit
    handles, or the sessions were not counted), with a warning."""
    if later_sessions is None or not 0 < later_sessions < MIN_LATER_SESSIONS:
        return set()
    warnings.warn(f"the sessions users return for cannot be fitted: the log holds {later_sessions} of them, fewer "
                  f"than the {MIN_LATER_SESSIONS} their 80th and 95th percentiles need; their leave level, patience "
                  f"weight and quick-visit share, and their gaps' shape, are held (leave_base {config.leave_base:.2f} "
                  f"and leave_patience {config.leave_patience:.1f} of the grid fit, quick_visit_share "
                  f"{config.quick_visit_share:.2f}, gap_shape {config.gap_shape:.3f} of the return fit). "
                  "Calibrate on a log in which more users return to fit them", UserWarning, stacklevel=3)
    return {"base", "patience", "quick", "shape"}


def hold_first_gap_share(first_returns: int | None) -> set[str]:
    """``{"first_gap_share"}``, the share :func:`fit_lives` holds at 1, where the data hold
    too few returns after a first session (:data:`MIN_FIRST_RETURNS`; none held where no
    newcomer returns, which the fit handles, or the returns were not counted), with a
    warning; else nothing."""
    if first_returns is None or not 0 < first_returns < MIN_FIRST_RETURNS:
        return set()
    warnings.warn(f"the gaps after a first session cannot be split between the first-session law and the regulars': "
                  f"the log holds {first_returns} returns after a first session, fewer than the {MIN_FIRST_RETURNS} "
                  "their median and first quartile need; gap_first_share is held at 1 (every newcomer who returns "
                  "does so by the first-session law, as where none returns) and that law's factor, "
                  "gap_first_session, is fitted on their median. Calibrate on a log in which more newcomers return "
                  "to fit the share", UserWarning, stacklevel=3)
    return {"first_gap_share"}


@dataclass
class LeaveFit:
    """Fitted leave parameters and what they reproduce (clicks per session at
    :data:`QUANTILES`, in the data and simulated)."""

    leave_base: float
    leave_length: float
    leave_patience: float
    target_quantiles: tuple[float, ...]
    simulated_quantiles: tuple[float, ...]
    memory_at_leaving: float
    clicks_per_session: np.ndarray

    def to_config(self, config: StatisticalUserConfig) -> StatisticalUserConfig:
        """``config`` with the fitted leave weights."""
        return replace(config, leave_base=self.leave_base, leave_length=self.leave_length,
                       leave_patience=self.leave_patience)

    def describe(self) -> dict:
        """The artifact's ``meta["leave"]``."""
        return {"leave_base": self.leave_base, "leave_length": self.leave_length,
                "leave_patience": self.leave_patience, "quantiles": list(QUANTILES),
                "target_quantiles": list(self.target_quantiles),
                "simulated_quantiles": list(self.simulated_quantiles), "memory_at_leaving": self.memory_at_leaving}


#: Quantiles of the session length that the leave fit matches.
QUANTILES = (0.5, 0.8, 0.95)
#: The grid of the leave fit: ``(leave_length, leave_patience)`` pairs.
LEAVE_GRID = ((0.0, 2.0), (0.0, 10.0), (0.0, 18.0), (0.03, 18.0), (0.03, 26.0), (0.03, 34.0))


def quantile_error(simulated, target) -> float:
    """The leave fit's loss: the summed absolute log ratios of simulated to target quantiles."""
    return float(sum(abs(math.log(max(s, 0.5) / t)) for s, t in zip(simulated, target)))


def fit_leave(catalog: Catalog, config: StatisticalUserConfig, population: Population, seeds,
              session_lengths, grid=LEAVE_GRID, iterations: int = 6, steps: int = 80) -> LeaveFit:
    """Fit ``leave_base``, ``leave_length`` and ``leave_patience`` by simulated moments
    (module docstring), on ``session_lengths`` of the habitual kind (:func:`habitual_lengths`):
    the simulated first sessions stand for habitual ones, without the first session's own
    shift, spread and share of patience (which a refit's ``config`` may carry)."""
    target = tuple(float(q) for q in np.quantile(np.asarray(session_lengths, dtype=np.float64), QUANTILES))
    config = replace(config, leave_first_session=0.0, first_session_patience=1.0, first_session_spread=0.0)

    def run(base: float, length: float, patience: float) -> FirstSessions:
        return first_sessions(catalog, replace(config, leave_base=base, leave_length=length, leave_patience=patience),
                              population, seeds, steps=steps)

    best = None
    for length, patience in grid:
        low, high = -5.0, 3.0  # a higher base means shorter sessions
        for _ in range(iterations):
            mid = 0.5 * (low + high)
            longer = run(mid, length, patience).quantiles(QUANTILES[:1])[0] > target[0]
            low, high = (mid, high) if longer else (low, mid)
        base = 0.5 * (low + high)
        sessions = run(base, length, patience)
        simulated = sessions.quantiles(QUANTILES)
        error = quantile_error(simulated, target)
        if best is None or error < best[0]:
            best = (error, LeaveFit(base, length, patience, target, simulated, math.nan, sessions.clicks))
    fit = best[1]
    fit.memory_at_leaving = memory_at_leaving(catalog, fit.to_config(config), population, seeds, steps=3 * steps)
    return fit


def sessions_summary(sessions: Sessions) -> pd.Series:
    """Data facts on sessions for the calibration's diagnostics."""
    table = sessions.table
    per_user = table.groupby("user_id").size()
    return pd.Series({
        "sessions": len(table),
        "median_length": float(table["length"].median()),
        "p80_length": float(table["length"].quantile(0.8)),
        "p95_length": float(table["length"].quantile(0.95)),
        "mean_length": float(table["length"].mean()),
        "share_single_session_users": float((per_user == 1).mean()),
        "median_gap_days": float(table["next_gap_days"].median()),
    })
