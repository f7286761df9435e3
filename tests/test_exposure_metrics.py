"""Exposure fairness and serendipity of the runner's metrics, on hand-made logs."""

import math

import numpy as np
import pytest

from recoworld.metrics import (exposure_metrics, exposure_shares, gini, item_exposure, popularity_groups,
                               serendipity)

SLATES = np.array([[0, 1], [0, 2]])


def test_exposure_discounts_positions_like_dcg():
    np.testing.assert_allclose(item_exposure(SLATES, 4), [2.0, 1 / np.log2(3), 1 / np.log2(3), 0.0])


def test_gini_is_zero_when_equal_and_one_minus_one_over_n_when_one_holds_all():
    assert gini(np.ones(5)) == 0.0
    assert gini(np.r_[np.zeros(4), 3.0]) == pytest.approx(1 - 1 / 5)
    assert math.isnan(gini(np.zeros(3)))


def test_popularity_groups_split_20_30_50():
    groups = popularity_groups(np.arange(10.0)[::-1])
    np.testing.assert_array_equal(groups, [0, 0, 1, 1, 1, 2, 2, 2, 2, 2])


def test_exposure_shares_per_group_and_per_multi_valued_attribute():
    d = 1 / np.log2(3)
    np.testing.assert_allclose(exposure_shares(SLATES, np.array([0, 1, 1, 2])), [2 / (2 + 2 * d), 2 * d / (2 + 2 * d), 0])
    genres = np.array([[1, 1], [1, 0], [0, 1], [1, 0]], dtype=bool)   # item 0 in both genres: shared
    np.testing.assert_allclose(exposure_shares(SLATES, genres), [(1 + d) / (2 + 2 * d), (1 + d) / (2 + 2 * d)])


def test_serendipity_counts_clicked_items_outside_the_popular_head():
    popularity = np.array([0.7, 0.1, 0.1, 0.1])            # head: item 0 alone (20% of 4 -> 1 item)
    clicked = np.array([[True, True], [False, False]])
    assert serendipity(SLATES, clicked, popularity) == 0.25   # item 1 clicked, of 4 shown
    metrics = exposure_metrics(SLATES, clicked, popularity)
    assert metrics["head_exposure"] + metrics["mid_exposure"] + metrics["tail_exposure"] == pytest.approx(1)
