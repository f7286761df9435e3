"""What tests of the C kernels against the torch reference share."""

from __future__ import annotations

from dataclasses import fields

import torch

from recoworld.kernels.users import UserState
from recoworld.simulators import StatisticalUsers


def copy_state(source: StatisticalUsers, target: StatisticalUsers) -> None:
    """Put a copy of ``source``'s user state and instructions into ``target``, so that both
    step from the same state (one rounding-close draw cannot make their trajectories part)."""
    for field in fields(UserState):
        value = getattr(source.state, field.name)
        if isinstance(value, torch.Tensor):
            setattr(target.state, field.name, value.clone())
    for name, value in vars(source.instruction).items():
        setattr(target.instruction, name, value.clone())
