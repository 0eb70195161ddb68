"""A filmstrip of a humanoid policy: one episode rendered offscreen with the reference as a green ghost, a frame
every ``--every`` steps, tiled in a row (the README's docs/humanoid_walk.png).

    python benchmarks/humanoid_filmstrip.py mpenv/humanoid/policies/walk --out docs/humanoid_walk.png
"""

from __future__ import annotations

import argparse

import numpy as np
from matplotlib.figure import Figure

from agents.envs import make_env
from agents.evaluate import load_actor
from agents.plots import save_figure
from mpenv.checkpoint import load_config


def filmstrip(policy: str, every: int, frames: int, seed: int, size: int) -> list[tuple[int, np.ndarray]]:
    """``(step, image)`` pairs of one seeded episode, every ``every`` steps, ``frames`` of them at most."""
    config = load_config(policy)
    env = make_env(config["env_id"], config.get("env_kwargs"), render_mode="rgb_array", width=size, height=size)
    act = load_actor(policy, config, env, seed)
    obs, _ = env.reset(seed=seed)
    shots = [(0, env.render())]
    for step in range(1, every * (frames - 1) + 1):
        obs, _, terminated, truncated, _ = env.step(act(obs))
        if step % every == 0:
            shots.append((step, env.render()))
        if terminated or truncated:
            break
    env.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("policy", help="run directory or shipped policy folder")
    parser.add_argument("--out", default="humanoid.png", help="output PNG")
    parser.add_argument("--every", type=int, default=50, help="steps between frames (30 steps = 1 s)")
    parser.add_argument("--frames", type=int, default=7, help="frames at most")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode")
    parser.add_argument("--size", type=int, default=320, help="pixels per frame side")
    args = parser.parse_args()
    shots = filmstrip(args.policy, args.every, args.frames, args.seed, args.size)
    fig = Figure(figsize=(2.2 * len(shots), 2.4), layout="constrained")
    for ax, (step, image) in zip(fig.subplots(1, len(shots), squeeze=False)[0], shots, strict=True):
        ax.imshow(image)
        ax.set_title(f"step {step} ({step / 30:.1f} s)", fontsize=9)
        ax.axis("off")
    print(f"{len(shots)} frames -> {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
