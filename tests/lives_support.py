"""Shared piece of the lives-fit tests: the small world's users living several times, the
data the fit reads."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recoworld.apps.calibrate import dynamics
from recoworld.calibration.split import cut_sessions


def lives_of(small_world, **truth):
    """The small world's 80 users each living four times (seeds apart) under its config with
    ``truth`` set: (world, population, seeds, windows, the truth config, the targets of those
    lives, their clicks)."""
    world, _ = small_world
    users, seeds = np.tile(np.arange(80), 4), np.arange(320)
    windows = np.full(320, 40.0)
    population = world.population().pinned(users, seeds)
    config = replace(world.config, **truth)
    clicks = dynamics.simulate_lives(world.catalog, config, population, seeds, windows, max_steps=160)
    return world, population, seeds, windows, config, dynamics.LifeTargets.of(cut_sessions(clicks, 30.0).table), clicks
