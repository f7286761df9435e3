"""The GRPO adapter: one user per group, the reward's wiring, TRL's view of it, and the tiny example."""

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from recoworld.envs.instruct import InstructEnv
from recoworld.apps.training import (
    DEFAULT_REWARD,
    RecommendationEnvironment,
    group_user_seed,
    make_environment_factory,
    user_dataset,
)

pytest.importorskip("datasets", reason='the GRPO adapter needs the rl-llm extra: pip install -e ".[rl-llm]"')

ENV = {"slate_size": 2, "num_candidates": 6, "max_steps": 4}


def candidates(observation: str) -> list[int]:
    return [int(i) for i in re.findall(r"^- (\d+) ", observation.split("Candidates")[-1], re.M)]


def test_the_generations_of_a_group_face_the_same_user():
    rows = user_dataset(3, key=11)
    assert rows[1]["user_seed"] == group_user_seed(11, 1) != group_user_seed(11, 2) == rows[2]["user_seed"]
    factory = make_environment_factory(env_kwargs=ENV)
    group = [factory() for _ in range(4)]  # TRL repeats a row once per generation
    first = [env.reset(**rows[1]) for env in group]
    assert len(set(first)) == 1
    # Same slates, same user: identical reactions; another slate can change them.
    replies = [env.recommend(candidates(first[0])[:2]) for env in group[:2]]
    assert replies[0] == replies[1]
    assert group[0].get_reward() == group[1].get_reward()
    other = factory()
    assert other.reset(**rows[2]) != first[0]


def test_reset_without_a_user_seed_says_how_to_build_the_dataset():
    with pytest.raises(ValueError, match="user_dataset"):
        RecommendationEnvironment(env_kwargs=ENV).reset(prompt=[{"role": "user", "content": ""}])


def test_reward_is_the_instruct_envs_return_under_the_weights():
    weights = {"clicks": 1.0, "retention": 3.0, "compliance": 2.0}
    adapter = RecommendationEnvironment(env_kwargs={**ENV, "max_steps": 6}, reward=weights, invalid_penalty=0.25)
    reference = InstructEnv(**{**ENV, "max_steps": 6}, reward=weights)
    for seed in range(5):
        observation = adapter.reset(user_seed=seed)
        _, info = reference.reset(seed=seed)
        expected, clicks, penalties = 0.0, 0.0, 0
        adapter.recommend([1_000_000, 1_000_001])  # refused: not candidates
        penalties += 1
        while not adapter.done:
            ids = candidates(observation)[-2:]
            observation = adapter.recommend(ids)
            _, reward, *_, info = reference.step(ids)
            assert reward == pytest.approx(sum(w * float(info[f"reward_{k}"]) for k, w in weights.items()))
            expected += reward
            clicks += float(info["reward_clicks"])
        assert adapter.get_reward() == pytest.approx(expected - 0.25 * penalties)
        assert adapter.slates_shown >= 1 and adapter.invalid_slates == 1
        assert adapter.signals["clicks"] == pytest.approx(clicks)
    assert "the episode is over" in adapter.recommend([1, 2])


def test_a_rollout_that_shows_nothing_is_penalised():
    adapter = RecommendationEnvironment(env_kwargs=ENV, no_slate_penalty=1.5)
    adapter.reset(user_seed=0)
    assert adapter.get_reward() == -1.5
    assert DEFAULT_REWARD == {"clicks": 1.0, "retention": 1.0, "compliance": 1.0}


def test_trl_sees_one_tool_with_a_schema_and_the_reward_hook():
    # What GRPOTrainer does with an environment: public methods other than reset/get_reward are tools.
    from transformers.utils import get_json_schema

    env = RecommendationEnvironment(env_kwargs=ENV)
    public = [name for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
              if not name.startswith("_")]
    assert sorted(public) == ["get_reward", "recommend", "reset"]
    schema = get_json_schema(env.recommend)["function"]
    assert schema["name"] == "recommend"
    assert schema["parameters"]["properties"]["item_ids"] == {
        "type": "array", "items": {"type": "integer"}, "description": "The ids of distinct candidate movies to show, best first."}


@pytest.mark.slow
def test_tiny_grpo_example_runs_and_its_rewards_come_from_the_simulated_users(tmp_path):
    pytest.importorskip("trl")
    path = Path(__file__).resolve().parents[1] / "examples" / "grpo_tiny.py"
    spec = importlib.util.spec_from_file_location("grpo_tiny", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    # The format warm-up is most of the test's time; 80 steps are enough for a rollout to call
    # recommend (with seed 0 one of the two shows a slate the simulated user reacts to).
    result = example.main(["--steps", "1", "--generations", "2", "--warmup-steps", "80",
                           "--output-dir", str(tmp_path)])
    (step,) = result["history"]
    environments = result["environments"]
    assert len(environments) == 2 and len({e.user_seed for e in environments}) == 1
    rewards = [e.get_reward() for e in environments]
    assert step["reward"] == pytest.approx(sum(rewards) / len(rewards))
    assert result["warmup_losses"][-1] < result["warmup_losses"][0]
