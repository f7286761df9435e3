r"""Social influence: statistical users who are drawn to what the others consume.

:class:`SocialStatisticalUsers` is :class:`~recoworld.simulators.statistical.StatisticalUsers`
with one more term in the utility — word of mouth, or popularity feedback. The ``B``
users of one simulator form one society; every click raises the item's *buzz*

.. math::

    z_i \leftarrow (1 - \delta) z_i + \frac{1}{B}\sum_b c_{bi},
    \qquad
    v_{bi} \mathrel{+}= w \cdot 2\kappa_b \cdot \log\frac{N s_i + a}{1 + a},
    \quad s_i = z_i / \textstyle\sum_j z_j,

where :math:`c_{bi}` are this step's clicks, :math:`\delta` the per-step ``decay`` of the
buzz, :math:`N s_i` the item's share of the buzz relative to an even spread (1 for an
item that gets its fair share), :math:`a` = ``floor`` (0.1) bounds the penalty of an item
nobody talks about, :math:`w` the ``weight`` and :math:`\kappa_b \in (0,1)` the user's
conformity (a trait of calibrated users, see
:class:`~recoworld.simulators.calibrated.CalibratedTraits`; 1/2, hence a factor of 1, for
populations without it). The term is relative: items the others consume more than their
fair share gain appeal, items they ignore lose some. (An additive boost for every item
consumed at all would *flatten* consumption, because the click probability saturates for
items that are already appealing.) With ``weight=0`` (the default) the users are exactly
the statistical users, and nothing is computed. This is the cumulative-advantage
mechanism of Salganik, Dodds and Watts' MusicLab ("Experimental study of inequality and
unpredictability in an artificial cultural market", Science 2006).

Unlike plain statistical users, a social user's draws still depend only on its own seed,
but its *utilities* depend on what the rest of the batch clicked: results depend on who
is simulated together. That is the point of the option, and why it is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recoworld.catalog import Catalog, lookup
from recoworld.simulators.population import Population
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers
from recoworld.types import Response


@dataclass
class SocialInfluence:
    """Word-of-mouth parameters (module docstring): ``weight`` :math:`w` (0: off), the
    per-step ``decay`` :math:`\\delta` of the buzz and the ``floor`` :math:`a`."""

    weight: float = 0.0
    decay: float = 0.02
    floor: float = 0.1

    def __post_init__(self):
        if self.weight < 0:
            raise ValueError(f"social weight {self.weight}; word of mouth only adds appeal, use a weight >= 0")
        if self.floor <= 0:
            raise ValueError(f"social floor {self.floor}; it must be > 0 (it bounds the penalty of unknown items)")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"social decay {self.decay}; choose a value in (0, 1]")


class SocialStatisticalUsers(StatisticalUsers):
    """Statistical users with word of mouth (module docstring).

    Args:
        catalog, config, population, device: as for ``StatisticalUsers``.
        social: the word-of-mouth parameters (default: off).
        kernel: as for ``StatisticalUsers``; the C kernel computes the plain statistical
            users' utility, so ``"auto"`` (default) runs torch and ``"c"`` is refused.

    Slots an env's autoreset has just restarted (``idle`` in :meth:`respond_valid`) step
    with the rest, as the torch kernel does, but their clicks add no buzz: they answer a
    slate shown to the episode that ended.

    Attributes:
        buzz: ``[n_items]`` the decayed clicks per user, :math:`z`.
        conformity: ``[B]`` each user's :math:`\\kappa_b`.
    """

    def __init__(self, catalog: Catalog, config: StatisticalUserConfig | None = None,
                 population: Population | None = None, social: SocialInfluence | None = None, device="cpu",
                 kernel: str = "auto"):
        super().__init__(catalog, config, population, device, kernel)
        self.social = social or SocialInfluence()
        self.buzz = torch.zeros(self.catalog.n_items, device=self.device)
        self._buzz_score = torch.zeros(self.catalog.n_items, device=self.device)

    def reset(self, n_users, seed=None, users=None) -> None:
        if users is None:  # a new society starts with no buzz
            self.buzz.zero_()
            self._buzz_score.zero_()
        super().reset(n_users, seed, users)

    def _allocate(self, n: int) -> None:
        super()._allocate(n)
        self.conformity = torch.full((n,), 0.5, device=self.device)

    def _start(self, slots: torch.Tensor, seeds: torch.Tensor) -> None:
        super()._start(slots, seeds)
        # Populations are deterministic by key, so asking again gives the same users.
        conformity = getattr(self.population.sample(self.key[slots], self.catalog), "conformity", None)
        self.conformity[slots] = 0.5 if conformity is None else conformity.to(self.device)

    def _utility(self, items, feats, weights):
        v, satiation, distance = super()._utility(items, feats, weights)
        if self.social.weight:
            v = v + (2.0 * self.social.weight) * self.conformity[:, None] * lookup(self._buzz_score, items)
        return v, satiation, distance

    def _step(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        response = super()._step(slates, idle)
        if self.social.weight:
            clicked = response.clicked if idle is None else response.clicked & ~idle[:, None]
            clicks = torch.zeros_like(self.buzz)
            clicks.index_add_(0, slates.reshape(-1), clicked.reshape(-1).float())
            self.buzz = (1.0 - self.social.decay) * self.buzz + clicks / self.n_users
            total = self.buzz.sum()
            if float(total) > 0:
                a = self.social.floor
                self._buzz_score = torch.log((self.catalog.n_items * self.buzz / total + a) / (1.0 + a))
        return response
