"""Hydra configs of ``recoworld run``, shipped as package data.

The YAML files here are the config groups (``world/``, ``simulator/``, ``env/``,
``agent/``, ``experiment/``) and the primary ``config.yaml``; :mod:`recoworld.conf.schema`
holds the dataclasses that type-check them. Importing this package registers those
schemas in Hydra's ConfigStore, so that every way of composing these configs —
``recoworld run``, or Hydra's compose API on ``pkg://recoworld.conf`` /
``initialize_config_module("recoworld.conf")`` — validates them.
"""

from recoworld.conf.schema import register_schemas

register_schemas()
