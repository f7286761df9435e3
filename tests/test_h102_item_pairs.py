"""EASE's item-item table in place (:func:`neighbourhood_scores`): the Gram matrix, its
Cholesky factor, the inverse and the item weights are one float64 table in turn, filled and
symmetrised a block of rows at a time, where the former code held the Gram matrix, the
factor and the inverse at once (about 24 bytes per (item, item) pair, the bound of
``recoworld calibrate --data`` on wide catalogs)."""

import subprocess
import sys
import textwrap

import pytest
import torch

from recoworld.calibration import choice
from recoworld.calibration.choice import neighbourhood_scores


def former_item_weights(weights, l2, rows=None):
    """EASE's item weights as the former code made them: the sparse Gram matrix made dense,
    then torch's Cholesky factor and ``cholesky_inverse`` (kept as the reference)."""
    rated = choice.sparse_rows(weights if rows is None else weights[rows], binary=True)
    gram = torch.from_numpy((rated.T @ rated).toarray())
    gram.diagonal().add_(l2)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    item_weights = inverse.div_(-torch.diagonal(inverse)[None, :])
    item_weights.fill_diagonal_(0.0)
    return item_weights


def ratings(n_users, n_items, seed):
    """Random recency weights of about 8% of the pairs; item 0 rated by nobody."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(n_users, n_items, generator=gen) * (torch.rand(n_users, n_items, generator=gen) < 0.08)
    weights[:, 0] = 0.0
    return weights


@pytest.mark.parametrize("chunk_items", [None, 1, 7, 64, 97, 1000])  # 7 and 64 do not divide 97 items
@pytest.mark.parametrize("some_users", [False, True])
def test_item_weights_and_scores_are_the_former_codes_to_rounding(chunk_items, some_users, monkeypatch):
    weights = ratings(120, 97, seed=3)
    rows = (torch.arange(120) % 4 != 0) if some_users else None
    made = []
    monkeypatch.setattr(choice, "rated_times", lambda w, item_matrix: made.append(item_matrix.clone())
                        or w.double() @ item_matrix)
    scores = neighbourhood_scores(weights, 5.0, rows, chunk_items=chunk_items)
    expected = former_item_weights(weights, 5.0, rows)
    (item_weights,) = made
    assert item_weights.dtype == torch.float64 and float(expected.abs().max()) > 0.05
    assert torch.allclose(item_weights, expected, rtol=1e-12, atol=1e-14)
    assert torch.equal(item_weights.diagonal(), torch.zeros(97, dtype=torch.float64))
    assert torch.allclose(scores, weights.double() @ expected, rtol=1e-12, atol=1e-14)


def test_scores_are_the_former_codes_to_float32_rounding():
    weights = ratings(300, 250, seed=4)
    scores = neighbourhood_scores(weights, 50.0, chunk_items=33)
    expected = choice.rated_times(weights, former_item_weights(weights, 50.0))
    assert scores.dtype == torch.float32 and scores.shape == (300, 250)
    assert torch.allclose(scores, expected, rtol=1e-6, atol=1e-7)


def test_a_matrix_that_is_not_positive_definite_names_the_penalty():
    """Item 0 was rated by nobody: with no penalty its row of the Gram matrix is 0."""
    with pytest.raises(ValueError, match=r"neighbourhood_l2=0.0: .* not positive definite .*choose a positive"):
        neighbourhood_scores(ratings(40, 30, seed=5), 0.0)


def test_the_item_item_tables_are_one_table_not_three():
    """Peak memory, in a fresh process, above the RSS before: one float64 table of the item
    pairs (8 bytes each) and a few blocks; the Gram matrix, its Cholesky factor and inverse
    held at once took about 24 bytes per item pair."""
    script = textwrap.dedent("""
        import resource, torch
        from recoworld.calibration.choice import neighbourhood_scores
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(0)
        weights = torch.rand(200, 4000, generator=gen) * (torch.rand(200, 4000, generator=gen) < 0.01)
        neighbourhood_scores(weights[:5, :50], 10.0)  # the libraries' first use
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        neighbourhood_scores(weights, 10.0)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print((after - before) / 4000 ** 2)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # Bytes per item pair: about 9.2 measured; the margin is for the allocator, whose first use of a
    # size can lift a process's peak by tens of MB (tests/test_h100_fit_memory.py).
    assert float(result.stdout) < 14.0
