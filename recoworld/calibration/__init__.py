"""The statistics of calibration: pure functions of rating data, below the simulators.

The time-ordered split and sessions (:mod:`~recoworld.calibration.split`), the choice model
(:mod:`~recoworld.calibration.choice`) and the items' trend at a date that scales it for a world
cut at that date (:mod:`~recoworld.calibration.trend`), the rating response
(:mod:`~recoworld.calibration.ratings`),
per-user traits (:mod:`~recoworld.calibration.traits`) and the fidelity metrics
(:mod:`~recoworld.calibration.metrics`). They know nothing of simulators; the fit that turns
them into a calibrated world, ``recoworld calibrate``, is an application
(:mod:`recoworld.apps.calibrate`, whose docstring says what MovieLens-100K can and cannot tell).
"""
