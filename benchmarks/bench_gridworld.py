"""Env steps per second of ``mpenv/FrozenLake4x4-v0`` against gymnasium's ``FrozenLake-v1`` (same map,
slippery, same 100-step limit), measured side by side in one run.

Both are measured through ``gym.make`` (identical wrapper stacks: TimeLimit, OrderEnforcing,
PassiveEnvChecker) and raw (``.unwrapped``). Repetitions are interleaved, rotating the order, so that
clock-speed drift and noisy neighbours hit every contender alike; the table shows medians.

    .venv/bin/python benchmarks/bench_gridworld.py              # ~10 s
    .venv/bin/python benchmarks/bench_gridworld.py --steps 20000 --reps 3
    .venv/bin/python benchmarks/bench_gridworld.py --model-size 1000   # also time the 1M-state model
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import mpenv  # noqa: F401  (registers the mpenv/ ids)

CONTENDERS: dict[str, Callable[[], gym.Env]] = {
    "mpenv gym.make": lambda: gym.make("mpenv/FrozenLake4x4-v0"),
    "gymnasium gym.make": lambda: gym.make("FrozenLake-v1", is_slippery=True),
    "mpenv raw": lambda: gym.make("mpenv/FrozenLake4x4-v0").unwrapped,
    "gymnasium raw": lambda: gym.make("FrozenLake-v1", is_slippery=True).unwrapped,
}


def steps_per_second(env: gym.Env, actions: list[int]) -> float:
    """Run the whole action list, resetting at episode ends, exactly as a training loop would."""
    env.reset(seed=0)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
    return len(actions) / (time.perf_counter() - start)


def measure(steps: int, reps: int) -> dict[str, list[float]]:
    actions = np.random.default_rng(0).integers(0, 4, steps).tolist()
    envs = {name: make() for name, make in CONTENDERS.items()}
    for env in envs.values():
        steps_per_second(env, actions[: min(steps, 2000)])  # warm-up: memo caches, first-step checker
    names = list(envs)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            rates[name].append(steps_per_second(envs[name], actions))
    return rates


def model_build_times(size: int) -> None:
    from mpenv.gridworld import GridWorld, random_layout

    start = time.perf_counter()
    layout = random_layout(size, size, wall_density=0.2, hole_density=0.05, seed=0)
    env = GridWorld(layout, slip=0.2)
    built = time.perf_counter()
    model = env.sparse_model()
    done = time.perf_counter()
    megabytes = sum(array.nbytes for array in model) / 1e6
    print(
        f"\n{size}x{size} ({size * size:,} states): random_layout + GridWorld {built - start:.2f} s, "
        f"sparse_model {done - built:.2f} s ({megabytes:.0f} MB, K={model.prob.shape[2]})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per repetition")
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions (default 7)")
    parser.add_argument("--model-size", type=int, default=0, help="also time sparse_model() on N x N")
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, gymnasium {gym.__version__}, numpy {np.__version__}; "
        f"{args.steps:,} steps x {args.reps} interleaved reps, medians"
    )
    rates = measure(args.steps, args.reps)
    print(f"\n{'env':<22}{'steps/s':>12}{'min':>12}{'max':>12}")
    for name, values in rates.items():
        print(f"{name:<22}{statistics.median(values):>12,.0f}{min(values):>12,.0f}{max(values):>12,.0f}")
    for kind in ("gym.make", "raw"):
        ratio = statistics.median(rates[f"mpenv {kind}"]) / statistics.median(rates[f"gymnasium {kind}"])
        print(f"ratio mpenv / gymnasium ({kind}): {ratio:.2f}x")
    if args.model_size:
        model_build_times(args.model_size)


if __name__ == "__main__":
    main()
