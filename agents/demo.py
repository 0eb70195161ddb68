"""``make demo`` (``python -m agents.demo``): the classic cliff-walking comparison of Sutton & Barto,
Example 6.6, plus dynamic programming on a slippery lake, end to end through ``mpenv-train``'s code.

1. Value iteration solves ``mpenv/CliffWalking-v0`` exactly from its model P.
2. SARSA and Q-learning learn it from experience (epsilon = 0.1): Q-learning's greedy path runs along
   the cliff edge (optimal), SARSA's keeps a row away (safer under exploration), and Q-learning's
   online return is worse because exploration near the edge sometimes falls off.
3. Value iteration and Q-learning on the slippery ``mpenv/FrozenLake8x8-v0``.

Everything lands in ``runs/``: TensorBoard logs, checkpoints, a values.png per run, and
``runs/demo_cliffwalking.png`` comparing the three solutions and the online learning curves.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from agents import dp, td
from agents.envs import make_env
from agents.plots import draw_value_policy, figure_size, save_figure
from agents.train import RunConfig, train
from mpenv.checkpoint import load_arrays
from mpenv.logger import read_scalars

CLIFF = "mpenv/CliffWalking-v0"
LAKE = "mpenv/FrozenLake8x8-v0"
CLIFF_TD = {"n_episodes": 500, "alpha": 0.5, "alpha_end": 0.1, "gamma": 1.0, "epsilon": 0.1}  # SARSA, Q-learning


def greedy_path_length(env_id: str, pi: np.ndarray, max_steps: int = 200) -> int:
    env = make_env(env_id)
    state, _ = env.reset(seed=0)
    for step in range(1, max_steps + 1):
        state, _, terminated, truncated, _ = env.step(int(pi[state]))
        if terminated or truncated:
            return step
    return max_steps


def smoothed(values: np.ndarray, window: int = 20) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def comparison_figure(runs: dict[str, Path]) -> Figure:
    env = make_env(CLIFF)
    width, height = figure_size(env, panels=1)
    fig = Figure(figsize=(width * 1.6, height * 4), layout="constrained")
    axes = fig.subplots(len(runs) + 1, 1)
    for ax, (label, run_dir) in zip(axes, runs.items(), strict=False):
        arrays = load_arrays(run_dir)
        draw_value_policy(ax, env, arrays["V"], arrays["pi"], title=label)
    curves = axes[-1]
    for label, run_dir in runs.items():
        if label.startswith("value iteration"):
            continue
        _, returns = read_scalars(run_dir, "charts/episodic_return")
        curves.plot(smoothed(returns), label=label)
    curves.set_ylim(-120, 0)
    curves.set_xlabel("episode")
    curves.set_ylabel("online return (20-episode mean)")
    curves.legend()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs", help="where the runs go")
    parser.add_argument("--seed", type=int, default=1, help="seed of every learner and env (and the run names)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def run(algo: str, env: str, params: object) -> Path:
        config = RunConfig(env=env, seed=args.seed, logdir=args.logdir, eval_episodes=100)
        print(f"\n== {algo} on {env}")
        return train(algo, config, params)

    # train() gives every learner the run's seed (and its env's first reset), so --seed changes the curves.
    cliff = {
        "value iteration (exact)": run("value-iteration", CLIFF, dp.ValueIterationConfig(gamma=1.0)),
        "SARSA": run("sarsa", CLIFF, td.SarsaConfig(**CLIFF_TD)),
        "Q-learning": run("q-learning", CLIFF, td.QLearningConfig(**CLIFF_TD)),
    }
    run("value-iteration", LAKE, dp.ValueIterationConfig(gamma=0.99))
    run("q-learning", LAKE, td.QLearningConfig(n_episodes=20_000, alpha=0.1, gamma=0.99, epsilon=1.0,
                                               epsilon_end=0.05))

    picture = save_figure(comparison_figure(cliff), Path(args.logdir) / "demo_cliffwalking.png")
    print("\n== CliffWalking greedy paths (Sutton & Barto, Example 6.6)")
    for label, run_dir in cliff.items():
        steps = greedy_path_length(CLIFF, load_arrays(run_dir)["pi"])
        print(f"  {label:<24} {steps:3d} steps to the goal")
    print(f"\nfinished in {time.perf_counter() - start:.0f} s")
    print(f"  picture:      {picture}")
    print(f"  runs:         {args.logdir}/  (values.png, config.json, checkpoint.npz in each)")
    print(f"  TensorBoard:  .venv/bin/tensorboard --logdir {args.logdir}")
    print(f"  evaluate:     .venv/bin/mpenv-eval {cliff['Q-learning']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
