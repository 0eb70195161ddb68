"""Memory made measurable: recurrent against feed-forward A2C on the T-maze (docs/tmaze_recurrent_a2c.png).

Both agents train with the settings of the learning test (tests/test_recurrent_a2c.py: 16 envs, 32-step rollouts,
a 32-unit encoder, lr 2e-3, gamma 0.95, entropy 0.01), the recurrent one with a 32-unit LSTM after the encoder.
Every ``--eval-every`` env steps the current deterministic policy plays ``--episodes`` episodes of its own (the
keep-the-best rounds of training, seeded apart from the training episodes); the figure plots their success rate,
one thin line per seed and the mean in bold. The dashed line is 50%, the most a memoryless policy can expect. The
printed table gives, per agent, the held-out success of the kept weights (200 episodes seeded apart from both) and
the first step at which an evaluation reached 95%.

    python benchmarks/plot_recurrent_tmaze.py --out docs/tmaze_recurrent_a2c.png
    python benchmarks/plot_recurrent_tmaze.py --env mpenv/TMazeLong-v0 --steps 2000000 --n-steps 64   # length 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from matplotlib.figure import Figure
from plot_optimizers import save_small_png  # the script's folder is on sys.path

import mpenv  # noqa: F401  (registers the T-mazes)
from agents.actor_critic import A2CConfig, train_a2c
from agents.envs import make_vector_env
from agents.evaluate import HELD_OUT_SEED_OFFSET, vector_returns
from agents.policies import actor_from_network
from agents.run import RunContext

SETTINGS = dict(n_envs=16, hidden_sizes="32", lstm_size=32, learning_rate=2e-3, gamma=0.95, ent_coef=0.01)


def training_curve(env_id: str, recurrent: bool, seed: int, args: argparse.Namespace
                   ) -> tuple[list[int], list[float], float]:
    """(steps, success of each evaluation, held-out success of the kept weights) of one run."""
    steps, success = [], []

    def log(tag: str, value: float, step: int) -> None:
        if tag == "eval/mean_return":
            steps.append(step)
            success.append(value)  # the return is 1 in the cued arm, 0 elsewhere

    config = A2CConfig(recurrent=recurrent, n_steps=args.n_steps, eval_every=args.eval_every,
                       eval_every_episodes=args.episodes, **SETTINGS)
    model = train_a2c(config, RunContext(env_id, args.steps, seed=seed, log=log))
    envs = make_vector_env(env_id, {}, 200, HELD_OUT_SEED_OFFSET + seed)
    held_out = float(vector_returns(envs, actor_from_network(model), HELD_OUT_SEED_OFFSET + seed).mean())
    return steps[:-1], success[:-1], held_out  # the last entry repeats the final evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--env", default="mpenv/TMaze-v0", help="a T-maze id")
    parser.add_argument("--steps", type=int, default=600_000, help="env steps per run")
    parser.add_argument("--n-steps", type=int, default=32, help="rollout length: the BPTT window")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--eval-every", type=int, default=20_000, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per evaluation")
    parser.add_argument("--out", default="tmaze_recurrent_a2c.png", help="output PNG")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    print(f"{args.env}, {args.steps:,} env steps per run, {args.n_steps}-step rollouts")
    print("| agent | seed | held-out success | first evaluation >= 95% | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for recurrent, colour, name in ((True, "C0", "recurrent A2C (LSTM)"), (False, "C3", "feed-forward A2C")):
        curves = []
        for seed in seeds:
            start = time.perf_counter()
            steps, success, held_out = training_curve(args.env, recurrent, seed, args)
            reached = next((f"{step:,}" for step, value in zip(steps, success, strict=True) if value >= 0.95), "never")
            print(f"| {name} | {seed} | {held_out:.3f} | {reached} | {time.perf_counter() - start:.0f} |", flush=True)
            ax.plot(steps, success, color=colour, lw=0.6, alpha=0.5)
            curves.append(success)
        ax.plot(steps, np.mean(curves, axis=0), color=colour, lw=2, label=name)
    ax.axhline(0.5, color="k", ls="--", lw=0.8, label="best memoryless policy")
    ax.set(xlabel="env steps", ylabel="success (deterministic policy)", ylim=(-0.02, 1.02),
           title=f"{args.env}: the cue must be remembered until the junction")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_small_png(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
