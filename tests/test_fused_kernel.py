"""The fused C kernel (StatisticalUsers(kernel="c")) against the torch reference."""

import os
import shutil

import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, rng
from recoworld.envs import SlateEnv, SlateVectorEnv
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers, fused

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                reason="no C compiler to build the fused kernel")

CATALOG = Catalog.synthetic(300, seed=3)


def test_kernel_uniforms_equal_recoworld_rng_bit_for_bit():
    keys = torch.cat([rng.user_keys(torch.arange(500)), torch.tensor([0, -1, 2**31 - 1, -2**31], dtype=torch.int32)])
    counters = torch.randint(-2**31, 2**31 - 1, (len(keys),), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    for stream in (0, 10, 101, 2**40 + 7):
        expected = rng.uniform(keys, counters, stream, 43)
        assert torch.equal(fused.uniform(keys, counters, stream, 43).view(torch.int32), expected.view(torch.int32))


def _copy_state(source: StatisticalUsers, target: StatisticalUsers) -> None:
    for name, value in vars(source).items():
        if isinstance(value, torch.Tensor):
            setattr(target, name, value.clone())
    for name, value in vars(source.instruction).items():
        setattr(target.instruction, name, value.clone())


def test_c_kernel_responses_match_the_torch_path_step_by_step():
    # rating_quality on, so that every term of the rating is exercised.
    config = StatisticalUserConfig(rating_quality=0.3)
    reference, fast = StatisticalUsers(CATALOG, config), StatisticalUsers(CATALOG, config, kernel="c")
    reference.reset(300, seed=5)
    fast.reset(300, seed=5)
    generator = torch.Generator().manual_seed(0)
    decisions = mismatches = 0
    saw_instructions = False
    for _ in range(20):
        # Step both from the same state, so that one rounding-close draw cannot make the
        # trajectories part; users who churned keep stepping (their state is still valid).
        reference.churned[:] = False
        _copy_state(reference, fast)
        slates = torch.rand(300, CATALOG.n_items, generator=generator).argsort(1)[:, :10]
        expected, got = reference.respond(slates), fast.respond(slates)
        saw_instructions |= bool(expected.instruction_in_force.any())
        for name, want in expected.tensor_fields().items():
            have = got.tensor_fields()[name]
            if want.dtype.is_floating_point:
                torch.testing.assert_close(have, want, atol=1e-5, rtol=0, msg=name)
            else:
                decisions += want.numel()
                mismatches += int((have != want).sum())
        for name in ("satiation", "interest", "familiar"):
            torch.testing.assert_close(getattr(fast, name), getattr(reference, name), atol=1e-5, rtol=0, msg=name)
        assert torch.equal(fast.recent_clicks, reference.recent_clicks)
    assert saw_instructions, "the test must cover compliance"
    assert mismatches <= 0.001 * decisions


def test_c_kernel_is_deterministic():
    runs = []
    for _ in range(2):
        users = StatisticalUsers(CATALOG, kernel="c")
        users.reset(3000, seed=9)  # large enough to be split over threads
        slates = torch.arange(10).expand(3000, 10) * 7
        responses = []
        for _ in range(3):
            users.churned[:] = False  # keep every user stepping
            responses.append(users.respond(slates))
        runs.append(responses)
    for first, second in zip(*runs):
        for name, value in first.tensor_fields().items():
            assert torch.equal(value, second.tensor_fields()[name]), name


def test_vector_env_with_c_kernel_matches_single_envs_exactly():
    n, steps = 4, 60
    venv = SlateVectorEnv(n, catalog=CATALOG, max_steps=12, kernel="c")
    envs = [SlateEnv(catalog=CATALOG, max_steps=12, kernel="c") for _ in range(n)]
    vobs, _ = venv.reset(seed=21)
    for i, env in enumerate(envs):
        env.reset(seed=21 + i)
    actions_rng = np.random.default_rng(1)
    done, episodes_ended = [False] * n, 0
    for _ in range(steps):
        actions = np.stack([actions_rng.permutation(50)[:10] for _ in range(n)])
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(envs):
            if done[i]:
                obs, rew, term, trunc = env.reset()[0], 0.0, False, False
            else:
                obs, rew, term, trunc, info = env.step(actions[i])
                assert np.array_equal(info["watch_fraction"], vinfo["watch_fraction"][i])
            done[i] = term or trunc
            episodes_ended += done[i]
            assert (rew, term, trunc) == (vrew[i], vterm[i], vtrunc[i])
            for key in obs:  # the kernel is per user: exactly equal, not just close
                assert np.array_equal(obs[key], vobs[key][i]), key
    assert episodes_ended >= n, "the test must cover autoresets"


def test_kernel_is_built_into_the_cache_and_missing_compiler_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path))
    monkeypatch.setattr(fused, "_LIBRARY", None)
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(fused.CompilerNotFoundError, match="no-such-compiler.*kernel='torch'"):
        StatisticalUsers(CATALOG, kernel="c")
    monkeypatch.delenv("CC")
    StatisticalUsers(CATALOG, kernel="c")
    assert len(list((tmp_path / "kernels").glob("fused_step-*.so"))) == 1


def test_bad_kernel_choices_are_explained():
    with pytest.raises(ValueError, match="kernel='gpu'; choose one of"):
        StatisticalUsers(CATALOG, kernel="gpu")
    with pytest.raises(ValueError, match="brings its own"):
        SlateVectorEnv(2, simulator=StatisticalUsers(CATALOG), kernel="c")
