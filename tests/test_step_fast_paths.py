"""The env step's fast paths give the reference's results exactly: the C bookkeeping's
candidates and its slate check at every catalog and candidate count, the episodes it starts
in its step's pass, the population's draw from its catalog's current popularity, and the
phrasebook's sentences."""

import numpy as np
import pytest
import torch

from recoworld import Catalog, rng
from recoworld.catalog import lookup
from recoworld.envs import SlateVectorEnv
from recoworld.simulators import StatisticalUsers
from recoworld.simulators.phrasing import Phrasebook
from recoworld.simulators.population import SyntheticPopulation


# (catalog items, candidates, slate size): candidate counts odd and even (the C kernel writes
# the ids several at a time), a catalog as small as the candidates, and more candidates than
# the 64 its slate check holds in one word.
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
        assert isinstance(text, np.ndarray) and text.dtype == object  # the form the env's info hands out
        assert text.tolist() == [None, phrasebook.sentence(spoken[0]), None, phrasebook.sentence(spoken[1]),
                        phrasebook.sentence(spoken[0])]
    assert phrasebook.render(torch.full((3,), -1, dtype=torch.int32)).tolist() == [None, None, None]


def test_the_c_bookkeeping_starts_episodes_in_its_step_pass_as_the_torch_start_then_step():
    catalog = Catalog.synthetic(60, seed=4)
    # Users who hold idle slots, so that users who churned can sit the step out.
    envs = [SlateVectorEnv(16, simulator=StatisticalUsers(catalog, kernel="c"), slate_size=3, num_candidates=8,
                           kernel=kernel) for kernel in ("torch", "c")]
    actions = np.tile(np.arange(3), (16, 1))
    for env in envs:
        env.reset(seed=2)
        for _ in range(4):  # some history, instructions and sessions to clear
            env.step(actions)
    # Held and stepped slots start alike: 5 is held and starts, 6 is held only, 9 starts and steps.
    idle = torch.zeros(16, dtype=torch.bool)
    idle[[5, 6]] = True
    starts = (torch.tensor([5, 9, 12]), torch.tensor([-7, 2**62, 11]))
    worlds = [env.world for env in envs]
    slates = [world.slates_from_actions(actions) for world in worlds]
    gone = torch.from_numpy(envs[0]._done)
    responses = [world.simulator.respond_valid(slate, idle | gone) for world, slate in zip(worlds, slates)]
    stepped = [world.bookkeeping.step(world.state, slate, response, idle, starts)
               for world, slate, response in zip(worlds, slates, responses)]
    torch_state, c_state = (world.state for world in worlds)
    for name in ("key", "step_count", "history_items", "history_feedback", "instruction_age", "session_index",
                 "session_step", "candidate_draw"):
        assert torch.equal(getattr(torch_state, name), getattr(c_state, name)), name
    for name in ("active", "more", "less", "novelty"):
        assert torch.equal(getattr(torch_state.instruction, name), getattr(c_state.instruction, name)), name
    assert torch.equal(c_state.key[[5, 9, 12]], starts[1]) and (c_state.history_items[5] == -1).all()
    assert np.array_equal(stepped[1][0]["candidate_ids"], worlds[0].candidates.numpy())
