"""kernel="auto" (the default), the prebuilt kernels, the kernel on record, the env's torch
threads, and the device setting."""

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.kernels import build, compiler
from recoworld.kernels.build import CompilerNotFoundError
from recoworld.kernels.placement import one_cpu
from recoworld.simulators import StatisticalUsers

CATALOG = Catalog.synthetic(200, seed=0)


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """A process that has loaded no kernel, with an empty cache and no C compiler."""
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(build, "_LIBRARIES", {})
    monkeypatch.setattr(build, "_AVAILABLE", None)


def test_auto_runs_the_c_kernels_on_cpu_and_names_them_everywhere():
    users = StatisticalUsers(CATALOG)
    assert users.kernel == "c" and users.holds_idle
    env = SlateVectorEnv(3, catalog=CATALOG)
    assert env.world.kernels == {"bookkeeping": "c", "users": "c"}
    _, info = env.reset(seed=0)
    assert list(info["kernel"]) == ["c"] * 3
    single = SlateEnv(catalog=CATALOG, kernel="torch")
    assert single.reset(seed=0)[1]["kernel"] == "torch"


def test_auto_runs_torch_without_a_compiler_and_c_says_why(no_compiler):
    users = StatisticalUsers(CATALOG)
    assert users.kernel == "torch"
    env = SlateVectorEnv(2, catalog=CATALOG)
    assert env.world.kernels == {"bookkeeping": "torch", "users": "torch"}
    with pytest.raises(CompilerNotFoundError, match="'no-such-compiler' is not on PATH.*kernel='torch'"):
        StatisticalUsers(CATALOG, kernel="c")


def test_auto_runs_torch_for_a_simulator_that_changes_the_utility():
    class Contrarian(StatisticalUsers):
        def _utility(self, items, feats, weights):
            v, satiation, distance = super()._utility(items, feats, weights)
            return -v, satiation, distance

    assert Contrarian(CATALOG).kernel == "torch"
    with pytest.raises(ValueError, match="changes; use kernel='torch' or 'auto'"):
        Contrarian(CATALOG, kernel="c")
    # The env's bookkeeping still runs in C beside it.
    assert SlateVectorEnv(2, simulator=Contrarian(CATALOG)).world.kernels == {"bookkeeping": "c", "users": "torch"}


def test_a_package_build_ships_kernels_that_load_without_compiler_or_cache(tmp_path, monkeypatch, no_compiler):
    package = tmp_path / "recoworld" / "kernels"
    monkeypatch.delenv("CC")
    (built,) = compiler.prebuild(package, ("rng.c",))  # one kernel: the others build alike
    assert built == package / "prebuilt" / compiler.library_name(compiler.HERE / "rng.c")
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(build, "HERE", package)  # where load looks for prebuilt/
    assert build.load(compiler.HERE / "rng.c").recoworld_user_keys
    assert not (tmp_path / "cache" / "kernels").exists(), "the prebuilt libraries were not used"


def test_a_prebuilt_library_of_other_sources_is_not_used(tmp_path, monkeypatch, no_compiler):
    package = tmp_path / "kernels"
    (package / compiler.PREBUILT).mkdir(parents=True)
    (package / compiler.PREBUILT / "rng-0000000000000000.so").write_bytes(b"stale")
    monkeypatch.setattr(build, "HERE", package)
    with pytest.raises(CompilerNotFoundError):
        build.load(compiler.HERE / "rng.c")


def test_the_env_works_on_one_torch_thread_and_gives_the_callers_back():
    seen = []

    class Spy(StatisticalUsers):
        def respond(self, slates):
            seen.append(torch.get_num_threads())
            return super().respond(slates)

    env = SlateVectorEnv(4, simulator=Spy(CATALOG))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        env.reset(seed=0)
        env.step(np.tile(np.arange(10), (4, 1)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_kernel_threads_follow_recoworld_threads_then_omp_num_threads_then_the_cores(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("RECOWORLD_THREADS", raising=False)
    for omp, expected in (("3", 3), ("4,2", 4), ("0", cores), ("many", cores)):
        monkeypatch.setenv("OMP_NUM_THREADS", omp)  # as Ray and joblib's workers set it
        assert build.threads() == expected, omp
    monkeypatch.setenv("RECOWORLD_THREADS", "5")
    assert build.threads() == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("RECOWORLD_THREADS")
    assert build.threads() == cores


def test_one_cpu_puts_torch_and_the_kernels_on_one_thread_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("RECOWORLD_THREADS", "3")
    before = torch.get_num_threads()
    try:
        assert build.threads() == 3
        one_cpu()
        assert (torch.get_num_threads(), build.threads()) == (1, 1)
        build.set_threads(None)
        assert build.threads() == 3
    finally:
        build.set_threads(None)
        torch.set_num_threads(before)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"kernel threads {bad!r}; give a whole number >= 1, or None"):
            build.set_threads(bad)


def test_candidate_features_written_by_the_c_kernel_are_the_catalogs():
    env = SlateVectorEnv(5, catalog=CATALOG, kernel="c")
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(np.tile(np.arange(10), (5, 1)))
        assert np.array_equal(obs["candidate_features"], CATALOG.features.numpy()[obs["candidate_ids"]])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
@pytest.mark.parametrize("make", [lambda: StatisticalUsers(CATALOG, device="cuda"),
                                  lambda: SlateVectorEnv(2, catalog=CATALOG, device="cuda")])
def test_cuda_without_a_gpu_is_an_error_naming_the_setting(make):
    with pytest.raises(ValueError, match=r"device='cuda', but .*set device='cpu' \(with Hydra: device=cpu\)"):
        make()


def test_an_unknown_device_is_named():
    with pytest.raises(ValueError, match="device='gpu' is not a torch device"):
        StatisticalUsers(CATALOG, device="gpu")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
def test_the_env_runs_on_cuda_with_the_torch_kernel_and_agrees_with_cpu():
    envs = [SlateVectorEnv(64, catalog=CATALOG, device=device, kernel="torch", max_steps=8)
            for device in ("cpu", "cuda")]
    assert SlateVectorEnv(2, catalog=CATALOG, device="cuda").world.kernels == {"bookkeeping": "torch",
                                                                              "users": "torch"}
    assert envs[1].world.simulator.state.interest.is_cuda and envs[1].world.state.history_items.is_cuda
    for env in envs:
        env.reset(seed=3)
    clicks = []
    for _ in range(12):  # past max_steps: autoresets on both devices
        actions = np.tile(np.arange(10), (64, 1))
        (obs_cpu, *_, info_cpu), (obs_cuda, *_, info_cuda) = (env.step(actions) for env in envs)
        assert np.array_equal(obs_cpu["candidate_ids"], obs_cuda["candidate_ids"])  # the same draws
        np.testing.assert_allclose(info_cpu["satisfaction"], info_cuda["satisfaction"], atol=1e-4)
        clicks.append((info_cpu["clicked"] == info_cuda["clicked"]).mean())
    assert np.mean(clicks) > 0.99  # a draw within rounding of its threshold may differ


@CUDA
def test_c_on_cuda_is_refused_and_auto_runs_torch():
    with pytest.raises(ValueError, match="kernel='c' runs on CPU, but device='cuda"):
        StatisticalUsers(CATALOG, device="cuda", kernel="c")
    assert StatisticalUsers(CATALOG, device="cuda").kernel == "torch"
