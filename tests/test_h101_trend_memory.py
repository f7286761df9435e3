"""The trend scaling of a world cut at a date (recoworld.calibration.trend) fitted a chunk of
users at a time: the same fit as the list of every (user, item) pair of the validation fold
that it replaced, whatever the chunks, holding a few chunks of users where the list took over 100 bytes per pair."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from recoworld.calibration.trend import TREND_L2, Standardised, _on_term_scales, fit_trend_scaling


def listed_pairs(positive, negative):
    """The fold's (user, item) pairs, user by user, of the users with a positive and a
    negative, and whether each was chosen: the list the fit made before."""
    rows = positive.any(1) & negative.any(1)
    pos, neg = positive[rows], negative[rows]
    users, items = (pos | neg).nonzero(as_tuple=True)
    return rows.nonzero().flatten()[users], items, pos[users, items]


def listed_pairs_fit(taste_logits, terms, user_terms, positive, negative):
    """The fit as it was: L-BFGS over tables of every listed pair (the reference), with the
    negatives' weights in float64 where the old fit rounded them to float32 (which moved
    the fitted weights by up to 6e-8)."""
    users, items, chosen = listed_pairs(positive, negative)
    ratio = positive.sum(1).double() / negative.sum(1).clamp_min(1).double()
    x_scale, z_scale = Standardised.of(terms), Standardised.of(user_terms)
    x, z = x_scale(terms)[items], z_scale(user_terms)[users]
    taste = taste_logits[users, items].double()
    y, w = chosen.double(), torch.where(chosen, 1.0, ratio[users])
    k, m = terms.shape[1], user_terms.shape[1]
    params = torch.zeros(2 * k + 2 + m * (k + 1), dtype=torch.float64)
    params[0] = 1.0
    params.requires_grad_(True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def split(p):
        by_user = p[2 * k + 2:].reshape(m, k + 1)
        return p[0], p[1:k + 1], p[k + 1:2 * k + 1], p[2 * k + 1], by_user[:, :k], by_user[:, k]

    def closure():
        optimizer.zero_grad()
        a, gamma, beta, c, delta, epsilon = split(params)
        logit = (a + x @ gamma) * taste + x @ beta + c + (z * (x @ delta.T + epsilon)).sum(1)
        loss = (w * F.binary_cross_entropy_with_logits(logit, y, reduction="none")).sum() / w.sum()
        loss = loss + TREND_L2 * (gamma.pow(2).sum() + beta.pow(2).sum() + delta.pow(2).sum() + epsilon.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    return _on_term_scales(*(p.detach() for p in split(params)), x_scale, z_scale)


def _fold(seed: int, n_users: int = 300, n_items: int = 70):
    """Taste logits, 3 trend terms and 2 user terms, and a validation fold drawn from them:
    some users chose nothing in it, one chose every item it left them, and the negatives
    are the items a user never chose before (not every item)."""
    gen = torch.Generator().manual_seed(seed)
    taste = 2 * torch.randn(n_users, n_items, generator=gen)
    terms = torch.randn(n_items, 3, generator=gen) * torch.tensor([1.0, 3.0, 0.5]) + 2
    user_terms = 3 + torch.rand(n_users, 2, generator=gen) * 2
    logits = 0.7 * taste + terms[:, 0] - 0.4 * terms[:, 1] * (user_terms[:, :1] - 4) - 1.5
    positive = torch.rand(n_users, n_items, generator=gen) < torch.sigmoid(logits)
    positive[torch.rand(n_users, generator=gen) < 0.3] = False
    seen_before = (torch.rand(n_users, n_items, generator=gen) < 0.2) & ~positive
    negative = ~positive & ~seen_before
    negative[5] = False
    positive[5] = ~seen_before[5]
    return taste, terms, user_terms, positive, negative


def _weights(scaling) -> torch.Tensor:
    return torch.cat([torch.tensor([scaling.taste, scaling.shift], dtype=torch.float64), scaling.taste_by_term,
                      scaling.bias_by_term, scaling.bias_by_user_term.flatten(), scaling.shift_by_user_term])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_by_chunks_is_the_fit_over_the_listed_pairs(seed):
    taste, terms, user_terms, positive, negative = _fold(seed)
    reference = _weights(listed_pairs_fit(taste, terms, user_terms, positive, negative))
    fitted = _weights(fit_trend_scaling(taste, terms, user_terms, positive, negative))
    torch.testing.assert_close(fitted, reference, rtol=0, atol=1e-10)


def test_the_fit_does_not_depend_on_the_chunks():
    taste, terms, user_terms, positive, negative = _fold(3)
    whole = _weights(fit_trend_scaling(taste, terms, user_terms, positive, negative))
    for chunk_users in (1, 7, 64):
        chunked = _weights(fit_trend_scaling(taste, terms, user_terms, positive, negative, chunk_users=chunk_users))
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-10)


def test_the_fit_holds_chunks_not_a_list_of_every_pair():
    """Peak memory, in a fresh process, above what the fold's tables take: a few chunks of
    users. The list of pairs (int64 users and items, float64 taste logits, labels, weights,
    7 trend terms and a user term per pair, and autograd's tables of the same length) took
    over 100 bytes per pair. The bound leaves room for what torch maps on its first use of
    some kernels (up to 16 MB, in some runs), which is not the fit's."""
    script = textwrap.dedent("""
        import resource, torch
        from recoworld.calibration.trend import fit_trend_scaling
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(0)
        taste = torch.randn(2000, 1000, generator=gen)
        terms, user_terms = torch.rand(1000, 7, generator=gen), torch.rand(2000, 1, generator=gen)
        positive = torch.rand(2000, 1000, generator=gen) < torch.sigmoid(taste - 4)
        negative = ~positive
        # The libraries' first use.
        fit_trend_scaling(taste[:100], terms, user_terms[:100], positive[:100], negative[:100], chunk_users=50)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        fit_trend_scaling(taste, terms, user_terms, positive, negative, chunk_users=50)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print((after - before) / taste.numel())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(result.stdout) < 20.0  # bytes per pair; chunks of 50 users take about 2 MB
