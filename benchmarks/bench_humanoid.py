"""Throughput of mpenv/HumanoidMimic-v0, measured side by side in one run.

1. Environment overhead: ``env.step`` (physics + kinematics refresh + imitation reward + observation) against a
   raw loop of ``frame_skip`` ``mj_step`` calls on the same compiled model with the same controls. The ratio
   raw_time / env_time is the fraction of the physical limit the env reaches (goal >= 0.85),
   the median over alternating rounds.
2. Simulated seconds per wall second against gymnasium's ``Humanoid-v5``, random actions, resets included.
3. PPO training throughput (stable-baselines3, our default network and batch settings) on 2 cores with 1 and
   2 environment processes.

    python benchmarks/bench_humanoid.py          # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import mujoco
import numpy as np

import mpenv  # noqa: F401  (registers the ids)
from mpenv.humanoid.env import HumanoidMimicEnv


def env_vs_raw_physics(steps: int, rounds: int, seed: int = 0) -> tuple[float, float, float]:
    """Median over alternating rounds of the seconds for ``steps`` env steps and for the same number of raw
    ``frame_skip`` physics steps with the same controls; and the median of the per-round ratios raw / env.
    The env starts between reference frames (continuous RSI, the default), so each step also poses the reference
    by kinematics, as in training."""
    env = HumanoidMimicEnv("walk", early_termination=False)  # no resets: only steps are timed
    env.reset(seed=seed)
    model = mujoco.MjModel.from_xml_string(env._xml)
    data = mujoco.MjData(model)
    data.qpos[:] = env.init_qpos
    rng = np.random.default_rng(seed)
    env_times, raw_times = [], []
    for _ in range(rounds):
        actions = rng.uniform(-1, 1, size=(steps, 69))
        controls = env._ctrl_mid + env._ctrl_half * actions
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        env_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=env.frame_skip)
        raw_times.append(time.perf_counter() - start)
    ratios = np.array(raw_times) / np.array(env_times)
    return float(np.median(env_times)), float(np.median(raw_times)), float(np.median(ratios))


def random_steps_per_second(env: gym.Env, steps: int, seed: int = 0) -> float:
    """Env steps per wall second over ``steps`` random-action steps, resets included."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def simulated_seconds_per_second(env_id: str, steps: int, seed: int = 0) -> float:
    env = gym.make(env_id)
    return random_steps_per_second(env, steps, seed) * env.unwrapped.dt


def ppo_steps_per_second(n_envs: int, steps: int) -> float:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    torch.set_num_threads(1)
    vec_cls = SubprocVecEnv if n_envs > 1 else DummyVecEnv
    venv = VecNormalize(
        make_vec_env("mpenv/HumanoidMimicWalk-v0", n_envs=n_envs, seed=0, vec_env_cls=vec_cls), norm_reward=False
    )
    n_steps = steps // n_envs
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=512, n_epochs=5, seed=0, device="cpu",
                policy_kwargs={"net_arch": {"pi": [512, 256], "vf": [512, 256]}})  # fmt: skip
    start = time.perf_counter()
    model.learn(2 * n_steps * n_envs)  # two rollouts and two updates
    rate = 2 * n_steps * n_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="env steps per throughput measurement")
    parser.add_argument("--rounds", type=int, default=10, help="alternating env/raw rounds the steps are split into")
    parser.add_argument("--ppo-steps", type=int, default=8192, help="env steps per PPO rollout (0: skip PPO)")
    args = parser.parse_args()

    env_time, raw_time, ratio = env_vs_raw_physics(args.steps // args.rounds, args.rounds)
    steps = args.steps // args.rounds
    print(f"env step (physics + reward + observation): {steps / env_time:8.0f} steps/s (median, {args.rounds} rounds)")
    print(f"raw physics (16 mj_step per step):          {steps / raw_time:8.0f} steps/s")
    print(f"  env / physical limit: {ratio:.2f}x (median of the rounds' ratios; goal >= 0.85)")

    ours = simulated_seconds_per_second("mpenv/HumanoidMimicWalk-v0", args.steps)
    theirs = simulated_seconds_per_second("Humanoid-v5", args.steps)
    print(f"simulated s per wall s: HumanoidMimic {ours:.1f}, gymnasium Humanoid-v5 {theirs:.1f} "
          f"(ratio {ours / theirs:.2f}x; physics steps 480 Hz vs 333 Hz)")  # fmt: skip

    for n_envs in (1, 2) if args.ppo_steps > 0 else ():
        rate = ppo_steps_per_second(n_envs, args.ppo_steps)
        print(f"PPO training, {n_envs} env process(es): {rate:6.0f} env steps/s")


if __name__ == "__main__":
    main()
