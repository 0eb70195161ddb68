"""Head to head with stable-baselines3 on CartPole-v1: training throughput, time to 475 and final return,
like for like, in alternating rounds (mpenv, SB3, mpenv, SB3, ...) in this process.

Configurations (ours are the config defaults; SB3 gets the same numbers, see ``sb3_*_kwargs``):

    dqn      DQN, rl-zoo's CartPole schedule (128 gradient steps every 256 env steps), CleanRL's 120-84 network
    dqn256   the same with the zoo's own 256-256 network: here the network's arithmetic dominates
    a2c      A2C, SB3's defaults (8 envs x 5 steps, 64-64 tanh actor and critic), Adam

Both sides run the same number of env steps and gradient steps, single-threaded torch, and the same
evaluation protocol: every ``eval_every`` env steps (and at the end) the deterministic policy plays
``eval_every_episodes`` episodes side by side on as many env copies with one function
(:func:`agents.evaluate.vector_returns`) and the best weights are kept (our ``KeepBest``; for SB3 the
same class, driven by a callback). Reported per configuration, as medians over the rounds:

* training steps/s, the headline: env steps / (time of the run - time inside those evaluations), so
  neither side's evaluation is charged;
* time to 475: from the start until an evaluation first averages >= 475 (evaluations included: the
  same protocol on both sides);
* the final return: the kept policy over 20 fresh episodes (the same code for both);
* for dqn256, the physical floor: the same forward/backward/optimizer steps of the same network,
  measured alone on random data (the gradient steps on minibatches of the same size: target forward,
  forward, Huber loss, backward, fused Adam; and a forward pass per greedy action), and each side's
  training time over it; also over the gradient steps alone.

Times are process CPU time by default (``--clock cpu``): on a machine shared with other jobs it charges
each run only the CPU it used; on an idle machine it equals the wall time (``--clock wall``).

    python benchmarks/bench_vs_sb3.py                 # 3 rounds of the full budgets, ~10 min of CPU
    python benchmarks/bench_vs_sb3.py --quick         # short runs, throughput only, ~2-3 min of CPU
    python benchmarks/bench_vs_sb3.py --configs dqn256 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents import actor_critic, dqn, policies
from agents.envs import make_vector_env
from agents.evaluate import KeepBest, run_episodes
from agents.networks import parse_hidden_sizes
from agents.run import RunContext
from agents.tabular import linear_schedule

ENV_ID = "CartPole-v1"
THRESHOLD = 475.0
FINAL_EPISODES = 20
SB3_EVAL_SEED_OFFSET = 10_000  # SB3's evaluation envs play other episodes than its training envs

CONFIGS: dict[str, Callable[[], Any]] = {
    "dqn": lambda: dqn.DQNConfig(),
    "dqn256": lambda: dqn.DQNConfig(hidden_sizes="256,256"),
    "a2c": lambda: actor_critic.A2CConfig(),
}

clock: Callable[[], float] = time.process_time


# ---------------------------------------------------------------------------------------------------
# Matched hyperparameters: ours are the config defaults; SB3 gets the same numbers.


def sb3_dqn_kwargs(cfg: dqn.DQNConfig) -> dict[str, Any]:
    return dict(learning_rate=cfg.learning_rate, buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                batch_size=cfg.batch_size, gamma=cfg.gamma, train_freq=cfg.train_frequency,
                gradient_steps=cfg.gradient_steps, target_update_interval=cfg.target_update_interval,
                tau=cfg.tau if cfg.target_update == "polyak" else 1.0,
                exploration_fraction=cfg.exploration_fraction, exploration_initial_eps=cfg.epsilon_start,
                exploration_final_eps=cfg.epsilon_end, max_grad_norm=cfg.max_grad_norm,
                policy_kwargs=dict(net_arch=list(parse_hidden_sizes(cfg.hidden_sizes)), activation_fn=torch.nn.ReLU))


def sb3_a2c_kwargs(cfg: actor_critic.A2CConfig) -> dict[str, Any]:
    hidden = list(parse_hidden_sizes(cfg.hidden_sizes))
    return dict(learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                use_rms_prop=cfg.optimizer == "rmsprop", normalize_advantage=cfg.normalize_advantage,
                policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden), activation_fn=torch.nn.Tanh))


def gradient_steps_of(cfg: dqn.DQNConfig, steps: int) -> int:
    """Gradient steps in a DQN run of ``steps`` env steps (ours and SB3's alike: a round every
    ``train_frequency`` steps once ``learning_starts`` transitions are stored)."""
    rounds = sum(1 for step in range(cfg.train_frequency, steps + 1, cfg.train_frequency)
                 if step >= max(cfg.learning_starts, cfg.batch_size))
    return rounds * cfg.gradient_steps


# ---------------------------------------------------------------------------------------------------
# The evaluation protocol both sides share, timed


class Evaluations:
    """Times every ``KeepBest.evaluate`` (ours calls it inside its loop, SB3's callback below) and notes
    when the first one reaches ``THRESHOLD``."""

    def __init__(self) -> None:
        self.start = clock()
        self.seconds = 0.0
        self.reached_at: float | None = None

    def __enter__(self) -> Evaluations:
        self.real_evaluate = KeepBest.evaluate

        def timed(keeper: KeepBest) -> float:
            begin = clock()
            mean_return = self.real_evaluate(keeper)
            self.seconds += clock() - begin
            if self.reached_at is None and mean_return >= THRESHOLD:
                self.reached_at = clock() - self.start
            return mean_return

        KeepBest.evaluate = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        KeepBest.evaluate = self.real_evaluate  # type: ignore[method-assign]


def final_return(act: Callable[[np.ndarray], Any], seed: int) -> float:
    """The kept policy's mean return over ``FINAL_EPISODES`` fresh episodes (one observation at a time)."""
    return float(run_episodes(gym.make(ENV_ID), act, FINAL_EPISODES, seed=seed + 1000).mean())


def result(steps: int, seconds: float, evaluations: Evaluations, final: float) -> dict[str, float]:
    return {"sps": steps / (seconds - evaluations.seconds), "train_s": seconds - evaluations.seconds,
            "eval_s": evaluations.seconds, "to_475": evaluations.reached_at or float("nan"), "final": final}


# ---------------------------------------------------------------------------------------------------
# One run of each side


def run_ours(name: str, steps: int, seed: int) -> dict[str, float]:
    cfg = CONFIGS[name]()
    context = RunContext(ENV_ID, total_steps=steps, seed=seed, device="cpu")
    with Evaluations() as evaluations:
        if isinstance(cfg, dqn.DQNConfig):
            network = dqn.train_dqn(cfg, context)
            act = dqn.actor_from_network(network)
        else:
            network = actor_critic.train_a2c(cfg, context)
            act = policies.actor_from_network(network)
        seconds = clock() - evaluations.start
    return result(steps, seconds, evaluations, final_return(lambda obs: act(obs[None])[0], seed))


def run_sb3(name: str, steps: int, seed: int) -> dict[str, float]:
    """SB3 with a callback that runs our evaluation protocol (``KeepBest`` on a vector env) on its policy."""
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    cfg = CONFIGS[name]()
    is_dqn = isinstance(cfg, dqn.DQNConfig)
    envs = make_vec_env(ENV_ID, n_envs=1 if is_dqn else cfg.n_envs, seed=seed)
    if is_dqn:
        model = DQN("MlpPolicy", envs, seed=seed, device="cpu", **sb3_dqn_kwargs(cfg))
    else:
        model = A2C("MlpPolicy", envs, seed=seed, device="cpu", **sb3_a2c_kwargs(cfg))

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    eval_envs = make_vector_env(ENV_ID, None, cfg.eval_every_episodes, seed + SB3_EVAL_SEED_OFFSET)
    keeper = KeepBest(model.policy, act, eval_envs, seed + SB3_EVAL_SEED_OFFSET)

    class Evaluate(BaseCallback):
        """Every ``eval_every`` env steps (the first step count past each multiple) and at the end."""

        next_eval = cfg.eval_every

        def _on_step(self) -> bool:
            if cfg.eval_every and self.num_timesteps >= self.next_eval:
                keeper.evaluate()
                self.next_eval = (self.num_timesteps // cfg.eval_every + 1) * cfg.eval_every
            return True

        def _on_training_end(self) -> None:
            if self.num_timesteps > cfg.eval_every:  # ours: a final evaluation unless nothing else ran
                keeper.evaluate()

    with Evaluations() as evaluations:
        model.learn(total_timesteps=steps, callback=Evaluate())
        seconds = clock() - evaluations.start
    keeper.close()
    best = keeper.network
    return result(steps, seconds, evaluations,
                  final_return(lambda obs: best.predict(obs[None], deterministic=True)[0][0], seed))


def greedy_steps_of(cfg: dqn.DQNConfig, steps: int) -> int:
    """Env steps of a DQN run that act greedily (run the network): the expected number, 1 - epsilon each."""
    epsilon_at = linear_schedule(cfg.epsilon_start, cfg.epsilon_end, cfg.exploration_fraction)
    return round(sum(1.0 - epsilon_at(step / steps) for step in range(1, steps + 1)))


def run_floor(name: str, steps: int, seed: int) -> dict[str, float]:
    """The network's arithmetic alone, the same forward/backward/optimizer steps as a run: its rounds of
    gradient steps on random minibatches (each round one target forward pass for all its minibatches,
    as Q_target is fixed during a round, then per minibatch forward, Huber loss, backward and Adam), and
    the forward passes of its greedy actions (batches of one observation, without gradients); no envs,
    sampling, clipping, target syncs or Python around them. ``grad_s`` is the gradient steps alone."""
    cfg = CONFIGS[name]()
    torch.manual_seed(seed)
    widths = (4, *parse_hidden_sizes(cfg.hidden_sizes), 2)
    layers = torch.nn.ModuleList(torch.nn.Linear(n_in, n_out)
                                 for n_in, n_out in zip(widths[:-1], widths[1:], strict=True))
    target_layers = copy.deepcopy(layers)
    optimizer = torch.optim.Adam(layers.parameters(), lr=cfg.learning_rate, fused=True)

    def q_net(x: torch.Tensor, linears: torch.nn.ModuleList = layers) -> torch.Tensor:
        """The MLP in plain functional PyTorch, independent of the agents' code."""
        for linear in linears[:-1]:
            x = torch.relu_(F.linear(x, linear.weight, linear.bias))
        return F.linear(x, linears[-1].weight, linears[-1].bias)

    def target_net(x: torch.Tensor) -> torch.Tensor:
        return q_net(x, target_layers)

    n, size = cfg.gradient_steps, cfg.batch_size
    obs, next_obs, actions = torch.randn(n, size, 4), torch.randn(n * size, 4), torch.randint(2, (n, size))
    rewards, dones = torch.ones(n * size), torch.zeros(n * size)
    start = clock()
    for _ in range(gradient_steps_of(cfg, steps) // n):
        with torch.no_grad():
            y = (rewards + cfg.gamma * (1.0 - dones) * target_net(next_obs).max(dim=1).values).view(n, size)
        for k in range(n):
            q_taken = q_net(obs[k]).gather(1, actions[k].unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, y[k])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    grad_seconds = clock() - start
    with torch.inference_mode():
        for _ in range(greedy_steps_of(cfg, steps)):
            q_net(obs[0, :1]).argmax(dim=1)
    return {"train_s": clock() - start, "grad_s": grad_seconds}


# ---------------------------------------------------------------------------------------------------


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(name: str, steps: int, runs: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n{name}: {steps:,} env steps" + (f", {gradient_steps_of(CONFIGS[name](), steps):,} gradient steps"
                                              if name.startswith("dqn") else ""))
    print("| impl | training steps/s | training [s] | evaluations [s] | time to 475 [s] | final return |")
    print("|---|---|---|---|---|---|")
    for impl in ("mpenv", "sb3"):
        rows = runs[impl]
        reached = [row["to_475"] for row in rows if not np.isnan(row["to_475"])]
        to_475 = f"{statistics.median(reached):.1f} ({len(reached)}/{len(rows)})" if reached else "never"
        finals = [row["final"] for row in rows]
        print(f"| {impl} | {median(rows, 'sps'):,.0f} | {median(rows, 'train_s'):.2f} | {median(rows, 'eval_s'):.2f} | "
              f"{to_475} | {statistics.fmean(finals):.1f} (min {min(finals):.0f}) |")
    ratios = [ours["sps"] / sb3["sps"] for ours, sb3 in zip(runs["mpenv"], runs["sb3"], strict=True)]
    print(f"training throughput mpenv / sb3: {median(runs['mpenv'], 'sps') / median(runs['sb3'], 'sps'):.2f}x "
          f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})")
    if runs.get("floor"):
        for key, what in (("train_s", "gradient steps and greedy actions"), ("grad_s", "gradient steps only")):
            floor = median(runs["floor"], key)
            print(f"physical floor ({what}): {floor:.2f} s; training time / floor: "
                  f"mpenv {median(runs['mpenv'], 'train_s') / floor:.2f}, "
                  f"sb3 {median(runs['sb3'], 'train_s') / floor:.2f}")


def main() -> None:
    global clock
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--configs", default="dqn,dqn256,a2c", help="comma-separated, from: " + ", ".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (mpenv, sb3) per configuration; "
                        "round r uses seed r")
    parser.add_argument("--steps-dqn", type=int, default=50_000, help="env steps per DQN run (dqn, dqn256)")
    parser.add_argument("--steps-a2c", type=int, default=200_000, help="env steps per A2C run")
    parser.add_argument("--quick", action="store_true",
                        help="short runs for throughput only (10k DQN / 40k A2C steps; time to 475 is not reached)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="process CPU time (robust on a shared machine) or wall time")
    args = parser.parse_args()
    names = [name.strip() for name in args.configs.split(",")]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or args.rounds < 1 or min(args.steps_dqn, args.steps_a2c) < 1:
        parser.error(f"--configs must name {', '.join(CONFIGS)} (got {', '.join(unknown)})" if unknown
                     else "--rounds, --steps-dqn and --steps-a2c must be at least 1")
    if args.quick:
        args.steps_dqn, args.steps_a2c = 10_000, 40_000
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    import stable_baselines3

    importlib.import_module("torch._dynamo")  # the first optimizer imports it (~1 s): keep that out of the timings
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
          f"{args.clock} clock, {args.rounds} rounds")
    for name in names:
        steps = args.steps_dqn if name.startswith("dqn") else args.steps_a2c
        sides = {"mpenv": run_ours, "sb3": run_sb3} | ({"floor": run_floor} if name == "dqn256" else {})
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for seed in range(1, args.rounds + 1):
            for side, runner in sides.items():
                runs[side].append(runner(name, steps, seed))
                row = runs[side][-1]
                details = "" if side == "floor" else (f", evaluations {row['eval_s']:5.2f} s, "
                                                      f"to 475 {row['to_475']:5.1f} s, final {row['final']:.0f}")
                print(f"  {name} round {seed} {side:5s}: training {row['train_s']:6.2f} s{details}", flush=True)
        report(name, steps, runs)


if __name__ == "__main__":
    main()
