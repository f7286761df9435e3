"""Names of a package that load on first use, so that importing the package stays light:
``import recoworld`` and the ``recoworld`` command line start without torch, and
``recoworld run`` checks its configs before it loads the simulators."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """The module-level ``__getattr__`` of ``package`` that imports each name of ``where``
    (name -> the module that defines it) when it is first asked for (PEP 562)."""

    def __getattr__(name: str):
        if name in where:
            return getattr(import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
