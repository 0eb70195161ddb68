"""The SMPL humanoid's MJCF: structure, rest pose, hinge convention, limits, masses, PD control, ghost."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

mujoco = pytest.importorskip("mujoco")

from mpenv.humanoid.mjcf import (  # noqa: E402
    ACTUATED_JOINTS,
    ACTUATED_SMPL_INDEX,
    BODY_ORDER,
    FRAME_SKIP,
    HINGE_NAMES,
    JOINT_LIMITS_DEG,
    SMPL_TO_WORLD,
    TIMESTEP,
    build_humanoid_xml,
    rest_joint_positions,
    standing_pelvis_height,
    write_humanoid_xml,
)
from vision3d.body.model import BodyModel  # noqa: E402
from vision3d.body.rotations import euler_to_matrix  # noqa: E402
from vision3d.body.skeleton import JOINT_NAMES, PARENTS  # noqa: E402

RANDOM_BETAS = np.random.default_rng(0).normal(size=10)


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(build_humanoid_xml())


@pytest.fixture(scope="module")
def random_model():
    return mujoco.MjModel.from_xml_string(build_humanoid_xml(RANDOM_BETAS))


def _rest_data(model, **hinges_deg: float):
    """MjData at qpos0 with some hinges set (degrees), after forward kinematics."""
    data = mujoco.MjData(model)
    for name, deg in hinges_deg.items():
        data.qpos[model.joint(name).qposadr[0]] = np.radians(deg)
    mujoco.mj_kinematics(model, data)
    return data


def _pos(model, data, body: str) -> np.ndarray:
    return data.xpos[model.body(body).id].copy()


def test_sizes_and_mass(model, random_model):
    for m in (model, random_model):
        assert (m.nq, m.nv, m.nu) == (7 + 69, 6 + 69, 69)
        assert m.body_mass.sum() == pytest.approx(70.0, abs=0.5)
        assert m.opt.timestep == pytest.approx(TIMESTEP) and m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert TIMESTEP * FRAME_SKIP == pytest.approx(1 / 30)
    heavy = mujoco.MjModel.from_xml_string(build_humanoid_xml(total_mass=90.0))
    assert heavy.body_mass.sum() == pytest.approx(90.0, abs=1e-6)


def test_body_tree_and_hinge_names(model):
    names = [model.body(i).name for i in range(1, model.nbody)]
    assert names == list(BODY_ORDER) and sorted(names) == sorted(JOINT_NAMES)
    for k, name in enumerate(JOINT_NAMES):  # the same tree as SMPL's
        parent = model.body(model.body(name).parentid[0]).name
        assert parent == (JOINT_NAMES[PARENTS[k]] if PARENTS[k] >= 0 else "world")
    assert [JOINT_NAMES[i] for i in ACTUATED_SMPL_INDEX] == list(ACTUATED_JOINTS) == list(BODY_ORDER[1:])
    hinges = [model.joint(j).name for j in range(1, model.njnt)]
    assert hinges == list(HINGE_NAMES)
    assert [int(model.joint(h).qposadr[0]) for h in HINGE_NAMES] == list(range(7, 76))
    assert [model.actuator(a).name for a in range(model.nu)] == list(HINGE_NAMES)
    assert model.joint(0).name == "root" and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert model.geom("floor").friction[0] == 1.0


@pytest.mark.parametrize("betas", [None, RANDOM_BETAS])
def test_rest_pose_is_the_smpl_t_pose_standing(betas):
    m = mujoco.MjModel.from_xml_string(build_humanoid_xml(betas))
    body_model = BodyModel.default(dtype=torch.float64, device="cpu")
    b = torch.zeros(1, 10, dtype=torch.float64) if betas is None else torch.tensor(betas[None])
    out = body_model(betas=b)
    joints, vertices = out.joints[0].numpy(), out.vertices[0].numpy()
    offset = np.array([0.0, 0.0, -vertices[:, 1].min()])
    data = _rest_data(m)
    ids = [m.body(name).id for name in JOINT_NAMES]
    np.testing.assert_allclose(data.xpos[ids], joints @ SMPL_TO_WORLD.T + offset, atol=1e-6)
    np.testing.assert_allclose(data.xmat[ids], np.tile(np.eye(3).ravel(), (24, 1)), atol=1e-12)
    np.testing.assert_allclose(rest_joint_positions(betas), data.xpos[ids], atol=1e-9)
    assert standing_pelvis_height(betas) == pytest.approx(data.xpos[m.body("pelvis").id, 2], abs=1e-9)
    # Soles on the ground: the lowest geom point is at z = 0 (the feet boxes touch the floor, nothing sinks).
    mujoco.mj_forward(m, data)
    floor = m.geom("floor").id
    dists = [c.dist for c in data.contact[: data.ncon] if floor in (c.geom1, c.geom2)]
    assert dists and max(abs(d) for d in dists) < 1e-9
    assert all(floor in (c.geom1, c.geom2) for c in data.contact[: data.ncon])  # no self-contact at rest


def test_world_frame_mapping():
    W = SMPL_TO_WORLD  # noqa: N806
    np.testing.assert_array_equal(W @ [1, 0, 0], [0, 1, 0])  # canonical left -> world +y
    np.testing.assert_array_equal(W @ [0, 1, 0], [0, 0, 1])  # up -> +z
    np.testing.assert_array_equal(W @ [0, 0, 1], [1, 0, 0])  # forward -> +x
    assert np.linalg.det(W) == pytest.approx(1.0)


def test_hinges_compose_to_intrinsic_xyz_euler(model):
    rng = np.random.default_rng(1)
    data = mujoco.MjData(model)
    data.qpos[3:7] = rng.normal(size=4) / np.linalg.norm(rng.normal(size=4))
    data.qpos[3:7] /= np.linalg.norm(data.qpos[3:7])
    smpl_angles = rng.uniform(-1.2, 1.2, size=(24, 3))  # rows = SMPL joints (row 0, the pelvis, unused)
    data.qpos[7:] = smpl_angles[list(ACTUATED_SMPL_INDEX)].ravel()
    mujoco.mj_kinematics(model, data)
    expected = euler_to_matrix(torch.tensor(smpl_angles), "XYZ").numpy()
    for k in range(1, 24):
        parent = data.xmat[model.body(JOINT_NAMES[PARENTS[k]]).id].reshape(3, 3)
        child = data.xmat[model.body(JOINT_NAMES[k]).id].reshape(3, 3)
        np.testing.assert_allclose(parent.T @ child, expected[k], atol=1e-9, err_msg=JOINT_NAMES[k])
        for i, axis in enumerate("xyz"):  # the same angles, looked up by hinge name
            assert data.qpos[model.joint(f"{JOINT_NAMES[k]}_{axis}").qposadr[0]] == smpl_angles[k, i]


def test_joint_limits_follow_the_table(model):
    for joint, limits in JOINT_LIMITS_DEG.items():
        for axis, (lo, hi) in zip("xyz", limits, strict=True):
            name = f"{joint}_{axis}"
            np.testing.assert_allclose(model.joint(name).range, np.radians([lo, hi]), atol=1e-9)
            np.testing.assert_allclose(model.actuator(name).ctrlrange, np.radians([lo, hi]), atol=1e-9)
            assert model.jnt_limited[model.joint(name).id]
    for side in ("left", "right"):
        assert JOINT_LIMITS_DEG[f"{side}_knee"][1] == (-5.0, 150.0)  # flexion about y, same sign on both sides
    assert JOINT_LIMITS_DEG["left_elbow"][2] == (-160.0, 10.0)
    assert JOINT_LIMITS_DEG["right_elbow"][2] == (-10.0, 160.0)


def test_flexion_signs(model):
    for side in ("left", "right"):
        flexed = _rest_data(model, **{f"{side}_knee_y": 60.0})
        assert _pos(model, flexed, f"{side}_ankle")[0] < _pos(model, flexed, f"{side}_knee")[0] - 0.2  # behind
        flexed = _rest_data(model, **{f"{side}_hip_y": -60.0})
        assert _pos(model, flexed, f"{side}_knee")[0] > _pos(model, flexed, f"{side}_hip")[0] + 0.2  # in front
        sign = -1.0 if side == "left" else 1.0
        flexed = _rest_data(model, **{f"{side}_elbow_z": sign * 60.0})
        assert _pos(model, flexed, f"{side}_wrist")[0] > _pos(model, flexed, f"{side}_elbow")[0] + 0.15  # in front
        flexed = _rest_data(model, **{f"{side}_ankle_y": -20.0})  # dorsiflexion lifts the toes
        assert _pos(model, flexed, f"{side}_foot")[2] > _pos(model, _rest_data(model), f"{side}_foot")[2]
    bent = _rest_data(model, spine1_y=30.0)
    assert _pos(model, bent, "neck")[0] > 0.1  # trunk flexion leans forward


def _rollout(model, steps: int, ghost_qpos: np.ndarray | None = None) -> np.ndarray:
    data = mujoco.MjData(model)
    rng = np.random.default_rng(2)
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    trajectory = []
    for _ in range(steps):
        data.ctrl[:] = lo + (hi - lo) * rng.uniform(0.3, 0.7, size=model.nu)
        if ghost_qpos is not None:
            data.qpos[76:] = ghost_qpos
            data.qvel[75:] = 0.0
        mujoco.mj_step(model, data)
        trajectory.append(np.concatenate([data.qpos[:76], data.qvel[:75]]))
    return np.array(trajectory)


def test_ghost_is_inert_and_does_not_change_dynamics(model):
    ghosted = mujoco.MjModel.from_xml_string(build_humanoid_xml(ghost=True))
    assert (ghosted.nq, ghosted.nv, ghosted.nu) == (2 * 76, 2 * 75, 69)
    assert ghosted.body("ghost_pelvis").parentid[0] == 0 and ghosted.joint("ghost_root").type[0] == 0
    ghost_geoms = [g for g in range(ghosted.ngeom) if ghosted.geom(g).name.startswith("ghost_")]
    assert len(ghost_geoms) == model.ngeom - 1
    assert all(ghosted.geom_contype[g] == 0 and ghosted.geom_conaffinity[g] == 0 for g in ghost_geoms)
    assert all(ghosted.geom_rgba[g][3] == pytest.approx(0.3) and ghosted.geom_group[g] == 1 for g in ghost_geoms)
    pose = np.concatenate([[0.5, 0.2, 0.9, 1.0, 0.0, 0.0, 0.0], np.full(69, 0.3)])
    np.testing.assert_array_equal(_rollout(model, 50), _rollout(ghosted, 50, ghost_qpos=pose))


def test_fixed_root_pd_tracks_a_step():
    m = mujoco.MjModel.from_xml_string(build_humanoid_xml(fixed_root=True))
    assert (m.nq, m.nv, m.nu) == (69, 69, 69)
    floor = m.geom("floor").id
    m.geom_contype[floor] = m.geom_conaffinity[floor] = 0  # pinned, the character hangs: no toes in the ground
    data = mujoco.MjData(m)
    targets = {"left_knee_y": 45.0, "right_hip_y": -40.0, "left_elbow_z": -60.0, "right_shoulder_x": -45.0,
               "spine2_y": 15.0, "neck_z": 30.0, "left_ankle_y": 20.0, "right_wrist_x": 30.0}  # fmt: skip
    for name, deg in targets.items():
        data.ctrl[m.actuator(name).id] = np.radians(deg)
    for _ in range(round(0.5 / m.opt.timestep)):
        mujoco.mj_step(m, data)
    errors = {n: np.degrees(data.qpos[m.joint(n).qposadr[0]]) - deg for n, deg in targets.items()}
    assert max(abs(e) for e in errors.values()) < 3.0, errors
    assert np.all(np.isfinite(data.qpos)) and np.abs(data.qvel).max() < 0.5


def test_pd_hold_keeps_the_free_character_standing(model):
    data = mujoco.MjData(model)
    for _ in range(round(1.0 / model.opt.timestep)):
        mujoco.mj_step(model, data)
    assert data.qpos[2] > 0.95 * standing_pelvis_height()
    assert np.linalg.norm(data.qpos[:2]) < 0.05


def test_gain_scale_scales_kp_and_kv(model):
    scaled = mujoco.MjModel.from_xml_string(build_humanoid_xml(gain_scale=0.5))
    np.testing.assert_allclose(scaled.actuator_gainprm[:, 0], 0.5 * model.actuator_gainprm[:, 0])
    np.testing.assert_allclose(scaled.actuator_biasprm[:, 1:3], 0.5 * model.actuator_biasprm[:, 1:3])


@pytest.mark.parametrize("betas", [np.zeros(9), np.zeros((1, 10)), [0.0] * 16])
def test_bad_betas_shape_raises(betas):
    with pytest.raises(ValueError, match=r"\(10,\)"):
        build_humanoid_xml(betas)


def test_write_humanoid_xml_loads(tmp_path):
    path = tmp_path / "sub" / "humanoid.xml"
    write_humanoid_xml(path, betas=RANDOM_BETAS, ghost=True)
    loaded = mujoco.MjModel.from_xml_path(str(path))
    assert loaded.nu == 69 and loaded.body("ghost_head").id > 0


def test_package_import_is_light_and_picks_egl():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    code = (
        "import sys, os, mpenv.humanoid\n"
        "print('mujoco' in sys.modules, 'torch' in sys.modules, os.environ['MUJOCO_GL'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "egl"]
    env["MUJOCO_GL"] = "osmesa"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "osmesa"


def test_command_line_writes_a_loadable_model(tmp_path, capsys):
    import mujoco

    from mpenv.humanoid.mjcf import main

    main([str(tmp_path / "h.xml"), "--total-mass", "80"])
    model = mujoco.MjModel.from_xml_path(str(tmp_path / "h.xml"))
    assert abs(model.body_subtreemass[1] - 80.0) < 0.5 and "wrote" in capsys.readouterr().out
