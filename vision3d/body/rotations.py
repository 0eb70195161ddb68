"""Rotation conversions between axis-angle, rotation matrices, quaternions, the 6D representation and Euler angles.

Every function is batched over any leading dimensions, keeps the dtype (float32 or float64) and device of its
input, and is differentiable wherever the underlying map is smooth. Conventions:

- Rotation matrices act on column vectors, ``v' = R @ v``; a matrix has shape ``[..., 3, 3]``.
- Axis-angle (rotation vector) ``aa = theta * axis`` with ``theta = |aa|``; conversions to axis-angle return
  ``theta`` in ``[0, pi]``.
- Quaternions are ``(w, x, y, z)`` -- scalar FIRST (scipy uses ``(x, y, z, w)``), Hamilton product, ``q`` and ``-q``
  are the same rotation. Conversions to quaternions return the canonical sign ``w >= 0`` and unit norm.
- 6D (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019): the first two
  COLUMNS of ``R`` concatenated, ``[R[:, 0], R[:, 1]]``; decoding is Gram-Schmidt on those two columns and a cross
  product for the third.
- Euler angles follow scipy: an uppercase order (``"XYZ"``) is intrinsic -- rotate about the moving body axes,
  ``R = R_X(a) R_Y(b) R_Z(c)`` -- a lowercase order (``"xyz"``) is extrinsic -- rotate about the fixed axes,
  ``R = R_z(c) R_y(b) R_x(a)``. All 12 orders are supported (6 Tait-Bryan like ``XYZ``, 6 proper like ``ZXZ``).

The math:

- Rodrigues: ``R = I + sin(theta) K + (1 - cos(theta)) K^2`` with ``K`` the cross-product matrix of the unit axis;
  written on the unnormalised vector ``aa`` as ``R = I + A [aa]_x + B [aa]_x^2`` with ``A = sin(theta) / theta``
  and ``B = (1 - cos(theta)) / theta^2``, whose Taylor series at ``theta = 0`` keep the value and gradient exact.
- Quaternion of an axis-angle: ``q = (cos(theta / 2), sin(theta / 2) axis)``.
- Matrix to quaternion: Shepperd's method -- of ``4w^2 = 1 + tr R``, ``4x^2 = 1 + R00 - R11 - R22``, ... take the
  largest and get the other three components from off-diagonal sums/differences divided by it, so nothing is ever
  divided by a small number.
- Slerp: ``slerp(q0, q1, t) = q0 (q0^-1 q1)^t`` on the shorter arc.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "EULER_ORDERS",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "elementary_rotation",
    "euler_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "quaternion_angle_difference",
    "quaternion_apply",
    "quaternion_conjugate",
    "quaternion_multiply",
    "quaternion_slerp",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rotation_6d_to_matrix",
    "skew",
    "standardize_quaternion",
]

# Below this squared angle the closed forms switch to Taylor series: the series are exact to float64 precision
# there (next term ~ theta^6 / 5040) and, unlike sin(theta) / theta, have finite gradients at theta = 0.
_SMALL_ANGLE_SQ = 1e-6

EULER_ORDERS: tuple[str, ...] = tuple(
    o
    for base in ("xyz", "xzy", "yxz", "yzx", "zxy", "zyx", "xyx", "xzx", "yxy", "yzy", "zxz", "zyz")
    for o in (base, base.upper())
)
"""The 24 accepted Euler orders: 12 axis sequences, each extrinsic (lowercase) and intrinsic (uppercase)."""

_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}


# ----------------------------------------------------------------------------------------------------------- helpers


def _check_last(x: Tensor, size: int, name: str) -> None:
    if x.shape[-1:] != (size,):
        raise ValueError(f"{name} must have shape [..., {size}], got {tuple(x.shape)}")


def _check_matrix(m: Tensor) -> None:
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape [..., 3, 3], got {tuple(m.shape)}")


def _safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(max(x, 0))`` whose gradient is 0 (not inf/NaN) at and below 0.

    The double ``where`` matters: a plain ``where(x > 0, sqrt(x), 0)`` still back-propagates ``0 * inf = NaN``
    through the unused branch.
    """
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def _safe_norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last dim with gradient 0 at the zero vector."""
    return _safe_sqrt((v * v).sum(-1))


def skew(v: Tensor) -> Tensor:
    """Cross-product matrix ``[v]_x`` of ``v[..., 3]`` (so that ``[v]_x @ u = v x u``), shape ``[..., 3, 3]``."""
    _check_last(v, 3, "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


# ------------------------------------------------------------------------------------------------------- axis-angle


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula ``R = I + sin(theta) K + (1 - cos(theta)) K^2``: ``aa[..., 3] -> R[..., 3, 3]``.

    Computed as ``I + A [aa]_x + B [aa]_x^2`` with ``A = sin(theta) / theta`` and
    ``B = (1 - cos(theta)) / theta^2 = 2 sin^2(theta / 2) / theta^2`` (the half-angle form avoids the cancellation
    in ``1 - cos``). Near 0 both use their Taylor series, so ``R`` and its gradient are exact at ``aa = 0``.
    """
    _check_last(aa, 3, "axis-angle")
    theta_sq = (aa * aa).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # The closed forms only ever see angles away from 0 (the small ones are replaced by 1), so no NaN gradient.
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    a_exact = torch.sin(theta) / theta
    b_exact = 2.0 * torch.sin(0.5 * theta) ** 2 / (theta * theta)
    a_taylor = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_taylor = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    a = torch.where(small, a_taylor, a_exact)[..., None, None]
    b = torch.where(small, b_taylor, b_exact)[..., None, None]
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """``R[..., 3, 3] -> aa[..., 3]`` with angle in ``[0, pi]``, via the quaternion (stable near 0 and near pi).

    At exactly ``pi`` the result is one of the two equivalent vectors ``+-pi * axis``.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def axis_angle_to_quaternion(aa: Tensor) -> Tensor:
    """``aa[..., 3] -> q[..., 4]`` (w, x, y, z): ``q = (cos(theta / 2), sin(theta / 2) / theta * aa)``.

    ``w >= 0`` for angles up to ``pi``; larger angles give ``w < 0`` (not re-canonicalised, so that
    ``axis_angle_to_quaternion`` stays smooth along any path of rotation vectors).
    """
    _check_last(aa, 3, "axis-angle")
    theta_sq = (aa * aa).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    half = 0.5 * theta
    # sin(theta / 2) / theta = 1/2 - theta^2 / 48 + theta^4 / 3840 - ...
    scale = torch.where(small, 0.5 - theta_sq / 48.0 + theta_sq * theta_sq / 3840.0, torch.sin(half) / theta)
    w = torch.where(small, 1.0 - theta_sq / 8.0 + theta_sq * theta_sq / 384.0, torch.cos(half))
    return torch.cat([w[..., None], scale[..., None] * aa], dim=-1)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """``q[..., 4] (w, x, y, z) -> aa[..., 3]`` with angle ``2 atan2(|v|, w)`` in ``[0, pi]``.

    ``q`` is normalised and flipped to ``w >= 0`` first (``q`` and ``-q`` are the same rotation), which picks the
    angle in ``[0, pi]``. ``aa = v * angle / |v|``; near ``|v| = 0`` the ratio uses its series
    ``angle / |v| = (2 / w) (1 - |v|^2 / (3 w^2) + ...)``.
    """
    q = standardize_quaternion(q)
    w, v = q[..., 0], q[..., 1:]
    s_sq = (v * v).sum(-1)
    small = s_sq < _SMALL_ANGLE_SQ
    s = torch.sqrt(torch.where(small, torch.ones_like(s_sq), s_sq))
    angle = 2.0 * torch.atan2(s, w)
    # In the small branch w ~ 1 (a unit quaternion with w >= 0 and |v| < 1e-3), so the division is safe.
    w_safe = torch.where(small, w, torch.ones_like(w))
    ratio_taylor = 2.0 / w_safe * (1.0 - s_sq / (3.0 * w_safe * w_safe))
    ratio = torch.where(small, ratio_taylor, angle / s)
    return ratio[..., None] * v


# ------------------------------------------------------------------------------------------------------ quaternions


def standardize_quaternion(q: Tensor) -> Tensor:
    """Unit-normalise ``q[..., 4]`` and flip its sign so that ``w >= 0`` (the canonical representative)."""
    _check_last(q, 4, "quaternion")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_conjugate(q: Tensor) -> Tensor:
    """``(w, x, y, z) -> (w, -x, -y, -z)``: the inverse rotation for a unit quaternion."""
    _check_last(q, 4, "quaternion")
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quaternion_multiply(q0: Tensor, q1: Tensor) -> Tensor:
    """Hamilton product ``q0 q1`` (apply ``q1`` first, then ``q0``), broadcasting the leading dims.

    ``(w0, v0)(w1, v1) = (w0 w1 - v0.v1, w0 v1 + w1 v0 + v0 x v1)``.
    """
    _check_last(q0, 4, "q0")
    _check_last(q1, 4, "q1")
    q0, q1 = torch.broadcast_tensors(q0, q1)
    w0, v0 = q0[..., :1], q0[..., 1:]
    w1, v1 = q1[..., :1], q1[..., 1:]
    w = w0 * w1 - (v0 * v1).sum(-1, keepdim=True)
    v = w0 * v1 + w1 * v0 + torch.linalg.cross(v0, v1, dim=-1)
    return torch.cat([w, v], dim=-1)


def quaternion_apply(q: Tensor, points: Tensor) -> Tensor:
    """Rotate ``points[..., 3]`` by unit quaternions ``q[..., 4]``: ``p' = q (0, p) q*``, expanded as
    ``p' = p + 2 w (v x p) + 2 v x (v x p)``."""
    _check_last(q, 4, "quaternion")
    _check_last(points, 3, "points")
    w, v = q[..., :1], q[..., 1:]
    v, points = torch.broadcast_tensors(v, points)
    t = 2.0 * torch.linalg.cross(v, points, dim=-1)
    return points + w * t + torch.linalg.cross(v, t, dim=-1)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """``q[..., 4] (w, x, y, z) -> R[..., 3, 3]``; ``q`` need not be unit (it is scaled by ``2 / |q|^2``)."""
    _check_last(q, 4, "quaternion")
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    rows = [
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """``R[..., 3, 3] -> q[..., 4]`` (w, x, y, z), unit norm, ``w >= 0``, by Shepperd's method.

    With ``4w^2 = 1 + R00 + R11 + R22``, ``4x^2 = 1 + R00 - R11 - R22``, ``4y^2 = 1 - R00 + R11 - R22``,
    ``4z^2 = 1 - R00 - R11 + R22`` and the off-diagonals ``4wx = R21 - R12``, ``4xy = R10 + R01``, ... each of the
    four candidate rows ``4 q_i q`` divided by ``4 |q_i|`` is the quaternion; we keep the row whose ``|q_i|`` is
    largest (at least 1/2), so the division is always well conditioned -- unlike the textbook ``w``-only formula
    that breaks down near 180 degrees.
    """
    _check_matrix(matrix)
    m = matrix.reshape(*matrix.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    q_abs = _safe_sqrt(
        torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    )  # 2 |w|, 2 |x|, 2 |y|, 2 |z|
    sq = q_abs * q_abs
    candidates = torch.stack(
        [
            torch.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),  # 4 w q
            torch.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], dim=-1),  # 4 x q
            torch.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], dim=-1),  # 4 y q
            torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], dim=-1),  # 4 z q
        ],
        dim=-2,
    )
    # The clamp only guards the rows we discard (the kept one has 2|q_i| >= 1).
    candidates = candidates / (2.0 * q_abs.clamp_min(0.1))[..., None]
    best = q_abs.argmax(dim=-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return standardize_quaternion(q)


def quaternion_slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation on the shorter arc: ``q0 (q0^-1 q1)^t``, ``t = 0 -> q0``, ``t = 1 -> +-q1``.

    ``t`` is a float or a tensor broadcasting against the leading dims of the quaternions. Going through the
    relative rotation's axis-angle (angle in ``[0, pi]`` after canonicalising ``w >= 0``) picks the short way and
    stays exact when ``q0 ~ q1``, where the textbook ``sin((1 - t) Omega) / sin(Omega)`` form divides 0 by 0.
    """
    q0 = standardize_quaternion(q0)
    q1 = standardize_quaternion(q1)
    rel = quaternion_to_axis_angle(quaternion_multiply(quaternion_conjugate(q0), q1))
    t = torch.as_tensor(t, dtype=rel.dtype, device=rel.device)
    return standardize_quaternion(quaternion_multiply(q0, axis_angle_to_quaternion(t[..., None] * rel)))


def quaternion_angle_difference(q0: Tensor, q1: Tensor) -> Tensor:
    """Angle in ``[0, pi]`` of the relative rotation ``q0^-1 q1``: ``2 atan2(|v|, |w|)`` of the product.

    The ``|w|`` makes it independent of the signs of ``q0`` and ``q1``; ``atan2`` (not ``2 acos(|w|)``) keeps it
    accurate for tiny differences. Used e.g. by DeepMimic's pose reward.
    """
    rel = quaternion_multiply(quaternion_conjugate(q0), q1)
    return 2.0 * torch.atan2(_safe_norm(rel[..., 1:]), rel[..., 0].abs())


# --------------------------------------------------------------------------------------------------------------- 6D


def matrix_to_rotation_6d(matrix: Tensor) -> Tensor:
    """``R[..., 3, 3] -> [..., 6]``: the first two columns, ``[R00, R10, R20, R01, R11, R21]`` (Zhou et al. 2019)."""
    _check_matrix(matrix)
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """``[..., 6] -> R[..., 3, 3]`` by Gram-Schmidt: ``b1 = a1 / |a1|``, ``b2 = normalize(a2 - (b1.a2) b1)``,
    ``b3 = b1 x b2``; ``b1, b2, b3`` are the COLUMNS of ``R``. Any 6-vector with non-parallel halves maps to a
    rotation, which is what makes the representation continuous for a network output."""
    _check_last(d6, 6, "6D rotation")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


# ------------------------------------------------------------------------------------------------------------ Euler


def _parse_order(order: str) -> tuple[list[int], bool]:
    """Axis indices of ``order`` and whether it is intrinsic (uppercase)."""
    if order not in EULER_ORDERS:
        raise ValueError(
            f"unsupported Euler order {order!r}: use 3 axes from x, y, z with no axis twice in a row, all uppercase "
            "(intrinsic, e.g. 'XYZ') or all lowercase (extrinsic, e.g. 'xyz')"
        )
    return [_AXIS_INDEX[c] for c in order.lower()], order.isupper()


def elementary_rotation(axis: int, angle: Tensor) -> Tensor:
    """Rotation by ``angle[...]`` (radians, right-handed) about coordinate axis ``axis`` (0: x, 1: y, 2: z),
    shape ``[..., 3, 3]``. Euler angles and BVH rotation channels are products of these."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        entries = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        entries = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        entries = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(entries, dim=-1).reshape(*angle.shape, 3, 3)


def _wrap_angle(angle: Tensor) -> Tensor:
    """Map angles to ``[-pi, pi)``."""
    return torch.remainder(angle + torch.pi, 2 * torch.pi) - torch.pi


def euler_to_matrix(angles: Tensor, order: str = "XYZ") -> Tensor:
    """``angles[..., 3]`` (radians, in the order's axis order) ``-> R[..., 3, 3]``.

    Intrinsic ``"XYZ"``: ``R = R_X(a0) R_Y(a1) R_Z(a2)``; extrinsic ``"xyz"``: ``R = R_z(a2) R_y(a1) R_x(a0)``
    (scipy's ``Rotation.from_euler`` convention).
    """
    _check_last(angles, 3, "Euler angles")
    axes, intrinsic = _parse_order(order)
    mats = [elementary_rotation(ax, angles[..., i]) for i, ax in enumerate(axes)]
    if intrinsic:
        return mats[0] @ mats[1] @ mats[2]
    return mats[2] @ mats[1] @ mats[0]


def matrix_to_euler(matrix: Tensor, order: str = "XYZ") -> Tensor:
    """``R[..., 3, 3] -> angles[..., 3]`` for any of the 12 orders, intrinsic or extrinsic, like scipy's ``as_euler``.

    Method of Bernardes & Viollet (2022), "Quaternion to Euler angles conversion: a direct, general and
    computationally efficient method", on the quaternion of ``R``: for the extrinsic sequence ``(i, j, k)`` (an
    intrinsic order is the reversed extrinsic one with its angles reversed) permute the quaternion into
    ``(a, b, c, d)``; then ``a1 = 2 atan2(|(c, d)|, |(a, b)|)`` and ``a0, a2 = h+ -+ h-`` with
    ``h+ = atan2(b, a)``, ``h- = atan2(d, c)``; a Tait-Bryan order shifts the middle angle by ``-pi/2`` and signs
    the last by the parity of ``(i, j, k)``.

    Ranges: first and third angles in ``[-pi, pi)``; the middle one in ``[0, pi]`` for proper orders and
    ``[-pi/2, pi/2]`` for Tait-Bryan orders. At gimbal lock (middle angle 0 or pi, resp. +-pi/2) only a sum or
    difference of the outer angles is defined; like scipy we set the THIRD angle of ``order`` to 0 (silently).
    """
    _check_matrix(matrix)
    axes, intrinsic = _parse_order(order)
    q = matrix_to_quaternion(matrix)
    i, j, k = axes[::-1] if intrinsic else axes
    proper = i == k
    if proper:
        k = 3 - i - j  # the axis not in the sequence
    sign = float((i - j) * (j - k) * (k - i) // 2)  # +1 for cyclic (x, y, z), -1 otherwise
    w, qi, qj, qk = q[..., 0], q[..., 1 + i], q[..., 1 + j], q[..., 1 + k] * sign
    if proper:
        a, b, c, d = w, qi, qj, qk
    else:
        a, b, c, d = w - qj, qi + qk, qj + w, qk - qi
    half_sum = torch.atan2(b, a)
    half_diff = torch.atan2(d, c)
    middle = 2.0 * torch.atan2(torch.hypot(c, d), torch.hypot(a, b))
    first, third = half_sum - half_diff, half_sum + half_diff  # extrinsic: about i, about k
    # Gimbal lock: only first + third (middle ~ 0) or third - first (middle ~ pi) is defined. Zero the angle that
    # ends up last in ``order``: the extrinsic third, or (intrinsic, reversed) the extrinsic first.
    eps = 1e-7
    near_0 = middle.abs() <= eps
    near_pi = (middle - torch.pi).abs() <= eps
    locked = near_0 | near_pi
    if intrinsic:
        first = torch.where(locked, torch.zeros_like(first), first)
        third = torch.where(near_0, 2.0 * half_sum, torch.where(near_pi, 2.0 * half_diff, third))
    else:
        third = torch.where(locked, torch.zeros_like(third), third)
        first = torch.where(near_0, 2.0 * half_sum, torch.where(near_pi, -2.0 * half_diff, first))
    if not proper:
        third = third * sign
        middle = middle - torch.pi / 2
    first, third = _wrap_angle(first), _wrap_angle(third)
    angles = torch.stack([first, middle, third], dim=-1)
    return angles.flip(-1) if intrinsic else angles
