r"""Calibration of the statistical user on MovieLens-100K, and its fidelity report.

``recoworld calibrate`` (:func:`recoworld.apps.calibrate.fit.main`) fits the statistical
user model of :mod:`recoworld.simulators.statistical` to MovieLens-100K (or, with
``--data``, to any interaction log in the layout of :mod:`recoworld.data.interactions`)
and saves the world that :func:`recoworld.simulators.calibrated.load_calibrated_world` loads;
``recoworld fidelity`` (:func:`recoworld.apps.fidelity.report.main`) measures how well the
calibrated users reproduce held-out behaviour.

What MovieLens-100K can and cannot tell
=======================================

MovieLens-100K holds 100,000 ratings (1-5 stars, with a timestamp to the second) by 943
users of 1,682 movies, and the users' age, gender, occupation and zip code. It has **no
impressions** (what users were shown and did not rate), **no watch time**, **no positions**
and **no explicit leaving**. So:

Identified by the data
  * *Who likes what*: user interests, item features, the popularity bias of each user
    and the weight of item quality — up to the choice model's form (a logistic matrix
    factorisation plus an item-to-item term, brought to one vector per user and per item,
    :mod:`~recoworld.calibration.choice`).
  * *How choices rank*: which items a user is likelier to choose than others; the fidelity
    report tests this on each user's 20% latest, held-out ratings.
  * *The items' trend at a date*, for a world cut at one (``split="time"``): how recent
    ratings, a recent release and an item's age move choices after the date, and how
    strongly each user follows it, by the ratings they have given, read off a validation
    fold cut at an earlier date (:mod:`~recoworld.calibration.trend`).
  * *How ratings relate to choices*: the rating response (level, slope on utility and on
    quality, noise, each user's rating bias), :mod:`~recoworld.calibration.ratings`.
  * *Rank orders of users* on activity (sessions and the gaps between them), session
    length, genre straying and conformity, :mod:`~recoworld.calibration.traits`.
  * *Sessions*, as bursts of ratings cut by a 30-minute gap, and returns between them,
    with the end of the data treated as censoring, not as churn. A log of dates without
    a time of day (``2024-03-01``) has no bursts to cut: each user's day is one session,
    and ``recoworld calibrate --data`` warns so, as it does for times to the hour (or on
    any grid no finer than the gap), whose sessions are cut at the grid's steps.

Assumed, because the data cannot identify it
  * *The level of click-through*: without impressions, the probability of choosing an
    item is only known against a reference mix of items. Unrated items are weighted to
    match rated ones (1:1), so :math:`\sigma(v)` is the probability of choosing an item
    from an even mix of items the user would and would not choose. A real feed's
    click-through is lower for feeds that show mostly unwanted items — as the simulated
    one is, since :math:`\sigma(v)` is low for such items, though less so than under the
    catalog-wide rate. ``CalibrationConfig.exposure_odds`` moves this assumption (about
    15 reproduces the catalog-wide rate: a user rates some 6% of the movies).
  * *Examination*: patience (examining the next position) and the continuation after a
    click have no data without positions; patience is *ranked* by session length and put
    on the synthetic population's scale, and ``continue_after_click`` keeps its default.
  * *Watch fractions and likes*: no watch time or like signal; their equations are
    unchanged (they follow the calibrated utility).
  * *The scale of novelty seeking*: users are ranked by how far they stray from their
    usual genres; the spread keeps the synthetic default's ratio to the interest weight.
  * *Leaving*: there is no explicit leave event; the leave hazard's base, growth with
    session length and weight on patience are fitted by a grid so that sessions under a
    good recommender have the length distribution of the sessions users return for (p50,
    p80, p95; simulated moments); the grid's base and weight start the fit of simulated
    lives, which sets them on the later sessions' p80 and p95 beside their quick visits
    (the weight only weakly: a larger one with a higher base gives much the same sessions,
    so ``recoworld robustness`` draws it); a user's first session, a sign-up's burst in
    MovieLens, gets a shift of its own, fitted on the first sessions' median, and the share
    of patience in it follows how first sessions rank with later ones. Its dependence on mindset,
    boredom, satiation and the reflective instructions keep their defaults: no rating data
    speaks to them.
  * *Interest drift*: switched off (``interest_drift = 0``). Ratings a few minutes apart
    do not show how a user's taste moves with what they just watched, and the synthetic
    default, scaled by the fitted interest weight, pulls every user towards the catalog's
    common direction until most items are clickable and recommenders barely differ
    (``benchmarks/RESULTS.md``).
  * *Returning*: the return probability and the gap's mean and Weibull shape are fitted at
    the typical session memory at leaving, and the gap's elasticity to the session's length
    within users; how much the memory moves them keeps its default.
  * *How sessions are experienced and remembered*: how a step's quality saturates with
    the films enjoyed (``quality_scale``), how long a watched film stays unwanted
    (``item_satiation_decay``, ``item_recovery_days``) and how much the peak and the end
    of a session weigh against its mean (``peak_end_weight``) keep their defaults: ratings
    show what was enjoyed, not how the session was remembered.

The world is fitted on the training split (each user's first 80% of ratings in time),
so its catalog popularity and quality, too, come from the training split only.
"""

from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate, ensure_world, main

__all__ = ["CalibrationConfig", "calibrate", "ensure_world", "main"]
