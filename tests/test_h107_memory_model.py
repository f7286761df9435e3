"""The memory check of ``recoworld calibrate --data`` counts the larger of the fit's two
peaks, not their sum: the item pairs' table (EASE's) is made while fewer (user, item) tables
are held than at the fit's other peak, and :data:`BYTES_PER_ITEM_PAIR` already counts those
held beside it (peaks of tall, square and wide fits in ``benchmarks/RESULTS.md``)."""

from types import SimpleNamespace

import pandas as pd
import pytest

from recoworld.apps.calibrate.folds import (BYTES_PER_ITEM_PAIR, BYTES_PER_PAIR, CalibrationDataError, Folds,
                                            fit_memory)

GIB = 2 ** 30


def folds_of(n_users: int, n_items: int) -> Folds:
    """Folds of ``n_users`` x ``n_items``: the memory check reads only their sizes."""
    data = SimpleNamespace(users=pd.RangeIndex(n_users), items=pd.RangeIndex(n_items))
    return Folds(data, split=None, inner=None)


@pytest.mark.parametrize("n_users, n_items, available", [
    (5000, 5000, 1.5 * GIB),   # (user, item) pairs set the bound: 55 B x 25 M = 1.28 GiB; the sum, 1.84 GiB
    (2000, 8000, 2.0 * GIB),   # item pairs set it: 24 B x 64 M = 1.43 GiB; the sum, 2.25 GiB
])
def test_a_log_within_the_larger_bound_is_fitted_though_the_sum_is_more(n_users, n_items, available):
    both = BYTES_PER_PAIR * n_users * n_items + BYTES_PER_ITEM_PAIR * n_items ** 2
    assert fit_memory(n_users, n_items) <= available < both
    folds_of(n_users, n_items).check_memory(int(available))  # no refusal


def test_a_square_log_over_its_bound_is_told_how_many_users_fit():
    with pytest.raises(CalibrationDataError) as error:
        folds_of(5000, 5000).check_memory(int(1.2 * GIB))
    assert str(error.value) == (
        "the choice fit holds a dense table of every (user, item) pair: 5,000 users x 5,000 items need about 1.3 GiB "
        "of memory, and 1.2 GiB is available; fit a random subset of the users (--users 4685 or fewer), or keep the "
        "log's most chosen items only")
    # The advice holds by the same count: 4,685 users fit, 4,686 do not.
    folds_of(4685, 5000).check_memory(int(1.2 * GIB))
    with pytest.raises(CalibrationDataError):
        folds_of(4686, 5000).check_memory(int(1.2 * GIB))


def test_a_wide_log_over_its_bound_is_told_that_fewer_users_would_not_help():
    """The table of every pair of items is the same for any number of users: the message
    says so, as the reason it offers no ``--users``."""
    with pytest.raises(CalibrationDataError) as error:
        folds_of(2000, 8000).check_memory(int(1.3 * GIB))
    assert str(error.value) == (
        "the choice fit holds a dense table of every (user, item) pair: 2,000 users x 8,000 items need about 1.4 GiB "
        "of memory (the table of every pair of items alone takes 1.4 GiB, whatever the number of users), and 1.3 GiB "
        "is available; keep the log's most chosen items only")
    with pytest.raises(CalibrationDataError, match=r"whatever the number of users\), and 1\.3 GiB is available"):
        folds_of(1, 8000).check_memory(int(1.3 * GIB))
