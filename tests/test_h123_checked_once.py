"""The statistical users check ids where they come from a caller, once: expected_clicks checks
its slates once; the library's own per-step callers (the calibration's reference recommender,
the planning oracle's lookahead) score and step the ids they build without a check, which
would read a tensor back to the host (a wait for the device, on a GPU) at every step. The
public methods still name bad ids, and the unchecked path gives the checked one's numbers."""

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import recoworld  # noqa: F401  (registers the envs)
import recoworld.simulators.statistical as statistical
from recoworld import Catalog
from recoworld.agents.planning import PlanningOracle
from recoworld.apps.calibrate.dynamics import ReferenceRecommender
from recoworld.simulators import StatisticalUsers
from recoworld.types import Observation

CATALOG = Catalog.synthetic(60, n_genres=4, seed=0)


class HostReads(TorchFunctionMode):
    """Counts the tensors read back as Python values (a device sync each, on a GPU)."""

    READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in self.READS
        return func(*args, **(kwargs or {}))


def host_reads(call) -> int:
    with HostReads() as reads:
        call()
    return reads.count


@pytest.fixture
def users():
    users = StatisticalUsers(CATALOG, kernel="torch")
    users.reset(3, seed=0)
    return users


def test_expected_clicks_reads_back_only_for_its_one_slate_check(users):
    slates = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    assert host_reads(lambda: users.expected_clicks(slates)) == host_reads(lambda: users._check(slates))
    p = users.click_probabilities(slates)  # the checked path: the same numbers
    go_on = users.patience[:, None] * (1.0 - p * (1.0 - users.config.continue_after_click))
    examined = torch.cumprod(torch.cat([torch.ones_like(p[:, :1]), go_on[:, :-1]], 1), 1)
    assert torch.equal(users.expected_clicks(slates), (examined * p).sum(1))


@pytest.mark.parametrize("slates, message", [
    ([[0, 1, 2], [3, 4, 60], [6, 7, 8]], "slate[1][2] is item 60, but the catalog has 60 items (valid ids 0..59)"),
    ([[0, 1, 2], [3, 3, 5], [6, 7, 8]], "slate[1] repeats item 3 at positions [0, 1]; each slate must list 3 distinct items"),
    ([[0, 1, 2]], "slate has shape (1, 3); expected [3, K]"),
])
def test_expected_clicks_still_names_a_bad_slate(users, slates, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        users.expected_clicks(torch.tensor(slates))


class Contrarian(StatisticalUsers):
    """Users whose utility reads every slot's state (the path of a changed ``_utility``)."""

    def _utility(self, items, feats, weights):
        v, satiation, distance = super()._utility(items, feats, weights)
        return -v, satiation, distance


@pytest.mark.parametrize("kind", [StatisticalUsers, Contrarian])
def test_the_unchecked_utility_is_the_checked_one(kind):
    users = kind(CATALOG, kernel="torch")
    users.reset(4, seed=1)
    items = torch.stack([torch.randperm(60, generator=torch.Generator().manual_seed(j))[:7] for j in range(4)])
    rows = torch.tensor([3, 1])
    assert torch.equal(users.utility_valid(items), users.utility(items))
    assert torch.equal(users.utility_valid(items[rows], rows), users.utility(items[rows], rows))


def test_the_reference_recommender_scores_its_own_draws_without_reading_back():
    users = StatisticalUsers(CATALOG, kernel="torch")
    users.reset(5, seed=2)
    serving = torch.tensor([True, False, True, True, False])
    recommender = ReferenceRecommender(CATALOG.n_items, slate_size=4, candidates=12, seed=3)
    assert host_reads(lambda: recommender.slates(users, serving)) == 0
    # The slates are those of the checked scores.
    checked = ReferenceRecommender(CATALOG.n_items, slate_size=4, candidates=12, seed=3)
    checked.candidates.draw(5, checked.generator)  # the draws of the slates above
    for _ in range(3):
        mine = recommender.slates(users, serving)
        pool = checked.candidates.draw(5, checked.generator)
        rows = serving.nonzero().flatten()
        utility = torch.zeros(pool.shape)
        utility[rows] = users.utility(pool[rows], rows)
        best = pool[rows].gather(1, torch.sigmoid(utility)[rows].topk(4, dim=1).indices)
        assert torch.equal(mine[rows], best)


def test_the_planners_lookahead_checks_the_callers_candidates_only(monkeypatch):
    checks = {"ids": 0, "slates": 0}

    def counted(name, check):
        def wrapper(*args, **kwargs):
            checks[name] += 1
            return check(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(statistical, "_ids_within", counted("ids", statistical._ids_within))
    monkeypatch.setattr(statistical, "check_slates", counted("slates", statistical.check_slates))
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=3, vectorization_mode="vector_entry_point", catalog=CATALOG,
                       num_candidates=10, slate_size=3, max_steps=20)
    planner = PlanningOracle(horizon=5, rollouts=2)
    planner.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    checks.update(ids=0, slates=0)
    action = planner.act(obs)
    # The candidates of obs are scored checked, and the first slates built of them stepped
    # checked; the four steps after run on the planner's own draws.
    assert checks == {"ids": 1, "slates": 1}
    assert action.shape == (3, 3) and all(len(set(row)) == 3 for row in action.tolist())
    # The same act as where the lookahead's scores go through the checked utility.
    unchecked, scored = StatisticalUsers.utility_valid, []

    def checked(self, items, users=None):
        # The checked utility, which calls utility_valid back (then unchecked) once its checks pass.
        scored.append(tuple(items.shape))
        monkeypatch.setattr(StatisticalUsers, "utility_valid", unchecked)
        try:
            return StatisticalUsers.utility(self, items, users)
        finally:
            monkeypatch.setattr(StatisticalUsers, "utility_valid", checked)

    monkeypatch.setattr(StatisticalUsers, "utility_valid", checked)
    planner.setup(env, seed=0)
    obs = Observation(env.reset(seed=0)[0])
    assert np.array_equal(planner.act(obs), action)
    assert scored == [(3, 10)] + [(3 * 3 * 2, 10)] * 4  # obs's candidates, then every lookahead step's draws


def test_the_planner_still_names_bad_candidates():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point", catalog=CATALOG,
                       num_candidates=10, slate_size=3, max_steps=20)
    planner = PlanningOracle(horizon=2, rollouts=1)
    planner.setup(env, seed=0)
    obs = dict(env.reset(seed=0)[0])
    obs["candidate_ids"] = np.where(np.arange(10) == 4, 60, obs["candidate_ids"])
    with pytest.raises(ValueError, match=re.escape("items[0][4] is item 60, but the catalog has 60 items "
                                                   "(valid ids 0..59)")):
        planner.act(Observation(obs))
