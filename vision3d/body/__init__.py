"""SMPL-style human body: rotations, the 24-joint kinematic tree and forward kinematics.

Submodules (import them directly; this package imports nothing heavy on its own):

- :mod:`vision3d.body.rotations` -- every rotation conversion (axis-angle, matrix, quaternion ``(w, x, y, z)``,
  6D, Euler), batched torch, differentiable.
- :mod:`vision3d.body.skeleton` -- SMPL joint names, parent indices, left/right mirroring, end effectors and
  :func:`~vision3d.body.skeleton.check_parents`.
- :mod:`vision3d.body.kinematics` -- forward kinematics of the joints without a mesh, finite-difference joint
  velocities and angular velocities, centre of mass.
"""

__all__ = ["kinematics", "rotations", "skeleton"]
