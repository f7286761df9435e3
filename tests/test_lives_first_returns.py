"""The newcomers' returns in the lives fit (``dynamics.fit_lives``): the share of them who come
back by the first-session law (``gap_first_share``) is held at 1, with a warning, where the
data hold too few returns after a first session to split them between two laws, and that
law's factor is then set on their median gap."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest

from recoworld.apps.calibrate import dynamics
from recoworld.calibration.split import cut_sessions


@pytest.mark.parametrize("first_returns", [None, 0, dynamics.MIN_FIRST_RETURNS, 200])
def test_the_share_is_not_held_where_enough_newcomers_return_or_none_does(first_returns):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dynamics.hold_first_gap_share(first_returns) == set()


@pytest.fixture(scope="module")
def few_returns(small_world):
    """Lives of the small world's 80 users (four each, seeds apart), 70% of the newcomers who
    return doing so within hours, the others as regulars; and the targets of a log in which
    only 10 of those newcomers return (the others' first sessions followed by nothing)."""
    world, _ = small_world
    users, seeds = np.tile(np.arange(80), 4), np.arange(320)
    windows = np.full(320, 40.0)
    population = world.population().pinned(users, seeds)
    truth = replace(world.config, gap_days=2.0, leave_first_session=-2.0, return_first_session=-0.5,
                    gap_first_session=-3.0, gap_first_share=0.7, quick_visit_share=0.35)
    clicks = dynamics.simulate_lives(world.catalog, truth, population, seeds, windows, max_steps=160)
    table = cut_sessions(clicks, 30.0).table
    first = dynamics.is_first_session(table)
    returning = table.loc[first & np.isfinite(table["next_gap_days"].to_numpy()), "user_id"].to_numpy()[:10]
    few = table[first | table["user_id"].isin(returning)].copy()
    few.loc[dynamics.is_first_session(few) & ~few["user_id"].isin(returning), "next_gap_days"] = np.nan
    return world, population, seeds, windows, truth, dynamics.LifeTargets.of(few)


def test_fit_lives_holds_the_first_gap_share_and_warns_where_few_newcomers_return(few_returns):
    world, population, seeds, windows, truth, targets = few_returns
    assert targets.first_returns == 10 < dynamics.MIN_FIRST_RETURNS
    assert targets.later_sessions >= dynamics.MIN_LATER_SESSIONS, "only the newcomers' returns are few"
    start = replace(truth, gap_first_session=0.0, gap_first_share=1.0)
    message = ("the gaps after a first session cannot be split between the first-session law and the regulars': the "
               "log holds 10 returns after a first session, fewer than the 30 their median and first quartile need; "
               "gap_first_share is held at 1 (every newcomer who returns does so by the first-session law, as where "
               "none returns) and that law's factor, gap_first_session, is fitted on their median. Calibrate on a log "
               "in which more newcomers return to fit the share")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        fitted, _ = dynamics.fit_lives(world.catalog, start, population, seeds, windows, targets, iterations=6,
                                       max_steps=160)
    assert fitted.gap_first_share == 1.0
    # The returns the data keep came within hours, where regulars come back after days.
    assert targets.first_gap_days < 0.2 * targets.gap_days
    assert fitted.gap_first_session < -1.0, "the first-session law's factor is still fitted, on the median"
