r"""Residual quantisation of item embeddings: the codes behind semantic IDs.

Level 1 clusters the embeddings with k-means; level :math:`\ell > 1` clusters the residuals
left by the levels before it. An item's code is the tuple of its cluster at each level, and
its reconstruction is the sum of those centroids:

.. math::

    r^{(0)} = x, \qquad c_\ell = \arg\min_j \lVert r^{(\ell-1)} - C_\ell[j] \rVert, \qquad
    r^{(\ell)} = r^{(\ell-1)} - C_\ell[c_\ell], \qquad \hat x = \sum_\ell C_\ell[c_\ell].

Each level can only lower the squared reconstruction error: after Lloyd's mean step every
centroid is the mean of the residuals it serves, which fits them at least as well as the
zero vector (no level at all), so the error never grows with the number of levels. This is the training-free counterpart of the RQ-VAE of TIGER (Rajput et al.,
"Recommender Systems with Generative Retrieval", NeurIPS 2023); residual vector
quantisation itself goes back to Juang and Gray (ICASSP 1982).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, Interval, check_number


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> torch.Tensor:
    """Centroids ``[k', D]`` of ``x`` ``[N, D]`` by Lloyd's algorithm with k-means++ seeding
    (Arthur and Vassilvitskii, SODA 2007); ``k' = min(k, distinct rows of x)``.

    Deterministic for a ``seed``. A cluster that empties keeps its centroid.
    """
    x = _points(x)
    k = check_number("kmeans", "k", k, AT_LEAST_ONE, integer=True)
    iters = check_number("kmeans", "iters", iters, AT_LEAST_ONE, integer=True)  # at least one Lloyd iteration
    gen = torch.Generator().manual_seed(check_number("kmeans", "seed", seed, NON_NEGATIVE, integer=True))
    k = min(k, len(torch.unique(x, dim=0)))
    centroids = x[torch.randint(len(x), (1,), generator=gen)]
    nearest = torch.cdist(x, centroids).pow(2).min(1).values
    for _ in range(1, k):
        # D^2 sampling: a point far from every chosen centroid is likely to be the next one.
        weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
        pick = torch.multinomial(weights, 1, generator=gen)
        centroids = torch.cat([centroids, x[pick]])
        nearest = torch.minimum(nearest, torch.cdist(x, x[pick]).pow(2)[:, 0])
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=len(centroids)).float()
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        if torch.allclose(moved, centroids):
            break
        centroids = moved
    return centroids


def _points(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a float32 CPU tensor, if it is a non-empty ``[N, D]`` table of finite numbers
    (a NaN would become every centroid it touches, and every later level's)."""
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"quantisation needs a non-empty [N, D] tensor, got shape {tuple(x.shape)}")
    x = x.float().cpu()
    bad = ~torch.isfinite(x).all(1)
    if bool(bad.any()):
        more = int(bad.sum()) - 1
        raise ValueError(f"quantisation needs finite vectors; row {int(bad.nonzero()[0])} has a non-finite value"
                         f"{f' (and {more} more rows)' if more else ''}: drop or replace the rows that have one")
    return x


@dataclass(eq=False)
class ResidualQuantizer:
    """Codebooks of a fitted residual quantiser (see the module docstring).

    Attributes:
        codebooks: one ``[K_l, D]`` centroid tensor per level (``K_l`` is at most the
            requested codebook size; fewer when the data has fewer distinct residuals).
    """

    codebooks: list[torch.Tensor]

    @classmethod
    def fit(cls, x: torch.Tensor, levels: int = 3, codebook_size: int = 64, iters: int = 25,
            seed: int = 0) -> ResidualQuantizer:
        """Fit ``levels`` codebooks of at most ``codebook_size`` centroids to ``x`` ``[N, D]``."""
        levels = check_number("ResidualQuantizer", "levels", levels, AT_LEAST_ONE, integer=True)
        codebook_size = check_number("ResidualQuantizer", "codebook_size", codebook_size, AT_LEAST_ONE, integer=True)
        iters = check_number("ResidualQuantizer", "iters", iters, AT_LEAST_ONE, integer=True)
        # Here, not in kmeans: level l's k-means is seeded seed + l, and True + l would pass there.
        seed = check_number("ResidualQuantizer", "seed", seed, NON_NEGATIVE, integer=True)
        residual = _points(x)
        codebooks = []
        for level in range(levels):
            centroids = kmeans(residual, codebook_size, iters, seed + level)
            codebooks.append(centroids)
            residual = residual - centroids[torch.cdist(residual, centroids).argmin(1)]
        return cls(codebooks)

    @property
    def levels(self) -> int:
        return len(self.codebooks)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """int64 codes ``[N, levels]`` of ``x`` ``[N, D]``."""
        residual = _points(x)
        if residual.shape[1] != self.codebooks[0].shape[1]:
            raise ValueError(f"x has {residual.shape[1]} dimensions, but the quantiser was fitted to "
                             f"{self.codebooks[0].shape[1]}")
        codes = []
        for centroids in self.codebooks:
            code = torch.cdist(residual, centroids).argmin(1)
            codes.append(code)
            residual = residual - centroids[code]
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Reconstructions ``[N, D]``: the sum of the centroids of the first ``levels`` codes
        (0 to :attr:`levels`; none gives zeros)."""
        levels = self.levels if levels is None else check_number(
            "decode", "levels", levels, Interval(0, self.levels), integer=True)
        out = torch.zeros(codes.shape[0], self.codebooks[0].shape[1])
        for level in range(levels):
            out += self.codebooks[level][codes[:, level]]
        return out

    def reconstruction_error(self, x: torch.Tensor, levels: int | None = None) -> float:
        """Mean squared distance between ``x`` and its reconstruction from ``levels`` levels."""
        x = _points(x)
        return float((x - self.decode(self.encode(x), levels)).pow(2).sum(1).mean())
