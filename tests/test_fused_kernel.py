"""The C kernels (recoworld.kernels) against the torch reference."""

import ctypes
import os
import shutil
from dataclasses import fields

import numpy as np
import pytest
import torch

from kernel_support import copy_state
import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, rng
from recoworld.envs import SlateEnv, SlateVectorEnv
from recoworld.kernels import CompilerNotFoundError, LayoutMismatchError, build, users, world
from recoworld.kernels.users import UserState
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.population import SyntheticPopulation

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                reason="no C compiler to build the fused kernel")

CATALOG = Catalog.synthetic(300, seed=3)


def test_rng_hashes_in_c_equal_the_torch_ones_bit_for_bit(monkeypatch):
    rng.enable_native()
    seeds = torch.cat([torch.arange(500) * 7919, torch.tensor([0, 2**31 - 1, 2**32 + 5, 2**62 + 3, 2**63 - 1])])
    keys = rng.user_keys(seeds)
    counters = torch.randint(-2**31, 2**31 - 1, (len(keys),), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    native = [rng.user_keys(seeds), rng.derive(seeds, 7), rng.derive(seeds, seeds % 1000)]
    native += [draw(keys, counters, stream, 43) for stream in (0, 10, 101, 2**40 + 7)
               for draw in (rng.bits, rng.uniform, rng.normal)]
    monkeypatch.setattr(rng, "_NATIVE", None)  # the torch reference
    reference = [rng.user_keys(seeds), rng.derive(seeds, 7), rng.derive(seeds, seeds % 1000)]
    reference += [draw(keys, counters, stream, 43) for stream in (0, 10, 101, 2**40 + 7)
                  for draw in (rng.bits, rng.uniform, rng.normal)]
    for have, want in zip(native, reference):
        assert have.dtype == want.dtype and torch.equal(have, want)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="seed -3 is negative"):
        rng.user_keys(torch.tensor([-3]))


def test_hashes_fall_back_to_the_torch_ops_without_a_compiler(tmp_path, monkeypatch):
    seeds = torch.arange(100) * 7919
    native_keys = rng.user_keys(seeds)
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(build, "_LIBRARIES", {})
    monkeypatch.setattr(rng, "_NATIVE", None)
    monkeypatch.setattr(rng, "_NATIVE_TRIED", False)  # a fresh process
    assert torch.equal(rng.user_keys(seeds), native_keys)
    assert rng._NATIVE is None and rng._NATIVE_TRIED  # tried once, then the torch ops
    assert not (tmp_path / "kernels").exists() or not any((tmp_path / "kernels").iterdir())


# rating_quality on, so that every term of the rating is exercised; then the dynamics away
# from their defaults: Weibull gaps that shorten after long sessions, a longer first
# session less tied to patience, spread between users, and fewer returns after it, most of
# them sooner, quick visits, a session theme, no film clicked twice, a sharper quality
# curve, a stronger peak-end memory.
KERNEL_CONFIGS = {"defaults": dict(rating_quality=0.3),
                  "dynamics": dict(rating_quality=0.3, gap_shape=0.6, gap_length_elasticity=0.4, leave_first_session=-1.5,
                                   first_session_patience=0.5, first_session_spread=1.0, quality_scale=0.5, peak_end_weight=0.9,
                                   item_satiation_decay=0.2, satiation_rate=2.0, return_first_session=-0.8,
                                   gap_first_session=-1.2, gap_first_share=0.6,
                                   quick_visit_share=0.3, theme_weight=2.0, rewatch=False)}


@pytest.mark.parametrize("overrides", KERNEL_CONFIGS.values(), ids=KERNEL_CONFIGS.keys())
def test_c_kernel_responses_match_the_torch_path_step_by_step(overrides):
    config = StatisticalUserConfig(**overrides)
    reference, fast = StatisticalUsers(CATALOG, config, kernel="torch"), StatisticalUsers(CATALOG, config, kernel="c")
    reference.reset(300, seed=5)
    fast.reset(300, seed=5)
    generator = torch.Generator().manual_seed(0)
    decisions = mismatches = 0
    saw_instructions = saw_voices = saw_returns = False
    for _ in range(20):
        # Step both from the same state, so that one rounding-close draw cannot make the
        # trajectories part; users who churned keep stepping (their state is still valid).
        reference.churned[:] = False
        copy_state(reference, fast)
        slates = torch.rand(300, CATALOG.n_items, generator=generator).argsort(1)[:, :10]
        expected, got = reference.respond(slates), fast.respond(slates)
        saw_instructions |= bool(expected.instruction_in_force.any())
        saw_voices |= bool(expected.instruction.active.any())
        saw_returns |= bool(expected.returned.any())
        for name, want in expected.tensor_fields().items():
            have = got.tensor_fields()[name]
            if want.dtype.is_floating_point:
                torch.testing.assert_close(have, want, atol=1e-5, rtol=0, msg=name)
            else:
                decisions += want.numel()
                mismatches += int((have != want).sum())
        for name, value in vars(expected.instruction).items():
            decisions += value.numel()
            mismatches += int((getattr(got.instruction, name) != value).sum())
        decisions += len(expected.instruction_text)
        mismatches += sum(a != b for a, b in zip(expected.instruction_text, got.instruction_text))
        for name in ("satiation", "interest", "familiar", "satisfaction", "novelty_seeking", "session_memory",
                     "session_mean", "session_peak", "recent_satiation", "theme"):
            torch.testing.assert_close(getattr(fast, name), getattr(reference, name), atol=1e-5, rtol=0, msg=name)
        for name in ("recent_clicks", "counter", "session_index", "session_step", "instruction_steps_left", "watched"):
            assert torch.equal(getattr(fast, name), getattr(reference, name)), name
        for name, value in vars(reference.instruction).items():
            assert torch.equal(getattr(fast.instruction, name), value), name
    assert saw_instructions and saw_voices and saw_returns, "the test must cover compliance, voices and returns"
    assert mismatches <= 0.001 * decisions


class _BiasedRaters(SyntheticPopulation):
    """Synthetic users with a per-user rating bias, handed out as column views of one
    tensor (a population may give any layout), fitted on real users (their source)."""

    def sample(self, keys, catalog):
        traits = super().sample(keys, catalog)
        wide = torch.stack([traits.patience, (keys % 7).float() / 7 - 0.5], 1)
        traits.patience, traits.rating_bias = wide[:, 0], wide[:, 1]
        traits.source_user = keys.abs() % 943
        return traits


DRAWN = {"interest", "familiar", "patience", "novelty_trait", "activity", "popularity_bias"}


@pytest.mark.parametrize("population", [SyntheticPopulation(), _BiasedRaters()], ids=["synthetic", "rating_bias"])
def test_c_kernel_starts_new_users_as_the_torch_path_does(population):
    reference = StatisticalUsers(CATALOG, population=population, kernel="torch")
    fast = StatisticalUsers(CATALOG, population=population, kernel="c")
    reference.reset(200, seed=4)
    fast.reset(200, seed=4)
    slates = torch.arange(10).expand(200, 10) * 13
    for _ in range(6):  # leave state behind for the restart to clear: satiation, history, instructions
        reference.churned[:] = False
        reference.respond(slates)
    copy_state(reference, fast)
    slots = torch.arange(3, 200, 4)
    for simulator in (reference, fast):
        simulator.reset(200, seed=torch.arange(len(slots)) + 1000, users=slots)
    assert bool(reference.instruction.more[~torch.isin(torch.arange(200), slots)].any()), "state must be left behind"
    if isinstance(population, _BiasedRaters):
        assert float(fast.rating_bias[slots].abs().sum()) > 0 and bool((fast.source_user[slots] > 0).all())
    # torch.erfinv and the kernel's agree to rounding; so do the traits the kernel draws
    # itself for the synthetic population (the other's come from its sample, bit for bit).
    rounded = {"novelty_seeking"} | (DRAWN if type(population) is SyntheticPopulation else set())
    for name, want in _state(reference, torch.arange(200)).items():
        have = _state(fast, torch.arange(200))[name]
        if name in rounded:
            torch.testing.assert_close(have, want, atol=1e-5, rtol=0, msg=name)
        else:
            assert have.dtype == want.dtype and torch.equal(have, want), name


def _state(users: StatisticalUsers, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    state = {field.name: getattr(users.state, field.name)[rows].clone() for field in fields(UserState)
             if isinstance(getattr(users.state, field.name), torch.Tensor)}
    return state | {f"instruction.{name}": value[rows].clone() for name, value in vars(users.instruction).items()}


def test_c_kernel_leaves_idle_slots_untouched_and_steps_the_others_as_without_them():
    users, alone = StatisticalUsers(CATALOG, kernel="c"), StatisticalUsers(CATALOG, kernel="c")
    assert users.holds_idle and not StatisticalUsers(CATALOG, kernel="torch").holds_idle
    users.reset(64, seed=3)
    alone.reset(64, seed=3)
    idle = torch.zeros(64, dtype=torch.bool)
    idle[::5] = True
    users.churned[idle] = True  # idle slots may be churned: they are not stepped
    before = _state(users, idle.nonzero().flatten())
    slates = torch.arange(10).expand(64, 10) * 11
    for _ in range(8):
        alone.churned[:] = users.churned[~idle] = False
        response, expected = users.respond_valid(slates, idle), alone.respond_valid(slates)
        stepped = ~idle
        assert torch.equal(response.clicked[stepped], expected.clicked[stepped])
        assert torch.equal(response.satisfaction[stepped], expected.satisfaction[stepped])
        assert not response.clicked[idle].any() and response.instruction_text[0] is None
    after = _state(users, idle.nonzero().flatten())
    for name, value in before.items():
        assert torch.equal(after[name], value), name


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
    monkeypatch.setattr(build, "_LIBRARIES", {})
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(CompilerNotFoundError, match="no-such-compiler.*kernel='torch'"):
        StatisticalUsers(CATALOG, kernel="c")
    monkeypatch.delenv("CC")
    StatisticalUsers(CATALOG, kernel="c")
    assert len(list((tmp_path / "kernels").glob("users_step-*.so"))) == 1


def _slate_choice(n_users: int, bad_row: int | None = None):
    """The SlateChoice that turns every user's slate of candidate indices into items (one
    row bad if asked), the arrays it points into (held by the caller), the slates it writes,
    and the items numpy gives."""
    from recoworld.kernels.world import SlateChoice

    # numpy only: a forked child must not run torch ops (its OpenMP threads are the parent's).
    rng = np.random.default_rng(0)
    n_items, C, K = 97, 20, 5
    offsets = (np.arange(C)[None, :] * np.array([1, 3, 7])[:, None]) % n_items
    draw = np.stack([rng.integers(0, n_items, n_users), rng.integers(0, 3, n_users)], 1)
    positions = np.argsort(rng.random((n_users, C)), 1)[:, :K].copy()
    if bad_row is not None:
        positions[bad_row, 1] = positions[bad_row, 0]  # a repeated index
    expected = torch.from_numpy((draw[:, :1] + np.take_along_axis(offsets[draw[:, 1]], positions, 1)) % n_items)
    slates = torch.from_numpy(np.full((n_users, K), -1, dtype=np.int64))
    offsets, draw, positions = (torch.from_numpy(a) for a in (offsets, draw, positions))
    choice = SlateChoice(K=K, C=C, n_items=n_items, positions=build.pointer(positions), draw=build.pointer(draw),
                         offsets=build.pointer(offsets), slates=build.pointer(slates))
    return choice, (positions, draw, offsets), slates, expected


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_run_parallel_covers_each_user_once_in_order_and_passes_codes_on(monkeypatch, threads):
    from recoworld.kernels.world import library

    monkeypatch.setenv("RECOWORLD_THREADS", threads)
    take = library().recoworld_take_slates
    choice, _arrays, slates, expected = _slate_choice(10_000)
    codes = build.run_parallel(take, choice, 10_000)
    assert torch.equal(slates, expected) and codes == [-1] * len(codes)
    chunk = max(build.MIN_USERS_PER_CHUNK, -(-10_000 // (build.CHUNKS_PER_THREAD * int(threads))))
    assert len(codes) == -(-10_000 // chunk)
    choice, _arrays, _slates, _expected = _slate_choice(10_000, bad_row=7777)
    codes = build.run_parallel(take, choice, 10_000)  # each chunk reports its first bad row
    assert codes[7777 // chunk] == 7777 and sum(code >= 0 for code in codes) == 1


def _steps_in_a_fork(queue) -> None:
    from recoworld.kernels.world import library

    choice, _arrays, slates, expected = _slate_choice(5_000)
    build.run_parallel(library().recoworld_take_slates, choice, 5_000)
    queue.put(bool((slates.numpy() == expected.numpy()).all()))


def test_a_forked_process_runs_the_kernels_on_threads_of_its_own(monkeypatch):
    """The parent's pool threads do not exist in a fork's child: the child starts its own."""
    import multiprocessing

    from recoworld.kernels.world import library

    monkeypatch.setenv("RECOWORLD_THREADS", "2")
    choice, _arrays, _slates, _expected = _slate_choice(5_000)
    build.run_parallel(library().recoworld_take_slates, choice, 5_000)  # the parent's pool is up
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_steps_in_a_fork, args=(queue,))
    child.start()
    assert queue.get(timeout=60) is True
    child.join(timeout=60)
    assert child.exitcode == 0


@pytest.mark.parametrize("tensor", [torch.zeros(4, 4).T, torch.zeros(4, device="meta")], ids=["strided", "not_cpu"])
def test_kernel_arguments_must_be_contiguous_cpu_tensors(tensor):
    with pytest.raises(ValueError, match="contiguous CPU tensors; use kernel='torch'"):
        build.pointer(tensor)
    assert build.pointer(torch.zeros(4)) != 0


def test_bad_kernel_choices_are_explained():
    with pytest.raises(ValueError, match="kernel='gpu'; choose one of"):
        StatisticalUsers(CATALOG, kernel="gpu")
    with pytest.raises(ValueError, match="kernel='gpu'; choose one of"):
        SlateVectorEnv(2, catalog=CATALOG, kernel="gpu")


def test_c_bookkeeping_of_the_env_equals_the_torch_bookkeeping_exactly():
    # Both envs' users step with the torch kernel, so any difference is the env's own.
    envs = [SlateVectorEnv(64, simulator=StatisticalUsers(CATALOG, kernel="torch"), max_steps=15, kernel=kernel)
            for kernel in ("torch", "c")]
    for env in envs:
        env.reset(seed=4)
    actions_rng = np.random.default_rng(2)
    autoresets = voices = 0
    for _ in range(40):
        actions = np.stack([actions_rng.permutation(50)[:10] for _ in range(64)])
        (obs_t, rew_t, term_t, trunc_t, info_t), (obs_c, rew_c, term_c, trunc_c, info_c) = (
            env.step(actions) for env in envs)
        for key in obs_t:
            assert np.array_equal(obs_t[key], obs_c[key]), key
        for a, b in ((rew_t, rew_c), (term_t, term_c), (trunc_t, trunc_c), (info_t["clicked"], info_c["clicked"])):
            assert np.array_equal(a, b)
        autoresets += int(info_t["autoreset"].sum())
        voices += sum(text is not None for text in info_t["instruction_text"])
    assert autoresets > 0 and voices > 0, "the test must cover autoresets and instructions"


def test_bad_slates_are_named_on_the_c_fast_path_too():
    env = SlateVectorEnv(3, catalog=CATALOG, kernel="c")
    env.reset(seed=0)
    actions = np.tile(np.arange(10), (3, 1))
    actions[1, 4] = 2
    with pytest.raises(ValueError, match=r"action\[1\] repeats candidate index 2"):
        env.step(actions)
    actions[1, 4] = 50
    with pytest.raises(ValueError, match=r"action\[1\]\[4\] is candidate index 50, but there are 50 candidates"):
        env.step(actions)


@pytest.mark.parametrize("mirror, kernel", [(users.UserStep, users.library), (users.Newcomers, users.library),
                                            (users.SyntheticLaw, users.library), (world.WorldStep, world.library)],
                         ids=["UserStep", "Newcomers", "SyntheticLaw", "WorldStep"])
def test_kernel_structs_match_their_ctypes_mirrors(mirror, kernel):
    build.check_layout(kernel(), mirror)  # raises on any difference


def test_a_ctypes_mirror_that_differs_from_the_c_struct_is_refused():
    fields_ = list(users.Newcomers._fields_)
    swapped = build.struct_of("Newcomers", dict([fields_[1], fields_[0], *fields_[2:]]))
    with pytest.raises(LayoutMismatchError, match=r"struct Newcomers: field 'key' lies at byte 8 \(8 bytes\) in C but"):
        build.check_layout(users.library(), swapped)
    narrow = build.struct_of("WorldStep", {name: ctypes.c_uint32 if name == "candidate_stream" else kind
                                           for name, kind in world.WorldStep._fields_[:-1]})
    with pytest.raises(LayoutMismatchError, match=r"struct WorldStep: .*field 'totals' is not|the C struct lists"):
        build.check_layout(world.library(), narrow)
    extra = build.struct_of("UserStep", {**dict(users.UserStep._fields_), "mood": ctypes.c_float})
    with pytest.raises(LayoutMismatchError, match=r"struct UserStep: .*field 'mood' is not in the C struct"):
        build.check_layout(users.library(), extra)
    with pytest.raises(LayoutMismatchError, match="exports no recoworld_layout_Mood"):
        build.check_layout(users.library(), build.struct_of("Mood", {"calm": ctypes.c_float}))
