r"""Linear Thompson sampling, slate-wise and in-slate.

The click of user :math:`b` on candidate :math:`c` is modelled as
:math:`r = x_{bc}^\top\theta + \varepsilon` over the features of
:mod:`recoworld.agents.features`. Bayesian linear regression with prior
:math:`N(0, v^2\lambda^{-1}I)` and noise variance :math:`v^2` gives the posterior
(Agrawal & Goyal 2013, Alg. 1, with their :math:`B = A`, :math:`f = b`):

.. math::

    A = \lambda I + \textstyle\sum x x^\top,\quad b = \sum r x,\qquad
    \theta \mid \text{data} \sim N(\hat\theta, v^2 A^{-1}),\quad \hat\theta = A^{-1} b.

Every request draws its own :math:`\tilde\theta` and ranks the candidates by
:math:`x_{bc}^\top\tilde\theta`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from recoworld.agents.linear import ContextualBandit, Ridge
from recoworld.agents.sampling import MAX_SAMPLES, MIN_MATCHES, PosteriorSampler

from recoworld.config_checks import POSITIVE
from recoworld.types import Feedback, Observation


@dataclass(eq=False)
class LinearTS(PosteriorSampler, ContextualBandit):
    r"""Linear Thompson sampling (Agrawal & Goyal 2013) on user×item features.

    Args:
        posterior_scale: :math:`v`, the noise scale that widens the posterior (the paper's
            :math:`R\sqrt{24 d\ln(1/\delta)/\epsilon}` is far too wide in practice).
        l2: prior precision :math:`\lambda` (in units of :math:`v^{-2}`).
        per_slot: one posterior draw per position (in-slate sampling) instead of per slate.
        propensity_samples: the fixed first phase of the Monte-Carlo replays behind
            :meth:`propensities` (all of them behind :meth:`evaluation_propensities`), seeded
            apart from the acting generator; 0 skips them.
        propensity_matches: a row whose logged slate came up fewer times goes on replaying
            (geometric resampling) ...
        max_propensity_samples: ... up to this many replays in all (see
            :mod:`recoworld.agents.sampling` for the estimate and its standard error).
    """

    posterior_scale: float = 0.1
    l2: float = 1.0
    per_slot: bool = False
    propensity_samples: int = 100
    propensity_matches: int = MIN_MATCHES
    max_propensity_samples: int = MAX_SAMPLES
    name = "linear_ts"
    RANGES = {"posterior_scale": POSITIVE, "l2": POSITIVE}

    def init_model(self) -> None:
        self.ridge = Ridge(self.features.dim, self.l2)

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean :math:`\\hat\\theta` and covariance :math:`v^2 A^{-1}` of :math:`\\theta`."""
        return self.ridge.theta, self.posterior_scale**2 * self.ridge.inverse

    def score_sampler(self, obs: Observation, rng: np.random.Generator, n: int):
        x = self.features(obs)
        mean, cov = self.posterior()
        root = np.linalg.cholesky(cov)

        def draw() -> np.ndarray:
            theta = mean + rng.standard_normal((n, x.shape[0], len(mean))) @ root.T
            return np.matmul(x[None], theta[..., None])[..., 0]

        return draw

    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        self.ridge.update(self.features(feedback.obs)[rows, candidates], clicks)


@dataclass(eq=False)
class InSlateThompson(LinearTS):
    r"""In-slate Thompson sampling: position :math:`k` shows the best candidate not yet
    placed under its own draw :math:`\tilde\theta_k \sim N(\hat\theta, v^2A^{-1})`.

    Slate-wise sampling shows the top ``K`` of one hypothesis: ``K`` near-copies of the
    greedy choice when the posterior is narrow in the directions that separate them. One
    draw per slot lets a single slate try several hypotheses about the user at once; the
    top slot is distributed exactly as under slate-wise sampling.
    """

    per_slot: bool = True
    name = "in_slate_ts"
