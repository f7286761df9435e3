"""The batched core behind both faces of ``RecoWorld/Slate-v0``.

:class:`SlateWorld` holds ``B`` user slots of one simulator and does, for all of them at
once, what one env step needs: draw candidates, turn actions into slates, ask the
simulator, score the reward, update the observable history, and build observations as
numpy arrays ``[B, ...]``. :class:`~recoworld.envs.slate.SlateEnv` is this core with
``B = 1``; :class:`~recoworld.envs.slate.SlateVectorEnv` is the same core with
``B = num_envs``. Because every random draw is keyed by the slot's episode seed and step
(see :mod:`recoworld.rng`), slot ``i`` of a vector env seeded ``s`` lives exactly the
episodes of a single env seeded ``s + i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces

from recoworld import rng
from recoworld.catalog import Catalog
from recoworld.history import prepend_clicks
from recoworld.simulators.base import UserSimulator
from recoworld.simulators.population import Population
from recoworld.simulators.statistical import KERNELS, StatisticalUserConfig, StatisticalUsers
from recoworld.types import Instruction, Response
from recoworld.validation import check_slates
from recoworld.envs import native_world
from recoworld.envs.recycled import RecycledArrays
from recoworld.envs.rewards import RewardWeights
from recoworld.envs.spaces import SlateSpace

S_CANDIDATES, S_ENV_KEY = 101, 103
ACTION_FORMATS = ("slate", "scores")


class SlateWorld:
    """``n_users`` recommendation requests served in lock-step (see the module docstring).

    Args are those of :class:`~recoworld.envs.slate.SlateEnv`, plus ``n_users``.
    """

    def __init__(
        self,
        n_users: int,
        catalog: Catalog | None = None,
        simulator: UserSimulator | None = None,
        simulator_config: StatisticalUserConfig | Mapping | None = None,
        population: Population | None = None,
        slate_size: int = 10,
        num_candidates: int = 50,
        history_length: int = 10,
        max_steps: int = 100,
        reward: str | Mapping | RewardWeights = "clicks",
        action_format: str = "slate",
        candidate_features: bool = True,
        device: str = "cpu",
        kernel: str = "torch",
    ):
        if simulator is not None and catalog is not None and simulator.catalog is not catalog:
            raise ValueError("give either a simulator (which brings its catalog) or a catalog, not both")
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}; choose one of {KERNELS}")
        if simulator is None:
            catalog = catalog if catalog is not None else Catalog.synthetic(1000, seed=0)
            if isinstance(simulator_config, Mapping):
                simulator_config = StatisticalUserConfig(**simulator_config)
            simulator = StatisticalUsers(catalog, simulator_config, population, device=device, kernel=kernel)
        elif kernel == "c" and simulator.device.type != "cpu":
            raise ValueError(f"kernel='c' runs on CPU, but the simulator is on {str(simulator.device)!r}; "
                             "use kernel='torch'")
        self.simulator = simulator
        self.kernel = kernel
        if kernel == "c":
            native_world.library()  # build now: a missing compiler shows up here, not mid-rollout
        self.catalog = simulator.catalog
        self.device = simulator.device
        n_items = self.catalog.n_items
        if not 1 <= slate_size <= num_candidates <= n_items:
            raise ValueError(
                f"need 1 <= slate_size ({slate_size}) <= num_candidates ({num_candidates}) "
                f"<= catalog items ({n_items})"
            )
        if action_format not in ACTION_FORMATS:
            raise ValueError(f"action_format={action_format!r}; choose one of {ACTION_FORMATS}")
        if max_steps < 1 or history_length < 1:
            raise ValueError(f"max_steps={max_steps} and history_length={history_length} must be >= 1")
        self.n_users, self.slate_size, self.num_candidates = n_users, slate_size, num_candidates
        self.history_length, self.max_steps = history_length, max_steps
        self.reward_weights = RewardWeights.parse(reward)
        self.action_format = action_format
        self.observe_features = candidate_features
        self._offsets = _candidate_offsets(n_items, num_candidates).to(self.device)
        self._strides = self._offsets[:, min(1, num_candidates - 1)].contiguous()  # s itself: offset 1 s
        self._features = self.catalog.features.cpu().numpy()  # what candidate_features shows
        self._feature_arrays = RecycledArrays((n_users, num_candidates, self.catalog.feature_dim), np.float32)
        self.base_seed = np.zeros(n_users, dtype=np.int64)
        self.episode = np.zeros(n_users, dtype=np.int64)
        self.episode_seed = np.zeros(n_users, dtype=np.int64)
        self._key = torch.zeros(n_users, dtype=torch.int32, device=self.device)
        self.step_count = torch.zeros(n_users, dtype=torch.int64, device=self.device)
        H, G = history_length, self.catalog.n_genres
        self.history_items = torch.full((n_users, H), -1, dtype=torch.int64, device=self.device)
        self.history_feedback = torch.zeros(n_users, H, 2, device=self.device)
        self.instruction = Instruction.none(n_users, G, self.device)
        self.instruction_age = torch.zeros(n_users, device=self.device)
        self.session_index = torch.zeros(n_users, device=self.device)
        self.session_step = torch.zeros(n_users, device=self.device)
        # Each slot's candidates as (start a, row of the stride s in _offsets): see _draw_candidates.
        self.candidate_draw = torch.zeros(n_users, 2, dtype=torch.int64, device=self.device)
        self._candidates: torch.Tensor | None = None  # candidate_draw spelled out, until it changes
        self._observed: dict[str, np.ndarray] | None = None  # observation copies the C bookkeeping wrote
        self.started = False

    # ----------------------------------------------------------------- spaces
    def single_observation_space(self) -> spaces.Dict:
        N, D, G = self.catalog.n_items, self.catalog.feature_dim, self.catalog.n_genres
        H, C = self.history_length, self.num_candidates
        space = {
            "candidate_ids": spaces.Box(0, N - 1, (C,), np.int64),
            "candidate_features": spaces.Box(-np.inf, np.inf, (C, D), np.float32),
            "history_items": spaces.Box(-1, N - 1, (H,), np.int64),
            "history_feedback": spaces.Box(0.0, 1.0, (H, 2), np.float32),
            "instruction": spaces.Box(-1.0, 1.0, (2 * G + 1,), np.float32),
            "session": spaces.Box(0.0, np.inf, (3,), np.float32),
        }
        if not self.observe_features:
            del space["candidate_features"]
        return spaces.Dict(space)

    def action_space(self, batch: int | None = None) -> spaces.Space:
        """One action (``batch=None``) or a batch of ``batch`` actions."""
        if self.action_format == "scores":
            shape = (self.num_candidates,) if batch is None else (batch, self.num_candidates)
            return spaces.Box(-1.0, 1.0, shape, np.float32)
        return SlateSpace(self.num_candidates, self.slate_size, batch)

    # ------------------------------------------------------------- episodes
    def reset_all(self, seed: int | Sequence[int] | None, np_random: np.random.Generator) -> None:
        """Start every slot, the way Gymnasium's ``reset(seed=...)`` asks.

        An int ``seed`` gives slot ``i`` the base seed ``seed + i`` (a single env is slot 0);
        a sequence gives one base seed per slot; ``None`` starts the next episode of every
        slot's seed sequence, or, before any seed was given, draws a base from ``np_random``.
        """
        slots = np.arange(self.n_users)
        if seed is not None:
            bases = seed + slots if isinstance(seed, (int, np.integer)) else np.asarray(seed, dtype=np.int64)
            if len(bases) != self.n_users:
                raise ValueError(f"got {len(bases)} seeds for {self.n_users} users; give one per user or a single int")
            self.restart(slots, base_seeds=bases)
        elif not self.started:
            self.restart(slots, base_seeds=int(np_random.integers(2**62)) + slots)
        else:
            self.restart(slots)

    def restart(self, slots: np.ndarray, base_seeds: Sequence[int] | None = None, again: bool = False,
                candidates: bool = True) -> None:
        """Start the next user episode in ``slots``.

        With ``base_seeds`` the slots are (re)seeded and start their first episode;
        without, each slot starts the next episode of its seed sequence:
        episode ``j`` of base seed ``s`` has seed ``s`` for ``j = 0`` and
        ``mix_int(s, j)`` after. ``again=True`` restarts the current episode from scratch.
        ``candidates=False`` leaves the slots' candidates to the step that follows at once
        (an autoreset's), which draws every slot's from its step count.
        """
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots) == 0:
            return
        self._observed = None
        if base_seeds is not None:
            self.base_seed[slots] = np.asarray(base_seeds, dtype=np.int64)
            self.episode[slots] = 0
        elif not again:
            self.episode[slots] += 1
        base, episode = torch.from_numpy(self.base_seed[slots]), torch.from_numpy(self.episode[slots])
        self.episode_seed[slots] = torch.where(episode == 0, base, rng.derive(base, episode)).numpy()
        seeds = self.episode_seed[slots]
        if self.started and len(slots) < self.n_users:
            self.simulator.reset(self.n_users, seed=torch.from_numpy(seeds), users=torch.as_tensor(slots))
        else:
            if len(slots) != self.n_users:
                raise RuntimeError("the first reset must start every slot")
            self.simulator.reset(self.n_users, seed=torch.from_numpy(seeds))
            self.started = True
        index = torch.as_tensor(slots, device=self.device)
        keys = rng.user_keys(rng.derive(torch.from_numpy(seeds), S_ENV_KEY), self.device)
        if self.kernel == "c":
            native_world.start(self, index, keys)  # the same, in one pass
        else:
            self._start(index, keys)
        if candidates:
            self._draw_candidates(index)

    def _start(self, index: torch.Tensor, keys: torch.Tensor) -> None:
        """Episode start of slots ``index`` with random ``keys``: no history, no instruction."""
        self._key[index] = keys
        self.step_count[index] = 0
        self.history_items[index] = -1
        self.history_feedback[index] = 0.0
        for tensor in (self.instruction.active, self.instruction.more, self.instruction.less):
            tensor[index] = False
        self.instruction.novelty[index] = 0
        self.instruction_age[index] = 0.0
        self.session_index[index] = 0.0
        self.session_step[index] = 0.0

    def _draw_candidates(self, index: torch.Tensor | None = None) -> None:
        """Candidates ``(a + j s) mod N``, ``j < C``, with a random start ``a`` and a random
        stride ``s`` coprime with ``N``: distinct items, drawn in O(1) per user and spelled
        out in O(C) when asked for. The offsets ``j s mod N`` come from a table of up to
        4,096 strides."""
        key = self._key if index is None else self._key[index]
        count = self.step_count if index is None else self.step_count[index]
        draws = rng.bits(key, count, S_CANDIDATES, 2)
        draw = torch.stack([draws[:, 0] % self.catalog.n_items, draws[:, 1] % len(self._offsets)], 1)
        if index is None:
            self.candidate_draw = draw
        else:
            self.candidate_draw[index] = draw
        self._candidates = None

    @property
    def candidates(self) -> torch.Tensor:
        """Every slot's current candidates ``[B, C]`` (item ids), spelled out from
        :attr:`candidate_draw` when first asked for after a draw."""
        if self._candidates is None:
            draw, n_items = self.candidate_draw, self.catalog.n_items
            # In place on the gathered rows: at B = 16,384 each [B, C] int64 temporary is 6.5 MB.
            candidates = self._offsets.index_select(0, draw[:, 1]).add_(draw[:, :1])
            self._candidates = candidates.sub_((candidates >= n_items).to(candidates.dtype).mul_(n_items))
        return self._candidates

    # ---------------------------------------------------------------- steps
    def slates_from_actions(self, actions, single: bool = False) -> torch.Tensor:
        """Item ids ``[B, K]`` for the agents' actions; invalid actions raise ``ValueError``."""
        B, C, K = self.n_users, self.num_candidates, self.slate_size
        if self.action_format == "scores":
            scores = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.device)
            scores = scores.reshape(1, -1) if single else scores
            if tuple(scores.shape) != (B, C):
                raise ValueError(f"action has shape {tuple(np.shape(actions))}; expected one score per candidate, "
                                 f"{(C,) if single else (B, C)}")
            if bool(torch.isnan(scores).any()):
                row, col = (int(i) for i in torch.isnan(scores).nonzero()[0])
                raise ValueError(f"action{'' if single else f'[{row}]'}[{col}] is NaN; scores must be numbers")
            positions = scores.topk(K, dim=1).indices
        else:
            if single:
                if np.ndim(actions) != 1 or np.shape(actions)[0] != K:
                    raise ValueError(f"action has shape {np.shape(actions)}; expected ({K},) candidate indices")
                actions = np.asarray(actions)[None, :]
            elif self.kernel == "c" and isinstance(actions, np.ndarray) and actions.shape == (B, K):
                # The fast path checks and takes in one pass; a bad slate falls through to
                # check_slates, which names the bad entry.
                slates = native_world.take_slates(actions, self)
                if slates is not None:
                    return slates
            positions = check_slates(actions, C, n_rows=B, slate_size=K, name="action",
                                     choice="candidate index", plural="candidate indices",
                                     universe=f"there are {C} candidates",
                                     single=single).to(self.device)
        return self.candidates.gather(1, positions)

    def step(self, slates: torch.Tensor, autoreset: np.ndarray | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Response]:
        """Show ``slates`` (item ids) to every user; returns reward, terminated, truncated, response.

        ``autoreset``: slots whose episode ended at the previous step. They start their next
        episode instead (Gymnasium's ``NEXT_STEP`` autoreset): their slate is ignored and
        their reward, terminated and truncated are zero.
        """
        idle = None
        if autoreset is not None and len(autoreset):
            # The batched simulator answers every slot: the restarted ones are held idle and
            # their answer discarded (the agent's slate for the ended episode stands in, valid
            # as every slate is). A simulator that does not hold them steps them like the
            # rest, and they are restarted again after the step.
            idle = torch.zeros(self.n_users, dtype=torch.bool, device=self.device)
            idle[autoreset] = True
            self.restart(autoreset, candidates=False)
        # Valid by construction (distinct candidates of the catalog): no second check.
        response = self.simulator.respond_valid(slates, idle)
        totals = None
        if self.kernel == "c":
            self._observed, totals = native_world.step(self, slates, response, idle, S_CANDIDATES)
        else:
            self.step_count += 1 if idle is None else (~idle).long()
            self._update_history(slates, response, idle)
            self._draw_candidates()
        self.signals = self.reward_weights.signals(response, totals)
        reward = self.reward_weights.combine(self.signals)
        terminated = response.churned
        truncated = ~terminated & (self.step_count >= self.max_steps)
        if idle is not None:
            if not self.simulator.holds_idle:
                # Stepped like the rest: restart them again from the same seed, which leaves
                # them exactly as a fresh reset would.
                self.restart(autoreset, again=True)
            reward, terminated, truncated = (x.masked_fill(idle, 0) for x in (reward, terminated, truncated))
        return reward, terminated, truncated, response

    def _update_history(self, slates: torch.Tensor, response: Response, idle: torch.Tensor | None) -> None:
        clicked, voiced, new_session = response.clicked, response.instruction.active, response.left_session
        stepped = None if idle is None else ~idle
        if stepped is not None:  # held slots change nothing
            clicked, voiced, new_session = clicked & stepped[:, None], voiced & stepped, new_session & stepped
        feedback = torch.stack([response.watch_fraction, response.liked.float()], -1)
        self.history_items, self.history_feedback = prepend_clicks(
            self.history_items, slates, clicked, (self.history_feedback, feedback))

        aging = (self.instruction_age > 0) if stepped is None else (self.instruction_age > 0) & stepped
        aging = aging.float()
        self.instruction_age = torch.where(voiced, 1.0, self.instruction_age + aging)
        for name in ("more", "less"):
            old = getattr(self.instruction, name)
            setattr(self.instruction, name, torch.where(voiced[:, None], getattr(response.instruction, name), old))
        self.instruction.novelty = torch.where(voiced, response.instruction.novelty, self.instruction.novelty)
        self.instruction.active = self.instruction.active | voiced
        self.session_index += new_session.float()
        advance = 1.0 if stepped is None else stepped.float()
        self.session_step = torch.where(new_session, 0.0, self.session_step + advance)

    # ---------------------------------------------------------- observations
    def observe(self) -> dict[str, np.ndarray]:
        """Observations ``[B, ...]`` as numpy arrays (what a real recommender can see)."""
        # The C bookkeeping writes the observation as it steps (handed out once).
        obs, self._observed = self._observed, None
        if obs is None:
            ins = self.instruction
            instruction = torch.cat([ins.more.float(), -ins.less.float(), ins.novelty.float()[:, None]], 1)
            session = torch.stack([self.session_index, self.session_step, self.instruction_age], 1)
            # Copies of the state, which later steps and restarts update in place.
            obs = {"candidate_ids": self.candidates.cpu().numpy().copy(),
                   "history_items": self.history_items.cpu().numpy().copy(),
                   "history_feedback": self.history_feedback.cpu().numpy().copy(),
                   "instruction": instruction.cpu().numpy(), "session": session.cpu().numpy()}
        if self.observe_features:
            # Into an array the agent has let go of (see envs/recycled.py); mode="clip" (the
            # ids are in range) lets numpy gather straight into it instead of via a copy.
            features = self._feature_arrays.empty()
            np.take(self._features, obs["candidate_ids"], axis=0, out=features, mode="clip")
            obs["candidate_features"] = features
        return obs

    def info(self, response: Response | None, slates: torch.Tensor | None) -> dict[str, np.ndarray]:
        """Per-user details of the last step, for loggers and metrics (numpy ``[B, ...]``)."""
        info = {"episode_seed": self.episode_seed.copy(), "session_index": self.session_index.cpu().numpy().copy()}
        if response is None:
            return info
        for name, value in response.tensor_fields().items():
            info[name] = value.cpu().numpy()
        info["slate"] = slates.cpu().numpy()
        # fromiter: np.array(list, dtype=object) inspects every entry, six times slower.
        info["instruction_text"] = np.fromiter(response.instruction_text, dtype=object, count=self.n_users)
        for name, value in self.signals.items():
            info[f"reward_{name}"] = value.cpu().numpy()
        return info

    def privileged_click_probabilities(self) -> np.ndarray:
        """The true click probability of every current candidate ``[B, C]``.

        Privileged: a real recommender cannot see this. It is the documented channel
        through which the Oracle agent reads the simulator's ground truth.
        """
        return self.simulator.click_probabilities(self.candidates).cpu().numpy()


def _candidate_offsets(n: int, count: int, max_strides: int = 4096) -> torch.Tensor:
    """``[S, count]`` offsets ``j s mod n`` for up to ``max_strides`` strides ``s`` coprime
    with ``n`` (spread evenly over ``1..n-1``), so that ``(a + offset) mod n`` lists
    ``count`` distinct items."""
    if n <= 2:
        strides = np.ones(1, dtype=np.int64)
    else:
        strides = np.arange(1, n, dtype=np.int64)
        strides = strides[np.gcd(strides, n) == 1]
        strides = strides[np.linspace(0, len(strides) - 1, min(max_strides, len(strides))).astype(np.int64)]
    return torch.from_numpy(np.arange(count, dtype=np.int64)[None, :] * strides[:, None] % n)

