"""Stable-Baselines3 models as recommenders.

- :class:`SB3Recommender` turns any trained SB3 model into a frozen
  :class:`~recoworld.agents.base.Recommender`. It reads the formulation from the model's
  action space: ``Box(C)`` — a score per candidate (``action_format="scores"``), the slate
  is the top-K of the policy's mean scores; ``Discrete(C)`` — one candidate per call:
  trained on slates built pick by pick (:class:`~recoworld.envs.wrappers.SequentialSlateEnv`,
  its observations show the picks so far), the slate is built by ``K`` greedy picks with the
  chosen candidates masked out; trained on single items
  (:class:`~recoworld.envs.sb3_vec.SingleItemVecEnv`), it is the top ``K`` by Q-value or
  logit; ``MultiDiscrete`` — the slate itself.
- :class:`SB3Agent` is the same adapter that trains its model first, in :meth:`~SB3Agent.setup`,
  on a twin of the env it is given (same catalog, user population and reward; other users),
  which the env builds through its documented ``training_env`` method: PPO and A2C on the
  batched :class:`~recoworld.envs.sb3_vec.SB3SlateVecEnv`, MaskablePPO on the sequential
  formulation, DQN on the single-item one. This is the class to name in a Hydra config.

The policies that score every candidate with one shared network are in
:mod:`recoworld.agents.sb3_policies`; comparisons with the other agents are in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import inspect
import io
import numbers
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HumanOutputFormat, Logger
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.utils import LinearSchedule

from recoworld.agents.base import Recommender, check_served_env, deterministic, top_k
from recoworld.agents.sb3_policies import (CHOSEN, POSITION, CandidateQPolicy, CandidateScoringPolicy,
                                           MaskableCandidateScoringPolicy, catalog_policy_kwargs)
from recoworld.agents.slateq import known_device
from recoworld.config_checks import AT_LEAST_ONE, POSITIVE, check_number, did_you_mean
from recoworld.ranking import best_first
from recoworld.wording import listing
from recoworld.rewards import RewardWeights
from recoworld.types import (CANDIDATE_FEATURES, CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, INSTRUCTION,
                             Observation)

#: Algorithms :class:`SB3Agent` can train, by name.
SCORE_ALGORITHMS = ("PPO", "A2C")
SEQUENTIAL_ALGORITHMS = ("DQN", "MaskablePPO")


@dataclass(frozen=True)
class TrainingSettings:
    """How :class:`SB3Agent` trains one algorithm when its arguments leave it open.

    Attributes:
        formulation: how the model acts while it trains (``None``: the algorithm's own).
        total_timesteps, num_envs: the training budget and the users trained on at once.
        algo_kwargs, policy_kwargs: passed to the algorithm and its policy (empty: SB3's own).
    """

    formulation: str | None = None
    total_timesteps: int = 20_000
    num_envs: int = 16
    algo_kwargs: Mapping = field(default_factory=dict)
    policy_kwargs: Mapping = field(default_factory=dict)


#: The settings tuned on the default world for each tested algorithm: the values of
#: ``conf/agent/<algo>.yaml`` (``ppo``, ``a2c``, ``dqn``, ``maskable_ppo``), whose comments say
#: why each is chosen. An algorithm not listed trains with :class:`TrainingSettings`' defaults.
TUNED = {
    "PPO": TrainingSettings(
        total_timesteps=64_000, num_envs=128,
        algo_kwargs={"n_steps": 8, "batch_size": 1024, "n_epochs": 4,
                     "learning_rate": LinearSchedule(0.001, 0.0, 1.0), "gamma": 0.9},
        policy_kwargs={"log_std_init": -2.0}),
    "A2C": TrainingSettings(
        total_timesteps=150_000, num_envs=128,
        algo_kwargs={"n_steps": 4, "learning_rate": LinearSchedule(0.002, 0.0, 1.0), "gamma": 0.9},
        policy_kwargs={"log_std_init": -2.0}),
    "DQN": TrainingSettings(
        formulation="single_item", total_timesteps=64_000, num_envs=64,
        algo_kwargs={"learning_starts": 1000, "buffer_size": 100_000, "batch_size": 256, "learning_rate": 0.001,
                     "gamma": 0.5, "train_freq": 1, "gradient_steps": 1, "target_update_interval": 500,
                     "exploration_fraction": 0.1, "exploration_final_eps": 0.02}),
    "MaskablePPO": TrainingSettings(
        total_timesteps=60_000, num_envs=8,
        algo_kwargs={"n_steps": 128, "batch_size": 256, "n_epochs": 4, "gamma": 0.93}),
}


def algorithm_class(name: str):
    """The SB3 (or sb3-contrib) algorithm class called ``name``."""
    import sb3_contrib
    import stable_baselines3
    from stable_baselines3.common.base_class import BaseAlgorithm

    for module in (stable_baselines3, sb3_contrib):
        found = getattr(module, name, None) if isinstance(name, str) else None
        # Only an algorithm: the packages' submodules (stable_baselines3.ppo) and helpers share the namespace.
        if isinstance(found, type) and issubclass(found, BaseAlgorithm):
            return found
    tested = SCORE_ALGORITHMS + SEQUENTIAL_ALGORITHMS
    hint = next((f" (did you mean {t!r}?)" for t in tested if t.lower() == str(name).lower()), None)
    raise ValueError(f"algo={name!r} is neither in stable_baselines3 nor in sb3_contrib"
                     f"{hint or did_you_mean(name, tested)}; tested choices: {tested}")


def saved_by(data: Mapping, algo_class) -> bool:
    """Whether the attributes ``data`` of a saved model fit ``algo_class``: its policy is of the
    algorithm's family (DQN's, PPO's and A2C's, MaskablePPO's), and it keeps a clipping range
    exactly when the algorithm has one (PPO and A2C share their policies; only PPO clips)."""
    policy = data.get("policy_class")
    family = not isinstance(policy, type) or issubclass(policy, tuple(algo_class.policy_aliases.values()))
    return family and ("clip_range" in data) == ("clip_range" in inspect.signature(algo_class).parameters)


def read_saved_model(path: str, algo: str) -> bytes:
    """The ``.zip`` that SB3's ``model.save`` wrote at ``path`` (or ``path.zip``, as SB3 reads it),
    read once: what is checked is what :class:`SB3Agent` loads, without reading it again.

    Refuses (``ValueError``) a file that is not such a zip, and a model that ``algo`` did not
    save: SB3 loads it all the same, into a model that fails deep inside (DQN reading PPO's)
    or acts under another algorithm's name (A2C's as PPO)."""
    file = Path(path) if Path(path).is_file() else Path(f"{path}.zip")
    if not file.is_file():
        raise ValueError(f"load_path={path!r}: no such file; give the .zip that SB3's model.save wrote "
                         "(e.g. SB3Agent(save_path=...))")
    saved = file.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(saved)) as archive:
            data = json_to_data(archive.read("data").decode())  # the attributes only: the weights load in setup
    except (zipfile.BadZipFile, KeyError):
        raise ValueError(f"load_path={path!r} is not a model saved by SB3 (a .zip holding its data); give the "
                         ".zip that SB3's model.save wrote") from None
    if saved_by(data, algorithm_class(algo)):
        return saved
    fitting = [name for name in SCORE_ALGORITHMS + SEQUENTIAL_ALGORITHMS if saved_by(data, algorithm_class(name))]
    policy = getattr(data.get("policy_class"), "__name__", data.get("policy_class"))
    saver = f"by {fitting[0]}" if fitting else "by another algorithm"
    fix = f"algo={fitting[0]}" if fitting else f"the algo that saved it (tested: {SCORE_ALGORITHMS + SEQUENTIAL_ALGORITHMS})"
    raise ValueError(f"load_path={path!r} holds a model saved {saver} (policy {policy}), not by algo={algo!r}; "
                     f"give {fix}")


#: The env's settings that decide each observation's shape and bounds, for the errors of
#: :func:`check_observations`.
OBSERVATION_SETTINGS = {
    CANDIDATE_IDS: "num_candidates and the catalog's number of items",
    CANDIDATE_FEATURES: "num_candidates, candidate_features and the catalog's feature dimension",
    HISTORY_ITEMS: "history_length and the catalog's number of items",
    HISTORY_FEEDBACK: "history_length",
    INSTRUCTION: "the catalog's genres",
}


def check_observations(model, observation_space: spaces.Dict) -> None:
    """Refuse an env whose observations (``observation_space``, one user's) differ from those
    ``model`` was trained on, listing every key that differs and the env settings behind it,
    instead of a shape error deep inside the policy. The picks so far of the sequential
    formulation are the adapter's to add, and a candidate-scoring policy that holds the
    catalog's features looks them up where the env does not send them."""
    looks_up_features = (getattr(model.policy, "features_extractor_kwargs", None) or {}).get("item_features") is not None
    problems = []
    for key, trained in model.observation_space.spaces.items():
        if key in (CHOSEN, POSITION) or (key == CANDIDATE_FEATURES and looks_up_features
                                         and key not in observation_space.spaces):
            continue
        offered = observation_space.spaces.get(key)
        if offered != trained:
            settings = OBSERVATION_SETTINGS.get(key)
            problems.append(f"{key}: the model's {trained}, the env's {offered or 'none'}"
                            + (f" (set by {settings})" if settings else ""))
    if problems:
        raise ValueError("the model was trained on other observations than this env gives: " + "; ".join(problems)
                         + ". Evaluate it on an env built like the one it was trained on")


def greedy_only(model, formulation: str) -> str | None:
    """Why ``model`` served in ``formulation`` has no choices to sample, or ``None`` where it has."""
    if hasattr(model.policy, "q_net"):
        return f"a Q-value model ({type(model).__name__}) picks greedily by Q-value"
    if formulation == "single_item":
        return "a model trained on single items is served as its top K candidates by value"
    return None


class SB3Recommender(Recommender):
    """A trained Stable-Baselines3 model, frozen, serving batches of users.

    Args:
        model: an SB3 model trained on ``RecoWorld/Slate-v0`` (scores or slate format) or
            on :class:`~recoworld.envs.wrappers.SequentialSlateEnv`.
        deterministic: use the policy's mode (mean scores, greedy picks); otherwise sample,
            from the agent's seed. A Q-value model (DQN) and a model trained on single items
            have nothing to sample (their slates are the top candidates by value), so
            :meth:`setup` refuses them ``False``.
        name: label in metrics (default ``sb3_<algorithm>``).
    """

    learns = False

    def __init__(self, model=None, deterministic: bool = True, name: str | None = None):
        self.model = model
        self.deterministic = deterministic
        self.name = name or (f"sb3_{type(model).__name__.lower()}" if model is not None else "sb3")

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        if self.model is None:
            raise ValueError(f"{type(self).__name__} has no model; give one or use SB3Agent, which trains one")
        action_space = self.model.action_space
        C, K = self.num_candidates, self.slate_size
        if isinstance(action_space, spaces.Box) and action_space.shape == (C,):
            self.formulation = "scores"
        elif isinstance(action_space, spaces.Discrete) and action_space.n == C:
            # Trained on slates built pick by pick (it sees the picks so far) or on single items.
            self.formulation = "sequential" if CHOSEN in self.model.observation_space.spaces else "single_item"
        elif isinstance(action_space, spaces.MultiDiscrete) and action_space.shape == (K,):
            self.formulation = "slate"
        else:
            raise ValueError(f"the model's action space {action_space} fits none of the formulations of an env "
                             f"with {C} candidates and slates of {K}: Box(({C},)) scores, Discrete({C}) "
                             f"sequential picks, or MultiDiscrete([{C}]*{K}) slates")
        greedy = greedy_only(self.model, self.formulation)
        if not self.deterministic and greedy:
            raise ValueError(f"{type(self).__name__}(deterministic=False) samples the model's choices, but {greedy}: "
                             "the same slate for a request at every call; give deterministic=True")
        observation_space = getattr(env.unwrapped, "single_observation_space", None)
        if isinstance(observation_space, spaces.Dict):
            check_observations(self.model, observation_space)

    # ------------------------------------------------------------------ acting
    def score(self, obs: Observation) -> np.ndarray:
        """The policy's score of each candidate ``[B, C]`` (higher is better).

        Scores format: the unclipped mean action (clipping to the action box would tie
        candidates at +-1). Sequential format: the first pick's preferences (Q-values or
        logits).
        """
        if self.formulation == "scores":
            policy = self.model.policy
            obs_t, _ = policy.obs_to_tensor(dict(obs))
            with torch.no_grad():
                return policy._predict(obs_t, deterministic=True).cpu().numpy().reshape(-1, self.num_candidates)
        if self.formulation == "sequential":
            batch = Observation(obs).batch_size
            return self._preferences(obs, np.zeros((batch, self.num_candidates), dtype=bool), 0)
        if self.formulation == "single_item":
            return self._values(obs)
        raise ValueError("a slate-format model does not score candidates")

    def act(self, obs: Observation) -> np.ndarray:
        if self.formulation == "scores":  # ranked as the env ranks a scores action
            scores = self.score(obs) if self.deterministic else self._predict(obs)
            return best_first(torch.as_tensor(np.asarray(scores, dtype=np.float32).reshape(-1, self.num_candidates)),
                              self.slate_size).numpy()
        if self.formulation == "slate":
            return np.asarray(self._predict(obs)).reshape(-1, self.slate_size)
        if self.formulation == "single_item":  # the K candidates worth most on their own
            return top_k(self.score(obs), self.slate_size)
        return self._build_slates(obs)

    def _predict(self, obs: Observation) -> np.ndarray:
        """The model's action for ``obs``. SB3 samples from torch's global generator, which the
        agent's seed does not reach; a sampling policy draws under a torch seed taken from the
        agent's own generator instead, so that the same seed shows the same slates."""
        if self.deterministic:
            return self.model.predict(dict(obs), deterministic=True)[0]
        device = torch.device(self.model.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(self.rng.integers(2**62)))
            return self.model.predict(dict(obs), deterministic=False)[0]

    def _build_slates(self, obs: Observation) -> np.ndarray:
        batch, C, K = Observation(obs).batch_size, self.num_candidates, self.slate_size
        chosen = np.zeros((batch, C), dtype=bool)
        slates = np.zeros((batch, K), dtype=np.int64)
        rows = np.arange(batch)
        for position in range(K):
            preferences = np.where(chosen, -np.inf, self._preferences(obs, chosen, position))
            if self.deterministic:
                pick = preferences.argmax(1)
            else:  # sample from the masked policy
                p = np.exp(preferences - preferences.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                pick = (p.cumsum(1) < self.rng.random((batch, 1))).sum(1).clip(max=C - 1)
                pick = np.where(chosen[rows, pick], preferences.argmax(1), pick)
            slates[:, position] = pick
            chosen[rows, pick] = True
        return slates

    def _preferences(self, obs: Observation, chosen: np.ndarray, position: int) -> np.ndarray:
        """Q-values (DQN) or action logits (policy-gradient models) ``[B, C]`` of the next pick."""
        batch = chosen.shape[0]
        return self._values({**obs, CHOSEN: chosen.astype(np.float32),
                             POSITION: np.full((batch, 1), position / self.slate_size, dtype=np.float32)})

    def _values(self, obs: Observation) -> np.ndarray:
        """Q-values (DQN) or action logits ``[B, C]`` of a ``Discrete(C)`` model."""
        policy = self.model.policy
        obs_t, _ = policy.obs_to_tensor(dict(obs))
        with torch.no_grad():
            if hasattr(policy, "q_net"):
                values = policy.q_net(obs_t)
            else:
                values = policy.get_distribution(obs_t).distribution.logits
        return values.cpu().numpy().astype(np.float64)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray] | None:
        return deterministic(action) if self.deterministic else None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """The agent's attributes, with the model as the bytes of SB3's own ``model.save``: an
        SB3 model holds its training env, which does not pickle, and Ray ships agents to its
        workers by pickling them (``copy.deepcopy`` copies them the same way). SB3 saves what
        acting needs — the policy's weights, spaces and settings — and leaves out the env, the
        logger and the rollout or replay buffer."""
        state = self.__dict__.copy()
        if self.model is not None:
            saved = io.BytesIO()
            self.model.save(saved)
            state["model"] = (type(self.model), saved.getvalue(), str(self.model.device))
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("model") is not None:
            algo_class, saved, device = state["model"]
            state = {**state, "model": algo_class.load(io.BytesIO(saved), device=device)}
        self.__dict__.update(state)


class SB3Agent(SB3Recommender):
    """An SB3 model trained in :meth:`setup` on a twin of the env, then frozen.

    Args:
        algo: ``"PPO"``, ``"A2C"`` (scores formulation, trained on ``num_envs`` users in
            one batched :class:`~recoworld.envs.sb3_vec.SB3SlateVecEnv`), ``"DQN"`` or
            ``"MaskablePPO"``.
        formulation: how the model acts while it trains: ``"scores"`` for PPO and A2C;
            ``"sequential"`` (the slate built pick by pick, ``num_envs`` single envs) for
            MaskablePPO and DQN; for DQN also ``"single_item"`` (its default): one
            candidate per step, shown alone, to ``num_envs`` batched users
            (:class:`~recoworld.envs.sb3_vec.SingleItemVecEnv`); the frozen agent shows the
            top ``K`` candidates by Q-value. DQN learns from the single items because in the
            sequential formulation the slate's clicks arrive only at its K-th pick, so the
            earlier picks learn only by bootstrapping a total that any one pick barely
            moves; what the reduction leaves out — what a slate's items do to each other —
            ranking by value ignores anyway.
        policy: an SB3 policy name or class; ``"candidate_scoring"`` (default) is
            :class:`~recoworld.agents.sb3_policies.CandidateScoringPolicy` fed the catalog's
            features, genres and popularity (its maskable twin for MaskablePPO,
            :class:`~recoworld.agents.sb3_policies.CandidateQPolicy` for DQN).
        total_timesteps: env steps of training (sub-steps in the sequential formulation).
        num_envs: users trained on in parallel.
        reward: the training reward (a reward of :mod:`recoworld.rewards`) if not the env's
            own, e.g. ``"mix"``.
        algo_kwargs: passed to the algorithm (``n_steps``, ``learning_rate``, ``gamma``, ...).
        policy_kwargs: passed to the policy.
        load_path: load a saved model (a ``.zip`` of SB3's ``model.save``) instead of
            training, and evaluate it frozen: ``recoworld run agent=sb3_model
            agent.load_path=model.zip agent.algo=PPO`` (``conf/agent/sb3_model.yaml``). The file
            is read once, when the agent is built (:func:`read_saved_model`), and ``algo`` must
            name the algorithm that saved it; the env must give the observations it was trained
            on (:func:`check_observations`, at setup). A model that scores candidates ranks them
            for any ``slate_size``. A loaded model is not trained further: the training settings
            (``total_timesteps``, ``num_envs``, ``formulation``, ``reward``, ``algo_kwargs``,
            ``policy_kwargs``, ``save_path``) given beside it are refused, not ignored.
            ``save_path``: save after training.
        tensorboard_log: a folder for SB3's TensorBoard training curves (one run per seed,
            ``<algo>_seed<seed>_1``); ``recoworld run experiment.tensorboard=true`` sets it
            inside the run directory.
        device: torch device of the model (``"cpu"``; ``"auto"`` picks CUDA when present;
            a CUDA device where there is none trains on the CPU, as SB3 does).
        deterministic, name: as for :class:`SB3Recommender` (DQN is refused ``deterministic=False`` here,
            before its training).

    The ``seed`` that :meth:`setup` trains under must be one that SB3 takes, ``0..2**32-1``.
    ``formulation``, ``total_timesteps``, ``num_envs``, ``algo_kwargs`` and ``policy_kwargs``
    left at ``None`` take the algorithm's tuned settings (:data:`TUNED`, the values of
    ``conf/agent/<algo>.yaml``); ``algo_kwargs`` and ``policy_kwargs`` given replace them
    whole, the rest being SB3's defaults.
    """

    def __init__(
        self,
        algo: str = "PPO",
        formulation: str | None = None,
        policy: str | type = "candidate_scoring",
        total_timesteps: int | None = None,
        num_envs: int | None = None,
        reward: str | Mapping | None = None,
        algo_kwargs: Mapping | None = None,
        policy_kwargs: Mapping | None = None,
        load_path: str | None = None,
        save_path: str | None = None,
        tensorboard_log: str | None = None,
        device: str = "cpu",
        deterministic: bool = True,
        name: str | None = None,
    ):
        algorithm_class(algo)  # an unknown name fails here, before any rollout
        if load_path is not None:  # before the values' checks, which would ask to fix a setting to drop
            refuse_training_settings(load_path, algo, total_timesteps=total_timesteps, num_envs=num_envs,
                                     formulation=formulation, reward=reward, algo_kwargs=algo_kwargs,
                                     policy_kwargs=policy_kwargs, save_path=save_path)
        if algo == "DQN" and not deterministic:  # here, not after setup's training (greedy_only)
            raise ValueError("SB3Agent(algo='DQN', deterministic=False) samples the model's choices, but a Q-value "
                             "model (DQN) picks greedily by Q-value: the same slate for a request at every call; "
                             "give deterministic=True, or a policy-gradient algo (PPO, A2C, MaskablePPO) to sample")
        super().__init__(None, deterministic, name or f"sb3_{algo.lower()}")
        tuned = TUNED.get(algo, TrainingSettings())
        natural = "sequential" if algo in SEQUENTIAL_ALGORITHMS else "scores"
        allowed = (natural, "single_item") if algo == "DQN" else (natural,)
        if formulation is not None and formulation not in allowed:
            raise ValueError(f"formulation={formulation!r} does not suit algo={algo!r}; choose one of {allowed}")
        self.training_formulation = formulation or tuned.formulation or natural
        self.algo, self.policy = algo, policy
        self.total_timesteps = check_number("SB3Agent", "total_timesteps", tuned.total_timesteps if total_timesteps
                                            is None else total_timesteps, AT_LEAST_ONE, integer=True)
        self.num_envs = check_number("SB3Agent", "num_envs", tuned.num_envs if num_envs is None else num_envs,
                                     AT_LEAST_ONE, integer=True)
        if reward is not None:
            RewardWeights.parse(reward)  # a misspelt preset fails here, not in setup's training env
        self.reward = reward
        self.algo_kwargs = dict(tuned.algo_kwargs if algo_kwargs is None else algo_kwargs)
        rate = self.algo_kwargs.get("learning_rate")
        if rate is not None:  # a schedule's first rate: SB3 calls it with the progress remaining, 1 at the start
            check_number("SB3Agent", "algo_kwargs.learning_rate", rate(1.0) if callable(rate) else rate, POSITIVE)
        # A missing file or another algorithm's model fails here, before any rollout.
        self._saved_model = None if load_path is None else read_saved_model(load_path, algo)
        self.policy_kwargs = dict(tuned.policy_kwargs if policy_kwargs is None else policy_kwargs)
        # A name torch does not know fails here, not inside SB3 in setup. Only the name: SB3
        # runs a CUDA device on the CPU where there is none, as this agent always has.
        known_device(device)
        self.load_path, self.save_path, self.device = load_path, save_path, device
        self.tensorboard_log = tensorboard_log
        #: Called with the env steps of each training step (``num_envs``), e.g. to advance
        #: a progress bar; ``recoworld run`` sets it.
        self.training_progress: Callable[[int], None] | None = None
        self.train_env = None

    def setup(self, env, seed: int | None = None) -> None:
        check_served_env(self, env.unwrapped)  # before training, which takes any face of the world
        algo_class = algorithm_class(self.algo)
        if self.load_path is not None:
            self.model = algo_class.load(io.BytesIO(self._saved_model), device=self.device)
        else:
            check_training_seed(seed)
            # The env builds the twin (its documented training_env): agents do not import envs.
            self.train_env = env.unwrapped.training_env(
                self.num_envs, self.training_formulation, seed=seed,
                **({} if self.reward is None else {"reward": self.reward}))
            policy, policy_kwargs = self.policy, dict(self.policy_kwargs)
            if policy == "candidate_scoring":
                policy = {"DQN": CandidateQPolicy, "MaskablePPO": MaskableCandidateScoringPolicy}.get(
                    self.algo, CandidateScoringPolicy)
                policy_kwargs = {**catalog_policy_kwargs(env.unwrapped.catalog), **policy_kwargs}
            self.model = algo_class(policy, self.train_env, seed=seed, device=self.device,
                                    policy_kwargs=policy_kwargs, tensorboard_log=self.tensorboard_log,
                                    **self.algo_kwargs)
            self.train_env.seed(self.train_env.user_seed)  # the model re-seeded it with its own seed
            if self.tensorboard_log is None:
                # Without one, SB3's own logger makes an empty SB3-<date> folder in the
                # system's temp directory on every learn(): one per agent, seed and run.
                self.model.set_logger(Logger(None, [HumanOutputFormat(sys.stdout)] if self.model.verbose else []))
            self.model.learn(self.total_timesteps, tb_log_name=f"{self.algo}_seed{seed}",
                             callback=None if self.training_progress is None else _Progress(self.training_progress))
            if self.save_path is not None:
                self.model.save(self.save_path)
        super().setup(env, seed)

    def __getstate__(self) -> dict:
        # The training twin and the run's progress display serve the training in setup alone,
        # and neither pickles; a copy set up again trains with its own.
        return {**super().__getstate__(), "train_env": None, "training_progress": None}


def refuse_training_settings(load_path: str, algo: str, **given) -> None:
    """Refuse (``ValueError``) the training settings in ``given`` that are not ``None`` beside
    a ``load_path``: a loaded model is evaluated as saved, neither trained further nor saved
    again, and a setting that would silently do nothing reads as if it did."""
    ignored = [f"{key}={value!r}" for key, value in given.items() if value is not None]
    if ignored:
        raise ValueError(f"SB3Agent(load_path={load_path!r}) evaluates the saved model frozen, without training, "
                         f"so {listing(ignored)} would do nothing; leave {'it' if len(ignored) == 1 else 'them'} out "
                         "(recoworld run: agent=sb3_model sets none); to train a saved model further, load it with "
                         f"{algo}.load and call its learn")


#: The seeds Stable-Baselines3 takes for its own generators (numpy's legacy seeding).
SB3_SEEDS = 2**32


def check_training_seed(seed) -> None:
    """Refuse (``ValueError``, naming it) a seed that is not an integer in ``0..2**32-1``, which SB3 cannot take
    for its own generators, before it is turned into the seed of the training users."""
    integral = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
    if seed is not None and not (integral and 0 <= seed < SB3_SEEDS):
        raise ValueError(f"seed={seed!r}: SB3Agent trains with Stable-Baselines3, which takes integer seeds in 0..2**32-1 "
                         f"({SB3_SEEDS - 1}); give a seed in that range")


class _Progress(BaseCallback):
    """Reports each training step's env steps to ``advance`` (SB3 callback)."""

    def __init__(self, advance: Callable[[int], None]):
        super().__init__()
        self.advance = advance

    def _on_step(self) -> bool:
        self.advance(self.training_env.num_envs)
        return True
