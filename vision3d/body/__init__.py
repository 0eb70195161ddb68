"""SMPL-style human body: the body model, its kinematics, motions, 2D pose and fitting.

Submodules (import them directly; this package imports nothing heavy on its own):

- :mod:`vision3d.body.rotations` -- every rotation conversion (axis-angle, matrix, quaternion ``(w, x, y, z)``,
  6D, Euler), batched torch, differentiable.
- :mod:`vision3d.body.skeleton` -- SMPL joint names, parent indices, left/right mirroring, end effectors and
  :func:`~vision3d.body.skeleton.check_parents`.
- :mod:`vision3d.body.kinematics` -- forward kinematics of the joints without a mesh, finite-difference joint
  velocities and angular velocities, centre of mass.
- :mod:`vision3d.body.lbs` -- the SMPL formulation: shape blend shapes, joint regression, pose correctives,
  world transforms down the tree, linear blend skinning.
- :mod:`vision3d.body.model` -- :class:`~vision3d.body.model.BodyModel` (smplx-compatible call) and the loaders
  of SMPL ``.npz`` / ``.pkl`` model files (restricted unpickler, no chumpy).
- :mod:`vision3d.body.default_model` -- the stand-in body model shipped with mpenv (``BodyModel.default()``):
  SMPL's structure, anthropometric joints, a procedural mesh and a PCA shape space; not SMPL.
- :mod:`vision3d.body.motion` -- :class:`~vision3d.body.motion.Motion` clips (AMASS-style ``.npz``), resampling,
  clipping, mirroring, looping.
- :mod:`vision3d.body.bvh`, :mod:`vision3d.body.deepmimic` -- readers of BVH and DeepMimic motion files.
- :mod:`vision3d.body.retarget` -- BVH (CMU joint maps) and DeepMimic motion onto the SMPL tree, as Motions.
- :mod:`vision3d.body.clips` -- the six real clips shipped with mpenv (DeepMimic walk, run, jump, cartwheel; CMU
  walk and jumps), ``load_clip(name)``, and the script that converted them.
- :mod:`vision3d.body.render` -- skeleton motions as PNG strips and mp4 videos (matplotlib, imageio).
- :mod:`vision3d.body.fitting` -- fitting shape, pose and a camera to 2D keypoints (SMPLify-style), PA-MPJPE.
- :mod:`vision3d.body.heatmaps` -- 2D joint heatmaps: Gaussian encoding, argmax and soft-argmax decoding.
- :mod:`vision3d.body.pictorial_structures` -- exact MAP inference of part locations on a tree of parts with
  generalized distance transforms.
"""

__all__ = [
    "bvh", "clips", "deepmimic", "default_model", "fitting", "heatmaps", "kinematics", "lbs", "model", "motion",
    "pictorial_structures", "render", "retarget", "rotations", "skeleton",
]
