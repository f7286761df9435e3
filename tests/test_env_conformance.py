"""What a plug-in author and an RL researcher rely on at the edges of the envs: a failed
simulator step can be retried, a wrong simulator is named, and ``check_simulator`` finds
each fault of the contract (once) and blames the right thing."""

import re
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import recoworld  # noqa: F401  (registers the envs)
from recoworld import Catalog, Instruction, Response, check_simulator
from recoworld.envs import InstructEnv, SlateVectorEnv
from recoworld.simulators import StatisticalUsers, UserSimulator
from recoworld.simulators.checker import SimulatorCheckError
from recoworld.validation import check_slates

CATALOG = Catalog.synthetic(60, seed=0)


class Tenure(UserSimulator):
    """Each user clicks the first item of the slate and leaves for good after three steps;
    satisfaction is a function of its seed, so a user answered in the wrong slot shows."""

    def __init__(self, catalog=CATALOG):
        self.catalog = catalog

    def reset(self, n_users, seed=None, users=None):
        slots = torch.arange(n_users) if users is None else torch.as_tensor(users)
        seeds = torch.as_tensor([seed + j for j in range(len(slots))] if isinstance(seed, int) else list(seed))
        if users is None:
            self.n_users, self.seed, self.steps = n_users, torch.zeros(n_users), torch.zeros(n_users, dtype=torch.long)
        self.seed[slots] = seeds.float()
        self.steps[slots] = 0

    def respond(self, slates):
        check_slates(slates, self.catalog.n_items, n_rows=self.n_users)
        B, K = slates.shape
        self.steps += 1
        first = torch.zeros(B, K, dtype=torch.bool)
        first[:, 0] = True
        leaves = self.steps >= 3
        return Response(
            examined=torch.ones(B, K, dtype=torch.bool), clicked=first, watch_fraction=first * 0.5, liked=first,
            rating=first * 4.0, satisfaction=(self.seed % 7) / 7, leave_hazard=leaves.float(), left_session=leaves,
            returned=torch.zeros(B, dtype=torch.bool), return_gap=torch.where(leaves, torch.inf, 0.0),
            churned=leaves, instruction_in_force=torch.zeros(B, dtype=torch.bool), compliance=torch.zeros(B),
            instruction=Instruction.none(B, self.catalog.n_genres), instruction_text=[None] * B)


def problems_of(simulator) -> list[str]:
    with pytest.raises(SimulatorCheckError) as err:
        check_simulator(simulator)
    return err.value.problems


def test_the_tenure_simulator_passes_the_checker():
    assert check_simulator(Tenure()) is None


# --- the envs -----------------------------------------------------------------------------

class FailsOnce(StatisticalUsers):
    """Statistical users whose answer at call ``fail_at`` is lost (an LLM server's timeout)."""

    fail_at, calls = None, 0

    def respond_valid(self, slates, idle=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("the model server timed out")
        return super().respond_valid(slates, idle)


def episode_seeds(fail_at):
    env = SlateVectorEnv(2, simulator=FailsOnce(CATALOG), slate_size=3, num_candidates=10, max_steps=2)
    env.world.simulator.fail_at = fail_at
    env.reset(seed=0)
    seeds, actions = [], np.array([[0, 1, 2], [3, 4, 5]])
    while len(seeds) < 5:
        try:
            observation, reward, terminated, truncated, info = env.step(actions)
        except ConnectionError:
            continue  # the researcher retries the step
        seeds.append((info["autoreset"].tolist(), info["episode_seed"].tolist(), observation["session"].tolist()))
    return seeds


def test_a_step_that_fails_as_users_are_autoreset_is_retried_into_the_same_next_episode():
    # User 0's episode ends (truncated) at step 2; step 3 autoresets it. That step's failure
    # once skipped an episode: the retry started the one after.
    assert episode_seeds(None)[2][0][0]
    assert episode_seeds(fail_at=3) == episode_seeds(None)


def test_the_env_names_a_simulator_that_is_not_a_user_simulator():
    class Duck:
        catalog = CATALOG

    with pytest.raises(ValueError, match=re.escape(
            "simulator is a Duck, not a recoworld.simulators.UserSimulator; subclass UserSimulator (README: Plug "
            "in your own simulator) and run recoworld.check_simulator(simulator) to see what else it needs")):
        gym.make("RecoWorld/Slate-v0", simulator=Duck())


def test_instruct_env_takes_render_mode_none_as_gymnasium_passes_it_and_refuses_others():
    assert gym.make("RecoWorld/Instruct-v0", render_mode=None).unwrapped.render_mode is None
    with pytest.raises(ValueError, match=re.escape(
            "render_mode='ansi'; InstructEnv has no render modes (its observation is already the text): "
            "pass render_mode=None or leave it out")):
        InstructEnv(render_mode="ansi")


def test_the_env_refuses_a_users_words_that_are_not_one_entry_per_user():
    class Muttering(Tenure):
        def respond(self, slates):
            return replace(super().respond(slates), mindset_text="fine")  # a str, not a list

    env = SlateVectorEnv(2, simulator=Muttering(), slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(
            "  - Response.mindset_text is a str; expected None or a list (or a 1-D numpy object array) of 2 (None "
            "for users who said nothing)")):
        env.step(np.array([[0, 1, 2], [3, 4, 5]]))


# --- check_simulator ------------------------------------------------------------------------

def test_a_fault_at_every_step_is_listed_once_at_its_first_step():
    class HalfBool(Tenure):
        def respond(self, slates):
            return replace(super().respond(slates), liked=torch.zeros(slates.shape, dtype=torch.float32))

    assert problems_of(HalfBool()) == ["Response.liked has dtype torch.float32; expected torch.bool (at step 0)"]


def test_a_wrong_shaped_churned_is_named_not_blamed_on_restarting_users():
    class OneTooMany(Tenure):
        def respond(self, slates):
            response = super().respond(slates)
            return replace(response, churned=torch.cat([response.churned, response.churned[:1]]))

    assert problems_of(OneTooMany()) == ["Response.churned has shape (5,); expected (4,) (at step 0)"]


def test_a_simulator_that_refuses_repeats_but_not_unknown_items_is_caught():
    class Clamps(Tenure):
        def respond(self, slates):
            return super().respond(slates.clamp(max=self.catalog.n_items - 1))

    assert problems_of(Clamps()) == [
        "respond() accepted item 60 (outside the catalog of 60 items); validate slates with "
        "recoworld.validation.check_slates"]


def test_a_simulator_that_accepts_a_repeated_item_is_caught():
    class RangeOnly(Tenure):
        def respond(self, slates):
            if bool((slates >= self.catalog.n_items).any()):
                raise ValueError("an item is outside the catalog")
            return super().respond(torch.arange(slates.shape[1]).expand_as(slates))  # as if they were distinct

    problems = problems_of(RangeOnly())
    assert len(problems) == 1 and re.fullmatch(
        r"respond\(\) accepted a slate that repeats item \d+; validate slates with recoworld\.validation\.check_slates",
        problems[0]), problems


def test_a_partial_reset_that_wipes_the_other_users_is_caught():
    class ResetsAll(Tenure):
        def reset(self, n_users, seed=None, users=None):
            if users is not None:
                self.steps[:] = 0  # forgets every user's tenure, not only the restarted ones'
            super().reset(n_users, seed, users)

    assert problems_of(ResetsAll()) == [
        "restarting user 0 with reset(..., users=[0]) changed the responses of the other users (`leave_hazard`); "
        "a partial reset must leave other slots untouched"]


def test_a_user_keyed_by_its_slot_rather_than_its_seed_is_caught():
    class BySlot(Tenure):
        def reset(self, n_users, seed=None, users=None):
            first = seed if isinstance(seed, int) else int(min(seed))  # slot j gets first + j
            super().reset(n_users, first, users)

    assert problems_of(BySlot())[0] == (
        "the users seeded 0..3 answer differently (`satisfaction`) when they sit in the batch in reverse order; a "
        "user's life must depend only on its own seed, not on its slot or the other users")


def test_a_churned_user_needs_an_infinite_return_gap():
    class ComesBackNever(Tenure):
        def respond(self, slates):
            response = super().respond(slates)
            return replace(response, return_gap=torch.zeros_like(response.return_gap))

    assert problems_of(ComesBackNever()) == [
        "user 0 has churned=True, left_session=True, returned=False, return_gap=0: Response.return_gap must be inf "
        "for the users who churned, finite for the others, and 0 where the session goes on (at step 2)"]


def test_a_slate_with_a_nan_is_named_and_the_env_steps_on_unchanged():
    env = gym.make("RecoWorld/Slate-v0", slate_size=3, num_candidates=10).unwrapped
    reference = gym.make("RecoWorld/Slate-v0", slate_size=3, num_candidates=10).unwrapped
    env.reset(seed=3)
    reference.reset(seed=3)
    with pytest.raises(ValueError, match=re.escape("action[1] is NaN; action must hold integer candidate indices "
                                                   "(e.g. int64)")):
        env.step(np.array([0.0, np.nan, 2.0]))
    observation, reward, *_ = env.step(np.array([0, 1, 2]))
    expected, expected_reward, *_ = reference.step(np.array([0, 1, 2]))
    assert reward == expected_reward and all(np.array_equal(observation[k], expected[k]) for k in expected)


def test_the_single_env_takes_scores_of_shape_c_only_as_it_takes_slates_of_shape_k():
    env = gym.make("RecoWorld/Slate-v0", action_format="scores", slate_size=3, num_candidates=7).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("action has shape (1, 7); expected one score per candidate, (7,)")):
        env.step(np.zeros((1, 7)))
    env.step(np.arange(7.0))  # the documented shape still steps


def test_on_an_autoreset_step_the_restarted_users_hold_only_a_resets_keys():
    env = gym.make_vec("RecoWorld/Slate-v0", num_envs=8, max_steps=100, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    env.action_space.seed(0)
    done = np.zeros(8, dtype=bool)
    while not done.any():
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated | truncated
    *_, info = env.step(env.action_space.sample())
    assert 0 < done.sum() < 8, "some users restart, the others step on"
    assert info["autoreset"].tolist() == done.tolist() and info["_autoreset"].all()
    assert info["_episode_seed"].all() and info["_session_index"].all()
    for key in ("clicked", "reward_clicks", "slate", "instruction_text"):
        assert info[f"_{key}"].tolist() == (~done).tolist(), key


# --- where a response's tensors live ---------------------------------------------------------

@pytest.mark.parametrize("field, make_bad, problem", [
    ("satisfaction", lambda value: torch.zeros(value.shape, device="meta"),  # as a CUDA tensor of a CPU simulator
     "Response.satisfaction is on device meta; expected the simulator's device, cpu (make it with "
     "device=self.device, or .to(self.device))"),
    ("watch_fraction", lambda value: value.clone().requires_grad_(),  # a neural simulator's output, not detached
     "Response.watch_fraction requires grad; return it detached (.detach(), or compute it under torch.no_grad())"),
    ("compliance", lambda value: value.to_sparse(),
     "Response.compliance is a torch.sparse_coo tensor; expected a dense (torch.strided) one (call .to_dense())"),
])
def test_a_field_off_the_simulators_device_sparse_or_tracked_is_named_by_env_and_checker(field, make_bad, problem):
    class Misplaced(Tenure):
        def respond(self, slates):
            response = super().respond(slates)
            return replace(response, **{field: make_bad(getattr(response, field))})

    env = SlateVectorEnv(2, simulator=Misplaced(), slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(f"Misplaced.respond() broke the UserSimulator contract:\n"
                                                   f"  - {problem}\n")):
        env.step(np.array([[0, 1, 2], [3, 4, 5]]))
    assert problems_of(Misplaced()) == [f"{problem} (at step 0)"]


def test_the_oracles_click_probabilities_are_checked_before_numpy_reads_them():
    class TrackedProbabilities(Tenure):
        def click_probabilities(self, items):
            return torch.full(items.shape, 0.5, requires_grad=True)

    env = gym.make("RecoWorld/Slate-v0", simulator=TrackedProbabilities(), slate_size=3, num_candidates=10).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(
            "TrackedProbabilities.click_probabilities() broke the UserSimulator contract:\n  - click_probabilities() "
            "requires grad; return it detached (.detach(), or compute it under torch.no_grad())")):
        env.click_probabilities()


def test_a_simulator_given_to_two_envs_serves_the_one_reset_last_and_the_other_says_so():
    # Once the C kernel stepped the other env's users out of bounds (a crash at exit), or,
    # with batches of one size, stepped them in silence as its own.
    shared = Tenure()
    first, second = (SlateVectorEnv(2, simulator=shared, slate_size=3, num_candidates=10) for _ in range(2))
    first.reset(seed=0)
    second.reset(seed=100)
    actions = np.array([[0, 1, 2], [3, 4, 5]])
    with pytest.raises(RuntimeError, match=re.escape(
            "this env's Tenure now serves another env, whose reset started its users; a simulator serves one env at "
            "a time: give each env its own (copy.deepcopy(simulator), or build another; with gym.make_vec, "
            "vectorization_mode='vector_entry_point' serves every user from one simulator, and 'async' copies it "
            "into each worker), or reset this env to take it back (the other env then refuses to step)")):
        first.step(actions)
    assert second.step(actions)[4]["satisfaction"].tolist() == pytest.approx([100 % 7 / 7, 101 % 7 / 7])
    first.reset(seed=0)  # takes it back
    assert first.step(actions)[4]["satisfaction"].tolist() == pytest.approx([0.0, 1 / 7])
    with pytest.raises(RuntimeError, match="now serves another env"):
        second.step(actions)
