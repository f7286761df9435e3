"""Invariants, determinism and dynamics of the batched statistical users."""

import pytest
import torch

import recoworld
from recoworld import Catalog, rng
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.checker import SimulatorCheckError
from recoworld.simulators.base import UserSimulator
from recoworld.simulators.instructions import render_instruction


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(300, n_genres=8, seed=3)


def random_slates(n_users, k, n_items, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n_items, generator=gen)[:k] for _ in range(n_users)])


def run(sim, steps, n_users=64, k=6, seed=0):
    sim.reset(n_users, seed=seed)
    responses = []
    for t in range(steps):
        responses.append(sim.respond(random_slates(n_users, k, sim.catalog.n_items, t)))
        gone = responses[-1].churned.nonzero().flatten()
        if len(gone):
            sim.reset(n_users, seed=(1000 * (t + 1) + gone).tolist(), users=gone)
    return responses


def test_response_invariants_hold_over_many_steps(catalog):
    sim = StatisticalUsers(catalog)
    for r in run(sim, 40):
        assert ((r.watch_fraction >= 0) & (r.watch_fraction <= 1)).all()
        assert ((r.satisfaction >= 0) & (r.satisfaction <= 1)).all()
        assert ((r.leave_hazard > 0) & (r.leave_hazard < 1)).all()
        assert not (r.clicked & ~r.examined).any(), "a click on an unexamined position"
        assert (r.watch_fraction[~r.examined] == 0).all() and (r.rating[~r.examined] == 0).all()
        assert not r.liked[~r.examined].any()
        assert ((r.rating[r.clicked] >= 1) & (r.rating[r.clicked] <= 5)).all()
        assert r.examined[:, 0].all(), "the first position is always examined"
        # cascade: examination is a prefix of the slate
        assert (r.examined[:, 1:] <= r.examined[:, :-1]).all()
        assert torch.equal(r.churned, r.left_session & ~r.returned)
        assert (r.return_gap[~r.left_session] == 0).all()
        assert torch.isinf(r.return_gap[r.churned]).all()
        assert (r.return_gap[r.returned] > 0).all()
        assert ((sim.satiation >= 0) & (sim.satiation <= 1)).all()
        assert (r.compliance[~r.instruction_in_force] == 0).all()
        spoke = r.instruction.active
        assert [t is not None for t in r.instruction_text] == spoke.tolist()
        for b in spoke.nonzero().flatten().tolist():  # the sentence says the structured instruction
            more, less = ([catalog.genre_names[g] for g in part[b].nonzero().flatten().tolist()]
                          for part in (r.instruction.more, r.instruction.less))
            phrasings = {render_instruction(more, less, int(r.instruction.novelty[b]), v) for v in range(3)}
            assert r.instruction_text[b] in phrasings
        assert not (r.left_session & spoke).any(), "a user who voices an instruction stays for the next slate"


def test_same_seed_same_trajectory_and_other_seed_differs(catalog):
    a = run(StatisticalUsers(catalog), 15, seed=7)
    b = run(StatisticalUsers(catalog), 15, seed=7)
    c = run(StatisticalUsers(catalog), 15, seed=8)
    for ra, rb in zip(a, b):
        for name, value in ra.tensor_fields().items():
            assert torch.equal(value, getattr(rb, name)), name
        assert list(ra.instruction_text) == list(rb.instruction_text)
    assert any(not torch.equal(ra.clicked, rc.clicked) for ra, rc in zip(a, c))


def test_a_user_behaves_the_same_alone_or_in_a_batch(catalog):
    batch, alone = StatisticalUsers(catalog), StatisticalUsers(catalog)
    batch.reset(16, seed=100)          # user j has seed 100 + j
    alone.reset(1, seed=[105])
    for t in range(20):
        slates = random_slates(16, 5, catalog.n_items, t)
        rb, ra = batch.respond(slates), alone.respond(slates[5:6])
        assert torch.equal(rb.clicked[5:6], ra.clicked)
        assert torch.equal(rb.left_session[5:6], ra.left_session)
        assert torch.allclose(rb.watch_fraction[5:6], ra.watch_fraction, atol=1e-5)
        if ra.churned.any() or rb.churned.any():
            break


def test_partial_reset_leaves_other_users_untouched(catalog):
    sim = StatisticalUsers(catalog)
    sim.reset(4, seed=0)
    sim.respond(random_slates(4, 5, catalog.n_items, 0))
    before = sim.satiation.clone()
    sim.reset(4, seed=[77], users=[2])
    assert torch.equal(sim.satiation[[0, 1, 3]], before[[0, 1, 3]])
    assert (sim.satiation[2] == 0).all() and sim.session_step[2] == 0


def test_satiation_builds_with_repetition_and_lowers_appeal(catalog):
    sim = StatisticalUsers(catalog, StatisticalUserConfig(leave_base=-20.0, return_base=20.0))
    genre = 0
    same = catalog.genres[:, genre].nonzero().flatten()[:6]
    sim.reset(32, seed=1)
    p_first = sim.click_probabilities(same.repeat(32, 1)).mean()
    for _ in range(8):
        sim.respond(same.repeat(32, 1))
    assert (sim.satiation[:, genre] > 0.5).all()
    assert sim.satiation[:, genre].mean() > sim.satiation[:, 1:].mean() + 0.3
    assert sim.click_probabilities(same.repeat(32, 1)).mean() < p_first


def test_good_slates_keep_users_longer_than_bad_ones(catalog):
    sim = StatisticalUsers(catalog)
    def session_ends(pick_best):
        sim.reset(256, seed=5)
        ends = 0
        for t in range(15):
            candidates = random_slates(256, 40, catalog.n_items, t)
            p = sim.click_probabilities(candidates)
            order = p.argsort(1, descending=pick_best)[:, :5]
            r = sim.respond(candidates.gather(1, order))
            ends += int(r.left_session.sum())
            gone = r.churned.nonzero().flatten()
            if len(gone):
                sim.reset(256, seed=(9000 + 256 * t + gone).tolist(), users=gone)
        return ends
    # Bad slates draw fewer clicks: steps without one have quality 0, and the mindset sinks.
    assert session_ends(True) < 0.8 * session_ends(False)


def test_following_an_instruction_raises_satisfaction(catalog):
    config = StatisticalUserConfig(instruction_threshold=0.0, voice_probability=1.0)
    def satisfaction_after(comply):
        sim = StatisticalUsers(catalog, config)
        sim.reset(128, seed=11)
        r = sim.respond(random_slates(128, 5, catalog.n_items, 0))
        assert r.instruction.active.all()
        more = r.instruction.more.float().argmax(1)
        in_more = catalog.genres[:, more].T  # [B, N]
        not_less = ~(catalog.genres.float() @ r.instruction.less.float().T).bool().T
        good = in_more & not_less if comply else ~in_more
        slates = torch.stack([row.nonzero().flatten()[:5] for row in good])
        r2 = sim.respond(slates)
        assert r2.instruction_in_force.all()
        return r2.compliance.mean(), r2.satisfaction.mean()
    comply_c, comply_s = satisfaction_after(True)
    ignore_c, ignore_s = satisfaction_after(False)
    assert comply_c > 0.6 > ignore_c
    assert comply_s > ignore_s


def test_expected_clicks_matches_monte_carlo(catalog):
    """4000 copies of one user's state, each with its own random stream, click on average
    as many times as the closed form of the cascade says."""
    slates = random_slates(1, 6, catalog.n_items, 0).repeat(4000, 1)
    probe = StatisticalUsers(catalog)
    probe.reset(1, seed=[42])
    exact = probe.expected_clicks(slates[:1])[0]
    sim = StatisticalUsers(catalog)
    sim.reset(4000, seed=0)
    for name in ("interest", "familiar", "patience", "novelty_seeking", "popularity_bias", "satiation", "satisfaction"):
        getattr(sim, name)[:] = getattr(probe, name)[0]
    clicks = sim.respond(slates).clicked.float().sum(1).mean()
    assert abs(float(clicks) - float(exact)) < 0.05


def test_invalid_slates_are_rejected_with_the_bad_entry(catalog):
    sim = StatisticalUsers(catalog)
    sim.reset(2, seed=0)
    with pytest.raises(ValueError, match=r"slate\[1\]\[2\] is item 300, but the catalog has 300 items \(valid ids 0..299\)"):
        sim.respond(torch.tensor([[0, 1, 2], [3, 4, 300]]))
    with pytest.raises(ValueError, match=r"slate\[0\] repeats item 5 at positions \[0, 2\]"):
        sim.respond(torch.tensor([[5, 1, 5], [3, 4, 6]]))
    with pytest.raises(ValueError, match=r"slate has shape \(3, 3\); expected \[2, K\]"):
        sim.respond(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(RuntimeError, match="call reset"):
        StatisticalUsers(catalog).respond(torch.tensor([[0]]))


def test_statistical_users_pass_the_checker(catalog):
    recoworld.check_simulator(StatisticalUsers(catalog))


def test_checker_explains_what_a_plugin_gets_wrong(catalog):
    class Forgetful(UserSimulator):
        """Clicks on positions it never examined."""

        def __init__(self):
            self.catalog = catalog
            self.inner = StatisticalUsers(catalog)

        def reset(self, n_users, seed=None, users=None):
            self.inner.reset(n_users, seed=seed, users=users)

        def respond(self, slates):
            r = self.inner.respond(slates)
            r.clicked = torch.ones_like(r.clicked)
            return r

    with pytest.raises(SimulatorCheckError) as err:
        recoworld.check_simulator(Forgetful())
    assert "Response.clicked is non-zero on positions that were not examined at step 0" in str(err.value)


def test_distinct_seeds_give_distinct_user_keys():
    # 64-bit keys, a bijection of the seed: no two of two million users are twins (with the
    # 32-bit keys of before, about 465 pairs were).
    seeds = torch.cat([torch.arange(2_000_000), torch.arange(1000) + 2**62, 2**63 - 1 - torch.arange(1000)])
    keys = rng.user_keys(seeds)
    assert keys.dtype == torch.int64 and len(torch.unique(keys)) == len(seeds)
    # Nor do their first draws coincide: traits come from a 64-bit base.
    first = rng.bits(keys[:200_000], torch.zeros(200_000, dtype=torch.int32), 1, 2)
    assert len(torch.unique(first[:, 0] << 32 | first[:, 1])) == 200_000
    episodes = rng.derive(torch.arange(1000).repeat_interleave(1000), torch.arange(1000).repeat(1000))
    assert len(torch.unique(episodes)) == len(episodes)
