"""Review h238 of the tie rule and its neighbours: ``best_first`` ranks like a stable sort
without host syncs, SB3's sampled scores are ranked by the env's rule, restart slots in
increasing order are checked without torch work, an evaluated policy's bad propensities are
named by the method that gave them, and the evaluation side's replays ignore the logging
side's settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from recoworld.agents.sampling import monte_carlo_propensities
from recoworld.agents.sb3 import SB3Agent
from recoworld.apps.ope.policies import PolicyOnLog
from recoworld.envs.actions import ActionDecoder, best_first
from recoworld.simulators.base import restart_slots
from recoworld.types import Observation


class Ops(TorchDispatchMode):
    """The names of the aten ops run inside it."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


HOST_READS = {"aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.nonzero"}


# ------------------------------------------------------------------ 1, 3, 4. best_first
def stable_sort(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def test_best_first_is_the_stable_descending_sort_on_extreme_and_equal_values():
    generator = torch.Generator().manual_seed(1)
    tiny, big = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max
    values = torch.tensor([-torch.inf, -big, -1.0, -tiny, -tiny / 4, -0.0, 0.0, tiny / 4, tiny, 1.0, big, torch.inf])
    for C, k in ((12, 12), (12, 1), (50, 10), (1682, 10)):
        scores = values[torch.randint(0, len(values), (64, C), generator=generator)]
        scores[:4] = torch.randn(4, C, generator=generator)  # rows without ties
        assert torch.equal(best_first(scores, k), stable_sort(scores, k)), (C, k)
        columns = scores.T.contiguous().T  # the same values, strided
        assert torch.equal(best_first(columns, k), stable_sort(scores, k)), (C, k)


def test_best_first_reads_nothing_back_to_the_host():
    scores = torch.cat([torch.zeros(2, 20), torch.randn(6, 20, generator=torch.Generator().manual_seed(0))])
    for rows in (scores, scores[:2], scores[2:]):  # some rows tied, all, none
        with Ops() as ops:
            best_first(rows, 5)
        assert not HOST_READS & set(ops.ops), ops.ops


def test_nan_scores_are_refused_before_ranking_and_rank_in_range_without_the_decoder():
    scores = torch.zeros(2, 6)
    scores[1, 4] = torch.nan
    with pytest.raises(ValueError, match=r"^action\[1\]\[4\] is NaN; scores must be numbers$"):
        ActionDecoder("scores", 2, 6, 3, "cpu").positions(scores)
    assert best_first(scores, 3).tolist() == [[0, 1, 2], [4, 0, 1]]  # NaN (positive) above every number


# ------------------------------------------------------------------ 2. SB3's sampled scores
def test_sb3_ranks_its_sampled_clipped_scores_as_the_env_ranks_them():
    import gymnasium as gym

    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       num_candidates=20, slate_size=5)
    agent = SB3Agent(algo="PPO", total_timesteps=64, num_envs=2, deterministic=False,
                     algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
    agent.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    agent.model.policy.log_std.data.fill_(1.5)  # wide noise: many scores clipped to +1, tied
    state = agent.rng.bit_generator.state
    served = agent.act(obs)
    agent.rng.bit_generator.state = state
    action = np.asarray(agent._predict(obs), dtype=np.float32).reshape(4, 20)  # the same draw
    assert ((action == 1.0).sum(1) > 5).any()  # ties across the cut
    assert served.tolist() == best_first(torch.as_tensor(action), 5).tolist()


# ------------------------------------------------------------------ 5. restart slots
def test_increasing_restart_slots_are_checked_without_torch_work_and_others_still_refused():
    for users in (torch.tensor([1, 5, 9]), np.array([1, 5, 9])):
        with Ops() as ops:
            assert restart_slots(users, 10).tolist() == [1, 5, 9]
        assert set(ops.ops) <= {"aten.detach", "aten.lift_fresh"}, ops.ops
    for users, message in (([1, 1], "users holds slot 1 more than once; give each slot to restart once, with its "
                                    "one seed"),
                           ([9, 2, 9], "users holds slot 9 more than once; give each slot to restart once, with its "
                                       "one seed"),
                           ([3, 10], "users holds slot 10, but there are 10 slots")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            restart_slots(users, 10)


# ------------------------------------------------------------------ 6. the method that gave the value
class TwoSided:
    def propensities(self, obs, action):  # a logger's reading: fine
        return {"slate": np.full(len(action), 0.5)}

    def evaluation_propensities(self, obs, action):  # the evaluated side's: out of range
        return {"slate": np.full(len(action), 1.5)}


def test_a_bad_evaluation_side_propensity_names_evaluation_propensities():
    target = PolicyOnLog(TwoSided(), {"candidate_ids": np.zeros((1, 4), np.int64)}, "mine.py:TwoSided")
    with pytest.raises(ValueError) as error:
        target.propensities({"candidate_ids": np.zeros((2, 4), np.int64)}, np.array([[0, 1], [1, 0]]))
    assert str(error.value) == (
        "--policy 'mine.py:TwoSided': evaluation_propensities(obs, action)['slate'][0] = 1.5 exceeds 1; pass "
        "probabilities, not importance weights or unnormalised scores (asked about 2 logged slates of 2); return "
        "the probabilities with which act would choose the given slates")
    assert target.propensity_method == "evaluation_propensities"  # what ope evaluate's own messages name


# ------------------------------------------------------------------ 7. the evaluation side's settings
def test_the_evaluation_side_neither_uses_nor_checks_the_logging_sides_settings():
    def draw(rng, n, rows):
        return (rng.random((n, len(rows), 1)) < 0.5).astype(np.int64)

    action = np.zeros((3, 1), dtype=np.int64)
    reference = monte_carlo_propensities(draw, action, 40, seed=0, side="evaluation")
    ignored = monte_carlo_propensities(draw, action, 40, seed=0, min_matches=0, max_samples=1, side="evaluation")
    for key in reference:
        np.testing.assert_array_equal(ignored[key], reference[key])
    with pytest.raises(ValueError, match=r"^min_matches=0, max_samples=1, n_samples=40; need min_matches >= 1 "
                                         r"and max_samples >= n_samples$"):
        monte_carlo_propensities(draw, action, 40, seed=0, min_matches=0, max_samples=1)
