r"""SlateQ: slate Q-values from item-wise long-term values and a user choice model.

Ie et al., 2019, "SlateQ: A Tractable Decomposition for Reinforcement Learning with
Recommendation Sets" (IJCAI). If the user consumes at most one item of a slate and reward
and transition depend only on that item, the value of a slate :math:`A` decomposes as

.. math::

    Q(s, A) = \sum_{i \in A \cup \{\perp\}} P(i \mid s, A)\, \bar Q(s, i),
    \qquad P(i \mid s, A) = \frac{v(s, i)}{v(s, \perp) + \sum_{j \in A} v(s, j)}

with the conditional-logit choice model :math:`v(s, i) = e^{g(s, i)}` and the null choice
:math:`\perp` (no click). The item-wise values are learned by Q-learning (the paper's
"SlateQ" with optimisation in the target):

.. math::

    \bar Q(s, i) \leftarrow r(s, i) + \gamma \max_{A'} \sum_{j \in A' \cup \{\perp\}} P(j \mid s', A')\, \bar Q'(s', j)

for the consumed item :math:`i` (or :math:`\perp` when nothing is clicked), with a target
network :math:`\bar Q'` (Polyak-averaged) and the slate :math:`A'` chosen by the online
network (double Q-learning).

Choices made here, where the paper leaves room or where RecoWorld's users differ:

- **Choice model.** :math:`g` is learned from clicks by maximum likelihood of the
  conditional logit over the slate and :math:`\perp`; a slate with several clicks counts
  each click as one choice (the users examine a cascade and may click more than once; the
  model ignores position bias). :math:`g(s, \perp)` is a learned linear function of the
  user's features. Since each click is one choice event with its own target,
  :math:`Q(s, A)` is the value per choice, not per step: a step with two clicks counts
  the mean of their values, not their sum, while the observed later rewards of an n-step
  target are whole steps' (all their clicks). The one-choice model cannot do better
  without a cascade of several choices. The gap is small where users seldom click twice
  in a step (the default statistical users) and grows with their
  ``continue_after_click``.
- **Null value.** :math:`\bar Q(s, \perp)` is learned too (the paper's RecSim code fixes it
  at 0): with retention rewards, what happens when the user clicks nothing — they may
  leave — is what a long-term agent must learn.
- **Item rewards.** With reward weights :math:`w` (the signals of :mod:`recoworld.rewards`),
  a clicked item earns :math:`w_\text{clicks} + w_\text{watch}\,\omega_i + w_\text{likes}\,\ell_i`
  and every choice of the step (each clicked item, or :math:`\perp`) also earns the
  slate-level part :math:`w_\text{retention}\,\rho + w_\text{churn}\,\chi + w_\text{compliance}\,\kappa`.
- **Slate optimisation** (:mod:`recoworld.agents.slate_optimizers`). ``"top_k"`` (default)
  is the paper's top-K heuristic: the K largest :math:`v_i \bar Q_i`. ``"exact"`` solves
  :math:`\max_{|A| = K} Q(s, A)` exactly: it is a 0-1 fractional programme whose inner
  problem for a fixed ratio :math:`\lambda` (Dinkelbach, 1967) is the top-K of
  :math:`v_i(\bar Q_i - \lambda)`, so a few top-K passes reach the optimum the paper gets
  from its LP. Either way the slate is ordered by :math:`v_i \bar Q_i`, best first.
  The exact optimum is only as good as the model, which is why it is not the default:
  RecoWorld's users often click several items of a slate, so the fitted one-choice logit
  leaves the null choice little weight and every slate's :math:`Q(s, A)` close to the
  best; the exact optimum is then decided by the noise of :math:`\bar Q` across
  candidates, while the top-K heuristic favours attractive items (the comparison is in
  ``benchmarks/RESULTS.md``).
- **n-step targets.** With ``n_step > 1`` the target of the step-:math:`t` choice is
  :math:`r_t(i) + \sum_{j=1}^{m} \gamma^j r_{t+j} + \gamma^{m+1} Q(s_{t+m+1}, A^*)`, the same
  user's observed step rewards for :math:`m \le n - 1` steps (fewer at an episode's end or
  where the next steps have not arrived yet), as in Rainbow; the off-policy bias of the
  exploratory steps inside the window is accepted. The users' mindset is hidden from the
  observation, so a one-step target cannot see that a slate which followed the user's
  instruction made their return likelier a few steps later; the observed rewards can.
- **Exposure values** (``exposure_value=True``, beyond the paper). SlateQ assumes that
  reward and transition depend only on the consumed item. RecoWorld's users also react to
  the slate as a whole: compliance with their instruction is a share of the slate, and
  every examined item satiates. The option adds a slate-level term,
  :math:`Q(s, A) = \sum_{i \in A \cup \{\perp\}} P(i \mid s, A)\,\bar Q(s, i) + \frac1K \sum_{i \in A} W(s, i)`,
  fitted with :math:`\bar Q` to the same targets; with ``slate_optimizer="exact"`` the
  slate is then optimised by a local search from the exact SlateQ slate (see
  :func:`~recoworld.agents.slate_optimizers.optimize_slate`), which never does worse than
  its start.
- **Exploration.** Epsilon-greedy per user: a uniformly random slate with probability
  ``epsilon`` (so :meth:`SlateQAgent.propensities` are exact).

The class defaults are the tuned settings of ``conf/agent/slateq.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from math import perm

import numpy as np
import torch
from torch import nn

from recoworld.agents.base import Recommender
from recoworld.agents.replay import ReplayBuffer
from recoworld.agents.slate_optimizers import SLATE_OPTIMIZERS, optimize_slate, slate_value
from recoworld.agents.slateq_networks import OBS_FIELDS, CandidateFeaturizer, SlateQNetworks
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, Interval, check_fields
from recoworld.rewards import SLATE_SIGNALS, RewardWeights
from recoworld.types import Feedback, Observation


@dataclass
class SlateQConfig:
    """Hyperparameters of :class:`SlateQAgent` (its constructor takes them as keywords)."""

    gamma: float = 0.9
    n_step: int = 1
    exposure_value: bool = False
    reward: str | Mapping | None = None
    slate_optimizer: str = "top_k"
    epsilon: float = 0.01
    hidden: int = 64
    learning_rate: float = 3e-3
    batch_size: int = 256
    buffer_size: int = 50_000
    learning_starts: int = 256
    gradient_steps: int = 6
    tau: float = 0.01
    device: str = "cpu"
    RANGES = {"gamma": Interval(0.0, 1.0, closed_high=False), "epsilon": UNIT, "learning_rate": POSITIVE,
              "tau": Interval(0.0, 1.0, closed_low=False), "learning_starts": NON_NEGATIVE,
              "gradient_steps": NON_NEGATIVE,
              **dict.fromkeys(("n_step", "hidden", "batch_size", "buffer_size"), AT_LEAST_ONE)}


class SlateQAgent(Recommender):
    """SlateQ (see the module docstring), batched, on any torch device.

    Args:
        gamma: discount per step (sessions of an episode follow each other, so with
            ``gamma`` close to 1 the agent values users' coming back).
        n_step: steps of observed rewards in the TD target before bootstrapping (1 is the
            paper's one-step target). Longer targets carry consequences that the
            observation does not show — the user's mindset — back to the slate that caused them.
        exposure_value: add the slate-level term :math:`\\frac1K\\sum_{i \\in A} W(s, i)` to
            :math:`Q(s, A)` (see the module docstring).
        reward: what the agent maximises, whatever the env pays: a reward of
            :mod:`recoworld.rewards` — a preset name (one signal, e.g. ``"clicks"``, or
            ``"mix"``) or a mapping of weights such as ``{"watch_time": 1, "retention": 5}``;
            ``None`` uses the env's own weights (its ``reward_weights``). Slate-level
            signals are read from the env's ``info["reward_<signal>"]``.
        slate_optimizer: ``"top_k"`` (default) or ``"exact"`` (see the module docstring).
        epsilon: probability of a uniformly random slate per user (exploration). Set it to
            0 to evaluate the greedy policy. It is small by default because exploration is
            paid at every user-step of a rollout, while the networks generalise across items
            through their features and the candidates drawn per request show every item now
            and then.
        hidden, learning_rate, batch_size, buffer_size, learning_starts, gradient_steps,
            tau: network width, Adam step, minibatch, replay size, transitions before the
            first update, updates per :meth:`update` call, Polyak rate of the target network.
            A batched step brings one transition per user (hundreds at once), so several
            updates per step are needed for each transition to be used more than once.
        device: ``"cpu"`` (default), ``"cuda"``, or ``"auto"`` (CUDA when available).
    """

    name = "slateq"
    learns = True
    #: The dataclass that ``**config`` builds: ``recoworld run`` checks an agent config's keys
    #: against its fields before the run directory is written
    #: (:func:`~recoworld.apps.run.checks.keyword_arguments`).
    keyword_config = SlateQConfig

    def __init__(self, name: str | None = None, **config):
        self.config = SlateQConfig(**config)
        check_fields(self.config, owner=type(self).__name__)
        if name is not None:
            self.name = name
        c = self.config
        if c.slate_optimizer not in SLATE_OPTIMIZERS:
            raise ValueError(f"slate_optimizer={c.slate_optimizer!r}; choose one of {SLATE_OPTIMIZERS}")
        self.reward_weights = None if c.reward is None else RewardWeights.parse(c.reward)
        self.epsilon = c.epsilon
        self.device = resolve_device(c.device)

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        c = self.config
        if c.reward is None:  # the env's own reward, from its documented reward_weights
            paid = getattr(env.unwrapped, "reward_weights", None)
            if paid is None:
                raise ValueError(f"{type(env.unwrapped).__name__} does not say what it pays (it has no "
                                 "reward_weights); give SlateQAgent reward= explicitly, e.g. reward='clicks'")
            self.reward_weights = RewardWeights.parse(paid)
        self.featurizer = CandidateFeaturizer(self.catalog, self.device)
        torch_seed = int(self.rng.integers(2**62))
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(torch_seed)
            self.networks = SlateQNetworks(self.featurizer.item_dim, self.featurizer.user_dim, c.hidden,
                                           c.exposure_value).to(self.device)
        self.target = copy.deepcopy(self.networks).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.networks.parameters(), lr=c.learning_rate)
        self.generator = torch.Generator(self.device).manual_seed(torch_seed)
        self.buffer = ReplayBuffer(c.buffer_size, self.device)
        self._last_row: torch.Tensor | None = None  # per user slot: its latest buffer row, or -1
        self.losses: dict[str, float] = {}
        self._greedy_cache = (None, None)  # new networks: no slate of the old ones stands

    def begin_rollout(self, n_steps: int, num_envs: int) -> None:
        """A rollout starts (called by :func:`~recoworld.envs.rollout.rollout` after it reset
        the env): every user slot holds a new user, so no row of the last rollout is followed
        by this one's (n-step returns must not run on into another user's rewards)."""
        self._last_row = None

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def evaluate(self, obs: Mapping[str, torch.Tensor]):
        """``v, q`` ``[B, C]``, ``v_null, q_null`` ``[B]`` and ``w`` ``[B, C]`` (``None`` without
        exposure values) for tensor observations."""
        return self._heads(*self.featurizer(obs), self.networks)

    def _heads(self, item: torch.Tensor, user: torch.Tensor, networks: SlateQNetworks):
        g, g_null = self.networks.choice_logits(item, user)
        q, q_null = networks.values(item, user)
        # Choice scores relative to the null choice's keep exp() in range.
        v = torch.exp((g - g_null[:, None]).clamp(max=30.0))
        return v, q, torch.ones_like(g_null), q_null, networks.exposure_values(item, user)

    def greedy(self, obs: Observation) -> np.ndarray:
        """The slates that maximise the estimated :math:`Q(s, A)` ``[B, K]``."""
        # propensities() right after act() asks again for the same request. The slate depends
        # on every field the featurizer reads, not on the candidates alone (an env may hand
        # out the same candidate array while the history moves on), so the cache is keyed on
        # their contents; train_step() empties it when the networks change.
        fields = {k: np.asarray(obs[k]) for k in OBS_FIELDS}
        cached_fields, cached = self._greedy_cache  # set by setup()
        if cached_fields is not None and all(np.array_equal(fields[k], cached_fields[k]) for k in OBS_FIELDS):
            return cached.copy()
        v, q, v_null, q_null, w = self.evaluate(self.featurizer.tensors(obs))
        slates = optimize_slate(v, q, v_null, q_null, self.slate_size, self.config.slate_optimizer, w).cpu().numpy()
        self._greedy_cache = ({k: field.copy() for k, field in fields.items()}, slates.copy())
        return slates

    def score(self, obs: Observation) -> np.ndarray:
        """Each candidate's gain ``[B, C]``: :math:`v_i \\bar Q_i`, the top-K heuristic's ranking
        score, plus :math:`W_i D / K` with exposure values (:math:`D` the slate's expected
        choice denominator), which puts both terms on the scale of :func:`slate_value`."""
        v, q, v_null, _, w = self.evaluate(self.featurizer.tensors(obs))
        gain = v * q if w is None else v * q + w * (v_null[:, None] + self.slate_size * v.mean(1, keepdim=True)) / self.slate_size
        return gain.cpu().numpy()

    def act(self, obs: Observation) -> np.ndarray:
        slates = self.greedy(obs)
        if self.epsilon > 0:
            batch = slates.shape[0]
            explore = self.rng.random(batch) < self.epsilon
            if explore.any():
                random = np.argsort(self.rng.random((int(explore.sum()), self.num_candidates)), 1)
                slates[explore] = random[:, : self.slate_size]
        return slates

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        """Epsilon-greedy: :math:`(1-\\epsilon)[A = A^*] + \\epsilon\\,P_\\text{uniform}(A)`."""
        greedy = self.greedy(obs)
        C, K, eps = self.num_candidates, action.shape[1], self.epsilon
        uniform_prefix = np.array([1.0 / perm(C, k + 1) for k in range(K)])
        same_prefix = np.cumprod(greedy == action, axis=1).astype(bool)
        return {
            "slate": (1 - eps) * same_prefix[:, -1] + eps * uniform_prefix[-1],
            "position": (1 - eps) * (greedy == action) + eps / C,
            "cascade": (1 - eps) * same_prefix + eps * uniform_prefix[None, :],
        }

    # ---------------------------------------------------------------- learning
    def item_rewards(self, feedback: Feedback) -> tuple[np.ndarray, np.ndarray]:
        """Reward of each shown item if chosen ``[B, K]`` and the slate-level reward ``[B]``."""
        w, info = self.reward_weights, feedback.info
        clicked = np.asarray(feedback.clicked, dtype=np.float64)
        item = (w.clicks + w.watch_time * np.asarray(feedback.watch_fraction)
                + w.likes * np.asarray(feedback.liked)) * clicked
        shared = np.zeros(clicked.shape[0])
        for name in SLATE_SIGNALS:
            weight = getattr(w, name)
            if weight:
                if f"reward_{name}" not in info:
                    raise KeyError(f"the reward weighs {name!r}, but the env's info has no 'reward_{name}'")
                shared = shared + weight * np.asarray(info[f"reward_{name}"], dtype=np.float64)
        return item.astype(np.float32), shared.astype(np.float32)

    def update(self, feedback: Feedback) -> None:
        valid = np.asarray(feedback.valid, dtype=bool)
        batch = len(valid)
        if self._last_row is None or len(self._last_row) != batch:
            self._last_row = torch.full((batch,), -1, dtype=torch.int64, device=self.device)
        rows = np.flatnonzero(valid)
        if len(rows) == 0:
            return
        item_reward, shared_reward = self.item_rewards(feedback)
        obs = self.featurizer.tensors({k: np.asarray(v)[rows] for k, v in feedback.obs.items() if k in OBS_FIELDS})
        next_obs = self.featurizer.tensors({k: np.asarray(v)[rows] for k, v in feedback.next_obs.items()
                                            if k in OBS_FIELDS})
        transition = {**{f"obs.{k}": v for k, v in obs.items()}, **{f"next.{k}": v for k, v in next_obs.items()}}
        as_tensor = lambda x, dtype: torch.as_tensor(np.asarray(x)[rows], dtype=dtype, device=self.device)  # noqa: E731
        transition.update(
            action=as_tensor(feedback.action, torch.int64),
            clicked=as_tensor(feedback.clicked, torch.bool),
            item_reward=as_tensor(item_reward, torch.float32),
            shared_reward=as_tensor(shared_reward, torch.float32),
            step_reward=as_tensor(item_reward.sum(1) + shared_reward, torch.float32),
            terminal=as_tensor(feedback.terminated, torch.bool),
        )
        index = self.buffer.add(transition)
        slots = torch.as_tensor(rows, device=self.device)
        previous = self._last_row[slots]
        # A buffer smaller than two batches may have just overwritten a user's previous row
        # with another user's transition: that row is gone, so nothing links to it.
        linked = (previous >= 0) & ~torch.isin(previous, index)
        self.buffer.link(previous[linked], index[linked])
        ended = torch.as_tensor(np.asarray(feedback.terminated)[rows] | np.asarray(feedback.truncated)[rows],
                                device=self.device)
        self._last_row[slots] = torch.where(ended, -1, index)
        if self.buffer.size >= max(self.config.learning_starts, 1):
            for _ in range(self.config.gradient_steps):
                self.train_step(self.buffer.sample(self.config.batch_size, self.generator))

    def n_step_returns(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows ``index``: the discounted rewards of the up to ``n_step - 1`` later steps of
        the same episode, the discount of the bootstrap, and the row to bootstrap from (whose
        ``next`` observation is the state reached)."""
        gamma, data = self.config.gamma, self.buffer.data
        later = torch.zeros(len(index), device=self.device)
        discount = torch.full((len(index),), gamma, device=self.device)
        current = index
        going = ~data["terminal"][index]
        for _ in range(self.config.n_step - 1):
            successor = data["successor"][current]
            going = going & (successor >= 0)
            step_to = torch.where(going, successor, current)
            later = later + torch.where(going, discount * data["step_reward"][step_to], 0.0)
            discount = torch.where(going, discount * gamma, discount)
            current = step_to
            going = going & ~data["terminal"][current]
        bootstrap = discount * (~data["terminal"][current]).float()
        return later, bootstrap, current

    def train_step(self, index: torch.Tensor) -> dict[str, float]:
        """One gradient step of the choice model and of :math:`\\bar Q` on the buffer rows ``index``."""
        c = self.config
        batch = self.buffer.rows(index)
        obs = {k: batch[f"obs.{k}"] for k in OBS_FIELDS}
        action, clicked = batch["action"], batch["clicked"]
        any_click = clicked.any(1)

        with torch.no_grad():
            later, bootstrap, last = self.n_step_returns(index)
            next_obs = {k: self.buffer.data[f"next.{k}"].index_select(0, last) for k in OBS_FIELDS}
            next_item, next_user = self.featurizer(next_obs)
            v, q_next, v_null, q_null_next, w_next = self._heads(next_item, next_user, self.networks)
            best = optimize_slate(v, q_next, v_null, q_null_next, self.slate_size, c.slate_optimizer, w_next)
            _, q_target, _, q_null_target, w_target = self._heads(next_item, next_user, self.target)
            next_value = slate_value(v.gather(1, best), q_target.gather(1, best), v_null, q_null_target,
                                     None if w_target is None else w_target.gather(1, best))
            future = later + bootstrap * next_value
            item_target = batch["item_reward"] + (batch["shared_reward"] + future)[:, None]
            null_target = batch["shared_reward"] + future

        item, user = self.featurizer(obs)
        item = item.gather(1, action[:, :, None].expand(-1, -1, item.shape[-1]))  # the shown slate [n, K, F]
        g, g_null = self.networks.choice_logits(item, user)
        log_p = torch.log_softmax(torch.cat([g, g_null[:, None]], 1), 1)
        events = torch.cat([clicked.float(), (~any_click).float()[:, None]], 1)
        choice_loss = -(events * log_p).sum() / events.sum()

        # Each choice (a clicked item, or no click) is one sample of the slate's value.
        q, q_null = self.networks.values(item, user)
        w = self.networks.exposure_values(item, user)
        exposure = torch.zeros_like(q_null) if w is None else w.mean(1)
        item_error = ((q + exposure[:, None] - item_target) ** 2 * clicked.float()).sum()
        null_error = ((q_null + exposure - null_target) ** 2 * (~any_click).float()).sum()
        value_loss = (item_error + null_error) / events.sum()

        self._greedy_cache = (None, None)
        self.optimizer.zero_grad()
        (choice_loss + value_loss).backward()
        nn.utils.clip_grad_norm_(self.networks.parameters(), 10.0)
        self.optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.networks.parameters()):
                target.lerp_(online, c.tau)
        self.losses = {"choice": choice_loss.item(), "value": value_loss.item()}
        return self.losses



def known_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, ``"auto"`` being CUDA when available, else CPU; a name
    torch does not know is a ``ValueError`` naming it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):  # torch's message lists every device type it knows of
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'auto'") from None


def resolve_device(device: str | torch.device) -> torch.device:
    """:func:`known_device`, and a ``ValueError`` for CUDA where there is none."""
    device = known_device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} but CUDA is not available; use device='cpu' or 'auto'")
    return device
