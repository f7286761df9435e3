"""RecoWorld/Instruct-v0: text observations, strict parsing, penalties, and the slate world underneath."""

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import recoworld  # noqa: F401  (registers the envs)
from recoworld.envs.instruct import InstructEnv, InvalidAction, parse_slate
from recoworld.envs.slate import SlateEnv
from recoworld.types import CANDIDATE_IDS

SMALL = {"slate_size": 3, "num_candidates": 12, "max_steps": 25}


def make(**kwargs):
    return gym.make("RecoWorld/Instruct-v0", **{**SMALL, **kwargs}).unwrapped


def first_ids(info, k=3):
    return [int(i) for i in info[CANDIDATE_IDS][:k]]


def test_registered_and_passes_the_gymnasium_checker_with_penalties():
    env = gym.make("RecoWorld/Instruct-v0", invalid_action="penalty", **SMALL)
    assert isinstance(env.unwrapped, InstructEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert isinstance(env.action_space, gym.spaces.Text)


def test_observation_lists_candidates_with_titles_and_asks_for_ids():
    env = make()
    obs, info = env.reset(seed=1)
    assert "User's latest instruction: none." in obs
    for item in info[CANDIDATE_IDS]:
        assert f'- {item} "{env.catalog.titles[item]}"' in obs
    assert "ids of 3 distinct candidates" in obs


def test_observation_quotes_the_users_instruction_and_info_has_its_structured_form():
    env = make(max_steps=60)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        for _ in range(60):
            obs, _, terminated, truncated, info = env.step(first_ids(info))
            if info["instruction_text"] is not None:
                break
            if terminated or truncated:
                break
        if info["instruction_text"] is not None:
            break
    else:
        pytest.fail("no user voiced an instruction in 20 episodes")
    assert f'"{info["instruction_text"]}"' in obs
    assert "(1 step ago)" in obs
    said = info["instruction"]
    assert said["more"] or said["less"] or said["novelty"]
    for genre in said["more"] + said["less"]:
        assert genre in info["instruction_text"]


@pytest.mark.parametrize("text", ["[5, 9, 2]", "5, 9, 2", "5 9 2", '{"slate": [5, 9, 2]}',
                                  "```json\n[5, 9, 2]\n```", " [5,9,2] "])
def test_text_actions_that_parse(text):
    assert parse_slate(text) == [5, 9, 2]


def test_sequences_of_integers_are_actions_too():
    assert parse_slate(np.array([5, 9, 2])) == [5, 9, 2]
    assert parse_slate((np.int64(5), 9)) == [5, 9]


@pytest.mark.parametrize("action, message", [
    ("I recommend 5, 9 and 2", "could not read a slate"),
    ('{"items": [5, 9, 2]}', 'no "slate" list'),
    ("[5, 9.5, 2]", "slate[1] = 9.5 is not an item id"),
    ([5, True, 2], "slate[1] = True is not an item id"),
    (3.0, "an action is a list of item ids or text"),
])
def test_unparseable_actions_are_refused_never_guessed(action, message):
    with pytest.raises(InvalidAction, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_slate(action)


def test_invalid_slates_raise_a_message_naming_the_problem():
    env = make()
    _, info = env.reset(seed=2)
    ids = first_ids(info, 4)
    outside = next(i for i in range(env.catalog.n_items) if i not in info[CANDIDATE_IDS])
    with pytest.raises(InvalidAction, match="the slate has 2 item"):
        env.step(ids[:2])
    with pytest.raises(InvalidAction, match=rf"slate\[2\] repeats item {ids[0]}"):
        env.step([ids[0], ids[1], ids[0]])
    with pytest.raises(InvalidAction, match=rf"slate\[1\] = {outside} is not among this step's candidates"):
        env.step(f"[{ids[0]}, {outside}, {ids[1]}]")
    with pytest.raises(ValueError):  # InvalidAction is a ValueError, like the slate env's errors
        env.step("nonsense")


def test_penalty_mode_leaves_the_user_untouched_and_counts_invalid_actions():
    env, twin = make(invalid_action="penalty", invalid_penalty=2.5), make()
    obs, info = env.reset(seed=3)
    twin.reset(seed=3)
    obs2, reward, terminated, truncated, info2 = env.step("[1, 2]")
    assert reward == -2.5 and not terminated and not truncated
    assert info2["invalid_action"] and info2["invalid_actions"] == 1
    assert "the slate has 2 item" in info2["action_error"]
    assert obs2 == obs
    # The user did not see anything: the next valid steps match an env that never saw the invalid one.
    for _ in range(5):
        ids = first_ids(info2)
        obs2, r, *_, info2 = env.step(ids)
        obs_twin, r_twin, *_ = twin.step(ids)
        assert (obs2, r) == (obs_twin, r_twin)
        assert not info2["invalid_action"] and info2["invalid_actions"] == 1


def test_invalid_actions_use_up_the_step_budget():
    env = make(invalid_action="penalty", max_steps=3)
    env.reset(seed=0)
    assert [env.step("oops")[3] for _ in range(3)] == [False, False, True]


def test_same_trajectories_as_the_slate_env_for_the_same_seed_and_slates():
    rng = np.random.default_rng(0)
    for seed in (4, 5):
        text_env, slate_env = make(max_steps=30), SlateEnv(**{**SMALL, "max_steps": 30})
        _, info = text_env.reset(seed=seed)
        slate_obs, _ = slate_env.reset(seed=seed)
        for _ in range(30):
            assert np.array_equal(info[CANDIDATE_IDS], slate_obs[CANDIDATE_IDS])
            positions = rng.permutation(12)[:3]
            action = "[" + ", ".join(str(int(info[CANDIDATE_IDS][p])) for p in positions) + "]"
            _, reward, terminated, truncated, info = text_env.step(action)
            slate_obs, s_reward, s_terminated, s_truncated, s_info = slate_env.step(positions)
            assert (reward, terminated, truncated) == (s_reward, s_terminated, s_truncated)
            for key in ("slate", "clicked", "watch_fraction", "satisfaction", "compliance"):
                assert np.array_equal(info[key], s_info[key]), key
            assert info["instruction_text"] == s_info["instruction_text"]
            if terminated or truncated:
                break


def test_rejects_arguments_of_the_slate_face():
    with pytest.raises(ValueError, match="takes no action_format"):
        InstructEnv(action_format="scores")
    with pytest.raises(ValueError, match="invalid_action='ignore'"):
        InstructEnv(invalid_action="ignore")


def test_a_step_after_the_episode_ended_is_refused_until_reset_as_the_slate_env_does():
    for invalid_action in ("raise", "penalty"):
        env = make(max_steps=2, invalid_action=invalid_action)
        _, info = env.reset(seed=0)
        truncated = False
        for _ in range(2):
            _, _, terminated, truncated, info = env.step(first_ids(info))
            if terminated:
                break
        assert terminated or truncated
        with pytest.raises(RuntimeError, match=r"^the episode has ended \((terminated: the user churned|truncated "
                                               r"after max_steps=2 steps)\); call env.reset\(\) before step\(\)$"):
            env.step(first_ids(info))
        _, info = env.reset()
        assert env.step(first_ids(info))[2:4] == (False, False)
    # Invalid actions use up the budget too, and end the episode as valid ones do.
    env = make(invalid_action="penalty", max_steps=1)
    env.reset(seed=0)
    assert env.step("oops")[3]
    with pytest.raises(RuntimeError, match=r"truncated after max_steps=1 steps"):
        env.step("oops")


def test_reset_takes_numpy_seeds_and_refuses_options_as_the_slate_env_does():
    env = make()
    assert env.reset(seed=np.int64(4))[0] == make().reset(seed=4)[0]
    with pytest.raises(ValueError, match=r"^options has 'reset_mask', which InstructEnv.reset does not take; it "
                                         r"takes none$"):
        env.reset(options={"reset_mask": np.ones(1, dtype=bool)})
    with pytest.raises(ValueError, match=r"^seed=\[1, 2\]: InstructEnv takes one integer seed >= 0"):
        env.reset(seed=[1, 2])


@pytest.mark.parametrize("key, value, message", [
    ("history_shown", -1, "InstructEnv.history_shown=-1: must be an integer >= 0"),
    ("history_shown", 2.5, "InstructEnv.history_shown=2.5: must be an integer >= 0"),
    ("max_instruction_chars", 0, "InstructEnv.max_instruction_chars=0: must be an integer >= 1"),
    ("invalid_penalty", float("nan"), "InstructEnv.invalid_penalty=nan: must be a finite number >= 0"),
    ("invalid_penalty", -1.0, "InstructEnv.invalid_penalty=-1.0: must be >= 0"),
])
def test_arguments_out_of_range_are_refused_naming_them(key, value, message):
    # A negative count used to slice from the end (history_shown=-1 listed all clicks but
    # the oldest; max_instruction_chars=0 quoted the whole sentence past the space's length).
    with pytest.raises(ValueError, match=re.escape(message)):
        InstructEnv(**SMALL, **{key: value})


def test_a_short_instruction_limit_cuts_the_sentence_and_the_observation_stays_in_its_space():
    env = make(max_instruction_chars=4, max_steps=60,
               simulator_config={"voice_probability": 1.0, "instruction_threshold": 0.0})
    obs, info = env.reset(seed=0)
    obs, *_, info = env.step(first_ids(info))
    said = info["latest_instruction_text"]
    assert said is not None and len(said) > 4
    assert f'step ago): "{said[:3]}…"' in obs
    assert env.observation_space.contains(obs)
