"""Gaussian parameters, covariances, initialization and PLY files of vision3d.splatting.gaussians against
independent references (scipy rotations, numpy eigen-decompositions, brute-force neighbours, raw bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vision3d.splatting.gaussians import (
    Gaussians,
    covariance_3d,
    gaussians_from_points,
    load_ply,
    mean_neighbour_distance,
    ply_property_names,
    quaternion_to_rotation,
    random_gaussians_in_box,
    save_ply,
)
from vision3d.splatting.sh import C0, sh0_to_rgb


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_quaternions(n: int, seed: int = 0) -> torch.Tensor:
    """Unnormalized (w, x, y, z), norms spread over six orders of magnitude."""
    q = torch.randn(n, 4, generator=generator(seed), dtype=torch.float64)
    return q * torch.logspace(-3, 3, n, dtype=torch.float64)[:, None]


def random_gaussians(n: int, sh_degree: int, seed: int = 0) -> Gaussians:
    g = generator(seed)
    k = (sh_degree + 1) ** 2
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 3,
        quaternions=torch.randn(n, 4, generator=g),
        opacity_logits=torch.randn(n, generator=g),
        sh=torch.randn(n, k, 3, generator=g),
    )


def write_ply(path: Path, names: list[str], values: np.ndarray, header: list[str] | None = None) -> Path:
    """A PLY file written independently of save_ply: ``values [N, P]`` as little-endian float32 rows."""
    lines = header or ["ply", "format binary_little_endian 1.0", f"element vertex {values.shape[0]}"]
    lines = lines + [f"property float {name}" for name in names] + ["end_header"]
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii") + np.asarray(values, dtype="<f4").tobytes())
    return path


# ----------------------------------------------------------------------------------------------------------------
# Rotation and covariance


def test_quaternion_to_rotation_matches_scipy_and_is_a_rotation():
    q = random_quaternions(100)
    rotations = quaternion_to_rotation(q)
    expected = Rotation.from_quat(q.numpy(), scalar_first=True).as_matrix()
    np.testing.assert_allclose(rotations.numpy(), expected, rtol=0, atol=1e-12)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), eye, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(100, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(quaternion_to_rotation(-q), rotations, rtol=0, atol=1e-12)  # q and -q: one rotation
    assert torch.equal(quaternion_to_rotation(torch.tensor([[2.0, 0, 0, 0]])), torch.eye(3)[None])
    # A quarter turn about z maps x to y.
    quarter = torch.tensor([[np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]], dtype=torch.float64)
    torch.testing.assert_close(quaternion_to_rotation(quarter)[0] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64), rtol=0, atol=1e-15)  # fmt: skip


def test_quaternion_errors():
    with pytest.raises(ValueError, match="1 zero quaternion"):
        quaternion_to_rotation(torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"quaternions must have shape \[N, 4\]"):
        quaternion_to_rotation(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="non-finite"):
        quaternion_to_rotation(torch.tensor([[1.0, float("inf"), 0, 0]]))


def test_covariance_is_rotated_squared_scales():
    n = 50
    log_scales = torch.randn(n, 3, generator=generator(1), dtype=torch.float64)
    q = random_quaternions(n, seed=2)
    sigma = covariance_3d(log_scales, q)
    s = np.exp(log_scales.numpy())
    r = Rotation.from_quat(q.numpy(), scalar_first=True).as_matrix()
    expected = np.einsum("nij,nj,nkj->nik", r, s**2, r)  # R diag(s^2) R^T
    np.testing.assert_allclose(sigma.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(sigma, sigma.transpose(1, 2))  # exactly symmetric
    np.testing.assert_allclose(np.linalg.eigvalsh(sigma.numpy()), np.sort(s**2, axis=1), rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_covariance_stays_symmetric_psd_for_extreme_parameters(dtype):
    g = generator(3)
    n = 200
    log_scales = (torch.randint(0, 3, (n, 3), generator=g) - 1).to(dtype) * 10  # every mix of -10, 0, +10
    q = random_quaternions(n, seed=4).to(dtype)
    sigma = covariance_3d(log_scales, q)
    assert torch.equal(sigma, sigma.transpose(1, 2)) and torch.isfinite(sigma).all()
    eigenvalues = np.linalg.eigvalsh(sigma.double().numpy())
    largest = eigenvalues[:, -1:]
    eps = torch.finfo(dtype).eps
    assert (eigenvalues >= -10 * eps * largest).all()  # PSD up to rounding relative to the largest eigenvalue
    # Eigenvalues are s^2, to the accuracy rounding allows (an absolute error of a few eps times the largest).
    squared_scales = np.sort(np.exp(2 * log_scales.double().numpy()), axis=1)
    assert (np.abs(eigenvalues - squared_scales) <= 10 * eps * largest + 1e-5 * squared_scales).all()
    # Gradients through exp, normalization and the product are finite too.
    log_scales.requires_grad_()
    q.requires_grad_()
    weights = torch.randn(n, 3, 3, generator=g, dtype=dtype)
    (covariance_3d(log_scales, q) * weights).sum().backward()
    assert torch.isfinite(log_scales.grad).all() and torch.isfinite(q.grad).all()
    assert (log_scales.grad != 0).any() and (q.grad != 0).any()


def test_covariance_shape_errors():
    with pytest.raises(ValueError, match=r"log_scales must have shape \[N, 3\]"):
        covariance_3d(torch.zeros(4, 2), torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"quaternions must have shape \[4, 4\]"):
        covariance_3d(torch.zeros(4, 3), torch.ones(5, 4))
    with pytest.raises(ValueError, match="log_scales has non-finite"):
        covariance_3d(torch.full((1, 3), float("nan")), torch.ones(1, 4))


# ----------------------------------------------------------------------------------------------------------------
# The container


def test_container_accessors():
    gaussians = random_gaussians(10, sh_degree=2)
    assert len(gaussians) == 10 and gaussians.sh_degree == 2
    torch.testing.assert_close(gaussians.opacities, 1 / (1 + torch.exp(-gaussians.opacity_logits)))
    assert torch.equal(gaussians.scales, torch.exp(gaussians.log_scales))
    assert torch.equal(gaussians.covariances(), covariance_3d(gaussians.log_scales, gaussians.quaternions))
    params = gaussians.parameters()
    assert list(params) == ["means", "log_scales", "quaternions", "opacity_logits", "sh"]
    assert all(params[name] is getattr(gaussians, name) for name in params)
    assert gaussians.check() is gaussians
    assert gaussians.requires_grad_() is gaussians and all(t.requires_grad for t in params.values())
    detached = gaussians.detach()
    assert not any(t.requires_grad for t in detached.parameters().values())
    assert all(detached.parameters()[name].data_ptr() == params[name].data_ptr() for name in params)
    doubled = gaussians.to("cpu", torch.float64)
    assert all(t.dtype == torch.float64 and t.device.type == "cpu" for t in doubled.parameters().values())


def test_index_and_cat():
    gaussians = random_gaussians(6, sh_degree=1).requires_grad_()
    mask = torch.tensor([True, False, True, False, False, True])
    picked = gaussians.index(mask)
    assert len(picked) == 3 and torch.equal(picked.sh, gaussians.sh[mask])
    repeated = gaussians.index(torch.tensor([5, 5, 0]))
    assert torch.equal(repeated.means, gaussians.means[[5, 5, 0]])
    joined = picked.cat(repeated)
    assert len(joined) == 6 and torch.equal(joined.quaternions[3:], repeated.quaternions)
    joined.means.sum().backward()  # the selection stays in the graph: row 5 is picked once and cloned twice
    assert gaussians.means.grad[:, 0].tolist() == [2.0, 0, 1, 0, 0, 3]
    with pytest.raises(ValueError, match=r"boolean mask must have shape \[6\]"):
        gaussians.index(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="integer tensor"):
        gaussians.index(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="4 and 9 SH coefficients"):
        gaussians.cat(random_gaussians(2, sh_degree=2))


def test_check_names_the_bad_field():
    good = random_gaussians(4, sh_degree=1)
    cases = {
        "means": (torch.zeros(4, 2), r"Gaussians.means must have shape \[N, 3\]"),
        "log_scales": (torch.zeros(5, 3), r"Gaussians.log_scales must have shape \[4, 3\]"),
        "quaternions": (torch.zeros(4, 4), "zero quaternion"),
        "opacity_logits": (torch.zeros(4, 1), r"Gaussians.opacity_logits must have shape \[4\]"),
        "sh": (torch.zeros(4, 5, 3), "Gaussians.sh: .*1, 4, 9 or 16"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            Gaussians(**{**good.parameters(), name: value}).check()
    nan_sh = good.sh.clone()
    nan_sh[2, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="Gaussians.sh has non-finite"):
        Gaussians(**{**good.parameters(), "sh": nan_sh}).check()
    with pytest.raises(ValueError, match="one dtype and device"):
        Gaussians(**{**good.parameters(), "means": good.means.double()}).check()


# ----------------------------------------------------------------------------------------------------------------
# Initialization


def brute_force_mean_neighbour_distance(points: np.ndarray, k: int = 3) -> np.ndarray:
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return np.sort(distances, axis=1)[:, 1 : k + 1].mean(axis=1)  # column 0 is the point itself


def test_nearest_neighbour_scales_equal_brute_force():
    points = torch.randn(300, 3, generator=generator(5), dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.1])
    expected = brute_force_mean_neighbour_distance(points.numpy())
    np.testing.assert_allclose(mean_neighbour_distance(points).numpy(), expected, rtol=1e-12)
    # Tiny chunks (a few rows at a time) give the same.
    np.testing.assert_allclose(mean_neighbour_distance(points, max_chunk_elements=1000).numpy(), expected, rtol=1e-12)
    gaussians = gaussians_from_points(points)
    np.testing.assert_allclose(gaussians.scales.numpy(), np.repeat(expected[:, None], 3, 1), rtol=1e-12)
    # Fewer than 4 points: all the others are the neighbours.
    three = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 3, 0]])
    expected_three = torch.tensor([2.0, (1 + 10**0.5) / 2, (3 + 10**0.5) / 2])
    torch.testing.assert_close(mean_neighbour_distance(three), expected_three)


def test_gaussians_from_points_initial_values():
    points = torch.randn(20, 3, generator=generator(6))
    colors = torch.rand(20, 3, generator=generator(7))
    gaussians = gaussians_from_points(points, colors, sh_degree=2, initial_opacity=0.1).check()
    assert torch.equal(gaussians.means, points) and gaussians.means is not points
    assert gaussians.sh.shape == (20, 9, 3) and gaussians.sh_degree == 2
    torch.testing.assert_close(sh0_to_rgb(gaussians.sh[:, 0]), colors)
    assert torch.all(gaussians.sh[:, 1:] == 0)
    assert torch.equal(gaussians.quaternions, torch.tensor([1.0, 0, 0, 0]).expand(20, 4))
    torch.testing.assert_close(gaussians.opacities, torch.full((20,), 0.1))
    assert torch.all(gaussians.log_scales == gaussians.log_scales[:, :1])  # isotropic
    grey = gaussians_from_points(points, sh_degree=0)
    assert grey.sh.shape == (20, 1, 3) and torch.all(grey.sh == 0)  # 0.5 grey is the zero DC coefficient
    duplicated = gaussians_from_points(torch.zeros(5, 3))  # all neighbours at distance 0: a clamped, finite scale
    assert torch.isfinite(duplicated.log_scales).all()
    with pytest.raises(ValueError, match="at least 2 points"):
        gaussians_from_points(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"colors must have shape \[20, 3\]"):
        gaussians_from_points(points, colors[:3])
    with pytest.raises(ValueError, match="initial_opacity"):
        gaussians_from_points(points, initial_opacity=1.0)


def test_random_gaussians_in_box_are_seeded_and_inside():
    a = random_gaussians_in_box(500, low=[-1.0, 0.0, 2.0], high=[1.0, 0.5, 3.0], generator=generator(8))
    b = random_gaussians_in_box(500, low=[-1.0, 0.0, 2.0], high=[1.0, 0.5, 3.0], generator=generator(8))
    assert all(torch.equal(a.parameters()[name], b.parameters()[name]) for name in a.parameters())
    assert a.check().sh.shape == (500, 16, 3)
    assert (a.means >= torch.tensor([-1.0, 0.0, 2.0])).all() and (a.means <= torch.tensor([1.0, 0.5, 3.0])).all()
    rgb = sh0_to_rgb(a.sh[:, 0])
    assert (rgb >= -1e-6).all() and (rgb <= 1 + 1e-6).all() and rgb.std() > 0.2
    c = random_gaussians_in_box(500, low=-1.0, high=1.0, sh_degree=0, generator=generator(9))
    assert c.sh_degree == 0 and not torch.equal(a.means, c.means)
    with pytest.raises(ValueError, match="low < high"):
        random_gaussians_in_box(10, low=1.0, high=[2.0, 0.0, 2.0])


# ----------------------------------------------------------------------------------------------------------------
# PLY files


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path, sh_degree):
    gaussians = random_gaussians(37, sh_degree, seed=sh_degree)
    path = tmp_path / "scene.ply"
    save_ply(path, gaussians)
    loaded = load_ply(path)
    assert loaded.sh_degree == sh_degree
    for name, tensor in gaussians.parameters().items():
        assert loaded.parameters()[name].dtype == torch.float32 and torch.equal(loaded.parameters()[name], tensor), name
    k = (sh_degree + 1) ** 2
    assert path.stat().st_size == len(path.read_bytes().split(b"end_header\n")[0]) + 11 + 37 * 4 * (17 + 3 * k - 3)


def test_ply_header_is_the_standard_property_list(tmp_path):
    path = tmp_path / "scene.ply"
    save_ply(path, random_gaussians(5, sh_degree=1))
    header = path.read_bytes().split(b"end_header\n")[0].decode("ascii")
    properties = (
        "x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 f_rest_1 f_rest_2 f_rest_3 f_rest_4 f_rest_5 f_rest_6 f_rest_7 "
        "f_rest_8 opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3"
    ).split()
    expected = "ply\nformat binary_little_endian 1.0\nelement vertex 5\n"
    expected += "".join(f"property float {name}\n" for name in properties)
    assert header == expected
    assert ply_property_names(4) == properties and len(ply_property_names(16)) == 62


def test_ply_f_rest_is_channel_major(tmp_path):
    # One degree-1 Gaussian with sh[0, k, c] = 10 k + c: red of bands >= 1 first, then green, then blue.
    sh = (10 * torch.arange(4.0)[:, None] + torch.arange(3.0)[None, :])[None]
    gaussians = Gaussians(
        means=torch.tensor([[1.0, 2.0, 3.0]]),
        log_scales=torch.tensor([[-1.0, -2.0, -3.0]]),
        quaternions=torch.tensor([[0.5, 0.1, 0.2, 0.3]]),
        opacity_logits=torch.tensor([0.7]),
        sh=sh,
    )
    path = tmp_path / "one.ply"
    save_ply(path, gaussians)
    values = np.frombuffer(path.read_bytes().split(b"end_header\n")[1], dtype="<f4")
    expected = [1, 2, 3, 0, 0, 0, 0, 1, 2, 10, 20, 30, 11, 21, 31, 12, 22, 32, 0.7, -1, -2, -3, 0.5, 0.1, 0.2, 0.3]
    np.testing.assert_array_equal(values, np.array(expected, dtype=np.float32))


def test_ply_properties_in_any_order_and_extra_ones(tmp_path):
    gaussians = random_gaussians(9, sh_degree=2, seed=4)
    path = tmp_path / "scene.ply"
    save_ply(path, gaussians)
    names = ply_property_names(9)
    values = np.frombuffer(path.read_bytes().split(b"end_header\n")[1], dtype="<f4").reshape(9, len(names))
    order = np.random.default_rng(0).permutation(len(names))
    shuffled = write_ply(
        tmp_path / "shuffled.ply",
        [names[i] for i in order] + ["extra"],
        np.concatenate([values[:, order], np.ones((9, 1))], axis=1),
        header=["ply", "format binary_little_endian 1.0", "comment made by hand", "element vertex 9"],
    )
    loaded = load_ply(shuffled)
    assert all(torch.equal(loaded.parameters()[name], t) for name, t in gaussians.parameters().items())


def test_ply_max_sh_degree_pads_or_drops_bands(tmp_path):
    gaussians = random_gaussians(4, sh_degree=1)
    path = tmp_path / "scene.ply"
    save_ply(path, gaussians)
    padded = load_ply(path, max_sh_degree=3)
    assert padded.sh_degree == 3 and torch.equal(padded.sh[:, :4], gaussians.sh) and torch.all(padded.sh[:, 4:] == 0)
    assert torch.equal(load_ply(path, max_sh_degree=0).sh, gaussians.sh[:, :1])


def test_save_ply_refuses_invalid_gaussians(tmp_path):
    bad = random_gaussians(3, sh_degree=0)
    bad.means[1, 1] = float("inf")
    with pytest.raises(ValueError, match="Gaussians.means has non-finite"):
        save_ply(tmp_path / "bad.ply", bad)


def malformed_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error message must say)."""
    names = ply_property_names(4)
    values = np.random.default_rng(1).standard_normal((3, len(names))).astype(np.float32)
    good = write_ply(tmp_path / "good.ply", names, values)
    data = good.read_bytes()
    nan_values = values.copy()
    nan_values[1, names.index("opacity")] = np.nan
    zero_rotation = values.copy()
    zero_rotation[2, -4:] = 0
    missing = [name for name in names if name != "scale_1"]
    five_rest = [name for name in names if name not in ("f_rest_5", "f_rest_6", "f_rest_7", "f_rest_8")]
    gap = [name if name != "f_rest_8" else "f_rest_9" for name in names]

    def raw(name: str, content: bytes) -> Path:
        (tmp_path / name).write_bytes(content)
        return tmp_path / name

    header = ["ply", "format binary_little_endian 1.0"]
    return {
        "magic": (raw("magic.ply", b"plx" + data[3:]), "not a PLY file"),
        "ascii": (raw("ascii.ply", data.replace(b"binary_little_endian", b"ascii", 1)), "format must be"),
        "big endian": (raw("big.ply", data.replace(b"binary_little_endian", b"binary_big_endian", 1)), "format"),
        "missing": (write_ply(tmp_path / "missing.ply", missing, values[:, :-1]), "missing vertex properties"),
        "truncated": (raw("truncated.ply", data[:-5]), "truncated"),
        "trailing": (raw("trailing.ply", data + b"\0\0\0\0"), "trailing bytes"),
        "f_rest count": (write_ply(tmp_path / "rest.ply", five_rest, values[:, :-4]), "5 f_rest properties"),
        "f_rest gap": (write_ply(tmp_path / "gap.ply", gap, values), "numbered 0..8"),
        "nan": (write_ply(tmp_path / "nan.ply", names, nan_values), "'opacity' has 1 non-finite"),
        "zero rotation": (write_ply(tmp_path / "zero.ply", names, zero_rotation), "zero quaternion"),
        "double": (raw("double.ply", data.replace(b"property float x\n", b"property double x\n")), "only float32"),
        "list": (raw("list.ply", data.replace(b"end_header", b"element face 0\nend_header")), "only one PLY element"),
        "no end": (raw("noend.ply", b"ply\nformat binary_little_endian 1.0\n"), "no end_header"),
        "count": (write_ply(tmp_path / "count.ply", names, values, [*header, "element vertex -3"]), "vertex <count"),
        "duplicate": (write_ply(tmp_path / "dup.ply", [*names, "x"], values), "appears twice"),
        "empty": (raw("empty.ply", b""), "not a PLY file"),
    }


def test_malformed_ply_files_raise_value_errors_naming_the_file(tmp_path):
    for case, (path, message) in malformed_files(tmp_path).items():
        with pytest.raises(ValueError, match=message) as error:
            load_ply(path)
        assert str(path) in str(error.value), case
    assert len(load_ply(tmp_path / "good.ply")) == 3
    with pytest.raises(FileNotFoundError):
        load_ply(tmp_path / "absent.ply")


def test_empty_scene_round_trip(tmp_path):
    empty = random_gaussians(0, sh_degree=3)
    save_ply(tmp_path / "empty.ply", empty)
    loaded = load_ply(tmp_path / "empty.ply")
    assert len(loaded) == 0 and loaded.sh.shape == (0, 16, 3)


def test_c0_sanity():
    assert abs(C0 - 0.5 / np.sqrt(np.pi)) < 1e-16
