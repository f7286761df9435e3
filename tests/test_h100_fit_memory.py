"""Platt's scaling (:func:`platt_scaling`) by Newton's method over chunks of users: the
optimum of the balanced log loss that L-BFGS found on the list of every (user, item) pair,
without the list, so that the choice fit's peak memory is no longer that list's."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from recoworld.calibration.choice import platt_scaling


def pairs(positive, negative):
    """Every (user, item) pair of the fold with its label and weight, as the fit weighs
    them: each user's negatives weigh in total as much as their positives; users without
    a positive or a negative are left out (the weights in float64)."""
    rows = positive.any(1) & negative.any(1)
    pos, neg = positive[rows], negative[rows]
    weights = torch.where(pos, 1.0, pos.sum(1, keepdim=True).double() / neg.sum(1, keepdim=True).double())
    users, items = (pos | neg).nonzero(as_tuple=True)
    return rows.nonzero().flatten()[users], items, pos[users, items], weights[users, items]


def balanced_loss(logits, positive, negative, a, b):
    users, items, chosen, weights = pairs(positive, negative)
    z = a * logits[users, items].double() + b
    return float((weights * F.binary_cross_entropy_with_logits(z, chosen.double(), reduction="none")).sum()
                 / weights.sum())


def lbfgs_on_pairs(logits, positive, negative):
    """The former fit, L-BFGS on the listed pairs in float64, run to the optimum (its
    default tolerances stopped up to 3e-5 short of it)."""
    users, items, chosen, weights = pairs(positive, negative)
    x, y = logits[users, items].double(), chosen.double()
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=1000, tolerance_grad=1e-15, tolerance_change=1e-20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (weights * F.binary_cross_entropy_with_logits(params[0] * x + params[1], y, reduction="none")).sum()
        loss = loss / weights.sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return params.detach().tolist()


def fold(seed, n_users=60, n_items=70):
    """Random logits, a validation fold's choices that follow them, and unchosen items (some
    of each user's items are neither); user 0 chose nothing, user 1 every item it saw."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n_users, n_items, generator=gen) + 0.5 * seed
    positive = torch.rand(n_users, n_items, generator=gen) < torch.sigmoid(0.6 * logits - 2 - 0.3 * seed)
    positive[0] = False
    negative = ~positive & (torch.rand(n_users, n_items, generator=gen) < 0.8)
    negative[1] = False
    positive[1, :5] = True
    return logits, positive, negative


@pytest.mark.parametrize("seed", range(4))
def test_newton_over_chunks_finds_the_optimum_that_lbfgs_found_on_the_pairs(seed):
    logits, positive, negative = fold(seed)
    reference = lbfgs_on_pairs(logits, positive, negative)
    fitted = platt_scaling(logits, positive, negative)
    assert fitted == pytest.approx(reference, abs=1e-8)
    # The users without a positive (0) or a negative (1) count for nothing, as on the pairs.
    alone = torch.zeros_like(positive)
    alone[:2] = True
    assert platt_scaling(logits + alone * torch.randn(logits.shape), positive, negative) == pytest.approx(
        fitted, abs=1e-12)
    # Chunks of users change the order of the sums only.
    for chunk_users in (1, 7, 60):
        assert platt_scaling(logits, positive, negative, chunk_users=chunk_users) == pytest.approx(fitted, abs=1e-12)


def test_separable_choices_give_a_steep_finite_step_at_the_threshold():
    """One threshold (1.0) separates every choice from every other item: the loss has no
    minimum and falls towards 0 as the scale grows. The fit stops, finite, with the loss
    under its tolerance; L-BFGS on the pairs stopped too, as steep (a of 9,480)."""
    logits = torch.randn(30, 40, generator=torch.Generator().manual_seed(0))
    positive = logits > 1.0
    a, b = platt_scaling(logits, positive, ~positive)
    assert 1e3 < a < 1e6 and -b / a == pytest.approx(1.0, abs=0.01)
    probability = torch.sigmoid(a * logits.double() + b)
    assert bool((probability[positive] > 1 - 1e-12).all()) and bool((probability[~positive] < 1e-12).all())
    assert balanced_loss(logits, positive, ~positive, a, b) < 1e-15


def test_nothing_to_fit_leaves_the_logits_as_they_are():
    logits = torch.randn(5, 6)
    nothing = torch.zeros(5, 6, dtype=torch.bool)
    assert platt_scaling(logits, nothing, ~nothing) == (1.0, 0.0)  # no user chose anything


def test_logits_that_do_not_vary_get_the_balanced_rate():
    """A constant logit tells choices apart not at all: only ``a * x + b`` is determined, at
    the balanced rate of 1/2 (each user's negatives weigh as much as their positives)."""
    logits = torch.full((30, 40), 0.7)
    positive = torch.rand(30, 40, generator=torch.Generator().manual_seed(1)) < 0.2
    a, b = platt_scaling(logits, positive, ~positive)
    assert a * float(logits[0, 0]) + b == pytest.approx(0.0, abs=1e-10)


def test_the_fit_holds_chunks_not_a_list_of_every_pair():
    """Peak memory, in a fresh process, above what the fold's tables take: a few chunks of
    users. The list of pairs (int64 users and items, float64 logits, labels and weights, and
    as many float64 tables for the loss and its gradient) took about 95 bytes per pair."""
    script = textwrap.dedent("""
        import resource, torch
        from recoworld.calibration.choice import platt_scaling
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(0)
        logits = torch.randn(4000, 2000, generator=gen)
        positive = torch.rand(4000, 2000, generator=gen) < 0.01
        negative = ~positive
        platt_scaling(logits[:2], positive[:2], negative[:2], chunk_users=1)  # the libraries' first use
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        platt_scaling(logits, positive, negative, chunk_users=50)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print((after - before) / logits.numel())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # Bytes per pair: chunks of 50 users take about 1 MB each, but the allocator's first use of
    # the tables' sizes lifts the peak by up to some 50 MB (6.7 bytes per pair) in some runs.
    assert float(result.stdout) < 16.0
