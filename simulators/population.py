"""Populations: where the traits of each new simulated user come from.

A :class:`Population` turns the random keys of new users into their traits. The
statistical simulator asks it whenever a user slot is (re)started, so swapping the
population changes *who* the users are without touching *how* they respond: the
synthetic population draws traits from parametric distributions; a calibrated population
(see ``recoworld.simulators.calibrated``) draws real users fitted on logged data;
population specs filter either to a targeted segment.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recoworld.config_checks import NON_NEGATIVE, OPEN_UNIT, check_fields

# torch and the kernels load in the methods that draw users, not with the module:
# SyntheticPopulation is a field of recoworld run's config schema, which loads without torch.
if TYPE_CHECKING:
    import torch

    from recoworld.catalog import Catalog
    from recoworld.kernels.users import SyntheticDraw

S_USER = 1


@dataclass
class UserTraits:
    """Traits of ``n`` new users (see ``StatisticalUsers`` for their role).

    Attributes:
        interest: ``[n, D]`` unit interest vectors in the catalog's feature space.
        patience: ``[n]`` in ``(0, 1)``, the probability of examining the next position.
        novelty_trait: ``[n]`` static novelty seeking (0 = indifferent).
        activity: ``[n]`` > 0, how often the user comes back (1 = average).
        popularity_bias: ``[n]`` weight of an item's popularity in its appeal.
        source_user: ``[n]`` int64 id of the real user a trait set was fitted on, -1 for
            synthetic users.
    """

    interest: torch.Tensor
    patience: torch.Tensor
    novelty_trait: torch.Tensor
    activity: torch.Tensor
    popularity_bias: torch.Tensor
    source_user: torch.Tensor


class Population(ABC):
    """Draws the traits of new users; the same key must always give the same user."""

    @abstractmethod
    def sample(self, keys: torch.Tensor, catalog: Catalog) -> UserTraits:
        """Traits for users with 64-bit random ``keys`` (int64 ``[n]``, see :mod:`recoworld.rng`)."""

    def kernel_draw(self, catalog: Catalog) -> SyntheticDraw | None:
        """Optional: this population's law, for the C kernel to draw new users itself in the
        pass that starts them (:class:`~recoworld.kernels.users.SyntheticDraw`), the same
        users as :meth:`sample` to rounding; ``None`` (the default): the kernel takes the
        traits of :meth:`sample`."""
        return None


@dataclass
class SyntheticPopulation(Population):
    """Parametric traits.

    Interest is the normalised sum of the features of two items drawn by popularity, plus
    Gaussian noise of scale ``interest_noise``: users gather around what the catalog
    offers, popular regions more densely. Patience is logit-normal around
    ``patience_mean``; novelty seeking and popularity bias are normal; activity is
    log-normal with median 1.

    The C kernel of the statistical users draws these users itself as it starts them
    (:meth:`kernel_draw`): the same random numbers and anchor items, the traits equal to
    rounding.
    """

    interest_noise: float = 0.5
    patience_mean: float = 0.8
    patience_spread: float = 0.6
    novelty_spread: float = 0.5
    activity_spread: float = 0.5
    popularity_bias_mean: float = 0.3
    popularity_bias_spread: float = 0.3

    # patience_mean's logit is taken; the others are scales
    RANGES = {"patience_mean": OPEN_UNIT, **dict.fromkeys(
        ("interest_noise", "patience_spread", "novelty_spread", "activity_spread", "popularity_bias_spread"),
        NON_NEGATIVE)}

    def __post_init__(self):
        check_fields(self, float32=True)  # its fields become C floats and float32 tensors

    def sample(self, keys: torch.Tensor, catalog: Catalog) -> UserTraits:
        import torch

        from recoworld import rng
        from recoworld.catalog import lookup

        n, D = len(keys), catalog.feature_dim
        # One hash pass for all of a new user's draws: 2 anchor items, D interest noises, 4 traits.
        u = rng.uniform(keys, torch.zeros_like(keys), S_USER, 2 + D + 4)
        z = rng.to_normal(u[:, 2:])
        anchors = torch.searchsorted(_cumulative(catalog), u[:, :2].double()).clamp_max(catalog.n_items - 1)
        interest = lookup(catalog.features, anchors).sum(1) + self.interest_noise * z[:, :D]
        z = z[:, D:]
        return UserTraits(
            interest=torch.nn.functional.normalize(interest, dim=1),
            patience=torch.sigmoid(self._logit_patience() + self.patience_spread * z[:, 0]),
            novelty_trait=self.novelty_spread * z[:, 1],
            activity=torch.exp(self.activity_spread * z[:, 2]),
            popularity_bias=self.popularity_bias_mean + self.popularity_bias_spread * z[:, 3],
            source_user=torch.full((n,), -1, dtype=torch.int64, device=keys.device),
        )

    def kernel_draw(self, catalog: Catalog) -> SyntheticDraw | None:
        """The law of :meth:`sample` for the C kernel (see :meth:`Population.kernel_draw`);
        ``None`` for a subclass that changes :meth:`sample`, whose own draw then stands."""
        import torch

        from recoworld.kernels.users import SYNTHETIC_PARAMETERS, SyntheticDraw

        if type(self).sample is not SyntheticPopulation.sample:
            return None
        # The law's parameters are this population's fields of the same names, patience by its logit.
        parameters = {name: self._logit_patience() if name == "logit_patience" else getattr(self, name)
                      for name in SYNTHETIC_PARAMETERS}
        # Kept for the next restart while the catalog's tables and the parameters stay.
        popularity, features, draw = getattr(self, "_kernel_draw", (None, None, None))
        if popularity is not catalog.popularity or features is not catalog.features or draw.parameters != parameters:
            draw = SyntheticDraw(_cumulative(catalog), catalog.features.to(torch.float32).contiguous(), S_USER,
                                 parameters)
            self._kernel_draw = (catalog.popularity, catalog.features, draw)
        return draw

    def _logit_patience(self) -> float:
        return math.log(self.patience_mean / (1 - self.patience_mean))


def _cumulative(catalog: Catalog) -> torch.Tensor:
    """The catalog's cumulative popularity in float64, where the anchors are searched."""
    import torch

    return torch.cumsum(catalog.popularity.double(), 0)
