"""Retargeting: motion of another skeleton (BVH mocap, DeepMimic clips) onto the SMPL tree, as a :class:`Motion`.

Method: rotation transfer with rest-pose alignment. A joint map pairs SMPL joints with source joints. For SMPL
joint ``k`` driven by source joint ``s(k)`` with world rotation ``R_s(t)`` (source coordinates)::

    G_k(t) = W C R_s(k)(t) C^T A_k          world rotation of SMPL joint k
    A_k    = rot(d_k -> C e_k)               rest-pose alignment
    theta_0(t) = G_0(t),   theta_k(t) = G_parent(k)(t)^T G_k(t)

* ``C`` turns source coordinates into SMPL's canonical frame (x = the body's left, y = up, z = forward), built
  from the source's up and forward axes.
* ``W`` (:data:`SMPL_TO_WORLD`) places the canonical frame in the Z-up world of the clips made here: canonical
  x -> world +y, y -> +z, z -> +x, so a body in its rest pose faces +x (MuJoCo's convention, AMASS is Z-up too).
* ``A_k`` is the smallest rotation taking SMPL's rest bone direction ``d_k`` (joint k to the next mapped joint
  down its chain, :data:`AIM_CHILD`) onto the source's rest bone direction ``e_k`` between the mapped joints;
  a joint with no such bone (a hand, a foot, the head) takes its parent's ``A``.
  With it, every mapped SMPL bone points exactly where the source bone points at every frame, whatever the two
  rest poses are (CMU's splayed legs, DeepMimic's arms-down rest, SMPL's T-pose).
* The twist about the bone, which the bone directions leave free, is fixed by the hinge below it
  (:data:`HINGE_FLEXION_AXES`): the upper arm (thigh) and its chain are turned about their own bones by the angle
  ``psi`` that takes the source's elbow (knee) axis onto SMPL's flexion axis, ``A_k <- A_k Rot(d_k, psi)``. The
  source axis is the principal axis of the joint's rotation vectors over the clip (exact for CMU's one-degree-of-
  freedom elbows and knees). Without it a source whose upper-arm frame is twisted relative to SMPL's (CMU: its
  elbow axis lies 30 deg off the body's lateral axis) puts part of every elbow flexion on the elbow's
  abduction, a rotation the elbow does not have; with it the whole bend is flexion and the shoulder takes the
  twist.
* SMPL joints without a source joint keep the identity relative to their parent (e.g. the spine joints between
  DeepMimic's root and chest, the collars, the hands).

Root translation: the source root trajectory in metres, scaled by the ratio of the leg lengths (SMPL hip to ankle
over source hip to ankle) so that stride matches the new legs, started at the world origin, and shifted vertically
so that over the clip the lowest foot joint sits at its rest height above the ground (``z = 0``).

Entry points: :func:`bvh_to_motion` (CMU-style BVH; built-in joint maps :data:`CMU_JOINT_MAPS` for both cgspeed
namings, or your own map), :func:`deepmimic_to_motion` (DeepMimic humanoid3d text files), and the general
:func:`retarget` for a :class:`SourceMotion` you fill yourself.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vision3d.body import skeleton
from vision3d.body.bvh import read_bvh
from vision3d.body.deepmimic import read_deepmimic
from vision3d.body.motion import Motion, motion_joints
from vision3d.body.rotations import matrix_to_axis_angle, quaternion_to_matrix
from vision3d.body.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS

__all__ = [
    "AIM_CHILD",
    "CMU_JOINT_MAPS",
    "DEEPMIMIC_JOINT_MAP",
    "HINGE_FLEXION_AXES",
    "SMPL_TO_WORLD",
    "SourceMotion",
    "bvh_to_motion",
    "deepmimic_to_motion",
    "leading_tpose_frames",
    "retarget",
    "rotation_between",
    "source_to_canonical",
]

SMPL_TO_WORLD = np.array(skeleton.SMPL_TO_WORLD)
"""``W`` (:data:`vision3d.body.skeleton.SMPL_TO_WORLD`): canonical -> Z-up world, rest body facing +x."""

AIM_CHILD: dict[str, str | None] = {
    "pelvis": None,
    "spine1": "spine2",
    "spine2": "spine3",
    "spine3": "neck",
    "neck": "head",
    "head": None,
    **{f"{side}_{a}": (f"{side}_{b}" if b else None) for side in ("left", "right") for a, b in (
        ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("foot", None),
        ("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "hand"), ("hand", None),
    )},
}  # fmt: skip
"""The bone each SMPL joint rotates: joint -> the child that continues its chain (None at the chain ends)."""

HINGE_FLEXION_AXES: dict[str, tuple[float, float, float]] = {
    "left_knee": (1.0, 0.0, 0.0),
    "right_knee": (1.0, 0.0, 0.0),
    "left_elbow": (0.0, -1.0, 0.0),
    "right_elbow": (0.0, 1.0, 0.0),
}
"""SMPL's hinge-like joints -> the axis (canonical, rest pose) about which a positive rotation flexes them: the
knees bend the shank backward about the body's left (x), the T-posed elbows swing the forearm forward about the
vertical (y), in opposite senses on the two sides."""

_CMU_CENTRE_MOTIONBUILDER = {
    "pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck", "head": "Head",
}  # fmt: skip
_CMU_LIMBS_MOTIONBUILDER = {
    "hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "foot": "{S}ToeBase",
    "collar": "{S}Shoulder", "shoulder": "{S}Arm", "elbow": "{S}ForeArm", "wrist": "{S}Hand", "hand": "{S}FingerBase",
}  # fmt: skip
_CMU_CENTRE_MAX = {
    "pelvis": "Hips", "spine1": "lowerback", "spine2": "Chest", "spine3": "Chest2", "neck": "lowerneck", "head": "Head",
}  # fmt: skip
_CMU_LIMBS_MAX = {
    "hip": "{S}Hip", "knee": "{S}Knee", "ankle": "{S}Ankle", "foot": "{S}Toe",
    "collar": "{S}Collar", "shoulder": "{S}Shoulder", "elbow": "{S}Elbow", "wrist": "{S}Wrist", "hand": "{s}hand",
}  # fmt: skip


def _cmu_map(centre: dict[str, str], limbs: dict[str, str]) -> dict[str, str]:
    joint_map = dict(centre)
    for side, big, small in (("left", "Left", "l"), ("right", "Right", "r")):
        joint_map.update({f"{side}_{joint}": name.format(S=big, s=small) for joint, name in limbs.items()})
    return joint_map


CMU_JOINT_MAPS: dict[str, dict[str, str]] = {
    "cmu_motionbuilder": _cmu_map(_CMU_CENTRE_MOTIONBUILDER, _CMU_LIMBS_MOTIONBUILDER),
    "cmu_max": _cmu_map(_CMU_CENTRE_MAX, _CMU_LIMBS_MAX),
}
"""SMPL joint -> BVH joint for B. Hahne's cgspeed conversions of the CMU database: ``cmu_motionbuilder``
(``LeftUpLeg / LeftLeg / LeftFoot``, ``LeftShoulder`` = collar, ``LeftArm``) and ``cmu_max`` (3ds Max naming:
``LeftHip / LeftKnee / LeftAnkle``, ``LeftCollar``, ``LeftShoulder`` = shoulder). Note that ``LeftShoulder`` means a
different joint in each, so the map must be chosen by the other names (``joint_map="auto"`` does)."""

# DeepMimic humanoid3d rest skeleton: joint -> (parent, offset in the parent's frame, metres; Y up, x forward,
# z to the body's right). Numbers from data/characters/humanoid3d.txt of github.com/xbpeng/DeepMimic (MIT).
# The wrists are fixed joints (not in motion files); the arms hang down in this rest pose.
DEEPMIMIC_REST: dict[str, tuple[str | None, tuple[float, float, float]]] = {
    "root": (None, (0.0, 0.0, 0.0)),
    "chest": ("root", (0.0, 0.236151, 0.0)),
    "neck": ("chest", (0.0, 0.223894, 0.0)),
    "right_hip": ("root", (0.0, 0.0, 0.084887)),
    "right_knee": ("right_hip", (0.0, -0.421546, 0.0)),
    "right_ankle": ("right_knee", (0.0, -0.409870, 0.0)),
    "right_shoulder": ("chest", (-0.02405, 0.24350, 0.18311)),
    "right_elbow": ("right_shoulder", (0.0, -0.274788, 0.0)),
    "right_wrist": ("right_elbow", (0.0, -0.258947, 0.0)),
    "left_hip": ("root", (0.0, 0.0, -0.084887)),
    "left_knee": ("left_hip", (0.0, -0.421546, 0.0)),
    "left_ankle": ("left_knee", (0.0, -0.409870, 0.0)),
    "left_shoulder": ("chest", (-0.02405, 0.24350, -0.18311)),
    "left_elbow": ("left_shoulder", (0.0, -0.274788, 0.0)),
    "left_wrist": ("left_elbow", (0.0, -0.258947, 0.0)),
}

DEEPMIMIC_JOINT_MAP: dict[str, str] = {
    "pelvis": "root",
    "spine1": "chest",  # DeepMimic's chest joint sits at the waist, like SMPL's spine1
    "neck": "neck",
    **{f"{side}_{joint}": f"{side}_{joint}" for side in ("left", "right")
       for joint in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")},
}  # fmt: skip
"""SMPL joint -> DeepMimic humanoid3d joint."""

DEEPMIMIC_SOURCE = (
    "DeepMimic (github.com/xbpeng/DeepMimic, data/motions), MIT License, Copyright (c) 2018 Xue Bin Peng; "
    "retargeted to the SMPL tree by vision3d.body.retarget"
)
CMU_SOURCE = (
    "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), created with funding from NSF EIA-0196217; "
    "retargeted to the SMPL tree by vision3d.body.retarget"
)

_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass
class SourceMotion:
    """A source skeleton's motion in world coordinates, the input of :func:`retarget`.

    Attributes:
        names: ``J`` joint names.
        rest_positions: ``(J, 3)`` joint positions in the rest pose (all rotations identity), metres.
        world_rotations: ``(T, J, 3, 3)`` world rotation of each joint (what it applies to its children's offsets).
        root_positions: ``(T, 3)`` world position of the root joint, metres.
        fps: frames per second.
        up, forward: the source's up axis and the direction its rest body faces, e.g. ``"+y"``, ``"-z"``.
        name, source: carried into the :class:`Motion`.
    """

    names: list[str]
    rest_positions: np.ndarray
    world_rotations: np.ndarray
    root_positions: np.ndarray
    fps: float
    up: str = "+y"
    forward: str = "+z"
    name: str = ""
    source: str = ""


def _axis_vector(spec: str) -> np.ndarray:
    if len(spec) != 2 or spec[0] not in "+-" or spec[1] not in _AXES:
        raise ValueError(f"axis must be one of +x, -x, +y, -y, +z, -z; got {spec!r}")
    vector = np.zeros(3)
    vector[_AXES[spec[1]]] = 1.0 if spec[0] == "+" else -1.0
    return vector


def source_to_canonical(up: str, forward: str) -> np.ndarray:
    """``C``: rows are the source's left, up and forward axes, so ``C p`` is ``p`` in SMPL's canonical frame."""
    u, f = _axis_vector(up), _axis_vector(forward)
    if abs(u @ f) > 0:
        raise ValueError(f"up {up!r} and forward {forward!r} must be different axes")
    return np.stack([np.cross(u, f), u, f])  # left = up x forward in a right-handed frame


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation matrix taking direction ``u`` to direction ``v`` (Rodrigues about ``u x v``)."""
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    axis, cos = np.cross(u, v), float(u @ v)
    if cos < -1 + 1e-12:  # opposite: half a turn about any axis perpendicular to u
        other = np.eye(3)[np.argmin(np.abs(u))]
        w = np.cross(u, other)
        w /= np.linalg.norm(w)
        return 2.0 * np.outer(w, w) - np.eye(3)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + k + k @ k / (1.0 + cos)


def _check_map(joint_map: Mapping[str, str], source_names: list[str], origin: str) -> dict[int, int]:
    """SMPL index -> source index, with an error naming every unknown joint."""
    unknown_smpl = sorted(set(joint_map) - set(JOINT_NAMES))
    if unknown_smpl:
        raise ValueError(f"{origin}: joint map has keys that are not SMPL joints: {unknown_smpl}")
    missing = sorted({name for name in joint_map.values() if name not in source_names})
    if missing:
        raise ValueError(
            f"{origin}: joint map names source joints that do not exist: {missing}; the source has {source_names}"
        )
    if "pelvis" not in joint_map:
        raise ValueError(f"{origin}: the joint map must map 'pelvis' (the root) to a source joint")
    return {JOINT_INDEX[k]: source_names.index(v) for k, v in joint_map.items()}


def _aim_target(joint: str, mapped: Mapping[str, str]) -> str | None:
    """The next joint down ``joint``'s chain that the map drives (the end of the bone ``joint`` rotates)."""
    child = AIM_CHILD[joint]
    while child is not None and child not in mapped:
        child = AIM_CHILD[child]
    return child


def _alignment(joint_map: Mapping[str, str], src_rest: np.ndarray, names: list[str], smpl_rest: np.ndarray
               ) -> np.ndarray:  # fmt: skip
    """``A_k`` for every SMPL joint, canonical coordinates.

    A joint with no bone to align (the end of a chain, or coincident joints) takes its parent's alignment: the
    source segment continues the parent's bone (DeepMimic's fixed wrist continues the forearm), so its rotation
    relative to the parent carries over unchanged.
    """
    align = np.broadcast_to(np.eye(3), (len(JOINT_NAMES), 3, 3)).copy()
    for k, joint in enumerate(JOINT_NAMES):
        align[k] = align[PARENTS[k]] if k > 0 else np.eye(3)
        target = _aim_target(joint, joint_map) if joint in joint_map else None
        if target is None:
            continue
        a = JOINT_INDEX[target]
        d_smpl = smpl_rest[a] - smpl_rest[k]
        d_src = src_rest[names.index(joint_map[target])] - src_rest[names.index(joint_map[joint])]
        if np.linalg.norm(d_src) > 1e-9 and np.linalg.norm(d_smpl) > 1e-9:
            align[k] = rotation_between(d_smpl, d_src)
    return align


def _principal_axis(rotvecs: np.ndarray) -> np.ndarray | None:
    """Unit axis along which the rotation vectors ``(T, 3)`` mostly lie, signed so that they point along it on
    average (the direction of flexion); None if the joint barely moves."""
    if not np.any(np.linalg.norm(rotvecs, axis=-1) > 1e-3):
        return None
    _, vectors = np.linalg.eigh(rotvecs.T @ rotvecs)
    axis = vectors[:, -1]
    return axis if np.sum(rotvecs @ axis) >= 0 else -axis


def _hinge_twists(align: np.ndarray, index: Mapping[int, int], rot: np.ndarray, c: np.ndarray,
                  smpl_rest: np.ndarray) -> np.ndarray:  # fmt: skip
    """Turn each limb's alignments about their bones so that the source's hinge axis maps onto SMPL's flexion
    axis (module docstring): ``A_j <- A_j Rot(d_j, psi)`` for the hinge's parent and all its descendants."""
    align = align.copy()
    for hinge, flexion in HINGE_FLEXION_AXES.items():
        k = JOINT_INDEX[hinge]
        parent = PARENTS[k]
        if k not in index or parent not in index:
            continue
        local = np.swapaxes(rot[:, index[parent]], -1, -2) @ rot[:, index[k]]
        axis = _principal_axis(matrix_to_axis_angle(torch.from_numpy(c @ local @ c.T)).numpy())
        if axis is None:
            continue
        bone = smpl_rest[k] - smpl_rest[parent]
        bone /= np.linalg.norm(bone)
        v = align[parent].T @ axis  # the source hinge axis in SMPL's rest frame of the parent segment
        v_perp, f_perp = v - (v @ bone) * bone, np.asarray(flexion) - (np.asarray(flexion) @ bone) * bone
        if np.linalg.norm(v_perp) < 0.5:  # the joint mostly twists about its bone: no hinge axis to align
            continue
        psi = -np.arctan2(bone @ np.cross(v_perp, f_perp), v_perp @ f_perp)  # Rot(bone, -psi) v_perp || f_perp
        if abs(psi) < 1e-9:
            continue
        before = align.copy()
        for j in _subtree(parent):  # parents first: a joint that inherited its parent's alignment still does
            if j != parent and np.array_equal(before[j], before[PARENTS[j]]):
                align[j] = align[PARENTS[j]]
                continue
            child = AIM_CHILD[JOINT_NAMES[j]]
            d = smpl_rest[JOINT_INDEX[child]] - smpl_rest[j] if child else bone
            align[j] = align[j] @ _axis_rotation(d / np.linalg.norm(d), psi)
    return align


def _subtree(k: int) -> list[int]:
    """``k`` and its descendants in the SMPL tree, parents before children."""
    return [k] + [i for child, p in enumerate(PARENTS) if p == k and child != k for i in _subtree(child)]


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about the unit ``axis`` (Rodrigues)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def _leg_length(rest: np.ndarray, index: Mapping[str, int]) -> float | None:
    """Mean hip -> knee -> ankle length of the mapped legs, or None if no whole leg is mapped."""
    lengths = []
    for side in ("left", "right"):
        chain = [f"{side}_{j}" for j in ("hip", "knee", "ankle")]
        if all(name in index for name in chain):
            points = rest[[index[name] for name in chain]]
            lengths.append(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
    return float(np.mean(lengths)) if lengths else None


def smpl_rest_joints(betas: np.ndarray | None = None, model=None) -> np.ndarray:
    """``(24, 3)`` rest joints ``J(beta)`` of ``model`` (default: the shipped stand-in body model), float64."""
    from vision3d.body.model import BodyModel

    model = BodyModel.default(dtype=torch.float64, device="cpu") if model is None else model
    b = torch.zeros(1, model.num_betas, dtype=torch.float64) if betas is None else torch.as_tensor(betas)[None]
    with torch.no_grad():
        return model(betas=b.to(model.dtype)).joints[0].double().cpu().numpy()


def _sole_clearance(betas: np.ndarray | None = None, model=None) -> float:
    """Rest height of the foot (ball) joints above the soles: the lowest the foot joints can be on the ground."""
    from vision3d.body.model import BodyModel

    model = BodyModel.default(dtype=torch.float64, device="cpu") if model is None else model
    b = torch.zeros(1, model.num_betas, dtype=torch.float64) if betas is None else torch.as_tensor(betas)[None]
    with torch.no_grad():
        out = model(betas=b.to(model.dtype))
    feet = out.joints[0, [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]], 1]
    return float(feet.min() - out.vertices[0, :, 1].min())


def retarget(
    source: SourceMotion,
    joint_map: Mapping[str, str],
    betas: np.ndarray | None = None,
    model=None,
    *,
    cyclic: bool = False,
) -> Motion:
    """Retarget ``source`` onto the SMPL tree (method in the module docstring); returns a Z-up :class:`Motion`.

    Args:
        source: the source skeleton's motion.
        joint_map: SMPL joint name -> source joint name; must include ``"pelvis"``. Unmapped SMPL joints keep
            the identity relative to their parent.
        betas: body shape of the target (default the mean shape); stored in the motion.
        model: the body model whose rest joints ``J(beta)`` define the target skeleton (default: the shipped one).
        cyclic: mark the result as one cycle of a periodic motion.
    """
    origin = source.name or "source motion"
    index = _check_map(joint_map, list(source.names), origin)
    rot = np.asarray(source.world_rotations, dtype=np.float64)
    if rot.ndim != 4 or rot.shape[1:] != (len(source.names), 3, 3) or len(rot) == 0:
        raise ValueError(f"{origin}: world_rotations must be (T, {len(source.names)}, 3, 3), got {rot.shape}")
    if source.root_positions.shape != (len(rot), 3):
        raise ValueError(f"{origin}: root_positions must be ({len(rot)}, 3), got {source.root_positions.shape}")

    c = source_to_canonical(source.up, source.forward)
    src_rest = np.asarray(source.rest_positions, dtype=np.float64) @ c.T
    smpl_rest = smpl_rest_joints(betas, model)
    align = _hinge_twists(_alignment(joint_map, src_rest, list(source.names), smpl_rest), index, rot, c, smpl_rest)

    # World rotations G_k = W C R C^T A_k for driven joints; undriven ones follow their parent.
    frame = SMPL_TO_WORLD @ c
    world = np.empty((len(rot), len(JOINT_NAMES), 3, 3))
    for k, parent in enumerate(PARENTS):
        if k in index:
            world[:, k] = frame @ rot[:, index[k]] @ c.T @ align[k]
        else:
            world[:, k] = world[:, parent]
    local = world.copy()
    parents = np.array(PARENTS[1:])
    local[:, 1:] = np.swapaxes(world[:, parents], -1, -2) @ world[:, 1:]
    poses = matrix_to_axis_angle(torch.from_numpy(local)).numpy()

    names = list(source.names)
    src_leg = _leg_length(src_rest, {k: names.index(v) for k, v in joint_map.items()})
    smpl_leg = _leg_length(smpl_rest, JOINT_INDEX)
    scale = smpl_leg / src_leg if src_leg else 1.0
    pelvis = scale * source.root_positions @ (SMPL_TO_WORLD @ c).T
    pelvis[:, :2] -= pelvis[0, :2]
    motion = Motion(
        fps=source.fps,
        poses=poses,
        trans=pelvis - smpl_rest[0],
        betas=np.zeros(10) if betas is None else np.asarray(betas, dtype=np.float64),
        name=source.name,
        source=source.source,
        cyclic=cyclic,
    )
    return _on_ground(motion, smpl_rest, _sole_clearance(betas, model))


def _on_ground(motion: Motion, rest_joints: np.ndarray, clearance: float) -> Motion:
    """Shift vertically so the lowest foot joint of the whole clip is ``clearance`` above ``z = 0``."""
    feet = [JOINT_INDEX[f"{side}_{j}"] for side in ("left", "right") for j in ("ankle", "foot")]
    lowest = motion_joints(motion, rest_joints)[:, feet, 2].min()
    trans = motion.trans.copy()
    trans[:, 2] += clearance - lowest
    return Motion(motion.fps, motion.poses, trans, motion.betas, motion.name, motion.source, motion.cyclic)


def leading_tpose_frames(joints: np.ndarray, max_tilt_deg: float = 20.0) -> int:
    """How many leading frames are a T-pose: both upper arms and forearms within ``max_tilt_deg`` of horizontal.

    Mocap takes often start with a calibration T-pose that is not part of the motion (CMU 01_01's first frame).
    ``joints`` are ``(T, 24, 3)`` Z-up SMPL joint positions.
    """
    limit = np.sin(np.deg2rad(max_tilt_deg))
    tilted = []
    for side in ("left", "right"):
        chain = [JOINT_INDEX[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist")]
        bones = np.diff(joints[:, chain], axis=1)
        tilted.append(np.abs(bones[..., 2]) / np.linalg.norm(bones, axis=-1) > limit)
    not_tpose = np.any(np.concatenate(tilted, axis=1), axis=1)
    return int(np.argmax(not_tpose)) if not_tpose.any() else 0


# ------------------------------------------------------------------------------------------------ BVH


def _auto_map(names: list[str], path: str) -> dict[str, str]:
    for candidate in CMU_JOINT_MAPS.values():
        if set(candidate.values()) <= set(names):
            return candidate
    raise ValueError(
        f"{path}: no built-in joint map fits this skeleton (tried {sorted(CMU_JOINT_MAPS)}); its joints are "
        f"{names}. Pass joint_map={{smpl_joint: bvh_joint, ...}} (SMPL joints: {list(JOINT_NAMES)})"
    )


def bvh_to_motion(
    path: str | Path,
    joint_map: str | Mapping[str, str] = "auto",
    *,
    scale: float = 1.0,
    up: str = "+y",
    forward: str = "+z",
    trim_tpose: bool = True,
    betas: np.ndarray | None = None,
    model=None,
    cyclic: bool = False,
    source: str = "",
) -> Motion:
    """Read a BVH file and retarget it onto the SMPL tree.

    Args:
        path: the ``.bvh`` file.
        joint_map: ``"auto"`` (the built-in CMU map whose joint names all occur in the file), a key of
            :data:`CMU_JOINT_MAPS`, or your own ``{smpl_joint: bvh_joint}``.
        scale: metres per BVH unit: 1 for files in metres, 0.01 for centimetres, 0.056444 for the original CMU
            units ((1 / 0.45) inch, the CMU FAQ's figure).
        up, forward: the file's up axis and the direction its rest skeleton faces (CMU: ``+y`` and ``+z``).
        trim_tpose: drop leading calibration T-pose frames (:func:`leading_tpose_frames`).
        betas, model, cyclic: as :func:`retarget`.
        source: provenance string stored in the motion.
    """
    clip = read_bvh(path, scale=scale)
    if isinstance(joint_map, str):
        if joint_map == "auto":
            joint_map = _auto_map(clip.names, str(path))
        elif joint_map in CMU_JOINT_MAPS:
            joint_map = CMU_JOINT_MAPS[joint_map]
        else:
            raise ValueError(f"unknown joint map {joint_map!r}: use 'auto', one of {sorted(CMU_JOINT_MAPS)} or a dict")
    rest = clip.rest_positions()
    height = np.ptp(rest[:, _AXES[up[1]]])
    if not 0.3 < height < 3.0:
        warnings.warn(
            f"{path}: the rest skeleton is {height:.3g} m tall at scale={scale}; is the file in metres? "
            "(CMU units: scale=0.056444, centimetres: scale=0.01)",
            stacklevel=2,
        )
    positions, rotations = clip.forward_kinematics()
    src = SourceMotion(
        names=clip.names,
        rest_positions=rest,
        world_rotations=rotations,
        root_positions=positions[:, 0],
        fps=clip.fps,
        up=up,
        forward=forward,
        name=Path(path).stem,
        source=source,
    )
    motion = retarget(src, joint_map, betas, model, cyclic=cyclic)
    if trim_tpose:
        skip = leading_tpose_frames(motion_joints(motion, smpl_rest_joints(betas, model)))
        if skip:
            motion = motion.clip(start_frame=skip)
            motion = Motion(motion.fps, motion.poses, motion.trans - [*motion.trans[0, :2], 0.0], motion.betas,
                            motion.name, motion.source, cyclic)  # fmt: skip
    return motion


# ------------------------------------------------------------------------------------------------ DeepMimic


def _deepmimic_world(local_quaternions: np.ndarray) -> np.ndarray:
    """``(T, 15, 3, 3)`` world rotations of :data:`DEEPMIMIC_REST`'s joints from the file's 13 local rotations."""
    from vision3d.body import deepmimic

    local = quaternion_to_matrix(torch.from_numpy(local_quaternions)).numpy()
    names = list(DEEPMIMIC_REST)
    world = np.empty((len(local), len(names), 3, 3))
    for j, (name, (parent, _)) in enumerate(DEEPMIMIC_REST.items()):
        own = local[:, deepmimic.JOINT_NAMES.index(name)] if name in deepmimic.JOINT_NAMES else np.eye(3)
        world[:, j] = own if parent is None else world[:, names.index(parent)] @ own
    return world


def _deepmimic_rest() -> np.ndarray:
    names = list(DEEPMIMIC_REST)
    rest = np.zeros((len(names), 3))
    for j, (parent, offset) in enumerate(DEEPMIMIC_REST.values()):
        rest[j] = offset if parent is None else rest[names.index(parent)] + offset
    return rest


def deepmimic_to_motion(path: str | Path, betas: np.ndarray | None = None, model=None) -> Motion:
    """Read a DeepMimic humanoid3d motion file and retarget it onto the SMPL tree.

    A ``"wrap"`` clip is stored closed (its last frame is meant to be the first one again); the result drops that
    frame, so it is an *open* cycle marked ``cyclic=True`` (:meth:`Motion.loop` with ``closed=False`` repeats it).
    """
    clip = read_deepmimic(path)
    quats = clip.local_quaternions()
    world = _deepmimic_world(quats)
    root = clip.root_pos
    if clip.is_cyclic and clip.n_frames > 1:
        world, root = world[:-1], root[:-1]
    src = SourceMotion(
        names=list(DEEPMIMIC_REST),
        rest_positions=_deepmimic_rest(),
        world_rotations=world,
        root_positions=root,
        fps=clip.fps,
        up="+y",
        forward="+x",
        name=Path(path).stem,
        source=DEEPMIMIC_SOURCE,
    )
    return retarget(src, DEEPMIMIC_JOINT_MAP, betas, model, cyclic=clip.is_cyclic)
