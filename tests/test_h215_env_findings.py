"""Review h212's findings on the envs and plug-in simulators: a field numpy cannot hold, a
wish for novelty other than -1, 0 or +1, or session ends that disagree are refused before
the world steps; ``kernel="auto"`` runs torch for sizes the C kernels refuse, and ``"c"``
refuses them when the env is built; a failed step of a wrapper can be retried; a plug-in's
tensors are not the info's; ``expected_clicks`` reads ids as actions are read."""

import re
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, Instruction
from recoworld.envs import SlateEnv, SlateVectorEnv
from recoworld.envs.wrappers import SequentialSlateEnv
from recoworld.validation import viewable
from tests.test_env_conformance import CATALOG, Tenure, problems_of


class Timeouts(Tenure):
    """Tenure users whose answer is lost once, when ``fail_next`` is set (a server's timeout)."""

    fail_next = False

    def respond(self, slates):
        if self.fail_next:
            self.fail_next = False
            raise TimeoutError("the model server timed out")
        return super().respond(slates)


# --- a dtype numpy cannot hold ---------------------------------------------------------------

NUMPYLESS = [torch.bfloat16, torch.float8_e4m3fn]


def numpyless(dtype):
    class Numpyless(Tenure):
        """Answers in ``dtype`` (a model run in bfloat16, say) until ``fixed``."""

        fixed = False

        def respond(self, slates):
            response = super().respond(slates)
            return response if self.fixed else replace(response, satisfaction=response.satisfaction.to(dtype))

        def click_probabilities(self, items):
            return torch.full(items.shape, 0.5, dtype=dtype)

    return Numpyless()


def numpyless_problem(label, dtype):
    return (f"{label} has dtype {dtype}, which numpy cannot hold (the env hands every field to numpy); return it "
            "as float32 (.float())")


@pytest.mark.parametrize("dtype", NUMPYLESS)
def test_a_field_numpy_cannot_hold_is_refused_before_the_world_steps(dtype):
    simulator = numpyless(dtype)
    env = SlateVectorEnv(2, simulator=simulator, slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(numpyless_problem("Response.satisfaction", dtype))):
        env.step(np.tile(np.arange(3), (2, 1)))
    assert env.world.step_count.tolist() == [0, 0]  # nothing moved: a retry is the first step, not a second
    simulator.fixed = True
    env.step(np.tile(np.arange(3), (2, 1)))
    assert env.world.step_count.tolist() == [1, 1]


@pytest.mark.parametrize("dtype", NUMPYLESS)
def test_check_simulator_names_a_field_and_a_click_probability_numpy_cannot_hold(dtype):
    problems = problems_of(numpyless(dtype))
    assert problems == [numpyless_problem("Response.satisfaction", dtype) + " (at step 0)"]
    fixed = numpyless(dtype)
    fixed.fixed = True
    assert problems_of(fixed) == [numpyless_problem("click_probabilities()", dtype)
                                  + " (for slates of shape (4, 3) after reset)"]


def test_the_oracles_click_probabilities_in_a_dtype_numpy_cannot_hold_are_refused():
    env = gym.make("RecoWorld/Slate-v0", simulator=numpyless(torch.bfloat16), slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(numpyless_problem("click_probabilities()", torch.bfloat16))):
        env.unwrapped.click_probabilities()


# --- novelty is -1, 0 or +1 -----------------------------------------------------------------

def speaking(novelty):
    class Speaks(Tenure):
        """Every user asks for more of genre 0, with ``novelty``."""

        def respond(self, slates):
            response = super().respond(slates)
            B, G = len(slates), self.catalog.n_genres
            more = torch.zeros(B, G, dtype=torch.bool)
            more[:, 0] = True
            instruction = Instruction(torch.ones(B, dtype=torch.bool), more, torch.zeros(B, G, dtype=torch.bool),
                                      novelty(B))
            return replace(response, instruction=instruction, instruction_text=["more of genre 0"] * B)

    return Speaks()


NOVELTY_PROBLEM = ("Response.instruction.novelty[0] is 0.5; expected -1, 0 or +1 (+1: less familiar items, -1: more "
                   "familiar ones, 0: no wish), e.g. as int8")


@pytest.mark.parametrize("kernel", ["c", "torch"])
def test_a_novelty_between_the_wishes_is_refused_by_env_and_checker(kernel):
    env = gym.make("RecoWorld/Slate-v0", simulator=speaking(lambda B: torch.full((B,), 0.5)), slate_size=3,
                   num_candidates=10, kernel=kernel)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(NOVELTY_PROBLEM)):
        env.step(np.arange(3))
    assert problems_of(speaking(lambda B: torch.full((B,), 0.5))) == [NOVELTY_PROBLEM + " (at step 0)"]


@pytest.mark.parametrize("novelty", [lambda B: torch.full((B,), -1.0), lambda B: torch.ones(B, dtype=torch.int8)])
def test_whole_wishes_for_novelty_read_alike_in_both_bookkeepings(novelty):
    observed = []
    for kernel in ("c", "torch"):
        env = gym.make("RecoWorld/Slate-v0", simulator=speaking(novelty), slate_size=3, num_candidates=10,
                       kernel=kernel)
        env.reset(seed=0)
        observed.append(env.step(np.arange(3))[0]["instruction"])
    np.testing.assert_array_equal(*observed)
    assert observed[0][-1] == float(novelty(1)[0])


# --- session ends that disagree ---------------------------------------------------------------

def ending(change):
    class Ends(Tenure):
        def respond(self, slates):
            response = super().respond(slates)
            return change(response) if bool(response.churned.any()) else response

    return Ends()


@pytest.mark.parametrize("change, problem", [
    (lambda r: replace(r, return_gap=torch.zeros_like(r.return_gap)),
     "user 0 has churned=True, left_session=True, returned=False, return_gap=0: Response.return_gap must be inf "
     "for the users who churned, finite for the others, and 0 where the session goes on"),
    (lambda r: replace(r, left_session=torch.zeros_like(r.left_session), return_gap=torch.zeros_like(r.return_gap)),
     "user 0 has churned=True, left_session=False, returned=False, return_gap=0: churned must equal left_session & "
     "~returned, and returned imply left_session"),
])
def test_a_churned_user_who_did_not_leave_or_will_return_at_once_is_refused_before_the_world_steps(change, problem):
    env = SlateVectorEnv(2, simulator=ending(change), slate_size=3, num_candidates=10, max_steps=10)
    env.reset(seed=0)
    for _ in range(2):
        env.step(np.tile(np.arange(3), (2, 1)))
    with pytest.raises(ValueError, match=re.escape(f"  - {problem}\n")):
        env.step(np.tile(np.arange(3), (2, 1)))  # the third step: the users churn
    assert env.world.step_count.tolist() == [2, 2]
    assert problems_of(ending(change)) == [f"{problem} (at step 2)"]


# --- sizes beyond the C kernels ----------------------------------------------------------------

def test_the_c_kernels_bounds_are_read_from_their_sources():
    from recoworld.simulators.backends import c_limits

    assert c_limits("users_step.c") == {"K": 256, "D": 1024, "G": 1024, "H": 1024}
    assert c_limits("world_step.c") == {"K": 256}


LONG_SLATES = dict(catalog=Catalog.synthetic(300, seed=0), slate_size=257, num_candidates=257)


def test_auto_runs_torch_for_slates_longer_than_the_c_kernels_take():
    env = SlateEnv(**LONG_SLATES)
    assert env.kernels == {"bookkeeping": "torch", "users": "torch"}
    env.reset(seed=0)
    env.step(np.arange(257))
    plugin = SlateEnv(simulator=Tenure(Catalog.synthetic(300, seed=0)), slate_size=257, num_candidates=257)
    assert plugin.kernels == {"bookkeeping": "torch"}
    plugin.reset(seed=0)
    plugin.step(np.arange(257))


def test_auto_runs_the_users_torch_step_for_features_longer_than_the_c_kernel_takes():
    env = SlateEnv(catalog=Catalog.synthetic(50, feature_dim=1025, seed=0), slate_size=3, num_candidates=10)
    assert env.kernels["users"] == "torch"
    env.reset(seed=0)
    env.step(np.arange(3))


BEYOND = "(or 'auto', which runs torch for sizes beyond the C kernel's)"


@pytest.mark.parametrize("arguments, message", [
    (dict(LONG_SLATES), "kernel='c': the C kernel (users_step.c) handles slate_size up to 256, got 257; use "
                        f"kernel='torch' {BEYOND}"),
    (dict(LONG_SLATES, catalog=None, simulator=Tenure(Catalog.synthetic(300, seed=0))),
     f"kernel='c': the C kernel (world_step.c) handles slate_size up to 256, got 257; use kernel='torch' {BEYOND}"),
    (dict(catalog=Catalog.synthetic(50, feature_dim=1025, seed=0), slate_size=3, num_candidates=10),
     f"kernel='c': the C kernel (users_step.c) handles the catalog's feature_dim up to 1024, got 1025; use "
     f"kernel='torch' {BEYOND}"),
])
def test_kernel_c_refuses_sizes_beyond_it_when_the_env_is_built(arguments, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        SlateEnv(kernel="c", **{key: value for key, value in arguments.items() if value is not None})


# --- a failed step of a wrapper can be retried --------------------------------------------------

def test_the_kth_pick_of_a_sequential_slate_can_be_retried_after_the_step_failed():
    simulator = Timeouts()
    env, twin = (SequentialSlateEnv(SlateEnv(simulator=s, slate_size=3, num_candidates=10))
                 for s in (simulator, Tenure()))
    for wrapper in (env, twin):
        wrapper.reset(seed=0)
        wrapper.step(0)
        wrapper.step(1)
    simulator.fail_next = True
    with pytest.raises(TimeoutError):
        env.step(2)
    assert env.action_masks().tolist() == [False, False] + [True] * 8  # still the two picks before
    observation, reward, terminated, truncated, info = env.step(2)
    expected, expected_reward, *_, expected_info = twin.step(2)
    assert (reward, info["repeated"], observation["position"].tolist()) == (expected_reward, False, [0.0])
    assert all(np.array_equal(observation[key], expected[key]) for key in expected)
    assert env.action_masks().all()


class Stays(Timeouts):
    """Users who never leave."""

    def respond(self, slates):
        self.steps.zero_()
        return super().respond(slates)


def test_a_failed_step_of_the_instruct_env_does_not_count_toward_max_steps():
    simulator = Stays()
    env = gym.make("RecoWorld/Instruct-v0", simulator=simulator, slate_size=3, num_candidates=10, max_steps=3)
    env.reset(seed=0)
    slate = lambda: env.unwrapped.candidate_ids()[:3].tolist()  # noqa: E731
    env.step(slate())
    simulator.fail_next = True
    with pytest.raises(TimeoutError):
        env.step(slate())
    ends = [env.step(slate())[3] for _ in range(2)]
    assert ends == [False, True]  # three steps served, then truncated


# --- the info's arrays are the agent's ----------------------------------------------------------

class KeepsItsMindset(Tenure):
    """Keeps satisfaction as state, updated in place, and answers with it."""

    def reset(self, n_users, seed=None, users=None):
        super().reset(n_users, seed, users)
        if users is None:
            self.mindset = torch.full((n_users,), 0.5)
        else:
            self.mindset[torch.as_tensor(users)] = 0.5

    def respond(self, slates):
        response = super().respond(slates)
        self.mindset.mul_(0.5)
        return replace(response, satisfaction=self.mindset)


def test_the_info_holds_copies_of_a_plugins_tensors():
    env = SlateVectorEnv(2, simulator=KeepsItsMindset(), slate_size=3, num_candidates=10)
    env.reset(seed=0)
    info = env.step(np.tile(np.arange(3), (2, 1)))[-1]
    env.step(np.tile(np.arange(3), (2, 1)))
    assert info["satisfaction"].tolist() == [0.25, 0.25]


# --- read-only actions --------------------------------------------------------------------------

def test_a_read_only_action_is_copied_for_torch_and_a_writable_one_is_not():
    read_only = np.broadcast_to(np.arange(3), (2, 3))
    held = viewable(read_only)
    assert held.flags.writeable and not np.shares_memory(held, read_only)
    writable = np.tile(np.arange(3), (2, 1))
    assert viewable(writable) is writable
    env = SlateVectorEnv(2, slate_size=3, num_candidates=10)
    twin = SlateVectorEnv(2, slate_size=3, num_candidates=10)
    env.reset(seed=0)
    twin.reset(seed=0)
    np.testing.assert_array_equal(env.step(read_only)[1], twin.step(writable)[1])


# --- expected_clicks reads ids as actions are read ----------------------------------------------

@pytest.mark.parametrize("single, slates, message", [
    (True, np.array([0, 1, 2**64 - 1], dtype=np.uint64),
     "slate[2] is item 18446744073709551615, but the catalog has 60 items (valid ids 0..59)"),
    (False, np.array([[0, 1, 2], [0, 1, 2**64 - 1]], dtype=np.uint64),
     "slate[1][2] is item 18446744073709551615, but the catalog has 60 items (valid ids 0..59)"),
    (True, ["1", "2", "3"], "slate[0] is '1' (str), not an integer; slate must hold integer item ids (e.g. int64)"),
])
def test_expected_clicks_names_ids_numpy_reads_wrongly_or_not_as_integers(single, slates, message):
    env = SlateEnv(catalog=CATALOG, slate_size=3) if single else SlateVectorEnv(2, catalog=CATALOG, slate_size=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        env.expected_clicks(slates)
