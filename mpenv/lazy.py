"""Lazy re-exports for package ``__init__`` files: the main names of a package's submodules are importable from
the package, and a submodule is imported only when one of its names is first used, so importing the package
imports no torch.

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {"model": ("BodyModel",), "motion": ("Motion",)})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def home_modules(exports: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Each re-exported name's home submodule, from an export table ``{submodule: names}``."""
    return {name: module for module, names in exports.items() for name in names}


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]], submodules: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, the module ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps each submodule to
    the names it re-exports; ``submodules`` are further submodules reachable as attributes without an import."""
    home = home_modules(exports)
    modules = tuple(sorted({*exports, *submodules}))
    names = sorted(home) + list(modules)

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return names, __getattr__, __dir__
