"""Item representations beyond the catalog's features: text embeddings, external embeddings,
semantic IDs from residual quantisation, and the ways LLM users read items in a prompt."""

from recoworld.representations.embeddings import (
    attach_embeddings,
    default_text_model_path,
    get_embeddings,
    item_texts,
    text_embeddings,
)
from recoworld.representations.items import (
    EmbeddingRepresentation,
    ItemRepresentation,
    RepresentationConfig,
    SemanticIdRepresentation,
    TextRepresentation,
    make_representation,
)
from recoworld.representations.quantization import ResidualQuantizer, kmeans
from recoworld.representations.semantic_ids import SemanticIds

__all__ = [
    "EmbeddingRepresentation",
    "ItemRepresentation",
    "RepresentationConfig",
    "ResidualQuantizer",
    "SemanticIdRepresentation",
    "SemanticIds",
    "TextRepresentation",
    "attach_embeddings",
    "default_text_model_path",
    "get_embeddings",
    "item_texts",
    "kmeans",
    "make_representation",
    "text_embeddings",
]
