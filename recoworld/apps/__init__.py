"""The applications layer: the programs built on RecoWorld's library.

The only layer that may import every other (shared language < simulators, agents < envs <
applications; ``docs/ARCHITECTURE.md``): the ``recoworld`` command (:mod:`~recoworld.apps.cli`),
experiments (:mod:`~recoworld.apps.run`), calibration (:mod:`~recoworld.apps.calibrate`),
the fidelity report (:mod:`~recoworld.apps.fidelity`), the OPE studies
(:mod:`~recoworld.apps.ope`), GRPO training (:mod:`~recoworld.apps.training`) and the LLM
judge (:mod:`~recoworld.apps.judge`). Nothing below imports this package.
"""
