"""The user equations (recoworld.simulators.equations): their invariants, and every kind of
user deciding by them alike.

The LLM users run against a ScriptedChatModel (no network, no model): the script plays a
user whose stated satisfaction and leaving are chosen by the test.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest
import torch

from recoworld import rng
from recoworld.catalog import Catalog
from recoworld.llm import ScriptedChatModel
from recoworld.simulators import equations
from recoworld.simulators.llm_user import S_RETURN, LLMUsers
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.user_state import S_GAP, sign_up_draw, was_watched
from recoworld.types import Instruction

CONFIG = StatisticalUserConfig()


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(120, n_genres=5, seed=0)


def statistical_return_decision(users: StatisticalUsers, leaves: torch.Tensor, u_return: torch.Tensor):
    """The statistical users' own return decision on their current state: their torch
    backend's, which draws the gap from the users' gap stream."""
    return users.backend._leave(users.state, leaves, u_return)


def scripted_user(stars_by_step: dict[int, int], leave_at: int):
    """A model that skips everything, states ``stars_by_step[step]`` (steps from 1, as the
    prompt numbers them) and leaves at step ``leave_at``."""
    def answer(call):
        step = int(re.search(r"step (\d+)\.", call.messages[1]["content"]).group(1))
        ids = call.json_schema["properties"]["reactions"]["required"]
        return json.dumps({"reactions": {i: {"action": "skip", "reason": "meh"} for i in ids}, "mindset": "So-so.",
                           "satisfaction": stars_by_step[step], "leave": step == leave_at, "instruction": None})
    return answer


# ------------------------------------------------------------- one rule, every user

def test_llm_and_statistical_users_decide_returns_alike_on_the_same_state(catalog):
    """Same users (seeds), same session memory, activity and session length, same leavers
    and uniform draws: the same users return, after the same gaps."""
    B = 256
    gen = torch.Generator().manual_seed(1)
    memory, activity = torch.rand(B, generator=gen), 0.2 + 3 * torch.rand(B, generator=gen)
    length = torch.randint(1, 40, (B,), generator=gen)
    leaves, u_return = torch.rand(B, generator=gen) < 0.7, torch.rand(B, generator=gen)
    config = {"gap_length_elasticity": 0.3, "return_first_session": -1.0, "gap_first_session": -1.5}

    statistical = StatisticalUsers(catalog, StatisticalUserConfig(**config), kernel="torch")  # its torch _leave
    statistical.reset(B, seed=list(range(100, 100 + B)))
    statistical.session_memory, statistical.activity = memory.clone(), activity.clone()
    statistical.session_step = length.clone()
    statistical.session_index = torch.arange(B) % 3  # a third of them end their first session
    u_gap = rng.uniform(statistical.key, statistical.counter, S_GAP, 1)[:, 0]  # the statistical users' gap draw
    expected_returned, expected_gap = statistical_return_decision(statistical, leaves, u_return)

    llm = LLMUsers(catalog, ScriptedChatModel(scripted_user({1: 3}, leave_at=1)), statistical=config)
    llm.reset(B, seed=list(range(100, 100 + B)))
    llm.session_memory, llm.twin.activity, llm.session_step = memory.clone(), activity.clone(), length.clone()
    llm.session_index = torch.arange(B) % 3
    returned, gap = llm.return_decision(leaves, u_return, u_gap)

    assert torch.equal(returned, expected_returned) and torch.equal(gap, expected_gap)
    assert 0 < int(returned.sum()) < int(leaves.sum())  # both outcomes occur


def test_llm_users_return_on_the_session_memory_not_the_last_satisfaction(catalog):
    """A session stated 5, 1, 3 and then 2 stars (leaving): the return is decided on its
    memory by the peak-end rule (peak 1.0, end 0.25, mean of the four), by the statistical
    users' equation, with the user's own draws."""
    stars = {1: 5, 2: 1, 3: 3, 4: 2}
    B = 64
    sim = LLMUsers(catalog, ScriptedChatModel(scripted_user(stars, leave_at=4)))
    sim.reset(B, seed=0)
    slates = torch.arange(4).repeat(B, 1)
    for _ in range(3):
        assert not sim.respond(slates).left_session.any()
    counter, activity = sim.counter.clone(), sim.twin.activity.clone()
    last = sim.respond(slates)
    w = CONFIG.peak_end_weight
    mean = torch.full((B,), w * (1.0 + 0.25) / 2 + (1 - w) * (1.0 + 0.0 + 0.5 + 0.25) / 4)
    assert sim.session_memory.tolist() == pytest.approx(mean.tolist())
    u = rng.uniform(sim.twin.key, counter, S_RETURN, 2)
    first = torch.zeros(B, dtype=torch.int64)
    returned, gap = equations.return_decision(last.left_session, mean, activity, torch.full((B,), 4), first,
                                              u[:, 0], u[:, 1], sim.twin.config)
    assert last.left_session.all()
    assert torch.equal(last.returned, returned) and torch.allclose(last.return_gap, gap)
    on_last = equations.return_probability(torch.full((B,), 0.25), activity, first, CONFIG)
    assert bool((equations.return_probability(mean, activity, first, CONFIG) > on_last).all())
    assert torch.equal(sim.session_step, torch.where(returned, 0, 4))


# ------------------------------------------------------------------- invariants

def test_satiation_stays_in_the_unit_interval():
    gen = torch.Generator().manual_seed(0)
    satiation = torch.rand(1000, 6, generator=gen)
    for rate, decay in ((0.5, 0.05), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)):
        config = StatisticalUserConfig(satiation_rate=rate, satiation_decay=decay)
        s = satiation
        for _ in range(20):
            s = equations.satiation_build_up(s, 3 * torch.rand(1000, 6, generator=gen), config)
            assert bool(((s >= 0) & (s <= 1)).all())


def test_exposure_wears_a_watched_genre_more_than_a_seen_one():
    weights = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    exposure = equations.genre_exposure(torch.ones(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]),
                                        weights)
    assert exposure[0].tolist() == pytest.approx([1.0, 0.2])


def test_satiation_recovers_towards_zero_with_the_gap():
    satiation = torch.full((5, 3), 0.8)
    gaps = torch.tensor([0.0, 1.0, 3.0, 10.0, 1000.0])
    recovered = equations.satiation_recovery(satiation, gaps, CONFIG)[:, 0]
    assert recovered[0] == pytest.approx(0.8) and recovered[-1] == pytest.approx(0.0, abs=1e-6)
    assert bool((recovered[1:] < recovered[:-1]).all())


def test_leave_hazard_rises_with_boredom_and_length_and_falls_with_mindset_and_patience():
    grid = torch.linspace(0, 1, 11)
    ones = torch.ones(11)
    def hazard(mindset=0.5 * ones, boredom=0.3 * ones, step=3 * ones, patience=0.8 * ones):
        return equations.leave_hazard(mindset, boredom, step, patience, torch.ones(11, dtype=torch.int64), CONFIG)
    assert bool((hazard(boredom=grid).diff() > 0).all())
    assert bool((hazard(step=torch.arange(11.0)).diff() > 0).all())
    assert bool((hazard(mindset=grid).diff() < 0).all())
    assert bool((hazard(patience=grid).diff() < 0).all())
    assert bool(((hazard(boredom=grid) > 0) & (hazard(boredom=grid) < 1)).all())


def test_leave_first_session_shifts_the_first_session_alone():
    mindset, boredom, step, patience = (torch.full((4,), value) for value in (0.5, 0.3, 3.0, 0.8))
    session_index = torch.tensor([0, 1, 0, 5])
    plain = equations.leave_hazard(mindset, boredom, step, patience, session_index, CONFIG)
    onboarding = equations.leave_hazard(mindset, boredom, step, patience, session_index,
                                        replace(CONFIG, leave_first_session=-2.0))
    assert torch.equal(plain[[1, 3]], onboarding[[1, 3]])  # later sessions: unchanged, bit for bit
    assert torch.logit(onboarding[[0, 2]]).tolist() == pytest.approx((torch.logit(plain[[0, 2]]) - 2.0).tolist(), abs=1e-5)
    assert bool((plain[[0, 2]] == plain[1]).all())  # 0 (the default) treats every session alike


def test_first_session_patience_scales_the_patience_term_in_the_first_session_alone():
    mindset, boredom, step = (torch.full((4,), value) for value in (0.5, 0.3, 3.0))
    patience, session_index = torch.tensor([0.2, 0.2, 0.95, 0.95]), torch.tensor([0, 1, 0, 1])
    config = replace(CONFIG, first_session_patience=0.0)
    hazard = equations.leave_hazard(mindset, boredom, step, patience, session_index, config)
    plain = equations.leave_hazard(mindset, boredom, step, patience, session_index, CONFIG)
    assert hazard[0] == hazard[2], "a first session owes nothing to patience at share 0"
    assert torch.equal(hazard[[1, 3]], plain[[1, 3]]), "later sessions keep the whole patience term"
    half = equations.leave_hazard(mindset, boredom, step, patience, session_index,
                                  replace(CONFIG, first_session_patience=0.5))
    expected = torch.logit(plain[0]) + 0.5 * CONFIG.leave_patience * (patience[0] - 0.75)
    assert float(torch.logit(half[0])) == pytest.approx(float(expected), abs=1e-4)


def test_first_session_spread_lowers_a_newcomers_hazard_by_the_positive_part_of_their_sign_up_draw():
    mindset, boredom, step, patience = (torch.full((4,), value) for value in (0.5, 0.3, 3.0, 0.8))
    session_index, sign_up = torch.tensor([0, 1, 0, 5]), torch.tensor([1.5, 1.5, -0.5, -0.5])
    plain = equations.leave_hazard(mindset, boredom, step, patience, session_index, CONFIG)
    spread = equations.leave_hazard(mindset, boredom, step, patience, session_index,
                                    replace(CONFIG, first_session_spread=2.0), sign_up)
    assert torch.equal(plain[[1, 3]], spread[[1, 3]])  # later sessions: unchanged, bit for bit
    assert float(torch.logit(spread[0])) == pytest.approx(float(torch.logit(plain[0])) - 3.0, abs=1e-4)
    assert spread[2] == plain[2], "a draw below 0 keeps the common level"
    assert torch.equal(equations.leave_hazard(mindset, boredom, step, patience, session_index, CONFIG, sign_up), plain)


def test_a_users_sign_up_draw_is_theirs_alone_and_stretches_the_first_session_of_those_drawing_above_zero(catalog):
    """The sign-up draw is a standard normal of the user's key: the same user draws it alike
    in any batch. With a spread, a user whose draw is below 0 lives the same first session,
    and one above it a first session as long or longer, on both kernels alike; later
    sessions keep their law."""
    keys = torch.arange(4000, dtype=torch.int64) * 104729 + 17
    z = sign_up_draw(keys)
    assert torch.equal(sign_up_draw(keys.flip(0)), z.flip(0))
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05
    first, later = {}, {}
    for kernel in ("torch", "c"):
        for spread in (0.0, 2.0):
            config = StatisticalUserConfig(first_session_spread=spread, leave_base=-2.0, voice_probability=0.0,
                                           return_base=20.0, leave_mindset=0.0, leave_boredom=0.0, leave_length=0.0)
            sim = StatisticalUsers(catalog, config, kernel=kernel)
            sim.reset(400, seed=2)
            length, steps, ended = torch.full((400,), 300), torch.zeros(400, dtype=torch.int64), []
            for t in range(300):
                index_before = sim.state.session_index.clone()
                leaves = sim.respond(torch.arange(10).repeat(400, 1)).left_session
                steps += 1
                length = torch.where(leaves & (index_before == 0), t + 1, length)
                ended += steps[leaves & (index_before > 0)].tolist()
                steps[leaves] = 0
            first[kernel, spread], later[kernel, spread] = length, torch.tensor(ended, dtype=torch.float).log()
        drew = sign_up_draw(sim.state.key) > 0
        wide, narrow = first[kernel, 2.0], first[kernel, 0.0]
        assert torch.equal(wide[~drew], narrow[~drew]), kernel
        assert bool((wide[drew] >= narrow[drew]).all()), kernel
        assert float((wide[drew] / narrow[drew]).log().mean()) > 0.7, kernel  # e ** 0.7: twice as long
        assert float(later[kernel, 2.0].std()) == pytest.approx(float(later[kernel, 0.0].std()), rel=0.15), kernel
    assert torch.equal(first["torch", 2.0], first["c", 2.0])


def test_a_user_who_speaks_stays_and_nobody_speaks_over_an_instruction_in_force():
    gen = torch.Generator().manual_seed(2)
    hazard, u_voice, u_leave = (torch.rand(2000, generator=gen) for _ in range(3))
    active = torch.rand(2000, generator=gen) < 0.3
    speaks, leaves = equations.voice_or_leave(hazard, active, u_voice, u_leave, CONFIG)
    assert not (speaks & leaves).any() and not (speaks & active).any()
    assert not (speaks & (hazard <= CONFIG.instruction_threshold)).any()
    assert torch.equal(leaves, ~speaks & (u_leave < hazard))
    assert speaks.any() and leaves.any()


def test_the_session_theme_is_the_genres_of_the_sessions_first_click_and_pulls_towards_them():
    """Empty until a click; then the genres of the first clicked film in slate order, kept
    for the rest of the session whatever is clicked next; its utility term is the weight
    times the genre weights' overlap with it, 0 while empty or at weight 0."""
    genres = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.uint8)
    theme = torch.zeros(3, 3)
    slates = torch.tensor([[0, 1], [2, 1], [1, 0]])
    clicked = torch.tensor([[False, False], [False, True], [True, True]])
    theme = equations.session_theme(theme, slates, clicked, genres)
    assert theme.tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 1]]  # no click; item 1; item 1, first in slate order
    later = equations.session_theme(theme, slates, torch.ones(3, 2, dtype=torch.bool), genres)
    assert later.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]  # only the empty theme is set
    weights = torch.tensor([[[1.0, 0, 0], [0, 0.5, 0.5]]]).expand(3, 2, 3)
    appeal = equations.theme_appeal(weights, later, replace(CONFIG, theme_weight=3.0))
    assert appeal.tolist() == [[3.0, 0.0], [0.0, 3.0], [0.0, 3.0]]
    assert not equations.theme_appeal(weights, later, CONFIG).any()  # the default weight, 0


def test_a_theme_is_set_by_the_first_click_and_a_new_session_starts_without_one(catalog):
    """On both kernels: users who stay keep the genres of their first click as the theme;
    users who leave and come back start their next session without one."""
    from recoworld.simulators.statistical import StatisticalUsers

    slates = torch.arange(10).repeat(32, 1)
    for kernel in ("torch", "c"):
        stay = StatisticalUsers(catalog, StatisticalUserConfig(theme_weight=3.0, leave_base=-20.0), kernel=kernel)
        stay.reset(32, seed=1)
        clicked = stay.respond(slates).clicked
        themed = clicked.any(1)
        first = slates[0][clicked.to(torch.uint8).argmax(1)]
        assert themed.any() and torch.equal(stay.state.theme[themed], catalog.genres[first[themed]].float()), kernel
        assert not stay.state.theme[~themed].any(), kernel
        back = StatisticalUsers(catalog, StatisticalUserConfig(theme_weight=3.0, leave_base=20.0, voice_probability=0.0,
                                                               return_base=20.0), kernel=kernel)
        back.reset(32, seed=1)
        response = back.respond(slates)
        assert response.clicked.any() and response.returned.all() and not back.state.theme.any(), kernel


def test_without_rewatch_a_user_never_clicks_a_film_twice_and_a_new_user_starts_with_none_watched(catalog):
    """rewatch=False: over 30 steps of slates that keep showing the same films, no user clicks
    one twice (the default repeats them once their item satiation fades); the watched bits
    are the films clicked; a restarted slot forgets them. Both kernels alike."""
    slates = [torch.arange(10).repeat(64, 1) + t % 3 for t in range(30)]
    for kernel in ("torch", "c"):
        clicks = {}
        for rewatch in (True, False):
            config = StatisticalUserConfig(rewatch=rewatch, leave_base=-20.0, repeat_penalty=0.0, click_threshold=-2.0)
            sim = StatisticalUsers(catalog, config, kernel=kernel)
            sim.reset(64, seed=3)
            seen = torch.zeros(64, catalog.n_items, dtype=torch.bool)
            repeats = 0
            for slate in slates:
                rows, positions = sim.respond(slate).clicked.nonzero(as_tuple=True)
                items = slate[rows, positions]
                repeats += int(seen[rows, items].sum())
                seen[rows, items] = True
            clicks[rewatch] = repeats
            if not rewatch:
                items = torch.arange(catalog.n_items).repeat(64, 1)
                assert torch.equal(was_watched(sim.state.watched, items), seen), kernel
                sim.reset(64, seed=[9], users=[0])
                assert not sim.state.watched[0].any() and sim.state.watched[1:].any(), kernel
        assert clicks[False] == 0 < clicks[True], kernel


def test_a_share_of_later_visits_ends_after_its_first_step_without_a_word_and_the_others_keep_a_uniform_draw():
    """quick_visit_share 0.4: at the first step of a later session, leave draws below 0.4
    end the visit (no instruction, whatever the hazard); the others' draws are rescaled to
    (u - 0.4) / 0.6, uniform again; first sessions and later steps are untouched; 0, the
    default, changes nothing."""
    n = 10_000
    u = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    config = replace(CONFIG, quick_visit_share=0.4)
    later, first = torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)
    step_one, step_two = torch.ones(n, dtype=torch.int64), torch.full((n,), 2)
    quick, drawn = equations.quick_visit(later, step_one, u, config)
    assert torch.equal(quick, u < 0.4)
    assert torch.allclose(drawn[~quick], (u[~quick] - 0.4) / 0.6)
    assert drawn[~quick].quantile(torch.tensor([0.25, 0.5, 0.75])).tolist() == pytest.approx([0.25, 0.5, 0.75],
                                                                                              abs=1e-3)
    for index, step in ((first, step_one), (later, step_two)):
        none, same = equations.quick_visit(index, step, u, config)
        assert not none.any() and torch.equal(same, u)
    none, same = equations.quick_visit(later, step_one, u, CONFIG)
    assert not none.any() and torch.equal(same, u)
    # Quick visitors leave without a word even where the hazard would have them speak.
    hazard = torch.full((n,), 0.9)
    speaks, leaves = equations.voice_or_leave(hazard, torch.zeros(n, dtype=torch.bool), torch.zeros(n), drawn,
                                              config, quick)
    assert bool(leaves[quick].all()) and not speaks[quick].any()
    assert bool(speaks[~quick].all()) and not leaves[~quick].any()  # voice_probability > 0 = u_voice


def test_return_probability_rises_with_memory_and_activity_and_good_sessions_come_back_sooner():
    memory, later = torch.linspace(0, 1, 11), torch.ones(11, dtype=torch.int64)
    for activity in (0.3, 1.0, 3.0):
        a = torch.full((11,), activity)
        assert bool((equations.return_probability(memory, a, later, CONFIG).diff() > 0).all())
        assert bool((equations.mean_return_gap(memory, a, torch.full((11,), 5), later == 0, CONFIG).diff() < 0).all())
    activity = torch.linspace(0.2, 4, 11)
    assert bool((equations.return_probability(torch.full((11,), 0.5), activity, later, CONFIG).diff() > 0).all())


@pytest.mark.parametrize("shape", [0.6, 1.0, 2.5])
def test_weibull_gaps_keep_their_mean_and_the_shape_sets_the_tail(shape):
    u = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000  # an even grid of uniforms
    gap = equations.return_gap(torch.full_like(u, 3.0), u, StatisticalUserConfig(gap_shape=shape))
    assert float(gap.mean()) == pytest.approx(3.0, rel=2e-3)
    exponential = -3.0 * torch.log(u)
    if shape == 1.0:
        assert torch.equal(gap, exponential)  # the exponential, computed as before
    else:  # a shape below 1: more short gaps and a longer tail; above 1: fewer of both
        heavier = shape < 1
        assert (float(gap.median()) < float(exponential.median())) == heavier
        assert (float(gap.quantile(0.99)) > float(exponential.quantile(0.99))) == heavier


def test_the_smallest_gap_shape_draws_finite_gaps_from_every_uniform_the_users_draw():
    # rng.uniform's extremes, (0.5 and 2**24 - 0.5) / 2**24, in the users' float32
    u = torch.tensor([0.5, 1.0, 2**23, 2**24 - 1.5, 2**24 - 0.5]) / 2**24
    gap = equations.return_gap(torch.full_like(u, 3.0), u, StatisticalUserConfig(gap_shape=0.05))
    assert bool(torch.isfinite(gap).all()) and bool((gap >= 0).all())


def test_return_decision_gives_zero_gap_to_stayers_infinity_to_churners():
    leaves = torch.tensor([False, True, True, True])
    returned, gap = equations.return_decision(leaves, torch.full((4,), 0.5), torch.ones(4), torch.full((4,), 3),
                                              torch.ones(4, dtype=torch.int64), torch.tensor([0.0, 0.0, 0.999999, 0.5]),
                                              torch.full((4,), 0.5), CONFIG)
    assert returned.tolist() == [False, True, False, True]
    assert gap[0] == 0 and torch.isinf(gap[2])
    mean = CONFIG.gap_days / (1.0 * (0.5 + 0.5))
    assert gap[[1, 3]].tolist() == pytest.approx([mean * torch.log(torch.tensor(2.0)).item()] * 2)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_session_memory_follows_the_peak_end_rule_over_the_running_mean(weight):
    qualities = torch.tensor([[0.9, 0.1], [0.2, 0.3], [0.7, 0.8], [0.0, 1.0]])
    config = StatisticalUserConfig(peak_end_weight=weight)
    mean, peak = torch.full((2,), 0.6), torch.full((2,), 0.95)  # forgotten at the first step
    for t, quality in enumerate(qualities, start=1):
        mean, peak, memory = equations.session_memory_update(mean, peak, quality, torch.full((2,), t), config)
    assert mean.tolist() == pytest.approx(qualities.mean(0).tolist())
    assert peak.tolist() == pytest.approx([0.9, 1.0])
    remembered = weight * (torch.tensor([0.9, 1.0]) + qualities[-1]) / 2 + (1 - weight) * qualities.mean(0)
    assert memory.tolist() == pytest.approx(remembered.tolist())


def test_a_session_that_ends_well_is_remembered_better_than_the_same_steps_ending_badly():
    """Peak-end: the same four step qualities, the best last or the worst last."""
    def remembered(qualities):
        mean = peak = memory = torch.zeros(1)
        for t, q in enumerate(qualities, start=1):
            mean, peak, memory = equations.session_memory_update(mean, peak, torch.tensor([q]), torch.tensor([t]),
                                                                 CONFIG)
        return float(memory)
    assert remembered([0.1, 0.3, 0.5, 0.9]) > remembered([0.9, 0.5, 0.3, 0.1]) + 0.15  # by w (0.9 - 0.1) / 2


def test_step_quality_stays_in_the_unit_interval_and_compliance_moves_it_only_when_in_force():
    enjoyment = torch.tensor([0.0, 5.0, 0.5, 0.5, 0.5])
    compliance = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    in_force = torch.tensor([True, True, True, True, False])
    quality = equations.step_quality(enjoyment, compliance, in_force, CONFIG)
    value = 1 - math.exp(-0.5 / CONFIG.quality_scale)
    assert quality.tolist() == pytest.approx([0.0, 1.0, value + 0.5 * CONFIG.compliance_weight,
                                              value - 0.5 * CONFIG.compliance_weight, value])
    clicked = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    rating = torch.tensor([[5, 2, 4], [0, 0, 0]], dtype=torch.int8)
    assert equations.step_enjoyment(clicked, rating).tolist() == pytest.approx([1.0 + 0.25, 0.0])


def test_step_quality_grows_with_each_film_enjoyed_by_less_each_time():
    films = torch.arange(6.0)  # summed enjoyment of 0..5 films each rated 5
    quality = equations.step_quality(films, torch.zeros(6), torch.zeros(6, dtype=torch.bool), CONFIG)
    gains = quality.diff()
    assert quality[0] == 0 and bool((gains > 0).all()) and bool((gains.diff() < 0).all())
    # a mean would score one film rated 5 as high as five
    assert quality[5] > quality[1] + 0.3


def test_item_satiation_builds_on_each_viewing_fades_and_recovers_over_a_break():
    recent = torch.tensor([[7, 3, -1], [3, 3, 9]])
    levels = torch.tensor([[0.5, 0.8, 0.0], [0.2, 0.6, 1.0]])
    items = torch.tensor([[3, 7, 5], [3, 9, 7]])
    level = equations.item_satiation(items, recent, levels)
    torch.testing.assert_close(level, torch.tensor([[0.8, 0.5, 0.0], [0.6, 1.0, 0.0]]))  # the highest entry counts
    torch.testing.assert_close(equations.item_satiation_build_up(level, torch.full((2, 3), 0.5)),
                               torch.tensor([[0.9, 0.75, 0.5], [0.8, 1.0, 0.5]]))
    faded = equations.item_satiation_decay(levels, CONFIG)
    torch.testing.assert_close(faded, (1 - CONFIG.item_satiation_decay) * levels)
    recovered = equations.item_satiation_recovery(levels, torch.tensor([0.0, 1000.0]), CONFIG)
    assert recovered[0].tolist() == pytest.approx(levels[0].tolist()) and float(recovered[1].max()) < 1e-6


def test_genre_satiation_grows_with_the_share_of_the_slate_in_the_genre_with_diminishing_returns():
    exposure = torch.tensor([[0.2, 1.0, 2.0, 4.0]])
    grown = equations.satiation_build_up(torch.zeros(1, 4), exposure, CONFIG)[0]
    assert bool((grown.diff() > 0).all()) and bool((grown.diff()[1:] / exposure[0].diff()[1:] <
                                                     grown.diff()[:-1] / exposure[0].diff()[:-1]).all())


def test_mindset_moves_towards_the_step_quality_and_back_towards_its_baseline_over_a_break():
    mindset = equations.mindset_update(torch.tensor([0.2, 0.9]), torch.tensor([1.0, 0.0]), CONFIG)
    assert mindset.tolist() == pytest.approx([0.2 + CONFIG.mindset_rate * 0.8, 0.9 - CONFIG.mindset_rate * 0.9])
    assert equations.mindset_after_break(torch.tensor([0.0, 1.0]), 0.6).tolist() == pytest.approx([0.3, 0.8])


def test_familiarity_stays_a_unit_vector_and_moves_only_on_a_click():
    gen = torch.Generator().manual_seed(3)
    familiar = torch.nn.functional.normalize(torch.randn(2, 4, generator=gen), dim=1)
    features = torch.nn.functional.normalize(torch.randn(2, 3, 4, generator=gen), dim=2)
    clicked = torch.tensor([[True, False, True], [False, False, False]])
    consumed = equations.consumption(clicked.float(), torch.full((2, 3), 0.7), features)
    moved = equations.familiarity_update(familiar, consumed, clicked, CONFIG)
    assert moved.norm(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert torch.equal(moved[1], familiar[1]) and not torch.allclose(moved[0], familiar[0])
    distance = equations.distance_from_familiar(features, moved)
    assert bool(((distance >= -1e-6) & (distance <= 2 + 1e-6)).all())


def test_an_instruction_counts_down_only_on_steps_shown_under_it():
    steps_left = torch.tensor([2, 1, 0, 3])
    in_force = torch.tensor([True, True, False, False])
    active = torch.tensor([True, True, False, False])
    steps_left, active = equations.instruction_countdown(steps_left, in_force, active)
    assert steps_left.tolist() == [1, 0, 0, 3] and active.tolist() == [True, False, False, False]


def test_compliance_is_the_mean_of_the_instruction_parts():
    ins = Instruction.none(1, 3)
    ins.active[0], ins.less[0, 1], ins.more[0, 2], ins.novelty[0] = True, True, True, 1
    genres = torch.tensor([[[False, True, False], [False, False, True], [True, False, False], [True, False, False]]])
    novel = torch.tensor([[True, False, False, False]])
    # outside less: 3/4; in more: (1/4) / 0.5 = 0.5; novel: 1/4  -> mean 0.5
    assert equations.instruction_compliance(ins, genres, novel, more_share=0.5).tolist() == pytest.approx([0.5])


def test_longer_sessions_bring_earlier_returns_only_with_an_elasticity():
    memory, activity = torch.full((3,), 0.5), torch.ones(3)
    length, later = torch.tensor([1, 4, 16]), torch.ones(3, dtype=torch.int64)
    flat = equations.mean_return_gap(memory, activity, length, later == 0, CONFIG)
    assert flat.tolist() == [CONFIG.gap_days] * 3  # the default: the session's length does not matter
    elastic = equations.mean_return_gap(memory, activity, length, later == 0,
                                        replace(CONFIG, gap_length_elasticity=0.5))
    assert elastic.tolist() == pytest.approx([CONFIG.gap_days, CONFIG.gap_days / 2, CONFIG.gap_days / 4])


def test_the_end_of_a_first_session_shifts_the_return_odds_and_the_gap_alone():
    memory, activity, length = torch.full((4,), 0.5), torch.ones(4), torch.full((4,), 8)
    session_index = torch.tensor([0, 1, 0, 5])
    config = replace(CONFIG, return_first_session=-1.5, gap_first_session=-2.0)
    plain_p = equations.return_probability(memory, activity, session_index, CONFIG)
    newcomer_p = equations.return_probability(memory, activity, session_index, config)
    assert torch.equal(plain_p[[1, 3]], newcomer_p[[1, 3]])  # later sessions: unchanged, bit for bit
    assert torch.logit(newcomer_p[[0, 2]]).tolist() == pytest.approx((torch.logit(plain_p[[0, 2]]) - 1.5).tolist(),
                                                                      abs=1e-5)
    assert bool((plain_p[[0, 2]] == plain_p[1]).all())  # 0 (the default) treats every session alike
    plain_gap = equations.mean_return_gap(memory, activity, length, session_index == 0, CONFIG)
    newcomer_gap = equations.mean_return_gap(memory, activity, length, session_index == 0, config)
    assert torch.equal(plain_gap[[1, 3]], newcomer_gap[[1, 3]])
    assert newcomer_gap[[0, 2]].tolist() == pytest.approx((plain_gap[[0, 2]] * math.exp(-2.0)).tolist(), rel=1e-6)


def test_a_share_of_returning_newcomers_takes_the_first_session_gap_law_and_the_rest_the_later_one():
    """gap_first_share 0.3: of the users ending a first session, those whose gap draw is
    below 0.3 take the first-session law with the draw rescaled by 1/0.3, the others the
    later law with (1 - u)/0.7; later sessions keep their draw; a share of 1 changes nothing."""
    n = 100_000
    u = (torch.arange(n, dtype=torch.float32) + 0.5) / n  # an even grid of uniforms
    first, later = torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)
    config = replace(CONFIG, gap_first_share=0.3, gap_first_session=-3.0)
    own, drawn = equations.first_gap_law(first, u, config)
    assert float(own.float().mean()) == pytest.approx(0.3, abs=1e-4)
    assert torch.allclose(drawn[own], u[own] / 0.3) and torch.allclose(drawn[~own], (1 - u[~own]) / 0.7)
    assert bool(((drawn > 0) & (drawn <= 1)).all())
    # Each component's draws are uniform again: their quartiles sit at 1/4, 1/2, 3/4.
    for part in (drawn[own], drawn[~own]):
        assert part.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist() == pytest.approx([0.25, 0.5, 0.75], abs=1e-3)
    regular, kept = equations.first_gap_law(later, u, config)
    assert not regular.any() and torch.equal(kept, u)
    whole, same = equations.first_gap_law(first, u, CONFIG)
    assert bool(whole.all()) and torch.equal(same, u)
    # The gaps: a mixture whose own part is e^-3 times shorter than the later law's.
    memory, activity, length = torch.full((n,), 0.5), torch.ones(n), torch.full((n,), 4)
    leaves = torch.ones(n, dtype=torch.bool)
    _, gap = equations.return_decision(leaves, memory, activity, length, first, torch.zeros(n), u, config)
    _, regular_gap = equations.return_decision(leaves, memory, activity, length, later, torch.zeros(n), u, config)
    assert float(gap[own].mean()) == pytest.approx(float(regular_gap.mean()) * math.exp(-3.0), rel=0.01)
    assert float(gap[~own].mean()) == pytest.approx(float(regular_gap.mean()), rel=0.01)
