"""The shared language between simulators, agents and envs.

A simulator answers a batch of slates ``[B, K]`` with a :class:`Response`; every tensor
field has ``B`` as its leading dimension and text fields are lists of length ``B``.
A reflective instruction travels in two forms: the sentence the user says, and the
structured :class:`Instruction` tensors an agent can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

#: ``novelty`` values of a structured instruction.
NOVELTY_DOWN, NOVELTY_SAME, NOVELTY_UP = -1, 0, 1


@dataclass
class Instruction:
    """Structured reflective instructions for a batch of ``B`` users.

    Attributes:
        active: ``[B]`` bool, whether the user has an instruction in force.
        more: ``[B, G]`` bool, genres the user asks to see more of.
        less: ``[B, G]`` bool, genres the user asks to see less of.
        novelty: ``[B]`` int8, ``+1`` for less familiar items, ``-1`` for more familiar ones,
            ``0`` for no wish.
    """

    active: torch.Tensor
    more: torch.Tensor
    less: torch.Tensor
    novelty: torch.Tensor

    @classmethod
    def none(cls, batch: int, n_genres: int, device: str | torch.device = "cpu") -> Instruction:
        """No instruction for any of ``batch`` users."""
        return cls(
            active=torch.zeros(batch, dtype=torch.bool, device=device),
            more=torch.zeros(batch, n_genres, dtype=torch.bool, device=device),
            less=torch.zeros(batch, n_genres, dtype=torch.bool, device=device),
            novelty=torch.zeros(batch, dtype=torch.int8, device=device),
        )

    def select(self, index) -> Instruction:
        """The instructions of the users at ``index``."""
        return Instruction(self.active[index], self.more[index], self.less[index], self.novelty[index])

    def to_dict(self, b: int, genre_names) -> dict:
        """User ``b``'s instruction as plain lists of genre names (empty when none)."""
        if not bool(self.active[b]):
            return {"more": [], "less": [], "novelty": 0}
        return {
            "more": [genre_names[g] for g in self.more[b].nonzero().flatten().tolist()],
            "less": [genre_names[g] for g in self.less[b].nonzero().flatten().tolist()],
            "novelty": int(self.novelty[b]),
        }


@dataclass
class Response:
    """How ``B`` users reacted to the slates ``[B, K]`` they were shown.

    Per item (``[B, K]``), in slate order:
        examined: the user looked at the position. Unexamined positions carry no feedback.
        clicked: the user opened the item.
        watch_fraction: share of the item consumed, in ``[0, 1]``; 0 unless clicked.
        liked: the user liked the item; False unless clicked.
        rating: explicit rating 1..5 given to a clicked item, 0 where none was given.

    Per user (``[B]``):
        satisfaction: the user's mindset after the step, in ``[0, 1]``.
        leave_hazard: probability the user had of ending the session at this step.
        left_session: the session ended after this step.
        returned: the user will come back for another session (only where ``left_session``).
        return_gap: days until the next session; 0 where the session goes on, ``inf`` for
            users who churned.
        churned: the user left for good; this ends the user's episode.
        instruction_in_force: an instruction of the user was in force when the slate was shown.
        compliance: share in ``[0, 1]`` of how well the slate followed that instruction;
            0 where ``instruction_in_force`` is False.

    Reflective instruction voiced at this step (the user senses they are about to leave):
        instruction: structured form, ``instruction.active`` marks users who spoke.
        instruction_text: the sentence per user, ``None`` for users who said nothing.
    """

    examined: torch.Tensor
    clicked: torch.Tensor
    watch_fraction: torch.Tensor
    liked: torch.Tensor
    rating: torch.Tensor
    satisfaction: torch.Tensor
    leave_hazard: torch.Tensor
    left_session: torch.Tensor
    returned: torch.Tensor
    return_gap: torch.Tensor
    churned: torch.Tensor
    instruction_in_force: torch.Tensor
    compliance: torch.Tensor
    instruction: Instruction
    instruction_text: list[str | None] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.clicked.shape[0]

    def tensor_fields(self) -> dict[str, torch.Tensor]:
        """The per-item and per-user tensors by name (the instruction excluded)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
