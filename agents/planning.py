r"""A planning oracle: the serving rule whose next steps, simulated, bring the most clicks of users kept.

:class:`PlanningOracle` is the long-term counterpart of the click-greedy
:class:`~recoworld.agents.baselines.Oracle`. Both read the users' ground truth through the
env's documented privileged channel; the planner reads more of it: a copy of the users in
their current state, ``env.unwrapped.user_model()`` (see ``RecoWorld/Slate-v0``'s manual),
on which it simulates what each of a few *serving rules* would bring.

At every step, for each user :math:`b`:

1. Each rule :math:`c` proposes a slate from the user's candidates (see ``RULES``):
   ``clicks``, the top-:math:`K` true click probabilities :math:`p` (the Oracle's slate);
   ``enjoyment``, the top-:math:`K` of :math:`p \times \hat e`, with :math:`\hat e` each
   item's mean enjoyment :math:`(\text{rating}-1)/4` over the ratings the planner has seen
   so far, shrunk to a neutral 3 stars by ``rating_prior`` pseudo-ratings (what a platform
   learns from its users' ratings); ``diverse``, :math:`p` picked greedily with each
   genre already on the slate multiplying an item's score by :math:`1 - \text{diversity}`.
2. Monte Carlo lookahead on the copy: the user's state row is replicated once per rule
   and rollout (all users, rules and rollouts step together as one batch), the rule's
   slate is shown, then the same rule serves ``horizon - 1`` more steps, from candidates
   the planner draws at random from the catalog (``C`` distinct items, a random start and
   a random stride coprime with the catalog's size, as
   :class:`~recoworld.catalog.RandomCandidates` draws them: the env's retrieval is random
   too, and the planner does not know its future draws). A rule is followed rather than
   one slate because a single slate barely moves a session's remembered quality; the
   rule's consequences over a few steps do.
3. Value of a rollout: the clicks of the lookahead, plus, if the user is still a user at
   its end (did not leave, or left and came back), :math:`V_b` = ``future_steps`` times
   the user's clicks per step across all the rollouts. A session end thus counts with the
   probability that the user returns: the expected return-weighted value. The rule with
   the highest mean value over ``rollouts`` rollouts is shown (ties go to the earlier
   rule in ``rules``).

The planner knows the users' state and equations, not their coin flips: each rollout
re-keys the copied users (:func:`recoworld.rng.mix64` of the key and a salt of the
planner's seed, its step and the rollout), so its draws are independent of those the real
users will make. Rollout ``r`` of every rule shares its key and candidate draws (common
random numbers), so rules are compared on the same luck. The real users are untouched: the
copy is made afresh at every step. Deterministic for a seed, but not a function of the
request alone: the same request, served again, runs a lookahead of other draws, which may
pick another rule where rules' values are close, so its propensities are unknown
(``None``) but with a single rule. It needs a batched user model
whose state is a dataclass of per-user tensors (the statistical and calibrated users).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recoworld import rng
from recoworld.agents.base import Recommender, deterministic
from recoworld.catalog import RandomCandidates
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT
from recoworld.kernels.placement import torch_threads
from recoworld.types import CANDIDATE_IDS, Feedback, Observation

RULES = ("clicks", "enjoyment", "diverse")
NEUTRAL_RATING = 3.0


@dataclass(eq=False)
class PlanningOracle(Recommender):
    """Shows, per user, the slate of the serving rule with the best simulated long-run value
    (see the module docstring).

    Args:
        horizon: steps of each lookahead (the rule's first slate included).
        rollouts: Monte Carlo rollouts per user and rule. The default is cheap enough for a
            lineup, but with 4 the choice among rules of near-equal value is mostly noise; to
            measure what planning gains, give 16 or more (``benchmarks/retention_oracles.py``
            runs 32; ``benchmarks/RESULTS.md`` compares them).
        future_steps: how many more steps a user who is still there at the end of the
            lookahead is worth, at their simulated clicks per step (0: clicks of the
            lookahead only).
        diversity: the ``diverse`` rule's discount of an item per genre it shares with the
            items already on the slate, in ``[0, 1]``.
        rating_prior: pseudo-ratings of 3 stars behind each item's enjoyment estimate.
        rules: the serving rules compared, among ``RULES``.

    After :meth:`setup`, :attr:`rule_counts` counts the requests each rule served (every
    slot of every step, a slot awaiting its autoreset included).
    """

    horizon: int = 8
    rollouts: int = 4
    future_steps: int = 20
    diversity: float = 0.5
    rating_prior: float = 2.0
    rules: tuple[str, ...] = RULES
    name = "planning_oracle"
    privileged_channel = "click_probabilities"  # a lineup skips it on simulators without one
    learns = True  # the enjoyment rule learns the items' ratings from the feedback
    RANGES = {"horizon": AT_LEAST_ONE, "rollouts": AT_LEAST_ONE, "future_steps": NON_NEGATIVE,
              "diversity": UNIT, "rating_prior": POSITIVE}

    def __post_init__(self):
        super().__post_init__()
        rules = (self.rules,) if isinstance(self.rules, str) else tuple(self.rules)
        if not rules or len(set(rules)) != len(rules) or not set(rules) <= set(RULES):
            raise ValueError(f"PlanningOracle.rules={list(rules)!r}: must be distinct names among {list(RULES)}")
        self.rules = rules

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._user_model = env.unwrapped.user_model
        model = self._user_model()
        if not all(hasattr(model, name) for name in ("state", "n_users", "click_probabilities")):
            raise TypeError(f"PlanningOracle needs a batched user model with a dataclass state of per-user tensors "
                            f"and click_probabilities (the statistical or calibrated users); "
                            f"the env's simulator is a {type(model).__name__}")
        self._draw_probabilities = _draw_scorer(model)
        self._genres = self.catalog.genres.to(model.device).float()
        n = self.catalog.n_items
        self._rating_sum, self._rating_count = np.zeros(n), np.zeros(n)
        self._seed = int(self.rng.integers(2**31))
        self._draws = torch.Generator(device="cpu").manual_seed(self._seed)
        self._candidates = RandomCandidates(n, self.num_candidates)
        self._decisions = 0
        self.rule_counts = np.zeros(len(self.rules), dtype=np.int64)  # requests served by each rule

    # ------------------------------------------------------------------ acting
    def act(self, obs: Observation) -> np.ndarray:
        # One torch thread, as the env's own work: the lookahead's many small ops lose more
        # to threads waiting for each other than they gain.
        with torch_threads(1):
            return self._plan(obs)

    def _plan(self, obs: Observation) -> np.ndarray:
        ids = torch.as_tensor(np.atleast_2d(obs[CANDIDATE_IDS]), dtype=torch.long)
        model = self._user_model()
        ids = ids.to(model.device)
        first = self.proposals(model.click_probabilities(ids), ids)  # [B, rules, K]
        self._decisions += 1
        if len(self.rules) == 1:
            self.rule_counts[0] += len(ids)
            return first[:, 0].cpu().numpy()
        values = self.lookahead(model, ids, first).cpu().numpy()
        choice = values.argmax(1)  # numpy: the first of tied maxima
        self.rule_counts += np.bincount(choice, minlength=len(self.rules))
        return first[torch.arange(len(ids)), torch.from_numpy(choice)].cpu().numpy()

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray] | None:
        """Ones with a single rule, whose slate is chosen without a lookahead; otherwise
        ``None`` (unknown): the lookahead's draws are new at every call (its salts count the
        decisions), so the same request may be served another rule's slate, with
        probabilities no closed form gives."""
        return deterministic(action) if len(self.rules) == 1 else None

    def update(self, feedback: Feedback) -> None:
        rated = feedback.clicked.astype(bool) & feedback.valid[:, None]
        np.add.at(self._rating_sum, feedback.slate[rated], feedback.info["rating"][rated].astype(np.float64))
        np.add.at(self._rating_count, feedback.slate[rated], 1.0)

    def enjoyment(self) -> np.ndarray:
        """Each item's estimated enjoyment ``(rating - 1) / 4`` (``[N]``), from the ratings seen."""
        mean = (self._rating_sum + self.rating_prior * NEUTRAL_RATING) / (self._rating_count + self.rating_prior)
        return (mean - 1.0) / 4.0

    def proposals(self, p: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Every rule's slate ``[B, rules, K]`` (candidate positions) for click probabilities
        ``p`` ``[B, C]`` of the candidates ``ids``."""
        return torch.stack([self._rule_slate(rule, p, ids) for rule in self.rules], 1)

    def _rule_slate(self, rule: str, p: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        K = self.slate_size
        if rule == "clicks":
            return p.topk(K, 1).indices
        if rule == "enjoyment":
            enjoyment = torch.as_tensor(self.enjoyment(), dtype=p.dtype, device=p.device)
            return (p * enjoyment[ids]).topk(K, 1).indices
        return _genre_diverse(p, self._genres[ids], K, self.diversity)

    # --------------------------------------------------------------- lookahead
    def lookahead(self, model, ids: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Mean value ``[B, rules]`` of following each rule for ``horizon`` steps on ``model``
        (a copy of the users, changed in place), starting with the slates ``first``."""
        B, n_rules, K = first.shape
        R, width = self.rollouts, first.shape[1] * self.rollouts
        user = torch.arange(B, device=ids.device).repeat_interleave(width)  # rows (user, rule, rollout)
        rollout = torch.arange(R, device=ids.device).repeat(B * n_rules)
        self._replicate(model, user, rollout)
        slates = ids[user].gather(1, first.reshape(B * n_rules, K).repeat_interleave(R, 0))
        alive = torch.ones(len(user), dtype=torch.bool, device=ids.device)
        clicks, steps = torch.zeros(len(user), device=ids.device), torch.zeros(len(user), device=ids.device)
        for h in range(self.horizon):
            if h:
                # The planner's own draws (distinct catalog ids): stepped without a check.
                slates = self._next_slates(model, B, user, rollout)
                response = model.respond_valid(slates)
            else:
                response = model.respond(slates)  # the caller's candidates: checked once
            steps += alive
            clicks += response.clicked.sum(1) * alive
            alive &= ~response.churned
            model.state.churned.zero_()  # the departed rows step on unseen: cheaper than compacting
        per_step = clicks.view(B, width).sum(1) / steps.view(B, width).sum(1).clamp_min(1.0)
        value = clicks + self.future_steps * per_step[user] * alive
        return value.view(B, n_rules, R).mean(2)

    def _replicate(self, model, user: torch.Tensor, rollout: torch.Tensor) -> None:
        """Make ``model`` hold row ``user[i]`` of its users in row ``i``, re-keyed per rollout
        so that its draws are not the real users' (see the module docstring)."""
        model.state = _rows(model.state, user, model.n_users)
        model.n_users = len(user)
        salts = torch.tensor([rng.mix_int(self._seed, self._decisions, r) for r in range(self.rollouts)],
                             dtype=torch.int64, device=user.device)
        model.state.key = rng.mix64(model.state.key ^ salts[rollout])
        model.state.churned.zero_()  # a slot awaiting its autoreset: planned for, never shown

    def _next_slates(self, model, B: int, user, rollout) -> torch.Tensor:
        """Each row's rule applied to fresh candidates, drawn once per (user, rollout)."""
        R, K = self.rollouts, self.slate_size
        ids = self._candidates.draw(B * R, self._draws).to(user.device)[user * R + rollout]
        p = self._draw_probabilities(model, ids)
        # Rows are (user, rule, rollout): a rule's rows are a slice of the view, found without
        # a search (a nonzero, which waits for the device on a GPU).
        by_rule = (B, len(self.rules), R, -1)
        p_rule, ids_rule = p.view(by_rule), ids.view(by_rule)
        positions = torch.empty(B, len(self.rules), R, K, dtype=torch.long, device=user.device)
        for index, name in enumerate(self.rules):
            positions[:, index] = self._rule_slate(name, p_rule[:, index].reshape(B * R, -1),
                                                   ids_rule[:, index].reshape(B * R, -1)).view(B, R, K)
        return ids.gather(1, positions.view(len(user), K))


def _draw_scorer(model) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """How the lookahead scores the candidates it draws on copies of ``model``: ``(copy, ids)
    -> click probabilities``. Where they are the statistical users' own (the sigmoid of
    their utility), through ``utility_valid``, which skips the id check (a read back to the
    host at every step; the planner's draws are catalog ids); else through the model's
    ``click_probabilities``, so that a class that changes them, or the utility they come
    from, is planned with its own probabilities at every step, not only the first."""
    # The class that defines utility_valid (the statistical users), found without importing
    # it: agents never import the simulators (layers: they meet only in the envs).
    kind = type(model)
    owner = next((c for c in kind.__mro__ if "utility_valid" in vars(c)), None)
    # A plug-in class without one of them (a batched model with click_probabilities and its own
    # utility_valid) takes the general path: its missing utility is not the owner's.
    if owner is not None and all(getattr(kind, name, None) is getattr(owner, name, None) is not None
                                 for name in ("click_probabilities", "utility")):
        return _sigmoid_of_utility
    return _click_probabilities


# Module functions, not lambdas, so that a planner set up pickles (a copy for another process).
def _sigmoid_of_utility(users, ids: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(users.utility_valid(ids))


def _click_probabilities(users, ids: torch.Tensor) -> torch.Tensor:
    return users.click_probabilities(ids)


def _genre_diverse(p: torch.Tensor, genres: torch.Tensor, K: int, diversity: float) -> torch.Tensor:
    """``K`` positions per row picked greedily by ``p`` ``[M, C]``, each item's score times
    ``(1 - diversity)`` per genre (``genres`` ``[M, C, G]``) it shares with those picked."""
    M = len(p)
    rows = torch.arange(M, device=p.device)
    overlap = torch.bmm(genres, genres.transpose(1, 2))  # [M, C, C] genres shared by two candidates
    keep = (1.0 - diversity) ** overlap
    score = p.clone()
    picks = []
    for _ in range(K):
        pick = score.argmax(1)
        picks.append(pick)
        # Discount every item by the genres it shares with the one just picked, and take that one out.
        score = score * keep[rows, pick]
        score[rows, pick] = -1.0
    return torch.stack(picks, 1)


def _rows(value, index: torch.Tensor, n_users: int):
    """A copy of the state ``value`` (a dataclass of per-user tensors, nested dataclasses
    included) holding row ``index[i]`` in row ``i``; other values are shared."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, index) if value.dim() and len(value) == n_users else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = copy.copy(value)
        for field in dataclasses.fields(value):
            object.__setattr__(out, field.name, _rows(getattr(value, field.name), index, n_users))
        return out
    return value
