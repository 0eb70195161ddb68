"""Implicit surfaces: meshes from implicit functions and the metrics that compare reconstructed surfaces.

The main names are re-exported here and loaded on first use, so ``import vision3d.implicit`` imports no torch::

    from vision3d.implicit import extract_mesh, chamfer_distance, f_score

Submodules:

- :mod:`vision3d.implicit.metrics` -- Chamfer-L1/L2 (accuracy, completeness), normal consistency, F-score,
  volumetric IoU (as in Occupancy Networks / ConvONet), chunked nearest neighbours and area-weighted sampling of
  points and normals on a triangle mesh.
- :mod:`vision3d.implicit.meshing` -- marching cubes (scikit-image) of an SDF or occupancy function on a grid,
  coarse-to-fine to spare evaluations, and the :class:`~vision3d.implicit.meshing.Mesh` with PLY/OBJ I/O.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported names by home submodule; a new submodule adds one line here (tests/test_implicit_metrics.py checks
# that every name resolves to its submodule's public object).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "meshing": ("Mesh", "extract_mesh"),
    "metrics": (
        "ChamferResult", "FScore", "chamfer_distance", "f_score", "nearest_neighbors", "normal_consistency",
        "volumetric_iou",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = tuple(sorted(_EXPORTS))

__all__ = sorted(_HOME) + list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    """Load a re-exported name's submodule on first access (a submodule itself, too, without an import)."""
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
