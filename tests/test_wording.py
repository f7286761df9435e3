"""How messages count and list things (recoworld.wording), shared by every module that words one."""

import numpy as np
import pytest

from recoworld.catalog import _nonzero_rows
from recoworld.wording import listing, plural


@pytest.mark.parametrize(("words", "expected"), [(["a"], "a"), (("a", "b"), "a and b"), (iter(["a", "b", "c"]), "a, b and c")])
def test_listing_reads_as_a_sentence(words, expected):
    assert listing(words) == expected


def test_listing_refuses_nothing_to_list():
    with pytest.raises(ValueError, match=r"^listing\(\) needs at least one word$"):
        listing([])


def test_plural_agrees_with_its_count():
    assert [plural(n, "row") for n in (0, 1, 2)] == ["0 rows", "1 row", "2 rows"]
    assert plural(2, "candidate index", "candidate indices") == "2 candidate indices"
    assert plural(12000, "round", spec=",") == "12,000 rounds"


def test_catalog_counts_its_zero_rows_in_number():
    with pytest.raises(ValueError, match=r"is all zeros \(2 rows in all\)"):
        _nonzero_rows(np.zeros((2, 3)), "the table")
