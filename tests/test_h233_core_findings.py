"""The simulated users' core, as review h229 found it: state assignments that the C kernel
read as raw memory of another layout, the satisfaction logged on a user's last step, restart
slots taken from masks, floats and repeats, social users' autoreset rows, the LLM users'
return rule, and ties among scores."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.envs import SlateVectorEnv
from recoworld.envs.actions import ActionDecoder
from recoworld.llm import ScriptedChatModel
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.hybrid import HybridUsers
from recoworld.simulators.llm_user import LLMUsers
from recoworld.simulators.social import SocialInfluence, SocialStatisticalUsers
from recoworld.types import Instruction

CATALOG = Catalog.synthetic(200, seed=1)
KERNELS = ["torch", "c"]
SLATES = torch.arange(10).expand(4, 10)


def started(kernel: str, config: StatisticalUserConfig | None = None, n: int = 4) -> StatisticalUsers:
    users = StatisticalUsers(CATALOG, config, kernel=kernel)
    users.reset(n, seed=0)
    return users


# ------------------------------------------------------------ 1. assigning the state
@pytest.mark.parametrize("kernel", KERNELS)
def test_an_assigned_field_is_copied_into_the_state_so_both_kernels_step_it_right(kernel):
    filled = started(kernel)
    filled.satisfaction[:] = 0.9  # in place, as float32: the reference
    filled.session_index[:] = 3
    assigned = started(kernel)
    address = assigned.satisfaction.data_ptr()
    assigned.satisfaction = torch.full((4,), 0.9, dtype=torch.float64)  # a scenario's float64 tensor
    assigned.session_index = torch.full((4,), 3, dtype=torch.int32)  # an int32 one
    assert assigned.satisfaction.data_ptr() == address  # copied into, not swapped for
    assert (assigned.satisfaction.dtype, assigned.session_index.dtype) == (torch.float32, torch.int64)
    for _ in range(5):
        expected, got = filled.respond(SLATES), assigned.respond(SLATES)
        assert torch.equal(got.satisfaction, expected.satisfaction) and got.satisfaction.dtype == torch.float32
        assert torch.equal(got.leave_hazard, expected.leave_hazard) and torch.equal(got.clicked, expected.clicked)
        filled.churned[:] = assigned.churned[:] = False
    assert torch.equal(assigned.session_index, filled.session_index)


@pytest.mark.parametrize("field, value, message", [
    ("satisfaction", torch.zeros(5), "satisfaction holds torch.float32 of shape (4,); got shape (5,): assign one of "
                                     "the same shape, or fill it in place (satisfaction[:] = value)"),
    ("churned", torch.zeros(4), "churned holds torch.bool of shape (4,); got torch.float32, which does not convert "
                                "to it without loss: pass torch.bool values (e.g. value.to(torch.bool))"),
    ("session_index", torch.tensor([0.0, 1.0, 2.0, 3.5]), "session_index holds torch.int64 of shape (4,); got "
     "torch.float32, which does not convert to it without loss: pass torch.int64 values (e.g. value.to(torch.int64))"),
    ("counter", torch.full((4,), 2**40), "counter holds torch.int32 of shape (4,); got torch.int64, which does not "
     "convert to it without loss: pass torch.int32 values (e.g. value.to(torch.int32))"),
])
def test_an_assignment_of_another_shape_or_that_would_lose_values_is_refused(field, value, message):
    users = started("torch")
    before = getattr(users, field).clone()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        setattr(users, field, value)
    assert torch.equal(getattr(users, field), before)


def test_an_assigned_instruction_is_checked_whole_before_any_part_is_copied():
    users = started("torch")
    wrong = Instruction.none(4, CATALOG.n_genres + 1)
    wrong.active[:] = True
    with pytest.raises(ValueError, match=re.escape(f"instruction.more holds torch.bool of shape (4, "
                                                   f"{CATALOG.n_genres}); got shape (4, {CATALOG.n_genres + 1})")):
        users.instruction = wrong
    assert not users.instruction.active.any()  # nothing half-assigned


def test_the_c_kernel_refuses_a_state_tensor_of_another_layout_before_reading_it():
    users = started("c")
    users.state.session_index = torch.zeros(4, dtype=torch.int32)  # swapped in below the attributes
    with pytest.raises(ValueError, match="^" + re.escape(
            "the C kernel reads session_index as torch.int64 of shape (4,), but it is torch.int32 of shape (4,): give "
            "the state tensors of its layout (assigning through the users' attributes, users.session_index = value, "
            "copies into them)") + "$"):
        users.respond(SLATES)
    users.state.session_index = torch.zeros(4, dtype=torch.int64)
    users.state.satiation = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=re.escape(f"reads satiation as torch.float32 of shape (4, "
                                                   f"{CATALOG.n_genres}), but it is torch.float32 of shape (4, 3)")):
        users.respond(SLATES)


def test_the_layout_checked_lists_the_frames_tensors_in_their_order():
    from recoworld.kernels.users import ITEM_TABLES, LAYOUT, _STATE_FIELDS
    assert tuple(LAYOUT) == (*ITEM_TABLES, *_STATE_FIELDS, "param")


# --------------------------------------------- 2. the satisfaction of a user who leaves
@pytest.mark.parametrize("kernel", KERNELS)
def test_the_satisfaction_of_a_leaver_is_the_mindset_at_leaving_whether_they_return_or_churn(kernel):
    """With mindset_rate 1 the mindset after a step is its quality: the response gives it to
    stayers, returners and churners alike, while the state holds a returner's mindset moved
    halfway back to the baseline for their next session."""
    config = StatisticalUserConfig(mindset_rate=1.0, voice_probability=0.0)
    users = started(kernel, config, n=2000)
    generator = torch.Generator().manual_seed(0)
    seen = {"returned": 0, "churned": 0}
    for _ in range(4):
        users.churned[:] = False
        r = users.respond(torch.rand(2000, CATALOG.n_items, generator=generator).argsort(1)[:, :10])
        enjoyment = (r.clicked.float() * (r.rating.float() - 1)).sum(1) / 4
        quality = (1 - torch.exp(-enjoyment / config.quality_scale)).clamp(0, 1)
        assert torch.allclose(r.satisfaction, quality, atol=1e-6)
        back = r.returned
        assert torch.allclose(users.satisfaction[back], 0.5 * quality[back] + 0.5 * config.initial_mindset, atol=1e-6)
        seen["returned"] += int(back.sum())
        seen["churned"] += int(r.churned.sum())
    assert min(seen.values()) > 0


def scripted(stars: int, leave_at: int):
    """A model that skips every item, states ``stars`` and leaves at step ``leave_at``."""
    def answer(call):
        step = int(re.search(r"step (\d+)\.", call.messages[1]["content"]).group(1))
        ids = call.json_schema["properties"]["reactions"]["required"]
        return json.dumps({"reactions": {i: {"action": "skip", "reason": "meh"} for i in ids}, "mindset": "So-so.",
                           "satisfaction": stars, "leave": step == leave_at, "instruction": None})
    return answer


def test_the_llm_users_give_the_satisfaction_at_leaving_too():
    users = LLMUsers(CATALOG, ScriptedChatModel(scripted(5, leave_at=1)), statistical={"return_base": 0.0})
    users.reset(64, seed=0)
    r = users.respond(torch.arange(4).repeat(64, 1))
    assert r.left_session.all() and 0 < int(r.returned.sum()) < 64  # both outcomes
    assert torch.equal(r.satisfaction, torch.ones(64))  # 5 stars, for returners and churners alike
    initial = (users.config.initial_satisfaction - 1) / 4
    assert torch.allclose(users.satisfaction[r.returned], torch.tensor(0.5 + 0.5 * initial))


# ------------------------------------------------------------------- 3. restart slots
MASK_MESSAGE = ("users is a boolean mask (dtype torch.bool); pass the integer slot ids it selects (for a mask tensor, "
                "mask.nonzero().flatten())")


def llm_users():
    return LLMUsers(CATALOG, ScriptedChatModel(scripted(3, leave_at=99)))


def hybrid_users():
    return HybridUsers(CATALOG, ScriptedChatModel(scripted(3, leave_at=99)))


@pytest.mark.parametrize("make", [lambda: StatisticalUsers(CATALOG, kernel="torch"),
                                  lambda: StatisticalUsers(CATALOG, kernel="c"), llm_users, hybrid_users],
                         ids=["torch", "c", "llm", "hybrid"])
@pytest.mark.parametrize("users, seed, message", [
    (torch.tensor([True, False, True, False]), 100, MASK_MESSAGE),
    ([True, False, True, False], [7, 8], MASK_MESSAGE),
    (torch.tensor([1.0, 2.0]), [7, 8], "users has dtype torch.float32; pass integer slot ids (e.g. int64)"),
    ([1, 1], [100, 200], "users holds slot 1 more than once; give each slot to restart once, with its one seed"),
    (np.array([3, 0, 3]), 5, "users holds slot 3 more than once; give each slot to restart once, with its one seed"),
])
def test_a_restart_refuses_masks_floats_and_repeated_slots_and_changes_nothing(make, users, seed, message):
    simulator = make()
    simulator.reset(4, seed=0)
    core = getattr(simulator, "core", None) or getattr(simulator, "twin", None) or simulator
    before = core.key.clone()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        simulator.reset(4, seed=seed, users=users)
    assert torch.equal(core.key, before)


def test_utility_names_a_mask_as_a_restart_does():
    users = started("torch")
    with pytest.raises(ValueError, match=f"^{re.escape(MASK_MESSAGE)}$"):
        users.utility(torch.zeros(2, 3, dtype=torch.long), users=torch.tensor([True, False, True, False]))


# --------------------------------------------------------------------- 4. social users
def test_social_users_restarted_by_an_autoreset_add_no_buzz():
    """Slots held idle still step (torch), but their clicks, on the ended episode's slate, do
    not reach the buzz: it is that of the other slots' clicks."""
    users = SocialStatisticalUsers(CATALOG, StatisticalUserConfig(voice_probability=0.0),
                                   social=SocialInfluence(weight=1.0))
    B = 64
    users.reset(B, seed=0)
    generator = torch.Generator().manual_seed(0)
    idle = torch.arange(B) % 2 == 0
    buzz, idle_clicks = torch.zeros(CATALOG.n_items), 0
    for _ in range(3):
        users.churned[:] = False
        slates = torch.rand(B, 50, generator=generator).argsort(1)[:, :10]
        r = users.respond_valid(slates, idle)
        clicks = torch.zeros(CATALOG.n_items).index_add_(0, slates[~idle].reshape(-1),
                                                         r.clicked[~idle].reshape(-1).float())
        buzz = (1 - users.social.decay) * buzz + clicks / B
        idle_clicks += int(r.clicked[idle].sum())
    assert idle_clicks > 0  # they clicked, and it did not count
    assert torch.allclose(users.buzz, buzz)


def test_social_users_take_the_kernel_choice_and_refuse_the_c_kernel_by_name():
    assert SocialStatisticalUsers(CATALOG, kernel="torch").kernel == "torch"
    assert SocialStatisticalUsers(CATALOG).kernel == "torch"  # auto: C does not compute the social term
    with pytest.raises(ValueError, match="^" + re.escape(
            "kernel='c' computes the utility of StatisticalUsers, which this simulator changes; use kernel='torch' "
            "or 'auto'") + "$"):
        SocialStatisticalUsers(CATALOG, kernel="c")


# ------------------------------------------------------------------ 5. the LLM users' docs
def test_the_llm_users_docs_state_the_return_rule_with_its_first_session_and_length_terms():
    import recoworld.simulators.llm_user as module
    returning = module.__doc__.split("**Returning**")[1].split("**Failures**")[0]
    for term in ("equations.return_decision", "r_1[\\text{first session}]", "e^{g_1[\\text{first session}]}",
                 "L^{\\varepsilon}", "gap_first_share", "gap_length_elasticity"):
        assert term in returning, term


# ------------------------------------------------------------------ 6. ties among scores
def test_equal_scores_go_to_the_lower_candidate_first():
    from recoworld.envs.actions import best_first
    decoder = ActionDecoder("scores", 3, 50, 10, "cpu")
    assert decoder.positions(np.ones((3, 50), dtype=np.float32)).tolist() == [list(range(10))] * 3
    generator = torch.Generator().manual_seed(0)
    for C in (50, 1682):
        scores = torch.randint(-2, 3, (256, C), generator=generator).float() / 2  # ties everywhere, either sign
        scores[:8] = torch.rand(8, C, generator=generator)  # rows without
        scores[8:16] = torch.where(torch.rand(8, C, generator=generator) < 0.5, -0.0, 0.0)  # equal, bits apart
        scores[16:24, ::7] = torch.inf
        scores[24:32] = -torch.inf
        expected = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :10]
        assert torch.equal(best_first(scores, 10), expected)


def test_a_scores_env_shows_equal_scores_in_candidate_order():
    env = SlateVectorEnv(2, catalog=CATALOG, action_format="scores", num_candidates=50, slate_size=10, max_steps=5)
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones((2, 50), dtype=np.float32))
    assert np.array_equal(info["slate"], obs["candidate_ids"][:, :10])
