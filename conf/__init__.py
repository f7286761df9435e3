"""Hydra configs, shipped as package data."""
