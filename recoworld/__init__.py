"""RecoWorld: simulated users for training and evaluating recommender agents.

Importing ``recoworld`` registers the Gymnasium environments (``RecoWorld/Slate-v0``).
The public names below load on first use, so that ``import recoworld`` (and the
``recoworld`` command line) starts without importing torch.
"""

from importlib import import_module

from recoworld.registration import register_envs

register_envs()

#: The one source of the version: pyproject.toml reads it (setuptools dynamic), `recoworld --version` prints it.
__version__ = "0.1.0"

_LAZY = {
    "Catalog": "recoworld.catalog",
    "Instruction": "recoworld.types",
    "Response": "recoworld.types",
    "check_simulator": "recoworld.simulators.checker",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recoworld' has no attribute {name!r}")
