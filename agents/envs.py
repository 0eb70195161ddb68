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


def make_vector_env(env_id: str, env_kwargs: dict[str, Any] | None, n_envs: int, seed: int) -> gym.vector.VectorEnv:
    """``n_envs`` copies of the env stepped in lock-step in this process, with episode statistics.

    Autoreset happens in the same step that ends an episode (``AutoresetMode.SAME_STEP``): the returned
    observation is already the next episode's first, and the last one is in ``info["final_obs"]``, so
    a rollout never contains a transition across two episodes. Seeded through the first ``reset``.
    """
    import mpenv  # noqa: F401  (registers the mpenv/ ids)

    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}")
    try:
        envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                            **(env_kwargs or {}))
    except gym.error.Error as err:
        raise ValueError(f"cannot make env {env_id!r}: {err}") from err
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.action_space.seed(seed)
    return envs


def finished_episodes(infos: dict[str, Any]) -> list[tuple[float, int]]:
    """``(return, length)`` of every episode that ended in this vector step (RecordEpisodeStatistics)."""
    if "episode" not in infos:
        return []
    done = infos["_episode"]
    return [(float(r), int(n)) for r, n in zip(infos["episode"]["r"][done], infos["episode"]["l"][done], strict=True)]
