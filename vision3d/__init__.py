"""3D vision of the course: an SMPL-style body model and fitting, 2D pose, implicit surfaces, NeRF,
hash grids and Gaussian splatting. Filled by later milestones; every torch module here goes through
:mod:`mpenv.device` for device selection and seeding.

Subpackages load on first use (``import vision3d`` imports nothing heavy), and each re-exports its main
names lazily::

    from vision3d.body import BodyModel, Motion, load_clip, fit_to_keypoints
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["body", "implicit", "nerf", "scenes", "splatting"]


def __getattr__(name: str) -> Any:
    """``vision3d.body`` without an explicit ``import vision3d.body``."""
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
