"""``mpenv/HumanoidMimic-v0``: a DeepMimic-style physically simulated humanoid imitating a reference motion.

The character is the SMPL humanoid of :mod:`mpenv.humanoid.mjcf` (24 bodies, a free root and 69 PD-controlled
hinges, 70 kg, physics at 480 Hz, policy at 30 Hz); the reference is a :class:`~vision3d.body.motion.Motion` -- a
shipped clip (``vision3d.body.clips``: walk, run, jump, cartwheel, cmu_walk, cmu_jumps) or your own ``.npz``,
``.bvh`` or DeepMimic ``.txt`` file, converted once by :mod:`mpenv.humanoid.reference`.

Action space
    ``Box(-1, 1, (69,))``: PD targets of the 69 hinges (order :data:`~mpenv.humanoid.mjcf.HINGE_NAMES`); the
    position actuators apply ``kp (target - q) - kv qdot`` up to the torque limits. ``action_mode="absolute"``
    (DeepMimic's) maps ``[-1, 1]`` linearly onto each joint's range; ``action_mode="residual"`` adds
    ``residual_scale`` radians times the action to the next reference frame's angle (a common shortcut in later
    imitation work: a zero action tracks the reference, so learning starts from the open-loop replay). Targets are
    clipped to the joint ranges. NaN or infinite actions raise ``ValueError``.

Observation space
    ``Box(-inf, inf, (292 + 72 * future_frames,), float64)``, everything in the root's *heading frame* (the world
    rotated about z so that the pelvis faces +x; the observation does not change when the whole scene turns about
    the vertical or moves horizontally):

    ====================== ===== =========================================================================
    root height            1     pelvis z, metres
    body positions         69    the 23 non-root bodies relative to the pelvis
    body rotations         144   all 24 body orientations, 6D (first two columns of the rotation matrix)
    root linear velocity   3
    root angular velocity  3
    joint velocities       69    hinge rates; with the root velocities they fix every body's velocity
    phase                  3     ``(phi, sin 2 pi phi, cos 2 pi phi)``, phi = position in the cycle (or clip)
    future reference       72 k  the reference body positions of the next ``future_frames`` frames,
                                 relative to the current pelvis
    ====================== ===== =========================================================================

Reward (DeepMimic's imitation reward, Peng et al. 2018, eq. 4-8)
    ``r = w_p r_pose + w_v r_vel + w_e r_end + w_c r_com`` with default weights ``(0.65, 0.1, 0.15, 0.1)`` and

    * ``r_pose = exp(-2 sum_j w_j ||q_hat_j (-) q_j||^2)``: angle of the quaternion difference of every joint's
      local rotation (the root's world orientation included);
    * ``r_vel = exp(-0.1 sum_j w_j ||qdot_hat_j - qdot_j||^2)``: root angular velocity and the 3 hinge rates of
      each joint;
    * ``r_end = exp(-40 sum_e ||p_hat_e - p_e||^2)``: hands and feet, positions relative to the pelvis;
    * ``r_com = exp(-10 ||p_hat_c - p_c||^2)``: whole-body centre of mass, world frame.

    Scales ``(2, 0.1, 40, 10)`` and weights are keyword arguments. ``root_weight`` (default 0) adds
    DeepMimic's root term ``w_r exp(-5 (||p_hat_r - p_r||^2 + 0.1 theta_r^2 + 0.01 ||v_hat_r - v_r||^2 +
    0.001 ||w_hat_r - w_r||^2))`` (its code's ``root_w``, ``root_scale`` and sub-weights): pelvis position,
    orientation angle, linear and angular velocity, which ties the character to the reference's path (its
    code sets ``w = (0.5, 0.05, 0.15, 0.1)``, ``w_r = 0.2``). The joint weights ``w_j``
    (:data:`JOINT_WEIGHTS`, ``joint_weights=``) are DeepMimic's: its code weighs each joint by the character
    file's ``DiffWeight`` (root 1, chest 0.5, hips 0.5, knees, neck and shoulders 0.3, ankles and elbows 0.2) and
    normalizes them to sum to 1, so the paper's sum is a weighted mean and the reward stays informative however
    many joints the skeleton has. ``joint_weights="uniform"`` gives the paper's literal unweighted sum.
    Where the reference is (``reference_sync``): ``"cycle"`` (default, as DeepMimic's code) moves it
    horizontally onto the character at the start of every new cycle of a cyclic clip, so the centre-of-mass and
    root terms measure the current cycle's drift, not the sum of all; ``"none"`` tracks the un-synced reference,
    which loops with its root advancing as one long clip would (global tracking); ``"step"`` turns and moves it
    onto the character's pelvis and heading at every step, so the imitation reward scores the pose and style
    but not where the character goes: for task objectives that steer it (:mod:`mpenv.humanoid.tasks`).

Tracking metrics (``info``, metres, body positions of the 24 joints)
    * ``mpjpe``: root-relative MPJPE, both poses translated to put the pelvis at the origin;
    * ``mpjpe_global``: MPJPE in the world against the un-synced reference, as placed at reset (the field's
      global MPJPE; a character that walks slower than the clip falls behind and this grows);
    * ``mpjpe_cycle``: against the reference as re-synced (what the reward sees; equal to ``mpjpe_global``
      with ``reference_sync="none"``). Not a global metric: it forgets the drift at every re-sync;
    * ``tracking_lost``: the character fell (see Episode) or ``mpjpe_global`` exceeds
      :data:`PHC_FAIL_DISTANCE` = 0.5 m: PHC's failure criterion (Luo et al. 2023). An episode succeeds if it
      is never set; ``mpenv-eval`` reports the success rate;
    * with ``eval_metrics=True`` (``mpenv-eval`` sets it; left off in training for speed): ``pa_mpjpe``, the
      MPJPE after the best similarity transform (:func:`vision3d.body.fitting.pa_mpjpe`), and
      ``accel_error``, the mean over joints of the difference of the second differences
      ``x_{t-1} - 2 x_t + x_{t+1}`` of character and global reference (metres per frame^2; x1000 for the
      mm/frame^2 of HMR and PHC), from the second step on.

    ``info`` also carries the reward terms (``reward_pose``, ``reward_vel``, ``reward_end``, ``reward_com``,
    ``reward_root``) and ``frame``, the reference time in frames (fractional between frames).

Episode
    * Start: reference state initialization. ``rsi="continuous"`` (default, or ``True``): a uniformly random
      time in the clip (in the first cycle of a cyclic clip), between frames too, so episodes start from a
      continuum of states; the state there moves frame ``i``'s ``qpos`` along its velocity (the finite difference
      to frame ``i+1``) with ``mj_integratePos``: linear in the hinge angles and the root position, a slerp of
      the root quaternion, and the velocity is exactly that of the interpolated motion. ``rsi="frames"`` draws a
      whole frame, ``rsi=False`` starts at frame 0. The reference then plays on from that time.
    * Heading (``random_heading=True``, default): the whole reference is turned about the vertical through the
      start pelvis by a uniformly random angle, and the character with it (DeepMimic's random rotation reset).
      The observation and the reward do not depend on the heading; world-frame quantities do, and so, slightly,
      does the simulation (MuJoCo's pyramidal friction cones have world-aligned axes).
    * Termination (``early_termination=True``): a body other than the allowed contacts (the feet by default; the
      cartwheel also allows the hands) touches the floor, or the pelvis falls below ``fall_height``.
    * Truncation: gymnasium's ``TimeLimit`` (300 steps = 10 s for the registered ids), and the end of a non-cyclic
      clip. Cyclic clips repeat forever, the root displacement of each cycle carried forward.

Perturbations (robustness tests and training)
    ``push_force`` newtons on the pelvis for ``push_duration`` seconds, first ``push_at`` seconds into the
    episode, then every ``push_every`` seconds (0: once), in the direction ``push_direction`` degrees
    counter-clockwise from the character's facing direction at the push's start (0 forward, 90 left, 180 back,
    -90 right; ``None``: uniformly random each push); ``info["pushed"]`` marks the steps under a push.
    ``action_noise`` adds Gaussian noise of that standard deviation (action units) to every action. ``info``
    also has ``fallen``, the termination condition whether or not ``early_termination`` ends the episode.
    ``mpenv-eval --push/--action-noise`` reports survival and recovery.

Rendering
    ``rgb_array`` through MuJoCo's offscreen renderer (EGL when there is no display, set by
    :mod:`mpenv.display`), with the reference drawn as a translucent green ghost; ``human`` where a display
    exists. The ghost exists only when rendering, so training runs simulate the character alone. Without a
    display, ``render_mode="human"`` raises ``ValueError`` (GLFW would abort the interpreter) and the instance's
    ``metadata["render_modes"]`` leaves it out, so gymnasium's checker runs headless with its defaults:
    ``check_env(gym.make("mpenv/HumanoidMimicWalk-v0").unwrapped)``.

Vectorizing
    Every id runs in subprocesses with the default start methods, ``gym.make_vec(id, num_envs=n,
    vectorization_mode="async")`` and stable-baselines3's ``SubprocVecEnv``, and the env pickles. The reference
    is built with torch on one thread (:func:`mpenv.device.torch_threads`), because torch's
    OpenMP threads deadlock a process forked after they ran.
"""

from __future__ import annotations

import math
import zipfile
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from mpenv.device import torch_threads
from mpenv.display import display_available
from mpenv.humanoid.mjcf import BODY_ORDER, FRAME_SKIP, TIMESTEP, build_humanoid_xml
from mpenv.humanoid.reference import (
    Reference,
    body_parent_ids,
    build_reference,
    local_rotations,
    rotation_angles,
)
from vision3d.body.motion import Motion
from vision3d.body.skeleton import END_EFFECTOR_NAMES

__all__ = ["HumanoidMimicEnv", "heading_angle", "heading_rotation", "load_motion"]

DEFAULT_WEIGHTS = (0.65, 0.1, 0.15, 0.1)
JOINT_WEIGHTS: dict[str, float] = {
    "pelvis": 1.0, "spine1": 0.5, "spine2": 0.3, "spine3": 0.3, "neck": 0.3, "head": 0.2,
    **{f"{side}_{joint}": w for side in ("left", "right") for joint, w in (
        ("hip", 0.5), ("knee", 0.3), ("ankle", 0.2), ("foot", 0.1),
        ("collar", 0.2), ("shoulder", 0.3), ("elbow", 0.2), ("wrist", 0.1), ("hand", 0.0),
    )},
}  # fmt: skip
"""Relative pose/velocity weight per joint, before normalization: DeepMimic's humanoid3d ``DiffWeight`` values for
the joints it has (its chest -> spine1, wrists 0), ours for SMPL's extra joints."""
DEFAULT_SCALES = (2.0, 0.1, 40.0, 10.0)
PHC_FAIL_DISTANCE = 0.5
"""Metres of mean global joint error past which PHC counts the tracking as failed."""
RSI_MODES = {True: "continuous", False: "off", "continuous": "continuous", "frames": "frames", "off": "off"}
FOOT_BODIES = ("left_ankle", "left_foot", "right_ankle", "right_foot")
HAND_BODIES = ("left_wrist", "left_hand", "right_wrist", "right_hand")
N_HINGES = 69
_ROOT_QPOS, _ROOT_QVEL = 7, 6  # free joint: position + quaternion; linear + angular velocity
_CHAR_NQ, _CHAR_NV = _ROOT_QPOS + N_HINGES, _ROOT_QVEL + N_HINGES


def load_motion(motion: str | Path | Motion) -> Motion:
    """A :class:`Motion` from a shipped clip name, a ``.npz`` / ``.bvh`` / DeepMimic ``.txt`` path, or as is."""
    if isinstance(motion, Motion):
        return motion
    from vision3d.body.clips import clip_names, load_clip

    text = str(motion)
    if text in clip_names():
        return load_clip(text)
    path = Path(text)
    suffix = path.suffix.lower()
    choices = f"a shipped clip ({', '.join(clip_names())}) or a .npz, .bvh or DeepMimic .txt file"
    if suffix not in (".npz", ".bvh", ".txt"):
        raise ValueError(f"unknown motion {text!r}: give {choices}")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        what = "is a directory" if path.is_dir() else "(no such file)"
        raise FileNotFoundError(f"motion file not found: {path}{where} {what}; motion= takes {choices}")
    from vision3d.body import retarget

    try:
        if suffix == ".npz":
            return Motion.load(path)
        return retarget.bvh_to_motion(path) if suffix == ".bvh" else retarget.deepmimic_to_motion(path)
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        if str(path) in str(err):  # the reader's message already names the file
            raise
        raise ValueError(f"cannot read motion file {path}: {err}") from err


class Placement(NamedTuple):
    """Where the stored reference goes in the world: ``p -> turn @ p + origin``, root quaternion ``quat * q``."""

    turn: np.ndarray  # (3, 3) rotation about the vertical
    quat: np.ndarray  # (4,) the same rotation, w first
    origin: np.ndarray  # (3,)


def yaw_placement(yaw: float, source: np.ndarray, target: np.ndarray) -> Placement:
    """The turn by ``yaw`` about the vertical that takes the horizontal position of ``source`` to ``target``."""
    c, s = np.cos(yaw), np.sin(yaw)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flat = np.array([1.0, 1.0, 0.0])
    return Placement(turn, np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]), (target - turn @ source) * flat)


def heading_angle(matrix: np.ndarray) -> float:
    """Yaw of a body's facing direction (its x axis, the character faces +x at rest); a (3, 3) or flat (9,)."""
    m = np.asarray(matrix).reshape(3, 3)
    return float(np.arctan2(m[1, 0], m[0, 0]))


def quaternion_matrix(quat: np.ndarray) -> np.ndarray:
    matrix = np.empty(9)
    mujoco.mju_quat2Mat(matrix, quat)
    return matrix.reshape(3, 3)


def heading_rotation(root_matrix: np.ndarray) -> np.ndarray:
    """Rotation about z that turns the pelvis's facing direction (its body x axis) onto world +x."""
    x, y = root_matrix[0, 0], root_matrix[1, 0]
    norm = math.hypot(x, y)
    c, s = (x / norm, y / norm) if norm > 0 else (1.0, 0.0)  # facing straight up or down: any heading
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


class HumanoidMimicEnv(MujocoEnv):
    """DeepMimic-style motion imitation with the SMPL humanoid (see the module docstring).

    Args:
        motion: shipped clip name, path to a ``.npz`` / ``.bvh`` / DeepMimic ``.txt`` file, or a ``Motion``.
        betas: body shape ``(10,)`` of the character (default the mean shape). The reference keeps its angles
            and root path, so a very different shape may float or sink a little.
        reward_weights: ``(w_pose, w_vel, w_end, w_com)``.
        reward_scales: ``(k_pose, k_vel, k_end, k_com)`` in ``exp(-k err)``.
        joint_weights: per-joint weights of the pose and velocity errors, ``{joint: weight}`` (normalized to sum
            to 1; missing joints 0), ``"deepmimic"`` (:data:`JOINT_WEIGHTS`) or ``"uniform"`` (all 1, unnormalized).
        rsi: reference state initialization: ``"continuous"`` (or True) a random time in the clip, ``"frames"``
            a random frame, ``"off"`` (or False) frame 0.
        random_heading: turn the reference (and the starting character) by a random angle about the vertical.
        reference_sync: ``"cycle"`` re-syncs the reference horizontally onto the character each cycle
            (DeepMimic), ``"none"`` tracks the un-synced, global reference, ``"step"`` puts it on the character's
            pelvis and heading every step (for steering tasks).
        root_weight, root_scale: weight and scale of DeepMimic's root term (0: off).
        eval_metrics: also compute ``pa_mpjpe`` and ``accel_error`` in ``info`` (slower; for evaluation).
        early_termination: end the episode on a fall (see ``allowed_contacts`` and ``fall_height``).
        allowed_contacts: bodies that may touch the floor; default the feet (plus the hands for a cartwheel).
        fall_height: pelvis height (m) below which the character has fallen.
        future_frames: number of upcoming reference frames appended to the observation.
        push_force, push_duration, push_at, push_every, push_direction, action_noise: perturbations (see the
            module docstring); none by default.
        gain_scale: multiplies every PD gain (stiffness and damping) of the character.
        action_mode: ``"absolute"`` (targets over the joint ranges) or ``"residual"`` (offsets from the reference).
        residual_scale: radians of target offset per unit of action in ``"residual"`` mode.
        render_mode, width, height, camera_name: rendering, as gymnasium's MuJoCo envs.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 30}

    def __init__(
        self,
        motion: str | Path | Motion = "walk",
        betas: np.ndarray | None = None,
        reward_weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS,
        reward_scales: tuple[float, float, float, float] = DEFAULT_SCALES,
        joint_weights: str | dict[str, float] = "deepmimic",
        rsi: bool | str = "continuous",
        random_heading: bool = True,
        reference_sync: str = "cycle",
        root_weight: float = 0.0,
        root_scale: float = 5.0,
        eval_metrics: bool = False,
        early_termination: bool = True,
        allowed_contacts: tuple[str, ...] | None = None,
        fall_height: float = 0.3,
        push_force: float = 0.0,
        push_duration: float = 0.2,
        push_at: float = 1.0,
        push_every: float = 0.0,
        push_direction: float | None = None,
        action_noise: float = 0.0,
        future_frames: int = 0,
        gain_scale: float = 1.0,
        action_mode: str = "absolute",
        residual_scale: float = 0.5,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        camera_name: str | None = "track",
    ) -> None:
        from vision3d.body.retarget import smpl_rest_joints

        if render_mode == "human" and not display_available():
            raise ValueError(
                "render_mode='human' opens a window, but there is no display (neither DISPLAY nor WAYLAND_DISPLAY "
                "is set); use render_mode='rgb_array' (offscreen, EGL) and save or show the frames"
            )
        self.reward_weights = _four_floats(reward_weights, "reward_weights")
        self.reward_scales = _four_floats(reward_scales, "reward_scales")
        if future_frames < 0:
            raise ValueError(f"future_frames must be >= 0, got {future_frames}")
        if action_mode not in ("absolute", "residual"):
            raise ValueError(f"action_mode must be 'absolute' or 'residual', got {action_mode!r}")
        self.action_mode, self.residual_scale = action_mode, float(residual_scale)
        if not isinstance(rsi, bool | str) or rsi not in RSI_MODES:
            raise ValueError(f"rsi must be 'continuous', 'frames', 'off', True or False, got {rsi!r}")
        self.rsi, self.early_termination = RSI_MODES[rsi], early_termination
        if reference_sync not in ("cycle", "none", "step"):
            raise ValueError(f"reference_sync must be 'cycle', 'none' or 'step', got {reference_sync!r}")
        self.random_heading, self.reference_sync = bool(random_heading), reference_sync
        self.eval_metrics = bool(eval_metrics)
        self.root_weight, self.root_scale = float(root_weight), float(root_scale)
        if not (np.isfinite(self.root_weight) and self.root_weight >= 0 and np.isfinite(self.root_scale)
                and self.root_scale >= 0):
            raise ValueError(f"root_weight and root_scale must be finite and >= 0, got {root_weight}, {root_scale}")
        self.fall_height, self.future_frames = float(fall_height), int(future_frames)
        for name, value in (("push_force", push_force), ("push_duration", push_duration), ("push_at", push_at),
                            ("push_every", push_every), ("action_noise", action_noise)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if push_direction is not None and not np.isfinite(push_direction):
            raise ValueError(f"push_direction must be degrees or None (random), got {push_direction}")
        self.push_force, self.push_direction, self.action_noise = float(push_force), push_direction, float(action_noise)
        step_seconds = TIMESTEP * FRAME_SKIP  # pushes are counted in policy steps
        self._push_start = round(push_at / step_seconds)
        self._push_steps = max(round(push_duration / step_seconds), 1)
        self._push_period = round(push_every / step_seconds)
        if 0 < self._push_period < self._push_steps:
            raise ValueError(f"push_every ({push_every} s) must be 0 or at least push_duration ({push_duration} s)")
        self._push = np.zeros(3)  # world force of the current push

        with torch_threads(1):  # torch on one thread: the env can be built after a fork (AsyncVectorEnv)
            self.motion = load_motion(motion)
            # The ghost (reference drawn beside the character) only exists when rendering.
            self._xml = build_humanoid_xml(betas, gain_scale=gain_scale, ghost=render_mode is not None)
            character = mujoco.MjModel.from_xml_string(build_humanoid_xml(betas))
            self.reference: Reference = build_reference(
                self.motion, character, smpl_rest_joints(betas), fps=1.0 / (character.opt.timestep * FRAME_SKIP)
            )
        # The character alone, to pose the reference between its frames (the env's model may carry the ghost).
        self._character, self._character_data = character, mujoco.MjData(character)
        self._character_ids = np.array([character.body(name).id for name in BODY_ORDER])

        n_obs = 292 + 72 * self.future_frames
        super().__init__(
            # MujocoEnv checks that model_path exists; the model itself comes from _initialize_simulation.
            model_path=str(Path(__file__).resolve()),
            frame_skip=FRAME_SKIP,
            observation_space=spaces.Box(-np.inf, np.inf, (n_obs,), np.float64),
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name=camera_name if render_mode is not None else None,
        )
        if not display_available():  # what this instance can render: gymnasium's check_env tries each mode
            self.metadata = {**self.metadata, "render_modes": ["rgb_array", "depth_array"]}
        self._body_ids = np.array([self.model.body(name).id for name in BODY_ORDER])
        # MuJoCo numbers the bodies in this order after the world body: a slice reads them as views, no gather
        contiguous = np.array_equal(self._body_ids, np.arange(self._body_ids[0], self._body_ids[0] + len(BODY_ORDER)))
        self._bodies = slice(self._body_ids[0], self._body_ids[-1] + 1) if contiguous else self._body_ids
        self._parents = body_parent_ids(self.model)
        self._end_ids = np.array([BODY_ORDER.index(name) for name in END_EFFECTOR_NAMES])
        self._floor = self.model.geom("floor").id
        if allowed_contacts is None:
            allowed_contacts = FOOT_BODIES + (HAND_BODIES if self.motion.name == "cartwheel" else ())
        unknown = sorted(set(allowed_contacts) - set(BODY_ORDER))
        if unknown:
            raise ValueError(f"allowed_contacts has unknown bodies {unknown}; bodies: {list(BODY_ORDER)}")
        self._allowed = np.zeros(self.model.nbody, dtype=bool)
        self._allowed[[self.model.body(name).id for name in allowed_contacts]] = True
        low, high = self.model.jnt_range[1 : 1 + N_HINGES].T  # joint 0 is the root's free joint
        self._ctrl_mid, self._ctrl_half = (high + low) / 2.0, (high - low) / 2.0
        self._joint_w = _joint_weights(joint_weights)
        self._hinge_w = np.repeat(self._joint_w, 3)  # qvel[3:]: root angular velocity, then 3 rates per joint
        self._start, self._frame, self._cycle = 0.0, 0, 0  # start time (frames), steps taken, current cycle
        self._between_cache: dict[tuple[int, float], dict[str, np.ndarray]] = {}
        self._pose_diff = np.empty((3, len(BODY_ORDER), 3))  # the reward's scratch array
        # Where the stored reference is put: as at reset (the global one), and as tracked (after re-syncs)
        self._global = self._placement = yaw_placement(0.0, np.zeros(3), np.zeros(3))
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=3)  # positions for accel_error

    # ------------------------------------------------------------------------------------------ simulation

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = mujoco.MjModel.from_xml_string(self._xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _set_action_space(self) -> spaces.Box:
        self.action_space = spaces.Box(-1.0, 1.0, (N_HINGES,), np.float32)
        return self.action_space

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        self.data.ctrl[:N_HINGES] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)
        # mj_step leaves positions computed before its last integration; refresh them (and the subtree centres of
        # mass) for the new state. Skips gymnasium's mj_rnePostConstraint, which computes forces we do not use.
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    # ------------------------------------------------------------------------------------------ reference

    def reference_state(self, time: float) -> dict[str, np.ndarray]:
        """The reference at episode time ``time``, in frames (fractional between frames): cyclic clips repeat,
        shifted by the cycle displacement; then placed at the episode's heading and re-synced (see the class).
        ``body_pos_global``: the bodies of the reference as placed at reset, never re-synced."""
        base = self._reference_at(time, kinematics=True)
        turn, quat, move = self._placement
        qpos, qvel, local_rot = base["qpos"], base["qvel"].copy(), base["local_rot"].copy()
        root_quat = qpos[3:7].copy()
        qpos[:3] = turn @ qpos[:3] + move
        mujoco.mju_mulQuat(qpos[3:7], quat, root_quat)
        qvel[:3] = turn @ qvel[:3]  # world linear velocity turns; the free joint's angular velocity is in the body
        local_rot[0] = turn @ local_rot[0]  # the root's "local" rotation is its world one
        body_pos = base["body_pos"] @ turn.T + move
        if self._placement is not self._global:  # re-synced since the reset
            body_pos_global = base["body_pos"] @ self._global.turn.T + self._global.origin
        else:
            body_pos_global = body_pos
        return {
            "qpos": qpos,
            "qvel": qvel,
            "body_pos": body_pos,
            "body_pos_global": body_pos_global,
            "local_rot": local_rot,
            "com": turn @ base["com"] + move,
            "phase": np.array(base["phase"]),
        }

    def _reference_at(self, time: float, kinematics: bool) -> dict[str, Any]:
        """The stored reference at ``time`` before the episode's heading and re-sync: ``qpos`` and ``qvel``, and
        with ``kinematics`` the bodies, local rotations and centre of mass. Between frames ``i`` and ``i+1``,
        ``qpos`` moves along ``qvel[i]`` (their finite difference) and the bodies come from MuJoCo's kinematics."""
        ref = self.reference
        if ref.cyclic:
            cycle, within = divmod(float(time), ref.cycle_frames)
            phase = within / ref.cycle_frames
        else:
            cycle, within = 0.0, min(max(float(time), 0.0), ref.n_frames - 1.0)
            phase = within / max(ref.n_frames - 1, 1)
        index = int(within)
        alpha = within - index
        shift = cycle * ref.cycle_shift
        if alpha == 0.0:
            stored: dict[str, np.ndarray] = {"qpos": ref.qpos[index], "body_pos": ref.body_pos[index],
                                             "local_rot": ref.local_rot[index], "com": ref.com[index]}
        else:
            stored = self._between_frames(index, alpha, kinematics)
        qpos = stored["qpos"].copy()
        qpos[:3] += shift
        state: dict[str, Any] = {"qpos": qpos, "qvel": ref.qvel[index], "phase": phase}
        if kinematics:
            state |= {"body_pos": stored["body_pos"] + shift, "local_rot": stored["local_rot"],
                      "com": stored["com"] + shift}
        return state

    def _between_frames(self, index: int, alpha: float, kinematics: bool) -> dict[str, np.ndarray]:
        """The reference ``alpha`` of the way from frame ``index`` to the next, before any shift; kept for the
        episode, whose steps all fall at the same fraction (continuous RSI) and revisit a cycle's frames."""
        # alpha is the start's fraction on every step, but recomputed from time mod cycle it differs in the last
        # bits from cycle to cycle: rounded, the key finds the frame again (the values differ by ~1e-14 frames)
        cached = self._between_cache.setdefault((index, round(alpha, 9)), {})
        if "qpos" not in cached:
            qpos = self.reference.qpos[index].copy()
            mujoco.mj_integratePos(self._character, qpos, self.reference.qvel[index], alpha / self.reference.fps)
            cached["qpos"] = qpos
        if kinematics and "body_pos" not in cached:
            data, ids = self._character_data, self._character_ids
            data.qpos[:] = cached["qpos"]
            mujoco.mj_kinematics(self._character, data)
            mujoco.mj_comPos(self._character, data)
            cached |= {"body_pos": data.xpos[ids].copy(),
                       "local_rot": local_rotations(data.xmat[ids].reshape(-1, 3, 3), self._parents),
                       "com": data.subtree_com[ids[0]].copy()}
        return cached

    def _cycle_of(self, time: float) -> int:
        return int(time // self.reference.cycle_frames) if self.reference.cyclic else 0

    # ------------------------------------------------------------------------------------------ gym API

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (N_HINGES,):
            raise ValueError(f"action must have shape ({N_HINGES},), got {action.shape}")
        if not np.isfinite(action).all():  # the method: np.all's dispatch costs more than the check here
            raise ValueError(f"action contains NaN or infinite values: {action}")
        if self.action_noise > 0:
            action = action + self.action_noise * self.np_random.standard_normal(N_HINGES)
        pushed = self.push_force > 0 and self._apply_push(self._frame)
        self.do_simulation(self._pd_targets(np.minimum(np.maximum(action, -1.0), 1.0)), self.frame_skip)
        self._frame += 1
        time = self._start + self._frame
        cycle = self._cycle_of(time)
        if self.reference_sync == "step":
            self._follow_character(time)
        elif cycle != self._cycle and self.reference_sync == "cycle":
            self._sync_reference_root(time)
        self._cycle = cycle
        ref = self.reference_state(time)
        reward, info = self._reward(ref)
        fallen = self._has_fallen()
        info["tracking_lost"] = fallen or info["mpjpe_global"] > PHC_FAIL_DISTANCE
        info["fallen"], info["pushed"] = fallen, pushed
        if self.eval_metrics:
            info |= self._evaluation_metrics(ref)
        terminated = self.early_termination and fallen
        truncated = not self.reference.cyclic and time >= self.reference.n_frames - 1
        if self.render_mode == "human":
            self.render()
        return self._observation(ref), reward, bool(terminated), bool(truncated), info

    def _apply_push(self, step: int) -> bool:
        """Set the pelvis's external force for the step about to be simulated; whether a push is on."""
        since = step - self._push_start
        if self._push_period > 0 and since >= 0:
            since %= self._push_period
        active = self.push_force > 0 and 0 <= since < self._push_steps
        if active and since == 0:  # a new push: its direction is fixed relative to the heading at its start
            degrees = self.push_direction
            if degrees is None:
                degrees = self.np_random.uniform(-180.0, 180.0)
            pelvis = self.data.xmat[self._body_ids[0]]
            angle = np.arctan2(pelvis[3], pelvis[0]) + np.radians(degrees)
            self._push = self.push_force * np.array([np.cos(angle), np.sin(angle), 0.0])
        self.data.xfrc_applied[self._body_ids[0], :3] = self._push if active else 0.0
        return bool(active)

    def _pd_targets(self, action: np.ndarray) -> np.ndarray:
        if self.action_mode == "absolute":
            return self._ctrl_mid + self._ctrl_half * action
        # hinge angles of the next reference frame: no heading, cycle shift or re-sync touches them
        reference = self._reference_at(self._start + self._frame + 1, kinematics=False)["qpos"][_ROOT_QPOS:]
        low = self._ctrl_mid - self._ctrl_half
        return np.clip(reference + self.residual_scale * action, low, low + 2 * self._ctrl_half)

    def reset_model(self) -> np.ndarray:
        ref = self.reference
        last = ref.cycle_frames if ref.cyclic else ref.n_frames - 1
        if self.rsi == "continuous" and last > 0:
            self._start = float(self.np_random.uniform(0.0, last))
        elif self.rsi == "frames" and last > 0:
            self._start = float(self.np_random.integers(0, last))
        else:
            self._start = 0.0
        self._frame, self._cycle = 0, self._cycle_of(self._start)
        self._between_cache.clear()
        yaw = float(self.np_random.uniform(-np.pi, np.pi)) if self.random_heading else 0.0
        pivot = self._reference_at(self._start, kinematics=False)["qpos"][:3]  # turn about the start pelvis
        self._global = self._placement = yaw_placement(yaw, pivot, pivot)
        state = self.reference_state(self._start)
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        qpos[:_CHAR_NQ], qvel[:_CHAR_NV] = state["qpos"], state["qvel"]
        self.set_state(qpos, qvel)
        self.data.xfrc_applied[:] = 0.0  # a push of the last episode ends with it
        self._history.clear()
        self._history.append((state["body_pos"], state["body_pos"]))  # the character starts on the reference
        return self._observation(state)

    def _sync_reference_root(self, time: float) -> None:
        """Move the reference horizontally so its pelvis is over the character's (DeepMimic, each new cycle)."""
        turn, quat, origin = self._global
        pelvis = turn @ self._reference_at(time, kinematics=False)["qpos"][:3] + origin
        offset = (self.data.xpos[self._body_ids[0]] - pelvis) * [1.0, 1.0, 0.0]
        self._placement = Placement(turn, quat, origin + offset)

    def _follow_character(self, time: float) -> None:
        """Turn and move the reference so its pelvis and heading are the character's (``reference_sync="step"``)."""
        qpos = self._reference_at(time, kinematics=False)["qpos"]
        yaw = heading_angle(self.data.xmat[self._body_ids[0]]) - heading_angle(quaternion_matrix(qpos[3:7]))
        self._placement = yaw_placement(yaw, qpos[:3], self.data.xpos[self._body_ids[0]])

    def _get_reset_info(self) -> dict[str, Any]:
        return {"frame": self._start, "heading": heading_angle(self._global.turn)}

    def render(self) -> np.ndarray | None:
        if self.model.nq > _CHAR_NQ:  # pose the ghost as the current reference frame
            self.data.qpos[_CHAR_NQ : 2 * _CHAR_NQ] = self.reference_state(self._start + self._frame)["qpos"]
            self.data.qvel[_CHAR_NV:] = 0.0
            mujoco.mj_kinematics(self.model, self.data)
        return super().render()

    # ------------------------------------------------------------------------------------------ reward

    def _reward(self, ref: dict[str, np.ndarray]) -> tuple[float, dict[str, Any]]:
        data, ids = self.data, self._body_ids
        pos = data.xpos[self._bodies]
        rotations = data.xmat[self._bodies].reshape(-1, 3, 3)
        local = local_rotations(rotations, self._parents)
        pose_err = self._joint_w @ rotation_angles(local, ref["local_rot"]) ** 2
        qvel_err = data.qvel[:_CHAR_NV] - ref["qvel"]
        vel_err = self._hinge_w @ qvel_err[3:] ** 2  # root angular velocity and hinge rates
        ref_pos = ref["body_pos"]
        # one array for the three pose comparisons: root-relative, against the re-synced and the global reference
        diff = self._pose_diff
        np.subtract(pos, ref_pos, out=diff[1])
        np.subtract(diff[1], diff[1, 0], out=diff[0])  # (p - p_0) - (q - q_0) = (p - q) - (p - q)_0
        np.subtract(pos, ref["body_pos_global"], out=diff[2])
        end = diff[0, self._end_ids].ravel()
        com = data.subtree_com[ids[0]] - ref["com"]
        errors = np.array([pose_err, vel_err, end @ end, com @ com])
        terms = np.exp(-self.reward_scales * errors)
        root_rot_err = math.acos(min(max(0.5 * (np.vdot(rotations[0], ref["local_rot"][0]) - 1.0), -1.0), 1.0))
        root_err = (diff[1, 0] @ diff[1, 0] + 0.1 * root_rot_err**2 + 0.01 * (qvel_err[:3] @ qvel_err[:3])
                    + 0.001 * (qvel_err[3:6] @ qvel_err[3:6]))  # DeepMimic's root sub-weights
        root_term = math.exp(-self.root_scale * root_err)
        mpjpe = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)).sum(axis=1) / len(ids)
        info = {
            "reward_pose": terms[0],
            "reward_vel": terms[1],
            "reward_end": terms[2],
            "reward_com": terms[3],
            "reward_root": root_term,
            "mpjpe": float(mpjpe[0]),
            "mpjpe_global": float(mpjpe[2]),
            "mpjpe_cycle": float(mpjpe[1]),
            "frame": self._start + self._frame,
        }
        return float(self.reward_weights @ terms + self.root_weight * root_term), info

    def _evaluation_metrics(self, ref: dict[str, np.ndarray]) -> dict[str, float]:
        """PA-MPJPE and the acceleration error against the global reference (see the module docstring)."""
        import torch

        from vision3d.body.fitting import pa_mpjpe

        pos, target = self.data.xpos[self._body_ids].copy(), ref["body_pos_global"]
        metrics = {"pa_mpjpe": float(pa_mpjpe(torch.from_numpy(pos[None]), torch.from_numpy(target[None]))[0])}
        self._history.append((pos, target))
        if len(self._history) == 3:
            (p0, r0), (p1, r1), (p2, r2) = self._history
            metrics["accel_error"] = float(np.linalg.norm((p0 - 2 * p1 + p2) - (r0 - 2 * r1 + r2), axis=1).mean())
        return metrics

    def _has_fallen(self) -> bool:
        if self.data.xpos[self._body_ids[0], 2] < self.fall_height:
            return True
        contact = self.data.contact
        geom1, geom2 = contact.geom1, contact.geom2
        other = np.concatenate([geom2[geom1 == self._floor], geom1[geom2 == self._floor]])
        return not self._allowed[self.model.geom_bodyid[other]].all()

    # ------------------------------------------------------------------------------------------ observation

    def _observation(self, ref: dict[str, np.ndarray]) -> np.ndarray:
        data = self.data
        pos, mats = data.xpos[self._bodies], data.xmat[self._bodies].reshape(-1, 3, 3)
        root_pos, root_mat = pos[0], mats[0]
        heading = heading_rotation(root_mat)
        rel = (pos[1:] - root_pos) @ heading.T
        rot6d = (heading @ mats[:, :, :2]).reshape(-1)  # the first two columns of each heading-relative rotation
        qvel = data.qvel
        linear = heading @ qvel[0:3]
        angular = heading @ (root_mat @ qvel[3:6])  # the free joint's angular velocity is in the body frame
        phi = float(ref["phase"])
        parts = [
            [root_pos[2]],
            rel.reshape(-1),
            rot6d,
            linear,
            angular,
            qvel[_ROOT_QVEL:_CHAR_NV],
            [phi, np.sin(2 * np.pi * phi), np.cos(2 * np.pi * phi)],
        ]
        for k in range(1, self.future_frames + 1):
            future = self.reference_state(self._start + self._frame + k)["body_pos"]
            parts.append(((future - root_pos) @ heading.T).reshape(-1))
        return np.concatenate(parts)


def _four_floats(values: tuple[float, ...], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (4,) or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be 4 finite non-negative numbers (pose, vel, end, com), got {values}")
    return array


def _joint_weights(spec: str | dict[str, float]) -> np.ndarray:
    """Per-body weights in :data:`BODY_ORDER` from a ``joint_weights`` argument (see the class docstring)."""
    if spec == "uniform":
        return np.ones(len(BODY_ORDER))
    weights = JOINT_WEIGHTS if spec == "deepmimic" else spec
    if not isinstance(weights, dict):
        raise ValueError(f"joint_weights must be 'deepmimic', 'uniform' or a dict, got {spec!r}")
    unknown = sorted(set(weights) - set(BODY_ORDER))
    if unknown:
        raise ValueError(f"joint_weights has unknown joints {unknown}; joints: {list(BODY_ORDER)}")
    array = np.array([float(weights.get(name, 0.0)) for name in BODY_ORDER])
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise ValueError(f"joint_weights must be finite, non-negative and not all zero, got {weights}")
    return array / array.sum()
