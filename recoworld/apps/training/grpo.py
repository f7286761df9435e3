"""``RecoWorld/Instruct-v0`` as an environment of TRL's GRPO trainer (multi-turn, tool calls).

TRL's ``GRPOTrainer(environment_factory=...)`` builds one environment per rollout, calls
its ``reset(**row)`` with the dataset row (the returned text is appended to the prompt),
exposes its public methods as tools the model calls during generation, and scores the
finished rollout with ``get_reward()`` (TRL >= 1.x, experimental API; see
``trl.GRPOTrainer``'s docstring). :class:`RecommendationEnvironment` is that environment
for RecoWorld:

- ``reset(user_seed=...)`` starts the simulated user seeded ``user_seed`` and returns the
  first observation (instruction, history, candidates);
- the one tool, ``recommend(item_ids)``, shows a slate: the user reacts (clicks, watch
  time, likes, maybe an instruction, maybe leaving) and the tool returns the reaction and
  the next observation; an invalid slate is refused with the reason and costs
  ``invalid_penalty``;
- ``get_reward()`` is the rollout's return under ``reward`` — by default engagement
  (clicks), retention (+1 per session the user comes back after, -1 for churn) and
  compliance with the user's instruction; ``-no_slate_penalty`` when the model never
  showed a valid slate.

**One user per group.** GRPO compares the ``G`` generations of a prompt, so they must
face the same user. The user is keyed by the dataset row: :func:`user_dataset` gives each
row a ``user_seed`` derived from a shared key (``mix_int(key, row)``), TRL's sampler
repeats a row ``G`` times, and every environment reset with the same seed holds the same
user, with the same candidates and the same random draws — only the policy's slates tell
the generations apart.

Recipe for a real run (GPU, a small instruct model with a tool-calling chat template)::

    pip install -e ".[rl-llm]"            # trl (and its accelerate, datasets); add vllm for speed
    from trl import GRPOConfig, GRPOTrainer
    from recoworld.apps.training import make_environment_factory, user_dataset

    trainer = GRPOTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        train_dataset=user_dataset(2048, key=0),
        environment_factory=make_environment_factory(
            env_kwargs={"slate_size": 5, "num_candidates": 20, "max_steps": 8}),
        args=GRPOConfig(output_dir="runs/grpo", num_generations=8, per_device_train_batch_size=8,
                        gradient_accumulation_steps=4, max_completion_length=1536,
                        max_tool_calling_iterations=8, learning_rate=1e-6, beta=0.0,
                        bf16=True, use_vllm=True, vllm_mode="colocate", logging_steps=5,
                        report_to="none"),
    )
    trainer.train()

Watch ``reward`` (the ``RecommendationEnvironment`` column) and ``tools/failure_frequency``
in the logs; evaluate the trained policy with ``benchmarks/instruction_leaderboard.py``'s
agents, or wrap it in an OpenAI-compatible server and point an ``LLMRerank`` at it.
``examples/grpo_tiny.py`` runs the same wiring on CPU with a tiny random model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, check_number, did_you_mean
from recoworld.envs.instruct import InstructEnv
from recoworld.rng import mix_int

#: Engagement, retention and compliance: the default reward of a rollout.
DEFAULT_REWARD = {"clicks": 1.0, "retention": 1.0, "compliance": 1.0}
#: A small world: short prompts, short episodes.
DEFAULT_ENV = {"slate_size": 3, "num_candidates": 10, "history_length": 5, "max_steps": 5}
#: InstructEnv's arguments that RecommendationEnvironment sets (a rollout goes on after a refused slate).
FIXED_ENV_ARGUMENTS = ("invalid_action", "invalid_penalty")

SYSTEM_PROMPT = (
    "You are a movie recommender talking to one user of a streaming service. Each turn, call the "
    "recommend tool with the ids of the movies to show, best first, chosen among the candidates. The "
    "tool tells you how the user reacted and what they want next. Follow the user's instructions; keep "
    "them engaged and coming back."
)


def user_dataset(n_rows: int, key: int = 0, prompt: str = "A user opens the app.", system_prompt: str = SYSTEM_PROMPT):
    """A ``datasets.Dataset`` of ``n_rows`` prompts, row ``i`` carrying ``user_seed =
    mix_int(key, i)`` — the user that all generations of its group face."""
    from datasets import Dataset

    # An empty dataset would stop training at once, with no word of why.
    n_rows = check_number("user_dataset", "n_rows", n_rows, AT_LEAST_ONE, integer=True)
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    return Dataset.from_dict({"prompt": [messages] * n_rows, "user_seed": [group_user_seed(key, i) for i in range(n_rows)]})


def group_user_seed(key: int, row: int) -> int:
    """The seed of the simulated user of dataset row ``row`` under the shared ``key``
    (integers >= 0: a float key would be truncated into another key's users)."""
    return mix_int(check_number("user_dataset", "key", key, NON_NEGATIVE, integer=True),
                   check_number("user_dataset", "row", row, NON_NEGATIVE, integer=True))


class RecommendationEnvironment:
    """One rollout's simulated user for ``GRPOTrainer(environment_factory=...)`` (see the
    module docstring). Its only public methods are TRL's hooks and the ``recommend`` tool:
    TRL exposes every other public method as a tool too.

    Args:
        env_kwargs: arguments of :class:`~recoworld.envs.instruct.InstructEnv` (default
            :data:`DEFAULT_ENV`); ``reward`` among them overrides ``reward``.
        reward: weights of the reward signals (default :data:`DEFAULT_REWARD`).
        invalid_penalty: cost of a refused slate (>= 0).
        no_slate_penalty: what a rollout that never showed a valid slate loses (>= 0: a
            negative one would reward showing nothing).

    Attributes (read them after a rollout): ``total_reward``, ``slates_shown``,
    ``invalid_slates``, ``signals`` (each reward signal summed over the rollout), ``done``.
    """

    def __init__(self, env_kwargs: Mapping | None = None, reward: Mapping | None = None,
                 invalid_penalty: float = 0.5, no_slate_penalty: float = 1.0):
        env_kwargs = dict(env_kwargs or {})
        for fixed in FIXED_ENV_ARGUMENTS:
            if fixed in env_kwargs:
                raise ValueError(f"env_kwargs sets {fixed}={env_kwargs[fixed]!r}, which RecommendationEnvironment sets "
                                 "itself (a refused slate costs invalid_penalty and the rollout goes on); give "
                                 "invalid_penalty as RecommendationEnvironment's own argument")
        # Checked before the environment is built, which is the costly part.
        self.no_slate_penalty = check_number("RecommendationEnvironment", "no_slate_penalty", no_slate_penalty,
                                             NON_NEGATIVE)
        kwargs = {**DEFAULT_ENV, "reward": dict(reward or DEFAULT_REWARD), **env_kwargs}
        self.env = InstructEnv(invalid_action="penalty", invalid_penalty=invalid_penalty, **kwargs)
        self.user_seed: int | None = None
        self._clear()

    def reset(self, user_seed: int | None = None, **row) -> str:
        """Start the user of this row; returns the first observation (TRL appends it to the prompt)."""
        if user_seed is None:
            raise ValueError("the dataset row has no user_seed, so the generations of a group could face different "
                             "users; build the dataset with recoworld.apps.training.user_dataset()")
        # int() would truncate 1.7, or read "3" and True, into another row's user.
        self.user_seed = check_number(None, "user_seed", user_seed, NON_NEGATIVE, integer=True)
        observation, _ = self.env.reset(seed=self.user_seed)
        self._clear()
        return "\n" + observation

    def recommend(self, item_ids: list[int]) -> str:
        """Show the user a slate of movies and see how they react.

        Args:
            item_ids: The ids of distinct candidate movies to show, best first.

        Returns:
            How the user reacted and what they see next, or why the slate was refused.
        """
        if self.done:
            return "The user has left: the episode is over. Do not recommend anything more."
        observation, reward, terminated, truncated, info = self.env.step(item_ids)
        self.total_reward += reward
        self.done = terminated or truncated
        if info["invalid_action"]:
            self.invalid_slates += 1
            text = f"Refused: {info['action_error']}."
            return text + (" The episode is over." if self.done else " Choose again among the candidates.")
        self.slates_shown += 1
        for name in self.signals:
            self.signals[name] += float(info[f"reward_{name}"])
        text = _reaction(info)
        if self.done:
            return text + (" The user left for good." if terminated else " The episode is over.")
        return text + "\n" + observation

    def get_reward(self) -> float:
        """The rollout's return (see the module docstring)."""
        return self.total_reward if self.slates_shown else self.total_reward - self.no_slate_penalty

    def _clear(self) -> None:
        self.total_reward, self.slates_shown, self.invalid_slates, self.done = 0.0, 0, 0, False
        self.signals = dict.fromkeys(("clicks", "watch_time", "likes", "retention", "compliance"), 0.0)


def make_environment_factory(**kwargs) -> Callable[[], RecommendationEnvironment]:
    """A zero-argument factory of :class:`RecommendationEnvironment` with these arguments,
    for ``GRPOTrainer(environment_factory=...)``. One environment is built here, so that a
    misspelt or bad argument fails now rather than in the trainer's first rollout."""
    known = list(inspect.signature(RecommendationEnvironment).parameters)
    for name in kwargs:
        if name not in known:
            raise ValueError(f"make_environment_factory got {name!r}, which RecommendationEnvironment has not"
                             f"{did_you_mean(name, known)}; its arguments are {', '.join(known)}")
    RecommendationEnvironment(**kwargs)

    def factory() -> RecommendationEnvironment:
        return RecommendationEnvironment(**kwargs)

    return factory


def _reaction(info: dict) -> str:
    slate = np.asarray(info["slate"])
    clicked = np.asarray(info["clicked"], dtype=bool)
    parts = []
    for item, watched, liked in zip(slate[clicked], np.asarray(info["watch_fraction"])[clicked],
                                    np.asarray(info["liked"])[clicked]):
        parts.append(f"{int(item)} (watched {round(100 * float(watched))}%{', liked' if liked else ''})")
    text = "The user watched " + ", ".join(parts) + "." if parts else "The user watched nothing."
    if info["instruction_text"] is not None:
        text += f' They said: "{info["instruction_text"]}"'
    if info["left_session"]:
        text += " They closed the app" + (" and will come back later." if info["returned"] else ".")
    return text
