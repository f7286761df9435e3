r"""Robustness of conclusions: does the agents' ranking hold across what the data cannot tell?

The calibration pins down who likes what, how choices rank and how ratings follow them,
but several parameters of the statistical users are assumptions (the package docstring of
:mod:`recoworld.apps.calibrate`, "What MovieLens-100K can and cannot tell"): the click
level, how leaving depends on mindset and boredom, how genres and films wear out and
recover, interest drift, how a step's quality saturates, how a session is remembered and
how strongly the return follows it. A conclusion
drawn in the simulator — above all which agent is better — is worth as much as its
independence of them. ``recoworld robustness`` measures that:

1. the lineup runs in the configured world (``recoworld run``'s config with the
   command's Hydra overrides), which gives the reference ranking;
2. it runs again in ``K`` worlds drawn from the parameters' plausible ranges by Latin
   hypercube (or Sobol) sampling (:mod:`~recoworld.apps.robustness.space`), every other
   setting and every user the same;
3. each world's ranking is compared with the reference by Kendall's :math:`\tau`, the
   mean over the worlds gets a bootstrap interval, and the parameters are ordered by how
   far they move the ranking, one at a time at the ends of their ranges and by rank
   correlation over the sampled worlds (:mod:`~recoworld.apps.robustness.stability`);
4. the configured world with other users (the seed-noise worlds) shows how far sampling
   users alone moves the ranking, the floor against which the parameters are read.

The ranges (:data:`~recoworld.apps.robustness.space.DEFAULT_RANGES`; ``recoworld
robustness --show-ranges`` prints them) are configurable: ``--ranges FILE.yaml`` replaces
them, ``--range NAME=LOW:HIGH[:SCALE]`` sets one, ``--parameters a,b`` keeps some. Any
numeric field of :class:`~recoworld.simulators.statistical.StatisticalUserConfig` may be
varied, and ``exposure_odds``, which shifts the click threshold as the calibration does.

Usage::

    recoworld robustness --quick world=synthetic        # seconds: a first look
    recoworld robustness                                # the default world and size (minutes)
    recoworld robustness --metric return_rate --steps 150
    recoworld robustness --resume outputs/robustness/DATE/TIME  # a stopped study, where it stopped

The study's folder (``--out``, default ``outputs/robustness/DATE/TIME``, new or empty)
keeps, as the study runs, ``status.json`` (``running``, ``interrupted``, ``failed`` or
``complete``, and the settings the study was started with) and each world's scores once it
finishes (``scores/``), every file written whole
(:mod:`~recoworld.apps.robustness.studydir`). A stopped study (Ctrl-C, ``kill``, a crash)
loses the world in flight only: ``recoworld robustness --resume DIR`` continues it with its
saved settings, runs only the worlds not finished, and writes the report that the study run
in one go would have written. Once every world has run the folder gets the report, its
three files renamed into place together: ``robustness.json`` (settings, ranges with the
configured values, every world's scores, ranks and :math:`\tau`, the stability summary,
per-agent rank ranges and both sensitivities), ``worlds.csv`` (a row per world) and
``report.md``.

From Python, :func:`~recoworld.apps.robustness.study.run_study` takes any evaluation
``evaluate(values, seeds) -> {agent: score}`` (and the scores of the worlds a stopped study
finished); :class:`~recoworld.apps.robustness.lineup.Lineup` is the one that simulates.
"""

from recoworld.apps.robustness.space import DEFAULT_RANGES, ParameterRange, ParameterSpace, world_config
from recoworld.apps.robustness.study import RobustnessConfig, plan, run_study

__all__ = ["DEFAULT_RANGES", "ParameterRange", "ParameterSpace", "RobustnessConfig", "plan", "run_study",
           "world_config"]
