"""Gymnasium's conventions as a demanding user leans on them: reset options and seeds (a
list with ``None`` entries, ``reset_mask``), Gymnasium's own vector envs over the single env
(``sync`` samples valid slates, ``async`` forks without hanging), ``render_mode`` passed on
by ``make_vec``, and errors that name the value and the fix."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401  (registers the envs)
from recoworld.envs import SB3SlateVecEnv, SlateEnv, SlateVectorEnv
from recoworld.envs.spaces import SlateSpace

SMALL = {"slate_size": 3, "num_candidates": 10, "max_steps": 4}


def same_observation(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)


def row(observation: dict, i: int) -> dict:
    return {key: value[i] for key, value in observation.items()}


# --- reset(seed=..., options=...) ---------------------------------------------------------

def test_a_seed_list_with_none_entries_reseeds_only_the_users_given_one():
    vector, singles = SlateVectorEnv(3, **SMALL), [SlateEnv(**SMALL) for _ in range(3)]
    vector.reset(seed=[10, 11, 12])
    for seed, env in zip([10, 11, 12], singles):
        env.reset(seed=seed)
    actions = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    vector.step(actions)
    for action, env in zip(actions, singles):
        env.step(action)
    # Gymnasium's list[int | None]: None goes on with that user's own seed sequence, as a
    # single env's reset() does.
    observation, info = vector.reset(seed=[20, None, 22])
    expected = [singles[0].reset(seed=20)[0], singles[1].reset()[0], singles[2].reset(seed=22)[0]]
    assert all(same_observation(row(observation, i), expected[i]) for i in range(3))
    assert info["episode_seed"][[0, 2]].tolist() == [20, 22]


def test_reset_mask_restarts_only_the_masked_users_and_the_others_go_on_untouched():
    actions = np.tile(np.arange(3), (4, 1))
    masked, reference = SlateVectorEnv(4, **SMALL), SlateVectorEnv(4, **SMALL)
    for env in (masked, reference):
        env.reset(seed=0)
        env.step(actions)
    before = reference.step(actions)[0]
    masked.step(actions)
    mask = np.array([True, False, True, False])
    observation, info = masked.reset(seed=100, options={"reset_mask": mask})
    assert same_observation(row(observation, 2), SlateEnv(**SMALL).reset(seed=102)[0])
    assert all(same_observation(row(observation, i), row(before, i)) for i in (1, 3))
    assert info["_episode_seed"].tolist() == mask.tolist()  # only the users reset hold a reset's info
    # The users left out live on exactly as if no reset had happened.
    for _ in range(3):
        got, want = masked.step(actions), reference.step(actions)
        assert all(same_observation(row(got[0], i), row(want[0], i)) for i in (1, 3))
        assert got[1][[1, 3]].tolist() == want[1][[1, 3]].tolist()


@pytest.mark.parametrize("options, message", [
    ({"reset_mask": np.array([1, 0, 1])}, "options['reset_mask'] has dtype int64; expected bool, True for the users "
                                          "to reset"),
    ({"reset_mask": np.ones(2, dtype=bool)}, "options['reset_mask'] has shape (2,); expected (3,), one flag per user"),
    ({"reset_mask": np.zeros(3, dtype=bool)}, "options['reset_mask'] is all False, which resets no user; set True for "
                                              "the users to reset"),
    ({"low": -1.0}, "options has 'low', which SlateVectorEnv.reset does not take; it takes only 'reset_mask'"),
])
def test_reset_options_the_vector_env_cannot_honour_are_refused_by_name(options, message):
    env = SlateVectorEnv(3, **SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        env.reset(options=options)


def test_the_first_reset_refuses_a_reset_mask_and_the_single_env_takes_no_options():
    with pytest.raises(ValueError, match=re.escape(
            "options['reset_mask'] leaves users out of the first reset, which starts every user; call reset() "
            "without a reset_mask first")):
        SlateVectorEnv(2, **SMALL).reset(seed=0, options={"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match=re.escape("options has 'low', which SlateEnv.reset does not take; it takes "
                                                   "none")):
        SlateEnv(**SMALL).reset(seed=0, options={"low": -1.0})
    assert SlateEnv(**SMALL).reset(seed=0, options={})[1]["episode_seed"] == 0  # what check_env and wrappers pass


@pytest.mark.parametrize("make, seed, message", [
    (lambda: SlateEnv(), 2**63, "seed=9223372036854775808 is too large: seeds are integers in [0, 2**63)"),
    (lambda: SlateVectorEnv(3), 2**63 - 2, "seed=9223372036854775806 is too large: user slot i gets the seed "
                                           "9223372036854775806 + i, so with num_envs=3 it must be at most 2**63 - 3 "
                                           "(9223372036854775805)"),
    (lambda: SlateVectorEnv(2), np.array([2**63, 1], dtype=np.uint64),
     "seed[0]=9223372036854775808 is too large: seeds are integers in [0, 2**63)"),
    (lambda: SlateEnv(), [3], "seed=[3]: SlateEnv takes one integer seed >= 0 (or None); a vector env takes one per "
                              "user"),
])
def test_a_seed_out_of_range_is_named_not_wrapped_around(make, seed, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make().reset(seed=seed)


def test_the_single_env_takes_numpy_integer_seeds_as_the_vector_env_does():
    assert same_observation(SlateEnv(**SMALL).reset(seed=np.int64(7))[0], SlateEnv(**SMALL).reset(seed=7)[0])


# --- Gymnasium's vector envs and make_vec --------------------------------------------------

def test_gymnasiums_sync_vector_env_samples_valid_slates():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=3, vectorization_mode="sync", **SMALL)
    assert env.action_space == SlateSpace(10, 3, batch=3)
    assert not env.action_space.contains(np.array([[0, 1, 2], [3, 4, 5], [6, 6, 7]]))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(20):  # each sample a valid slate per user: none is refused
        env.step(env.action_space.sample())


ASYNC_FORK = textwrap.dedent("""
    import gymnasium as gym
    import numpy as np
    import torch

    import recoworld

    torch.set_num_threads(2)
    x = torch.randn(256, 256)
    (x @ x).sum()  # the parent has run a parallel region, as a process that trains a network has
    kwargs = dict(slate_size=3, num_candidates=10, max_steps=3)
    forked = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="async",
                          vector_kwargs={"context": "fork"}, **kwargs)
    native = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    a, b = forked.reset(seed=5)[0], native.reset(seed=5)[0]
    same = all(np.array_equal(a[k], b[k]) for k in b)
    for _ in range(6):  # through an autoreset
        actions = np.array([[0, 1, 2], [3, 4, 5]])
        (a, ra, *_), (b, rb, *_) = forked.step(actions), native.step(actions)
        same &= all(np.allclose(a[k], b[k], atol=1e-5) for k in b) and np.array_equal(ra, rb)
    forked.close()
    print("same" if same else "different")
""")


def test_gymnasiums_async_vector_env_forks_without_hanging_and_agrees_with_the_native_one():
    # On Linux, AsyncVectorEnv (and SB3's SubprocVecEnv with start_method="fork") fork the
    # process; torch's OpenMP workers do not survive a fork, so an env that ran torch on
    # several threads in the child hung there for ever.
    process = subprocess.Popen([sys.executable, "-c", ASYNC_FORK], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the script and the workers it forked
        process.communicate()
        pytest.fail("gym.make_vec(..., vectorization_mode='async') with a forked worker hung")
    assert process.returncode == 0, err
    assert out.split() == ["same"]


def test_make_vec_passes_render_mode_none_on_and_the_vector_env_refuses_a_real_one():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point", render_mode=None)
    assert env.render_mode is None
    with pytest.raises(ValueError, match=re.escape(
            "render_mode='ansi'; SlateVectorEnv has no render modes: render a single env, "
            "gym.make('RecoWorld/Slate-v0', render_mode='ansi'), or leave it out")):
        gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point", render_mode="ansi")


def test_render_without_a_render_mode_returns_none_on_both_faces_and_the_vector_one_says_how_to_render():
    single, vector = SlateEnv(**SMALL), SlateVectorEnv(2, **SMALL)
    single.reset(seed=0)
    vector.reset(seed=0)
    assert single.render() is None
    with pytest.warns(UserWarning, match=re.escape("render a single env: gym.make('RecoWorld/Slate-v0', "
                                                   "render_mode='ansi')")):
        assert vector.render() is None


def test_a_misspelt_argument_is_named_with_the_one_meant():
    message = ("RecoWorld/Slate-v0 has no argument 'num_candidate' (did you mean 'num_candidates'?); its arguments "
               "are catalog, simulator, ")
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("RecoWorld/Slate-v0", num_candidate=20)
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make_vec("RecoWorld/Slate-v0", num_envs=2, vectorization_mode="vector_entry_point", num_candidate=20)


def test_the_sb3_face_refuses_a_step_before_reset_as_the_gymnasium_faces_do():
    env = SB3SlateVecEnv(num_envs=2, **SMALL)
    with pytest.raises(RuntimeError, match=re.escape("call reset() before step()")):
        env.step(np.array([[0, 1, 2], [3, 4, 5]]))


def test_the_sb3_face_keeps_each_users_reset_info_as_dummy_vec_env_does():
    env = SB3SlateVecEnv(num_envs=3, **SMALL)
    env.seed(10)
    env.reset()
    assert [int(info["episode_seed"]) for info in env.reset_infos] == [10, 11, 12]
    # A user reset within step_wait holds its next episode's reset info: that of a single
    # env's reset() after its first episode.
    next_seeds = []
    for seed in (10, 11, 12):
        single = SlateEnv(**SMALL)
        single.reset(seed=seed)
        next_seeds.append(int(single.reset()[1]["episode_seed"]))
    restarted = np.zeros(3, dtype=bool)
    while not restarted.all():
        _, _, done, _ = env.step(np.tile(np.arange(3), (3, 1)))
        for i in np.flatnonzero(done & ~restarted):
            assert int(env.reset_infos[i]["episode_seed"]) == next_seeds[i]
        restarted |= done


def test_the_sb3_face_refuses_reset_options_it_would_drop():
    env = SB3SlateVecEnv(num_envs=2, **SMALL)
    env.set_options({"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match=r"^SB3SlateVecEnv.reset takes no options \(set_options gave "):
        env.reset()
    env.reset()  # options are used once, as SB3's envs use them
