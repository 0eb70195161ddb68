"""Making environments by id for the CLIs, with mpenv's ids registered first."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **extra: Any) -> gym.Env:
    """``gym.make`` that knows the ``mpenv/...`` ids and turns gymnasium's errors into ``ValueError``."""
    import mpenv  # noqa: F401  (registers the mpenv/ ids)

    try:
        return gym.make(env_id, **(env_kwargs or {}), **extra)
    except gym.error.Error as err:
        raise ValueError(f"cannot make env {env_id!r}: {err}") from err
    except Exception as err:  # the env's own constructor: a kwarg it does not take, a file it cannot read, ...
        raise ValueError(f"cannot make env {env_id!r} with kwargs {env_kwargs}: {err}") from err


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """The JSON object of an ``--env-kwargs`` flag."""
    try:
        kwargs = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"--env-kwargs is not valid JSON ({err}): {text!r}") from err
    if not isinstance(kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {text!r}")
    return kwargs


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
    except Exception as err:  # the env's own constructor
        raise ValueError(f"cannot make env {env_id!r} with kwargs {env_kwargs}: {err}") from err
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.action_space.seed(seed)
    return envs


def finished_episodes(infos: dict[str, Any]) -> list[tuple[float, int]]:
    """``(return, length)`` of every episode that ended in this vector step (RecordEpisodeStatistics)."""
    if "episode" not in infos:
        return []
    done = infos["_episode"]
    return [(float(r), int(n)) for r, n in zip(infos["episode"]["r"][done], infos["episode"]["l"][done], strict=True)]


INFO_TERM_PREFIXES = ("reward_", "mpjpe", "pa_mpjpe", "accel_error", "task_")
"""Numeric ``info`` keys worth averaging and logging: the humanoid's reward terms, tracking errors and task
measures."""


class InfoMeans:
    """Running means of the numeric ``info`` terms (:data:`INFO_TERM_PREFIXES`) over the steps added.

    Takes a single env's ``info`` dict (scalars) or a vector env's (arrays with ``_key`` masks of the envs
    that reported the key this step).
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, info: dict[str, Any]) -> None:
        for key, value in info.items():
            if not key.startswith(INFO_TERM_PREFIXES):
                continue
            values = np.asarray(value)
            if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
                continue
            if values.ndim:  # vector env: only the envs whose mask is set reported the key
                values = values[np.asarray(info.get(f"_{key}", np.ones(values.shape, dtype=bool)))]
            self.sums[key] = self.sums.get(key, 0.0) + float(values.sum())
            self.counts[key] = self.counts.get(key, 0) + int(values.size)

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in sorted(self.sums) if self.counts[key]}

    def pop_means(self) -> dict[str, float]:
        """The means so far, then start over (one rollout at a time)."""
        means = self.means()
        self.sums.clear()
        self.counts.clear()
        return means
