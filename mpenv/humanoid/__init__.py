"""MuJoCo humanoids of the course: a DeepMimic-style SMPL character (:mod:`mpenv.humanoid.mjcf`).

Importing this package imports neither MuJoCo nor torch; ``import mpenv`` (which comes first) has picked the
offscreen OpenGL backend, EGL, when there is no display (:mod:`mpenv.display`). Every submodule imports mujoco
lazily. The builder's names are re-exported lazily::

    from mpenv.humanoid import build_humanoid_xml, HINGE_NAMES

A PPO policy trained to imitate the walk clip ships in ``policies/walk`` (:func:`shipped_policy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def __getattr__(name: str) -> Any:
    """Lazy re-export of :mod:`mpenv.humanoid.mjcf`'s public names (``mjcf.__all__``): importing the package
    stays free of mujoco and torch until a name is used."""
    from mpenv.humanoid import mjcf

    if name in mjcf.__all__:
        return getattr(mjcf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shipped_policy(name: str = "walk") -> Path:
    """Folder of a trained policy shipped with mpenv (``mpenv-eval`` plays it: ``mpenv-eval <folder>``)."""
    folder = Path(__file__).parent / "policies" / name
    if not (folder / "config.json").exists():
        names = sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) if folder.parent.exists() else []
        raise ValueError(f"no shipped policy {name!r}; shipped: {names}")
    return folder
