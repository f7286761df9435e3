"""Shared pieces of the tests that run ``recoworld run`` end to end: the overrides of the
smallest run (a synthetic world, 4 users, 4 steps, one seed, no progress bar or plots)."""

#: A run of seconds; add ``agent=...`` (or a lineup) and any setting a test is about.
TINY_RUN = ("world=synthetic", "env.num_envs=4", "experiment.steps=4", "experiment.seeds=[0]",
            "experiment.progress=false", "experiment.plots=false")
