"""The shared language between simulators, agents and envs.

A simulator answers a batch of slates ``[B, K]`` with a :class:`Response`; every tensor
field has ``B`` as its leading dimension and text fields are sequences of length ``B``
(lists, or 1-D numpy object arrays, the form the env's info hands out).
A reflective instruction travels in two forms: the sentence the user says, and the
structured :class:`Instruction` tensors an agent can act on.

On the agents' side of the env, an :class:`Observation` names the fields of the env's
observation dict (the key names are defined here, once), and :class:`Feedback` is what an
online learner is told after each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
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

    def clear(self, index) -> None:
        """Withdraw the instructions of the users at ``index`` (a new session starts without one),
        or where ``index`` is a bool mask ``[B]``, filled without listing its rows (a wait for
        the device on a GPU)."""
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            if index.shape != self.active.shape:  # masked_fill_ would broadcast a [1] mask over every user
                raise ValueError(f"clear() was given a mask of shape {tuple(index.shape)} for "
                                 f"{len(self.active)} users; give one bool per user, shape {tuple(self.active.shape)}")
            for field in (self.active, self.more, self.less, self.novelty):
                field.masked_fill_(index.view(-1, *(1,) * (field.dim() - 1)), 0)
            return
        self.active[index] = False
        self.more[index] = False
        self.less[index] = False
        self.novelty[index] = 0

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
        satisfaction: the user's mindset after the step, in ``[0, 1]``; for a user who leaves,
            the mindset at leaving, whether they return or churn (a returner's next session
            starts from it moved towards the baseline, which the state holds).
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
        instruction_text: the sentence per user, ``None`` for users who said nothing: a
            list, or a 1-D numpy object array (the statistical users', which the env's info
            hands out as it is).

    Words of users who have them (LLM users; ``None`` for simulators without words):
        item_reasons: per user, the reason given for each item of the slate (slate order),
            or ``None`` for a user who gave none this step.
        mindset_text: per user, the mindset in the user's own words after the step, or
            ``None``.
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
    instruction_text: list[str | None] | np.ndarray = field(default_factory=list)
    item_reasons: list[list[str] | None] | None = None
    mindset_text: list[str | None] | None = None

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


# The keys of the envs' observation dict, defined once; read them through Observation.
CANDIDATE_IDS = "candidate_ids"
CANDIDATE_FEATURES = "candidate_features"
HISTORY_ITEMS = "history_items"
HISTORY_FEEDBACK = "history_feedback"
INSTRUCTION = "instruction"
SESSION = "session"
#: Every key of ``RecoWorld/Slate-v0``'s observation, in the order of its manual.
OBSERVATION_KEYS = (CANDIDATE_IDS, CANDIDATE_FEATURES, HISTORY_ITEMS, HISTORY_FEEDBACK, INSTRUCTION, SESSION)


class Observation(dict):
    """What a recommender sees of one request (or a batch of them), by name.

    The envs hand out plain dicts (Gymnasium's ``Dict`` spaces need them);
    ``Observation(obs)`` is the same dict — same keys, same arrays, no copy of the arrays —
    with a property per field, so an agent writes ``obs.candidate_ids`` instead of
    spelling the key. It is a ``dict``, so it goes wherever the env's dict goes
    (Stable-Baselines3, ``space.contains``). The values are whatever the dict holds
    (numpy arrays from the envs, torch tensors inside a network); with a batch, every field
    has the batch as its leading dimension. See ``RecoWorld/Slate-v0``'s manual for the spaces.

    Properties:
        candidate_ids: ``[..., C]`` catalog ids of the candidates of the request.
        candidate_features: ``[..., C, D]`` their catalog features, ``None`` when the env
            was built with ``candidate_features=False``.
        history_items: ``[..., H]`` the user's last clicked items, newest first, ``-1`` padded.
        history_feedback: ``[..., H, 2]`` watch fraction and like of those clicks.
        instruction: ``[..., 2G + 1]`` the latest reflective instruction: +1 for genres asked
            for more, -1 for genres asked for less, then the novelty wish (-1, 0, +1).
        session: ``[..., 3]`` sessions completed, steps in the current session, and steps
            since the latest instruction (0 when none); also one property each.
    """

    __slots__ = ()

    @property
    def candidate_ids(self):
        return self[CANDIDATE_IDS]

    @property
    def candidate_features(self):
        return self.get(CANDIDATE_FEATURES)

    @property
    def history_items(self):
        return self[HISTORY_ITEMS]

    @property
    def history_feedback(self):
        return self[HISTORY_FEEDBACK]

    @property
    def instruction(self):
        return self[INSTRUCTION]

    @property
    def session(self):
        return self[SESSION]

    @property
    def batch_size(self) -> int:
        """Rows of a batched observation (the leading dimension of ``candidate_ids``)."""
        return self[CANDIDATE_IDS].shape[0]

    @property
    def sessions_completed(self):
        return self[SESSION][..., 0]

    @property
    def session_step(self):
        return self[SESSION][..., 1]

    @property
    def steps_since_instruction(self):
        """Steps since the latest instruction was voiced, 0 when there is none."""
        return self[SESSION][..., 2]

    @property
    def instruction_in_force(self):
        """``[...]`` bool: whether the latest instruction still applies, as far as a
        recommender can tell: from the step it was voiced until its session ends,
        ``0 < steps_since_instruction <= session_step``. The simulated users drop it then,
        or earlier, after their ``instruction_steps``, which the observation does not show;
        ``instruction`` keeps the latest one for the rest of the episode, so it alone does
        not say whether one is in force."""
        age = self.steps_since_instruction
        return (age > 0) & (age <= self.session_step)

    def __missing__(self, key):
        raise KeyError(f"observation has no {key!r}; it has {sorted(self)} "
                       f"(candidate_features is left out by envs built with candidate_features=False)")


@dataclass
class Feedback:
    """What an online learner sees after one batched step (built by the rollout loop,
    :func:`recoworld.envs.rollout.rollout`).

    Attributes:
        obs: the observation the actions were chosen on.
        action: ``[B, K]`` candidate indices that were shown.
        slate: ``[B, K]`` the catalog ids shown.
        clicked, watch_fraction, liked: ``[B, K]`` per-position feedback.
        reward: ``[B]`` the env's reward.
        next_obs: the observation after the step.
        terminated, truncated: ``[B]`` episode ends.
        valid: ``[B]`` False for rows that carry no real interaction (a vector env's
            autoreset step); learners must skip them.
        info: the env's info dict (instruction text, compliance, ...).
    """

    obs: Observation
    action: np.ndarray
    slate: np.ndarray
    clicked: np.ndarray
    watch_fraction: np.ndarray
    liked: np.ndarray
    reward: np.ndarray
    next_obs: Observation
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    info: dict[str, Any]
