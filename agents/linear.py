r"""Linear contextual bandits: LinUCB (shared, disjoint, hybrid) and Diag-LinUCB.

All of them score candidate :math:`c` of user :math:`b` from the features of
:mod:`recoworld.agents.features`, show the top ``K`` scores, and learn from the observed
impressions of :mod:`recoworld.agents.examination` (reward :math:`r` = click). A batch
update adds the batch's statistics at once; because the statistics are sums, this equals
feeding the impressions one by one (for the hybrid model, see its note).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.agents.bandits import popularity_design, popularity_line
from recoworld.agents.base import Recommender, deterministic, top_k
from recoworld.agents.examination import check_rule, impressions
from recoworld.agents.features import INTERACTIONS, UserItemFeatures
from recoworld.config_checks import NON_NEGATIVE, POSITIVE
from recoworld.types import CANDIDATE_IDS, Feedback, Observation


#: Floats of the temporaries that a per-item model builds for a batch at once. Gathered for
#: every candidate of a large batch, the per-item matrices would take gigabytes (16,384 users
#: x 50 candidates x HybridLinUCB's 18 x 36 matrix are 4 GB), so scores and updates go by
#: chunks of rows of about this size (32 MB); the results do not depend on the chunk size.
CHUNK_FLOATS = 2**22


def row_chunks(rows: int, floats_per_row: int):
    """Slices of ``range(rows)`` whose temporaries hold about :data:`CHUNK_FLOATS` floats."""
    step = max(1, CHUNK_FLOATS // max(floats_per_row, 1))
    return (slice(start, start + step) for start in range(0, rows, step))


class Ridge:
    r"""Ridge-regression statistics :math:`A = \lambda I + \sum x x^\top`,
    :math:`b = \sum r x`, with :math:`\hat\theta = A^{-1} b`.

    They are also the Gaussian posterior of Bayesian linear regression with prior
    :math:`\theta \sim N(0, \sigma^2 \lambda^{-1} I)` and noise variance :math:`\sigma^2`:
    mean :math:`\hat\theta`, covariance :math:`\sigma^2 A^{-1}`. ``n`` and ``yy``
    (:math:`\sum r^2`) complete the sufficient statistics for an unknown :math:`\sigma^2`.
    """

    def __init__(self, dim: int, l2: float = 1.0):
        if l2 <= 0:
            raise ValueError(f"l2={l2}; the ridge penalty must be > 0 for A to be invertible")
        self.l2 = l2
        self.A = l2 * np.eye(dim)
        self.b = np.zeros(dim)
        self.n, self.yy = 0, 0.0
        self._inverse: np.ndarray | None = None

    def update(self, x: np.ndarray, r: np.ndarray) -> None:
        """Add rows ``x`` ``[M, d]`` with rewards ``r`` ``[M]``."""
        self.A += x.T @ x
        self.b += x.T @ r
        self.n += len(r)
        self.yy += float(r @ r)
        self._inverse = None

    @property
    def inverse(self) -> np.ndarray:
        """:math:`A^{-1}` (cached until the next update)."""
        if self._inverse is None:
            inverse = np.linalg.inv(self.A)
            self._inverse = 0.5 * (inverse + inverse.T)
        return self._inverse

    @property
    def theta(self) -> np.ndarray:
        return self.inverse @ self.b


@dataclass(eq=False)
class ContextualBandit(Recommender):
    """What the contextual agents share: the feature map, built at ``setup``, and the
    observed impressions of a batch.

    Args:
        interaction: user×item interaction of the features, ``"diagonal"`` or ``"outer"``.
        examination: which positions count as observed (``"last_click"`` or ``"all"``).

    Subclasses implement ``init_model`` (allocate statistics once ``self.features`` exists)
    and ``act``/``update``. Override ``build_features`` to learn on other features.
    """

    interaction: str = "diagonal"
    examination: str = "last_click"
    learns = True

    def __post_init__(self):
        super().__post_init__()
        check_rule(self.examination)
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"interaction={self.interaction!r}; choose one of {INTERACTIONS}")

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self.features = self.build_features()
        self.init_model()

    def build_features(self):
        return UserItemFeatures(self.catalog, self.interaction)

    def init_model(self) -> None:
        raise NotImplementedError

    def observed(self, feedback: Feedback) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, candidate indices, clicks)`` of the batch's observed impressions."""
        rows, positions, clicks = impressions(feedback, self.examination)
        return rows, np.asarray(feedback.action)[rows, positions], clicks


@dataclass(eq=False)
class LinUCB(ContextualBandit):
    r"""LinUCB with one parameter vector shared by all items (Li et al. 2010, Alg. 1 with a
    single arm model over user×item features :math:`x_{bc}`):

    .. math::

        A \leftarrow A + \textstyle\sum x x^\top,\quad b \leftarrow b + \sum r x,\quad
        \hat\theta = A^{-1} b,\quad
        p_{bc} = x_{bc}^\top\hat\theta + \alpha\sqrt{x_{bc}^\top A^{-1} x_{bc}}.

    Args:
        alpha: width of the confidence bound.
        l2: ridge penalty :math:`\lambda` (:math:`A_0 = \lambda I`).
    """

    alpha: float = 0.5
    l2: float = 1.0
    name = "linucb"
    RANGES = {"alpha": NON_NEGATIVE, "l2": POSITIVE}

    def init_model(self) -> None:
        self.ridge = Ridge(self.features.dim, self.l2)

    def score(self, obs: Observation) -> np.ndarray:
        x = self.features(obs)
        width = ((x @ self.ridge.inverse) * x).sum(-1)
        return x @ self.ridge.theta + self.alpha * np.sqrt(np.maximum(width, 0.0))

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.score(obs), self.slate_size)

    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        self.ridge.update(self.features(feedback.obs)[rows, candidates], clicks)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)


@dataclass(eq=False)
class DisjointLinUCB(LinUCB):
    r"""LinUCB with disjoint linear models, one per item (Li et al. 2010, Alg. 1):

    .. math::

        A_a \leftarrow A_a + x x^\top,\quad b_a \leftarrow b_a + r x,\quad
        \hat\theta_a = A_a^{-1} b_a,\quad
        p_{b,a} = x^\top\hat\theta_a + \alpha\sqrt{x^\top A_a^{-1} x},

    with the per-arm context :math:`x = [1, \text{repeat}_{ba}, u_b]` of
    :mod:`recoworld.agents.features`: each item learns its own click rate and which user
    profiles click it. Memory is :math:`O(N d^2)` for :math:`N` items. Like the item
    bandits, it learns from every shown position by default (``examination="all"``: see
    :mod:`recoworld.agents.examination` for why).

    With ``prior_impressions`` :math:`m > 0`, each item's intercept gets the popularity
    prior of the item bandits (:mod:`recoworld.agents.bandits`): the prior of
    :math:`\theta_a` is :math:`N(\pi_a e_0, \mathrm{diag}(1/m, 1/\lambda, \dots))` instead of
    :math:`N(0, I/\lambda)`, so

    .. math::

        A_a = \mathrm{diag}(m, \lambda, \dots) + \textstyle\sum x x^\top,\qquad
        \hat\theta_a = A_a^{-1}(b_a + m\,\pi_a e_0),

    with :math:`\pi_a` the line in log-popularity fitted to all items' rates (their
    impressions are :math:`(A_a)_{00} - m` and clicks :math:`(b_a)_0`, since :math:`x_0 = 1`).
    Until the first observation the agent shows the most popular candidates.
    """

    examination: str = "all"
    prior_impressions: float = 0.0
    name = "disjoint_linucb"
    RANGES = {"prior_impressions": NON_NEGATIVE}

    def init_model(self) -> None:
        N, d = self.catalog.n_items, self.features.arm_dim
        precision = np.full(d, self.l2)
        if self.prior_impressions > 0:
            precision[0] = self.prior_impressions
        self.A = np.tile(np.diag(precision), (N, 1, 1))
        self.A_inv = np.tile(np.diag(1.0 / precision), (N, 1, 1))
        self.b = np.zeros((N, d))
        self.theta = np.zeros((N, d))
        self._popularity_design = popularity_design(self.catalog)

    def impressions_per_item(self) -> np.ndarray:
        """Each item's observed impressions: :math:`(A_a)_{00}` less its prior precision."""
        return self.A[:, 0, 0] - (self.prior_impressions if self.prior_impressions > 0 else self.l2)

    @property
    def cold(self) -> bool:
        """True while an agent with a prior has observed nothing: it ranks by popularity alone."""
        return self.prior_impressions > 0 and not self.impressions_per_item().any()

    def prior_rates(self) -> np.ndarray:
        r"""The intercepts' prior means :math:`\pi_a` (:func:`~recoworld.agents.bandits.popularity_line`)."""
        return popularity_line(self._popularity_design, self.impressions_per_item(), self.b[:, 0])

    def score(self, obs: Observation) -> np.ndarray:
        x, arms = self.features.arm_context(obs), np.asarray(obs[CANDIDATE_IDS])
        if self.cold:
            return self._popularity_design[arms, 1]
        scores = np.empty(arms.shape)
        for rows in row_chunks(len(arms), arms.shape[1] * x.shape[-1] ** 2):
            xr, ar = x[rows], arms[rows]
            width = (np.matmul(self.A_inv[ar], xr[..., None])[..., 0] * xr).sum(-1)
            scores[rows] = (xr * self.theta[ar]).sum(-1) + self.alpha * np.sqrt(np.maximum(width, 0.0))
        return scores

    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        arms = np.asarray(feedback.obs[CANDIDATE_IDS])[rows, candidates]
        x = self.features.arm_context(feedback.obs)[rows, candidates]
        for chunk in row_chunks(len(arms), x.shape[1] ** 2):
            np.add.at(self.A, arms[chunk], x[chunk, :, None] * x[chunk, None, :])
        np.add.at(self.b, arms, clicks[:, None] * x)
        touched = np.unique(arms)
        self.A_inv[touched] = np.linalg.inv(self.A[touched])
        if self.prior_impressions > 0:
            # The prior line moves with every batch, so every item's estimate moves with it.
            b = self.b.copy()
            b[:, 0] += self.prior_impressions * self.prior_rates()
            self.theta = np.einsum("aij,aj->ai", self.A_inv, b)
        else:
            self.theta[touched] = np.einsum("aij,aj->ai", self.A_inv[touched], self.b[touched])


@dataclass(eq=False)
class HybridLinUCB(LinUCB):
    r"""LinUCB with hybrid linear models (Li et al. 2010, Alg. 2): a shared part
    :math:`\beta` on the user×item features :math:`z_{bc}` and a per-item part
    :math:`\theta_a` on the per-arm context :math:`x = [1, \text{repeat}, u_b]`:

    .. math::

        \hat\beta = A_0^{-1} b_0,\quad \hat\theta_a = A_a^{-1}(b_a - B_a\hat\beta),\quad
        p = z^\top\hat\beta + x^\top\hat\theta_a + \alpha\sqrt{s},\quad
        s = v^\top A_0^{-1} v + x^\top A_a^{-1} x,\ \ v = z - B_a^\top A_a^{-1} x,

    where :math:`s` is the paper's :math:`s_{t,a}` with its four terms collected. The
    update is the paper's (:math:`A_a \mathrel{+}= x x^\top`, :math:`B_a \mathrel{+}= x z^\top`,
    :math:`b_a \mathrel{+}= r x`, and :math:`A_0, b_0` moved by
    :math:`\pm B_a^\top A_a^{-1} B_a`, :math:`\pm B_a^\top A_a^{-1} b_a`). For a batch,
    the ``+`` terms of an arm's later impressions cancel the ``-`` terms of its earlier
    ones, so adding the old terms of every touched arm, then the batch, then subtracting
    the new terms equals the paper's one-by-one loop.

    Defaults differ from :class:`LinUCB`'s: ``l2 = 10`` shrinks each item's own model
    until it has some ten impressions (with ``l2 = 1`` the noisy per-item fits of a
    1,000-item catalog cost more than they add over a few hundred steps), and
    ``alpha = 0.25``.
    """

    alpha: float = 0.25
    l2: float = 10.0
    name = "hybrid_linucb"

    def init_model(self) -> None:
        N, d, k = self.catalog.n_items, self.features.arm_dim, self.features.dim
        self.A0 = self.l2 * np.eye(k)
        self.b0 = np.zeros(k)
        self.A = np.tile(self.l2 * np.eye(d), (N, 1, 1))
        self.A_inv = np.tile(np.eye(d) / self.l2, (N, 1, 1))
        self.B = np.zeros((N, d, k))
        self.b = np.zeros((N, d))

    def score(self, obs: Observation) -> np.ndarray:
        # p = z'beta + x'theta_a + alpha sqrt(s) with theta_a = A_a^-1 (b_a - B_a beta)
        # rewritten as v'beta + (A_a^-1 x)'b_a + alpha sqrt(s): one product with B_a per pair.
        z, x = self.features(obs), self.features.arm_context(obs)
        arms = np.asarray(obs[CANDIDATE_IDS])
        A0_inv = np.linalg.inv(self.A0)
        beta = A0_inv @ self.b0
        scores = np.empty(arms.shape)
        for rows in row_chunks(len(arms), arms.shape[1] * self.B.shape[1] * self.B.shape[2]):
            zr, xr, ar = z[rows], x[rows], arms[rows]
            A_inv_x = np.matmul(self.A_inv[ar], xr[..., None])[..., 0]
            v = zr - np.matmul(A_inv_x[..., None, :], self.B[ar])[..., 0, :]
            s = ((v @ A0_inv) * v).sum(-1) + (xr * A_inv_x).sum(-1)
            scores[rows] = v @ beta + (A_inv_x * self.b[ar]).sum(-1) + self.alpha * np.sqrt(np.maximum(s, 0.0))
        return scores

    def _arm_terms(self, arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`\\sum_a B_a^\\top A_a^{-1} B_a` and :math:`\\sum_a B_a^\\top A_a^{-1} b_a`."""
        Bt_A_inv = np.swapaxes(self.B[arms], 1, 2) @ self.A_inv[arms]
        return (Bt_A_inv @ self.B[arms]).sum(0), np.einsum("akd,ad->k", Bt_A_inv, self.b[arms])

    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        arms = np.asarray(feedback.obs[CANDIDATE_IDS])[rows, candidates]
        z = self.features(feedback.obs)[rows, candidates]
        x = self.features.arm_context(feedback.obs)[rows, candidates]
        touched = np.unique(arms)
        old_AA, old_Ab = self._arm_terms(touched)
        self.A0 += old_AA
        self.b0 += old_Ab
        for chunk in row_chunks(len(arms), x.shape[1] * (x.shape[1] + z.shape[1])):
            np.add.at(self.A, arms[chunk], x[chunk, :, None] * x[chunk, None, :])
            np.add.at(self.B, arms[chunk], x[chunk, :, None] * z[chunk, None, :])
        np.add.at(self.b, arms, clicks[:, None] * x)
        self.A_inv[touched] = np.linalg.inv(self.A[touched])
        new_AA, new_Ab = self._arm_terms(touched)
        self.A0 += z.T @ z - new_AA
        self.b0 += z.T @ clicks - new_Ab


@dataclass(eq=False)
class DiagLinUCB(LinUCB):
    r"""LinUCB on centred features with :math:`A` replaced by its diagonal. Every feature
    coordinate :math:`j` keeps three sums of its own, and all share two counters:

    .. math::

        S_j = \textstyle\sum x_j,\quad Q_j = \sum x_j^2,\quad P_j = \sum r x_j;
        \qquad n = \#\text{impressions},\quad R = \sum r;

        a_j = \lambda + Q_j - S_j^2/n,\qquad \hat\theta_j = (P_j - S_j R/n) / a_j,

        p = \bar r + \textstyle\sum_j \hat\theta_j (x_j - \bar x_j)
            + \alpha\sqrt{\sum_j (x_j - \bar x_j)^2 / a_j},

    with :math:`\bar x_j = S_j/n`, :math:`\bar r = R/n`: :math:`\hat\theta_j` is the
    ridge slope of :math:`r` on :math:`x_j` alone. No :math:`d\times d` matrix, no inverse,
    and each coordinate's sums are updated independently of the others, so they can be
    sharded by coordinate and summed across servers as events arrive: the distributed,
    real-time variant of LinUCB used in large systems. The price is that a signal shared
    by correlated features is counted once per feature. Centring matters: without it every
    :math:`\hat\theta_j` absorbs the mean click rate times :math:`\bar x_j`, which ranks
    candidates by their alignment with the average feature vector rather than by appeal.
    """

    name = "diag_linucb"

    def init_model(self) -> None:
        d = self.features.dim
        self.S, self.Q, self.P = np.zeros(d), np.zeros(d), np.zeros(d)
        self.n, self.R = 0.0, 0.0

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Per-coordinate mean :math:`\bar x_j`, precision :math:`a_j` and slope :math:`\hat\theta_j`."""
        n = max(self.n, 1.0)
        a = self.l2 + self.Q - self.S**2 / n
        return self.S / n, a, (self.P - self.S * self.R / n) / a

    def score(self, obs: Observation) -> np.ndarray:
        mean, a, theta = self.coordinates()
        centred = self.features(obs) - mean
        return self.R / max(self.n, 1.0) + centred @ theta + self.alpha * np.sqrt(centred**2 @ (1.0 / a))

    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        x = self.features(feedback.obs)[rows, candidates]
        self.S += x.sum(0)
        self.Q += (x**2).sum(0)
        self.P += clicks @ x
        self.n += len(clicks)
        self.R += clicks.sum()
