"""RecoWorld/Slate-v0: Gymnasium and SB3 conformance, one core behind two faces, and errors."""

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog
from recoworld.envs import RewardWeights, SlateEnv, SlateVectorEnv
from recoworld.types import Instruction, Response


def make(**kwargs):
    return gym.make("RecoWorld/Slate-v0", **kwargs).unwrapped


def make_vec(n, **kwargs):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


@pytest.mark.parametrize("action_format", ["slate", "scores"])
def test_passes_gymnasium_and_sb3_checkers(action_format):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded feature boxes draw a generic warning
        gym_check_env(make(action_format=action_format))
        sb3_check_env(make(action_format=action_format))


def test_make_vec_builds_the_native_batched_env():
    env = make_vec(8)
    assert isinstance(env, SlateVectorEnv)
    obs, _ = env.reset(seed=0)
    assert obs["candidate_ids"].shape == (8, 50)
    assert env.action_space.sample().shape == (8, 10)
    assert env.observation_space.contains(obs)


def test_vector_env_matches_single_envs_with_matching_seeds():
    n, steps = 4, 80
    venv = make_vec(n, max_steps=15)
    envs = [make(max_steps=15) for _ in range(n)]
    vobs, _ = venv.reset(seed=11)
    for i, e in enumerate(envs):
        e.reset(seed=11 + i)
    rng = np.random.default_rng(0)
    done = [False] * n
    episodes_ended = 0
    for _ in range(steps):
        actions = np.stack([rng.permutation(50)[:10] for _ in range(n)])
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(envs):
            if done[i]:  # NEXT_STEP autoreset: the vector env resets this slot now
                obs, rew, term, trunc = env.reset()[0], 0.0, False, False
                assert vinfo["autoreset"][i]
            else:
                obs, rew, term, trunc, info = env.step(actions[i])
                assert np.array_equal(info["clicked"], vinfo["clicked"][i])
                assert info["instruction_text"] == vinfo["instruction_text"][i]
            done[i] = term or trunc
            episodes_ended += done[i]
            assert (rew, term, trunc) == (vrew[i], vterm[i], vtrunc[i])
            for key in obs:
                # Equal up to float rounding: batched kernels may round the last bit differently.
                np.testing.assert_allclose(obs[key], vobs[key][i], atol=1e-5, err_msg=key)
    assert episodes_ended >= n, "the test must cover autoresets"


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = make_vec(16)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(1)
        out = []
        for _ in range(30):
            obs, reward, *_ = env.step(np.stack([rng.permutation(50)[:10] for _ in range(16)]))
            out.append((obs["candidate_ids"].copy(), reward.copy()))
        return out
    a, b, c = trajectory(3), trajectory(3), trajectory(4)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


@pytest.mark.parametrize("action, message", [
    (np.arange(9), r"action has shape \(9,\); expected \(10,\) candidate indices"),
    (np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 50]), r"action\[9\] is candidate index 50, but there are 50 candidates \(valid ids 0..49\)"),
    (np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, -1]), r"action\[9\] is candidate index -1"),
    (np.array([3, 1, 2, 3, 4, 5, 6, 7, 8, 9]), r"action repeats candidate index 3 at positions \[0, 3\]; each action must list 10 distinct candidate indices"),
    (np.arange(10).astype(np.float32), r"action has dtype float32; pass integer candidate indices \(e\.g\. int64\)"),
    (np.array([0, 1, 2, np.nan, 4, 5, 6, 7, 8, 9]), r"action\[3\] is NaN"),
])
def test_invalid_slates_raise_naming_the_bad_entry(action, message):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_vector_env_names_the_user_row_of_a_bad_action():
    env = make_vec(3)
    env.reset(seed=0)
    actions = np.tile(np.arange(10), (3, 1))
    actions[2, 4] = 77
    with pytest.raises(ValueError, match=r"action\[2\]\[4\] is candidate index 77"):
        env.step(actions)


def test_scores_format_shows_the_top_scored_candidates():
    env = make(action_format="scores", slate_size=3, num_candidates=5, catalog=Catalog.synthetic(20))
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.1, 0.9, -1.0, 0.5, 0.7], dtype=np.float32))
    assert info["slate"].tolist() == obs["candidate_ids"][[1, 4, 3]].tolist()
    with pytest.raises(ValueError, match=r"action\[2\] is NaN"):
        env.step(np.array([0.1, 0.9, np.nan, 0.5, 0.7], dtype=np.float32))


def test_scores_that_are_not_numbers_are_named_with_the_shape_expected():
    env = make(action_format="scores", slate_size=3, num_candidates=5, catalog=Catalog.synthetic(20))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("action is an array of dtype <U1, which does not read as float32 "
                                                   "scores (could not convert string to float: ") + r".*" +
                       re.escape("); pass one number per candidate, (5,)")):
        env.step(np.array(["a"] * 5))


def test_reward_presets_and_weights():
    env = make(reward={"clicks": 1.0, "watch_time": 2.0})
    env.reset(seed=0)
    for _ in range(20):
        _, reward, term, trunc, info = env.step(np.arange(10))
        assert reward == pytest.approx(info["reward_clicks"] + 2.0 * info["reward_watch_time"])
        if term or trunc:
            break
    with pytest.raises(ValueError, match=r"reward='click' is not a preset; choose one of"):
        make(reward="click")
    with pytest.raises(ValueError, match=r"reward weights name unknown signals \['clickz'\]"):
        RewardWeights.parse({"clickz": 1.0})


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match=r"need 1 <= slate_size \(60\) <= num_candidates \(50\)"):
        SlateEnv(slate_size=60)
    with pytest.raises(ValueError, match=r"action_format='ids'; choose one of \('slate', 'scores'\)"):
        SlateEnv(action_format="ids")


def test_history_holds_the_latest_clicks_newest_first():
    env = make(catalog=Catalog.synthetic(200), history_length=5)
    obs, _ = env.reset(seed=1)
    clicks = []
    for _ in range(30):
        obs, _, term, trunc, info = env.step(np.arange(10))
        clicks = list(info["slate"][info["clicked"]]) + clicks
        assert obs["history_items"][: min(5, len(clicks))].tolist() == clicks[:5]
        if term or trunc:
            break


def test_privileged_channel_returns_true_click_probabilities():
    env = make()
    obs, _ = env.reset(seed=0)
    p = env.click_probabilities()
    assert p.shape == (50,) and ((p > 0) & (p < 1)).all()


def scripted_response(clicked, watch, left, returned, compliance):
    """A response of ``B`` users to slates of 2 (no instruction voiced)."""
    clicked = torch.tensor(clicked)
    left, returned = torch.tensor(left), torch.tensor(returned)
    B = len(left)
    return Response(
        examined=torch.ones_like(clicked), clicked=clicked, watch_fraction=torch.tensor(watch) * clicked,
        liked=torch.zeros_like(clicked), rating=torch.zeros(clicked.shape, dtype=torch.int8),
        satisfaction=torch.full((B,), 0.5), leave_hazard=torch.full((B,), 0.1), left_session=left,
        returned=returned, return_gap=torch.where(returned, 1.0, torch.where(left, torch.inf, 0.0)),
        churned=left & ~returned, instruction_in_force=torch.zeros(B, dtype=torch.bool),
        compliance=torch.tensor(compliance), instruction=Instruction.none(B, 2), instruction_text=[None] * B,
    )


def test_retention_pays_per_session_end_and_churn_only_for_losing_the_user():
    """Three steps of two users: user 0 has two short sessions, user 1 one long session, then churns."""
    steps = [
        scripted_response([[True, False], [True, True]], [[0.5, 0.0], [1.0, 0.25]], [True, False], [True, False],
                          [0.0, 0.5]),
        scripted_response([[False, False], [False, True]], [[0.0, 0.0], [0.0, 0.5]], [True, False], [True, False],
                          [0.0, 0.0]),
        scripted_response([[True, True], [False, False]], [[0.5, 0.5], [0.0, 0.0]], [False, True], [False, False],
                          [1.0, 0.0]),
    ]
    paid = {name: torch.stack([RewardWeights.parse(name)(r) for r in steps]).T.tolist()
            for name in ("clicks", "watch_time", "retention", "churn", "compliance")}
    assert paid["clicks"] == [[1.0, 0.0, 2.0], [2.0, 1.0, 0.0]]
    assert paid["watch_time"] == [[0.5, 0.0, 1.0], [1.25, 0.5, 0.0]]
    assert paid["retention"] == [[1.0, 1.0, 0.0], [0.0, 0.0, -1.0]]  # two returns pay 2
    assert paid["churn"] == [[0.0, 0.0, 0.0], [0.0, 0.0, -1.0]]  # returning is not paid per session
    assert paid["compliance"] == [[0.0, 0.0, 1.0], [0.5, 0.0, 0.0]]
    mix = RewardWeights.parse({"clicks": 1.0, "churn": 5.0, "compliance": 2.0})
    assert torch.stack([mix(r) for r in steps]).T.tolist() == [[1.0, 0.0, 4.0], [3.0, 1.0, -5.0]]


@pytest.mark.parametrize("kernel", ["torch", "c"])
def test_candidate_features_the_agent_holds_are_never_written_again(kernel):
    env = make_vec(6, max_steps=4, kernel=kernel)
    features = env.unwrapped.world.catalog.features.numpy()
    actions = np.tile(np.arange(10), (6, 1))
    obs, _ = env.reset(seed=0)
    held, held_ids = obs["candidate_features"], obs["candidate_ids"].copy()
    obs = env.step(actions)[0]
    as_tensor = torch.from_numpy(obs["candidate_features"][2:])  # only a view's tensor is left
    tensor_ids = obs["candidate_ids"][2:].copy()
    for _ in range(12):  # past episode ends: restarts draw new candidates
        obs = env.step(actions)[0]
        assert np.array_equal(obs["candidate_features"], features[obs["candidate_ids"]])
    assert np.array_equal(held, features[held_ids])
    assert np.array_equal(as_tensor.numpy(), features[tensor_ids])


def test_recycled_arrays_are_reused_only_when_nobody_holds_them():
    from recoworld.envs.recycled import RecycledArrays

    arrays = RecycledArrays((4, 3), np.float32, keep=2)
    first, second = arrays.empty(), arrays.empty()
    assert first is not second and first.shape == (4, 3) and first.dtype == np.float32
    first_id, view = id(first), first[1:]
    del first
    third = arrays.empty()  # the first lives on in its view, the second is held: a new one
    assert id(third) not in (first_id, id(second)) and not np.shares_memory(third, view)
    del view, third
    assert id(arrays.empty()) == first_id  # nothing holds the first any more
    tensor, second_id = torch.from_numpy(second), id(second)
    del second
    mine = arrays.empty()
    assert id(mine) == first_id and id(arrays.empty()) != second_id  # the tensor holds the second
    del tensor
    assert id(arrays.empty()) == second_id


def test_vector_infos_carry_a_mask_of_their_own_beside_each_key():
    env = make_vec(5, max_steps=3)
    for info in (env.reset(seed=0)[1], env.step(np.tile(np.arange(10), (5, 1)))[4]):
        keys = [key for key in info if not key.startswith("_")]
        assert sorted(info) == sorted(keys + [f"_{key}" for key in keys])
        assert all(info[f"_{key}"].dtype == bool and info[f"_{key}"].shape == (5,) and info[f"_{key}"].all()
                   for key in keys)
        info[f"_{keys[0]}"][2] = False  # a wrapper that merges infos writes one mask in place
        assert all(info[f"_{key}"].all() for key in keys[1:])
