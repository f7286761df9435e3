"""RecoWorld: simulated users for training and evaluating recommender agents."""

from recoworld.catalog import Catalog
from recoworld.registration import register_envs
from recoworld.types import Instruction, Response

register_envs()

__version__ = "0.1.0"

__all__ = ["Catalog", "Instruction", "Response", "__version__"]
