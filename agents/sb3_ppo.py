"""stable-baselines3's PPO behind mpenv's flags, logs, checkpoints and evaluation (``mpenv-train ppo``): this
file integrates SB3's proximal policy optimisation (Schulman et al., 2017; the algorithm DeepMimic trained its
characters with), it does not implement it.

A2C takes one gradient step per rollout: a second step on the same data would follow a gradient computed
for a policy that no longer exists. PPO takes several epochs of minibatch steps on every rollout and keeps
them honest by clipping the probability ratio of the new to the old policy:

    ratio:      r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t)
    surrogate:  L_CLIP(theta) = E[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ]
    loss:       L = -L_CLIP + c_V E[(V_phi(s_t) - R_t)^2] - c_H E[H[pi_theta(.|s_t)]]

with advantages A_t from GAE(gamma, lambda) (:func:`agents.returns.gae` is the same formula). Beyond
``1 +- eps`` the surrogate is flat in theta, so one rollout cannot push the policy far from the one that
collected it.

The algorithm is not written out here: stable-baselines3's PPO is the trusted baseline the course
compares against. What this module adds is the integration:

* training envs: ``n_envs`` copies in worker processes (``--vec subproc``: the cores step the physics in
  parallel) or in this one (``--vec dummy``), observations standardised by ``VecNormalize`` (not the
  rewards: the returns stay those of the task);
* logging through :mod:`mpenv.logger`: ``charts/episodic_return``, ``charts/episodic_length``,
  ``charts/episode_length_fraction`` (the length over the env's time limit: how long an imitator stays
  up), ``charts/SPS``, ``losses/policy_loss``, ``losses/value_loss``, ``losses/entropy``, SB3's own
  ``train/*`` scalars, ``eval/mean_return``, and ``imitation/<key>``: the rollout mean of every numeric
  ``info`` entry named ``reward_*`` or ``mpjpe*`` (the imitation reward terms and pose errors of
  ``mpenv/HumanoidMimic``);
* checkpoints a crafted file cannot run code from: ``checkpoint.pt`` holds the policy's state dicts (live,
  best-evaluated) and the optimizer's, loaded with ``weights_only=True``; ``checkpoint.npz`` holds the
  observation statistics (``allow_pickle=False``). Never SB3's ``.zip``, which may carry pickles.

    from agents.sb3_ppo import PPOConfig, train_ppo
    policy = train_ppo(PPOConfig(hidden_sizes="64,64"), RunContext("CartPole-v1", total_steps=50_000))

    mpenv-train ppo --env mpenv/HumanoidMimicWalk-v0 --total-steps 20000000
    mpenv-train ppo --env mpenv/HumanoidMimic-v0 --env-kwargs '{"motion": "run"}' --n-envs 2 --vec subproc
    mpenv-eval runs/<run-dir> --episodes 10 --video walk.mp4     # the policy beside its reference
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import numbers
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize
from torch import nn

from agents.envs import InfoMeans, make_env
from agents.evaluate import BatchAct, KeepBest, keep_best
from agents.networks import is_image_space, parse_hidden_sizes
from agents.policies import ACTIVATIONS, RunningNormalizer, activation_named, check_spaces
from agents.run import Every, LogFn, RunContext, check_config_fields
from mpenv.checkpoint import (
    ARRAYS_FILE,
    CONFIG_FILE,
    CheckpointError,
    load_arrays,
    load_config,
    load_state_dict_checked,
    load_torch,
    resolve,
    save_arrays,
    save_torch,
)

# ---------------------------------------------------------------------------------------------------
# Config


@dataclass
class PPOConfig:
    """Clipped-surrogate policy gradient, several epochs per rollout. The defaults follow DeepMimic: 4096
    samples per update (2 envs x 2048 steps), minibatches of 256, gamma = lambda = 0.95, clip 0.2, ReLU
    networks and normalised observations. The env, budget, seed, device, threads and checkpoint cadence
    are the run flags."""

    n_envs: int = field(default=2, metadata={"help": "parallel envs (DeepMimic's workers)"})
    vec: str = field(default="subproc", metadata={
        "help": "'subproc': each env in its own process, stepped in parallel; 'dummy': all in this process"})
    n_steps: int = field(default=2048, metadata={"help": "steps per env per rollout"})
    batch_size: int = field(default=256, metadata={"help": "minibatch size of the gradient steps"})
    n_epochs: int = field(default=10, metadata={"help": "passes over each rollout"})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam step size"})
    gamma: float = field(default=0.95, metadata={"help": "discount factor (DeepMimic: 0.95)"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda: 1 = Monte Carlo, 0 = one-step TD"})
    clip_range: float = field(default=0.2, metadata={"help": "eps of the clipped probability ratio"})
    target_kl: float = field(default=0.0, metadata={
        "help": "stop a rollout's epochs once the approximate KL between the old and the new policy passes 1.5x "
                "this (0: never; with many action dimensions a small sigma makes each step move the policy far)"})
    ent_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the critic's squared error"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "clip the gradient's global norm"})
    hidden_sizes: str = field(default="512,256", metadata={
        "help": "hidden layer widths of the actor and of the (separate) critic"})
    activation: str = field(default="relu", metadata={"help": "'tanh' or 'relu'"})
    log_std_init: float = field(default=-1.0, metadata={"help": "Box actions: initial log sigma of the Gaussian"})
    normalize_obs: bool = field(default=True, metadata={
        "help": "standardise observations with running statistics (VecNormalize; saved in checkpoint.npz)"})
    eval_every: int = field(default=50_000, metadata={
        "help": "env steps between evaluations of the deterministic policy (the best one is kept; 0: only at the end)"})
    eval_every_episodes: int = field(default=10, metadata={"help": "episodes per evaluation during training"})
    init_from: str = field(default="", metadata={
        "help": "start from the best policy of this PPO run or exported policy (weights and observation "
                "statistics; a fresh optimizer and step counter): fine-tuning, or a curriculum stage with "
                "new --env-kwargs such as pushes; features this env adds at the end of the observation (e.g. "
                "future_frames) start with zero weights, so the start acts as the source did"})


def check_config(config: PPOConfig) -> None:
    """Every bad value at once, before an env or a file is made."""
    problems = []
    if isinstance(config.batch_size, int) and not 2 <= config.batch_size <= config.n_envs * config.n_steps:
        problems.append(f"batch_size must be in [2, n_envs * n_steps = {config.n_envs * config.n_steps}], "
                        f"got {config.batch_size}")
    if not math.isfinite(config.log_std_init):
        problems.append(f"log_std_init must be finite, got {config.log_std_init}")
    check_config_fields(
        "PPO", config,
        at_least_one=("n_envs", "n_steps", "n_epochs", "eval_every_episodes"),
        non_negative=("ent_coef", "vf_coef", "eval_every", "target_kl"),
        positive=("learning_rate", "clip_range", "max_grad_norm"),
        unit_interval=("gamma", "gae_lambda"),
        choices={"vec": ("subproc", "dummy"), "activation": tuple(ACTIVATIONS)},
        problems=problems)


def check_ppo_spaces(config: PPOConfig, observation_space: gym.Space, action_space: gym.Space) -> None:
    """The spaces of our other policy-gradient agents; observation statistics need vector observations."""
    check_spaces(observation_space, action_space)
    if config.normalize_obs and (not isinstance(observation_space, gym.spaces.Box)
                                 or is_image_space(observation_space)):
        raise ValueError(f"normalize_obs needs vector Box observations, not {observation_space}; "
                         "pass --no-normalize-obs")


# ---------------------------------------------------------------------------------------------------
# The policy, and the observation statistics it was trained with


def policy_kwargs(config: PPOConfig) -> dict[str, Any]:
    """SB3's ``MlpPolicy`` as the config describes it: separate actor and critic MLPs."""
    hidden = list(parse_hidden_sizes(config.hidden_sizes))
    return {"net_arch": {"pi": hidden, "vf": hidden}, "activation_fn": activation_named(config.activation),
            "log_std_init": config.log_std_init}


def build_policy(config: PPOConfig, observation_space: gym.Space, action_space: gym.Space) -> ActorCriticPolicy:
    """The network PPO trains, built without PPO (evaluation needs no envs or rollout buffer)."""
    return ActorCriticPolicy(observation_space, action_space, lr_schedule=lambda _: config.learning_rate,
                             **policy_kwargs(config))


class NormalizedPolicy(nn.Module):
    """SB3's policy together with the observation statistics it acts on: the unit that is evaluated, kept
    when best (:class:`agents.evaluate.KeepBest` copies modules) and deployed.

    ``RunningNormalizer`` computes VecNormalize's transform, clip((obs - mean) / sqrt(var + 1e-8), +-10);
    during training its buffers are a copy of VecNormalize's running statistics (``sync``).
    """

    def __init__(self, policy: ActorCriticPolicy, normalize_obs: bool):
        super().__init__()
        self.policy = policy
        shape = policy.observation_space.shape
        self.normalizer = RunningNormalizer(shape, clip=10.0, eps=1e-8) if normalize_obs else None

    def sync(self, envs: VecEnv) -> None:
        """Copy the training envs' current statistics (no-op without normalisation)."""
        if self.normalizer is not None and isinstance(envs, VecNormalize):
            stats = envs.obs_rms
            for name, value in (("mean", stats.mean), ("var", stats.var), ("count", stats.count)):
                getattr(self.normalizer, name).copy_(torch.as_tensor(value, dtype=torch.float64))

    def statistics(self) -> dict[str, np.ndarray]:
        assert self.normalizer is not None
        return {name: getattr(self.normalizer, name).cpu().numpy() for name in ("mean", "var", "count")}

    def load_statistics(self, stats: dict[str, np.ndarray]) -> None:
        assert self.normalizer is not None
        for name in ("mean", "var", "count"):
            getattr(self.normalizer, name).copy_(torch.as_tensor(stats[name], dtype=torch.float64))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions (the Gaussian mean clipped to the Box, or the argmax) for a batch of observations."""
        if self.normalizer is not None:
            with torch.no_grad():
                device = self.normalizer.mean.device
                obs = self.normalizer(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
        actions, _ = self.policy.predict(obs, deterministic=True)
        return actions


# ---------------------------------------------------------------------------------------------------
# Training envs


def make_training_envs(config: PPOConfig, run: RunContext) -> VecEnv:
    """``n_envs`` monitored copies of the run's env, in worker processes when ``vec`` asks for them; their
    spaces are checked before VecNormalize sees them (its own error would not say what to do)."""
    # A picklable constructor: worker processes build the env with our make_env, which registers mpenv's ids.
    constructor = functools.partial(make_env, run.env_id, run.env_kwargs)
    vec_cls = SubprocVecEnv if config.vec == "subproc" and config.n_envs > 1 else DummyVecEnv
    envs = make_vec_env(constructor, n_envs=config.n_envs, seed=run.seed, vec_env_cls=vec_cls)
    try:
        check_ppo_spaces(config, envs.observation_space, envs.action_space)
    except ValueError:
        close_envs(envs)
        raise
    if config.normalize_obs:
        envs = VecNormalize(envs, norm_obs=True, norm_reward=False, clip_obs=10.0, gamma=config.gamma)
    return envs


def close_envs(envs: VecEnv) -> None:
    """Close the training envs; after a Ctrl-C the worker processes have already quit (the signal reached
    them too), and telling them to close would only add a BrokenPipeError to the traceback."""
    with contextlib.suppress(BrokenPipeError, EOFError, ConnectionResetError):
        envs.close()


def time_limit(envs: VecEnv) -> int | None:
    """The env's ``max_episode_steps`` (kwargs overrides included), or None without a time limit."""
    spec = envs.get_attr("spec", indices=[0])[0]
    return getattr(spec, "max_episode_steps", None)


# ---------------------------------------------------------------------------------------------------
# Logging: SB3's logger and SB3's callbacks, both into the run's log function


class ForwardToRunLog(KVWriter):
    """An output format for SB3's logger: its ``train/*`` scalars go to our ``log(tag, value, step)``, so one
    event file holds the whole run; the three losses also go under our ``losses/*`` names, which
    :class:`mpenv.logger.RunLogger` checks for NaN."""

    LOSSES = {"train/policy_gradient_loss": ("losses/policy_loss", 1.0),
              "train/value_loss": ("losses/value_loss", 1.0),
              "train/entropy_loss": ("losses/entropy", -1.0)}  # SB3 logs the entropy's negative

    def __init__(self, log: LogFn):
        self.log = log

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            if not key.startswith("train/") or not is_number(value):
                continue  # time/* and rollout/* duplicate charts/*
            if key in self.LOSSES:
                tag, sign = self.LOSSES[key]
                self.log(tag, sign * float(value), step)
            self.log(key, float(value), step)

    def close(self) -> None:
        pass


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class RunCallback(BaseCallback):
    """What SB3's learning loop reports to the run, and when the run evaluates and checkpoints.

    Per step: finished episodes (``charts/*``) and the imitation terms of ``info``. Per rollout: their
    means (``imitation/*``). Between rollouts, after the update: SB3's ``train/*`` scalars (logged at the
    step count of the data they were trained on), evaluations and checkpoints.
    """

    def __init__(self, run: RunContext, live: NormalizedPolicy, keeper: KeepBest, config: PPOConfig,
                 max_episode_steps: int | None, start_step: int):
        super().__init__()
        self.run, self.live, self.keeper, self.max_episode_steps = run, live, keeper, max_episode_steps
        self.checkpoint, self.evaluation = Every(run.checkpoint_every, start_step), Every(config.eval_every, start_step)
        self.info_means = InfoMeans()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.log_episode(info["episode"])
            self.info_means.add(info)
        return True

    def log_episode(self, episode: dict[str, float]) -> None:
        self.run.log("charts/episodic_return", episode["r"], self.num_timesteps)
        self.run.log("charts/episodic_length", episode["l"], self.num_timesteps)
        if self.max_episode_steps:
            self.run.log("charts/episode_length_fraction", episode["l"] / self.max_episode_steps, self.num_timesteps)

    def _on_rollout_end(self) -> None:
        for key, mean in self.info_means.pop_means().items():
            self.run.log(f"imitation/{key}", mean, self.num_timesteps)

    def _on_rollout_start(self) -> None:
        self.logger.dump(self.num_timesteps)
        if self.evaluation.due(self.num_timesteps):
            self.run.log("eval/mean_return", evaluate(self.live, self.keeper, self.training_env), self.num_timesteps)
        if self.checkpoint.due(self.num_timesteps):
            save_state(self.run, self.num_timesteps, self.live, self.keeper)


def evaluate(live: NormalizedPolicy, keeper: KeepBest, envs: VecEnv) -> float:
    """Mean return of the current deterministic policy, acting on the current observation statistics."""
    live.sync(envs)
    return keeper.evaluate()


# ---------------------------------------------------------------------------------------------------
# Checkpoints: state dicts in checkpoint.pt, observation statistics in checkpoint.npz


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C between writing checkpoint.npz and checkpoint.pt would leave two files from different saves;
    hold it back until both are written (each write is atomic by itself)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def save_state(run: RunContext, step: int, live: NormalizedPolicy, keeper: KeepBest) -> None:
    """The live policy and optimizer (to resume), the best-evaluated policy (to deploy) and their statistics."""
    if run.run_dir is None:
        return
    best: NormalizedPolicy = keeper.best
    with interrupts_deferred():
        if live.normalizer is not None:
            arrays = {f"obs_{k}": v for k, v in live.statistics().items()}
            arrays |= {f"best_obs_{k}": v for k, v in best.statistics().items()}
            save_arrays(run.run_dir, arrays | {"step": np.array(step)})
        run.save(step, {"policy": live.policy, "best_policy": best.policy},
                 {"optimizer": live.policy.optimizer}, **keeper.state())


def load_statistics(path: str | Path, step: int, prefix: str, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Observation statistics saved with the weights of checkpoint step ``step``, checked against the
    observation ``shape``; ``prefix`` "best_" picks those of the best-evaluated policy."""
    run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    if not (run_dir / ARRAYS_FILE).exists():
        raise CheckpointError(f"{run_dir / ARRAYS_FILE}: missing; this PPO run normalises observations and "
                              "its policy is meaningless without the statistics")
    names = ("mean", "var", "count")
    arrays = load_arrays(run_dir, required={"step": 0} | {f"{prefix}obs_{k}": len(shape) if k != "count" else 0
                                                          for k in names})
    for name in (f"{prefix}obs_mean", f"{prefix}obs_var"):
        if arrays[name].shape != tuple(shape):
            raise CheckpointError(f"{run_dir / ARRAYS_FILE}: {name} has shape {arrays[name].shape}, but the env's "
                                  f"observations have shape {tuple(shape)}")
    if int(arrays["step"]) != step:
        raise CheckpointError(f"{run_dir / ARRAYS_FILE}: statistics of step {int(arrays['step'])}, but the weights "
                              f"are of step {step}")
    return {k: arrays[f"{prefix}obs_{k}"] for k in names}


def restore_state(run: RunContext, live: NormalizedPolicy, keeper: KeepBest, envs: VecEnv) -> int:
    """Load ``run.resume`` into the policies, the optimizer and the envs' statistics; returns the step."""
    best: NormalizedPolicy = keeper.best
    step, extra = run.restore({"policy": live.policy, "best_policy": best.policy}, {"optimizer": live.policy.optimizer})
    keeper.load_state(extra)
    if run.resume is not None and live.normalizer is not None:
        shape = live.policy.observation_space.shape
        live.load_statistics(load_statistics(run.resume, step, "", shape))
        best.load_statistics(load_statistics(run.resume, step, "best_", shape))
        stats = live.statistics()
        envs.obs_rms.mean, envs.obs_rms.var, envs.obs_rms.count = stats["mean"], stats["var"], float(stats["count"])
    return step


# ---------------------------------------------------------------------------------------------------
# Training


def train_ppo(config: PPOConfig, run: RunContext) -> NormalizedPolicy:
    """Train PPO on ``run.env_id``; returns the best policy found by evaluation."""
    check_config(config)
    if config.init_from:
        check_init_source(config)
    run.start()
    envs = make_training_envs(config, run)
    try:
        model = PPO("MlpPolicy", envs, learning_rate=config.learning_rate, n_steps=config.n_steps,
                    batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma,
                    gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef,
                    target_kl=config.target_kl or None,
                    vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm, policy_kwargs=policy_kwargs(config),
                    seed=run.seed, device=run.torch_device)
        model.set_logger(Logger(folder=None, output_formats=[ForwardToRunLog(run.log)]))
        live = NormalizedPolicy(model.policy, config.normalize_obs)
        keeper = keep_best(live, live.act, run, config.eval_every_episodes)
        try:
            learn(model, live, keeper, envs, config, run)
        finally:
            keeper.close()
    finally:
        close_envs(envs)
    return keeper.best


def check_init_source(config: PPOConfig) -> None:
    """``init_from`` names a PPO run whose network has this run's shape, checked before any env is made."""
    source = load_ppo_config(config.init_from)
    for name in ("hidden_sizes", "activation", "normalize_obs"):
        if getattr(source, name) != getattr(config, name):
            raise CheckpointError(f"--init-from {config.init_from}: its policy has {name}="
                                  f"{getattr(source, name)!r}, this run {getattr(config, name)!r}")


def load_best_policy(path: str | Path, policy: NormalizedPolicy, widen: bool = False) -> None:
    """Load a PPO run's best-evaluated weights (its live ones if it has no best yet) and their observation
    statistics into ``policy``, checked against its shapes. ``widen``: the source may observe fewer features
    than ``policy`` (see :func:`widen_inputs`)."""
    state = load_torch(path)
    name = "best_policy" if "best_policy" in state["modules"] else "policy"
    if name not in state["modules"]:
        raise CheckpointError(f"{path}: no policy weights (found: {sorted(state['modules'])})")
    weights, shape = state["modules"][name], policy.policy.observation_space.shape
    source_shape = shape
    if widen:
        weights, source_shape = widen_inputs(weights, policy.policy.state_dict(), str(path))
    load_state_dict_checked(policy.policy, weights, str(path))
    if policy.normalizer is not None:
        prefix = "best_" if name == "best_policy" else ""
        stats = load_statistics(path, int(state["step"]), prefix, source_shape)
        extra = shape[0] - source_shape[0]
        if extra:  # unseen features start as standard ones; the running statistics then learn them
            stats = {"mean": np.concatenate([stats["mean"], np.zeros(extra)]),
                     "var": np.concatenate([stats["var"], np.ones(extra)]), "count": stats["count"]}
        policy.load_statistics(stats)


def widen_inputs(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                 where: str) -> tuple[dict[str, torch.Tensor], tuple[int]]:
    """A policy that observes ``n`` features turned into one that observes ``m >= n``, the new ones appended
    at the end of the observation (as ``future_frames`` appends reference frames): the first layers of the actor
    and the critic get zero weights for the new inputs, so the widened policy acts and values exactly as the
    source did, and training learns what the new features are worth. Returns the weights and ``(n,)``."""
    first = [k for k, v in target.items()
             if v.dim() == 2 and k.startswith("mlp_extractor.") and k.endswith(".0.weight")]
    if not first or any(k not in source for k in first):
        raise CheckpointError(f"{where}: not an SB3 MLP policy with first layers {first}")
    n, m = source[first[0]].shape[1], target[first[0]].shape[1]
    if n > m:
        raise CheckpointError(f"{where}: its policy observes {n} features, this env only {m}")
    widened = dict(source)
    for key in first:
        weight = source[key]
        widened[key] = torch.cat([weight, weight.new_zeros(weight.shape[0], m - weight.shape[1])], dim=1)
    return widened, (n,)


def initialize_from(path: str | Path, live: NormalizedPolicy, envs: VecEnv) -> None:
    """Copy another run's best policy and its observation statistics into the live policy and the envs (the
    source may observe fewer features, appended at the end: :func:`widen_inputs`)."""
    load_best_policy(path, live, widen=True)
    if live.normalizer is not None:
        stats = live.statistics()
        envs.obs_rms.mean, envs.obs_rms.var, envs.obs_rms.count = stats["mean"], stats["var"], float(stats["count"])


def learn(model: PPO, live: NormalizedPolicy, keeper: KeepBest, envs: VecEnv, config: PPOConfig,
          run: RunContext) -> None:
    step = restore_state(run, live, keeper, envs)
    if step == 0 and config.init_from:  # a resumed run has its own weights by now
        initialize_from(config.init_from, live, envs)
        keeper.best.load_state_dict(live.state_dict())  # until an evaluation finds better, the start is the best
    model.num_timesteps = step
    model.set_random_seed(run.seed + step)  # a resumed run plays new episodes, not the first ones again
    live.sync(envs)
    save_state(run, step, live, keeper)
    callback = RunCallback(run, live, keeper, config, time_limit(envs), step)
    model.learn(total_timesteps=max(run.total_steps - step, 0), callback=callback, log_interval=None,
                reset_num_timesteps=False)
    model.logger.dump(model.num_timesteps)  # the last update's train/* scalars
    run.log("eval/mean_return", evaluate(live, keeper, envs), model.num_timesteps)  # the final policy competes too
    save_state(run, model.num_timesteps, live, keeper)


# ---------------------------------------------------------------------------------------------------
# Loading a trained policy


def load_ppo_config(path: str | Path) -> PPOConfig:
    hyperparameters = load_config(path).get("hyperparameters")
    try:
        return PPOConfig(**hyperparameters)
    except TypeError as err:
        raise CheckpointError(f"{path}: config.json does not hold PPOConfig hyperparameters ({err})") from err


def load_policy(path: str | Path, env: gym.Env, device: str | torch.device = "cpu") -> BatchAct:
    """The best deterministic policy of a PPO run, its observation statistics applied: a batch of
    observations -> a batch of actions."""
    config = load_ppo_config(path)
    observation_space = getattr(env, "single_observation_space", env.observation_space)
    action_space = getattr(env, "single_action_space", env.action_space)
    check_ppo_spaces(config, observation_space, action_space)
    policy = NormalizedPolicy(build_policy(config, observation_space, action_space), config.normalize_obs)
    load_best_policy(path, policy)
    policy.policy.set_training_mode(False)
    return policy.to(torch.device(device)).act


def export_policy(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy a PPO run's best-evaluated policy into ``out_dir`` without the training state (live weights,
    optimizer): ``config.json``, a ``checkpoint.pt`` with only ``best_policy`` and a ``checkpoint.npz`` with
    only its observation statistics. ``mpenv-eval out_dir`` plays it; it is a fraction of the run's size."""
    run_dir, out_dir = resolve(run_dir), Path(out_dir)
    run_dir = run_dir if run_dir.is_dir() else run_dir.parent
    config = load_config(run_dir)
    if config.get("algo") != "ppo":
        raise CheckpointError(f"{run_dir}: not a PPO run (algo {config.get('algo')!r})")
    state = load_torch(run_dir)
    name = "best_policy" if "best_policy" in state["modules"] else "policy"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    save_torch(out_dir, {"step": int(state["step"]), "modules": {"best_policy": state["modules"][name]},
                         "optimizers": {}, "extra": {}})
    if (run_dir / ARRAYS_FILE).exists():
        prefix = "best_" if name == "best_policy" else ""
        arrays = load_arrays(run_dir)
        kept = {f"best_obs_{k}": arrays[f"{prefix}obs_{k}"] for k in ("mean", "var", "count")}
        save_arrays(out_dir, kept | {"step": arrays["step"]})
    return out_dir
