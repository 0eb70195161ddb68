"""The SMPL 24-joint kinematic tree: joint names, parent indices, mirroring and end effectors.

Joint ``j`` hangs off joint ``PARENTS[j]``; the root (pelvis) has parent ``-1``. The joints are listed in
topological order (every parent before its children), which is what lets forward kinematics run in one pass --
:func:`check_parents` validates that for any tree, :func:`tree_levels` groups joints by depth so a pass can
process a whole depth level at once.

"Left" and "right" are the subject's own sides (SMPL's convention), not the viewer's.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "END_EFFECTORS",
    "END_EFFECTOR_NAMES",
    "JOINT_INDEX",
    "JOINT_NAMES",
    "LEFT_RIGHT_PAIRS",
    "MIRROR_INDEX",
    "N_JOINTS",
    "PARENTS",
    "SMPL_TO_WORLD",
    "check_parents",
    "tree_levels",
]

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

N_JOINTS: int = 24

SMPL_TO_WORLD: tuple[tuple[float, ...], ...] = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
"""``W``: SMPL's canonical frame (x = the body's left, y = up, z = forward) -> the Z-up world of mpenv's motions and
simulator (canonical x -> world +y, y -> +z, z -> +x: the rest body faces +x). ``np.array(SMPL_TO_WORLD)``."""

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
"""Joint name -> index into :data:`JOINT_NAMES` / :data:`PARENTS`."""

LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (i, JOINT_INDEX["right_" + name[len("left_") :]]) for i, name in enumerate(JOINT_NAMES) if name.startswith("left_")
)
"""``(left, right)`` index pairs: hips, knees, ankles, feet, collars, shoulders, elbows, wrists, hands."""


def _mirror_index() -> tuple[int, ...]:
    index = list(range(N_JOINTS))
    for left, right in LEFT_RIGHT_PAIRS:
        index[left], index[right] = right, left
    return tuple(index)


MIRROR_INDEX: tuple[int, ...] = _mirror_index()
"""Permutation swapping every left joint with its right twin (centre joints map to themselves).

``mirrored[..., j, :] = joints[..., MIRROR_INDEX[j], :]`` relabels the joints of a mirrored body; mirroring a pose
also needs the reflection itself (e.g. flip x of positions; for axis-angle about a reflection in x, negate the
y and z components).
"""

END_EFFECTOR_NAMES: tuple[str, ...] = ("left_hand", "right_hand", "left_foot", "right_foot")
END_EFFECTORS: tuple[int, ...] = tuple(JOINT_INDEX[name] for name in END_EFFECTOR_NAMES)
"""Indices of the hands and feet (the DeepMimic end-effector set), in :data:`END_EFFECTOR_NAMES` order."""


def check_parents(parents: Iterable[int]) -> tuple[int, ...]:
    """Validate a kinematic tree and return it as a tuple of ints.

    Requirements: the first joint is the only root (parent ``-1``), and every other joint's parent is an earlier
    joint (``0 <= parents[j] < j``), so a single pass in index order always sees a parent before its child.

    Raises:
        ValueError: naming the first offending joint.
    """
    parents = tuple(int(p) for p in parents)
    if not parents:
        raise ValueError("parents is empty: a kinematic tree needs at least a root joint")
    if parents[0] != -1:
        raise ValueError(f"the root must come first: joint 0 has parent {parents[0]}, expected -1")
    for j, p in enumerate(parents[1:], start=1):
        if p == -1:
            raise ValueError(f"joint {j} has parent -1, but only joint 0 may be the root")
        if not 0 <= p < j:
            raise ValueError(
                f"joint {j} has parent {p}: every parent must be an earlier joint (0 <= parent < {j}), "
                "i.e. joints must be listed in topological order"
            )
    return parents


@lru_cache(maxsize=64)
def _tree_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return tuple(tuple(j for j in range(len(parents)) if depth[j] == d) for d in range(max(depth) + 1))


def tree_levels(parents: Iterable[int]) -> tuple[tuple[int, ...], ...]:
    """Joints grouped by depth: ``levels[0] == (0,)`` (the root), ``levels[d]`` the joints ``d`` bones below it.

    The parents of level ``d`` all lie in level ``d - 1``, so forward kinematics can process a whole level at once
    (SMPL: 24 joints in 9 levels). Cached per tree.
    """
    return _tree_levels(check_parents(parents))
