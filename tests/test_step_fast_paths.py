"""The env step's fast paths give the reference's results exactly: the C bookkeeping's
candidates and its slate check at every catalog and candidate count, the population's
draw from its catalog's current popularity, and the phrasebook's sentences."""

import numpy as np
import pytest
import torch

from recoworld import Catalog, rng
from recoworld.catalog import lookup
from recoworld.envs import SlateVectorEnv
from recoworld.simulators import StatisticalUsers
from recoworld.simulators.phrasing import Phrasebook
from recoworld.simulators.population import SyntheticPopulation


# (catalog items, candidates, slate size): candidates below, at and between multiples of the
# four lanes the C kernel writes at once, a catalog as small as the candidates, and more
# candidates than the 64 its slate check holds in one word.
SHAPES = [(3, 3, 2), (6, 4, 2), (97, 7, 3), (300, 50, 10), (40, 40, 5), (500, 64, 6), (500, 70, 5)]


@pytest.mark.parametrize("n_items, num_candidates, slate_size", SHAPES,
                         ids=[f"N{n}-C{c}-K{k}" for n, c, k in SHAPES])
def test_c_bookkeeping_writes_the_torch_candidates_and_features_at_every_shape(n_items, num_candidates,
                                                                               slate_size):
    catalog = Catalog.synthetic(n_items, seed=5)
    # Both envs' users step with the torch kernel, so any difference is the env's own.
    envs = [SlateVectorEnv(24, simulator=StatisticalUsers(catalog, kernel="torch"), slate_size=slate_size,
                           num_candidates=num_candidates, max_steps=6, kernel=kernel) for kernel in ("torch", "c")]
    observations = [env.reset(seed=9)[0] for env in envs]
    actions_rng = np.random.default_rng(1)
    for _ in range(10):
        for key in observations[0]:
            assert np.array_equal(observations[0][key], observations[1][key]), key
        actions = np.stack([actions_rng.permutation(num_candidates)[:slate_size] for _ in range(24)])
        (observations[0], reward_t, *_), (observations[1], reward_c, *_) = (env.step(actions) for env in envs)
        assert np.array_equal(reward_t, reward_c)
    ids = observations[1]["candidate_ids"]
    assert all(len(set(row)) == num_candidates for row in ids.tolist()), "candidates are distinct items"
    assert np.array_equal(observations[1]["candidate_features"], catalog.features.numpy()[ids])


@pytest.mark.parametrize("num_candidates", [50, 64, 70])
def test_the_c_slate_check_names_a_repeat_or_an_index_out_of_range_at_any_candidate_count(num_candidates):
    env = SlateVectorEnv(4, catalog=Catalog.synthetic(200, seed=0), num_candidates=num_candidates, kernel="c")
    env.reset(seed=0)
    actions = np.tile(np.arange(num_candidates - 10, num_candidates), (4, 1))  # the highest indices are valid
    env.step(actions)
    actions[2, 6] = actions[2, 1]
    with pytest.raises(ValueError, match=rf"action\[2\] repeats candidate index {num_candidates - 9}"):
        env.step(actions)
    actions[2, 6] = num_candidates
    with pytest.raises(ValueError, match=rf"action\[2\]\[6\] is candidate index {num_candidates}, but there are "
                                         rf"{num_candidates} candidates"):
        env.step(actions)
    actions[2, 6] = -1
    with pytest.raises(ValueError, match=r"action\[2\]\[6\]"):
        env.step(actions)


def _traits_by_definition(population: SyntheticPopulation, keys: torch.Tensor, catalog: Catalog) -> torch.Tensor:
    """The interest of the population's docstring, from a popularity summed afresh."""
    D = catalog.feature_dim
    u = rng.uniform(keys, torch.zeros_like(keys), 1, 2 + D + 4)
    cumulative = torch.cumsum(catalog.popularity.double(), 0)
    anchors = torch.searchsorted(cumulative, u[:, :2].double()).clamp_max(catalog.n_items - 1)
    interest = lookup(catalog.features, anchors).sum(1) + population.interest_noise * rng.to_normal(u[:, 2:2 + D])
    return torch.nn.functional.normalize(interest, dim=1)


def test_the_population_follows_its_catalogs_popularity_even_when_it_changes_in_place():
    catalog, population = Catalog.synthetic(120, seed=2), SyntheticPopulation()
    keys = rng.user_keys(torch.arange(500))
    assert torch.equal(population.sample(keys, catalog).interest, _traits_by_definition(population, keys, catalog))
    before = population.sample(keys, catalog).interest
    catalog.popularity.copy_(catalog.popularity.flip(0))  # the same tensor, new values
    after = population.sample(keys, catalog).interest
    assert not torch.equal(before, after)
    assert torch.equal(after, _traits_by_definition(population, keys, catalog))
    other = Catalog.synthetic(120, seed=3)  # another catalog's popularity is its own
    assert torch.equal(population.sample(keys, other).interest, _traits_by_definition(population, keys, other))


def test_the_phrasebook_gives_each_speaker_its_sentence_and_the_silent_none():
    phrasebook = Phrasebook(Catalog.synthetic(50, seed=0))
    G = len(phrasebook.genre_names)
    spoken = [((2 * (G + 1)) + 0) * 9 + 1 * 3 + 0, ((0 * (G + 1)) + 3) * 9 + 2 * 3 + 2]  # more genre 1; less genre 2
    codes = torch.tensor([-1, spoken[0], -1, spoken[1], spoken[0]], dtype=torch.int32)
    for _ in range(2):  # rendering afresh, then looking up what was rendered
        text = phrasebook.render(codes)
        assert isinstance(text, list)
        assert text == [None, phrasebook.sentence(spoken[0]), None, phrasebook.sentence(spoken[1]),
                        phrasebook.sentence(spoken[0])]
    assert phrasebook.render(torch.full((3,), -1, dtype=torch.int32)) == [None, None, None]
