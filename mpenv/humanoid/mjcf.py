"""MJCF (MuJoCo XML) of a DeepMimic-style humanoid with the SMPL skeleton of :mod:`vision3d.body`.

Conventions (other code -- the imitation env, motion retargeting -- depends on them)
-------------------------------------------------------------------------------------
- **World frame**: MuJoCo's, Z up. SMPL's canonical frame (x = the body's left, y = up, z = forward) maps to the
  world by the fixed rotation :data:`SMPL_TO_WORLD` ``W``: canonical x -> world +y, y -> world +z, z -> world +x.
  The rest character faces +x and its left is +y.
- **Rest pose**: the T-pose of ``BodyModel.default()`` at shape ``betas`` (``J(beta)`` = the model's joints at zero
  pose). The rest pose is ``qpos0``: standing, soles on the ground (``z = 0``, from the mesh's lowest vertex).
- **Bodies**: one per SMPL joint, named as :data:`vision3d.body.skeleton.JOINT_NAMES` and nested along
  ``PARENTS``; body ``k`` sits at ``W (J[k] - J[parent])`` in its parent and has NO orientation, so every body frame
  is world-aligned at rest and hinge axes are world axes at rest. The pelvis is at ``W J[0] + (0, 0, h)``
  with ``h`` = minus the lowest rest vertex's canonical y (:func:`standing_pelvis_height` adds ``J[0]``'s height).
- **Joints**: a free joint ``"root"`` on the pelvis (omitted with ``fixed_root=True``), then for each of the 23
  other joints three hinges ``f"{joint}_x"``, ``_y``, ``_z`` with axes (1,0,0), (0,1,0), (0,0,1) in that order.
  MuJoCo composes the joints of a body left to right, so the body's rotation in its parent is
  ``R = Rx(a) Ry(b) Rz(c)`` = intrinsic ``"XYZ"`` Euler, ``vision3d.body.rotations.euler_to_matrix(abc, "XYZ")``,
  and a reference rotation converts with ``matrix_to_euler(R, "XYZ")`` on the branch that is continuous in time
  (:func:`mpenv.humanoid.reference.continuous_euler`). ``qpos = [root (3 pos + 4 quat, w first),
  HINGE_NAMES (69)]``; ``ctrl`` = target angles of the 69 hinges in the same order (:data:`HINGE_NAMES`).
- **Order**: MuJoCo numbers bodies, joints and qpos depth-first (pelvis, left leg, right leg, spine, neck, head,
  left arm, right arm), not in SMPL's order: :data:`BODY_ORDER` lists the bodies by id, :data:`ACTUATED_JOINTS`
  the hinged joints in qpos order and :data:`ACTUATED_SMPL_INDEX` their SMPL indices. Always look up by name
  (``model.body("left_knee")``) or through these tuples, never by SMPL index.
- **Time**: physics step :data:`TIMESTEP` = 1/480 s, policy at 30 Hz = :data:`FRAME_SKIP` = 16 physics steps.

Why three hinges and not a ball joint
-------------------------------------
A ball joint would avoid gimbal lock, but (1) hinges give per-axis joint limits (a knee flexes 0..150 deg about one
axis and barely moves about the others; a ball joint only has a cone limit) and per-axis PD gains and torque limits;
(2) the action is then 69 target angles, one per degree of freedom, as in the published SMPL humanoids (e.g. the
UHC/PHC humanoids) and DeepMimic's per-axis view of its spherical joints; (3) a reference rotation decomposes
exactly into the three angles (``matrix_to_euler``), so the reference pose is reproduced exactly when its angles are
inside the limits (clamped otherwise). Caveat: at ``b = +-90 deg`` (the middle, y, hinge) the x and z axes align
(gimbal lock); near it the decomposition is ill-conditioned and consecutive reference frames can jump. The limits
keep the middle angle away from +-90 except for hip flexion (a thigh raised to the horizontal: the cartwheel, the
CMU walk's high steps), the shoulders (whose y range must allow full humerus twist) and the toes' flexion; the
reference-quality report (``python -m mpenv.humanoid.reference --report``) shows the hinge rates this causes.

Joint limits (:data:`JOINT_LIMITS_DEG`)
----------------------------------------
From the AAOS normal ranges of motion (Greene & Heckman, *The Clinical Measurement of Joint Motion*, AAOS 1994)
plus a margin of ~10-20 deg so that mocap references fit before clamping. The axes are world axes at rest
(x forward, y left, z up), so for a limb hanging down rotation about y is flexion/extension (sagittal plane), about
x abduction/adduction (frontal plane) and about z axial rotation; for the T-posed arms, about x raises/lowers the
arm, about z swings it forward/back and about y twists it. Signs (verified by forward kinematics in the tests):
hip flexion is -y (knee forward), knee flexion +y (ankle backward), ankle dorsiflexion -y, trunk flexion +y,
left elbow flexion -z (wrist forward), right elbow flexion +z. The table lists the LEFT side and the centre
joints; a right joint is the left one mirrored in the sagittal plane (x and z ranges negated, y kept).

================ ======================== ======================== =========================================
joint            x (deg)                  y (deg)                  z (deg); AAOS reference
================ ======================== ======================== =========================================
hip              -40..130 add/abduction   -140..40 flex/extension  -60..120 rot.; abd 45 add 30 flex 120 ext 30 (*)
knee             -10..10                  -5..150 flexion          -30..30 tibial rot.; flexion 135
ankle            -45..30 inv/eversion     -35..60 dorsi/plantar    -35..35; dorsi 20 plantar 50 inv 35 ev 15
foot (toes)      -15..15                  -80..50 ext/flexion      -20..20; MTP extension 70 flexion 45
spine1/2/3       -40..40 lateral bend     -30..45 ext/flexion      -30..30 rot.; thoracolumbar 80/25/35/45 (**)
neck, head       -30..30 lateral bend     -35..40 ext/flexion      -45..45 rot.; cervical 45/45/45/60 (split)
collar           -25..50 depr/elevation   -40..40 axial            -35..35 pro/retraction (sternoclavicular)
shoulder         -135..100 lower/raise    -100..100 twist          -145..70 fwd/back swing; 180/60/180/70/90
elbow            -20..20                  -90..90 pro/supination   -160..10 flexion; flexion 150, p/s 80
wrist            -90..80 flex/extension   -60..60 twist            -30..40 radial/ulnar dev.; 80/70/20/30
hand (fingers)   -100..40 flex/extension  -20..20                  -25..25; MCP flexion 90 extension 45
================ ======================== ======================== =========================================

Widened where a shipped clip needs more than the table's first ranges (-40..60 and -60..60 for the hip's x and z,
-30..30 for the spine's x), measured by ``python -m mpenv.humanoid.reference --report`` (the fraction of frames
outside the limits and what clamping to them costs):

(*) Hip x and z, the outer and inner hinges of the XYZ chain, only mean abduction and rotation for a thigh near
    the vertical. With the thigh flexed towards 90 deg the chain nears its gimbal lock (y = -90 deg) and a pose
    near the human range needs large x and z: in the cartwheel the thigh swings up to 113 deg from the vertical
    (AAOS flexion 120) with up to 61 deg of twist about it (swing-twist split about the rest thigh axis; AAOS
    rotation 45), and the right hip reaches ``x = -126, y = -48, z = -119`` deg (mirrored: 126 and 119 on the
    left). The ranges cover it; a per-hinge box cannot express the coupling of the anatomical cone, so they admit
    more than a human hip at small flexion.
(**) Lateral bend: AAOS thoracolumbar 35 deg plus the margin, on each spine joint, because a source with a single
    trunk joint (DeepMimic's chest, retargeted to spine1) puts the whole bend on one joint (37 deg in the
    cartwheel).

Masses, geoms, contacts
-----------------------
Segment mass fractions of Dempster via Winter (*Biomechanics and Motor Control of Human Movement*, Table 4.1):
thigh 0.100, shank 0.0465, foot 0.0145, upper arm 0.028, forearm 0.016, hand 0.006, head+neck 0.081,
trunk 0.497 (pelvis 0.142, abdomen 0.139, thorax 0.216 -- split over spine2, spine3 and the collars), times
``total_mass`` (:data:`MASS_FRACTIONS`); a body's mass is shared among its geoms by volume. Geoms: capsules along the
limbs with radii from :func:`vision3d.body.default_model.default_girths` at the body's stature, lateral capsules
for the trunk (radius = its depth, length = its width), a sphere-ish capsule head, boxes for the feet (heel -> ball,
ball -> toe tip, soles at ``z = 0``) and the hands (palm, fingers).
Self-collisions are ON but limited (``<contact><exclude>``): MuJoCo already ignores parent-child pairs; we also
exclude siblings (the hips and spine1, the collars and the neck), every pair of trunk bodies (pelvis, spines, neck,
head, collars: one continuous column whose capsules touch as soon as it bends), the upper arms against the spine
(a hanging arm rests on the ribcage, where our capsules would interpenetrate) and any other pair whose geoms touch
in the rest pose (detected by compiling once; none for the default shapes). So legs, forearms and hands cannot
pass through each other or the trunk, and the common poses (T, arms down, sitting) start contact-free. The ground
plane ``"floor"`` has friction 1.0.

Actuators (:data:`PD_GAINS`, :data:`TORQUE_LIMITS`)
----------------------------------------------------
One MuJoCo ``<position>`` actuator per hinge (named like the hinge): ``tau = kp (ctrl - q) - kv qdot``, clamped to
``forcerange``; ``ctrlrange`` = the joint range. Gains per joint group are DeepMimic's humanoid3d (chest 1000/100,
neck 100/10, hips and knees 500/50, ankles and shoulders 400/40, elbows 300/30); ours: spine1-3 = chest, head = neck,
collars = shoulders, toes = ankles, wrists 150/15 and fingers 75/7.5 (elbows scaled by 1/2 and 1/4 for segments of
1/3 and 1/7 of the forearm's mass). Torque limits (N m) are the usual humanoid ballpark: spine and hips 200,
knees 150, ankles and shoulders 90, collars and elbows 60, neck and head 50, toes and wrists 30, fingers 10.
``integrator="implicitfast"`` treats the ``kv`` damping implicitly, which keeps the stiff, light distal joints
(wrists, fingers, toes) stable at 480 Hz; a joint armature of 0.01 kg m^2 adds to that margin.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from vision3d.body import skeleton
from vision3d.body.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS

__all__ = [
    "ACTUATED_JOINTS",
    "ACTUATED_SMPL_INDEX",
    "BODY_ORDER",
    "FRAME_SKIP",
    "HINGE_NAMES",
    "JOINT_LIMITS_DEG",
    "MASS_FRACTIONS",
    "PD_GAINS",
    "POLICY_HZ",
    "SMPL_TO_WORLD",
    "TIMESTEP",
    "TORQUE_LIMITS",
    "build_humanoid_xml",
    "rest_joint_positions",
    "standing_pelvis_height",
    "write_humanoid_xml",
]

SMPL_TO_WORLD: np.ndarray = np.array(skeleton.SMPL_TO_WORLD)
"""``W`` (:data:`vision3d.body.skeleton.SMPL_TO_WORLD`): world = W @ canonical; a proper rotation (det +1)."""
SMPL_TO_WORLD.flags.writeable = False

TIMESTEP: float = 1.0 / 480.0
FRAME_SKIP: int = 16
POLICY_HZ: float = 1.0 / (TIMESTEP * FRAME_SKIP)  # 30 Hz


def _depth_first(k: int = 0) -> list[int]:
    """SMPL joint indices in MJCF order: MuJoCo numbers bodies (and so joints, qpos, dofs) depth-first as nested
    in the XML, which is NOT SMPL's order (SMPL lists both hips before the knees)."""
    children = [j for j, parent in enumerate(PARENTS) if parent == k]
    return [k] + [i for child in children for i in _depth_first(child)]


BODY_ORDER: tuple[str, ...] = tuple(JOINT_NAMES[k] for k in _depth_first())
"""The 24 body names in MuJoCo body-id order (body id = position here + 1; id 0 is the world)."""
ACTUATED_JOINTS: tuple[str, ...] = BODY_ORDER[1:]
"""The 23 joints with three hinges each (all but the pelvis), in qpos / ctrl order (depth-first, NOT SMPL's)."""
ACTUATED_SMPL_INDEX: tuple[int, ...] = tuple(JOINT_INDEX[name] for name in ACTUATED_JOINTS)
"""SMPL index of each actuated joint in qpos order: ``euler_smpl[..., ACTUATED_SMPL_INDEX, :]`` (``[..., 23, 3]``,
rows = SMPL joints, pelvis first) reshaped to ``[..., 69]`` is the hinge part of qpos and the ctrl vector."""
HINGE_NAMES: tuple[str, ...] = tuple(f"{joint}_{axis}" for joint in ACTUATED_JOINTS for axis in "xyz")
"""The 69 hinge (and actuator) names in qpos / ctrl order."""

Range = tuple[float, float]

# Left side and centre joints, degrees, per world axis (x, y, z); see the module docstring's table.
_LEFT_LIMITS_DEG: dict[str, tuple[Range, Range, Range]] = {
    "hip": ((-40.0, 130.0), (-140.0, 40.0), (-60.0, 120.0)),  # x, z widened: see (*) in the module docstring
    "knee": ((-10.0, 10.0), (-5.0, 150.0), (-30.0, 30.0)),
    "ankle": ((-45.0, 30.0), (-35.0, 60.0), (-35.0, 35.0)),
    "foot": ((-15.0, 15.0), (-80.0, 50.0), (-20.0, 20.0)),
    "spine": ((-40.0, 40.0), (-30.0, 45.0), (-30.0, 30.0)),  # x widened: see (**)
    "neck": ((-30.0, 30.0), (-35.0, 40.0), (-45.0, 45.0)),
    "collar": ((-25.0, 50.0), (-40.0, 40.0), (-35.0, 35.0)),
    "shoulder": ((-135.0, 100.0), (-100.0, 100.0), (-145.0, 70.0)),
    "elbow": ((-20.0, 20.0), (-90.0, 90.0), (-160.0, 10.0)),
    "wrist": ((-90.0, 80.0), (-60.0, 60.0), (-30.0, 40.0)),
    "hand": ((-100.0, 40.0), (-20.0, 20.0), (-25.0, 25.0)),
}

_CENTRE = ("spine", "neck")
# Joint -> group of the tables above and below.
_GROUP: dict[str, str] = {
    **{f"spine{i}": "spine" for i in (1, 2, 3)},
    "neck": "neck",
    "head": "head",
    **{f"{side}_{part}": part for side in ("left", "right") for part in _LEFT_LIMITS_DEG if part not in _CENTRE},
}


def _mirror(limits: tuple[Range, Range, Range]) -> tuple[Range, Range, Range]:
    """Mirror in the sagittal plane (world y -> -y): rotations about x and z flip sign, about y stay."""
    (x0, x1), y, (z0, z1) = limits
    return (-x1, -x0), y, (-z1, -z0)


def _joint_limits() -> dict[str, tuple[Range, Range, Range]]:
    table = {}
    for joint in ACTUATED_JOINTS:
        group = _GROUP[joint]
        limits = _LEFT_LIMITS_DEG["neck" if group == "head" else group]
        table[joint] = _mirror(limits) if joint.startswith("right_") else limits
    return table


JOINT_LIMITS_DEG: dict[str, tuple[Range, Range, Range]] = _joint_limits()
"""Joint -> ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in degrees for all 23 actuated joints."""

PD_GAINS: dict[str, tuple[float, float]] = {
    "spine": (1000.0, 100.0),
    "neck": (100.0, 10.0),
    "head": (100.0, 10.0),
    "hip": (500.0, 50.0),
    "knee": (500.0, 50.0),
    "ankle": (400.0, 40.0),
    "foot": (400.0, 40.0),
    "collar": (400.0, 40.0),
    "shoulder": (400.0, 40.0),
    "elbow": (300.0, 30.0),
    "wrist": (150.0, 15.0),
    "hand": (75.0, 7.5),
}
"""Joint group -> (kp [N m / rad], kv [N m s / rad]) before ``gain_scale``."""

TORQUE_LIMITS: dict[str, float] = {
    "spine": 200.0,
    "hip": 200.0,
    "knee": 150.0,
    "ankle": 90.0,
    "shoulder": 90.0,
    "collar": 60.0,
    "elbow": 60.0,
    "neck": 50.0,
    "head": 50.0,
    "foot": 30.0,
    "wrist": 30.0,
    "hand": 10.0,
}
"""Joint group -> |torque| limit in N m (the actuators' ``forcerange``)."""

_SEGMENT_FRACTIONS = {"hip": 0.100, "knee": 0.0465, "ankle": 0.0110, "foot": 0.0035, "collar": 0.013,
                      "shoulder": 0.028, "elbow": 0.016, "wrist": 0.004, "hand": 0.002}  # fmt: skip
MASS_FRACTIONS: dict[str, float] = {
    "pelvis": 0.142,
    "spine1": 0.139,
    "spine2": 0.100,
    "spine3": 0.090,
    "neck": 0.021,
    "head": 0.060,
    **{f"{side}_{part}": f for side in ("left", "right") for part, f in _SEGMENT_FRACTIONS.items()},
}
"""Body -> fraction of the total mass (Dempster via Winter; sums to 1). Foot 0.0145 = ankle body 0.011 + toes
0.0035, hand 0.006 = palm 0.004 + fingers 0.002, thorax 0.216 = spine2 + spine3 + collars."""

ARMATURE = 0.01  # kg m^2 per hinge: rotor-like inertia, a common stabiliser of light distal segments
GHOST_MASS_SCALE = 1e-3  # the ghost's geoms weigh this fraction of the real ones (MuJoCo needs mass > 0)
GHOST_RGBA = "0.3 0.8 0.3 0.3"
_BODY_RGBA = "0.8 0.6 0.45 1"


# ------------------------------------------------------------------------------------------------ rest geometry


@dataclass(frozen=True)
class RestGeometry:
    """The T-posed body at one shape, in world coordinates, standing with its soles at ``z = 0``."""

    joints: np.ndarray  # [24, 3] world positions of the joints, float64
    stature: float  # metres, lowest to highest vertex
    girths: dict[str, float] = field(repr=False)  # default_girths(stature), metres


def _check_betas(betas: np.ndarray | None) -> np.ndarray:
    if betas is None:
        return np.zeros(10)
    array = np.asarray(betas, dtype=np.float64)
    if array.shape != (10,):
        raise ValueError(f"betas must have shape (10,) (the default body model's shape coefficients) or be None, "
                         f"got shape {array.shape}")  # fmt: skip
    if not np.all(np.isfinite(array)):
        raise ValueError("betas must be finite")
    return array


@lru_cache(maxsize=1)
def _body_model():  # noqa: ANN202 (torch types stay out of this module's import)
    import torch

    from vision3d.body.model import BodyModel

    return BodyModel.default(dtype=torch.float64, device="cpu")


@lru_cache(maxsize=32)
def _rest_geometry_cached(betas: tuple[float, ...]) -> RestGeometry:
    import torch

    from vision3d.body.default_model import default_girths

    with torch.no_grad():
        out = _body_model()(betas=torch.tensor([betas], dtype=torch.float64))
    joints = out.joints[0].numpy().astype(np.float64)
    vertices = out.vertices[0].numpy().astype(np.float64)
    ground = vertices[:, 1].min()  # canonical y of the lowest vertex (a sole)
    world = joints @ SMPL_TO_WORLD.T + np.array([0.0, 0.0, -ground])
    stature = float(vertices[:, 1].max() - ground)
    girths = {key: float(value) for key, value in default_girths(stature).items()}
    return RestGeometry(joints=world, stature=stature, girths=girths)


def rest_geometry(betas: np.ndarray | None = None) -> RestGeometry:
    """World joints (standing), stature and girths of the T-posed body of shape ``betas`` (``(10,)`` or None)."""
    return _rest_geometry_cached(tuple(_check_betas(betas).tolist()))


def rest_joint_positions(betas: np.ndarray | None = None) -> np.ndarray:
    """``[24, 3]`` world positions of the joints in the standing rest pose (= ``xpos`` of the bodies at qpos0)."""
    return rest_geometry(betas).joints.copy()


def standing_pelvis_height(betas: np.ndarray | None = None) -> float:
    """Height of the pelvis joint (the free joint's z in qpos0) when the rest body stands with soles at z = 0."""
    return float(rest_geometry(betas).joints[0, 2])


# ------------------------------------------------------------------------------------------------------ geoms


@dataclass(frozen=True)
class Geom:
    """One collision/visual shape of a body, in the body frame (world-aligned at rest)."""

    name: str
    kind: str  # "capsule" or "box"
    attrs: dict[str, str]  # fromto / pos + size
    volume: float


def _fmt(values: np.ndarray | list[float] | float) -> str:
    return " ".join(f"{float(v):.12g}" for v in np.atleast_1d(values))


def _capsule(name: str, start: np.ndarray, end: np.ndarray, radius: float) -> Geom:
    length = float(np.linalg.norm(end - start))
    volume = np.pi * radius**2 * length + 4.0 / 3.0 * np.pi * radius**3
    return Geom(name, "capsule", {"fromto": _fmt(np.concatenate([start, end])), "size": _fmt(radius)}, volume)


def _lateral_capsule(name: str, centre: np.ndarray, half_width: float, depth: float) -> Geom:
    """A capsule along world y: an elliptic trunk section of semi-axes ``half_width`` (y) and ``depth`` (x, z)."""
    half = max(half_width - depth, 1e-3)
    offset = np.array([0.0, half, 0.0])
    return _capsule(name, centre - offset, centre + offset, depth)


def _box(name: str, low: np.ndarray, high: np.ndarray) -> Geom:
    half = 0.5 * (high - low)
    return Geom(name, "box", {"pos": _fmt(0.5 * (low + high)), "size": _fmt(half)}, float(np.prod(2.0 * half)))


def _foot_boxes(side: str, joints: np.ndarray, origin_ankle: np.ndarray, origin_foot: np.ndarray, stature: float
                ) -> tuple[Geom, Geom]:  # fmt: skip
    """Heel -> ball (ankle body) and ball -> toe tip (foot body); soles at world z = 0, aligned with world x."""
    ankle, ball = joints[JOINT_INDEX[f"{side}_ankle"]], joints[JOINT_INDEX[f"{side}_foot"]]
    reach = ball[0] - ankle[0]  # the ball is in front of the ankle (+x)
    half_width = 0.5 * 0.055 * stature  # Winter's foot breadth 0.055 H
    heel_x, toe_x = ankle[0] - 0.4 * reach, ball[0] + 0.5 * reach
    y0, y1 = ball[1] - half_width, ball[1] + half_width
    rear = _box(f"{side}_ankle_geom", np.array([heel_x, y0, 0.0]) - origin_ankle,
                np.array([ball[0], y0 + 2 * half_width, ankle[2]]) - origin_ankle)  # fmt: skip
    toes = _box(f"{side}_foot_geom", np.array([ball[0], y0, 0.0]) - origin_foot,
                np.array([toe_x, y1, 1.2 * ball[2]]) - origin_foot)  # fmt: skip
    return rear, toes


def _hand_boxes(side: str, joints: np.ndarray, g: dict[str, float], stature: float) -> tuple[Geom, Geom]:
    """Palm (wrist -> knuckles) and fingers (knuckles -> tips), palms down: thin in z, broad in x."""
    wrist, knuckles = joints[JOINT_INDEX[f"{side}_wrist"]], joints[JOINT_INDEX[f"{side}_hand"]]
    sign = np.sign(knuckles[1] - wrist[1])
    finger_tip = knuckles + sign * np.array([0.0, 0.55 * 0.108 * stature, 0.0])  # Winter's hand length 0.108 H
    palm_half = np.array([g["palm_w"], 0.5 * abs(knuckles[1] - wrist[1]), g["palm_t"]])
    finger_half = np.array([0.85 * g["palm_w"], 0.5 * abs(finger_tip[1] - knuckles[1]), 0.8 * g["palm_t"]])
    palm_centre = 0.5 * (wrist + knuckles) - wrist
    finger_centre = 0.5 * (knuckles + finger_tip) - knuckles
    palm = _box(f"{side}_wrist_geom", palm_centre - palm_half, palm_centre + palm_half)
    fingers = _box(f"{side}_hand_geom", finger_centre - finger_half, finger_centre + finger_half)
    return palm, fingers


def _body_geoms(geometry: RestGeometry) -> dict[str, list[Geom]]:
    """Geoms of every body, in body coordinates (body origin = its joint)."""
    J, g, H = geometry.joints, geometry.girths, geometry.stature  # noqa: N806
    at = {name: J[i] for i, name in enumerate(JOINT_NAMES)}
    geoms: dict[str, list[Geom]] = {name: [] for name in JOINT_NAMES}

    def local(name: str, point: np.ndarray) -> np.ndarray:
        return point - at[name]

    # Trunk: lateral capsules, each an elliptic section (width x depth) centred between consecutive spine joints.
    sections = (("pelvis", at["pelvis"], "pelvis"), ("spine1", 0.5 * (at["spine1"] + at["spine2"]), "waist"),
                ("spine2", 0.5 * (at["spine2"] + at["spine3"]), "chest"),
                ("spine3", 0.5 * (at["spine3"] + at["neck"]), "upper_chest"))  # fmt: skip
    for body, centre, key in sections:
        geoms[body].append(_lateral_capsule(f"{body}_geom", local(body, centre), g[f"{key}_w"], g[f"{key}_d"]))
    geoms["neck"].append(_capsule("neck_geom", local("neck", at["neck"]), local("neck", at["head"]), g["neck_r"]))
    # Head: the skull from just below the head joint to its vertex (head_top / head_base of the proportions).
    head_length = np.linalg.norm(at["head"] - at["neck"]) * (0.115 / 0.040)
    radius = g["head_w"] * 1.05
    centre = at["head"] + np.array([0.15 * g["head_d"], 0.0, 0.45 * head_length])
    half = max(0.5 * head_length * 1.1 - radius, 1e-3)
    up = np.array([0.0, 0.0, half])
    geoms["head"].append(_capsule("head_geom", local("head", centre - up), local("head", centre + up), radius))

    limbs = (("hip", "knee", "midthigh_r"), ("knee", "ankle", "calf_r"), ("collar", "shoulder", "collar_r"),
             ("shoulder", "elbow", "upperarm_r"), ("elbow", "wrist", "forearm_r"))  # fmt: skip
    for side in ("left", "right"):
        for joint, child, key in limbs:
            name, end = f"{side}_{joint}", f"{side}_{child}"
            geoms[name].append(_capsule(f"{name}_geom", np.zeros(3), local(name, at[end]), g[key]))
        rear, toes = _foot_boxes(side, J, at[f"{side}_ankle"], at[f"{side}_foot"], H)
        palm, fingers = _hand_boxes(side, J, g, H)
        geoms[f"{side}_ankle"].append(rear)
        geoms[f"{side}_foot"].append(toes)
        geoms[f"{side}_wrist"].append(palm)
        geoms[f"{side}_hand"].append(fingers)
    return geoms


# ------------------------------------------------------------------------------------------------------- XML


@dataclass(frozen=True)
class _Options:
    total_mass: float
    gain_scale: float
    fixed_root: bool
    timestep: float
    ghost: bool


def _geom_masses(geoms: list[Geom], body_mass: float) -> list[float]:
    """Share a body's mass among its geoms in proportion to their volumes."""
    volumes = np.array([geom.volume for geom in geoms])
    return list(body_mass * volumes / volumes.sum())


def _add_hinges(body: ET.Element, joint: str, prefix: str, limited: bool) -> None:
    for axis_index, axis in enumerate("xyz"):
        attrs = {"name": f"{prefix}{joint}_{axis}", "type": "hinge", "axis": _fmt(np.eye(3)[axis_index])}
        if limited:
            lo, hi = JOINT_LIMITS_DEG[joint][axis_index]
            attrs["range"] = _fmt(np.radians([lo, hi]))
        ET.SubElement(body, "joint", attrs)


def _add_tree(parent: ET.Element, geometry: RestGeometry, geoms: dict[str, list[Geom]], options: _Options,
              ghost: bool) -> None:  # fmt: skip
    """The 24 nested bodies (the real character, or the ghost with prefix ``ghost_``)."""
    prefix = "ghost_" if ghost else ""
    elements: dict[int, ET.Element] = {}
    for k in _depth_first():  # parents before children; XML order = MuJoCo's body ids
        name = JOINT_NAMES[k]
        pos = geometry.joints[k] - (geometry.joints[PARENTS[k]] if PARENTS[k] >= 0 else 0.0)
        attrs = {"name": prefix + name, "pos": _fmt(pos)}
        if ghost:
            attrs["gravcomp"] = "1"  # the ghost floats where the env puts it
        body = ET.SubElement(elements[PARENTS[k]] if k else parent, "body", attrs)
        elements[k] = body
        if k == 0:
            if ghost or not options.fixed_root:
                ET.SubElement(body, "freejoint", {"name": prefix + "root"})
            if not ghost:
                ET.SubElement(body, "camera", {"name": "track", "mode": "trackcom", "pos": "2.5 -2.5 0.3",
                                               "xyaxes": "0.707 0.707 0 -0.07 0.07 1"})  # fmt: skip
        else:
            _add_hinges(body, name, prefix, limited=not ghost)  # ghost: no limits, so no solver constraints
        mass = MASS_FRACTIONS[name] * options.total_mass * (GHOST_MASS_SCALE if ghost else 1.0)
        for geom, geom_mass in zip(geoms[name], _geom_masses(geoms[name], mass), strict=True):
            attrs = {"name": prefix + geom.name, "type": geom.kind, **geom.attrs, "mass": f"{geom_mass:.12g}"}
            if ghost:
                attrs.update(contype="0", conaffinity="0", group="1", rgba=GHOST_RGBA)
            ET.SubElement(body, "geom", attrs)


def _add_actuators(root: ET.Element, gain_scale: float) -> None:
    actuators = ET.SubElement(root, "actuator")
    for joint in ACTUATED_JOINTS:
        group = _GROUP[joint]
        kp, kv = PD_GAINS[group]
        torque = TORQUE_LIMITS[group]
        for axis_index, axis in enumerate("xyz"):
            lo, hi = np.radians(JOINT_LIMITS_DEG[joint][axis_index])
            ET.SubElement(actuators, "position", {
                "name": f"{joint}_{axis}", "joint": f"{joint}_{axis}", "kp": f"{kp * gain_scale:.12g}",
                "kv": f"{kv * gain_scale:.12g}", "ctrlrange": _fmt([lo, hi]), "forcerange": _fmt([-torque, torque]),
            })  # fmt: skip


def _xml_root(geometry: RestGeometry, options: _Options, excludes: list[tuple[str, str]]) -> ET.Element:
    root = ET.Element("mujoco", {"model": "smpl_humanoid"})
    ET.SubElement(root, "compiler", {"angle": "radian", "autolimits": "true"})
    ET.SubElement(root, "option", {"timestep": f"{options.timestep:.12g}", "integrator": "implicitfast"})
    default = ET.SubElement(root, "default")
    ET.SubElement(default, "joint", {"armature": f"{ARMATURE:g}", "damping": "0"})
    ET.SubElement(default, "geom", {"rgba": _BODY_RGBA, "friction": "1 0.005 0.0001", "condim": "3"})
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", {"name": "grid", "type": "2d", "builtin": "checker", "width": "512",
                                     "height": "512", "rgb1": ".2 .3 .4", "rgb2": ".1 .15 .2"})  # fmt: skip
    ET.SubElement(asset, "material", {"name": "grid", "texture": "grid", "texrepeat": "1 1", "texuniform": "true"})
    world = ET.SubElement(root, "worldbody")
    ET.SubElement(world, "light", {"name": "sun", "pos": "0 0 5", "dir": "0 0 -1", "directional": "true"})
    ET.SubElement(world, "geom", {"name": "floor", "type": "plane", "size": "0 0 0.05", "material": "grid",
                                  "friction": "1 0.005 0.0001", "rgba": "1 1 1 1"})  # fmt: skip
    geoms = _body_geoms(geometry)
    _add_tree(world, geometry, geoms, options, ghost=False)
    if options.ghost:
        _add_tree(world, geometry, geoms, options, ghost=True)
    if excludes:
        contact = ET.SubElement(root, "contact")
        for body1, body2 in excludes:
            ET.SubElement(contact, "exclude", {"body1": body1, "body2": body2})
    _add_actuators(root, options.gain_scale)
    return root


def _compile(xml: str):  # noqa: ANN202 (mujoco.MjModel)
    import mujoco

    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as error:  # MuJoCo raises ValueError with the parser's message
        raise ValueError(f"the generated humanoid MJCF does not compile: {error}") from error


_TRUNK = ("pelvis", "spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar")


def _excluded_pairs() -> set[tuple[str, str]]:
    """Body pairs that never collide (MuJoCo already skips parent-child pairs).

    - siblings (the hips and spine1; the collars and the neck): they overlap by construction;
    - any two trunk bodies: the trunk is one continuous flesh column, its capsules touch as soon as it bends;
    - the upper arms and the spine: an arm hanging at the side (the most common mocap pose) rests against the
      ribcage, and our capsules would interpenetrate there, so reference poses could not be reached.
    """
    pairs = set()
    for i, name in enumerate(JOINT_NAMES):
        for j in range(i + 1, len(JOINT_NAMES)):
            if PARENTS[i] == PARENTS[j] >= 0:
                pairs.add((name, JOINT_NAMES[j]))
    pairs |= {(a, b) for i, a in enumerate(_TRUNK) for b in _TRUNK[i + 1 :]}
    pairs |= {(f"{side}_shoulder", spine) for side in ("left", "right") for spine in ("spine1", "spine2", "spine3")}
    return {tuple(sorted(pair)) for pair in pairs}  # type: ignore[misc]


def _rest_contact_pairs(xml: str) -> list[tuple[str, str]]:
    """Body pairs of the character whose geoms touch in the rest pose (floor contacts aside)."""
    import mujoco

    model = _compile(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    pairs = set()
    for contact in data.contact[: data.ncon]:
        b1, b2 = (int(model.geom_bodyid[g]) for g in (contact.geom1, contact.geom2))
        if b1 and b2:  # body 0 is the world (the floor)
            pairs.add(tuple(sorted((b1, b2))))
    return [(model.body(b1).name, model.body(b2).name) for b1, b2 in sorted(pairs)]


def build_humanoid_xml(
    betas: np.ndarray | None = None,
    *,
    total_mass: float = 70.0,
    gain_scale: float = 1.0,
    fixed_root: bool = False,
    timestep: float = TIMESTEP,
    ghost: bool = False,
) -> str:
    """The humanoid's MJCF as a string, validated by compiling it (see the module docstring for the conventions).

    ``betas``: ``(10,)`` shape coefficients of ``BodyModel.default()`` or None (mean shape). ``total_mass`` in kg.
    ``gain_scale`` multiplies every kp and kv. ``fixed_root`` welds the pelvis to the world at its standing pose
    (no free joint: ``nq = 69``). ``ghost`` adds a collision-free, translucent, almost massless copy of the body
    tree (prefix ``"ghost_"``, own free joint and unlimited hinges, no actuators, gravity-compensated) whose qpos the
    env overwrites with the reference pose for rendering; it does not change the character's dynamics.
    """
    geometry = rest_geometry(betas)
    if not (total_mass > 0 and gain_scale > 0 and timestep > 0):
        raise ValueError(f"total_mass, gain_scale and timestep must be positive, got {total_mass}, {gain_scale}, "
                         f"{timestep}")  # fmt: skip
    options = _Options(total_mass, gain_scale, fixed_root, timestep, ghost)
    probe = ET.tostring(_xml_root(geometry, _Options(total_mass, 1.0, fixed_root, timestep, False), []), "unicode")
    excludes = sorted(_excluded_pairs() | set(_rest_contact_pairs(probe)))
    root = _xml_root(geometry, options, excludes)
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    _compile(xml)
    return xml


def write_humanoid_xml(path: str | os.PathLike[str], **kwargs: object) -> str:
    """Write :func:`build_humanoid_xml` ``(**kwargs)`` to ``path`` (parent folders created); returns the XML."""
    xml = build_humanoid_xml(**kwargs)  # type: ignore[arg-type]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write(xml)
    return xml


def main(argv: list[str] | None = None) -> None:
    """``python -m mpenv.humanoid.mjcf humanoid.xml [--betas b0 ... b9] [--ghost]``: write the model to inspect it
    (e.g. in MuJoCo's ``simulate`` viewer)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mpenv.humanoid.mjcf", description=main.__doc__)
    parser.add_argument("path", help="output .xml file")
    parser.add_argument("--betas", type=float, nargs=10, default=None, help="body shape (10 numbers; default mean)")
    parser.add_argument("--total-mass", type=float, default=70.0, help="kg (default 70)")
    parser.add_argument("--ghost", action="store_true", help="include the translucent reference ghost")
    args = parser.parse_args(argv)
    betas = None if args.betas is None else np.array(args.betas)
    write_humanoid_xml(args.path, betas=betas, total_mass=args.total_mass, ghost=args.ghost)
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
