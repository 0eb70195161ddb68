"""Task objectives on top of imitation, as DeepMimic combines them (Peng et al. 2018, sec. 6.2 and 9):

    r = w_I r_I + w_G r_G,       the goal g appended to the observation,

``r_I`` the imitation reward of :class:`~mpenv.humanoid.env.HumanoidMimicEnv` (with every option of that env)
and ``r_G`` the task's. Two tasks, each one subclass:

``mpenv/HumanoidMimicHeading-v0`` -- :class:`TargetHeadingEnv`: move in a commanded direction ``d*`` at a
commanded speed ``v*`` while walking like the clip. DeepMimic's target-heading reward

    r_G = exp(-2.5 max(0, v* - v_c . d*)^2),

``v_c`` the horizontal velocity of the centre of mass over the last step: going slower than commanded, or
another way, costs; faster does not (the imitation term keeps the clip's pace). ``match_speed=True`` drops the
``max(0, .)``, so that going faster than commanded costs as much as going slower. The command is drawn at
reset (within ``initial_turn`` degrees of the start heading, a speed in ``speed_range``) and changes once, at
a random time in ``change_window`` seconds, by up to ``turn`` degrees, to a new speed. The reference's pelvis
follows the character's every step (``reference_sync="step"``). Its heading either follows the character's too
(``steer_rate=0``, the default), so imitation scores the style and the task alone the path, or it is *steered*:
the reference's direction of travel turns towards the command at ``steer_rate`` degrees per second, as a
kinematic controller would turn the clip, so imitation (the end effectors above all, compared in the world
frame) also pulls the character round. Goal (3 numbers, placed before the future reference frames, see
:func:`with_goal`): the command's direction in the character's heading frame
``(cos, sin)`` and ``v*``. ``info``: ``reward_task``, ``task_heading_error`` (degrees between the command and
the pelvis's facing), ``task_speed`` (``v_c . d*``, m/s), ``task_speed_ratio`` (``task_speed / v*``).

``mpenv/HumanoidMimicStrike-v0`` -- :class:`StrikeEnv`: hit a target with an end effector (default the right
hand) during the clip's strike window, a phase interval of each cycle (default: the third of the cycle
around the effector's most forward reference position). The target of each window is the effector's
reference position at a random time in it, moved by a random offset of up to ``target_spread`` metres
(uniform in a ball), so hitting it means leaving the clip a little. DeepMimic's strike reward

    r_G = 1 once the target is hit in its window, else exp(-4 ||p_target - p_e||^2),

a hit being the effector within ``hit_radius`` of the target while the window is open. A new target appears
when a window closes. Goal (6 numbers, placed as the heading task's): the target relative to the pelvis in the
heading frame, the seconds until the window opens and until it closes, and whether it is hit. ``info``: ``reward_task``,
``task_distance`` (metres), and, at the step a window closes, ``task_hit`` (1 or 0: its mean is the hit rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mpenv.humanoid.env import HumanoidMimicEnv, heading_angle, heading_rotation, quaternion_matrix, yaw_placement
from mpenv.humanoid.mjcf import BODY_ORDER

__all__ = ["StrikeEnv", "TargetHeadingEnv"]

Step = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def with_goal(obs: np.ndarray, goal: np.ndarray, future_frames: int) -> np.ndarray:
    """The observation with the goal inserted between the character's state and the future reference frames, so
    that a task policy widened to more future frames (``--init-from``, which appends new inputs at the end) keeps
    the weights of its goal inputs."""
    split = len(obs) - 3 * len(BODY_ORDER) * future_frames
    return np.concatenate([obs[:split], goal, obs[split:]])


def travel_direction(reference: Any) -> float:
    """Yaw of the clip's direction of travel (its cycle's or its whole root displacement), or of its first frame's
    facing when the clip stays in place."""
    qpos = reference.qpos
    shift = reference.cycle_shift if reference.cyclic else qpos[-1, :3] - qpos[0, :3]
    if np.hypot(shift[0], shift[1]) < 1e-6:
        return heading_angle(quaternion_matrix(qpos[0, 3:7]))
    return float(np.arctan2(shift[1], shift[0]))


def _task_weight(weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"task_weight must be in [0, 1], got {weight}")
    return float(weight)


def _range(values: tuple[float, float], name: str, low: float = 0.0) -> tuple[float, float]:
    a, b = (float(v) for v in values)
    if not (np.isfinite(a) and np.isfinite(b) and low <= a <= b):
        raise ValueError(f"{name} must be (low, high) with {low} <= low <= high, got {values}")
    return a, b


class TargetHeadingEnv(HumanoidMimicEnv):
    """Imitate ``motion`` while moving in a commanded direction at a commanded speed (see the module).

    Args:
        speed_range: commanded speeds (m/s), uniform; the walk clip moves at about 0.98 m/s.
        initial_turn: the first command is within this many degrees of the start heading.
        turn: the command's change of direction, uniform in ``[-turn, turn]`` degrees.
        change_window: seconds into the episode between which the command changes, uniform.
        task_weight: ``w_G``; ``w_I = 1 - w_G`` (DeepMimic: 0.3 and 0.7).
        steer_rate: degrees per second at which the reference's direction of travel turns towards the
            command; 0: the reference keeps the character's heading (see the module).
        match_speed: penalize going faster than the command as well as slower (see the module).
        **kwargs: :class:`HumanoidMimicEnv`'s (``reference_sync`` defaults to ``"step"`` here).
    """

    def __init__(self, motion: Any = "walk", speed_range: tuple[float, float] = (0.8, 1.2),
                 initial_turn: float = 45.0, turn: float = 90.0, change_window: tuple[float, float] = (3.0, 7.0),
                 task_weight: float = 0.3, steer_rate: float = 0.0, match_speed: bool = False,
                 reference_sync: str = "step", **kwargs: Any) -> None:
        self.match_speed = bool(match_speed)
        self.speed_range = _range(speed_range, "speed_range")
        self.steer_rate = np.radians(float(steer_rate))
        if not (np.isfinite(self.steer_rate) and self.steer_rate >= 0):
            raise ValueError(f"steer_rate must be finite and >= 0, got {steer_rate}")
        self.change_window = _range(change_window, "change_window")
        self.initial_turn, self.turn = np.radians(float(initial_turn)), np.radians(float(turn))
        self.task_weight = _task_weight(task_weight)
        super().__init__(motion, reference_sync=reference_sync, **kwargs)
        n = self.observation_space.shape[0] + 3
        self.observation_space = spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self.direction, self.speed, self._change_step = 0.0, 1.0, 0
        self._com = np.zeros(3)
        self._travel = travel_direction(self.reference)
        self._steer = 0.0  # the yaw that places the reference (its travel direction is _travel + _steer)

    def reset_model(self) -> np.ndarray:
        obs = super().reset_model()
        rng = self.np_random
        facing = heading_angle(self.data.xmat[self._body_ids[0]])
        self.direction = _wrap(facing + rng.uniform(-self.initial_turn, self.initial_turn))
        self.speed = float(rng.uniform(*self.speed_range))
        self._change_step = round(rng.uniform(*self.change_window) * self.metadata["render_fps"])
        self._com = self.data.subtree_com[self._body_ids[0]].copy()
        self._steer = heading_angle(self._global.turn)
        return with_goal(obs, self._goal(), self.future_frames)

    def _follow_character(self, time: float) -> None:
        """The reference's pelvis onto the character's; its heading the character's, or steered (see the module)."""
        if self.steer_rate == 0:
            return super()._follow_character(time)
        step = self.steer_rate / self.metadata["render_fps"]
        self._steer = _wrap(self._steer + np.clip(_wrap(self.direction - self._travel - self._steer), -step, step))
        pelvis = self._reference_at(time, kinematics=False)["qpos"][:3]
        self._placement = yaw_placement(self._steer, pelvis, self.data.xpos[self._body_ids[0]])

    def step(self, action: np.ndarray) -> Step:
        obs, imitation, terminated, truncated, info = super().step(action)
        if self._frame == self._change_step:
            self.direction = _wrap(self.direction + self.np_random.uniform(-self.turn, self.turn))
            self.speed = float(self.np_random.uniform(*self.speed_range))
        com = self.data.subtree_com[self._body_ids[0]].copy()
        velocity = (com - self._com) * self.metadata["render_fps"]  # mean over the step
        self._com = com
        d = np.array([np.cos(self.direction), np.sin(self.direction), 0.0])
        speed = float(velocity @ d)
        shortfall = self.speed - speed if self.match_speed else max(0.0, self.speed - speed)
        task = float(np.exp(-2.5 * shortfall**2))
        facing = heading_angle(self.data.xmat[self._body_ids[0]])
        info |= {
            "reward_imitation": imitation,
            "reward_task": task,
            "task_heading_error": abs(np.degrees(_wrap(self.direction - facing))),
            "task_speed": speed,
            "task_speed_ratio": speed / self.speed,
            "command_direction": self.direction,
            "command_speed": self.speed,
        }
        reward = (1.0 - self.task_weight) * imitation + self.task_weight * task
        return with_goal(obs, self._goal(), self.future_frames), reward, terminated, truncated, info

    def _goal(self) -> np.ndarray:
        relative = self.direction - heading_angle(self.data.xmat[self._body_ids[0]])
        return np.array([np.cos(relative), np.sin(relative), self.speed])


class StrikeEnv(HumanoidMimicEnv):
    """Imitate ``motion`` while hitting a target with ``effector`` in each strike window (see the module).

    Args:
        effector: the body that strikes (a hand or a foot: ``right_wrist``, ``left_ankle``, ...).
        window: the strike window as a phase interval ``(start, end)`` of the cycle (of the clip if not
            cyclic), fractions in ``[0, 1]``; None: a third of the cycle centred where the effector is most
            forward in the reference, relative to the pelvis and its heading (a negative start: the window
            begins in the previous cycle).
        target_spread: radius (m) of the ball of random offsets from the effector's reference position.
        hit_radius: distance (m) from the target's centre that counts as a hit.
        task_weight: ``w_G``; ``w_I = 1 - w_G``.
        **kwargs: :class:`HumanoidMimicEnv`'s.
    """

    def __init__(self, motion: Any = "walk", effector: str = "right_wrist",
                 window: tuple[float, float] | None = None, target_spread: float = 0.15, hit_radius: float = 0.1,
                 task_weight: float = 0.3, **kwargs: Any) -> None:
        if effector not in BODY_ORDER:
            raise ValueError(f"effector must be a body of the humanoid ({', '.join(BODY_ORDER)}), got {effector!r}")
        if not (target_spread >= 0 and hit_radius > 0):
            raise ValueError(f"target_spread must be >= 0 and hit_radius > 0, got {target_spread}, {hit_radius}")
        self.effector, self.target_spread, self.hit_radius = effector, float(target_spread), float(hit_radius)
        self.task_weight = _task_weight(task_weight)
        super().__init__(motion, **kwargs)
        self._effector = BODY_ORDER.index(effector)
        self.window = _range(window, "window") if window is not None else self._most_forward_window()
        if self.window[1] > 1.0:
            raise ValueError(f"window must be phase fractions within [0, 1], got {window}")
        n = self.observation_space.shape[0] + 6
        self.observation_space = spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self.target, self.hit, self._window_index, self._scored = np.zeros(3), False, 0, False

    def _period(self) -> float:
        """Frames per cycle (the clip's last frame index if not cyclic): what window phases are fractions of."""
        ref = self.reference
        return float(ref.cycle_frames if ref.cyclic else max(ref.n_frames - 1, 1))

    def _most_forward_window(self) -> tuple[float, float]:
        ref = self.reference
        frames = ref.cycle_frames if ref.cyclic else ref.n_frames
        rotations = ref.body_rot[:frames, 0]
        forward = np.stack([np.cos(np.arctan2(rotations[:, 1, 0], rotations[:, 0, 0])),
                            np.sin(np.arctan2(rotations[:, 1, 0], rotations[:, 0, 0]))], axis=1)
        reach = np.sum((ref.body_pos[:frames, self._effector, :2] - ref.body_pos[:frames, 0, :2]) * forward, axis=1)
        centre = int(np.argmax(reach)) / self._period()
        if ref.cyclic:
            start = (centre - 1 / 6) % 1.0
            return (start, start + 1 / 3) if start + 1 / 3 <= 1.0 else (start - 1.0, start - 2 / 3)  # wraps
        return max(centre - 1 / 6, 0.0), min(centre + 1 / 6, 1.0)

    def _window_frames(self, index: int) -> tuple[float, float]:
        """Episode times (frames) at which window ``index`` (counted over cycles) opens and closes."""
        period = self._period()
        return (index + self.window[0]) * period, (index + self.window[1]) * period

    def _first_window_ending_after(self, time: float) -> int:
        if not self.reference.cyclic:
            return 0
        return int(np.floor((time - self.window[1] * self._period()) / self._period())) + 1

    def reset_model(self) -> np.ndarray:
        obs = super().reset_model()
        self._place_target(self._first_window_ending_after(self._start))
        return with_goal(obs, self._goal(), self.future_frames)

    def _place_target(self, index: int) -> None:
        """The target of window ``index``: the effector's reference position at a random time of it, plus a
        uniform offset in the ball of radius ``target_spread``."""
        rng = self.np_random
        opens, closes = self._window_frames(index)
        time = rng.uniform(max(opens, self._start + self._frame), closes)
        direction = rng.standard_normal(3)
        offset = direction / np.linalg.norm(direction) * self.target_spread * rng.uniform() ** (1 / 3)
        self.target = self.reference_state(time)["body_pos"][self._effector] + offset
        self.hit, self._window_index, self._scored = False, index, False

    def step(self, action: np.ndarray) -> Step:
        obs, imitation, terminated, truncated, info = super().step(action)
        time = self._start + self._frame
        opens, closes = self._window_frames(self._window_index)
        distance = float(np.linalg.norm(self.data.xpos[self._body_ids[self._effector]] - self.target))
        if opens <= time <= closes and distance < self.hit_radius:
            self.hit = True
        task = 1.0 if self.hit else float(np.exp(-4.0 * distance**2))
        info |= {"reward_imitation": imitation, "reward_task": task, "task_distance": distance}
        if time > closes and not self._scored:  # the window has closed: score it, and show the next target
            info["task_hit"] = float(self.hit)
            self._scored = True
            if self.reference.cyclic:
                self._place_target(self._window_index + 1)
        reward = (1.0 - self.task_weight) * imitation + self.task_weight * task
        return with_goal(obs, self._goal(), self.future_frames), reward, terminated, truncated, info

    def _goal(self) -> np.ndarray:
        ids = self._body_ids
        heading = heading_rotation(self.data.xmat[ids[0]].reshape(3, 3))
        opens, closes = self._window_frames(self._window_index)
        time, fps = self._start + self._frame, self.metadata["render_fps"]
        return np.concatenate([heading @ (self.target - self.data.xpos[ids[0]]),
                               [max(opens - time, 0.0) / fps, max(closes - time, 0.0) / fps, float(self.hit)]])
