"""Rotation conversions against scipy.spatial.transform.Rotation as the independent reference."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from vision3d.body import rotations as rot

N = 1000
ATOL = 1e-10


def random_rotations(n: int = N, seed: int = 0) -> Rotation:
    # Normalised Gaussian 4-vectors are uniform on SO(3); works on every scipy version.
    return Rotation.from_quat(np.random.default_rng(seed).normal(size=(n, 4)))


def t64(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def wxyz(scipy_xyzw: np.ndarray) -> torch.Tensor:
    return t64(np.concatenate([scipy_xyzw[..., 3:], scipy_xyzw[..., :3]], axis=-1))


def same_up_to_sign(q0: torch.Tensor, q1: torch.Tensor, atol: float = ATOL) -> bool:
    sign = torch.sign((q0 * q1).sum(-1, keepdim=True))
    return torch.allclose(q0, sign * q1, atol=atol)


def random_axes(n: int, seed: int) -> torch.Tensor:
    axes = torch.as_tensor(np.random.default_rng(seed).normal(size=(n, 3)))
    return axes / axes.norm(dim=-1, keepdim=True)


# --------------------------------------------------------------------------------------- against scipy, float64


def test_axis_angle_to_matrix_matches_scipy():
    r = random_rotations()
    assert torch.allclose(rot.axis_angle_to_matrix(t64(r.as_rotvec())), t64(r.as_matrix()), atol=ATOL)


def test_matrix_to_axis_angle_matches_scipy():
    r = random_rotations()
    assert torch.allclose(rot.matrix_to_axis_angle(t64(r.as_matrix())), t64(r.as_rotvec()), atol=ATOL)


def test_quaternion_to_matrix_matches_scipy_also_for_unnormalised_quaternions():
    r = random_rotations()
    q = wxyz(r.as_quat()) * t64(np.random.default_rng(1).uniform(0.5, 2.0, size=(N, 1)))
    assert torch.allclose(rot.quaternion_to_matrix(q), t64(r.as_matrix()), atol=ATOL)


def test_matrix_to_quaternion_matches_scipy_up_to_sign_and_is_canonical_unit():
    r = random_rotations()
    q = rot.matrix_to_quaternion(t64(r.as_matrix()))
    assert same_up_to_sign(q, wxyz(r.as_quat()))
    assert (q[:, 0] >= 0).all()
    assert torch.allclose(q.norm(dim=-1), torch.ones(N, dtype=torch.float64), atol=ATOL)


def test_axis_angle_quaternion_conversions_match_scipy():
    r = random_rotations()
    assert same_up_to_sign(rot.axis_angle_to_quaternion(t64(r.as_rotvec())), wxyz(r.as_quat()))
    assert torch.allclose(rot.quaternion_to_axis_angle(wxyz(r.as_quat())), t64(r.as_rotvec()), atol=ATOL)


def test_quaternion_multiply_conjugate_and_apply_match_scipy():
    r0, r1 = random_rotations(seed=0), random_rotations(seed=1)
    q0, q1 = wxyz(r0.as_quat()), wxyz(r1.as_quat())
    assert same_up_to_sign(rot.quaternion_multiply(q0, q1), wxyz((r0 * r1).as_quat()))
    assert same_up_to_sign(rot.quaternion_conjugate(q0), wxyz(r0.inv().as_quat()))
    points = np.random.default_rng(2).normal(size=(N, 3))
    assert torch.allclose(rot.quaternion_apply(q0, t64(points)), t64(r0.apply(points)), atol=ATOL)


def test_quaternion_slerp_matches_scipy_slerp():
    keys = random_rotations(200, seed=3)
    times = np.random.default_rng(4).uniform(0.0, 1.0, size=199)
    # One scipy Slerp over keys at times 0, 1, 2, ... evaluated at i + t_i interpolates between keys i and i + 1.
    expected = Slerp(np.arange(200.0), keys)(np.arange(199) + times)
    q = wxyz(keys.as_quat())
    got = rot.quaternion_slerp(q[:-1], q[1:], t64(times))
    assert same_up_to_sign(got, wxyz(expected.as_quat()))


def test_quaternion_slerp_takes_the_short_way_and_hits_the_endpoints():
    r = random_rotations(100, seed=5)
    q = wxyz(r.as_quat())
    q0, q1 = q[:50], q[50:]
    t = t64(np.random.default_rng(6).uniform(size=50))
    assert same_up_to_sign(rot.quaternion_slerp(q0, -q1, t), rot.quaternion_slerp(q0, q1, t))
    assert same_up_to_sign(rot.quaternion_slerp(q0, q1, 0.0), q0)
    assert same_up_to_sign(rot.quaternion_slerp(q0, q1, 1.0), q1)
    # Identical endpoints (the 0/0 case of the textbook formula) stay put.
    assert same_up_to_sign(rot.quaternion_slerp(q0, q0, t), q0)


def test_quaternion_angle_difference_matches_scipy_and_ignores_signs():
    r0, r1 = random_rotations(seed=7), random_rotations(seed=8)
    q0, q1 = wxyz(r0.as_quat()), wxyz(r1.as_quat())
    expected = t64((r0.inv() * r1).magnitude())
    assert torch.allclose(rot.quaternion_angle_difference(q0, q1), expected, atol=ATOL)
    assert torch.allclose(rot.quaternion_angle_difference(-q0, q1), expected, atol=ATOL)
    assert torch.allclose(rot.quaternion_angle_difference(q0, q0), torch.zeros(N, dtype=torch.float64), atol=1e-7)


def test_rotation_6d_is_the_first_two_columns_and_round_trips():
    matrices = t64(random_rotations().as_matrix())
    d6 = rot.matrix_to_rotation_6d(matrices)
    assert torch.equal(d6, torch.cat([matrices[:, :, 0], matrices[:, :, 1]], dim=-1))
    assert torch.allclose(rot.rotation_6d_to_matrix(d6), matrices, atol=ATOL)


def test_rotation_6d_to_matrix_orthonormalises_any_input():
    m = rot.rotation_6d_to_matrix(torch.randn(N, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    eye = torch.eye(3, dtype=torch.float64).expand(N, 3, 3)
    assert torch.allclose(m.transpose(-1, -2) @ m, eye, atol=ATOL)
    assert torch.allclose(torch.linalg.det(m), torch.ones(N, dtype=torch.float64), atol=ATOL)


# ----------------------------------------------------------------------------------------------------------- Euler


def _away_from_gimbal_lock(r: Rotation, order: str) -> Rotation:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        middle = r.as_euler(order)[:, 1]
    proper = order[0].lower() == order[2].lower()
    lock_distance = np.minimum(np.abs(middle), np.abs(np.pi - middle)) if proper else np.pi / 2 - np.abs(middle)
    return r[lock_distance > 1e-3]


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_matches_scipy(order):
    r = _away_from_gimbal_lock(random_rotations(300, seed=9), order)
    angles, matrices = t64(r.as_euler(order)), t64(r.as_matrix())
    assert torch.allclose(rot.euler_to_matrix(angles, order), matrices, atol=ATOL)
    assert torch.allclose(rot.matrix_to_euler(matrices, order), angles, atol=1e-9)


@pytest.mark.parametrize("order", ["XYZ", "xyz", "ZYX", "zxz", "YXY"])
def test_euler_round_trip_and_gimbal_lock_zeroes_the_third_angle(order):
    proper = order[0].lower() == order[2].lower()
    angles = t64(np.random.default_rng(10).uniform(-3.0, 3.0, size=(50, 3)))
    angles[:, 1] = angles[:, 1].abs() if proper else angles[:, 1] / 2.0  # inside the middle angle's range
    assert torch.allclose(rot.matrix_to_euler(rot.euler_to_matrix(angles, order), order), angles, atol=1e-9)
    # Gimbal lock: the matrix is still reproduced, with the third angle set to 0 as scipy does.
    locks = (0.0, math.pi) if proper else (math.pi / 2, -math.pi / 2)
    for lock in locks:
        angles[:, 1] = lock
        matrices = rot.euler_to_matrix(angles, order)
        back = rot.matrix_to_euler(matrices, order)
        assert torch.allclose(rot.euler_to_matrix(back, order), matrices, atol=1e-9)
        assert torch.equal(back[:, 2], torch.zeros(50, dtype=torch.float64))


def test_euler_rejects_unknown_orders():
    for order in ["xxy", "XyZ", "xy", "abc"]:
        with pytest.raises(ValueError, match="Euler order"):
            rot.euler_to_matrix(torch.zeros(3), order)


# ------------------------------------------------------------------------------- round trips, edge angles, grads


def test_axis_angle_round_trip_over_the_whole_angle_range():
    angles = torch.cat([torch.logspace(-12, -1, 50, dtype=torch.float64), torch.linspace(0.1, math.pi - 1e-6, 200)])
    aa = random_axes(len(angles), seed=11) * angles[:, None].to(torch.float64)
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    assert torch.allclose(back, aa, rtol=1e-9, atol=1e-9)
    # Tiny angles are recovered to relative precision, not just to an absolute 1e-9.
    assert torch.allclose(back[:50], aa[:50], rtol=1e-9, atol=0.0)


def test_small_angles_match_the_series_of_rodrigues():
    aa = random_axes(20, seed=12) * 1e-9
    k = rot.skew(aa)
    expected = torch.eye(3, dtype=torch.float64) + k + 0.5 * k @ k
    assert torch.allclose(rot.axis_angle_to_matrix(aa), expected, rtol=0.0, atol=1e-20)
    assert torch.allclose(rot.axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_angles_near_and_at_pi():
    axes = random_axes(100, seed=13)
    for angle in (math.pi - 1e-7, math.pi):
        aa = axes * angle
        back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
        assert torch.allclose(back.norm(dim=-1), torch.full((100,), angle, dtype=torch.float64), atol=1e-9)
        # At pi the vector is only defined up to sign: compare the rotations.
        assert torch.allclose(rot.axis_angle_to_matrix(back), rot.axis_angle_to_matrix(aa), atol=1e-9)
        q = rot.axis_angle_to_quaternion(aa)
        assert same_up_to_sign(rot.matrix_to_quaternion(rot.quaternion_to_matrix(q)), q, atol=1e-9)


def test_quaternion_and_6d_round_trips():
    r = random_rotations()
    q = rot.standardize_quaternion(wxyz(r.as_quat()))
    assert torch.allclose(rot.matrix_to_quaternion(rot.quaternion_to_matrix(q)), q, atol=ATOL)
    assert torch.allclose(rot.axis_angle_to_quaternion(rot.quaternion_to_axis_angle(q)), q, atol=ATOL)
    d6 = rot.matrix_to_rotation_6d(t64(r.as_matrix()))
    assert torch.allclose(rot.matrix_to_rotation_6d(rot.rotation_6d_to_matrix(d6)), d6, atol=ATOL)


def test_gradients_are_finite_at_zero_rotation():
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for f in (rot.axis_angle_to_matrix, rot.axis_angle_to_quaternion):
        (grad,) = torch.autograd.grad(f(zero).sum(), zero)
        assert torch.isfinite(grad).all()
    # d R / d aa at 0 is the skew basis: d(sum of W * R)/d aa equals the finite difference of the series.
    weights = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((weights * rot.axis_angle_to_matrix(zero)).sum(), zero)
    expected = torch.stack([(weights * rot.skew(e)).sum() for e in torch.eye(3, dtype=torch.float64)])
    assert torch.allclose(grad, expected, atol=1e-12)

    identity = torch.eye(3, dtype=torch.float64, requires_grad=True)
    unit_q = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    for f, x in [
        (rot.matrix_to_axis_angle, identity),
        (rot.matrix_to_quaternion, identity),
        (rot.quaternion_to_axis_angle, unit_q),
        (lambda q: rot.quaternion_angle_difference(q, unit_q.detach()), unit_q),
    ]:
        (grad,) = torch.autograd.grad(f(x).sum(), x)
        assert torch.isfinite(grad).all(), f


def test_gradcheck_across_the_small_angle_switch():
    aa = torch.tensor([[1e-4, -2e-4, 3e-4], [0.3, -1.0, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    for f in (rot.axis_angle_to_matrix, rot.axis_angle_to_quaternion):
        assert torch.autograd.gradcheck(f, (aa.clone().requires_grad_(),))


# ----------------------------------------------------------------------------------------- dtypes and batch shapes


def _all_conversions(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    q = rot.matrix_to_quaternion(matrix)
    aa = rot.matrix_to_axis_angle(matrix)
    return {
        "aa": aa,
        "aa->R": rot.axis_angle_to_matrix(aa),
        "q": q,
        "q->R": rot.quaternion_to_matrix(q),
        "aa->q": rot.axis_angle_to_quaternion(aa),
        "q->aa": rot.quaternion_to_axis_angle(q),
        "qq": rot.quaternion_multiply(q, q),
        "q*": rot.quaternion_conjugate(q),
        "slerp": rot.quaternion_slerp(q, rot.quaternion_multiply(q, q), 0.25),
        "angle": rot.quaternion_angle_difference(q, rot.quaternion_multiply(q, q)),
        "6d": rot.matrix_to_rotation_6d(matrix),
        "6d->R": rot.rotation_6d_to_matrix(rot.matrix_to_rotation_6d(matrix)),
        "euler": rot.matrix_to_euler(matrix, "ZYX"),
        "euler->R": rot.euler_to_matrix(rot.matrix_to_euler(matrix, "xyz"), "xyz"),
    }


def test_float32_gives_float32_close_to_float64():
    matrices = t64(random_rotations(200, seed=14).as_matrix())
    ref = _all_conversions(matrices)
    got = _all_conversions(matrices.float())
    for name, value in got.items():
        assert value.dtype == torch.float32, name
        assert torch.allclose(value.double(), ref[name], atol=1e-4) or name in ("q", "aa->q", "qq", "slerp"), name
    for name in ("q", "aa->q", "qq", "slerp"):
        assert same_up_to_sign(got[name].double(), ref[name], atol=1e-4), name


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_batch_shapes_are_preserved(batch):
    n = math.prod(batch)
    matrices = t64(random_rotations(n, seed=15).as_matrix()).reshape(*batch, 3, 3)
    outputs = _all_conversions(matrices)
    last = {"aa": (3,), "q": (4,), "6d": (6,), "euler": (3,), "angle": ()}
    for name, value in outputs.items():
        tail = last.get(name, (4,) if name in ("aa->q", "qq", "q*", "slerp") else (3,) if name == "q->aa" else (3, 3))
        assert value.shape == (*batch, *tail), name
    if batch:  # batched results equal the per-element ones
        flat = _all_conversions(matrices.reshape(n, 3, 3))
        for name, value in outputs.items():
            assert torch.allclose(value.reshape(n, *value.shape[len(batch) :]), flat[name], atol=ATOL), name


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        rot.axis_angle_to_matrix(torch.zeros(4))
    with pytest.raises(ValueError, match=r"3, 3"):
        rot.matrix_to_quaternion(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\[\.\.\., 6\]"):
        rot.rotation_6d_to_matrix(torch.zeros(5))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_elementary_rotation_matches_scipy(axis):
    angles = torch.linspace(-4.0, 4.0, 9, dtype=torch.float64)
    expected = Rotation.from_euler("xyz"[axis], angles.numpy()[:, None]).as_matrix()
    np.testing.assert_allclose(rot.elementary_rotation(axis, angles).numpy(), expected, atol=1e-12)
