"""mpenv: the Machine Perception course as Gymnasium environments and reference implementations.

Importing ``mpenv`` registers its environments under the ``mpenv`` namespace::

    import gymnasium as gym
    import mpenv  # noqa: F401  (registers the ids)
    env = gym.make("mpenv/CliffWalking-v0")

Without the import, ``gym.make("mpenv:mpenv/CliffWalking-v0")`` imports this package first; linters
that flag the unused import are happy with ``gym.register_envs(mpenv)``.

Only lightweight modules are imported here: environments are registered by entry-point strings and
loaded on first ``gym.make``; torch is imported by ``mpenv.device`` only when it is used. Without a display,
the import also picks the offscreen rendering backends (:mod:`mpenv.display`).
"""

from mpenv.display import use_headless_backends

use_headless_backends()  # before anything imports mujoco or pygame

from mpenv.gridworld.registration import register_gridworlds  # noqa: E402
from mpenv.humanoid.registration import register_humanoids  # noqa: E402

__version__ = "0.1.0"

register_gridworlds()
register_humanoids()
