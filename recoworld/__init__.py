"""RecoWorld: simulated users for training and evaluating recommender agents."""

from recoworld.catalog import Catalog
from recoworld.types import Instruction, Response

__version__ = "0.1.0"

__all__ = ["Catalog", "Instruction", "Response", "__version__"]
