"""Item representations beyond the catalog's features: text embeddings, external embeddings,
semantic IDs from residual quantisation, and the ways LLM users read items in a prompt.

The names load on first use, so that :class:`RepresentationConfig` (a field of the LLM
users' configs, which ``recoworld run`` checks before it runs) comes without torch.
"""

from recoworld.lazy import lazy_names

_LAZY = {
    "EmbeddingRepresentation": "recoworld.representations.items",
    "ItemRepresentation": "recoworld.representations.items",
    "RepresentationConfig": "recoworld.representations.config",
    "ResidualQuantizer": "recoworld.representations.quantization",
    "SemanticIdRepresentation": "recoworld.representations.items",
    "SemanticIds": "recoworld.representations.semantic_ids",
    "TextRepresentation": "recoworld.representations.items",
    "attach_embeddings": "recoworld.representations.embeddings",
    "default_text_model_path": "recoworld.representations.embeddings",
    "get_embeddings": "recoworld.representations.embeddings",
    "item_texts": "recoworld.representations.embeddings",
    "kmeans": "recoworld.representations.quantization",
    "make_representation": "recoworld.representations.items",
    "text_embeddings": "recoworld.representations.embeddings",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)  # PEP 562
