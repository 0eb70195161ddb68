"""Gymnasium registration of the humanoid imitation ids (string entry points: nothing heavy is imported).

``mpenv/HumanoidMimic-v0`` takes any motion (``motion=`` a shipped clip name or a file); one id per shipped clip
fixes it; ``mpenv/HumanoidMimicLibrary-v0`` draws one clip per episode from a library
(:mod:`mpenv.humanoid.library`: every shipped clip and its mirror by default). Episodes are 300 steps (10 s at
30 Hz); a non-cyclic clip also ends with its last frame.
"""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "mpenv.humanoid.env:HumanoidMimicEnv"
MAX_EPISODE_STEPS = 300
LIBRARY_ID = "mpenv/HumanoidMimicLibrary-v0"
LIBRARY_ENTRY_POINT = "mpenv.humanoid.library:HumanoidMimicLibraryEnv"

# id -> shipped clip
CLIP_IDS: dict[str, str] = {
    "mpenv/HumanoidMimicWalk-v0": "walk",
    "mpenv/HumanoidMimicRun-v0": "run",
    "mpenv/HumanoidMimicJump-v0": "jump",
    "mpenv/HumanoidMimicCartwheel-v0": "cartwheel",
    "mpenv/HumanoidMimicCmuWalk-v0": "cmu_walk",
    "mpenv/HumanoidMimicCmuJumps-v0": "cmu_jumps",
}


TASK_IDS: dict[str, str] = {
    "mpenv/HumanoidMimicHeading-v0": "mpenv.humanoid.tasks:TargetHeadingEnv",
    "mpenv/HumanoidMimicStrike-v0": "mpenv.humanoid.tasks:StrikeEnv",
}
"""Task objectives with imitation (:mod:`mpenv.humanoid.tasks`), on the walk clip by default."""


def register_humanoids() -> None:
    """Register the ids that are not registered yet (idempotent)."""
    ids = {"mpenv/HumanoidMimic-v0": (ENTRY_POINT, {}),
           **{env_id: (ENTRY_POINT, {"motion": clip}) for env_id, clip in CLIP_IDS.items()},
           **{env_id: (entry_point, {}) for env_id, entry_point in TASK_IDS.items()},
           LIBRARY_ID: (LIBRARY_ENTRY_POINT, {})}
    for env_id, (entry_point, kwargs) in ids.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=MAX_EPISODE_STEPS)
