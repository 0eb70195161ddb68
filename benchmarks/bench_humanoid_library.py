"""mpenv/HumanoidMimicLibrary-v0 against the single-clip env: construction time and env steps per second.

Side by side in one run: each round builds and steps every variant in turn (random actions, resets included,
as in training through ``gym.make`` with its 300-step limit), and the medians over the rounds are reported, so
the ratios stay meaningful on a loaded machine. Variants: the walk alone (``future_frames=0``, the single-clip
ids' default) and with the library's 3 future frames, the library without them and the default library (12
clips, 3 future frames). Construction: the median is with the SMPL body model already loaded in the process;
"first" is round one's, which also loads it for the first variant.

    python benchmarks/bench_humanoid_library.py --rounds 5 --steps 600
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
from bench_humanoid import random_steps_per_second  # run from benchmarks/: the script's folder is on sys.path

import mpenv  # noqa: F401  (registers the ids)

VARIANTS = {
    "walk, future_frames=0": ("mpenv/HumanoidMimicWalk-v0", {}),
    "walk, future_frames=3": ("mpenv/HumanoidMimicWalk-v0", {"future_frames": 3}),
    "library (12 clips), future_frames=0": ("mpenv/HumanoidMimicLibrary-v0", {"future_frames": 0}),
    "library (12 clips), future_frames=3": ("mpenv/HumanoidMimicLibrary-v0", {}),
}


def construct_and_step(env_id: str, kwargs: dict, steps: int, seed: int) -> tuple[float, float]:
    """Seconds to build the env, and env steps per second over ``steps`` random-action steps."""
    start = time.perf_counter()
    env = gym.make(env_id, **kwargs)
    built = time.perf_counter() - start
    rate = random_steps_per_second(env, steps, seed)
    env.close()
    return built, rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, (env_id, kwargs) in VARIANTS.items():
            results[name].append(construct_and_step(env_id, kwargs, args.steps, seed=round_))
    base = np.median([rate for _, rate in results["walk, future_frames=0"]])
    print(f"{args.rounds} alternating rounds of {args.steps} steps (random actions, resets included); medians:")
    for name, values in results.items():
        built, rate = np.median(np.array(values), axis=0)
        print(f"{name:38s} construction {built:5.2f} s (first {values[0][0]:5.2f} s)   {rate:6.1f} steps/s   "
              f"({rate / base:.2f}x the walk)")


if __name__ == "__main__":
    main()
