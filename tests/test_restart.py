"""Restarting some users of a batch: the slots and seeds are checked, and the rest stay as they were."""

import pytest
import torch

from recoworld import Catalog, rng
from recoworld.simulators import StatisticalUsers

CATALOG = Catalog.synthetic(40, seed=2)


@pytest.mark.parametrize("kernel", ["torch", "c"])
def test_a_restart_names_the_slot_out_of_range_and_changes_nothing(kernel):
    users = StatisticalUsers(CATALOG, kernel=kernel)
    users.reset(5, seed=0)
    before = users.interest.clone()
    for slots, bad in (([1, -1], -1), ([7, 2], 7)):
        with pytest.raises(ValueError, match=rf"users holds slot {bad}, but there are 5 slots"):
            users.reset(5, seed=1, users=slots)
    assert torch.equal(users.interest, before)
    users.reset(5, seed=1, users=[])  # nothing to restart
    users.reset(5, seed=[9], users=[3])
    assert torch.equal(users.interest[[0, 1, 2, 4]], before[[0, 1, 2, 4]])
    assert not torch.equal(users.interest[3], before[3])


@pytest.mark.parametrize("native", [True, False], ids=["rng.c", "torch ops"])
def test_a_negative_seed_is_named_by_both_hash_paths(native, monkeypatch):
    if native:
        rng.enable_native()
    else:
        monkeypatch.setattr(rng, "_NATIVE", None)
        monkeypatch.setattr(rng, "_NATIVE_TRIED", True)
    for hash_seeds in (rng.user_keys, lambda seeds: rng.derive(seeds, 5)):
        with pytest.raises(ValueError, match=r"^seed -4 is negative; seeds must be integers >= 0$"):
            hash_seeds(torch.tensor([[3, 8], [-4, -9]]))
        assert hash_seeds(torch.tensor([0, 2**62])).shape == (2,)
