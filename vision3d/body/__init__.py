"""SMPL-style human body: the body model, its kinematics, motions, 2D pose and fitting.

The main names are re-exported here and loaded on first use, so ``import vision3d.body`` imports no torch::

    from vision3d.body import BodyModel, Motion, load_clip, fit_to_keypoints, FitConfig, axis_angle_to_matrix

Everything else lives in its submodule (``from vision3d.body.fitting import robust_penalty``):

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
- :mod:`vision3d.body.learned_fitting` -- fitting by learned gradient descent (Song et al. 2020), the shipped update
  network.
- :mod:`vision3d.body.lifting` -- 2D -> 3D lifting (Martinez et al.'s simple baseline), bone-length statistics,
  fitting the body model to 3D joint sequences with one shape.
- :mod:`vision3d.body.heatmaps` -- 2D joint heatmaps: Gaussian encoding, argmax and soft-argmax decoding.
- :mod:`vision3d.body.synthetic`, :mod:`vision3d.body.people_render` -- synthetic people: the body model posed like
  the frames of the clips, random shapes and cameras, exact 2D/3D ground truth, rendered images with visibility.
- :mod:`vision3d.body.pose2d` -- learned 2D pose: PCK, training, evaluation and the CLI for
  :mod:`~vision3d.body.pose_heatmap_net` (multi-stage heatmaps) and :mod:`~vision3d.body.pose_regression_net`
  (direct regression, iterative error feedback); pictorial structures on the learned heatmaps.
- :mod:`vision3d.body.pose_prior` -- SMPLify's Gaussian-mixture pose prior learned from mocap by EM, the shipped
  prior (training clips only) and its use in fitting (``FitConfig(pose_prior="gmm")``).
- :mod:`vision3d.body.video_fitting`, :mod:`vision3d.body.sfv` -- fitting a video's keypoints with one shape and a
  smoothness prior, the result as a Z-up Motion; ``python -m vision3d.body.sfv`` from frames to a Motion for the
  physics humanoid.
- :mod:`vision3d.body.template_capture` -- template-based capture: the body fitted to the first point cloud of a
  sequence (shape and pose unknown), then its pose tracked by ICP with the learned prior.
- :mod:`vision3d.body.animatable` -- an animatable implicit body (SNARF): a canonical occupancy field and a learned
  skinning-weight field, posed by forward LBS with Broyden root finding; the shipped fields.
- :mod:`vision3d.body.pictorial_structures` -- exact MAP inference of part locations on a tree of parts with
  generalized distance transforms.
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

# Re-exported names by home submodule (tests/test_body_imports.py checks that every one resolves). The functions
# ``lbs.lbs`` and ``retarget.retarget`` are not re-exported: ``vision3d.body.lbs`` / ``.retarget`` are the modules.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "animatable": (
        "AnimatableBody", "AnimatableConfig", "canonical_mesh", "default_animatable", "load_animatable", "pose_mesh",
        "pose_transforms",
    ),
    "bvh": ("BVHClip", "read_bvh"),
    "clips": ("clip_names", "load_clip"),
    "deepmimic": ("DeepMimicClip", "read_deepmimic"),
    "default_model": ("default_model_path",),
    "fitting": (
        "FitConfig", "FitResult", "PerspectiveCamera", "WeakPerspectiveCamera", "fit_to_keypoints", "mpjpe",
        "pa_mpjpe", "procrustes_align", "project",
    ),
    "heatmaps": ("gaussian_heatmaps", "soft_argmax"),
    "kinematics": (
        "angular_velocities", "center_of_mass", "forward_kinematics", "forward_kinematics_axis_angle",
        "joint_velocities",
    ),
    "learned_fitting": (
        "LearnedUpdate", "default_learned_fitter", "learned_fit", "load_learned_fitter", "save_learned_fitter",
    ),
    "lifting": (
        "JointFit", "LiftConfig", "Lifter", "TrainConfig", "fit_body_to_joints", "load_lifter", "save_lifter",
        "train_lifter",
    ),
    "model": ("BodyModel", "BodyOutput"),
    "motion": ("Motion", "motion_joints"),
    "pictorial_structures": ("map_inference",),
    "pose2d": ("PoseSet", "default_pose_model", "load_pose_model", "pck", "pose_set", "train_pose_model"),
    "pose_heatmap_net": ("HeatmapPoseNet",),
    "pose_prior": ("GaussianMixturePrior", "default_pose_prior", "fit_gmm_prior", "gmm_fit_config"),
    "pose_regression_net": ("RegressionPoseNet",),
    "render": ("skeleton_strip", "skeleton_video"),
    "retarget": ("bvh_to_motion", "deepmimic_to_motion"),
    "rotations": (
        "axis_angle_to_matrix", "axis_angle_to_quaternion", "euler_to_matrix", "matrix_to_axis_angle",
        "matrix_to_euler", "matrix_to_quaternion", "matrix_to_rotation_6d", "quaternion_slerp",
        "quaternion_to_axis_angle", "quaternion_to_matrix", "rotation_6d_to_matrix",
    ),
    "skeleton": ("JOINT_INDEX", "JOINT_NAMES", "N_JOINTS", "PARENTS"),
    "synthetic": ("People", "PeopleConfig", "TEST_CLIPS", "TRAIN_CLIPS", "sample_people"),
    "template_capture": (
        "CaptureConfig", "CaptureResult", "capture_errors", "fit_frames_independently", "fit_template",
        "posed_point_clouds", "track",
    ),
    "video_fitting": (
        "SequenceConfig", "SequenceFit", "acceleration_error", "fit_sequence", "render_motion_video",
        "sequence_to_motion",
    ),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, ["lbs"])
