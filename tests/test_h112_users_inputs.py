"""StatisticalUsers.reset and the privileged click probabilities: a bad batch size, a seed
beyond int64 or an item outside the catalog is named, not met as torch's error."""

import re

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.simulators import StatisticalUsers


@pytest.fixture
def users():
    return StatisticalUsers(Catalog.synthetic(5, n_genres=2, seed=0), kernel="torch")


@pytest.mark.parametrize("n_users, message", [
    (2.0, "StatisticalUsers.reset.n_users=2.0: must be an integer >= 1"),
    (True, "StatisticalUsers.reset.n_users=True: must be an integer >= 1"),
    (0, "StatisticalUsers.reset.n_users=0: must be an integer >= 1"),
])
def test_reset_names_a_bad_batch_size(users, n_users, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        users.reset(n_users, seed=0)


@pytest.mark.parametrize("n_users, seed, message", [
    (2, 2**64, f"seed={2**64} is too large: seeds are integers in [0, 2**63)"),
    (1, 2**63, f"seed={2**63} is too large: seeds are integers in [0, 2**63)"),
    (2, 2**63 - 1, f"seed={2**63 - 1} is too large: the j-th of the 2 users started gets the seed {2**63 - 1} + j, "
                   f"so it must be at most 2**63 - 2 ({2**63 - 2})"),
    (2, [1, 2**63], f"seed[1]={2**63} is too large: seeds are integers in [0, 2**63)"),
    (2, [2**64, 1], f"seed[0]={2**64} is too large: seeds are integers in [0, 2**63)"),
    (2, np.array([1, 2**63], dtype=np.uint64), f"seed[1]={2**63} is too large: seeds are integers in [0, 2**63)"),
])
def test_reset_names_a_seed_beyond_int64(users, n_users, seed, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        users.reset(n_users, seed=seed)


def test_the_largest_seeds_still_start_users(users):
    users.reset(1, seed=2**63 - 1)
    users.reset(2, seed=2**63 - 2)
    users.reset(2, seed=[2**63 - 1, 0])
    users.reset(2, seed=np.array([2**63 - 1, 0], dtype=np.uint64))


@pytest.mark.parametrize("items, message", [
    (torch.tensor([[0, 9], [1, 2]]), "items[0][1] is item 9, but the catalog has 5 items (valid ids 0..4)"),
    ([[0, 1], [-1, 2]], "items[1][0] is item -1, but the catalog has 5 items (valid ids 0..4)"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), "items has dtype torch.float32; pass integer item ids (e.g. int64)"),
    (torch.tensor([[0, 1]]), "items has shape (1, 2); expected [2, C]: a row of item ids for each user slot"),
])
def test_click_probabilities_name_a_bad_item_as_expected_clicks_does(users, items, message):
    users.reset(2, seed=0)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        users.click_probabilities(items)


def test_utility_names_a_slot_outside_the_batch(users):
    users.reset(2, seed=0)
    with pytest.raises(ValueError, match=re.escape("users[0] is slot 2, but there are 2 user slots (valid ids 0..1)")):
        users.utility(torch.tensor([[0, 1]]), users=torch.tensor([2]))
    one = users.utility(torch.tensor([[0, 1]]), users=torch.tensor([1]))
    assert torch.equal(one, users.utility(torch.tensor([[3, 4], [0, 1]]))[1:])


def test_click_probabilities_before_reset_ask_for_it(users):
    with pytest.raises(RuntimeError, match=re.escape("call reset(n_users, seed) before click_probabilities()")):
        users.click_probabilities(torch.tensor([[0, 1]]))
