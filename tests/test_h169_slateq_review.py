"""SlateQ's n-step links, its instruction features, and EnjoymentLinUCB's enjoyment range."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy
from recoworld.agents.retention import EnjoymentLinUCB, InstructionFollowing
from recoworld.agents.slateq import SlateQAgent
from recoworld.agents.slateq_networks import OBS_FIELDS, CandidateFeaturizer
from recoworld.envs.rollout import rollout
from tests.test_rl_agents import one_torch_thread  # noqa: F401  (an autouse fixture: one torch thread)

CATALOG = Catalog.synthetic(200, seed=0)
USERS = 8
# Links are recorded from the first step; no gradient step is needed to check them.
NO_TRAINING = dict(learning_starts=10**9)


def make_vec(n=USERS):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point", catalog=CATALOG,
                        num_candidates=20, slate_size=5, max_steps=40)


def links(agent):
    """``(broken, linked)``: of the buffer's rows with a successor, how many have a successor
    whose observation is not the row's next observation (another user's, or a later one's)."""
    data = agent.buffer.data
    rows = torch.arange(agent.buffer.size)
    successor = data["successor"][rows]
    rows, successor = rows[successor >= 0], successor[successor >= 0]
    same = torch.ones(len(rows), dtype=torch.bool)
    for field in OBS_FIELDS:
        same &= (data[f"next.{field}"][rows] == data[f"obs.{field}"][successor]).flatten(1).all(1)
    return int((~same).sum()), len(rows)


@pytest.mark.parametrize("buffer_size", [USERS, USERS + USERS // 2])
def test_n_step_links_join_each_row_to_its_own_users_next_row_in_a_buffer_under_two_batches(buffer_size):
    """Each step's rows are added before the users' previous rows are linked to them: with a
    buffer smaller than two batches, that add has overwritten some previous rows with other
    users' transitions, which must then not be linked (before the fix, 7 of 7 links were
    broken with a buffer of one batch)."""
    agent = SlateQAgent(n_step=3, buffer_size=buffer_size, **NO_TRAINING)
    rollout(make_vec(), agent, 6, seed=0)
    broken, linked = links(agent)
    assert broken == 0, (broken, linked)
    if buffer_size > USERS:  # some previous rows survive each add: those are linked
        assert linked > 0


WRAPPERS = {"slateq": lambda slateq: slateq,
            "slateq+instructions": InstructionFollowing,
            "epsilon-soft": lambda slateq: EpsilonSoft(base=slateq, epsilon=0.1),
            "softmax": lambda slateq: SoftmaxPolicy(base=slateq, temperature=1.0)}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_a_second_rollout_does_not_link_the_last_rollouts_users_to_its_new_users(wrap):
    """``rollout(..., setup=False)`` goes on training on new users in the same slots: their
    first rows follow nobody's, also under every wrapper (ScorerWrapper passes the rollout's
    start on to SlateQ; before the fix, 6 of 21 links were broken, and 6 of 29 under
    EpsilonSoft and SoftmaxPolicy, which did not pass it on)."""
    slateq = SlateQAgent(n_step=2, **NO_TRAINING)
    agent = wrap(slateq)
    env = make_vec()
    rollout(env, agent, 3, seed=0)
    rollout(env, agent, 2, seed=1, setup=False)
    broken, linked = links(slateq)
    assert broken == 0 and linked > 0, (broken, linked)


def instructed(obs, session):
    """``obs`` whose users asked for more of genre 0, less of genre 1 and something new, with
    session counters ``session`` (sessions completed, session step, steps since the instruction)."""
    G = CATALOG.n_genres
    instruction = np.zeros_like(obs["instruction"])
    instruction[:, 0], instruction[:, G + 1], instruction[:, 2 * G] = 1, -1, 1
    return {**obs, "instruction": instruction, "session": np.tile(np.asarray(session, obs["session"].dtype),
                                                                  (len(instruction), 1))}


def test_slateq_features_drop_an_instruction_of_an_earlier_session():
    """The env keeps the latest instruction in the observation for the rest of the episode;
    the users drop it at the end of its session. An instruction voiced 3 steps ago, before
    a new session began (``session=[1, 0, 3]``), gives the features of no instruction;
    one voiced in this session (``[0, 3, 1]``) gives the flag, the novelty wish and the
    genre matches."""
    env = make_vec()
    obs, _ = env.reset(seed=0)
    featurize = CandidateFeaturizer(CATALOG, torch.device("cpu"))
    features = lambda o: featurize(featurize.tensors(o))  # noqa: E731
    D = CATALOG.feature_dim
    stale_item, stale_user = features(instructed(obs, [1, 0, 3]))
    none = instructed(obs, [1, 0, 3])
    none["instruction"] = np.zeros_like(none["instruction"])
    none_item, none_user = features(none)
    torch.testing.assert_close(stale_item, none_item)
    torch.testing.assert_close(stale_user, none_user)
    assert (stale_user[:, D] == 0).all()  # the "instruction in force" flag

    item, user = features(instructed(obs, [0, 3, 1]))
    assert (user[:, D] == 1).all() and (user[:, D + 1] == 1).all()  # the flag, the novelty wish
    genres = CATALOG.genres[torch.as_tensor(obs["candidate_ids"])].float()
    torch.testing.assert_close(item[..., 2 * D + 4], genres[..., 0])  # in a genre asked for more
    torch.testing.assert_close(item[..., 2 * D + 5], genres[..., 1])  # in a genre asked for less


def test_instruction_following_and_slateq_agree_on_when_an_instruction_applies():
    """One rule: InstructionFollowing's weight is non-zero exactly where SlateQ's flag is on."""
    env = make_vec()
    obs, _ = env.reset(seed=0)
    agent = InstructionFollowing(SlateQAgent(**NO_TRAINING))
    agent.setup(env, seed=0)
    sessions = [[0, 0, 0], [0, 3, 1], [0, 3, 3], [0, 3, 4], [1, 0, 3], [2, 1, 1]]
    for session in sessions:
        o = instructed(obs, session)
        _, user = agent.base.featurizer(agent.base.featurizer.tensors(o))
        flag = user[:, CATALOG.feature_dim].numpy() > 0
        np.testing.assert_array_equal(agent.instruction_weight(o) > 0, flag, err_msg=str(session))
        assert flag.all() == (0 < session[2] <= session[1]), session


def test_enjoyment_linucb_keeps_its_enjoyment_in_0_1_where_the_ridge_prediction_leaves_it():
    """Enjoyment lies in [0, 1]; the ridge regression it starts from does not. Before the
    clip, a negative prediction to the power 0.5 made the scores NaN (and with an even
    weight ranked like a positive one)."""
    env = make_vec()
    agent = EnjoymentLinUCB(enjoyment_weight=0.5)
    agent.setup(env, seed=0)
    rated = np.arange(10)  # a few items enjoyed fully or not at all: the fit extrapolates
    agent.enjoyment_ridge.update(agent.item_design[rated], (rated % 2).astype(np.float64))
    predicted = agent.item_design @ agent.enjoyment_ridge.theta
    assert predicted.min() < 0  # the case at hand
    enjoyment = agent.enjoyment(np.arange(CATALOG.n_items))
    np.testing.assert_allclose(enjoyment, np.clip(predicted, 0, 1))  # no item rated through update() yet
    obs, _ = env.reset(seed=0)
    obs = {**obs, "candidate_ids": np.tile(np.argsort(predicted)[:20], (USERS, 1))}  # the lowest predictions
    scores = agent.score(obs)
    assert np.isfinite(scores).all()
    assert (scores >= 0).all()
