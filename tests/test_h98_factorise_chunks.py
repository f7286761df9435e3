"""The choice factorisation's gradient, written out and computed a chunk of users at a
time (:meth:`BalancedLoss.gradients`), against autograd's gradient of the loss and its
penalty, and the fits it drives (:func:`factorise`, :func:`fold_in_users`) against Adam on
autograd's gradient, for chunks that do and do not divide the users."""

import pytest
import torch

from recoworld.calibration import choice
from recoworld.calibration.choice import BalancedLoss, ChoiceFitConfig, factorise, fold_in_users

N_USERS, N_ITEMS = 23, 17
CHUNKS = [1, 5, 8, N_USERS, 100]  # 5 and 8 leave a shorter last chunk; 100 is one chunk


def weights(seed=0):
    """``[23, 17]`` float64 rating weights of about 30% of the pairs; user 0 chose nothing,
    user 1 every item."""
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.rand(N_USERS, N_ITEMS, generator=gen) < 0.3
    chosen[0], chosen[1] = False, True
    return chosen * (0.1 + torch.rand(N_USERS, N_ITEMS, generator=gen, dtype=torch.float64))


def adam_on_autograd(weights, users, items, config, fit_items=True):
    """The fit as the module docstring states it: Adam on autograd's gradient of the
    balanced loss plus the penalty (of the users only when the items are held fixed)."""
    users, items = users.clone().requires_grad_(), items.clone().requires_grad_(fit_items)
    optimizer = torch.optim.Adam([users, items] if fit_items else [users], lr=config.learning_rate)
    loss = BalancedLoss(weights)
    for _ in range(config.steps):
        penalty = users.pow(2).sum(1).mean() + (items.pow(2).sum(1).mean() if fit_items else 0)
        optimizer.zero_grad()
        (loss(users @ items.T) + config.l2 * penalty).backward()
        optimizer.step()
    return users.detach(), items.detach()


def start(config, n_users, n_items, seed):
    """The initial vectors :func:`factorise` and :func:`fold_in_users` draw, in float64."""
    gen = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(n_users, config.dim, generator=gen)).double(), \
        (0.1 * torch.randn(n_items, config.dim, generator=gen)).double()


@pytest.mark.parametrize("chunk_users", CHUNKS)
def test_gradients_are_autograds_gradient_of_the_balanced_loss(chunk_users):
    w = weights()
    gen = torch.Generator().manual_seed(1)
    users = torch.randn(N_USERS, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    items = torch.randn(N_ITEMS, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    BalancedLoss(w)(users @ items.T).backward()
    user_grad, item_grad = torch.full_like(users, torch.nan), torch.full_like(items, torch.nan)
    loss = BalancedLoss(w, chunk_users)
    loss.gradients(users.detach(), items.detach(), user_grad, item_grad)
    assert torch.allclose(user_grad, users.grad, rtol=1e-12, atol=1e-15)
    assert torch.allclose(item_grad, items.grad, rtol=1e-12, atol=1e-15)
    # The users' side alone, twice with the same buffers: nothing is left over from a call.
    for _ in range(2):
        loss.gradients(users.detach(), items.detach(), user_grad)
        assert torch.allclose(user_grad, users.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("chunk_users", CHUNKS)
def test_factorise_is_adam_on_autograds_gradient_of_loss_and_penalty(chunk_users, monkeypatch):
    monkeypatch.setattr(choice, "CHUNK_PAIRS", chunk_users * N_ITEMS)
    w, config = weights(), ChoiceFitConfig(dim=4, steps=25, l2=0.5)
    users, items = factorise(w, config)
    expected_users, expected_items = adam_on_autograd(w, *start(config, N_USERS, N_ITEMS, config.seed), config)
    assert users.dtype == items.dtype == torch.float64
    assert torch.allclose(users, expected_users, rtol=0, atol=1e-12)
    assert torch.allclose(items, expected_items, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk_users", CHUNKS)
def test_fold_in_users_is_adam_on_autograds_gradient_for_the_users_alone(chunk_users, monkeypatch):
    monkeypatch.setattr(choice, "CHUNK_PAIRS", chunk_users * N_ITEMS)
    w, config = weights(), ChoiceFitConfig(dim=4, steps=25, l2=0.5)
    items = torch.randn(N_ITEMS, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    users = fold_in_users(w, items, config)
    expected, _ = adam_on_autograd(w, start(config, N_USERS, 0, config.seed + 1)[0], items, config, fit_items=False)
    assert torch.allclose(users, expected, rtol=0, atol=1e-12)


def test_factorise_in_chunks_is_factorise_in_one_to_rounding(monkeypatch):
    w, config = weights(3).float(), ChoiceFitConfig(dim=4, steps=25, l2=0.5)
    monkeypatch.setattr(choice, "CHUNK_PAIRS", N_USERS * N_ITEMS)
    whole = factorise(w, config)
    monkeypatch.setattr(choice, "CHUNK_PAIRS", 5 * N_ITEMS)
    chunked = factorise(w, config)
    assert whole[0].dtype == torch.float32
    for one, many in zip(whole, chunked):
        assert torch.allclose(one, many, rtol=0, atol=1e-6)
