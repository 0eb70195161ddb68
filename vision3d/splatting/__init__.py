"""3D Gaussian splatting in vectorized torch, differentiable end to end and fast enough to train on a CPU.

The main names are re-exported here and loaded on first use, so ``import vision3d.splatting`` imports no torch::

    from vision3d.splatting import Gaussians, project_gaussians, rasterize, sh_to_rgb

The pipeline is a chain of small steps, each testable alone (gsplat's decomposition):

- :mod:`vision3d.splatting.gaussians` -- the scene: means, log scales, quaternions, opacity logits and spherical
  harmonics; ``Sigma = R S S^T R^T``; initialization from points or a box; the ``.ply`` layout 3DGS viewers read.
- :mod:`vision3d.splatting.sh` -- real spherical harmonics up to degree 3 (3DGS's constants and signs) and the
  view-dependent colour ``max(SH(d) + 1/2, 0)``.
- :mod:`vision3d.splatting.projection` -- EWA splatting: world to camera, the local affine Jacobian,
  ``Sigma' = J W Sigma W^T J^T`` plus the low-pass dilation, the conic, a conservative radius, culling.
- :mod:`vision3d.splatting.rasterizer` -- tiles, one depth sort per tile, and front-to-back alpha compositing
  exactly as in NeRF's quadrature.
- :mod:`vision3d.splatting.render` -- the chain for one camera: Gaussians to image, opacity and depth.
- :mod:`vision3d.splatting.density` -- adaptive density control: clone, split, prune, the opacity reset, and
  Adam's state carried over to the new set.
- :mod:`vision3d.splatting.train` -- fitting to posed views: L1 + D-SSIM, per-field Adam, the density schedule,
  run directories with TensorBoard and checkpoints that resume exactly.
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

# Re-exported names by home submodule; a new submodule adds one line here.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "gaussians": ("Gaussians", "covariance_3d", "gaussians_from_points", "load_ply", "quaternion_to_rotation",
                  "random_gaussians_in_box", "save_ply"),
    "sh": ("eval_sh", "rgb_to_sh0", "sh0_to_rgb", "sh_basis", "sh_to_rgb"),
    "projection": ("Projected", "project_gaussians"),
    "rasterizer": ("rasterize", "tile_intersections"),
    "density": ("DensityConfig", "GradientStats", "densify_and_prune", "remap_adam_state", "reset_opacity"),
    "train": ("SplatConfig", "SplatRun", "config_for_steps", "evaluate_gaussians", "surface_gaussians",
              "train_gaussians"),
    "render": ("RenderOutput", "render_gaussians"),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
