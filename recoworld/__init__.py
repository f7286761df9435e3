"""RecoWorld: simulated users for training and evaluating recommender agents.

Importing ``recoworld`` registers the Gymnasium environments (``RecoWorld/Slate-v0``).
"""

from recoworld.catalog import Catalog
from recoworld.registration import register_envs
from recoworld.types import Instruction, Response

register_envs()

__version__ = "0.1.0"

__all__ = ["Catalog", "Instruction", "Response", "check_simulator", "__version__"]


def __getattr__(name):
    # Resolved lazily: the checker lives with the simulators, which import this package.
    if name == "check_simulator":
        from recoworld.simulators.checker import check_simulator

        return check_simulator
    raise AttributeError(f"module 'recoworld' has no attribute {name!r}")
