"""Benchmark of :func:`agents.dp.value_iteration`.

1. A ``--size`` x ``--size`` random gridworld (default 1000 x 1000 = 1M states x 4 actions) must converge
   to ``--tol`` in under 30 s with a peak resident memory under 2 GB (``resource.getrusage``, the whole
   process: Python, gymnasium, the env's model and the solver).
2. On a ``--baseline-size`` grid (default 100 x 100) the vectorised solver must be at least 10x faster than
   a straightforward per-state Python loop over the toy-text ``P`` (same synchronous sweeps, same gamma,
   same tol), and both must give the same V.

The grid is ``mpenv.gridworld.random_layout`` (start top-left, goal bottom-right, walls with probability
``--wall-density``) in ``mpenv/GridWorld-v0``: reward 1 on reaching the goal, 0 otherwise, optionally
slippery (``--slip``). With gamma = 0.99 and tol = 1e-6 value iteration needs about
log(tol) / log(gamma) = 1375 sweeps, whatever the grid size, once the grid is wider than that.

    python benchmarks/bench_value_iteration.py                       # the targets above
    python benchmarks/bench_value_iteration.py --size 300 --gamma 0.9 --slip 0.2

Exits with status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import gymnasium as gym
import numpy as np

import mpenv  # noqa: F401  (registers the mpenv/ ids)
from agents.dp import MDP, value_iteration
from mpenv.gridworld import random_layout

TIME_LIMIT_S = 30.0
MEMORY_LIMIT_MB = 2048.0
MIN_SPEEDUP = 10.0


def make_grid(size: int, wall_density: float, slip: float, seed: int) -> gym.Env:
    layout = random_layout(size, size, wall_density=wall_density, seed=seed)
    return gym.make("mpenv/GridWorld-v0", layout=layout, slip=slip)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def solve(mdp: MDP, gamma: float, tol: float) -> tuple[np.ndarray, int, float]:
    """Vectorised value iteration; returns (V, sweeps, seconds)."""
    sweeps = []
    start = time.perf_counter()
    # stop="delta": the loop baseline's rule (value_iteration's default also watches the error bound).
    V, _ = value_iteration(mdp, gamma=gamma, tol=tol, stop="delta", log=lambda tag, value, step: sweeps.append(step))
    return V, sweeps[-1], time.perf_counter() - start


def value_iteration_loop(P: dict, n_states: int, n_actions: int, gamma: float, tol: float) -> tuple[np.ndarray, int]:
    """The textbook version: for every state, for every action, sum over the outcomes in Python.

    Synchronous sweeps (v_{k+1} from v_k) and the same stopping rule as the vectorised solver, so the
    two produce the same sequence of value functions.
    """
    V = [0.0] * n_states
    for sweep in range(1, 1_000_000):
        V_new = [
            max(
                sum(p * (r + (0.0 if done else gamma * V[s_next])) for p, s_next, r, done in P[s][a])
                for a in range(n_actions)
            )
            for s in range(n_states)
        ]
        delta = max(abs(a - b) for a, b in zip(V_new, V, strict=True))
        V = V_new
        if delta < tol:
            return np.array(V), sweep
    raise RuntimeError("the per-state loop did not converge")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000, help="side of the large grid (states = size^2)")
    parser.add_argument("--baseline-size", type=int, default=100, help="side of the grid for the loop baseline")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    parser.add_argument("--tol", type=float, default=1e-6, help="stop when the sup-norm change is below tol")
    parser.add_argument("--wall-density", type=float, default=0.2, help="probability of a wall per cell")
    parser.add_argument("--slip", type=float, default=0.0, help="slip probability (K = 3 outcomes if > 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random layouts")
    args = parser.parse_args(argv)
    print(f"value iteration, gamma={args.gamma}, tol={args.tol:g}, slip={args.slip}, walls={args.wall_density}")

    # 1. Large grid: time and peak memory. Measured first, as ru_maxrss is a peak over the process's life.
    t0 = time.perf_counter()
    env = make_grid(args.size, args.wall_density, args.slip, args.seed)
    mdp = MDP.from_env(env)
    model_s = time.perf_counter() - t0
    V_large, sweeps_large, solve_s = solve(mdp, args.gamma, args.tol)
    memory_mb = peak_rss_mb()
    start_value = V_large[env.unwrapped.start_state]
    del mdp, env, V_large

    # 2. Small grid: vectorised vs per-state Python loop.
    env = make_grid(args.baseline_size, args.wall_density, args.slip, args.seed)
    mdp = MDP.from_env(env)
    V_fast, sweeps_fast, fast_s = solve(mdp, args.gamma, args.tol)
    P = env.unwrapped.P
    t0 = time.perf_counter()
    V_loop, sweeps_loop = value_iteration_loop(P, mdp.n_states, mdp.n_actions, args.gamma, args.tol)
    loop_s = time.perf_counter() - t0
    max_diff = float(np.abs(V_fast - V_loop).max())
    speedup = loop_s / fast_s

    n_large = args.size**2
    rows = [
        ("states x actions x outcomes", f"{n_large:,} x 4 x {1 if args.slip == 0 else 3}",
         f"{args.baseline_size**2:,} x 4 x {1 if args.slip == 0 else 3}"),
        ("sweeps", f"{sweeps_large}", f"{sweeps_fast} (loop: {sweeps_loop})"),
        ("model build (env + MDP) [s]", f"{model_s:.2f}", ""),
        ("value iteration [s]", f"{solve_s:.2f}", f"{fast_s:.4f} (loop: {loop_s:.2f})"),
        ("per sweep [ms]", f"{1e3 * solve_s / sweeps_large:.2f}", f"{1e3 * fast_s / sweeps_fast:.3f} "
         f"(loop: {1e3 * loop_s / sweeps_loop:.1f})"),
        ("peak RSS [MB]", f"{memory_mb:.0f}", ""),
        ("V(start)", f"{start_value:.3g}", f"max |V_fast - V_loop| = {max_diff:.2e}"),
        ("speedup over per-state loop", "", f"{speedup:.0f}x"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {f'{args.size}x{args.size}':>22}  {f'{args.baseline_size}x{args.baseline_size}'}")
    for name, large, small in rows:
        print(f"{name:{width}}  {large:>22}  {small}")

    checks = [
        (f"{args.size}x{args.size} solve < {TIME_LIMIT_S:.0f} s", solve_s < TIME_LIMIT_S),
        (f"peak RSS < {MEMORY_LIMIT_MB:.0f} MB", memory_mb < MEMORY_LIMIT_MB),
        (f"speedup >= {MIN_SPEEDUP:.0f}x", speedup >= MIN_SPEEDUP),
        ("same V as the loop (1e-9)", max_diff < 1e-9),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
