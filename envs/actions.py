"""From an agent's action to the slate of item ids its users are shown.

An action is either ``K`` distinct candidate indices (``action_format="slate"``) or one
score per candidate (``"scores"``: the ``K`` best-scored candidates, best first, equal
scores in candidate order, :func:`~recoworld.ranking.best_first`). Invalid actions raise ``ValueError`` naming
the bad entry; nothing is clipped.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from recoworld.ranking import best_first
from recoworld.validation import check_slates, viewable
from recoworld.envs.spaces import SlateSpace

ACTION_FORMATS = ("slate", "scores")


class ActionDecoder:
    """Turns actions of ``action_format`` into candidate positions ``[B, K]`` for ``n_users``
    users choosing ``slate_size`` of ``num_candidates`` candidates."""

    def __init__(self, action_format: str, n_users: int, num_candidates: int, slate_size: int, device):
        if action_format not in ACTION_FORMATS:
            raise ValueError(f"action_format={action_format!r}; choose one of {ACTION_FORMATS}")
        self.action_format, self.device = action_format, device
        self.n_users, self.num_candidates, self.slate_size = n_users, num_candidates, slate_size

    def space(self, batch: int | None = None) -> spaces.Space:
        """One action (``batch=None``) or a batch of ``batch`` actions."""
        C = self.num_candidates
        if self.action_format == "scores":
            return spaces.Box(-1.0, 1.0, (C,) if batch is None else (batch, C), np.float32)
        return SlateSpace(C, self.slate_size, batch)

    def is_batch_of_slates(self, actions) -> bool:
        """Whether ``actions`` has the shape of a batch of slates, which a kernel may take in
        one pass (it checks them too)."""
        return (self.action_format == "slate" and isinstance(actions, np.ndarray)
                and actions.shape == (self.n_users, self.slate_size))

    def positions(self, actions, single: bool = False) -> torch.Tensor:
        """Candidate positions ``[B, K]`` of ``actions`` (one action without the batch
        dimension when ``single``); invalid actions raise ``ValueError``."""
        if self.action_format == "scores":
            return self._best_scored(actions, single)
        B, C, K = self.n_users, self.num_candidates, self.slate_size
        if single:
            try:
                shape = np.shape(actions)
            except ValueError:  # numpy's inhomogeneous-shape error, of entries of different lengths
                raise ValueError(f"action {actions!r} nests sequences of different lengths; expected ({K},) "
                                 "candidate indices") from None
            if len(shape) != 1 or shape[0] != K:
                raise ValueError(f"action has shape {shape}; expected ({K},) candidate indices")
            actions = actions[None, :] if isinstance(actions, torch.Tensor) else np.asarray(actions)[None, :]
        return check_slates(actions, C, n_rows=B, slate_size=K, name="action", choice="candidate index",
                            plural="candidate indices", universe=f"there are {C} candidates",
                            single=single).to(self.device)

    def _best_scored(self, actions, single: bool) -> torch.Tensor:
        B, C = self.n_users, self.num_candidates
        expected = (C,) if single else (B, C)  # one action is one row, (C,), as one slate is (K,)
        try:
            if isinstance(actions, torch.Tensor):
                # a policy's output as it is (on any device, tracking gradients): only its values rank
                scores = actions.detach().to(self.device, torch.float32)
            else:
                scores = torch.as_tensor(viewable(np.asarray(actions, dtype=np.float32)), device=self.device)
        except (TypeError, ValueError, RuntimeError) as error:
            got = (f"an array of dtype {actions.dtype}" if isinstance(actions, np.ndarray)
                   else f"a {type(actions).__name__}")
            raise ValueError(f"action is {got}, which does not read as float32 scores ({error}); pass one number per "
                             f"candidate, {expected}") from None
        if tuple(scores.shape) != expected:
            raise ValueError(f"action has shape {tuple(np.shape(actions))}; expected one score per candidate, "
                             f"{expected}")
        scores = scores[None, :] if single else scores
        if bool(torch.isnan(scores).any()):
            row, col = (int(i) for i in torch.isnan(scores).nonzero()[0])
            raise ValueError(f"action{'' if single else f'[{row}]'}[{col}] is NaN; scores must be numbers")
        return best_first(scores, self.slate_size)

