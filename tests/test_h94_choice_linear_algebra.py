"""The choice fit's linear algebra against the textbook formulas it computes faster:
the truncated SVD (:func:`low_rank`), EASE's closed form (:func:`neighbourhood_scores`) and
the balanced logistic loss (:class:`BalancedLoss`), for more users than items and more
items than users."""

import pytest
import torch
import torch.nn.functional as F

from recoworld.calibration.choice import BalancedLoss, low_rank, neighbourhood_scores

SHAPES = [(40, 25), (25, 40)]  # [n_users, n_items]: more users than items, more items than users


def decaying(shape, seed=0):
    """A random matrix with well-separated singular values (10 .. 0.1)."""
    gen = torch.Generator().manual_seed(seed)
    k = min(shape)
    left = torch.linalg.qr(torch.randn(shape[0], k, generator=gen, dtype=torch.float64)).Q
    right = torch.linalg.qr(torch.randn(shape[1], k, generator=gen, dtype=torch.float64)).Q
    return (left * torch.logspace(1, -1, k, dtype=torch.float64)) @ right.T


def ratings(shape, seed=0):
    """``[n_users, n_items]`` recency weights of about 20% of the pairs, every user and item rated."""
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.rand(shape, generator=gen) < 0.2
    chosen[torch.arange(shape[0]), torch.arange(shape[0]) % shape[1]] = True
    chosen[torch.arange(shape[1]) % shape[0], torch.arange(shape[1])] = True
    return chosen * (0.1 + torch.rand(shape, generator=gen))


@pytest.mark.parametrize("shape", SHAPES)
def test_low_rank_is_the_truncated_svd_with_the_singular_values_split_evenly(shape):
    scores = decaying(shape)
    left, singular, right = torch.linalg.svd(scores, full_matrices=False)
    users, items = low_rank(scores.float(), 6)
    assert users.shape == (shape[0], 6) and items.shape == (shape[1], 6)
    assert users.dtype == items.dtype == torch.float32
    best = (left[:, :6] * singular[:6]) @ right[:6]
    assert torch.allclose((users @ items.T).double(), best, atol=1e-5), "not the best rank-6 approximation"
    root = singular[:6].sqrt()
    sign = torch.sign((items.double() * right[:6].T).sum(0))
    assert torch.allclose(users.double(), left[:, :6] * root * sign, atol=1e-5)
    assert torch.allclose(items.double(), right[:6].T * root * sign, atol=1e-5)
    # The sign of each pair of singular vectors: the item vector's largest entry is positive.
    largest = items.gather(0, items.abs().argmax(0, keepdim=True))
    assert bool((largest > 0).all())


@pytest.mark.parametrize("shape", SHAPES)
def test_low_rank_of_a_rank_deficient_matrix_returns_it_and_no_nan(shape):
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(shape[0], 3, generator=gen) @ torch.randn(3, shape[1], generator=gen)
    users, items = low_rank(scores, 100)  # more than the matrix has
    k = min(shape)
    assert users.shape == (shape[0], k) and items.shape == (shape[1], k)
    assert bool(torch.isfinite(users).all() and torch.isfinite(items).all())
    assert torch.allclose(users @ items.T, scores, atol=1e-4)
    assert float(users[:, 3:].abs().max()) < 1e-3 and float(items[:, 3:].abs().max()) < 1e-3


def test_low_rank_refuses_no_dimension():
    with pytest.raises(ValueError, match=r"rank=0; keep at least one dimension"):
        low_rank(torch.ones(3, 4), 0)


def ease_dense(weights, l2, rows=None):
    """EASE's closed form as written: the dense Gram matrix of the rated pairs, inverted."""
    rated = (weights if rows is None else weights[rows]).gt(0).double()
    inverse = torch.linalg.inv(rated.T @ rated + l2 * torch.eye(weights.shape[1], dtype=torch.float64))
    item_weights = -inverse / torch.diagonal(inverse)[None, :]
    item_weights.fill_diagonal_(0.0)
    return weights.double() @ item_weights


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("some_users", [False, True])
def test_neighbourhood_scores_are_eases_closed_form(shape, some_users):
    weights = ratings(shape)
    rows = (torch.arange(shape[0]) % 3 != 0) if some_users else None
    scores = neighbourhood_scores(weights, 2.0, rows)
    assert scores.dtype == torch.float32 and scores.shape == shape
    expected = ease_dense(weights, 2.0, rows)
    assert float(expected.abs().max()) > 0.1  # not trivially small
    assert torch.allclose(scores.double(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_balanced_loss_is_the_docstrings_weighted_logistic_loss(shape):
    weights = ratings(shape)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(2), requires_grad=True)
    loss = BalancedLoss(weights)(logits)
    # Each chosen pair weighs w; each unchosen pair of user b the user's total w over their unchosen count.
    chosen = weights > 0
    negative = weights.double().sum(1, keepdim=True) / (~chosen).sum(1, keepdim=True)
    x = logits.detach().double()
    expected = (torch.where(chosen, weights.double() * F.softplus(-x), negative * F.softplus(x)).sum()
                / weights.double().sum())
    assert loss.item() == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    reference = logits.detach().double().requires_grad_()
    (torch.where(chosen, weights.double() * F.softplus(-reference), negative * F.softplus(reference)).sum()
     / weights.double().sum()).backward()
    assert torch.allclose(logits.grad.double(), reference.grad, rtol=1e-5, atol=1e-9)


def test_balanced_loss_keeps_nothing_of_the_logits_between_calls():
    weights = ratings((30, 20))
    gen = torch.Generator().manual_seed(3)
    first, second = torch.randn(30, 20, generator=gen), torch.randn(30, 20, generator=gen)
    loss = BalancedLoss(weights)
    loss(first)
    assert torch.equal(loss(second), BalancedLoss(weights)(second))
