"""The torch users' step reads nothing back to the host: who is under an instruction, who
leaves and who returns stay on the device (a read of each is a wait for the device on a
GPU, where the torch kernel is the only one). The masked updates change the rows they
mean and no others, bit for bit; the planner's lookahead finds its rules' rows without a
search. Reads are counted with ``benchmarks/host_reads.py``'s own counter."""

import importlib.util
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, rng
from recoworld.agents.planning import PlanningOracle
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.user_state import S_SESSION, new_session
from recoworld.types import Instruction, Observation

_spec = importlib.util.spec_from_file_location(
    "host_reads", Path(__file__).resolve().parents[1] / "benchmarks" / "host_reads.py")
host_reads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(host_reads)

CATALOG = Catalog.synthetic(80, n_genres=5, seed=0)
# Users who voice, leave, return (some after a quick visit) and hold themes at most steps.
BUSY = StatisticalUserConfig(theme_weight=0.5, rewatch=False, leave_base=-1.0, instruction_threshold=0.1,
                             voice_probability=0.5, quick_visit_share=0.3, instruction_steps=2, return_base=3.0)


def busy_users(n: int = 40) -> StatisticalUsers:
    users = StatisticalUsers(CATALOG, BUSY, kernel="torch")
    users.reset(n, seed=0)
    return users


def slates_for(users: StatisticalUsers, step: int, k: int = 6) -> torch.Tensor:
    order = torch.Generator().manual_seed(step)
    return torch.stack([torch.randperm(CATALOG.n_items, generator=order)[:k] for _ in range(users.n_users)])


def test_the_torch_step_reads_nothing_back_and_lists_only_the_voices_rows():
    users = busy_users()
    seen = {"in_force": 0, "voiced": 0, "left": 0, "returned": 0}
    for step in range(30):
        slates = slates_for(users, step)
        tally, reactions = host_reads.count(lambda: users.backend.step(users.state, slates))
        # Only the voice's rows are listed (a matrix product rounds by its number of rows).
        assert (tally["reads"], tally["shaped"]) == (0, 1)
        seen["in_force"] += int(reactions.in_force.sum())
        seen["voiced"] += int(reactions.voiced.active.sum())
        seen["left"] += int(reactions.leaves.sum())
        seen["returned"] += int(reactions.returned.sum())
        users.state.churned.zero_()  # churned users step on, as in the planner's lookahead
    assert all(count > 20 for count in seen.values()), seen  # every masked path ran


def test_a_planner_act_reads_back_as_often_on_the_torch_kernel_as_on_c():
    reads = {}
    for kernel in ("torch", "c"):
        simulator = StatisticalUsers(CATALOG, kernel=kernel)
        env = gym.make_vec("RecoWorld/Slate-v0", num_envs=8, vectorization_mode="vector_entry_point",
                           simulator=simulator, num_candidates=20, slate_size=5, max_steps=30)
        planner = PlanningOracle()
        planner.setup(env, seed=0)
        obs = Observation(env.reset(seed=0)[0])
        tallies = []
        for _ in range(4):
            tally, action = host_reads.count(lambda: planner.act(obs))
            tallies.append(tally)
            obs = Observation(env.step(action)[0])
        env.close()
        reads[kernel] = [(t["reads"], t["shaped"]) for t in tallies]
    horizon = PlanningOracle().horizon
    # 11 reads on either kernel: the candidates' id check, the first slates' check (two), a
    # churn check a step.
    assert [r for r, _ in reads["torch"]] == [r for r, _ in reads["c"]] == [3 + horizon] * 4
    # No search for the rules' rows; on torch, at most the voice's at each lookahead step.
    assert [shaped for _, shaped in reads["c"]] == [0] * 4
    assert all(shaped <= horizon for _, shaped in reads["torch"])


def test_a_new_session_by_mask_draws_for_its_rows_and_leaves_the_others_alone():
    users = busy_users(12)
    for step in range(6):  # instructions, themes and satiation in the state
        users.respond_valid(slates_for(users, step))
        users.state.churned.zero_()
    s = users.state
    s.session_index += torch.arange(12)  # a distinct session index a row
    before = {name: getattr(s, name).clone() for name in ("theme", "instruction_steps_left", "novelty_seeking")}
    instruction = s.instruction.select(torch.arange(12))
    starts = torch.tensor([True, False, False, True, True, False, False, False, True, False, True, False])
    new_session(s, starts, users.config.novelty_session_spread)
    rows, others = starts.nonzero().flatten(), (~starts).nonzero().flatten()
    draw = rng.normal(s.key[rows], s.session_index[rows], S_SESSION, 1)[:, 0]
    expected = s.novelty_trait[rows] + users.config.novelty_session_spread * draw
    assert torch.equal(s.novelty_seeking[rows], expected)
    assert not s.instruction.active[rows].any() and not s.theme[rows].any() and not s.instruction_steps_left[rows].any()
    for name, old in before.items():
        assert torch.equal(getattr(s, name)[others], old[others])
    kept = s.instruction.select(others)
    assert all(torch.equal(getattr(kept, f), getattr(instruction, f)[others]) for f in ("active", "more", "less",
                                                                                       "novelty"))


def test_clearing_instructions_by_mask_is_clearing_them_by_index():
    torch.manual_seed(0)
    by_index = Instruction(torch.rand(6) < 0.7, torch.rand(6, 4) < 0.5, torch.rand(6, 4) < 0.5,
                           torch.randint(-1, 2, (6,), dtype=torch.int8))
    by_mask = by_index.select(torch.arange(6))
    mask = torch.tensor([False, True, True, False, True, False])
    by_index.clear(mask.nonzero().flatten())
    by_mask.clear(mask)
    assert all(torch.equal(getattr(by_mask, f), getattr(by_index, f)) for f in ("active", "more", "less", "novelty"))


@pytest.mark.parametrize("rules", [("clicks", "enjoyment", "diverse"), ("diverse", "clicks")])
def test_the_lookahead_serves_each_row_by_its_own_rule(rules):
    simulator = StatisticalUsers(CATALOG, kernel="torch")
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       simulator=simulator, num_candidates=20, slate_size=4, max_steps=30)
    planner = PlanningOracle(rollouts=2, rules=rules)
    planner.setup(env, seed=0)
    env.reset(seed=0)
    model = env.unwrapped.user_model()
    B, R, n_rules = 3, planner.rollouts, len(rules)
    user = torch.arange(B).repeat_interleave(n_rules * R)
    rule = torch.arange(n_rules).repeat_interleave(R).repeat(B)
    rollout = torch.arange(R).repeat(B * n_rules)
    planner._replicate(model, user, rollout)
    draws = planner._draws.get_state()
    slates = planner._next_slates(model, B, user, rollout)
    planner._draws.set_state(draws)  # the same candidates, served rule by rule
    ids = planner._candidates.draw(B * R, planner._draws)[user * R + rollout]
    p = torch.sigmoid(model.utility_valid(ids))
    for index, name in enumerate(rules):
        rows = (rule == index).nonzero().flatten()
        assert torch.equal(slates[rows], ids[rows].gather(1, planner._rule_slate(name, p[rows], ids[rows])))
    env.close()


def test_restarting_some_users_checks_their_slots_in_one_read_and_still_names_a_bad_one():
    users = busy_users(5)
    tally, _ = host_reads.count(lambda: users.reset(5, seed=[7, 8], users=np.array([4, 1])))
    # The slots are checked on the host: numpy slots need no read; a device's at most one copy.
    assert tally["reads"] <= 1
    for bad in (-1, 5):
        with pytest.raises(ValueError, match=re.escape(f"users holds slot {bad}, but there are 5 slots")):
            users.reset(5, seed=[7, 8], users=np.array([2, bad]))


def test_clearing_by_a_mask_of_another_length_is_refused_not_broadcast():
    instruction = Instruction.none(4, 3)
    instruction.active[:] = True
    with pytest.raises(ValueError, match=re.escape("clear() was given a mask of shape (1,) for 4 users; "
                                                   "give one bool per user, shape (4,)")):
        instruction.clear(torch.tensor([True]))
    assert instruction.active.all()  # nothing cleared
