"""The experiment runner: Hydra app, metrics, run directory."""
