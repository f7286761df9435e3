r"""Agents for the long run: users' coming back, and what they say they want.

:class:`RetentionSlateQ` optimises the discounted return over a user's coming steps,
across session ends, instead of the next click: SlateQ with a reward that mixes
engagement with retention (+1 each time a session ends and the user will come back, -1
when they churn) and, optionally, compliance with the user's instruction, so that the
values carry what a slate does to the user's coming back. A session end is not the end of
the return (churn is), so a later session counts with the probability that the user comes
back; but the discount limits how far ahead that reaches: with the default
:math:`\gamma = 0.9` a reward :math:`1/(1-\gamma) = 10` steps ahead (a session or two of
the default users) weighs about a third: the values cover the next sessions, not the
whole episode.

Its defaults are those of ``conf/agent/retention_slateq.yaml``, chosen for the default
population: watch time plus retention, weighted alike, no compliance term, no exposure
values and SlateQ's own discount. Heavier retention weights, a compliance term and the
exposure values make the targets noisier, and for users whose return is mostly a matter
of clicks the clicks given up cost more than compliance brings. They pay off for
*listening users*, a population whose mindset moves strongly with compliance and decides
their return (e.g. ``StatisticalUserConfig(compliance_weight=2, return_mindset=8,
instruction_threshold=0.2)``): the mindset that decides a return is hidden from the
observation, and what moves it besides clicks — compliance — is a property of the whole
slate, which SlateQ's consumed-item decomposition cannot credit without the slate-level
exposure values (``exposure_value=True``) and compliance in the reward
(``tests/test_rl_agents.py`` trains such an agent on listening users). Figures are in
``benchmarks/RESULTS.md``.

:class:`EnjoymentLinUCB` serves what users will be glad they watched, not only what they
will click. Statistical users decide whether to come back on how their session went — the
mean quality of its steps, a step's quality being the mean enjoyment of what was clicked
(see :mod:`recoworld.simulators.statistical`) — and what draws a click is not what is
enjoyed: in the calibrated MovieLens world clicks follow taste and popularity, ratings
follow the film's quality. A click-greedy agent fills sessions with clickable
disappointments. This agent keeps LinUCB's click model (upper confidence bound
:math:`\hat p_{bc}`) and learns, from the ratings of what users clicked, each item's
enjoyment :math:`(\text{rating} - 1)/4`: its mean over the item's :math:`n_i` ratings,
shrunk towards :math:`z_i^\top\hat\beta`, a ridge regression of every rating's enjoyment
on the item's public attributes :math:`z_i` (1, popularity, features, genres), so that an
item nobody has rated yet starts from what items like it were enjoyed,

.. math::

    \hat\jmath_i = \frac{\sum \text{enjoyment}_i + n_0\, z_i^\top\hat\beta}{n_i + n_0},
    \qquad s_{bc} = \max(\hat p_{bc}, 10^{-6})\,\hat\jmath_c^{\,w},

and shows the top ``K`` of :math:`s`: a click is worth what it is expected to be enjoyed.
Configured with :class:`InstructionFollowing` on top (``conf/agent/retention_linucb.yaml``,
with ``alpha=0``: an optimistic slate that misses is a step without a click, which the
session's memory counts in full) it is the leaderboard's retention-aware agent (results in
``benchmarks/RESULTS.md``). Its lead is bounded by the data: a MovieLens rating varies
around its expectation, so among films a user would click, the best choice adds little
expected enjoyment.

:class:`InstructionFollowing` conditions any scoring agent on the user's reflective
instruction (``obs.instruction``: +1 for genres asked for more, -1 for genres asked for
less, and the novelty wish). On top of the base agent's scores, standardised per user,
candidate :math:`c` gets

.. math::

    s'_c = z_c + a\,[c \in \text{more}] - b\,[c \in \text{less}] + n\,\nu\,(d_c - \bar d)

with :math:`\nu \in \{-1, 0, 1\}` the novelty wish and :math:`d_c = 1 - \langle u, f_c\rangle`
the candidate's distance from the user's recent clicks (:math:`\bar d` its mean over the
candidates). An instruction applies from the step it was voiced until the session ends
(:attr:`~recoworld.types.Observation.instruction_in_force`), fading by ``decay`` per
step. The simulated users drop it then, or earlier, after their ``instruction_steps``,
which the observation does not show; the decay stands in for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.agents.base import Recommender, ScorerWrapper, deterministic, require_scorer, top_k
from recoworld.agents.linear import LinUCB, Ridge
from recoworld.agents.slateq import SlateQAgent
from recoworld.config_checks import NON_NEGATIVE, POSITIVE
from recoworld.rewards import ITEM_SIGNALS
from recoworld.types import Feedback, Observation


class RetentionSlateQ(SlateQAgent):
    """SlateQ that maximises the discounted engagement and retention of the coming steps,
    sessions included (see the module docstring).

    Args:
        engagement: the engagement signal, one of :data:`~recoworld.rewards.ITEM_SIGNALS`
            (``"clicks"``, ``"watch_time"`` or ``"likes"``).
        engagement_weight, retention_weight, compliance_weight: the reward mix, in the
            signals of :mod:`recoworld.rewards`; the agent's own reward, whatever the env pays.
        retention_signal: ``"retention"`` (+1 per session end with a return, -1 at churn)
            or ``"churn"`` (-1 at churn only), which does not pay for ending sessions
            sooner (see :mod:`recoworld.rewards`).
        gamma: discount per step; the sessions of an episode follow each other, so a
            discount close to 1 values the users' coming back.
        exposure_value: SlateQ's slate-level term (see :mod:`recoworld.agents.slateq`).
        **slateq: the other :class:`~recoworld.agents.slateq.SlateQAgent` arguments.

    The defaults are ``conf/agent/retention_slateq.yaml``'s (see the module docstring).
    """

    name = "retention_slateq"

    def __init__(self, engagement: str = "watch_time", engagement_weight: float = 1.0,
                 retention_weight: float = 1.0, compliance_weight: float = 0.0, gamma: float = 0.9,
                 exposure_value: bool = False, retention_signal: str = "retention", name: str | None = None,
                 **slateq):
        if engagement not in ITEM_SIGNALS:
            raise ValueError(f"engagement={engagement!r}; choose one of {ITEM_SIGNALS}")
        if "reward" in slateq:
            raise ValueError("RetentionSlateQ builds its reward from the weights; use SlateQAgent for another reward")
        if retention_signal not in ("retention", "churn"):
            raise ValueError(f"retention_signal={retention_signal!r}; choose 'retention' or 'churn'")
        reward = {engagement: engagement_weight, retention_signal: retention_weight, "compliance": compliance_weight}
        super().__init__(name=name, gamma=gamma, reward=reward, exposure_value=exposure_value, **slateq)


@dataclass(eq=False)
class EnjoymentLinUCB(LinUCB):
    """LinUCB's click model times a learned enjoyment per item (see the module docstring).

    Args:
        enjoyment_prior: :math:`n_0`, pseudo-ratings at the predicted enjoyment that an
            item's estimate starts from (its shrinkage).
        enjoyment_weight: :math:`w`, the exponent of the enjoyment in the score (0 is plain
            LinUCB; larger trades more clicks for enjoyment).
        alpha, l2, interaction, examination: as :class:`~recoworld.agents.linear.LinUCB`.

    It reads each clicked item's rating from ``feedback.info["rating"]`` (``[B, K]``, 1-5,
    0 where nothing was rated), which ``RecoWorld/Slate-v0`` reports; without ratings it
    raises ``KeyError`` naming the field.
    """

    enjoyment_prior: float = 2.0
    enjoyment_weight: float = 1.0
    name = "enjoyment_linucb"
    RANGES = {"enjoyment_prior": POSITIVE, "enjoyment_weight": NON_NEGATIVE}

    def init_model(self) -> None:
        super().init_model()
        f = self.features
        n = len(f.popularity)
        # What is public about an item: popularity, features and genres.
        self.item_design = np.concatenate([np.ones((n, 1)), f.popularity[:, None], f.item_features,
                                           f.genre_weights], 1)
        self.enjoyment_ridge = Ridge(self.item_design.shape[1], self.l2)
        self.enjoyment_sum, self.enjoyment_count = np.zeros(n), np.zeros(n)

    def enjoyment(self, items: np.ndarray) -> np.ndarray:
        r""":math:`\hat\jmath_i` of ``items`` (any shape): each item's mean enjoyment, shrunk
        towards what its public attributes predict, clipped to [0, 1] (0.5 before the first
        rating)."""
        ridge = self.enjoyment_ridge
        # A linear prediction can leave [0, 1], where enjoyment lies: a negative one to a
        # fractional power is NaN, and to an even one it ranks like a positive one.
        prior = np.clip(self.item_design[items] @ ridge.theta, 0.0, 1.0) if ridge.n else np.full(np.shape(items), 0.5)
        n0 = self.enjoyment_prior
        return (self.enjoyment_sum[items] + n0 * prior) / (self.enjoyment_count[items] + n0)

    def score(self, obs: Observation) -> np.ndarray:
        click = np.maximum(super().score(obs), 1e-6)
        return click * self.enjoyment(np.asarray(Observation(obs).candidate_ids)) ** self.enjoyment_weight

    def update(self, feedback: Feedback) -> None:
        if "rating" not in feedback.info:  # checked first: a refused update changes nothing
            raise KeyError("EnjoymentLinUCB learns from feedback.info['rating'], which this env does not report; "
                           "use RecoWorld/Slate-v0 with statistical users, or LinUCB")
        super().update(feedback)
        ratings = np.asarray(feedback.info["rating"])
        rated = np.asarray(feedback.clicked, dtype=bool) & (ratings > 0)
        rated &= np.asarray(feedback.valid, dtype=bool)[:, None]
        items, enjoyed = np.asarray(feedback.slate)[rated], (ratings[rated] - 1.0) / 4.0
        np.add.at(self.enjoyment_sum, items, enjoyed)
        np.add.at(self.enjoyment_count, items, 1.0)
        self.enjoyment_ridge.update(self.item_design[items], enjoyed)


class InstructionFollowing(ScorerWrapper):
    """A scoring agent's ranking, adjusted to the user's instruction (see the module docstring).

    Args:
        base: an agent with ``score(obs) -> [B, C]`` (higher is better), e.g.
            :class:`~recoworld.agents.slateq.SlateQAgent` or
            :class:`~recoworld.agents.sb3.SB3Recommender`. It is set up, and learns, as usual.
        more_boost: :math:`a`, added to candidates in a genre asked for more.
        less_penalty: :math:`b`, taken from candidates in a genre asked for less.
        novelty_boost: :math:`n`, weight of the distance term when a novelty wish is given.
        decay: weight kept per step since the instruction was voiced.
        setup_base: set the base agent up in :meth:`setup` (False to wrap an agent that is
            already set up and trained).
        name: label in metrics (default ``<base>+instructions``).

    Boosts are in units of the base scores' standard deviation per user.
    """

    def __init__(self, base: Recommender, more_boost: float = 3.0, less_penalty: float = 3.0,
                 novelty_boost: float = 1.0, decay: float = 0.9, setup_base: bool = True, name: str | None = None):
        require_scorer(base, "InstructionFollowing")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay={decay}; need 0 < decay <= 1")
        self.base, self.setup_base = base, setup_base
        self.more_boost, self.less_penalty, self.novelty_boost, self.decay = more_boost, less_penalty, novelty_boost, decay
        self.name = name or f"{base.name}+instructions"

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        self._genres = self.catalog.genres.cpu().numpy().astype(np.float32)
        self._features = self.catalog.features.cpu().numpy()

    def instruction_weight(self, obs: Observation) -> np.ndarray:
        """``[B]`` how much the latest instruction still applies: ``decay ** (age - 1)`` while
        it is current (:attr:`~recoworld.types.Observation.instruction_in_force`; ``age``
        steps since it was voiced), else 0."""
        obs = Observation(obs)
        age = np.asarray(obs.steps_since_instruction, dtype=np.float64)
        return np.where(Observation(obs).instruction_in_force, self.decay ** np.maximum(age - 1, 0), 0.0)

    def score(self, obs: Observation) -> np.ndarray:
        base = np.asarray(self.base.score(obs), dtype=np.float64)
        z = (base - base.mean(1, keepdims=True)) / (base.std(1, keepdims=True) + 1e-8)
        obs = Observation(obs)
        G = self._genres.shape[1]
        instruction = np.asarray(obs.instruction, dtype=np.float32)
        more, less, novelty = instruction[:, :G] > 0, instruction[:, G:2 * G] < 0, instruction[:, 2 * G]
        genres = self._genres[obs.candidate_ids]  # [B, C, G]
        in_more = (genres * more[:, None]).max(-1)
        in_less = (genres * less[:, None]).max(-1)
        distance = 1.0 - np.einsum("bcd,bd->bc", self._features[obs.candidate_ids], self._taste(obs))
        wish = novelty[:, None] * (distance - distance.mean(1, keepdims=True))
        adjustment = self.more_boost * in_more - self.less_penalty * in_less + self.novelty_boost * wish
        return z + self.instruction_weight(obs)[:, None] * adjustment

    def act(self, obs: Observation) -> np.ndarray:
        return top_k(self.score(obs), self.slate_size)

    def propensities(self, obs: Observation, action: np.ndarray) -> dict[str, np.ndarray]:
        return deterministic(action)

    def _taste(self, obs: Observation) -> np.ndarray:
        """The watch-weighted mean features of the recent clicks, unit length ``[B, D]``."""
        history = np.asarray(obs.history_items)
        weight = (history >= 0) * (0.5 + np.asarray(obs.history_feedback)[..., 0])
        taste = np.einsum("bh,bhd->bd", weight, self._features[np.clip(history, 0, None)])
        return taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-8)

