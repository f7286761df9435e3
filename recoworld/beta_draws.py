"""Races of Beta draws that rank as the exact law does at any parameters above 0: below
parameters of about 0.1, ``rng.beta`` rounds many draws to exactly 0 or 1, where arms that
should race tie.

Both Bernoulli Thompson samplers race such draws: the agents'
(:class:`~recoworld.agents.bandits.BernoulliTS`) and the Open Bandit Dataset's policy that
the data layer replays (:func:`~recoworld.data.bts_policy.bts_distribution`), hence this
module below both layers.
"""

from __future__ import annotations

import numpy as np


def beta_scores(rng: np.random.Generator, alpha: np.ndarray, beta: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    r"""Independent draws of ``Beta(alpha, beta)`` (broadcast to ``size``) as scores that rank
    exactly as the draws do: the draws themselves (``rng.beta``) where every parameter is at
    least 1, else their logits :math:`\log G_\alpha - \log G_\beta`, as
    :math:`\mathrm{Beta}(\alpha, \beta) = G_\alpha / (G_\alpha + G_\beta)` for independent
    :math:`G_s \sim \mathrm{Gamma}(s)` (:func:`log_gamma`). The same ``rng`` state gives the
    same scores.

    Below parameters of about 0.1 the exact law puts much of its mass within 1e-16 of 0 or 1,
    where float64 rounds a draw to 0 or 1 (``rng.beta(0.04, 0.04)`` is exactly 1.0 on about
    11 % of draws): arms that should race tie, and top-k breaks the tie by position.
    Logits keep those draws apart. Where both parameters are at least 1 the density is
    bounded, by some ``f``, and a draw rounds with probability at most about ``f * 1e-16``:
    those draws stay ``rng.beta``'s own stream.
    """
    if (np.asarray(alpha) >= 1).all() and (np.asarray(beta) >= 1).all():
        return rng.beta(alpha, beta, size=size)
    return log_gamma(rng, alpha, size) - log_gamma(rng, beta, size)


def log_gamma(rng: np.random.Generator, shape: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    r"""Independent draws of :math:`\log G`, :math:`G \sim \mathrm{Gamma}(\text{shape}, 1)`
    (broadcast to ``size``): finite for any shape above 0.

    ``rng.standard_gamma`` loses small shapes to underflow (it draws :math:`U^{1/s}`: 0 on
    about 6e-4 of draws at ``s = 0.01``, subnormal well before), so a shape ``s < 1`` is
    drawn in log space as :math:`\log G_{s+1} + \log(U) / s` (Marsaglia & Tsang, "A Simple
    Method for Generating Gamma Variables", ACM TOMS 26(3), 2000, on shapes below 1:
    :math:`G_s = G_{s+1} U^{1/s}`), with :math:`-\log U` a standard exponential draw.
    """
    small = shape < 1
    log_g = np.log(rng.standard_gamma(np.where(small, shape + 1, shape), size=size))
    return np.where(small, log_g - rng.standard_exponential(size) / shape, log_g)
