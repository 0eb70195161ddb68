"""``mpenv-eval CHECKPOINT --episodes N``: reload a trained policy and report its return.

The checkpoint's ``config.json`` names the env id and kwargs, so the same environment is rebuilt;
the policy ``pi`` in ``checkpoint.npz`` is a greedy action per state (int [S]) or action
probabilities per state (float [S, A]).
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np

from agents.checkpoint import CheckpointError, load_arrays, load_config
from agents.envs import make_env
from agents.tabular import PolicySampler, agent_rng, discrete_sizes


def evaluate_policy(env: gym.Env, pi: np.ndarray, episodes: int, seed: int = 0,
                    max_steps: int = 10_000) -> np.ndarray:
    """Undiscounted return of each of ``episodes`` episodes under ``pi`` (int [S] or float [S, A]); the
    first reset is seeded so the whole evaluation is reproducible. ``max_steps`` guards envs without a
    time limit against a policy that never ends an episode (an untrained CliffWalking table, say)."""
    n_states, n_actions = discrete_sizes(env, "evaluation")
    choose, rng = PolicySampler(pi, n_states, n_actions), agent_rng(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        state, _ = env.reset(seed=seed if episode == 0 else None)
        for _ in range(max_steps):
            state, reward, terminated, truncated, _ = env.step(choose(int(state), rng))
            returns[episode] += float(reward)
            if terminated or truncated:
                break
    return returns


def check_policy(pi: np.ndarray, env: gym.Env, source: str) -> None:
    """A policy from a file must fit the env it is run on; the error names the file."""
    try:
        PolicySampler(pi, *discrete_sizes(env, "evaluation"))
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpenv-eval", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Evaluate a checkpoint written by mpenv-train: rebuilds its env from config.json and "
                    "runs its policy (greedy for control and DP runs).")
    parser.add_argument("checkpoint", help="run directory (or its checkpoint.npz)")
    parser.add_argument("--episodes", type=int, default=100, help="number of evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first reset and of stochastic policies")
    parser.add_argument("--render", choices=["none", "ansi"], default="none",
                        help="print the first episode's frames as text")
    return parser


def render_episode(env_id: str, env_kwargs: dict, pi: np.ndarray, seed: int) -> None:
    env = make_env(env_id, env_kwargs, render_mode="ansi")
    choose, rng = PolicySampler(pi, *discrete_sizes(env, "evaluation")), agent_rng(seed)
    state, _ = env.reset(seed=seed)
    print(env.render())
    for _ in range(200):
        state, _, terminated, truncated, _ = env.step(choose(int(state), rng))
        print(env.render())
        if terminated or truncated:
            break


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.episodes < 1:
        print("mpenv-eval: error: --episodes must be at least 1", file=sys.stderr)
        return 2
    try:
        config = load_config(args.checkpoint)
        arrays = load_arrays(args.checkpoint)
        if "pi" not in arrays or "env_id" not in config:
            raise CheckpointError(f"{args.checkpoint}: needs a policy 'pi' and an 'env_id' in config.json")
        env = make_env(config["env_id"], config.get("env_kwargs"))
        pi = arrays["pi"]
        check_policy(pi, env, str(args.checkpoint))
    except (CheckpointError, ValueError) as err:
        print(f"mpenv-eval: error: {err}", file=sys.stderr)
        return 2
    if args.render == "ansi":
        render_episode(config["env_id"], config.get("env_kwargs") or {}, pi, args.seed)
    returns = evaluate_policy(env, pi, args.episodes, seed=args.seed)
    print(f"{config['env_id']} | {config.get('algo', '?')} | {args.episodes} episodes: "
          f"return {returns.mean():.3f} +- {returns.std():.3f} (min {returns.min():.3g}, max {returns.max():.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
