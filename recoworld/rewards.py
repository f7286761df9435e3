"""The reward vocabulary: what a recommender can be paid for each slate.

A reward is a weighted sum of per-step signals of the simulated user's response. The
envs pay it (``RecoWorld/Slate-v0``'s ``reward=`` argument, each signal also reported per
user in ``info["reward_<signal>"]``) and agents that learn their own reward
(:class:`~recoworld.agents.slateq.SlateQAgent`) read the same names, so both sides speak
of one set of signals, parsed in one place.

============== ===========================================================
``clicks``      number of clicked items in the slate
``watch_time``  sum of the watch fractions of the clicked items
``likes``       number of liked items
``retention``   +1 when the user ends a session and will return, -1 when the
                user churns, 0 otherwise
``churn``       -1 when the user churns, 0 otherwise
``compliance``  compliance of the slate with the user's instruction in force
                (0 when no instruction is in force)
============== ===========================================================

The first three are *item signals*: sums over the slate's clicked items, so each clicked
item earns its own share. The last three are *slate signals*: properties of the step as a
whole.

``retention`` pays +1 at every session end after which the user returns, so over a fixed
horizon it pays more for more, shorter sessions: an agent that maximises it is paid for
ending sessions early. ``churn`` charges only the loss of the user. What keeping a user is
worth then comes from the engagement of their later sessions, which a return over the
whole episode already counts (the episode ends at churn), and it is the signal for
long-run agents that should not be paid per session.

Choose a preset by name — any one signal (weight 1) or ``"mix"`` — or give the weights as
a mapping such as ``{"watch_time": 1.0, "retention": 5.0}`` (:meth:`RewardWeights.parse`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from recoworld.config_checks import check_fields
from recoworld.types import Response

#: Signals summed over a slate's clicked items.
ITEM_SIGNALS = ("clicks", "watch_time", "likes")
#: Signals of the step as a whole.
SLATE_SIGNALS = ("retention", "churn", "compliance")
#: Every reward signal, in the order of the table above.
SIGNALS = ITEM_SIGNALS + SLATE_SIGNALS


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward signals (see the module docstring)."""

    clicks: float = 0.0
    watch_time: float = 0.0
    likes: float = 0.0
    retention: float = 0.0
    churn: float = 0.0
    compliance: float = 0.0

    def __post_init__(self):
        check_fields(self, {}, owner="reward")

    @classmethod
    def parse(cls, spec: str | Mapping | RewardWeights) -> RewardWeights:
        """A preset name, a mapping of weights, or weights as they are."""
        if isinstance(spec, RewardWeights):
            return spec
        if isinstance(spec, str):
            if spec not in PRESETS:
                raise ValueError(f"reward={spec!r} is not a preset; choose one of {list(PRESETS)} "
                                 "or give weights such as {'clicks': 1.0, 'retention': 5.0}")
            return PRESETS[spec]
        unknown = sorted(set(spec) - set(SIGNALS))
        if unknown:
            raise ValueError(f"reward weights name unknown signals {unknown}; known signals: {list(SIGNALS)}")
        weights = cls(**spec)
        if not any(getattr(weights, name) for name in SIGNALS):
            # An agent trained on a reward that is 0 on every step learns nothing, in silence.
            raise ValueError(f"reward={dict(spec)} weighs no signal, so every step would pay 0; give at least one "
                             "nonzero weight, e.g. {'clicks': 1.0}")
        return weights

    def signals(self, response: Response, totals: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each signal per user ``[B]``. ``totals`` ``[B, 3]``, when the caller has them, are
        the slates' clicks, watch time and likes (the C bookkeeping sums them as it goes)."""
        if totals is None:
            totals = torch.stack([response.clicked.sum(1, dtype=torch.float32), response.watch_fraction.sum(1),
                                  response.liked.sum(1, dtype=torch.float32)], 1)
        return {
            "clicks": totals[:, 0],
            "watch_time": totals[:, 1],
            "likes": totals[:, 2],
            "retention": response.returned.float() - response.churned.float(),
            "churn": -response.churned.float(),
            "compliance": response.compliance,
        }

    def __call__(self, response: Response) -> torch.Tensor:
        """The reward per user ``[B]``."""
        return self.combine(self.signals(response))

    def combine(self, signals: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of :meth:`signals`."""
        total = torch.zeros_like(signals["clicks"])
        for name, signal in signals.items():
            weight = getattr(self, name)
            if weight:
                total = total + weight * signal
        return total

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Named rewards: each signal alone, and a mix for agents of the long run.
PRESETS = {
    **{name: RewardWeights(**{name: 1.0}) for name in SIGNALS},
    "mix": RewardWeights(clicks=1.0, watch_time=1.0, retention=5.0, compliance=1.0),
}
