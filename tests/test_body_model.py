"""Tests of vision3d.body.lbs and vision3d.body.model on SYNTHETIC SMPL-like models (the SMPL license forbids
shipping the real files): the SMPL equations against a naive per-vertex numpy implementation, rigid-motion
properties, gradients, the safe .npz/.pkl loader (chumpy-pickled files without chumpy, malicious pickles,
malformed files) and, when installed, the smplx package."""

from __future__ import annotations

import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.spatial.transform import Rotation

from vision3d.body import lbs as lbs_module
from vision3d.body.kinematics import forward_kinematics_axis_angle
from vision3d.body.lbs import lbs, pose_correctives, regress_joints, skin
from vision3d.body.model import BodyModel, random_model_arrays
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.skeleton import PARENTS

SMPL_PARENTS = PARENTS
ROOT_MARKER = 4294967295  # uint32(-1): the root's parent in the official kintree_table
N_VERTS = 6890
N_FACES = 13776


def random_arrays(seed: int, n_verts: int = N_VERTS, n_betas: int = 10) -> dict[str, np.ndarray]:
    return random_model_arrays(seed, n_verts, N_FACES if n_verts == N_VERTS else 96, n_betas)


class FakeCh:
    """Pickles like chumpy.ch.Ch: the wrapped array under 'x' of the state dict (plus chumpy-ish clutter)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getstate__(self) -> dict:
        # chumpy.ch.Ch.__getstate__ is its __dict__ minus _parents and _cache
        return {
            "x": self.x,
            "_dirty_vars": {"x"},
            "_itr": None,
            "_make_dense": False,
            "_make_sparse": False,
            "_depends_on_deps": {},
        }


class Py2StylePickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official files: byte strings (array data, dict keys) as py2
    ``str`` opcodes, which Python 3 reads back as latin1 text, and globals under their old module names."""

    RENAMES = {  # noqa: RUF012
        "numpy._core.multiarray": "numpy.core.multiarray",
        "scipy.sparse._csc": "scipy.sparse.csc",
        "builtins": "__builtin__",
        "copyreg": "copy_reg",
    }
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        module = self.RENAMES.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_chumpy_pkl(path: Path, arrays: dict[str, np.ndarray], protocol: int = 2, py2: bool = False) -> None:
    """Like the official v1.x files: chumpy-wrapped arrays, a scipy sparse J_regressor, extra keys."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    FakeCh.__module__, FakeCh.__qualname__, FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    module.Ch, package.ch = FakeCh, module
    data = dict(arrays)
    data["shapedirs"] = FakeCh(arrays["shapedirs"])
    data["v_template"] = FakeCh(arrays["v_template"])
    data["J_regressor"] = sparse.csc_matrix(arrays["J_regressor"])
    data["J"] = FakeCh(arrays["J_regressor"] @ arrays["v_template"])
    data["bs_style"], data["bs_type"] = "lbs", "lrotmin"
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        with open(path, "wb") as handle:
            if py2:
                data = {
                    key.encode(): value.encode() if isinstance(value, str) else value for key, value in data.items()
                }
                Py2StylePickler(handle, protocol=2).dump(data)
            else:
                pickle.dump(data, handle, protocol=protocol)
    finally:  # loading must prove chumpy is not needed
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
        FakeCh.__module__, FakeCh.__qualname__, FakeCh.__name__ = __name__, "FakeCh", "FakeCh"


@pytest.fixture(scope="module")
def big() -> dict[str, np.ndarray]:
    return random_arrays(0)


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    return random_arrays(1, n_verts=50)


@pytest.fixture(scope="module")
def model64(big: dict) -> BodyModel:
    return BodyModel.from_arrays(big, dtype=torch.float64, device="cpu")


def random_inputs(seed: int, batch: int, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(batch, 10, generator=gen, dtype=dtype),
        "global_orient": torch.randn(batch, 3, generator=gen, dtype=dtype),
        "body_pose": 0.5 * torch.randn(batch, 69, generator=gen, dtype=dtype),
        "transl": torch.randn(batch, 3, generator=gen, dtype=dtype),
    }


def reference_smpl(arrays: dict, betas: np.ndarray, pose: np.ndarray, transl: np.ndarray, correctives: bool):
    """The SMPL equation for ONE body, written naively per vertex and per joint (independent of vision3d)."""
    parents = [int(p) for p in arrays["kintree_table"][0].astype(np.int64)]
    n_verts, n_joints = arrays["v_template"].shape[0], 24
    shaped = arrays["v_template"] + np.einsum("vcb,b->vc", arrays["shapedirs"], betas)
    rest_joints = arrays["J_regressor"] @ shaped
    rot = Rotation.from_rotvec(pose.reshape(24, 3)).as_matrix()
    feature = np.concatenate([(rot[k] - np.eye(3)).ravel() for k in range(1, n_joints)])
    absolute = []
    for k in range(n_joints):
        local = np.eye(4)
        local[:3, :3] = rot[k]
        local[:3, 3] = rest_joints[k] - (rest_joints[parents[k]] if k > 0 else 0.0)
        absolute.append(local if k == 0 else absolute[parents[k]] @ local)
    relative = []
    for k in range(n_joints):
        unshift = np.eye(4)
        unshift[:3, 3] = -rest_joints[k]
        relative.append(absolute[k] @ unshift)
    vertices = np.zeros((n_verts, 3))
    skinned_correctives = np.zeros((n_verts, 3))
    for i in range(n_verts):
        offset = arrays["posedirs"][i] @ feature  # p_i(theta) = P_i vec(R - I)
        point = shaped[i] + (offset if correctives else 0.0)
        blend = sum(arrays["weights"][i, k] * relative[k] for k in range(n_joints))
        vertices[i] = (blend @ np.append(point, 1.0))[:3] + transl
        skinned_correctives[i] = blend[:3, :3] @ offset
    joints = np.array([a[:3, 3] for a in absolute]) + transl
    return vertices, joints, skinned_correctives


# ----------------------------------------------------------------------------------------------------------------
# The SMPL function


def test_zero_pose_gives_template_and_shaped_template(model64: BodyModel, big: dict):
    out = model64()
    np.testing.assert_allclose(out.vertices[0].numpy(), big["v_template"], atol=1e-12)
    np.testing.assert_allclose(out.joints[0].numpy(), big["J_regressor"] @ big["v_template"], atol=1e-12)
    np.testing.assert_allclose(out.transforms[0].numpy(), np.broadcast_to(np.eye(4), (24, 4, 4)), atol=1e-12)
    betas = torch.randn(3, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    shaped = big["v_template"] + np.einsum("vcb,nb->nvc", big["shapedirs"], betas.numpy())
    out = model64(betas=betas)
    np.testing.assert_allclose(out.vertices.numpy(), shaped, atol=1e-12)
    np.testing.assert_allclose(out.v_shaped.numpy(), shaped, atol=1e-12)
    np.testing.assert_allclose(out.joints.numpy(), np.einsum("jv,nvc->njc", big["J_regressor"], shaped), atol=1e-12)


def test_root_rotation_is_rigid_about_the_root_joint(model64: BodyModel):
    inputs = random_inputs(3, batch=4)
    inputs.pop("transl")
    rest_orient = {**inputs, "global_orient": torch.zeros(4, 3, dtype=torch.float64)}
    unrotated, rotated = model64(**rest_orient), model64(**inputs)
    rot = axis_angle_to_matrix(inputs["global_orient"])  # [B, 3, 3]
    root = unrotated.joints[:, :1, :]  # with no root rotation the root sits at its rest position

    def about_root(points: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nab,nvb->nva", rot, points - root) + root

    torch.testing.assert_close(rotated.vertices, about_root(unrotated.vertices), atol=1e-10, rtol=0)
    torch.testing.assert_close(rotated.joints, about_root(unrotated.joints), atol=1e-10, rtol=0)


def test_transl_translates_vertices_joints_and_transforms(model64: BodyModel):
    inputs = random_inputs(4, batch=2)
    moved = model64(**inputs)
    still = model64(**{**inputs, "transl": None})
    shift = inputs["transl"][:, None, :]
    torch.testing.assert_close(moved.vertices, still.vertices + shift, atol=1e-12, rtol=0)
    torch.testing.assert_close(moved.joints, still.joints + shift, atol=1e-12, rtol=0)
    # transforms are the G_k actually applied: re-skinning the corrected rest mesh reproduces the vertices
    rest = moved.v_shaped + pose_correctives(model64.posedirs, axis_angle_to_matrix(moved.full_pose.view(2, 24, 3)))
    torch.testing.assert_close(skin(rest, model64.weights, moved.transforms), moved.vertices, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 5])
def test_matches_naive_per_vertex_smpl(small: dict, dtype: torch.dtype, batch: int):
    model = BodyModel.from_arrays(small, dtype=dtype, device="cpu")
    inputs = random_inputs(5 + batch, batch, dtype)
    full = model(**inputs)
    plain = model(**inputs, pose_correctives=False)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert (
        full.vertices.dtype == dtype and full.vertices.shape == (batch, 50, 3) and full.joints.shape == (batch, 24, 3)
    )
    for n in range(batch):
        args = [inputs[k][n].double().numpy() for k in ("betas", "global_orient", "body_pose", "transl")]
        pose = np.concatenate(args[1:3])
        vertices, joints, skinned = reference_smpl(small, args[0], pose, args[3], correctives=True)
        plain_vertices, _, _ = reference_smpl(small, args[0], pose, args[3], correctives=False)
        np.testing.assert_allclose(full.vertices[n].double().numpy(), vertices, atol=tol, rtol=0)
        np.testing.assert_allclose(full.joints[n].double().numpy(), joints, atol=tol, rtol=0)
        np.testing.assert_allclose(plain.vertices[n].double().numpy(), plain_vertices, atol=tol, rtol=0)
        # plain LBS differs from the full model only by the skinned corrective term
        np.testing.assert_allclose((full.vertices[n] - plain.vertices[n]).double().numpy(), skinned, atol=tol, rtol=0)
    torch.testing.assert_close(full.joints, plain.joints, atol=0, rtol=0)


def test_lbs_function_matches_module(small: dict):
    model = BodyModel.from_arrays(small, dtype=torch.float64, device="cpu")
    inputs = random_inputs(11, batch=3)
    rotations = axis_angle_to_matrix(torch.cat([inputs["global_orient"], inputs["body_pose"]], 1).view(3, 24, 3))
    out = lbs(
        inputs["betas"],
        rotations,
        model.v_template,
        model.shapedirs,
        model.posedirs,
        model.J_regressor,
        SMPL_PARENTS,
        model.weights,
    )
    expected = model(**{**inputs, "transl": None})
    torch.testing.assert_close(out.vertices, expected.vertices, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.transforms, expected.transforms, atol=1e-12, rtol=0)
    # pose correctives accept the 23 non-root rotations as well as all 24
    torch.testing.assert_close(
        pose_correctives(model.posedirs, rotations[:, 1:]), pose_correctives(model.posedirs, rotations), atol=0, rtol=0
    )


@pytest.mark.parametrize("which", ["synthetic SMPL-sized", "default"])
def test_mesh_free_fk_equals_the_body_model_joints(model64: BodyModel, which: str):
    """The README's claim: forward kinematics on J(beta) alone gives the full model's joints."""
    model = BodyModel.default(dtype=torch.float64, device="cpu") if which == "default" else model64
    gen = torch.Generator().manual_seed(12)
    betas = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    pose = 0.8 * torch.randn(6, 24, 3, generator=gen, dtype=torch.float64)
    transl = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    out = model(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:].reshape(6, 69), transl=transl)
    rest_joints = regress_joints(model.J_regressor, out.v_shaped)  # J(beta), regressed from the shaped mesh
    fk_joints, _ = forward_kinematics_axis_angle(pose, rest_joints, SMPL_PARENTS, transl)
    torch.testing.assert_close(fk_joints, out.joints, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", ["betas", "global_orient", "body_pose", "transl"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_refused_naming_the_argument(model64: BodyModel, name: str, bad: float):
    inputs = random_inputs(13, batch=3)
    inputs[name][1, 0] = bad
    with pytest.raises(ValueError, match=rf"^{name} contains NaN or infinite values"):
        model64(**inputs)
    matrices = {"global_orient": axis_angle_to_matrix(inputs["global_orient"])}
    matrices["body_pose"] = axis_angle_to_matrix(inputs["body_pose"].view(3, 23, 3))
    with pytest.raises(ValueError, match=name):
        model64(**{**inputs, **matrices}, pose2rot=False)
    if name != "betas":  # two bad inputs: both named
        inputs["betas"][0, 0] = float("nan")
        with pytest.raises(ValueError, match=f"^betas, {name} contain NaN"):
            model64(**inputs)


def test_regressed_joint_arrays_follow_the_buffers(big: dict):
    """J_regressor T and J_regressor S are cached; a change of dtype, an in-place edit or load_state_dict
    must be seen by the next forward pass."""
    model = BodyModel.from_arrays(big, dtype=torch.float64, device="cpu")
    inputs = {k: v.float() for k, v in random_inputs(14, batch=2).items()}
    model(**{k: v.double() for k, v in inputs.items()})  # fills the cache in float64
    model.float()
    fresh = BodyModel.from_arrays(big, dtype=torch.float32, device="cpu")
    torch.testing.assert_close(model(**inputs).joints, fresh(**inputs).joints, atol=1e-6, rtol=0)
    with torch.no_grad():
        model.v_template += 0.25
    torch.testing.assert_close(model(**inputs).joints, fresh(**inputs).joints + 0.25, atol=1e-5, rtol=0)
    model.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(model(**inputs).joints, fresh(**inputs).joints, atol=1e-6, rtol=0)


@pytest.mark.parametrize("block_bytes", [1, 5000, 1 << 20])
def test_skinning_by_blocks_and_with_autograd_equals_the_direct_blend(monkeypatch, block_bytes: int):
    """skin() against the blend written out with einsum, for leading batch dimensions, shared and per-body
    weights, with and without autograd, and blocks that do not divide the vertex count."""
    monkeypatch.setattr(lbs_module, "SKIN_CHUNK_BYTES", block_bytes)
    gen = torch.Generator().manual_seed(15)
    n_verts, n_joints = 53, 24
    vertices = torch.randn(2, 3, n_verts, 3, generator=gen, dtype=torch.float64)
    transforms = torch.randn(2, 3, n_joints, 4, 4, generator=gen, dtype=torch.float64)
    shared = torch.rand(n_verts, n_joints, generator=gen, dtype=torch.float64)
    per_body = torch.rand(2, 3, n_verts, n_joints, generator=gen, dtype=torch.float64)
    for weights in (shared, per_body):
        blend = torch.einsum("...vk,...kab->...vab", weights.expand(2, 3, n_verts, n_joints), transforms)
        expected = torch.einsum("...vab,...vb->...va", blend[..., :3, :3], vertices) + blend[..., :3, 3]
        torch.testing.assert_close(skin(vertices, weights, transforms), expected, atol=1e-12, rtol=0)
        points = vertices.clone().requires_grad_()
        skinned = skin(points, weights, transforms)
        torch.testing.assert_close(skinned, expected, atol=1e-12, rtol=0)
        (grad,) = torch.autograd.grad(skinned.square().sum(), points)
        (expected_grad,) = torch.autograd.grad(
            (torch.einsum("...vab,...vb->...va", blend[..., :3, :3], points) + blend[..., :3, 3]).square().sum(), points
        )
        torch.testing.assert_close(grad, expected_grad, atol=1e-10, rtol=0)
    assert skin(vertices[0, 0], shared, transforms[0, 0]).shape == (n_verts, 3)  # no batch dimension at all


def test_gradients_flow_to_betas_and_pose(model64: BodyModel):
    inputs = {k: v.requires_grad_() for k, v in random_inputs(6, batch=2).items()}
    out = model64(**inputs)
    (out.vertices.square().sum() + out.joints.square().sum()).backward()
    for name in ("betas", "global_orient", "body_pose", "transl"):
        grad = inputs[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_gradient_is_finite_at_the_rest_pose(model64: BodyModel):
    pose = torch.zeros(1, 69, dtype=torch.float64, requires_grad=True)
    model64(body_pose=pose).vertices.sum().backward()
    assert torch.isfinite(pose.grad).all()


def test_rotation_matrix_input_equals_axis_angle(model64: BodyModel):
    inputs = random_inputs(7, batch=5)
    reference = model64(**inputs)
    go = axis_angle_to_matrix(inputs["global_orient"])
    bp = axis_angle_to_matrix(inputs["body_pose"].view(5, 23, 3))
    for global_orient in (go[:, None], go):
        out = model64(
            betas=inputs["betas"], global_orient=global_orient, body_pose=bp, transl=inputs["transl"], pose2rot=False
        )
        torch.testing.assert_close(out.vertices, reference.vertices, atol=1e-12, rtol=0)
        torch.testing.assert_close(out.joints, reference.joints, atol=1e-12, rtol=0)
        assert out.full_pose.shape == (5, 24, 3, 3)
    assert reference.full_pose.shape == (5, 72)


def test_float32_model_and_batch_broadcast(big: dict, model64: BodyModel):
    model32 = BodyModel.from_arrays(big, dtype=torch.float32, device="cpu")
    inputs = random_inputs(8, batch=5)
    inputs["betas"] = inputs["betas"][:1]  # one shape for five poses
    out32, out64 = model32(**inputs), model64(**inputs)
    assert out32.vertices.dtype == torch.float32 and out32.vertices.shape == (5, N_VERTS, 3)
    torch.testing.assert_close(out32.vertices.double(), out64.vertices, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="batch"):
        model64(betas=torch.zeros(2, 10), body_pose=torch.zeros(3, 69))
    with pytest.raises(ValueError, match="body_pose"):
        model64(body_pose=torch.zeros(2, 68))
    with pytest.raises(ValueError, match="global_orient"):
        model64(global_orient=torch.zeros(2, 3), pose2rot=False)
    with pytest.raises(ValueError, match="transl"):
        model64(transl=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="betas"):
        model64(betas=torch.zeros(2, 11))


# ----------------------------------------------------------------------------------------------------------------
# Loading


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory, big: dict) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("smpl")
    paths = {"npz": folder / "model.npz", "pkl": folder / "model.pkl"}
    np.savez(paths["npz"], **big)
    write_chumpy_pkl(paths["pkl"], big)
    return paths


def test_npz_and_chumpy_pkl_round_trips_agree(model_files: dict, model64: BodyModel):
    assert "chumpy" not in sys.modules
    inputs = random_inputs(9, batch=2)
    expected = model64(**inputs)
    for kind in ("npz", "pkl"):
        loaded = BodyModel.load(model_files[kind], dtype=torch.float64, device="cpu")
        out = loaded(**inputs)
        torch.testing.assert_close(out.vertices, expected.vertices, atol=1e-12, rtol=0)
        torch.testing.assert_close(out.joints, expected.joints, atol=1e-12, rtol=0)
        assert loaded.parents.tolist() == list(SMPL_PARENTS) and loaded.faces.shape == (N_FACES, 3)
        assert loaded.posedirs.shape == (207, N_VERTS * 3) and loaded.num_betas == 10
    assert "chumpy" not in sys.modules


@pytest.mark.parametrize("protocol", [0, 4, 5])
def test_pkl_other_protocols_and_csr(tmp_path: Path, small: dict, protocol: int):
    path = tmp_path / "small.pkl"
    arrays = {**small, "J_regressor": small["J_regressor"]}
    write_chumpy_pkl(path, arrays, protocol=protocol)
    loaded = BodyModel.load(path, dtype=torch.float64, device="cpu")
    direct = BodyModel.from_arrays(
        small, J_regressor=sparse.csr_matrix(small["J_regressor"]), dtype=torch.float64, device="cpu"
    )
    torch.testing.assert_close(loaded.J_regressor, direct.J_regressor, atol=0, rtol=0)
    torch.testing.assert_close(loaded.shapedirs, direct.shapedirs, atol=0, rtol=0)


def test_python2_style_pkl(tmp_path: Path, small: dict):
    path = tmp_path / "py2.pkl"
    write_chumpy_pkl(path, small, py2=True)
    raw = path.read_bytes()
    assert b"numpy.core.multiarray" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw and b"__builtin__\nset" in raw
    loaded = BodyModel.load(path, dtype=torch.float64, device="cpu")
    direct = BodyModel.from_arrays(small, dtype=torch.float64, device="cpu")
    for name, buffer in direct.named_buffers():
        torch.testing.assert_close(getattr(loaded, name), buffer, atol=0, rtol=0)


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, small: dict, protocol: int):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"v_template": small["v_template"], "payload": Evil(marker)}, handle, protocol=protocol)
    with pytest.raises((pickle.UnpicklingError, ValueError), match=r"forbidden global (posix|os|nt)\.system") as info:
        BodyModel.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def _with_parent(kintree_table: np.ndarray, joint: int, parent: int) -> np.ndarray:
    table = kintree_table.copy()
    table[0, joint] = parent
    return table


@pytest.mark.parametrize(
    ("key", "bad", "message"),
    [
        ("shapedirs", lambda a: a["shapedirs"][:-1], "shapedirs"),
        ("posedirs", lambda a: a["posedirs"][:, :, :200], "posedirs"),
        ("J_regressor", lambda a: a["J_regressor"][:23], "J_regressor"),
        ("weights", lambda a: a["weights"][:, :23], "weights"),
        ("weights", lambda a: a["weights"] * 1.1, "sum to 1"),
        ("kintree_table", lambda a: a["kintree_table"][:, :23], "kintree_table"),
        ("kintree_table", lambda a: _with_parent(a["kintree_table"], 5, 7), "'kintree_table'.*joint 5 has parent 7"),
        ("f", lambda a: np.full((4, 3), N_VERTS), "'f'"),
        ("v_template", None, "missing key.*v_template"),
    ],
)
def test_malformed_files_raise_value_error_naming_file_and_key(tmp_path: Path, big: dict, key, bad, message):
    arrays = dict(big)
    if bad is None:
        del arrays[key]
    else:
        arrays[key] = bad(big)
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        BodyModel.load(path)
    assert str(path) in str(info.value)


def test_num_betas_truncates_and_is_checked(tmp_path: Path, small: dict):
    path = tmp_path / "sixteen.npz"
    np.savez(path, **{**small, "shapedirs": np.concatenate([small["shapedirs"]] * 2, axis=2)[:, :, :16]})
    assert BodyModel.load(path, device="cpu").num_betas == 10
    assert BodyModel.load(path, device="cpu", num_betas=None).num_betas == 16
    with pytest.raises(ValueError, match="shapedirs"):
        BodyModel.load(path, num_betas=20)
    with pytest.raises(ValueError, match="unsupported"):
        BodyModel.load(tmp_path / "model.obj")


# ----------------------------------------------------------------------------------------------------------------
# The smplx package as an outside reference


def test_agrees_with_smplx(big: dict, model64: BodyModel):
    smplx = pytest.importorskip("smplx", reason="smplx not installed (pip install smplx); comparison skipped")
    from smplx.utils import Struct

    batch = 3
    # smplx.SMPL reads only pickles from disk; data_struct hands it the same arrays our .npz holds.
    reference = smplx.SMPL(
        model_path="unused", data_struct=Struct(**big), batch_size=batch, num_betas=10, dtype=torch.float64
    )
    inputs = random_inputs(10, batch)
    theirs = reference(**inputs)
    ours = model64(**inputs)
    torch.testing.assert_close(ours.vertices, theirs.vertices.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, theirs.joints[:, :24].detach(), atol=1e-5, rtol=0)
