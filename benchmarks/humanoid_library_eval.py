"""One motion-library policy, clip by clip: how long it stays up and how closely it tracks each clip.

``mpenv-eval`` reports a library policy over clips drawn at random; this plays every clip of the library the
same number of episodes (``reset(options={"clip": name})``, random start times and headings from the seed)
and prints, per clip, the episodes that reach the time limit (or the clip's end) without a fall, PHC's
success (mean global joint error never above 0.5 m, no fall), and the root-relative and global MPJPE.

    python benchmarks/humanoid_library_eval.py mpenv/humanoid/policies/library --episodes 5
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.envs import make_env
from agents.evaluate import EpisodeStats, forget_memory, with_evaluation_metrics
from agents.sb3_ppo import load_policy
from mpenv.checkpoint import load_config


def evaluate_clip(env, act, clip: str, episodes: int, seed: int) -> EpisodeStats:
    stats = EpisodeStats(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode, options={"clip": clip})
        forget_memory(act)
        while True:
            obs, _, terminated, truncated, info = env.step(act(obs))
            stats.add(episode, info)
            if terminated or truncated:
                break
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="an exported policy folder or a PPO run directory of a library env")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per clip")
    parser.add_argument("--seed", type=int, default=0, help="seed of each clip's first episode")
    args = parser.parse_args()

    config = load_config(args.policy)
    env = make_env(config["env_id"], with_evaluation_metrics(config["env_id"], config["env_kwargs"]))
    if not hasattr(env.unwrapped, "clip_names"):
        parser.error(f"{args.policy}: {config['env_id']} is not a motion-library env")
    policy = load_policy(args.policy, env)

    def act(obs: np.ndarray) -> np.ndarray:
        return policy(obs[None])[0]

    print(f"{args.policy} | {config['env_id']} | {args.episodes} episodes per clip, seeds {args.seed}+")
    print(f"{'clip':18s} {'whole':>6s} {'PHC':>6s} {'length':>7s} {'MPJPE mm':>9s} {'worst':>6s} {'global mm':>10s}")
    rows = []
    for clip in env.unwrapped.clip_names:
        stats = evaluate_clip(env, act, clip, args.episodes, args.seed)
        whole = int(np.sum(~stats.fell))
        success = int(np.sum(~stats.lost & ~stats.fell))
        mpjpe = stats.episode_means("mpjpe") * 1000
        global_mpjpe = stats.episode_means("mpjpe_global") * 1000
        rows.append((whole, success, stats.lengths.mean(), mpjpe.mean()))
        print(f"{clip:18s} {whole:>3d}/{args.episodes:<2d} {success:>3d}/{args.episodes:<2d} "
              f"{stats.lengths.mean():7.1f} {mpjpe.mean():9.1f} {mpjpe.max():6.1f} {global_mpjpe.mean():10.1f}")
    whole, success, length, mpjpe = np.array(rows).T
    total = args.episodes * len(rows)
    print(f"{'all clips':18s} {int(whole.sum()):>3d}/{total:<3d}{int(success.sum()):>3d}/{total:<3d}"
          f"{length.mean():6.1f} {mpjpe.mean():9.1f}")


if __name__ == "__main__":
    main()
