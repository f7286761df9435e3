"""The batched core behind both faces of ``RecoWorld/Slate-v0``.

:class:`SlateWorld` holds ``B`` user slots of one simulator and does, for all of them at
once, what one env step needs: draw candidates (:mod:`~recoworld.envs.candidates`), turn
actions into slates (:mod:`~recoworld.envs.actions`), ask the simulator, score the reward,
keep the observable history (:mod:`~recoworld.envs.bookkeeping`), and build observations as
numpy arrays ``[B, ...]`` (:mod:`~recoworld.envs.observation`).
:class:`~recoworld.envs.slate.SlateEnv` is this core with ``B = 1``;
:class:`~recoworld.envs.slate.SlateVectorEnv` is the same core with ``B = num_envs``.
Because every random draw is keyed by the slot's episode seed and step (see
:mod:`recoworld.rng`), slot ``i`` of a vector env seeded ``s`` lives exactly the episodes
of a single env seeded ``s + i`` (bit for bit with the C kernels; to float rounding with
``kernel="torch"``, whose vectorised ops may round a row's last bit by the batch's size).

The world's torch work on CPU runs on one torch thread
(:func:`recoworld.kernels.placement.torch_threads`), whatever the caller's setting, so that
a step keeps its speed beside the C kernels' threads and beside other processes; the
caller's setting is restored after each call. :attr:`SlateWorld.kernels` names the
kernels that run, and the reset's info carries the users' one as ``info["kernel"]``.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import secrets
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces

from recoworld import rng
from recoworld.catalog import Catalog
from recoworld.config_checks import AT_LEAST_ONE, check_flag, check_number, check_seed, did_you_mean
from recoworld.kernels.placement import torch_device, with_env_threads
from recoworld.kernels.state import expose_fields
from recoworld.kernels.world import WorldState
from recoworld.simulators.backends import USERS_KERNEL, beyond_c, fitting_choice
from recoworld.simulators.base import MAX_SEED, UserSimulator
from recoworld.simulators.population import Population
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers
from recoworld.types import Response
from recoworld.validation import viewable
from recoworld.envs.actions import ActionDecoder
from recoworld.envs.bookkeeping import bookkeeping_backend, world_state
from recoworld.envs.candidates import CandidateSets
from recoworld.envs.observation import Observer, observation_space
from recoworld.envs.response_checks import ResponseCheck, is_built_in
from recoworld.rewards import RewardWeights

S_ENV_KEY = 103
#: The attribute by which a simulator names the world whose reset started its users: one
#: simulator serves one env at a time (see :meth:`SlateWorld.serving_simulator`).
OWNER = "_recoworld_world"


class SlateWorld:
    """``n_users`` recommendation requests served in lock-step (see the module docstring).

    Args are those of :class:`~recoworld.envs.slate.SlateEnv`, plus ``n_users``. The
    per-user state is :attr:`state` (a :class:`~recoworld.kernels.world.WorldState`), whose
    fields read as attributes too (``history_items``, ``instruction``, ``session_index``, ...).
    """

    # One torch thread here too, as in every step: a worker forked from a process that ran
    # torch on several threads (AsyncVectorEnv, SubprocVecEnv(start_method="fork")) builds its
    # env here, and would hang in the first op that used several (OpenMP's pool does not
    # survive a fork).
    @with_env_threads
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
        kernel: str = "auto",
        check_responses: bool = True,
    ):
        # Sizes and switches are checked before anything is built, naming the argument.
        n_users, slate_size, num_candidates, history_length, max_steps = (
            check_number(None, key, value, AT_LEAST_ONE, integer=True) for key, value in zip(
                ("num_envs", "slate_size", "num_candidates", "history_length", "max_steps"),
                (n_users, slate_size, num_candidates, history_length, max_steps)))
        candidate_features, check_responses = (check_flag(None, key, value) for key, value in (
            ("candidate_features", candidate_features), ("check_responses", check_responses)))
        self.simulator = _simulator(simulator, catalog, simulator_config, population, torch_device(device), kernel,
                                    slate_size)
        self.catalog, self.device = self.simulator.catalog, self.simulator.device
        n_items = self.catalog.n_items
        if not 1 <= slate_size <= num_candidates <= n_items:
            raise ValueError(
                f"need 1 <= slate_size ({slate_size}) <= num_candidates ({num_candidates}) "
                f"<= catalog items ({n_items})"
            )
        self.n_users, self.slate_size, self.num_candidates = n_users, slate_size, num_candidates
        self.history_length, self.max_steps = history_length, max_steps
        self.reward_weights = RewardWeights.parse(reward)
        self.check_response = ResponseCheck(self.simulator, n_users, slate_size, num_candidates, check_responses)
        # A plug-in may answer with tensors it goes on changing (its own state, updated in
        # place): the info's arrays are copies of them. RecoWorld's simulators answer with new
        # tensors at every step, which the info views as they are.
        self._copy_responses = not is_built_in(self.simulator)
        self.actions = ActionDecoder(action_format, n_users, num_candidates, slate_size, self.device)
        self.candidate_sets = CandidateSets(n_items, num_candidates, self.device)
        self.observer = Observer(self.catalog, n_users, num_candidates, candidate_features, history_length)
        # The C bookkeeping copies the candidates' features as it writes the candidates.
        features = self.catalog.features.to(torch.float32).contiguous() if candidate_features else None
        self.bookkeeping = bookkeeping_backend(kernel, self.candidate_sets, self.catalog.n_genres, self.device,
                                               slate_size, features, self.observer.empty)
        self.state: WorldState = world_state(n_users, history_length, self.catalog.n_genres, self.device)
        self.base_seed = np.zeros(n_users, dtype=np.int64)
        self.episode = np.zeros(n_users, dtype=np.int64)
        self.episode_seed = np.zeros(n_users, dtype=np.int64)
        self._observed: dict[str, np.ndarray] | None = None  # an observation a kernel wrote as it stepped
        self.started = False
        self._token = secrets.randbits(63)  # names this world on its simulator (an int: pickles and copies)

    @property
    def kernels(self) -> dict[str, str]:
        """The kernels that run (``"c"`` or ``"torch"``): ``"bookkeeping"``, the env's, and
        ``"users"``, the simulator's, for a simulator that has one (the statistical users)."""
        kernels = {"bookkeeping": self.bookkeeping.name}
        if isinstance(getattr(self.simulator, "kernel", None), str):
            kernels["users"] = self.simulator.kernel
        return kernels

    @property
    def action_format(self) -> str:
        return self.actions.action_format

    @property
    def observe_features(self) -> bool:
        return self.observer.candidate_features

    def single_observation_space(self) -> spaces.Dict:
        return observation_space(self.catalog, self.history_length, self.num_candidates, self.observe_features)

    def action_space(self, batch: int | None = None) -> spaces.Space:
        """One action (``batch=None``) or a batch of ``batch`` actions."""
        return self.actions.space(batch)

    # ------------------------------------------------------------- episodes
    @with_env_threads
    def reset_all(self, seed: int | Sequence[int | None] | None, np_random: np.random.Generator,
                  reset_mask: np.ndarray | None = None) -> None:
        """Start every slot, or the slots of ``reset_mask`` (bool ``[B]``), the way
        Gymnasium's ``reset(seed=..., options={"reset_mask": ...})`` asks.

        A slot that ``seed`` gives a base seed (:func:`reset_seeds`: ``seed + i`` for an int,
        one per slot for a sequence) starts the first episode of that base seed; any other
        slot starts the next episode of its seed sequence, or, before any seed was given,
        draws a base from ``np_random``. The first reset starts every slot.
        """
        bases, seeded = reset_seeds(seed, self.n_users)
        chosen = np.ones(self.n_users, dtype=bool) if reset_mask is None else reset_mask
        if not self.started:
            if not chosen.all():
                raise ValueError("options['reset_mask'] leaves users out of the first reset, which starts every "
                                 "user; call reset() without a reset_mask first")
            if not seeded.all():
                unseeded = np.flatnonzero(~seeded)
                bases[unseeded] = int(np_random.integers(2**62)) + unseeded
            self.restart(np.arange(self.n_users), base_seeds=bases)
            return
        self.restart(np.flatnonzero(chosen & seeded), base_seeds=bases[chosen & seeded])
        self.restart(np.flatnonzero(chosen & ~seeded))

    @with_env_threads
    def restart(self, slots: np.ndarray, base_seeds: Sequence[int] | None = None, again: bool = False,
                deferred: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Start the next user episode in ``slots``.

        With ``base_seeds`` the slots are (re)seeded and start their first episode;
        without, each slot starts the next episode of its seed sequence:
        episode ``j`` of base seed ``s`` has seed ``s`` for ``j = 0`` and
        ``rng.derive(s, j)`` after. ``again=True`` restarts the current episode from scratch.
        ``deferred=True`` starts the users only, and leaves the slots' bookkeeping (its start
        and the candidates) to the step that follows at once (an autoreset's): it returns
        the ``(slots, keys)`` that step hands to the bookkeeping's ``step`` as ``starts``.
        """
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        if len(slots) == 0:
            return None
        self._observed = None
        if base_seeds is not None:
            self.base_seed[slots] = np.asarray(base_seeds, dtype=np.int64)
            self.episode[slots] = 0
        elif not again:
            self.episode[slots] += 1
        base, episode = torch.from_numpy(self.base_seed[slots]), torch.from_numpy(self.episode[slots])
        seeds = torch.where(episode == 0, base, rng.derive(base, episode))
        self.episode_seed[slots] = seeds.numpy()
        index = torch.from_numpy(slots)  # the slots' memory, no copy (on CPU)
        if self.started and len(slots) < self.n_users:
            self.serving_simulator().reset(self.n_users, seed=seeds, users=index)
        else:
            if len(slots) != self.n_users:
                raise RuntimeError("the first reset must start every slot")
            self.simulator.reset(self.n_users, seed=seeds)
            self.started = True
            try:
                setattr(self.simulator, OWNER, self._token)  # its users are this world's now
            except (AttributeError, TypeError):
                pass  # a simulator that takes no attribute goes unguarded
        index = index.to(self.device)
        keys = rng.user_keys(rng.derive(seeds, S_ENV_KEY), self.device)
        if deferred:
            return index, keys
        self.bookkeeping.start(self.state, index, keys)
        self.candidate_sets.draw(self.state, index)
        return None

    def serving_simulator(self) -> UserSimulator:
        """The simulator, once sure that its users are still this world's: a simulator given
        to two envs holds the users of the one reset last, and the other would step users
        of another batch size (the C kernel then reads and writes out of bounds) or, of the
        same size, another env's users, in silence. ``RuntimeError`` says so instead."""
        if getattr(self.simulator, OWNER, self._token) != self._token:
            raise RuntimeError(
                f"this env's {type(self.simulator).__name__} now serves another env, whose reset started its "
                "users; a simulator serves one env at a time: give each env its own (copy.deepcopy(simulator), "
                "or build another; with gym.make_vec, vectorization_mode='vector_entry_point' serves every user from one "
                "simulator, and 'async' copies it into each worker), or reset this env to take it back (the other "
                "env then refuses to step)")
        return self.simulator

    def started_simulator(self, call: str) -> UserSimulator:
        """:meth:`serving_simulator` for the privileged ``call``, once a reset has started the
        users; before, ``RuntimeError`` asks for the env's reset (the simulator's own error
        would ask for its ``reset(n_users, seed)``, which the env makes)."""
        if not self.started:
            raise RuntimeError(f"call reset() before {call}(): the env's users start at its first reset")
        return self.serving_simulator()

    @property
    def candidates(self) -> torch.Tensor:
        """Every slot's current candidates ``[B, C]`` (item ids)."""
        return self.candidate_sets.ids(self.state)

    # ---------------------------------------------------------------- steps
    @with_env_threads
    def slates_from_actions(self, actions, single: bool = False) -> torch.Tensor:
        """Item ids ``[B, K]`` for the agents' actions; invalid actions raise ``ValueError``,
        and a step before the first reset ``RuntimeError`` (every face's step starts here)."""
        if not self.started:
            raise RuntimeError("call reset() before step()")
        self.serving_simulator()
        if not single and self.actions.is_batch_of_slates(actions):
            # A kernel may check and take them in one pass; a bad slate falls through to the
            # decoder's check, which names the bad entry.
            slates = self.bookkeeping.take_slates(self.state, viewable(actions))
            if slates is not None:
                return slates
        return self.candidates.gather(1, self.actions.positions(actions, single))

    @with_env_threads
    def step(self, slates: torch.Tensor, autoreset: np.ndarray | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Response]:
        """Show ``slates`` (item ids) to every user; returns reward, terminated, truncated, response.

        ``autoreset``: slots whose episode ended at the previous step. They start their next
        episode instead (Gymnasium's ``NEXT_STEP`` autoreset): their slate is ignored and
        their reward, terminated and truncated are zero.
        """
        idle, starts = self._autoreset(autoreset)
        try:
            # Valid by construction (distinct candidates of the catalog): no second check.
            response = self.simulator.respond_valid(slates, idle)
            self.check_response(response)  # a plug-in simulator's answer, before anything reads it
        except BaseException:
            if idle is not None:
                # Undo the autoreset's advance, so that retrying the step (after an LLM
                # server's timeout, say) starts the same episode, not the one after it.
                self.episode[autoreset] -= 1
            raise
        self._observed, totals = self.bookkeeping.step(self.state, slates, response, idle, starts)
        self.candidate_sets.forget()
        self.signals = self.reward_weights.signals(response, totals)
        reward = self.reward_weights.combine(self.signals)
        terminated, at_limit = response.churned, self.step_count >= self.max_steps
        if idle is None:
            return reward, terminated, ~terminated & at_limit, response
        if not self.simulator.holds_idle:
            # Stepped like the rest: restart them again from the same seed, which leaves
            # them exactly as a fresh reset would.
            self.restart(autoreset, again=True)
        # Held slots end nothing and earn nothing (masks by `&` and `where`: a fraction of
        # masked_fill's cost on CPU).
        stepped = ~idle
        terminated, truncated = terminated & stepped, ~terminated & stepped & at_limit
        return torch.where(idle, 0.0, reward), terminated, truncated, response

    def _autoreset(self, autoreset: np.ndarray | None
                   ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
        """Start the next episode of the slots in ``autoreset``; returns them as the slots the
        simulator may hold idle at this step (bool ``[B]``), or ``None`` when there are none,
        and the starts that the step's bookkeeping makes (see :meth:`restart`'s ``deferred``).

        The batched simulator answers every slot: the restarted ones are held idle and their
        answer discarded (the agent's slate for the ended episode stands in, valid as every
        slate is). A simulator that does not hold them steps them like the rest, and
        :meth:`step` restarts them again after it.
        """
        if autoreset is None or not len(autoreset):
            return None, None
        idle = np.zeros(self.n_users, dtype=bool)
        idle[autoreset] = True  # numpy's indexing: one small op less than torch's on this path
        starts = self.restart(autoreset, deferred=True)
        return torch.from_numpy(idle).to(self.device), starts

    # ---------------------------------------------------------- observations
    @with_env_threads
    def observe(self) -> dict[str, np.ndarray]:
        """Observations ``[B, ...]`` as numpy arrays (what a real recommender can see)."""
        observed, self._observed = self._observed, None  # a kernel's observation is handed out once
        return self.observer.observe(self.state, self.candidates if observed is None else None, observed)

    @with_env_threads
    def info(self, response: Response | None, slates: torch.Tensor | None) -> dict[str, np.ndarray]:
        """Per-user details of the last step, for loggers and metrics (numpy ``[B, ...]``)."""
        info = {"episode_seed": self.episode_seed.copy(), "session_index": self.session_index.cpu().numpy().copy()}
        if response is None:  # a reset's: which kernel runs the users (else the bookkeeping)
            kernels = self.kernels
            info["kernel"] = np.full(self.n_users, kernels.get("users", kernels["bookkeeping"]), dtype=object)
            return info
        for name, value in response.tensor_fields().items():
            info[name] = value.cpu().numpy().copy() if self._copy_responses and value.is_cpu else value.cpu().numpy()
        info["slate"] = slates.cpu().numpy()
        info["instruction_text"] = _object_array(response.instruction_text, self.n_users)
        for name in ("item_reasons", "mindset_text"):  # the words of users who have them
            if getattr(response, name) is not None:
                info[name] = _object_array(getattr(response, name), self.n_users)
        for name, value in self.signals.items():
            info[f"reward_{name}"] = value.cpu().numpy()
        return info

    @with_env_threads
    def privileged_click_probabilities(self) -> np.ndarray:
        """The true click probability of every current candidate ``[B, C]``.

        Privileged: a real recommender cannot see this. It is the documented channel
        through which the Oracle agent reads the simulator's ground truth.
        """
        probabilities = self.started_simulator("click_probabilities").click_probabilities(self.candidates)
        self.check_response.privileged("click_probabilities", probabilities)  # a plug-in's, before numpy reads it
        return probabilities.cpu().numpy()


expose_fields(SlateWorld, WorldState)  # world.history_items reads world.state.history_items, and so on


def check_arguments(kwargs: Mapping, env: str = "RecoWorld/Slate-v0", own: Sequence[str] = (),
                    without: Sequence[str] = (), manual: str = "recoworld.envs.SlateEnv") -> None:
    """Refuse, naming it, an argument of ``env`` that :class:`SlateWorld` does not take: a
    misspelt one would otherwise be Python's ``TypeError`` about this class. ``own``: the
    env's arguments besides the world's; ``without``: the world's that it does not take."""
    known = [*own, *(name for name in inspect.signature(SlateWorld.__init__).parameters
                     if name not in ("self", "n_users", *own, *without))]
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        raise ValueError(f"{env} has no argument {unknown[0]!r}{did_you_mean(unknown[0], known)}; its arguments are "
                         f"{', '.join(known)} (help({manual}) describes each)")


def refuse_step_after_end(ended: str | None) -> None:
    """A single env's (or a wrapper's) step after its episode ended would step a churned user, or one past
    ``max_steps``: ``RuntimeError`` instead (the vector env resets finished users itself)."""
    if ended:
        raise RuntimeError(f"the episode has ended ({ended}); call env.reset() before step()")


def one_seed(seed):
    """A 0-d array or tensor as the seed it holds (``np.array(3)`` and ``torch.tensor(3)`` are
    3); any other ``seed`` as it is."""
    return seed.item() if isinstance(seed, (np.ndarray, torch.Tensor)) and seed.ndim == 0 else seed


def reset_seeds(seed, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """The base seed that a ``reset(seed=...)`` gives each of ``n_users`` slots (int64
    ``[B]``) and which slots it gives one (bool ``[B]``): an int ``s`` gives slot ``i`` the
    seed ``s + i``; a sequence gives one seed per slot, ``None`` for a slot that goes on
    with its own seed sequence (Gymnasium's ``list[int | None]``); ``None`` gives none.
    Seeds are integers in ``[0, 2**63)``; anything else raises ``ValueError`` naming it."""
    bases, seeded = np.zeros(n_users, dtype=np.int64), np.zeros(n_users, dtype=bool)
    if seed is None:
        return bases, seeded
    seed = one_seed(seed)
    if isinstance(seed, (numbers.Number, str)):
        first = check_seed(seed)
        if first > MAX_SEED - (n_users - 1):
            raise ValueError(f"seed={first} is too large: seeds are integers in [0, 2**63)" if n_users == 1 else
                             f"seed={first} is too large: user slot i gets the seed {first} + i, so with "
                             f"num_envs={n_users} it must be at most 2**63 - {n_users} ({MAX_SEED - n_users + 1})")
        bases[:], seeded[:] = first + np.arange(n_users), True
        return bases, seeded
    if not isinstance(seed, Iterable):
        check_seed(seed)  # raises, naming it
    entries = list(seed)
    if len(entries) != n_users:
        raise ValueError(f"got {len(entries)} seeds for {n_users} users; give one per user (None for a user that "
                         "goes on with its own seed sequence) or a single int")
    seeded[:] = [entry is not None for entry in entries]
    given = [entry for entry in entries if entry is not None]
    for slot, entry in zip(np.flatnonzero(seeded), given):
        # Checked before any conversion to int64, which would wrap them around to negative seeds.
        if isinstance(entry, numbers.Integral) and int(entry) > MAX_SEED:
            raise ValueError(f"seed[{slot}]={int(entry)} is too large: seeds are integers in [0, 2**63)")
    bases[seeded] = check_seed(seed if seeded.all() else given)
    return bases, seeded


def _object_array(texts, n_users: int) -> np.ndarray:
    """A response's text field as the info's object array: an object array as it is (each
    response holds a new one), a list copied into one (by fromiter: np.array(list,
    dtype=object) inspects every entry)."""
    if isinstance(texts, np.ndarray) and texts.dtype == object:
        return texts
    return np.fromiter(texts, dtype=object, count=n_users)


def _simulator(simulator: UserSimulator | None, catalog: Catalog | None, config, population: Population | None,
               device: str, kernel: str, slate_size: int) -> UserSimulator:
    """The given simulator, or statistical users of ``catalog`` (default: a synthetic one), for
    slates of ``slate_size`` items: ``kernel="auto"`` runs their torch step for slates longer
    than the C kernel's (a given :class:`StatisticalUsers` of ``"auto"`` switches to it), ``"c"``
    refuses them, here rather than at the first step."""
    slates = {"K": ("slate_size", slate_size)}
    if simulator is not None:
        if not isinstance(simulator, UserSimulator):
            raise ValueError(f"simulator is a {type(simulator).__name__}, not a recoworld.simulators.UserSimulator; "
                             "subclass UserSimulator (README: Plug in your own simulator) and run "
                             "recoworld.check_simulator(simulator) to see what else it needs")
        if catalog is not None and simulator.catalog is not catalog:
            raise ValueError("give either a simulator (which brings its catalog) or a catalog, not both")
        if isinstance(simulator, StatisticalUsers):  # built on its own, without the slates' size: "auto" chose C
            simulator.fit_slates(slate_size)
        beyond = beyond_c(USERS_KERNEL, slates) if getattr(simulator, "kernel", None) == "c" else None
        if beyond:  # asked for C by name
            raise ValueError(f"the {type(simulator).__name__} given runs the C kernel, but {beyond}; build it with "
                             "kernel='torch' (recoworld run: kernel=torch)")
        return simulator
    if catalog is not None and not isinstance(catalog, Catalog):
        raise ValueError(f"catalog is a {type(catalog).__name__}, not a recoworld.Catalog; build one with "
                         "Catalog.synthetic(n_items), Catalog.from_dataframe(items) or "
                         "recoworld.data.movielens.load_catalog()")
    if isinstance(population, type) and issubclass(population, Population):
        raise ValueError(f"population is the class {population.__name__}; pass an instance, "
                         f"{population.__name__}(...)")
    if population is not None and not isinstance(population, Population):
        raise ValueError(f"population is a {type(population).__name__}, not a "
                         "recoworld.simulators.population.Population; give one, such as SyntheticPopulation(), or "
                         "leave it out")
    catalog = catalog if catalog is not None else Catalog.synthetic(1000, seed=0)
    return StatisticalUsers(catalog, _statistical_config(config), population, device=device,
                            kernel=fitting_choice(kernel, USERS_KERNEL, slates))


def _statistical_config(config) -> StatisticalUserConfig | None:
    """``simulator_config`` as a :class:`StatisticalUserConfig` (a mapping's keys are its
    fields); ``ValueError`` naming a key it does not have, or a value of another kind."""
    if config is None or isinstance(config, StatisticalUserConfig):
        return config
    if not isinstance(config, Mapping):
        raise ValueError(f"simulator_config is a {type(config).__name__}; give a StatisticalUserConfig or a mapping "
                         "of its fields, e.g. {'satiation_rate': 0.1}")
    known = [field.name for field in dataclasses.fields(StatisticalUserConfig)]
    unknown = [key for key in config if key not in known]
    if unknown:
        raise ValueError(f"simulator_config has {unknown[0]!r}, which StatisticalUserConfig has not"
                         f"{did_you_mean(unknown[0], known)}; "
                         "help(recoworld.simulators.StatisticalUserConfig) lists its fields")
    return StatisticalUserConfig(**config)
