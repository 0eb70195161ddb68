"""Head to head with stable-baselines3: DQN and A2C on CartPole-v1, same machine, same seeds, matched
hyperparameters, run one after the other in this process.

For each (algorithm, seed) both implementations train for the same number of env steps with the same
periodic evaluation (our KeepBest, SB3's EvalCallback: every ``eval_every`` steps, the config's number of
deterministic episodes, the best weights kept). The script reports env steps per second (the whole
training loop, learning and evaluations included), the wall time until a periodic evaluation first
reaches a mean return of 475, and the return of the kept policy over 20 fresh episodes (same evaluation
code for both). Ratios are ours / SB3.

    python benchmarks/bench_vs_sb3.py      # about 5-10 minutes on 2 cores
    python benchmarks/bench_vs_sb3.py --algos dqn --seeds 1 --steps-dqn 20000   # quicker

Both run single-threaded torch (``torch.set_num_threads(1)``), as small MLPs are fastest that way
on CPU for either library.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents import actor_critic, dqn, policies
from agents.evaluate import run_episodes
from agents.run import RunContext

THRESHOLD = 475.0
EVAL_EPISODES = 20


class ThresholdClock:
    """Wall time from the start of training until a periodic evaluation first reaches ``THRESHOLD``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.reached_at: float | None = None

    def evaluation(self, mean_return: float) -> None:
        if self.reached_at is None and mean_return >= THRESHOLD:
            self.reached_at = time.perf_counter() - self.start


def evaluate(act: Callable[[np.ndarray], Any], seed: int) -> float:
    env = gym.make("CartPole-v1")
    return float(run_episodes(env, act, EVAL_EPISODES, seed=seed + 1000).mean())


# ---------------------------------------------------------------------------------------------------
# Matched hyperparameters: ours are the config defaults; SB3 gets the same numbers.


def sb3_dqn_kwargs(cfg: dqn.DQNConfig) -> dict[str, Any]:
    hidden = [int(h) for h in cfg.hidden_sizes.split(",")]
    return dict(learning_rate=cfg.learning_rate, buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                batch_size=cfg.batch_size, gamma=cfg.gamma, train_freq=cfg.train_frequency,
                gradient_steps=cfg.gradient_steps, target_update_interval=cfg.target_update_interval,
                tau=cfg.tau if cfg.target_update == "polyak" else 1.0,
                exploration_fraction=cfg.exploration_fraction, exploration_initial_eps=cfg.epsilon_start,
                exploration_final_eps=cfg.epsilon_end, max_grad_norm=cfg.max_grad_norm,
                policy_kwargs=dict(net_arch=hidden, activation_fn=torch.nn.ReLU))


def sb3_a2c_kwargs(cfg: actor_critic.A2CConfig) -> dict[str, Any]:
    hidden = [int(h) for h in cfg.hidden_sizes.split(",")]
    return dict(learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                use_rms_prop=cfg.optimizer == "rmsprop", normalize_advantage=cfg.normalize_advantage,
                policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden), activation_fn=torch.nn.Tanh))


# ---------------------------------------------------------------------------------------------------


def run_ours(algo: str, steps: int, seed: int, workdir: Path) -> dict[str, float]:
    clock = ThresholdClock()

    def log(tag: str, value: float, step: int) -> None:
        if tag == "eval/mean_return":
            clock.evaluation(value)

    context = RunContext("CartPole-v1", total_steps=steps, seed=seed, device="cpu", log=log)
    start = time.perf_counter()
    if algo == "dqn":
        cfg = dqn.DQNConfig()
        network = dqn.train_dqn(cfg, context)
        act = dqn.actor_from_network(network)
    else:
        cfg = actor_critic.A2CConfig()
        network = actor_critic.train_a2c(cfg, context)
        act = policies.actor_from_network(network)
    seconds = time.perf_counter() - start
    return {"sps": steps / seconds, "seconds": seconds, "to_475": clock.reached_at or float("nan"),
            "eval": evaluate(lambda obs: act(obs[None])[0], seed)}


def run_sb3(algo: str, steps: int, seed: int, workdir: Path) -> dict[str, float]:
    """SB3 with an EvalCallback at our evaluation schedule, keeping its best model as we keep our best
    weights: the same selection, the same evaluation cost inside the timed loop."""
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    clock = ThresholdClock()

    class AfterEvaluation(BaseCallback):
        def _on_step(self) -> bool:
            clock.evaluation(float(self.parent.last_mean_reward))
            return True

    cfg = dqn.DQNConfig() if algo == "dqn" else actor_critic.A2CConfig()
    n_envs = 1 if algo == "dqn" else cfg.n_envs
    envs = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    if algo == "dqn":
        model = DQN("MlpPolicy", envs, seed=seed, device="cpu", **sb3_dqn_kwargs(cfg))
    else:
        model = A2C("MlpPolicy", envs, seed=seed, device="cpu", **sb3_a2c_kwargs(cfg))
    best_dir = workdir / f"sb3_{algo}_{seed}"
    evaluation = EvalCallback(make_vec_env("CartPole-v1", n_envs=1, seed=seed + 500),
                              n_eval_episodes=cfg.eval_every_episodes,
                              eval_freq=max(cfg.eval_every // n_envs, 1), best_model_save_path=str(best_dir),
                              deterministic=True, verbose=0, callback_after_eval=AfterEvaluation())
    clock.start = start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=evaluation)
    seconds = time.perf_counter() - start
    best = (DQN if algo == "dqn" else A2C).load(best_dir / "best_model.zip", device="cpu")
    return {"sps": steps / seconds, "seconds": seconds, "to_475": clock.reached_at or float("nan"),
            "eval": evaluate(lambda obs: best.predict(obs, deterministic=True)[0], seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--algos", default="dqn,a2c", help="comma-separated: dqn, a2c")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N for each algorithm")
    parser.add_argument("--steps-dqn", type=int, default=50_000, help="env steps per DQN run")
    parser.add_argument("--steps-a2c", type=int, default=200_000, help="env steps per A2C run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import stable_baselines3
    importlib.import_module("torch._dynamo")  # the first optimizer imports it (~1 s): keep that out of the timings

    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, stable-baselines3 {stable_baselines3.__version__}")
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="bench_vs_sb3_"))
    for algo in args.algos.split(","):
        steps = args.steps_dqn if algo == "dqn" else args.steps_a2c
        for seed in range(1, args.seeds + 1):
            for name, runner in (("mpenv", run_ours), ("sb3", run_sb3)):
                result = runner(algo, steps, seed, workdir)
                rows.append((algo, name, seed, result))
                print(f"{algo:4s} {name:6s} seed {seed}: {result['sps']:8.0f} steps/s, {result['seconds']:6.1f} s, "
                      f"evaluation >= 475 after {result['to_475']:6.1f} s, eval {result['eval']:6.1f}", flush=True)

    print(f"\n| algo | impl | steps | steps/s | time to 475 [s] | eval return ({EVAL_EPISODES} ep) |")
    print("|---|---|---|---|---|---|")
    for algo in args.algos.split(","):
        steps = args.steps_dqn if algo == "dqn" else args.steps_a2c
        summary = {}
        for name in ("mpenv", "sb3"):
            results = [r for a, n, _, r in rows if a == algo and n == name]
            sps = statistics.median(r["sps"] for r in results)
            reached = [r["to_475"] for r in results if not np.isnan(r["to_475"])]
            to_475 = f"{statistics.median(reached):.1f} ({len(reached)}/{len(results)} runs)" if reached else "never"
            evals = [r["eval"] for r in results]
            summary[name] = sps
            print(f"| {algo} | {name} | {steps:,} | {sps:,.0f} | {to_475} | "
                  f"{statistics.fmean(evals):.1f} (min {min(evals):.0f}) |")
        print(f"| {algo} | ratio mpenv/sb3 | | {summary['mpenv'] / summary['sb3']:.2f}x | | |")
    print("\n(steps/s: median over seeds, the whole training loop; time to 475: median over the runs whose "
          "evaluations got there)")


if __name__ == "__main__":
    main()
