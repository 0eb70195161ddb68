"""``mpenv/HumanoidMimicLibrary-v0``: one env, many reference clips: the humanoid of :mod:`mpenv.humanoid.env`
tracks a clip drawn at every reset from a motion library, so that one policy can learn them all (PHC's setting,
Luo et al. 2023, on our six shipped clips rather than AMASS).

The library
    ``motions`` (default: every shipped clip, :func:`vision3d.body.clips.clip_names`) are shipped clip names,
    ``.npz`` / ``.bvh`` / DeepMimic ``.txt`` paths or :class:`~vision3d.body.motion.Motion` objects, as the base
    env's ``motion=`` takes. With ``mirrors=True`` (default) each clip also comes mirrored left/right,
    named ``<name>_mirror``: :meth:`Motion.mirror` with ``world_axis=1`` reflects the scene across the vertical
    x-z plane and swaps the left and right joints (for the shipped clips, Z-up and facing +x, the heading is
    kept; for any other Z-up clip the result is still the mirror image, up to a turn about the vertical that the
    random heading makes irrelevant). Every reference is built once, at construction (about 1.2 s for the twelve
    default clips on a loaded 2-core machine, :file:`benchmarks/bench_humanoid_library.py`).
    Clip names must be unique: they name the clip in ``info["clip"]`` and in ``reset(options={"clip": name})``.

Clip sampling (at every reset; ``reset(options={"clip": name})`` picks one instead)
    * ``sampling="uniform"``: ``p_c = 1 / C``.
    * ``sampling="failure"``: PHC's hard-negative mining as a running rate: each clip keeps an exponential
      moving average of its episodes' failures, ``f_c <- f_c + alpha (x - f_c)`` with ``x = 1`` if the episode
      lost tracking (``info["tracking_lost"]``: a fall, or a mean global joint error above 0.5 m) before its end
      and ``x = 0`` otherwise, ``alpha = failure_smoothing`` (default 0.1: about the clip's last 10 episodes),
      ``f_c = 0`` at the start; and clips are drawn with ``p_c = (f_c + epsilon) / sum_k (f_k + epsilon)``,
      ``epsilon = failure_floor`` (default 0.1), so a clip that always fails is drawn ``(1 + epsilon) / epsilon``
      = 11 times as often as one that never does, and no clip starves.

    An episode is recorded once: as a failure at its first step with ``tracking_lost``, as a success at the end
    of a non-cyclic clip, or else as a success when the next reset comes (the env cannot see gymnasium's
    ``TimeLimit``, so an episode cut short by a reset counts as a success); a reset before any step records
    nothing. The rates are kept in both sampling modes (``failure_rates``, :meth:`clip_probabilities`).
    **Vectorized envs** (``gym.make_vec``, SB3's ``SubprocVecEnv``) hold one library per process, and each keeps
    its own statistics from its own episodes; they are not pooled across processes (a caller that wants them
    pooled can gather outcomes and feed every process through :meth:`record_episode`, e.g. SB3's
    ``env_method``).

Observation
    As the base env's, with ``future_frames=3`` by default (508 numbers): the phase ``phi`` is the position in
    the cycle or clip, the same for every clip, so it cannot tell the policy *which* motion to make; the
    reference body positions of the next frames can. Three frames (0.1 s) give the policy the next target, the
    reference velocity and its acceleration (take-offs and landings of the jumps and the cartwheel), for 216
    more numbers and a few percent of the env's steps per second; PHC's goal state is the next frame alone, the
    minimum (``future_frames=1``).

``info`` has ``clip``, the active clip's name, at reset and at every step, besides the base env's terms.
Early termination allows the feet to touch the floor, and the hands too for a clip named ``cartwheel`` (or
its mirror), unless ``allowed_contacts`` fixes the bodies for every clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mpenv.device import torch_threads
from mpenv.humanoid.env import FOOT_BODIES, HAND_BODIES, HumanoidMimicEnv, load_motion
from mpenv.humanoid.reference import Reference, build_reference
from vision3d.body.motion import Motion

__all__ = ["HumanoidMimicLibraryEnv"]

SAMPLING_MODES = ("uniform", "failure")
MIRROR_SUFFIX = "_mirror"
MIRROR_WORLD_AXIS = 1  # the clips are Z-up and face +x, so the character's left is +y: reflect y


class HumanoidMimicLibraryEnv(HumanoidMimicEnv):
    """Motion imitation over a library of clips, one drawn per episode (see the module docstring).

    Args:
        motions: the clips (shipped names, file paths or ``Motion`` objects); default every shipped clip.
        mirrors: add each clip's left/right mirror image, named ``<name>_mirror``.
        sampling: ``"uniform"`` or ``"failure"`` (weighted by each clip's recent failure rate).
        failure_smoothing: ``alpha`` of the failure rates' moving average, in (0, 1].
        failure_floor: ``epsilon`` added to every rate before normalizing, > 0.
        future_frames: upcoming reference frames in the observation (default 3, see the module docstring).
        betas, allowed_contacts, **kwargs: as :class:`~mpenv.humanoid.env.HumanoidMimicEnv` (``motion`` excluded).
    """

    def __init__(
        self,
        motions: Sequence[str | Path | Motion] | None = None,
        mirrors: bool = True,
        sampling: str = "uniform",
        failure_smoothing: float = 0.1,
        failure_floor: float = 0.1,
        future_frames: int = 3,
        betas: np.ndarray | None = None,
        allowed_contacts: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        from vision3d.body.clips import clip_names
        from vision3d.body.retarget import smpl_rest_joints

        if "motion" in kwargs:
            raise ValueError("the library env takes motions=[...] (a list of clips), not motion=")
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
        if not (0.0 < failure_smoothing <= 1.0):
            raise ValueError(f"failure_smoothing must be in (0, 1], got {failure_smoothing}")
        if not (np.isfinite(failure_floor) and failure_floor > 0):
            raise ValueError(f"failure_floor must be finite and > 0, got {failure_floor}")
        if motions is None:
            motions = clip_names()
        if isinstance(motions, str | Path | Motion):
            raise ValueError(f"motions must be a list of clips, got the single clip {motions!r}")
        motions = list(motions)
        if not motions:
            raise ValueError(f"motions is empty: give at least one clip (shipped: {clip_names()})")
        with torch_threads(1):  # as the base env: safe to build after a fork
            loaded = [_named(load_motion(m), i) for i, m in enumerate(motions)]
            if mirrors:
                loaded = [c for m in loaded for c in (m, _mirrored(m))]
        names = [m.name for m in loaded]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"clip names must be unique (they name the clip in info and reset options), "
                             f"{duplicates} appear more than once; rename a Motion with its name field")

        super().__init__(motion=loaded[0], betas=betas, allowed_contacts=allowed_contacts,
                         future_frames=future_frames, **kwargs)
        self.sampling = sampling
        self.failure_smoothing, self.failure_floor = float(failure_smoothing), float(failure_floor)
        self.motions: list[Motion] = loaded
        self.clip_names: list[str] = names
        with torch_threads(1):
            rest = smpl_rest_joints(betas)
            self.references: list[Reference] = [self.reference] + [
                build_reference(m, self._character, rest, fps=self.reference.fps) for m in loaded[1:]
            ]
        self._allowed_masks = [self._contact_mask(m, allowed_contacts) for m in loaded]
        self.failure_rates = np.zeros(len(loaded))  # f_c, the running failure rate of each clip
        self.clip_episodes = np.zeros(len(loaded), dtype=int)  # episodes recorded per clip
        self._requested: str | None = None  # a clip named in reset's options
        self._clip, self._steps, self._recorded = 0, 0, True

    # ------------------------------------------------------------------------------------------ the library

    @property
    def clip(self) -> str:
        """Name of the active clip."""
        return self.clip_names[self._clip]

    def clip_probabilities(self) -> np.ndarray:
        """``(C,)`` probability of each clip at the next reset (see the module docstring for the formula)."""
        if self.sampling == "uniform":
            return np.full(len(self.clip_names), 1.0 / len(self.clip_names))
        weights = self.failure_rates + self.failure_floor
        return weights / weights.sum()

    def record_episode(self, clip: str, failed: bool) -> None:
        """Fold one episode's outcome into ``clip``'s failure rate (the env calls this itself; public for tests
        and for callers that pool outcomes from elsewhere)."""
        index = self._clip_index(clip)
        self.failure_rates[index] += self.failure_smoothing * (float(failed) - self.failure_rates[index])
        self.clip_episodes[index] += 1

    def _clip_index(self, name: str) -> int:
        if name not in self.clip_names:
            raise ValueError(f"unknown clip {name!r}; this library has {self.clip_names}")
        return self.clip_names.index(name)

    def _use_clip(self, index: int) -> None:
        """Make clip ``index`` the one the base env tracks: its motion, reference and allowed floor contacts."""
        self._clip = index
        self.motion, self.reference = self.motions[index], self.references[index]
        self._allowed = self._allowed_masks[index]

    def _contact_mask(self, motion: Motion, allowed_contacts: tuple[str, ...] | None) -> np.ndarray:
        """The base env's rule per clip: feet, plus hands for the cartwheel (and its mirror)."""
        if allowed_contacts is None:
            cartwheel = motion.name.removesuffix(MIRROR_SUFFIX) == "cartwheel"
            allowed_contacts = FOOT_BODIES + (HAND_BODIES if cartwheel else ())
        mask = np.zeros(self.model.nbody, dtype=bool)
        mask[[self.model.body(name).id for name in allowed_contacts]] = True
        return mask

    # ------------------------------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        requested = options.get("clip") if options else None
        if requested is not None:
            self._clip_index(requested)  # a clear error before anything changes
        if not self._recorded and self._steps > 0:  # the last episode ended without losing tracking
            self.record_episode(self.clip, failed=False)
        self._requested = requested
        return super().reset(seed=seed, options=options)

    def reset_model(self) -> np.ndarray:
        if self._requested is not None:
            index = self._clip_index(self._requested)
        else:
            index = int(self.np_random.choice(len(self.clip_names), p=self.clip_probabilities()))
        self._use_clip(index)
        self._steps, self._recorded = 0, False
        return super().reset_model()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        self._steps += 1
        if not self._recorded and (info["tracking_lost"] or truncated):
            self.record_episode(self.clip, failed=bool(info["tracking_lost"]))
            self._recorded = True
        info["clip"] = self.clip
        return obs, reward, terminated, truncated, info

    def _get_reset_info(self) -> dict[str, Any]:
        return {**super()._get_reset_info(), "clip": self.clip}


def _named(motion: Motion, index: int) -> Motion:
    """The motion with a name (``motion<i>`` for an unnamed ``Motion``)."""
    return motion if motion.name else Motion(motion.fps, motion.poses, motion.trans, motion.betas,
                                             f"motion{index}", motion.source, motion.cyclic)


def _mirrored(motion: Motion) -> Motion:
    mirror = motion.mirror(MIRROR_WORLD_AXIS)
    mirror.name = motion.name + MIRROR_SUFFIX
    return mirror
