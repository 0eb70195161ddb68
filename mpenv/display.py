"""Rendering without a display: the backends chosen for this process at ``import mpenv``.

On a machine without a display (a server, a container, CI: on Linux neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``
is set) two rendering libraries first look for a window system, noisily or fatally:

* MuJoCo's renderer (gymnasium's ``MujocoRenderer``) defaults to GLFW, which needs one. ``MUJOCO_GL=egl`` selects
  the offscreen EGL backend; MuJoCo reads it when it is first imported.
* SDL, through pygame (gymnasium's classic-control rendering, CartPole & co., calls ``pygame.display.init()`` even
  for ``rgb_array``), probes X11, then Wayland -- whose client library prints ``error: XDG_RUNTIME_DIR is invalid
  or not set in the environment.`` to stderr -- and then settles on its ``offscreen`` driver. Every video of such
  an env printed that line. ``SDL_VIDEODRIVER=offscreen`` asks for that same driver directly: the same frames,
  no probe, no message.

:func:`use_headless_backends` sets both, only when there is no display and only where the user has not set the
variable; child processes (vector envs) inherit them. Nothing is imported here.
"""

from __future__ import annotations

import os
import sys

__all__ = ["HEADLESS_BACKENDS", "display_available", "use_headless_backends"]

HEADLESS_BACKENDS = {"MUJOCO_GL": "egl", "SDL_VIDEODRIVER": "offscreen"}
"""Environment variable -> value set when there is no display."""


def display_available() -> bool:
    """Whether a window can be opened: always on macOS and Windows; elsewhere (X11 or Wayland) only when
    ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set -- without, GLFW aborts the interpreter when asked for a window."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def use_headless_backends() -> None:
    """Set :data:`HEADLESS_BACKENDS` in ``os.environ`` when there is no display, keeping any value already set."""
    if not display_available():
        for name, value in HEADLESS_BACKENDS.items():
            os.environ.setdefault(name, value)
