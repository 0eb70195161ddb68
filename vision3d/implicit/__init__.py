"""Implicit surfaces: meshes from implicit functions and the metrics that compare reconstructed surfaces.

The main names are re-exported here and loaded on first use, so ``import vision3d.implicit`` imports no torch::

    from vision3d.implicit import extract_mesh, chamfer_distance, f_score

Submodules:

- :mod:`vision3d.implicit.metrics` -- Chamfer-L1/L2 (accuracy, completeness), normal consistency, F-score,
  volumetric IoU (as in Occupancy Networks / ConvONet), chunked nearest neighbours and area-weighted sampling of
  points and normals on a triangle mesh.
- :mod:`vision3d.implicit.meshing` -- marching cubes (scikit-image) of an SDF or occupancy function on a grid,
  coarse-to-fine to spare evaluations, and the :class:`~vision3d.implicit.meshing.Mesh` with PLY/OBJ I/O.
- :mod:`vision3d.implicit.networks` -- :class:`~vision3d.implicit.networks.ImplicitNetwork`, the coordinate MLP
  ``f(x [, z])`` with a skip connection, Softplus(100) or ReLU, and geometric (sphere) initialisation; ``gradient``
  (``grad_x f`` by autograd).
- :mod:`vision3d.implicit.igr` -- IGR (Gropp et al. 2020): an SDF from a point cloud (and optional normals) with
  the eikonal term.
- :mod:`vision3d.implicit.occupancy` -- Occupancy Networks (Mescheder et al. 2019): an inside/outside classifier
  trained by binary cross-entropy, one learned code per shape (class conditioning).
- :mod:`vision3d.implicit.deepsdf` -- DeepSDF (Park et al. 2019): an auto-decoder with one code per shape, the
  clamped L1 loss and a Gaussian code prior; ``infer_code`` fits the code of an unseen shape.

Learning in a few lines::

    from vision3d.implicit import IGRConfig, extract_mesh, fit_igr
    network, history = fit_igr(points, normals=None, config=IGRConfig(steps=600))
    mesh = extract_mesh(network, bounds=(-1, 1), resolution=128)
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

# Re-exported names by home submodule; a new submodule adds one line here (tests/test_implicit_metrics.py checks
# that every name resolves to its submodule's public object).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "deepsdf": ("DeepSDF", "DeepSDFConfig", "clamped_l1", "fit_deepsdf", "infer_code"),
    "igr": ("IGRConfig", "fit_igr", "igr_loss", "local_sigmas", "sample_around"),
    "meshing": ("Mesh", "extract_mesh"),
    "metrics": (
        "ChamferResult", "FScore", "chamfer_distance", "f_score", "nearest_neighbors", "normal_consistency",
        "volumetric_iou",
    ),
    "networks": ("ImplicitNetwork", "flush_denormals", "gradient"),
    "occupancy": ("OccupancyConfig", "OccupancyNetwork", "fit_occupancy"),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
