"""RecoWorld: simulated users for training and evaluating recommender agents.

Importing ``recoworld`` registers the Gymnasium environments: ``RecoWorld/Slate-v0`` (a
slate of candidates, with its native vector twin) and ``RecoWorld/Instruct-v0`` (text
observations for LLM agents).
The public names below load on first use, so that ``import recoworld`` (and the
``recoworld`` command line) starts without importing torch.
"""

from recoworld.lazy import lazy_names
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
__getattr__ = lazy_names(__name__, _LAZY)  # PEP 562
