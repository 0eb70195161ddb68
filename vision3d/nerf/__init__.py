"""Neural radiance fields: volume rendering, ray sampling and input encodings.

The main names are re-exported here and loaded on first use, so ``import vision3d.nerf`` imports no torch::

    from vision3d.nerf import volume_render, HashGrid, make_encoding, preset, train_nerf

Submodules:

- :mod:`vision3d.nerf.rendering` -- NeRF's quadrature of the volume rendering integral
  (:func:`~vision3d.nerf.rendering.volume_render`, :class:`~vision3d.nerf.rendering.RenderResult`), stratified
  samples, inverse-CDF importance sampling and NeRF's coarse-to-fine hierarchical samples.
- :mod:`vision3d.nerf.encodings` -- interchangeable input encodings (NeRF's positional encoding, random Fourier
  features, Instant-NGP's multiresolution hash grid) with :func:`~vision3d.nerf.encodings.make_encoding`, and
  Instant-NGP's occupancy grid for empty-space skipping.
- :mod:`vision3d.nerf.model` -- the radiance field: density before the view direction, one colour layer after.
- :mod:`vision3d.nerf.train` -- training from posed images (NeRF, Fourier-feature and hash-grid presets, the
  sparse-view priors, the central crop for small objects), held-out PSNR/SSIM, checkpoints with resume, and
  :func:`~vision3d.nerf.train.load_field` for a run directory such as the trained fields shipped in
  ``vision3d/nerf/assets/`` (made by ``benchmarks/nerf_assets.py``).
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

# Re-exported names by home submodule; a new submodule adds one line here.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "rendering": ("RenderResult", "hierarchical_samples", "sample_pdf", "stratified_samples", "volume_render"),
    "encodings": ("FourierFeatures", "HashGrid", "OccupancyGrid", "PositionalEncoding", "make_encoding"),
    "model": ("RadianceField",),
    "train": ("NeRFConfig", "evaluate", "load_field", "preset", "render_image", "train_nerf"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
