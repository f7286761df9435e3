"""The C kernels keep their struct of pointers from one step to the next, and use it again
only where building it afresh would give the same struct: every tensor it points to
replaced, reallocated in place, made non-contiguous, another state object, other sizes, is
picked up. Each test runs twin envs or simulators, one whose kernels never reuse a struct
(the previous behaviour, a struct built at every call), and asks for the same results bit
for bit."""

import copy
import os
import re
import shutil
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from recoworld import Catalog
from recoworld.envs import SlateEnv, SlateVectorEnv
from recoworld.kernels import build, users, world
from recoworld.kernels.users import UserState
from recoworld.kernels.world import WorldState
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.types import Instruction

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                reason="no C compiler to build the kernels")

CATALOG = Catalog.synthetic(150, seed=3)
# Users who leave and churn often (restarts at many steps), and who remember the items they
# watched (W > 0 words of the watched bits).
CONFIG = StatisticalUserConfig(rewatch=False, leave_base=-1.0, return_base=-0.5)
N_USERS = 10  # as many as the history's length (10): a transposed [B, H] keeps its shape


def never_reusing(kernel) -> None:
    """Make ``kernel`` build its struct at every call, as it did before it kept one."""
    kernel._reuse_frame = lambda key: None


def twin_envs(**kwargs) -> tuple[SlateVectorEnv, SlateVectorEnv]:
    """Two equal envs of C kernels; the second's kernels never reuse a struct."""
    envs = [SlateVectorEnv(N_USERS, simulator=StatisticalUsers(CATALOG, CONFIG, kernel="c"), slate_size=5,
                           num_candidates=20, max_steps=15, kernel="c", **kwargs) for _ in range(2)]
    never_reusing(envs[1].world.simulator.backend)
    never_reusing(envs[1].world.bookkeeping)
    for env in envs:
        env.reset(seed=7)
    return envs[0], envs[1]


def assert_same_user_state(a: UserState, b: UserState) -> None:
    for field in fields(UserState):
        if field.name != "instruction":
            assert torch.equal(getattr(a, field.name), getattr(b, field.name)), field.name
    for name in ("active", "more", "less", "novelty"):
        assert torch.equal(getattr(a.instruction, name), getattr(b.instruction, name)), name


def step_both(envs, actions_rng: np.random.Generator, steps: int) -> int:
    """Step both envs with the same actions, checking every result and the users' state;
    returns how many slots ended an episode."""
    ended = 0
    for _ in range(steps):
        actions = np.argsort(actions_rng.random((N_USERS, 20)), 1)[:, :5]
        (obs_a, reward_a, term_a, trunc_a, info_a), (obs_b, reward_b, term_b, trunc_b, info_b) = (
            env.step(actions) for env in envs)
        for key in obs_a:
            assert np.array_equal(obs_a[key], obs_b[key]), key
        assert np.array_equal(reward_a, reward_b)
        assert np.array_equal(term_a, term_b) and np.array_equal(trunc_a, trunc_b)
        for key in ("clicked", "watch_fraction", "satisfaction", "leave_hazard", "return_gap"):
            assert np.array_equal(info_a[key], info_b[key]), key
        assert_same_user_state(envs[0].world.simulator.state, envs[1].world.simulator.state)
        ended += int((term_a | trunc_a).sum())
    return ended


def test_every_pointer_of_a_struct_is_either_kept_or_set_at_each_call():
    pointers = lambda struct: {name for name, kind in struct._fields_ if kind is build.ctypes.c_void_p}  # noqa: E731
    assert set(users.LASTING) | {"slates", "idle", *users.RESPONSE} == pointers(users.UserStep)
    per_call = {*world.STEP_INPUTS, *world.OBSERVATION, "features_obs", "starting", "start_keys"}
    assert set(world.LASTING) | per_call == pointers(world.WorldStep)
    assert not set(users.LASTING) & {"slates", "idle", *users.RESPONSE}
    assert not set(world.LASTING) & per_call


@pytest.mark.parametrize("candidate_features", [False, True])
def test_a_vector_env_with_restarts_and_churn_steps_as_with_a_struct_built_at_every_call(monkeypatch,
                                                                                          candidate_features):
    envs = twin_envs(candidate_features=candidate_features)
    # At each call of a reusing kernel, the struct it hands the kernel holds what a struct
    # built afresh would hold, but for the call's own pointers.
    calls, reused = [], {"users": 0, "bookkeeping": 0}
    for name, kernel in (("users", envs[0].world.simulator.backend), ("bookkeeping", envs[0].world.bookkeeping)):
        def stepping(state, *args, _step=kernel.step, _kernel=kernel, **kwargs):
            calls.append((_kernel, state))
            return _step(state, *args, **kwargs)

        def reusing(key, _kernel=kernel, _name=name):
            frame = type(_kernel)._reuse_frame(_kernel, key)
            reused[_name] += frame is not None
            return frame

        kernel.step, kernel._reuse_frame = stepping, reusing
    run_parallel = build.run_parallel

    def checked(function, args, n, *rest):
        if isinstance(args, (users.UserStep, world.WorldStep)) and calls:
            kernel, state = calls.pop()
            fresh = kernel._frame(state, K=0)
            sizes = ["D", "G", "H", "W", *(f"{s}_stream" for s in users.STREAMS)] \
                if isinstance(args, users.UserStep) else ["H", "G", "C", "n_items", "n_strides", "D"]
            for name in (*_lasting_names(args), *sizes):
                assert getattr(args, name) == getattr(fresh, name), name
        return run_parallel(function, args, n, *rest)

    monkeypatch.setattr(build, "run_parallel", checked)
    ended = step_both(envs, np.random.default_rng(0), 300)
    assert ended > 100  # restarts (autoresets) and churn at many steps
    assert reused["users"] > 250 and reused["bookkeeping"] > 250
    assert not calls


def test_a_single_env_whose_resets_allocate_new_users_steps_as_with_a_struct_built_at_every_call():
    # SlateEnv's reset allocates its user's state afresh: each episode's first step builds again.
    envs = [SlateEnv(catalog=CATALOG, simulator_config=CONFIG, slate_size=5, num_candidates=20, max_steps=15,
                     kernel="c") for _ in range(2)]
    never_reusing(envs[1].world.simulator.backend)
    never_reusing(envs[1].world.bookkeeping)
    actions_rng, episodes = np.random.default_rng(2), 0
    for env in envs:
        env.reset(seed=11)
    for _ in range(300):
        action = actions_rng.choice(20, 5, replace=False)
        (obs_a, reward_a, term_a, trunc_a, _), (obs_b, reward_b, term_b, trunc_b, _) = (env.step(action)
                                                                                          for env in envs)
        for key in obs_a:
            assert np.array_equal(obs_a[key], obs_b[key]), key
        assert (reward_a, term_a, trunc_a) == (reward_b, term_b, trunc_b)
        assert_same_user_state(envs[0].world.simulator.state, envs[1].world.simulator.state)
        if term_a or trunc_a:
            episodes += 1
            for env in envs:
                env.reset()
    assert episodes > 10


def _lasting_names(struct) -> tuple[str, ...]:
    return users.LASTING if isinstance(struct, users.UserStep) else world.LASTING


# Changes between two steps, applied to both twins: (world, kept) -> None. ``kept`` holds the
# tensors replaced, so that a struct still pointing to them would read their old values
# (wrong results, which the test sees) rather than freed memory.
def replace_field(world, kept):
    s = world.simulator.state
    kept.append(s.satisfaction)
    s.satisfaction = (s.satisfaction * 0.25).contiguous()


def replace_interest(world, kept):
    s = world.simulator.state
    kept.append(s.interest)
    s.interest = s.interest.roll(1, 0).contiguous()


def set_in_place(world, kept):
    s = world.simulator.state
    kept.append(s.patience[:])  # a view: holds the old storage after set_
    s.patience.set_(torch.full_like(s.patience, 0.97))


def resize_in_place(world, kept):
    s = world.simulator.state
    kept.append(s.recent_satiation[:])
    B, H = s.recent_satiation.shape
    s.recent_satiation.resize_(4 * B, H).resize_(B, H)  # the same shape, moved to a larger block
    s.recent_satiation.fill_(3.0)


def data_assigned(world, kept):
    s = world.simulator.state
    kept.append(s.session_memory[:])
    s.session_memory.data = torch.zeros_like(s.session_memory)


def replace_instruction(world, kept):
    s = world.simulator.state
    kept.append(s.instruction)
    B, G = s.instruction.more.shape
    s.instruction = Instruction(torch.ones(B, dtype=torch.bool), torch.ones(B, G, dtype=torch.bool),
                                torch.zeros(B, G, dtype=torch.bool), torch.ones(B, dtype=torch.int8))
    s.instruction_steps_left = torch.full((B,), 50, dtype=torch.int64)


def replace_instruction_field(world, kept):
    ins = world.simulator.state.instruction
    kept.append(ins.less)
    ins.less = torch.ones_like(ins.less)


def another_state(world, kept):
    sim = world.simulator
    kept.append(sim.state)
    clone = lambda t: t.clone()  # noqa: E731
    state = UserState(**{f.name: getattr(sim.state, f.name) for f in fields(UserState)})
    for f in fields(UserState):
        value = getattr(state, f.name)
        setattr(state, f.name, Instruction(*map(clone, vars(value).values())) if f.name == "instruction"
                else clone(value))
    state.interest.mul_(-1.0)
    sim.state = state


def fewer_remembered_clicks(world, kept):
    s = world.simulator.state
    kept += [s.recent_clicks, s.recent_satiation]
    s.recent_clicks, s.recent_satiation = s.recent_clicks[:, :4].contiguous(), s.recent_satiation[:, :4].contiguous()


def more_watched_words(world, kept):
    s = world.simulator.state
    kept.append(s.watched)
    s.watched = torch.cat([torch.zeros_like(s.watched), torch.zeros_like(s.watched)], 1)


def replace_item_tables(world, kept):
    kernel = world.simulator.backend
    kept.append(kernel.tables)
    kernel.tables = replace(kernel.tables, static_appeal=kernel.tables.static_appeal + 3.0)


def replace_parameters(world, kept):
    kernel = world.simulator.backend
    kept.append(kernel.params)
    kernel.params = kernel.params.clone()
    kernel.params[0] = 40.0  # the interest weight


def replace_candidate_draw(world, kept):
    s = world.state
    kept.append(s.candidate_draw)
    s.candidate_draw = s.candidate_draw.roll(3, 0).contiguous()
    world.candidate_sets.forget()


def replace_world_history(world, kept):
    s = world.state
    kept += [s.history_items, s.history_feedback]
    s.history_items, s.history_feedback = s.history_items.roll(1, 0).contiguous(), s.history_feedback.roll(1, 0)


def set_world_counters_in_place(world, kept):
    s = world.state
    kept += [s.step_count[:], s.key[:]]
    s.step_count.set_(torch.full_like(s.step_count, 5))
    s.key.data = s.key ^ 12345


def another_world_state(world, kept):
    s = world.state
    kept.append(s)
    world.state = WorldState(*(value.clone() if isinstance(value, torch.Tensor)
                               else Instruction(*(t.clone() for t in vars(value).values()))
                               for value in vars(s).values()))
    world.state.key ^= 777


CHANGES = [replace_field, replace_interest, set_in_place, resize_in_place, data_assigned, replace_instruction,
           replace_instruction_field, another_state, fewer_remembered_clicks, more_watched_words, replace_item_tables,
           replace_parameters, replace_candidate_draw, replace_world_history, set_world_counters_in_place,
           another_world_state]


@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__ for change in CHANGES])
def test_a_change_between_two_steps_is_read_as_a_struct_built_afresh_reads_it(change):
    envs = twin_envs()
    actions_rng = np.random.default_rng(1)
    step_both(envs, actions_rng, 4)
    kept = []
    for env in envs:
        change(env.world, kept)
    step_both(envs, actions_rng, 12)


@pytest.mark.parametrize("made_non_contiguous", ["replaced", "in place"])
def test_a_field_made_non_contiguous_after_a_step_is_refused_as_before(made_non_contiguous):
    env = twin_envs()[0]
    actions = np.tile(np.arange(5), (N_USERS, 1))
    env.step(actions)
    s = env.world.simulator.state
    if made_non_contiguous == "replaced":
        s.interest = s.interest.t().contiguous().t()  # the same values, columns apart
    else:
        s.recent_satiation.t_()  # [B, H] with B == H: the same shape, transposed strides
    with pytest.raises(ValueError, match="the C kernel needs contiguous CPU tensors; use kernel='torch'"):
        env.step(actions)


def test_the_users_kernel_reads_another_slate_size_other_tables_and_another_catalog_as_afresh():
    other = Catalog.synthetic(90, feature_dim=CATALOG.feature_dim + 3, n_genres=CATALOG.n_genres - 2, seed=4)
    sims = [StatisticalUsers(CATALOG, CONFIG, kernel="c") for _ in range(2)]
    never_reusing(sims[1].backend)
    slates_rng = torch.Generator().manual_seed(0)
    for sim in sims:
        sim.reset(N_USERS, seed=3)

    def step(n_items: int, K: int):
        slates = torch.stack([torch.randperm(n_items, generator=slates_rng)[:K] for _ in range(N_USERS)])
        slates_rng.manual_seed(int(slates.sum()))  # both twins' next slates alike
        a, b = (sim.backend.step(sim.state, slates, None) for sim in sims)
        for name in ("examined", "clicked", "watch", "liked", "rating", "leaves", "hazard", "gap"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert_same_user_state(sims[0].state, sims[1].state)
        sims[0].state.churned[:] = sims[1].state.churned[:] = False

    for K in (6, 6, 3, 9, 9):
        step(CATALOG.n_items, K)
    # Another catalog (other D, G and item count), its tables and users in place of the first.
    kept = [(sim.backend.tables, sim.state) for sim in sims]
    fresh = StatisticalUsers(other, CONFIG, kernel="c")
    fresh.reset(N_USERS, seed=5)
    for sim in sims:
        sim.backend.tables = fresh.backend.tables
        sim.state = copy.deepcopy(fresh.state)
    for K in (4, 4, 7):
        step(other.n_items, K)
    assert kept


def test_a_copy_of_a_kernel_holds_no_struct_of_the_original():
    sim = StatisticalUsers(CATALOG, CONFIG, kernel="c")
    sim.reset(N_USERS, seed=3)
    slates = torch.arange(5).repeat(N_USERS, 1)
    sim.respond(slates)
    assert "_kept_frame" in vars(sim.backend)
    twin = copy.deepcopy(sim)
    assert "_kept_frame" not in vars(twin.backend)
    before = [t.clone() for t in (sim.state.satisfaction, sim.state.interest)]
    twin.respond(slates)
    assert torch.equal(sim.state.satisfaction, before[0]) and torch.equal(sim.state.interest, before[1])


def test_a_kept_struct_is_handed_out_once_and_only_for_its_own_key():
    sim = StatisticalUsers(CATALOG, CONFIG, kernel="c")
    sim.reset(N_USERS, seed=3)
    sim.respond(torch.arange(5).repeat(N_USERS, 1))
    key, frame = vars(sim.backend)["_kept_frame"]
    assert sim.backend._reuse_frame([*key[:-1], key[-1] + 1]) is None  # another size: not handed out, dropped
    sim.backend._keep_frame(key, frame)
    # A call on another thread meanwhile finds none, and builds its own.
    assert sim.backend._reuse_frame(list(key)) is frame and sim.backend._reuse_frame(list(key)) is None


def test_the_bookkeeping_takes_a_response_as_it_is_only_where_it_has_the_kernels_dtype_and_layout():
    """Our simulators' responses go to the kernel as they are; a plug-in's other dtypes and
    non-contiguous views are converted (copies), never read in place."""
    from recoworld.kernels.world import _held_as

    clicked = torch.zeros(4, 3, dtype=torch.bool)
    assert _held_as(clicked, torch.bool) is clicked
    as_bytes = _held_as(clicked.to(torch.uint8), torch.bool)
    assert as_bytes.dtype == torch.bool and torch.equal(as_bytes, clicked)
    watch = torch.arange(12, dtype=torch.float64).view(3, 4).t()  # [4, 3], not contiguous
    held = _held_as(watch, torch.float32)
    assert held.dtype == torch.float32 and held.is_contiguous() and torch.equal(held, watch.float())
    view = torch.arange(12, dtype=torch.float32).view(3, 4).t()
    copied = _held_as(view, torch.float32)
    assert copied.is_contiguous() and copied.data_ptr() != view.data_ptr() and torch.equal(copied, view)


def test_a_world_history_of_another_length_is_refused_not_written_past_the_observation():
    """The bookkeeping kernel writes the state's history into arrays the observer sized when
    the env was built: a state replaced by one of another history length would have been
    written past them (memory corruption); it is refused, naming both shapes."""
    env = twin_envs()[0]
    actions = np.tile(np.arange(5), (N_USERS, 1))
    env.step(actions)
    s = env.world.state
    s.history_items = torch.full((N_USERS, 40), -1, dtype=torch.int64)
    s.history_feedback = torch.zeros(N_USERS, 40, 2)
    with pytest.raises(ValueError, match=re.escape(
            f"the world's state holds a history of shape ({N_USERS}, 40), but the observation arrays hold "
            f"({N_USERS}, 10) for slates of {N_USERS} users: the state was replaced by one of another size; build "
            "the env again for another history length")):
        env.step(actions)
