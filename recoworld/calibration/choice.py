r"""Who chooses what: the choice model fitted to MovieLens-100K's implicit feedback.

A rating says that the user chose to watch the movie; a movie the user never rated says
nothing either way (they may never have heard of it). As is usual for such data we fit a
logistic matrix factorisation of "rated" against every unrated item, with the unrated
items of each user weighted so that they weigh as much in total as the rated ones — the
fit one would get by drawing one unrated item per rated one (1:1 negative sampling),
without the sampling noise:

.. math::

    \ell_{bi} = U_b^\top V_i, \qquad
    \mathcal L = \frac{1}{W}\Big[\sum_{(b,i)\in P} w_{bi}\big(-\log\sigma(\ell_{bi})\big)
    + \sum_b \frac{\sum_{i \in P_b} w_{bi}}{|N_b|}\sum_{j\in N_b} -\log\sigma(-\ell_{bj})\Big]
    + \lambda\big(\overline{|U_b|^2} + \overline{|V_i|^2}\big),

trained full-batch with Adam (the whole 943 x 1,682 matrix is 1.6M logits). The weight
:math:`w_{bi} = 2^{-k/h}` of a rating falls by half with every ``half_life`` newer ratings
:math:`k` of the same user, so that the fitted interest is the user's *current* taste (the
simulator's interest drifts with consumption too); ``half_life=None`` weighs all ratings
alike, which is the plain MF baseline of the fidelity report.

The factorisation ranks well the items of a user's broad taste but blurs what they are
about to watch *next*, which follows the last few movies closely. So the logits add an
item-to-item term (:func:`neighbourhood_scores`): the user's recency-weighted ratings
times EASE's item weights (Steck, "Embarrassingly shallow autoencoders for sparse data",
WWW 2019), scaled to the factorisation's spread times ``neighbourhood_weight``. A second
item-to-item term follows the *order* of the ratings (:func:`sequence_scores`): items rated
shortly after the user's last ones by other users, as the sequential rules of
session-based recommendation count them (Ludewig and Jannach, "Evaluation of session-based
recommendation algorithms", UMUAI 2018), scaled the same way times
``sequence_weight`` (0 by default); a user's next ratings follow their last few closely,
which neither the factorisation nor EASE (both blind to order) sees. The sum is
brought back to ``rank`` dimensions by a truncated SVD (:func:`low_rank`), so that the
simulator still sees one interest vector per user and one feature vector per item. The
terms' gains and the choice of ``rank`` on the validation fold are in
``benchmarks/RESULTS.md``.

Because every user's unrated items weigh as much as their rated ones, :math:`\sigma(\ell)`
is the probability that the user chooses an item shown to them when the item is as likely
to be one they would choose as not; the click-through level of a real feed is not in the
data (see :mod:`recoworld.calibration`). :func:`platt_scaling` then corrects the scores
for the step from past to future choices on a validation fold, and :func:`decompose`
rewrites them exactly in the simulator's terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import linalg, sparse
from threadpoolctl import threadpool_limits


@dataclass
class ChoiceFitConfig:
    """Hyperparameters of :func:`fit_choice`, chosen on the validation fold (last 20% of
    the training split) by per-user AUC.

    Attributes:
        dim, steps, learning_rate, l2: the factorisation's size, full-batch Adam steps,
            step size and penalty.
        half_life: a rating's weight halves with every ``half_life`` newer ratings of its
            user (``None``: all weigh alike).
        neighbourhood_weight: weight of the item-to-item term against the factorisation
            (0: the plain factorisation, as in the MF baseline).
        neighbourhood_l2: EASE's penalty :math:`\\lambda`.
        sequence_weight: weight of the sequential item-to-item term (0, the default:
            none; 1.5 is the validation fold's choice, off by default for what it does to
            the calibrated sessions: ``benchmarks/RESULTS.md``); it needs the ratings in
            order (``ratings`` of :func:`fit_choice`).
        sequence_window: ratings after an item that count as following it.
        sequence_half_life: the recency half-life (in ratings) of the user's ratings the
            sequential term starts from; shorter than ``half_life``, as it is about what
            comes right after the last ones.
        rank: dimensions kept of the sum (ignored when both item-to-item weights are 0).
        seed: seed of the initial vectors.
    """

    dim: int = 16
    steps: int = 150
    learning_rate: float = 0.05
    l2: float = 0.04
    half_life: float | None = 20.0
    neighbourhood_weight: float = 0.75
    neighbourhood_l2: float = 1000.0
    sequence_weight: float = 0.0
    sequence_window: int = 50
    sequence_half_life: float = 5.0
    rank: int = 32
    seed: int = 0


@dataclass
class ChoiceModel:
    """Fitted logits :math:`a\\,U_b^\\top V_i + b`; ``scale`` and ``shift`` are Platt's (1, 0 before)."""

    user_vectors: torch.Tensor
    item_vectors: torch.Tensor
    scale: float = 1.0
    shift: float = 0.0

    def logits(self) -> torch.Tensor:
        """``[n_users, n_items]`` logits."""
        return self.scale * (self.user_vectors @ self.item_vectors.T) + self.shift


def rating_weights(train: pd.DataFrame, n_users: int, n_items: int, half_life: float | None) -> torch.Tensor:
    """``[n_users, n_items]`` weight of each training rating (0 where none), by recency.

    ``train`` must be sorted by user, then time (as :class:`~recoworld.calibration.split.Split` is).
    """
    position = train.groupby("user_id").cumcount().to_numpy()
    count = train.groupby("user_id")["item_id"].transform("size").to_numpy()
    newer = count - 1 - position
    w = np.ones(len(train)) if half_life is None else np.power(0.5, newer / half_life)
    weights = torch.zeros(n_users, n_items)
    weights[torch.tensor(train["user_id"].to_numpy()), torch.tensor(train["item_id"].to_numpy())] = \
        torch.tensor(w, dtype=torch.float32)
    return weights


#: (user, item) pairs in one chunk of :meth:`BalancedLoss.gradients` (4 MB of float32), chosen by
#: timing the fit (``benchmarks/RESULTS.md``): a step takes about as long with chunks of 1 to 64 MB;
#: smaller ones of a wide catalog (a few users each) pay the loop's overhead per chunk, and larger
#: ones only hold more memory.
CHUNK_PAIRS = 1 << 20


def chunk_rows(row_length: int, rows: int | None = None) -> int:
    """Rows of ``row_length`` entries that the fit takes at a time through its dense tables:
    ``rows`` if given, else :data:`CHUNK_PAIRS` entries' worth (at least one row)."""
    return max(1, rows or CHUNK_PAIRS // max(row_length, 1))


def row_chunks(n_rows: int, row_length: int, rows: int | None = None) -> list[slice]:
    """The slices of ``n_rows`` rows, :func:`chunk_rows` at a time."""
    step = chunk_rows(row_length, rows)
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    """Each row's number of ``True`` entries of the bool ``mask`` ``[n, m]``, a chunk of rows
    at a time: the sum of a whole bool table makes an int64 copy of it."""
    return torch.cat([mask[rows].sum(1) for rows in row_chunks(len(mask), mask.shape[1])])


class BalancedLoss:
    r"""The weighted logistic loss of the module docstring (without the penalty) of the
    logits of the rating ``weights`` (``[n_users, n_items]``, positive on chosen pairs and 0
    elsewhere), and its gradient in the factors of the logits (:meth:`gradients`).

    Written as a dense softplus over all pairs plus a correction on the chosen pairs, so
    that the dense part costs one elementwise op and one row sum. What depends on the
    weights only (the unrated items' weight, the chosen pairs) is worked out once: the fit
    evaluates the gradient at every step. ``chunk_users`` users at a time make one block of
    :meth:`gradients` (default: :data:`CHUNK_PAIRS` pairs' worth).
    """

    def __init__(self, weights: torch.Tensor, chunk_users: int | None = None):
        n_users, n_items = weights.shape
        self.rows, self.cols = (weights > 0).nonzero(as_tuple=True)  # sorted by user
        unchosen = n_items - torch.bincount(self.rows, minlength=n_users)  # no dense count table
        self.negative_weight = weights.sum(1) / unchosen.clamp_min(1).float()
        self.chosen_weight = weights[self.rows, self.cols]
        self.excess_weight = self.chosen_weight - self.negative_weight[self.rows]
        self.total = weights.sum().clamp_min(1e-12)
        self.chunk_users = max(1, min(n_users, chunk_rows(n_items, chunk_users)))
        # Each chunk's chosen pairs are a contiguous run of them, at rows counted from the chunk's first user.
        self.bounds = torch.searchsorted(self.rows, torch.arange(0, n_users + self.chunk_users,
                                                                 self.chunk_users)).tolist()
        self.chunk_rows = self.rows % self.chunk_users
        self.chunk = torch.empty(self.chunk_users, n_items, dtype=weights.dtype)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        dense = (F.softplus(logits).sum(1) * self.negative_weight).sum()
        pos = logits[self.rows, self.cols]
        correction = (self.excess_weight * F.softplus(pos) - self.chosen_weight * pos).sum()
        return (dense + correction) / self.total

    def gradients(self, users: torch.Tensor, items: torch.Tensor, user_grad: torch.Tensor,
                  item_grad: torch.Tensor | None = None) -> None:
        r"""Write the loss's gradient at the logits :math:`L = UV^\top` (``users``, ``items``)
        in ``user_grad`` and, if given, ``item_grad``: with :math:`n_b` the unrated items'
        weight of user :math:`b` and :math:`w_{bi}` the rating weights,

        .. math::

            G_{bi} = \frac{1}{W}\Big(n_b\,\sigma(L_{bi}) + [w_{bi} > 0]\big((w_{bi} - n_b)\,\sigma(L_{bi})
            - w_{bi}\big)\Big), \qquad \nabla_U = G V, \qquad \nabla_V = G^\top U,

        computed a chunk of users at a time in one buffer, so that no ``[n_users, n_items]``
        table is made."""
        if item_grad is not None:
            item_grad.zero_()
        for chunk, start in enumerate(range(0, users.shape[0], self.chunk_users)):
            block = users[start:start + self.chunk_users]
            end = start + block.shape[0]
            grad = self.chunk[:block.shape[0]]
            torch.matmul(block, items.T, out=grad).sigmoid_()
            pairs = slice(self.bounds[chunk], self.bounds[chunk + 1])
            at = (self.chunk_rows[pairs], self.cols[pairs])
            correction = self.excess_weight[pairs] * grad[at] - self.chosen_weight[pairs]
            grad.mul_(self.negative_weight[start:end, None]).index_put_(at, correction, accumulate=True)
            torch.matmul(grad, items, out=user_grad[start:end])
            if item_grad is not None:
                item_grad.addmm_(grad.T, block)
        user_grad.div_(self.total)
        if item_grad is not None:
            item_grad.div_(self.total)


def fit_choice(weights: torch.Tensor, config: ChoiceFitConfig = ChoiceFitConfig(),
               fold_in: torch.Tensor | None = None, ratings: pd.DataFrame | None = None) -> ChoiceModel:
    """Fit :math:`U, V` to the rating ``weights`` (see :func:`rating_weights`).

    ``fold_in`` (``[n_users]`` bool) marks users whose ratings must not shape the item
    side, as for users the fit never saw: the items (vectors, EASE weights, transitions,
    singular vectors) are fitted on the other users only, and each folded-in user's vector
    is then fitted on their own ratings with the items held fixed (:func:`fold_in_users`).
    ``ratings`` are the training ratings ``weights`` were made of, sorted by user then
    time, which the sequential term needs (``config.sequence_weight > 0``).
    """
    fold_in = torch.zeros(weights.shape[0], dtype=torch.bool) if fold_in is None else fold_in.bool()
    seen = ~fold_in
    U, V = factorise(weights[seen], config)
    users = torch.empty(weights.shape[0], config.dim)
    users[seen] = U
    if fold_in.any():
        users[fold_in] = fold_in_users(weights[fold_in], V, config)
    if config.neighbourhood_weight == 0 and config.sequence_weight == 0:
        return ChoiceModel(users, V)
    factorised = users @ V.T
    scores = item_to_item_scores(factorised, weights, config, seen, ratings)
    scores += factorised  # in place: the fit's largest tables are [n_users, n_items]
    del factorised
    user_vectors, item_vectors = low_rank(scores[seen] if fold_in.any() else scores, config.rank)
    out = torch.empty(weights.shape[0], item_vectors.shape[1])
    out[seen] = user_vectors
    if fold_in.any():
        # The least-squares user vectors for fixed item vectors, which for the SVD's own
        # users are exactly its user vectors. A direction of singular value 0 (scores of
        # lower rank than config.rank: a log whose users chose among a few items) has a zero
        # item vector, which gives a user nothing to fit: it is left at 0.
        kept = item_vectors.any(0)
        fixed = item_vectors[:, kept]
        folded = torch.zeros(int(fold_in.sum()), item_vectors.shape[1])
        folded[:, kept] = torch.linalg.solve(fixed.T @ fixed, fixed.T @ scores[fold_in].T).T
        out[fold_in] = folded
    return ChoiceModel(out, item_vectors)


def item_to_item_scores(factorised: torch.Tensor, weights: torch.Tensor, config: ChoiceFitConfig,
                        seen: torch.Tensor, ratings: pd.DataFrame | None) -> torch.Tensor:
    """The EASE and sequential terms, each scaled to the spread of the ``factorised``
    logits of the ``seen`` users times its weight (module docstring)."""
    terms = torch.zeros_like(factorised)

    def scaled(term: torch.Tensor, weight: float) -> torch.Tensor:
        return weight * factorised[seen].std() / term[seen].std().clamp_min(1e-12) * term

    if config.neighbourhood_weight != 0:
        terms += scaled(neighbourhood_scores(weights, config.neighbourhood_l2, seen), config.neighbourhood_weight)
    if config.sequence_weight != 0:
        if ratings is None:
            raise ValueError(f"sequence_weight={config.sequence_weight} needs the training ratings in order: pass "
                             "fit_choice(..., ratings=train), or set sequence_weight=0")
        n_users, n_items = weights.shape
        recent = rating_weights(ratings, n_users, n_items, config.sequence_half_life)
        terms += scaled(sequence_scores(ratings, recent, config.sequence_window, seen), config.sequence_weight)
    return terms


def factorise(weights: torch.Tensor, config: ChoiceFitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The penalised logistic factorisation of the module docstring: ``U``, ``V``."""
    n_users, n_items = weights.shape
    gen = torch.Generator().manual_seed(config.seed)
    U = (0.1 * torch.randn(n_users, config.dim, generator=gen)).to(weights.dtype)
    V = (0.1 * torch.randn(n_items, config.dim, generator=gen)).to(weights.dtype)
    descend(BalancedLoss(weights), U, V, config)
    return U, V


def fold_in_users(weights: torch.Tensor, item_vectors: torch.Tensor, config: ChoiceFitConfig) -> torch.Tensor:
    """``[n, dim]`` vectors of new users fitted on their rating ``weights`` with the item
    vectors fixed: the factorisation's loss and penalty, for the user side only."""
    gen = torch.Generator().manual_seed(config.seed + 1)
    U = (0.1 * torch.randn(weights.shape[0], item_vectors.shape[1], generator=gen)).to(weights.dtype)
    descend(BalancedLoss(weights), U, item_vectors, config, fit_items=False)
    return U


def descend(loss: BalancedLoss, users: torch.Tensor, items: torch.Tensor, config: ChoiceFitConfig,
            fit_items: bool = True) -> None:
    """``config.steps`` full-batch Adam steps, in place, on the ``loss`` of the logits
    ``users @ items.T`` plus the penalty :math:`\\lambda(\\overline{|U_b|^2} + \\overline{|V_i|^2})`
    (only the users' with ``fit_items=False``, which holds the items fixed). The gradient is
    the closed form of :meth:`BalancedLoss.gradients` plus the penalty's, not autograd's."""
    factors = [users, items] if fit_items else [users]
    for factor in factors:
        factor.grad = torch.empty_like(factor)
    optimizer = torch.optim.Adam(factors, lr=config.learning_rate)
    for _ in range(config.steps):
        loss.gradients(users, items, users.grad, items.grad if fit_items else None)
        for factor in factors:
            factor.grad.add_(factor, alpha=2 * config.l2 / factor.shape[0])
        optimizer.step()
    for factor in factors:
        factor.grad = None


def neighbourhood_scores(weights: torch.Tensor, l2: float, rows: torch.Tensor | None = None,
                         chunk_items: int | None = None) -> torch.Tensor:
    r"""``[n_users, n_items]`` item-to-item scores :math:`W B` of the rating ``weights`` :math:`W`.

    :math:`B` is EASE's closed form (Steck, WWW 2019): with :math:`X` the 0/1 matrix of
    rated pairs and :math:`P = (X^\top X + \lambda I)^{-1}`, :math:`B_{ij} = -P_{ij}/P_{jj}`
    off the diagonal and 0 on it — the ridge regression of each item's column on all the
    others. Weighting the user's ratings by recency (``weights``) makes the items rated
    last count most, as they do for what the user chooses next. ``rows`` (a ``[n_users]``
    mask) chooses the users whose ratings fit :math:`B` (default: all).

    The costs are those of the ratings, not of the dense tables: :math:`X^\top X` counts
    co-rated pairs over the ratings alone (exactly: counts are integers), :math:`P` comes
    from its Cholesky factor (it is positive definite; float64, as :math:`\lambda` is small
    against the counts of a large log), and :math:`WB` sums over the rated pairs of
    :math:`W` (:func:`rated_times`). One float64 ``[n_items, n_items]`` table holds
    :math:`X^\top X`, then its factor, :math:`P` and :math:`B` in turn (LAPACK's ``potrf``
    and ``potri`` in place), so that a wide catalog's fit holds one such table, not three;
    :math:`X^\top X` is counted, and :math:`P`'s other triangle copied, ``chunk_items`` rows
    at a time (default: :data:`CHUNK_PAIRS` entries' worth).
    """
    rated = sparse_rows(weights, binary=True)
    if rows is not None:
        rated = rated[rows.numpy()]
    n_items = rated.shape[1]
    blocks = row_chunks(n_items, n_items, chunk_items)
    table = np.empty((n_items, n_items))
    by_item = rated.tocsc()
    for block in blocks:  # rows ``block`` of X^T X are X[:, block]^T X
        (by_item[:, block].T @ rated).toarray(out=table[block])
    table.flat[::n_items + 1] += l2
    # LAPACK reads the transpose, the same symmetric matrix in its column order, in place;
    # its upper triangle is the lower one of ``table``.
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):  # SciPy's BLAS: the fit's threads
        factor, info = linalg.lapack.dpotrf(table.T, lower=False, clean=False, overwrite_a=True)
        if info == 0:
            factor, info = linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"neighbourhood_l2={l2}: X^T X + l2 I is not positive definite ({n_items} items, LAPACK "
                         f"info {info}); choose a positive neighbourhood_l2")
    for block in blocks:  # the upper triangle from the lower one
        table[block, block.stop:] = table[block.stop:, block].T
        tile = table[block, block]
        upper = np.triu_indices(len(tile), 1)
        tile[upper] = tile.T[upper]
    table /= -table.diagonal()  # B_ij = -P_ij / P_jj; the negated diagonal is a copy
    table.flat[::n_items + 1] = 0.0
    return rated_times(weights, torch.from_numpy(table))


def sparse_rows(weights: torch.Tensor, binary: bool = False) -> sparse.csr_matrix:
    """The nonzero entries of ``weights`` (``[n_users, n_items]``) as a float64 SciPy CSR
    matrix (1.0 for each when ``binary``)."""
    users, items = weights.nonzero(as_tuple=True)
    values = np.ones(len(users)) if binary else weights[users, items].double().numpy()
    return sparse.csr_matrix((values, (users.numpy(), items.numpy())), shape=tuple(weights.shape))


def rated_times(weights: torch.Tensor, item_matrix: torch.Tensor) -> torch.Tensor:
    """``weights @ item_matrix`` (float32) of rating ``weights`` ``[n_users, n_items]`` and a
    float64 ``[n_items, n_items]`` matrix, summed in float64 over the rated pairs only: a
    user rates a few items of the catalog, so this costs ratings x items multiplications
    where the dense product costs users x items x items. A chunk of :data:`CHUNK_PAIRS`
    products at a time is summed in float64, so that no float64 table of them is made."""
    n_users, n_items = weights.shape[0], item_matrix.shape[1]
    rated, matrix = sparse_rows(weights), item_matrix.numpy()
    out = torch.empty(n_users, n_items)
    for rows in row_chunks(n_users, n_items):
        out[rows] = torch.from_numpy(rated[rows] @ matrix)
    return out


def sequence_scores(ratings: pd.DataFrame, recent: torch.Tensor, window: int,
                    rows: torch.Tensor | None = None) -> torch.Tensor:
    r"""``[n_users, n_items]`` sequential item-to-item scores :math:`W_h T`.

    :math:`C_{ij}` counts how often a user rated :math:`j` within ``window`` ratings
    after :math:`i`; the transitions :math:`T_{ij} = C_{ij} / \sqrt{d^{out}_i d^{in}_j}`
    are normalised by the out-degree of :math:`i` and the in-degree of :math:`j`, so that
    a blockbuster that follows everything does not follow anything in particular.
    ``recent`` (:math:`W_h`, :func:`rating_weights` with a short half-life) starts them
    from the user's last ratings. ``ratings`` must be sorted by user, then time; ``rows``
    (a ``[n_users]`` mask) chooses the users whose sequences count (default: all).
    """
    if window < 1:
        raise ValueError(f"sequence_window={window}; count at least the next rating (1)")
    n_items = recent.shape[1]
    users, items = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    if rows is not None:
        keep = rows.numpy()[users]
        users, items = users[keep], items[keep]
    counts = np.zeros(n_items * n_items)
    for lag in range(1, window + 1):
        same = users[lag:] == users[:-lag]
        if not same.any():
            break
        counts += np.bincount(items[:-lag][same] * n_items + items[lag:][same], minlength=n_items * n_items)
    counts = torch.tensor(counts.reshape(n_items, n_items))
    out_degree, in_degree = counts.sum(1).clamp_min(1.0), counts.sum(0).clamp_min(1.0)
    transitions = counts / out_degree.sqrt()[:, None] / in_degree.sqrt()[None, :]
    return rated_times(recent, transitions)


def low_rank(scores: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""User and item vectors ``[n_users, r]``, ``[n_items, r]`` whose products are the best
    rank-``r`` approximation of ``scores`` (truncated SVD, Eckart-Young), singular values
    split evenly between the two sides; ``r`` is ``rank`` or less when ``scores`` is smaller.

    Only the ``r`` leading singular vectors are computed, and exactly: those of the smaller
    side (users or items) are the leading eigenvectors of its Gram matrix (:math:`SS^\top`
    or :math:`S^\top S`, in float64, summed over chunks of :data:`CHUNK_PAIRS` scores;
    LAPACK's ``dsyevr`` computes a chosen few), those of the other side are
    :math:`S v / \sigma`. A full SVD of a 4,000 x 4,000 log's scores took about three times
    as long (``benchmarks/RESULTS.md``). The Gram matrix squares the spread of the singular
    values, which float64 absorbs: its vectors are closer to the exact ones than a float32
    SVD's for every singular value above about :math:`10^{-8}\sigma_1`. The sign of each
    pair of vectors is the one that makes the item vector's largest entry (in absolute
    value) positive, where an SVD's is whatever its algorithm gives.
    """
    if rank < 1:
        raise ValueError(f"rank={rank}; keep at least one dimension")
    wide = scores.shape[0] < scores.shape[1]
    tall = scores.T if wide else scores  # [*, k]: k = min(n_users, n_items) columns
    k = tall.shape[1]
    r = min(rank, k)
    # A chunk of rows at a time in float64, so that no float64 copy of the scores is made.
    chunks = row_chunks(tall.shape[0], k)
    gram = torch.zeros(k, k, dtype=torch.float64)
    for rows in chunks:
        block = tall[rows].double()
        gram.addmm_(block.T, block)
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):  # SciPy's BLAS: the fit's threads
        # The transpose is the same symmetric matrix in LAPACK's column order, which spares eigh a copy.
        eigenvalues, eigenvectors = linalg.eigh(gram.numpy().T, subset_by_index=[k - r, k - 1], overwrite_a=True)
    del gram
    # Largest first; a rank-deficient matrix's zero eigenvalues may come out a rounding below 0.
    root = torch.from_numpy(eigenvalues[::-1].copy()).clamp_min(0.0).pow(0.25)  # sqrt(sigma)
    gram_side = torch.from_numpy(eigenvectors[:, ::-1].copy())
    # S v / sigma * sqrt(sigma); 0 for a singular value of 0, whose products are 0.
    other_side = torch.cat([tall[rows].double() @ gram_side for rows in chunks])
    other_side /= torch.where(root > 0, root, torch.inf)
    gram_side = gram_side * root
    users, items = (gram_side, other_side) if wide else (other_side, gram_side)
    sign = torch.sign(items.gather(0, items.abs().argmax(0, keepdim=True)))
    sign[sign == 0] = 1.0
    return (users * sign).to(scores.dtype).contiguous(), (items * sign).to(scores.dtype).contiguous()


#: Newton's method for :func:`platt_scaling` stops when half its squared Newton decrement
#: :math:`g^\top H^{-1} g / 2`, the quadratic model's estimate of how far the loss is above its
#: minimum, is below this: far under float64's resolution of a loss of order 1, so that
#: :math:`(a, b)` is the optimum to rounding (the next step would move it by about
#: :math:`10^{-10}` or less).
PLATT_TOLERANCE = 1e-20
#: Newton steps at most (a few do on a validation fold; data one threshold separates take more).
PLATT_MAX_STEPS = 100
#: Halvings of a Newton step that does not lower the loss, before it is taken to be at its minimum.
PLATT_HALVINGS = 60
#: A step whose predicted decrease is below this share of the loss is taken without
#: checking that it lowers the loss: float64 sums of many pairs cannot tell so small a change.
PLATT_ROUNDING = 1e-12


def platt_scaling(logits: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                  chunk_users: int | None = None) -> tuple[float, float]:
    r"""Scale and shift ``(a, b)`` minimising the balanced log loss of ``sigmoid(a * logits + b)``.

    Platt, "Probabilistic outputs for support vector machines", 1999. ``positive`` are a
    validation fold's chosen items, ``negative`` the items each user never chose; each
    user's negatives weigh as much in total as their positives, as in the fit (each chosen
    item weighs 1; users with no positive or no negative count for nothing). A model is more sure of the choices it was trained on than of the next ones;
    fitted on held-out later choices, the scaling makes :math:`\sigma` a probability of the
    *next* choice.

    The loss is convex in :math:`(a, b)`; Newton's method from :math:`(1, 0)` minimises it,
    with the gradient and the 2 x 2 Hessian summed in float64 over ``chunk_users`` users of
    the dense ``logits`` at a time (default: :data:`CHUNK_PAIRS` pairs' worth), so that no
    list of the pairs is made. A step that does not lower the loss is halved until it does;
    the fit stops at :data:`PLATT_TOLERANCE` or after :data:`PLATT_MAX_STEPS` steps. Where one
    threshold separates every positive from every negative the loss has no minimum (it falls
    towards 0 as :math:`a` grows): the fit then stops where the loss is below the tolerance,
    a steep finite step at that threshold. Without a user who has both a positive and a
    negative there is nothing to fit: ``(1.0, 0.0)``.
    """
    n_users, n_items = logits.shape
    chunks = row_chunks(n_users, n_items, chunk_users)
    n_positive, n_negative = row_counts(positive), row_counts(negative)
    kept = (n_positive > 0) & (n_negative > 0)
    if not kept.any():
        return 1.0, 0.0
    positive_weight = kept.double()
    negative_weight = torch.where(kept, n_positive.double() / n_negative.clamp_min(1).double(), 0.0)

    def sums(a: float, b: float) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The loss at ``(a, b)``, its gradient and Hessian in ``(a, b)``."""
        totals = torch.zeros(7, dtype=torch.float64)  # weight, loss, gradient (a, b), Hessian (aa, ab, bb)
        for rows in chunks:
            x = logits[rows].double()
            chosen = positive[rows]
            weight = torch.where(chosen, positive_weight[rows, None], negative[rows] * negative_weight[rows, None])
            label = chosen.double()
            z = x * a + b
            totals[0] += weight.sum()
            totals[1] += F.binary_cross_entropy_with_logits(z, label, weight=weight, reduction="sum")
            p = z.sigmoid_()
            residual = (p - label).mul_(weight)
            curvature = p.mul_(1.0 - p).mul_(weight)
            totals[2] += torch.dot(residual.flatten(), x.flatten())
            totals[3] += residual.sum()
            curvature_x = curvature.mul(x)
            totals[4] += torch.dot(curvature_x.flatten(), x.flatten())
            totals[5] += curvature_x.sum()
            totals[6] += curvature.sum()
        totals[1:] /= totals[0]
        hessian = torch.stack([totals[4:6], totals[5:7]])
        return float(totals[1]), totals[2:4], hessian

    params = torch.tensor([1.0, 0.0], dtype=torch.float64)
    loss, gradient, hessian = sums(*params.tolist())
    for _ in range(PLATT_MAX_STEPS):
        # The pseudo-inverse: where the logits do not vary, the Hessian has rank 1 and the
        # step moves a * logits + b only, which is all the loss depends on.
        step = -(torch.linalg.pinv(hessian) @ gradient)
        decrease = float(gradient @ step) / -2  # the quadratic model's
        if decrease <= PLATT_TOLERANCE:
            break
        for _ in range(PLATT_HALVINGS):
            trial = params + step
            trial_loss, trial_gradient, trial_hessian = sums(*trial.tolist())
            # A decrease the loss's rounding hides is not checked: that close to the minimum
            # the quadratic model is exact and Newton's whole step is right.
            if trial_loss < loss or decrease <= PLATT_ROUNDING * loss:
                break
            step = step / 2
        else:  # no step lowers the loss: at float64's resolution, this is its minimum
            break
        params, loss, gradient, hessian = trial, trial_loss, trial_gradient, trial_hessian
    a, b = params.tolist()
    return a, b


@dataclass
class UtilityTerms:
    r"""Fitted logits as the simulator's terms (see :func:`decompose`).

    Attributes:
        interest: ``[n_users, E]`` unit interest vectors :math:`u_b`.
        features: ``[n_items, E]`` unit item features :math:`f_i`.
        interest_weight: :math:`\alpha`.
        quality_weight: :math:`\beta`.
        popularity_bias: ``[n_users]`` :math:`\pi_b`.
        threshold: :math:`c`.
    """

    interest: torch.Tensor
    features: torch.Tensor
    interest_weight: float
    quality_weight: float
    popularity_bias: torch.Tensor
    threshold: float

    def utility(self, popularity_score: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """``[n_users, n_items]``: :math:`\\alpha\\langle u_b, f_i\\rangle + \\beta q_i + \\pi_b \\tilde p_i - c`."""
        return (self.interest_weight * self.interest @ self.features.T + self.quality_weight * quality[None, :]
                + self.popularity_bias[:, None] * popularity_score[None, :] - self.threshold)


def least_squares(design: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The least-squares coefficients ``[p, m]`` of each column of ``targets`` ``[n, m]`` on
    the few columns of ``design`` ``[n, p]`` (float64), by the normal equations summed
    elementwise. ``torch.linalg.lstsq`` (MKL) rounds differently with the memory's
    alignment, which left a calibration's fitted weights different in their last digit
    from one run to the next; these sums do not depend on it. One column of ``design`` at a
    time: the products of all of them at once were a float64 table ``p`` times the size of
    ``targets``."""
    gram = (design[:, :, None] * design[:, None, :]).sum(0)
    moments = torch.stack([(column[:, None] * targets).sum(0) for column in design.T])
    return torch.linalg.solve(gram, moments)


def decompose(model: ChoiceModel, popularity_score: torch.Tensor, quality: torch.Tensor) -> UtilityTerms:
    r"""Rewrite the logits :math:`\ell = aUV^\top + b` exactly as the simulator's utility.

    1. *Popularity bias and quality weight.* Each user's logits over all items are
       regressed on the catalog's standardised log-popularity :math:`\tilde p` and quality
       :math:`q` (with an intercept): the slope on :math:`\tilde p` is the user's popularity
       bias :math:`\pi_b` — how much more the user is drawn to an item for being popular,
       everything else in their fitted taste held fixed — and the mean slope on
       :math:`q` is :math:`\beta`. The threshold :math:`c` is :math:`-b` minus the mean
       intercept.
    2. *Interest.* What is left, :math:`\ell - \beta q - \pi_b\tilde p + c`, is the inner
       product of :math:`U'_b = (\sqrt a U_b, -\pi_b, -\beta, -\bar k)` and
       :math:`V'_i = (\sqrt a V_i, \tilde p_i, q_i, 1)`, which :func:`unit_space` turns into
       :math:`\alpha\langle u_b, f_i\rangle` with unit vectors.

    So :math:`\alpha\langle u_b, f_i\rangle + \beta q_i + \pi_b\tilde p_i - c = \ell_{bi}`
    to rounding error: the simulated user's click logit is the fitted one.
    """
    # One float64 table of the scores for both regressions (the float32 product rounded as before).
    scores = (model.user_vectors @ model.item_vectors.T).mul_(model.scale).double()
    n_users, n_items = scores.shape
    design = torch.stack([torch.ones(n_items), popularity_score, quality], 1).double()
    # A column the items do not tell apart (the quality of a log without ratings, the
    # popularity of items all chosen as often) is the intercept again: its weight is 0.
    varies = torch.tensor([True] + [bool(design[:, j].max() > design[:, j].min()) for j in (1, 2)])
    # Laid out as least_squares' solutions are (column-major), so that the means below sum
    # in the same order whichever columns were solved for.
    coef = torch.zeros(n_users, 3, dtype=torch.float64).T
    coef[varies] = least_squares(design[:, varies], scores.T)
    beta = float(coef[2].mean())
    coef = torch.zeros(n_users, 2, dtype=torch.float64).T
    coef[varies[:2]] = least_squares(design[:, :2][:, varies[:2]], scores.sub_(beta * quality.double()[None, :]).T)
    del scores
    intercept, popularity_bias = coef[0].float(), coef[1].float()
    mean_intercept = float(intercept.mean())
    root = model.scale ** 0.5
    users = torch.cat([root * model.user_vectors, -popularity_bias[:, None],
                       torch.full((n_users, 1), -beta), torch.full((n_users, 1), -mean_intercept)], 1)
    items = torch.cat([root * model.item_vectors, popularity_score[:, None], quality[:, None], torch.ones(n_items, 1)], 1)
    space = unit_space(users, items)
    return UtilityTerms(space.interest, space.features, space.interest_weight, beta, popularity_bias,
                        -model.shift - mean_intercept)


@dataclass
class UnitSpace:
    """Inner products as :math:`\\alpha\\langle u_b, f_i\\rangle` with unit vectors (see :func:`unit_space`)."""

    interest: torch.Tensor
    features: torch.Tensor
    interest_weight: float


def unit_space(user_vectors: torch.Tensor, item_vectors: torch.Tensor) -> UnitSpace:
    r"""Unit vectors whose scaled cosines equal the inner products ``U @ V.T``.

    With :math:`R = \max_b |U_b|` and :math:`M = \max_i |V_i|`,

    .. math::

        f_i = \big(V_i/M,\ \sqrt{1 - |V_i|^2/M^2},\ 0\big), \qquad
        u_b = \big(U_b/R,\ 0,\ \sqrt{1 - |U_b|^2/R^2}\big), \qquad \alpha = RM,

    so that :math:`\alpha\langle u_b, f_i\rangle = U_b^\top V_i` exactly. This is the
    reduction of inner products to cosines of Bachrach et al., "Speeding up the Xbox
    recommender system using a Euclidean transformation for inner-product spaces",
    RecSys 2014, applied to both sides. Plainly normalising ``U`` and ``V`` would throw
    away how strongly each user's choices follow their taste and how polarising each item
    is; a cosine model trained directly predicted held-out choices worse on the validation
    fold (``benchmarks/RESULTS.md``).
    """
    R = float(user_vectors.norm(dim=1).max().clamp_min(1e-12))
    M = float(item_vectors.norm(dim=1).max().clamp_min(1e-12))

    def complete(vectors: torch.Tensor, scale: float, slot: int) -> torch.Tensor:
        scaled = vectors / scale
        rest = (1.0 - scaled.pow(2).sum(1, keepdim=True)).clamp_min(0.0).sqrt()
        zero = torch.zeros_like(rest)
        return torch.cat([scaled, rest, zero] if slot == 0 else [scaled, zero, rest], 1)

    return UnitSpace(complete(user_vectors, R, 1), complete(item_vectors, M, 0), R * M)
