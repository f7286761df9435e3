"""Numbers of the fidelity report on the session's small world (``small_world`` of
conftest), computed once per test process: several modules score that same world, and
``evaluate`` refits the MF baselines each time."""

from __future__ import annotations

import copy

from recoworld.apps.fidelity.report import evaluate

#: The worlds scored, with their numbers (the world is kept, so its id names no other).
_EVALUATED: dict[int, tuple] = {}


def evaluated(small_world) -> dict:
    """``evaluate(world, data=data)`` of ``small_world``, a copy of its own for each caller to
    change (the world and data are the session's, so the first result stands for every later
    call: ``evaluate`` is seeded)."""
    world, data = small_world
    if id(world) not in _EVALUATED:
        _EVALUATED[id(world)] = world, evaluate(world, data=data)
    return copy.deepcopy(_EVALUATED[id(world)][1])
