"""What a careless user gives the GRPO adapter and its tiny example: rows, seeds, penalties
and arguments out of range, a misspelt factory argument, and GRPO settings that cannot train."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from recoworld.apps.training import RecommendationEnvironment, group_user_seed, make_environment_factory, user_dataset


@pytest.mark.parametrize("n_rows", [0, -1, 2.5])
def test_a_dataset_of_no_rows_is_refused(n_rows):
    pytest.importorskip("datasets", reason='user_dataset needs the rl-llm extra: pip install -e ".[rl-llm]"')
    with pytest.raises(ValueError, match=re.escape(f"user_dataset.n_rows={n_rows!r}: must be an integer >= 1")):
        user_dataset(n_rows)


def test_a_float_key_is_refused_not_truncated_into_another_keys_users():
    with pytest.raises(ValueError, match=re.escape("user_dataset.key=1.5: must be an integer >= 0")):
        group_user_seed(1.5, 0)


@pytest.mark.parametrize("seed", [1.7, "3", True])
def test_a_user_seed_that_is_no_integer_is_refused(seed):
    environment = RecommendationEnvironment()
    with pytest.raises(ValueError, match=re.escape(f"user_seed={seed!r}: must be an integer >= 0")):
        environment.reset(user_seed=seed)


@pytest.mark.parametrize("penalty, message", [
    (-1.0, "RecommendationEnvironment.no_slate_penalty=-1.0: must be >= 0"),
    (float("nan"), "RecommendationEnvironment.no_slate_penalty=nan: must be a finite number >= 0"),
    ("1", "RecommendationEnvironment.no_slate_penalty='1': must be a finite number >= 0"),
])
def test_a_no_slate_penalty_that_would_reward_showing_nothing_is_refused(penalty, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RecommendationEnvironment(no_slate_penalty=penalty)


def test_env_kwargs_may_not_set_what_the_adapter_sets():
    with pytest.raises(ValueError, match=re.escape(
            "env_kwargs sets invalid_action='raise', which RecommendationEnvironment sets itself (a refused slate "
            "costs invalid_penalty and the rollout goes on); give invalid_penalty as RecommendationEnvironment's "
            "own argument")):
        RecommendationEnvironment(env_kwargs={"invalid_action": "raise"})


def test_a_factory_with_a_misspelt_or_bad_argument_fails_when_made_not_in_the_trainer():
    with pytest.raises(ValueError, match=re.escape(
            "make_environment_factory got 'env_kwarg', which RecommendationEnvironment has not (did you mean "
            "'env_kwargs'?); its arguments are env_kwargs, reward, invalid_penalty, no_slate_penalty")):
        make_environment_factory(env_kwarg={"slate_size": 2})
    with pytest.raises(ValueError, match=re.escape("InstructEnv.invalid_penalty=-1: must be >= 0")):
        make_environment_factory(invalid_penalty=-1)


def load_example():
    path = Path(__file__).resolve().parents[1] / "examples" / "grpo_tiny.py"
    spec = importlib.util.spec_from_file_location("grpo_tiny", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "argument --steps: 0: must be an integer >= 1 (a run of no GRPO step trains nothing)"),
    (["--generations", "1"], "argument --generations: 1: must be an integer >= 2 (GRPO's advantages compare the "
                             "generations of a group)"),
    (["--warmup-steps", "-5"], "argument --warmup-steps: -5: must be an integer >= 0 (0 skips the warm-up)"),
])
def test_the_tiny_example_refuses_settings_that_cannot_train_before_it_warms_up(argv, message, capsys):
    pytest.importorskip("trl")
    with pytest.raises(SystemExit):
        load_example().main(argv)
    assert message in capsys.readouterr().err
