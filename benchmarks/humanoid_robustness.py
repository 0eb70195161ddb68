"""The issue's robustness protocol for a humanoid policy in one table: pushes from four directions, and action noise.

``mpenv-eval --push`` measures one direction per call; this plays the same episodes (seeds ``seed``,
``seed + 1``, ...) for each push direction and for action noise alone, and prints per row the episodes that
survive, those whose tracking recovers (root-relative MPJPE back under 5 cm, no fall) within ``--recover-within``
seconds of the push's end, and the median and worst recovery time. A push is one ``--push`` newtons on the pelvis
for ``--push-duration`` seconds, ``--push-at`` seconds into the episode (the env's ``push_every`` is set to 0, so a
policy trained with repeated pushes gets exactly one here). Directions are degrees counter-clockwise from the
character's facing: 0 pushes it forward (from behind), 90 to its left, -90 to its right, 180 back (from the front).

    python benchmarks/humanoid_robustness.py mpenv/humanoid/policies/walk --episodes 20
    python benchmarks/humanoid_robustness.py training/push --push 300 --action-noise 0.1 --episodes 20
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from agents.envs import make_env
from agents.evaluate import EpisodeStats, run_episodes, with_evaluation_metrics
from agents.sb3_ppo import load_policy
from mpenv.checkpoint import load_config

FPS = 30.0  # control steps per second of the humanoid envs


def play(policy_dir: str, config: dict[str, Any], changes: dict[str, Any], episodes: int, seed: int) -> EpisodeStats:
    """``episodes`` deterministic episodes of the policy in its env with ``changes`` over the run's env kwargs."""
    kwargs = with_evaluation_metrics(config["env_id"], {**config["env_kwargs"], **changes})
    env = make_env(config["env_id"], kwargs)
    policy = load_policy(policy_dir, env)
    stats = EpisodeStats(episodes)
    run_episodes(env, lambda obs: policy(obs[None])[0], episodes, seed=seed, on_step=stats.add)
    env.close()
    return stats


def row(name: str, stats: EpisodeStats, recover_within: float) -> str:
    episodes = len(stats.lengths)
    survived = int(np.sum(~stats.fell))
    text = f"{name:22s} {survived:>4d}/{episodes:<4d}"
    if not stats.pushes:
        mpjpe = stats.episode_means("mpjpe") * 1000
        return text + f" {'-':>14s} {'-':>8s} {'-':>7s} {np.nanmean(mpjpe):9.1f} {np.nanmax(mpjpe):7.1f}"
    pushed = stats.push_end >= 0
    seconds = stats.recovery_seconds(FPS)
    recovered = ~np.isnan(seconds)
    in_time = recovered & (np.nan_to_num(seconds, nan=np.inf) <= recover_within)
    median = f"{np.median(seconds[recovered]):.2f}" if recovered.any() else "-"
    worst = f"{seconds[recovered].max():.2f}" if recovered.any() else "-"
    mpjpe = stats.episode_means("mpjpe") * 1000
    return text + (f" {int(in_time.sum()):>9d}/{int(pushed.sum()):<4d} {median:>8s} {worst:>7s} "
                   f"{np.nanmean(mpjpe):9.1f} {np.nanmax(mpjpe):7.1f}")


def parse_directions(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--directions takes degrees separated by commas, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("policy", help="an exported policy folder or a PPO run directory of a humanoid env")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of each row's first episode")
    parser.add_argument("--push", type=float, default=300.0, help="push force, newtons")
    parser.add_argument("--push-duration", type=float, default=0.2, help="seconds the push lasts")
    parser.add_argument("--push-at", type=float, default=1.0, help="seconds into the episode")
    parser.add_argument("--directions", type=parse_directions, default=[0.0, 90.0, -90.0, 180.0],
                        help="push directions, degrees from the character's facing, comma-separated")
    parser.add_argument("--action-noise", type=float, default=0.1,
                        help="sigma of the action-noise row (0: no such row)")
    parser.add_argument("--recover-within", type=float, default=2.0,
                        help="seconds after the push within which tracking must recover to count")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.push <= 0 or args.push_duration <= 0 or args.push_at < 0 or args.action_noise < 0:
        parser.error("need --episodes >= 1, --push > 0, --push-duration > 0, --push-at >= 0, --action-noise >= 0")

    config = load_config(args.policy)
    print(f"{args.policy} | {config['env_id']} | {args.episodes} episodes per row, seeds {args.seed}+ | "
          f"{args.push:g} N for {args.push_duration:g} s at {args.push_at:g} s")
    print(f"{'perturbation':22s} {'survived':>9s} {f'rec. <={args.recover_within:g}s':>14s} {'median s':>8s} "
          f"{'worst s':>7s} {'MPJPE mm':>9s} {'worst':>7s}")
    start = time.perf_counter()
    for direction in args.directions:
        changes = {"push_force": args.push, "push_duration": args.push_duration, "push_at": args.push_at,
                   "push_every": 0.0, "push_direction": direction}
        stats = play(args.policy, config, changes, args.episodes, args.seed)
        print(row(f"push {direction:+g} deg", stats, args.recover_within), flush=True)
    if args.action_noise > 0:
        stats = play(args.policy, config, {"push_force": 0.0, "action_noise": args.action_noise}, args.episodes,
                     args.seed)
        print(row(f"action noise {args.action_noise:g}", stats, args.recover_within), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
