"""Tabular gridworlds: FrozenLake, CliffWalking, Windy Gridworld, Four Rooms and random mazes as one
gymnasium env with an explicit, vectorized model; and ``TMaze``, a partially observable memory task.

``GridWorld``, ``TMaze`` and ``SparseModel`` are loaded on first access, so ``import mpenv`` (which registers the
ids through :mod:`mpenv.gridworld.registration`) does not import the environment code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpenv.gridworld.env import GridWorld
    from mpenv.gridworld.layouts import LAYOUTS, random_layout
    from mpenv.gridworld.model import SparseModel
    from mpenv.gridworld.tmaze import TMaze

__all__ = ["GridWorld", "TMaze", "SparseModel", "random_layout", "LAYOUTS"]

_HOME = {
    "GridWorld": "mpenv.gridworld.env",
    "TMaze": "mpenv.gridworld.tmaze",
    "SparseModel": "mpenv.gridworld.model",
    "random_layout": "mpenv.gridworld.layouts",
    "LAYOUTS": "mpenv.gridworld.layouts",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
