"""Making environments by id for the CLIs, with mpenv's ids registered first."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **extra: Any) -> gym.Env:
    """``gym.make`` that knows the ``mpenv/...`` ids and turns gymnasium's errors into ``ValueError``."""
    import mpenv  # noqa: F401  (registers the mpenv/ ids)

    try:
        return gym.make(env_id, **(env_kwargs or {}), **extra)
    except gym.error.Error as err:
        raise ValueError(f"cannot make env {env_id!r}: {err}") from err
    except TypeError as err:  # an env kwarg the env does not take
        raise ValueError(f"cannot make env {env_id!r} with kwargs {env_kwargs}: {err}") from err
