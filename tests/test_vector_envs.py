"""Every registered id pickles and runs in subprocess vector envs: gymnasium's ``AsyncVectorEnv`` with its
default start method (``fork`` on Linux) and stable-baselines3's ``SubprocVecEnv`` with its default
(``forkserver``, which pickles the env constructors).

The vector envs run in a fresh interpreter (the test process has its own torch threading state, see
``conftest.py``), under a timeout: a deadlocked worker then fails the test, naming the id it hung on,
instead of hanging the suite. The timeouts only guard against a hang; they are far above the seconds
these runs take.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import mpenv  # noqa: F401 (registers the ids)

IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("mpenv/"))
HANG_TIMEOUT_S = 600


def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh interpreter; fail (rather than hang) if it does not finish in time.

    The interpreter gets its own process group, so that on a timeout its deadlocked workers are killed with it
    instead of being left behind as orphans."""
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=HANG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"hung for {HANG_TIMEOUT_S} s; done before the hang: {out.split()}")
    assert process.returncode == 0, err[-3000:]
    return out


def test_every_id_is_registered_here():
    assert "mpenv/HumanoidMimicWalk-v0" in IDS and "mpenv/FrozenLake4x4-v0" in IDS and len(IDS) >= 13


def test_async_vector_env_default_context_runs_every_id():
    """The user's call from issue 10, which deadlocked on the humanoid: the parent builds one env to read the
    spaces (torch work), then forks the workers, which build theirs."""
    code = f"""
import gymnasium as gym
import mpenv
for env_id in {IDS!r}:
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="async")
    envs.action_space.seed(0)
    obs, _ = envs.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert len(reward) == 2
    envs.close()
    print(env_id, flush=True)
"""
    assert run_isolated(code).split() == IDS


def test_async_vector_env_after_multithreaded_torch_in_parent():
    """A parent whose own torch code ran on several OpenMP threads before the fork (a training script, say):
    the forked workers must still build the humanoid (they would wait forever on the copied thread team)."""
    code = """
import gymnasium as gym
import torch
import mpenv
torch.set_num_threads(2)
a = torch.randn(400, 400, dtype=torch.float64)
(a @ a).sum()  # a parallel region: GNU OpenMP's thread team now exists in the parent
envs = gym.make_vec("mpenv/HumanoidMimicWalk-v0", num_envs=2, vectorization_mode="async")
envs.reset(seed=0)
envs.step(envs.action_space.sample())
envs.close()
print("ok", torch.get_num_threads())
"""
    assert run_isolated(code).split() == ["ok", "2"]


def test_sb3_subproc_vec_env_default_start_method_runs_every_id():
    # The forkserver preloads the heavy modules once, so each worker does not import torch and mujoco again
    # (about 4 s each on a loaded 2-core machine); the constructors are still pickled and the envs built there.
    code = f"""
import multiprocessing
import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import SubprocVecEnv
import mpenv

def make(env_id):
    return lambda: gym.make(env_id)

if __name__ == "__main__":
    multiprocessing.set_forkserver_preload(["mpenv.gridworld.env", "mpenv.humanoid.env", "vision3d.body.retarget"])
    for env_id in {IDS!r}:
        vec = SubprocVecEnv([make(env_id), make(env_id)])
        vec.seed(0)
        vec.reset()
        for _ in range(3):
            vec.step(np.array([vec.action_space.sample() for _ in range(2)]))
        vec.close()
        print(env_id, flush=True)
"""
    assert run_isolated(code).split() == IDS


@pytest.mark.parametrize("env_id", IDS)
def test_pickled_env_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    env.action_space.seed(3)
    actions = [env.action_space.sample() for _ in range(4)]
    env.step(actions[0])
    copy = pickle.loads(pickle.dumps(env))
    for action in actions[1:]:
        a, b = env.step(action), copy.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
