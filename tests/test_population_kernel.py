"""The C kernel's draw of the synthetic population against SyntheticPopulation.sample, and
the env's restarts that use it."""

import copy
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from recoworld import Catalog, rng
from recoworld.envs import SlateVectorEnv
from recoworld.kernels import users
from recoworld.simulators import StatisticalUsers
from recoworld.simulators.population import SyntheticPopulation

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                reason="no C compiler to build the fused kernel")


def _one_hot_catalog(n_items: int = 16) -> Catalog:
    """Items whose features are the unit axes, so that a user's interest without noise
    names its two anchor items; popularity with ties and items never drawn (zero)."""
    popularity = torch.tensor([0.0, 0.2, 0.0, 0.0, 0.05, 0.05, 0.05, 0.0, 0.3, 0.1, 0.0, 0.05, 0.05, 0.05, 0.05, 0.0])
    return Catalog(features=torch.eye(n_items), genres=torch.ones(n_items, 1, dtype=torch.bool), genre_names=("all",),
                   titles=[f"item {i}" for i in range(n_items)], popularity=popularity / popularity.sum(),
                   quality=torch.zeros(n_items))


def _anchors(interest: torch.Tensor) -> list[tuple[int, ...]]:
    """The anchor items of noiseless interests over one-hot features (one item twice or two)."""
    return [tuple(row.nonzero().flatten().tolist()) for row in interest]


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 7])
def test_the_kernel_draws_the_anchor_items_sample_draws(seed):
    catalog, population = _one_hot_catalog(), SyntheticPopulation(interest_noise=0.0)
    keys = rng.user_keys(torch.arange(2000) + seed)
    want = population.sample(keys, catalog).interest
    have = users.draw_synthetic(population.kernel_draw(catalog), keys)["interest"]
    assert _anchors(have) == _anchors(want)
    drawn = {item for pair in _anchors(want) for item in pair}
    assert drawn == set(catalog.popularity.nonzero().flatten().tolist()), "every popular item, no unpopular one"
    torch.testing.assert_close(have, want, atol=1e-6, rtol=0)


POPULATIONS = {"defaults": SyntheticPopulation(),
               "custom": SyntheticPopulation(interest_noise=1.5, patience_mean=0.35, patience_spread=1.2,
                                             novelty_spread=0.9, activity_spread=0.8, popularity_bias_mean=-0.2,
                                             popularity_bias_spread=0.05)}


@pytest.mark.parametrize("population", POPULATIONS.values(), ids=POPULATIONS.keys())
@pytest.mark.parametrize("n_items, seed", [(300, 3), (1682, 0), (40, 11)])
def test_the_kernel_draws_the_users_sample_draws(population, n_items, seed):
    catalog = Catalog.synthetic(n_items, seed=seed)
    keys = rng.user_keys(torch.arange(3000) * 7919 + seed)
    want = population.sample(keys, catalog)
    have = users.draw_synthetic(population.kernel_draw(catalog), keys)
    for name, value in have.items():  # to rounding: relative for activity, an exponential
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, getattr(want, name), atol=1e-5, rtol=1e-5, msg=name)
    # One user alone draws as in a batch.
    alone = users.draw_synthetic(population.kernel_draw(catalog), keys[7:8])
    assert all(torch.equal(alone[name][0], have[name][7]) for name in have)


class _Shifted(SyntheticPopulation):
    """A subclass that changes the draw: the kernel must not draw it by the synthetic law."""

    def sample(self, keys, catalog):
        traits = super().sample(keys, catalog)
        traits.patience = traits.patience * 0.5
        return traits


class _Bypassed(SyntheticPopulation):
    """The synthetic draw, taken from sample (torch) instead of the kernel's own."""

    def kernel_draw(self, catalog):
        return None


def test_a_population_that_changes_sample_is_drawn_by_its_sample():
    catalog = Catalog.synthetic(300, seed=3)
    assert _Shifted().kernel_draw(catalog) is None and SyntheticPopulation().kernel_draw(catalog) is not None
    shifted = StatisticalUsers(catalog, population=_Shifted(), kernel="c")
    plain = StatisticalUsers(catalog, kernel="c")
    for simulator in (shifted, plain):
        simulator.reset(50, seed=9)
    torch.testing.assert_close(shifted.patience, plain.patience * 0.5, atol=1e-6, rtol=0)
    assert torch.equal(shifted.source_user, torch.full((50,), -1)) and torch.equal(plain.source_user, shifted.source_user)


def test_the_kernel_draw_is_kept_while_catalog_and_parameters_stay_and_copies_view_their_own():
    catalog, population = Catalog.synthetic(60, seed=1), SyntheticPopulation()
    draw = population.kernel_draw(catalog)
    assert population.kernel_draw(catalog) is draw
    assert population.kernel_draw(Catalog.synthetic(60, seed=1)) is not draw  # another catalog
    population.interest_noise = 0.9
    changed = population.kernel_draw(catalog)
    assert changed is not draw and changed.law.interest_noise == pytest.approx(0.9)
    keys = rng.user_keys(torch.arange(100))
    for twin in (copy.deepcopy(changed), pickle.loads(pickle.dumps(changed))):
        # The copy's view points at the copy's tensors, never at the original's.
        assert (twin.law.cumulative, twin.law.features) == (twin.cumulative.data_ptr(), twin.features.data_ptr())
        assert all(torch.equal(a, b) for a, b in zip(users.draw_synthetic(twin, keys).values(),
                                                     users.draw_synthetic(changed, keys).values()))


def _rollout(population, kernel: str, steps: int = 40):
    env = SlateVectorEnv(64, catalog=Catalog.synthetic(300, seed=3), population=population, max_steps=12,
                         candidate_features=False, kernel=kernel)
    observations, _ = env.reset(seed=21)
    actions = np.random.default_rng(0)
    trajectory, restarts = [observations], 0
    for _ in range(steps):
        observations, reward, terminated, truncated, info = env.step(
            np.stack([actions.permutation(50)[:10] for _ in range(64)]))
        trajectory.append(observations | {"reward": reward, "terminated": terminated, "truncated": truncated,
                                          "clicked": info["clicked"]})
        restarts += int((terminated | truncated).sum())
    assert restarts >= 64, "the run must restart users"
    return trajectory


def _assert_same(have: list[dict], want: list[dict], atol: float = 0.0) -> None:
    for step, (a, b) in enumerate(zip(have, want)):
        for key in b:
            np.testing.assert_allclose(a[key], b[key], atol=atol, rtol=0, err_msg=f"step {step}: {key}")


def test_env_restarts_drawn_by_the_kernel_live_the_episodes_of_the_torch_draw():
    fast = _rollout(SyntheticPopulation(), "c")
    _assert_same(fast, _rollout(SyntheticPopulation(), "c"))  # same seed, same trajectories
    # The traits agree to rounding, so do watch fractions; ids, clicks and rewards are equal.
    _assert_same(fast, _rollout(_Bypassed(), "c"), atol=1e-5)
