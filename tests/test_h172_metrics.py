"""The run's metrics against their definitions: worked out by hand on scripted users that go
through the real path (env, rollout, episode log, read back), and the return per episode
that the rollout's horizon must not bias."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog, Instruction, Response
from recoworld import metrics
from recoworld.agents.base import Recommender
from recoworld.envs.rollout import rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.logs import EpisodeLog, read_log
from recoworld.simulators import UserSimulator

# Five items; features chosen for known cosines (0 and 1 orthogonal, 2 = 0, 3 = -0, 4 between).
CATALOG = Catalog(features=torch.tensor([[1, 0], [0, 1], [1, 0], [-1, 0], [0.6, 0.8]]),
                  genres=torch.ones(5, 1, dtype=torch.bool), genre_names=["g"], titles=[f"i{i}" for i in range(5)],
                  popularity=torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625]), quality=torch.zeros(5), name="hand")
# Per user slot, the responses of its first episode, step by step:
# (clicked, watch fractions, leaves the session, returns, instruction in force, compliance).
# Slot 0: a session of 2 steps (returns), then one of 1 step (churns): episode of 3 steps.
# Slot 1: churns at its first step; its next user (after the autoreset step) is cut by the
# rollout's end, and answers with the script's second row.
SCRIPT = {
    0: [([1, 0], [.5, 0], 0, 0, 0, 0.), ([0, 0], [0, 0], 1, 1, 1, .5), ([1, 1], [1, .25], 1, 0, 1, 1.)],
    1: [([0, 0], [0, 0], 1, 0, 0, 0.), ([0, 1], [0, .75], 0, 0, 1, .2)],
}
SLATES = [[0, 1], [2, 3], [3, 0]]  # item ids shown at rollout steps 0, 1, 2 (to every slot)


class Scripted(UserSimulator):
    def __init__(self):
        self.catalog, self.device = CATALOG, torch.device("cpu")

    def reset(self, n_users, seed=None, users=None):
        self.n_users = n_users
        if users is None:
            self.t, self.later = [0] * n_users, [False] * n_users
        for u in ([] if users is None else torch.as_tensor(users).tolist()):
            self.t[u], self.later[u] = 0, True

    def respond(self, slates):
        rows = []
        for u in range(len(slates)):
            script = SCRIPT[u][1:] if self.later[u] else SCRIPT[u]
            rows.append(script[min(self.t[u], len(script) - 1)])
            self.t[u] += 1
        column = lambda i, dtype: torch.tensor([r[i] for r in rows], dtype=dtype)  # noqa: E731
        clicked, left, returned = column(0, torch.bool), column(2, torch.bool), column(3, torch.bool)
        b = len(rows)
        return Response(examined=torch.ones_like(clicked), clicked=clicked, watch_fraction=column(1, torch.float32),
                        liked=clicked, rating=clicked.float() * 5, satisfaction=torch.ones(b),
                        leave_hazard=torch.zeros(b), left_session=left, returned=returned,
                        return_gap=torch.where(returned, 1.0, torch.where(left, math.inf, 0.0)),
                        churned=left & ~returned, instruction_in_force=column(4, torch.bool),
                        compliance=column(5, torch.float32), instruction=Instruction.none(b, 1),
                        instruction_text=[None] * b)


class Scheduled(Recommender):
    """Shows the items of ``SLATES`` in order, whatever the candidates' order."""

    name = "scheduled"

    def setup(self, env, seed):
        super().setup(env, seed)
        self.t = 0

    def act(self, obs):
        ids = np.asarray(obs.candidate_ids)
        want, self.t = SLATES[self.t], self.t + 1
        return np.array([[int(np.flatnonzero(row == item)[0]) for item in want] for row in ids])


@pytest.fixture
def scripted_log(tmp_path):
    env = SlateVectorEnv(2, simulator=Scripted(), slate_size=2, num_candidates=5, max_steps=100)
    with EpisodeLog(tmp_path / "episodes.parquet") as log:
        rollout(env, Scheduled(), n_steps=3, seed=0, logger=log)
    return read_log(tmp_path / "episodes.parquet")


def test_every_metric_of_scripted_users_through_the_real_path_is_its_definition_by_hand(scripted_log):
    assert scripted_log[["user", "episode", "step", "session"]].values.tolist() == \
        [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 2, 1], [1, 1, 0, 0]]  # slot 1's autoreset step not logged
    result = metrics.run_metrics(scripted_log, CATALOG.features.numpy(), CATALOG.popularity.numpy())
    w = 1 / math.log2(3)  # the exposure of the second position
    exposure = np.array([2 + 2 * w, 2 * w, 1, w + 2, 0])  # items 0..4 over the 5 slates shown
    assert result == pytest.approx({
        "return_per_episode": (3 + 0) / 2,  # reward = clicks; both first episodes ended (churn)
        "ctr": 4 / 10,
        "watch_time": (0.5 + 1.25 + 0) / 3,  # the three sessions users ended; slot 1's second user's is cut
        "session_length": (2 + 1 + 1) / 3,
        "return_rate": 1 / 3,  # one return in three session ends
        "compliance": (0.5 + 1.0 + 0.2) / 3,
        "coverage": 4 / 5,  # item 4 never shown
        "diversity": (1 + 1 + 2 + 2 + 2) / 5,  # orthogonal pairs at 1, opposite pairs at 2
        "novelty": (1 + 2) * 2 / 10 + (3 + 4) / 10 + (4 + 1) * 2 / 10,  # -log2 p: 1, 2, 3, 4 bits for items 0..3
        "exposure_gini": float(sum((2 * i - 6) * x for i, x in enumerate(np.sort(exposure), 1)) / (5 * exposure.sum())),
        "head_exposure": exposure[0] / exposure.sum(),  # head: 1 item of 5; mid: the next 2; tail: the last 2
        "mid_exposure": (exposure[1] + exposure[2]) / exposure.sum(),
        "tail_exposure": (exposure[3] + exposure[4]) / exposure.sum(),
        "serendipity": 1 / 10,  # item 3, clicked at slot 0's last step; every other click is on item 0, the head
    })


def horizon_log() -> pd.DataFrame:
    """One seed, 3 rollout steps, ``max_steps`` 3. Slot 0's first user churns at once (return
    0), and so does its second; its third is cut by the rollout. Slot 1's first user lives
    all 3 steps (return 9, truncated by max_steps)."""
    rows = [  # user, episode, step, reward, terminated, truncated
        (0, 0, 0, 0.0, True, False), (0, 1, 0, 0.0, True, False), (0, 2, 0, 1.0, False, False),
        (1, 0, 0, 3.0, False, False), (1, 0, 1, 3.0, False, False), (1, 0, 2, 3.0, False, True),
    ]
    log = pd.DataFrame(rows, columns=["user", "episode", "step", "reward", "terminated", "truncated"])
    log["seed"] = 0
    log["rollout_step"] = [0, 1, 2, 0, 1, 2]
    return log


def test_return_per_episode_counts_the_first_users_only_as_later_ones_end_in_the_log_only_when_short():
    # Every completed episode would give (0 + 0 + 9) / 3 = 3: slot 0's second user ended in the
    # log only because it churned at once, and a long-lived one in its place would have been cut.
    episodes = metrics.episode_table(horizon_log())
    assert metrics.whole_lives(episodes, max_steps=3)["return"].mean() == pytest.approx((0 + 9) / 2)


def test_return_per_episode_is_undefined_when_the_rollout_cut_a_first_user():
    cut = horizon_log().iloc[:-1]  # slot 1's first user still there when the rollout stops
    assert metrics.whole_lives(metrics.episode_table(cut)).empty  # (max_steps unknown: the first users)


def test_return_per_episode_of_a_run_ranks_on_first_users_over_seeds(tmp_path):
    # Through summarize: a seed whose first user was cut has no value, and says so in per_seed.
    log = pd.concat([horizon_log(), horizon_log().iloc[:-1].assign(seed=1)])
    for column, value in (("session", 0), ("left_session", False), ("returned", False), ("churned", False),
                          ("instruction_in_force", False), ("compliance", np.nan)):
        log[column] = value
    log["left_session"] = log["terminated"]
    log["churned"] = log["terminated"]
    for column, item in (("slate", [0, 1]), ("clicked", [False, False]), ("watch_fraction", [0.0, 0.0])):
        log[column] = [np.array(item) for _ in range(len(log))]
    log["agent"] = "a"
    summary = metrics.summarize(log, np.eye(2), np.array([0.5, 0.5]))
    assert summary["a"]["metrics"]["return_per_episode"]["per_seed"] == [4.5, None]
