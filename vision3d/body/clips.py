"""The real motion clips shipped with mpenv, retargeted to the SMPL tree: names, loading, and how they were made.

>>> from vision3d.body.clips import load_clip, CLIPS
>>> walk = load_clip("walk")          # a Motion: Z-up, faces +x, 30 fps, one open walking cycle (cyclic=True)

Six clips, converted once from the original files by ``python -m vision3d.body.clips SOURCE_DIR`` (SOURCE_DIR holds
the files named in :data:`CLIPS`; here ``../shared/data/motions``) into ``data/motions/<name>.npz`` beside this
module; ``data/motions/SOURCES.txt`` gives each file's origin, format, frame rate, units and licence, with the CMU
acknowledgement. The conversion is deterministic, and a test checks that it reproduces the shipped files when the
originals are present.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from vision3d.body.motion import Motion
from vision3d.body.retarget import CMU_SOURCE, bvh_to_motion, deepmimic_to_motion

__all__ = ["CLIPS", "Clip", "clip_names", "clip_path", "convert_clip", "load_clip", "main"]

CMU_UNIT = 0.056444  # metres per CMU unit: (1 / 0.45) inch, from the CMU FAQ


@dataclass(frozen=True)
class Clip:
    """One shipped clip: the original file and how to convert it."""

    file: str
    kind: str  # "deepmimic" or "bvh"
    scale: float = 1.0  # BVH: metres per file unit
    fps: float | None = None  # resample to this rate (None: keep the original)
    origin: str = ""  # where the original file came from, for the Motion's ``source``


CLIPS: dict[str, Clip] = {
    "walk": Clip("deepmimic_humanoid3d_walk.txt", "deepmimic"),
    "run": Clip("deepmimic_humanoid3d_run.txt", "deepmimic"),
    "jump": Clip("deepmimic_humanoid3d_jump.txt", "deepmimic"),
    "cartwheel": Clip("deepmimic_humanoid3d_cartwheel.txt", "deepmimic"),
    "cmu_walk": Clip(
        "cmu_131_01_walk_scaled.bvh", "bvh", scale=1.0, fps=60.0,
        origin="subject 131 trial 01, via github.com/yuki-koyama/bvh11 (MIT) resources/scaled_131_01.bvh",
    ),
    "cmu_jumps": Clip(
        "cmu_01_01_forward_jumps.bvh", "bvh", scale=CMU_UNIT, fps=60.0,
        origin="subject 01 trial 01, via github.com/facebookresearch/fairmotion (BSD) tests/data/01_01.bvh",
    ),
}  # fmt: skip
"""Shipped clip name -> its original file and conversion settings (CMU clips resampled from 120 to 60 fps)."""


def _data_dir() -> Path:
    return Path(__file__).parent / "data" / "motions"


def clip_names() -> list[str]:
    return list(CLIPS)


def clip_path(name: str) -> Path:
    """Path of a shipped clip's ``.npz``; ``ValueError`` naming the choices for an unknown name."""
    if name not in CLIPS:
        raise ValueError(f"unknown motion clip {name!r}; shipped clips: {clip_names()}")
    return _data_dir() / f"{name}.npz"


def load_clip(name: str) -> Motion:
    """A shipped clip as a :class:`Motion` (Z-up world, rest body facing +x, mean shape)."""
    return Motion.load(clip_path(name))


def convert_clip(name: str, source_dir: str | Path) -> Motion:
    """Convert the original file of clip ``name`` found in ``source_dir`` (what :func:`main` ships)."""
    clip = CLIPS[name]
    path = Path(source_dir) / clip.file
    if clip.kind == "deepmimic":
        motion = deepmimic_to_motion(path)
    else:
        motion = bvh_to_motion(path, scale=clip.scale, source=f"{CMU_SOURCE}; {clip.origin}")
    if clip.fps is not None and clip.fps != motion.fps:
        motion = motion.resample(clip.fps)
    return Motion(motion.fps, motion.poses, motion.trans, motion.betas, name, motion.source, motion.cyclic)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vision3d.body.clips",
        description="Retarget the original motion files to SMPL and write the shipped clips (data/motions/*.npz).",
    )
    parser.add_argument("source_dir", help="folder with the original files (e.g. ../shared/data/motions)")
    parser.add_argument("--out", default=str(_data_dir()), help="output folder (default: the package's own)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        motion = convert_clip(name, args.source_dir)
        motion.save(out / f"{name}.npz")
        print(f"{name:10s} {motion.n_frames:5d} frames  {motion.fps:5.1f} fps  {motion.duration:5.2f} s  "
              f"cyclic={motion.cyclic}  -> {out / (name + '.npz')}")  # fmt: skip


if __name__ == "__main__":
    main()
