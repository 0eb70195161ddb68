"""``mpenv-eval CHECKPOINT --episodes N [--video DIR|FILE.mp4]``: reload a trained policy and report its return.

The checkpoint's ``config.json`` names the algorithm, the env id and its kwargs, so the same
environment is rebuilt. Tabular runs store their policy ``pi`` in ``checkpoint.npz`` (a greedy action
per state, or action probabilities per state); deep agents store networks in ``checkpoint.pt`` and
act deterministically (greedy Q, categorical argmax, Gaussian mean); PPO runs also apply the observation
statistics saved beside the weights (``checkpoint.npz``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agents.envs import InfoMeans, make_env, make_vector_env, parse_env_kwargs
from agents.tabular import PolicySampler, agent_rng, discrete_sizes
from mpenv.checkpoint import CheckpointError, load_arrays, load_config

if TYPE_CHECKING:
    from agents.run import RunContext

Act = Callable[[Any], Any]  # one observation -> one action
BatchAct = Callable[[np.ndarray], np.ndarray]  # a batch of observations -> a batch of actions
DEEP_AGENT_MODULES = {"dqn": "agents.dqn", "reinforce": "agents.reinforce", "a2c": "agents.actor_critic",
                      "ppo": "agents.sb3_ppo"}

# Which episodes a run of seed s plays, by the seed of their first reset (vector env copy i of a reset with
# seed x plays seed x + i; later episodes of a copy continue its random stream and are seeded by no one):
#   training envs                                  s + i                              (i < n_envs)
#   keep-the-best selection round k (KeepBest)     s + EVAL_SEED_OFFSET + SEEDS_PER_ROUND k + i
#   held-out tests (mpenv-train's final evaluation, the learning tests)   s + HELD_OUT_SEED_OFFSET
# The three ranges are disjoint, so the weights are never chosen on the episodes they are judged on.
EVAL_SEED_OFFSET = 1_000_000
SEEDS_PER_ROUND = 1_000  # seeds set aside per selection round: rounds of up to 1000 episodes never overlap
HELD_OUT_SEED_OFFSET = 10_000
RECOVERED = 0.05  # metres of root-relative MPJPE under which a pushed humanoid tracks its reference again


def forget_memory(act: Act | BatchAct) -> None:
    """A recurrent policy's actor (``agents.policies.RecurrentActor``) forgets its hidden state: envs were reset."""
    reset = getattr(act, "reset", None)
    if reset is not None:
        reset()


class OneAtATime:
    """A batched actor used on one observation at a time (``run_episodes``); keeps its ``reset``."""

    def __init__(self, batched: BatchAct):
        self.batched = batched

    def __call__(self, obs: Any) -> Any:
        return self.batched(np.asarray(obs)[None])[0]

    def reset(self) -> None:
        forget_memory(self.batched)


def run_episodes(env: gym.Env, act: Act, episodes: int, seed: int = 0, max_steps: int = 10_000,
                 on_frame: Callable[[], None] | None = None,
                 on_step: Callable[[int, dict[str, Any]], None] | None = None) -> np.ndarray:
    """Undiscounted return of each of ``episodes`` episodes acting with ``act``; the first reset is
    seeded so the whole evaluation is reproducible. ``max_steps`` guards envs without a time limit
    against a policy that never ends an episode (an untrained CliffWalking table, say). ``on_frame``
    is called after every reset and step (rendering), ``on_step(episode, info)`` after every step."""
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        forget_memory(act)
        if on_frame:
            on_frame()
        for _ in range(max_steps):
            obs, reward, terminated, truncated, info = env.step(act(obs))
            returns[episode] += float(reward)
            if on_frame:
                on_frame()
            if on_step:
                on_step(episode, info)
            if terminated or truncated:
                break
    return returns


def vector_returns(envs: gym.vector.VectorEnv, act: BatchAct, seed: int, max_steps: int = 10_000) -> np.ndarray:
    """The return of one episode in each copy of ``envs``, played side by side (one batched ``act`` per
    step); a copy's later, autoreset episodes do not count. Episodes are cut at ``max_steps`` (envs
    without a time limit and a policy that never ends one)."""
    obs, _ = envs.reset(seed=seed)
    forget_memory(act)
    returns = np.zeros(envs.num_envs)
    running = np.ones(envs.num_envs, dtype=bool)
    for _ in range(max_steps):
        obs, rewards, terminated, truncated, _ = envs.step(act(obs))
        returns += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
        if not running.any():
            break
    return returns


class KeepBest:
    """Keep the best: evaluates the current deterministic policy on envs of its own and keeps a copy of
    the weights with the best mean return so far (ties go to the later, longer-trained weights).

    RL training curves are noisy and the last weights are often not the best ones (SB3's EvalCallback
    does the same). Each evaluation plays other episodes (the seed advances by ``SEEDS_PER_ROUND`` with
    ``evaluations``), and the same ones after a resume, as ``state()`` is checkpointed.
    """

    def __init__(self, module: Any, act: BatchAct, envs: gym.vector.VectorEnv | None, seed: int):
        self.module, self.act, self.envs, self.seed = module, act, envs, seed
        self.best = copy.deepcopy(module)
        self.best_return = -math.inf  # nothing evaluated yet
        self.evaluations = 0

    def evaluate(self) -> float:
        if self.envs is None:
            raise ValueError("KeepBest was made without evaluation envs")
        mean_return = float(vector_returns(self.envs, self.act, self.seed + SEEDS_PER_ROUND * self.evaluations).mean())
        self.evaluations += 1
        if mean_return >= self.best_return:
            self.best_return = mean_return
            self.best.load_state_dict(self.module.state_dict())
        return mean_return

    @property
    def network(self) -> Any:
        """The best evaluated weights, or the current ones before the first evaluation."""
        return self.best if self.evaluations else self.module

    def state(self) -> dict[str, float]:
        return {"best_return": self.best_return, "evaluations": self.evaluations}

    def load_state(self, extra: dict[str, Any]) -> None:
        self.best_return = float(extra.get("best_return", -math.inf))
        self.evaluations = int(extra.get("evaluations", 0))

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


def keep_best(module: Any, act: BatchAct, run: RunContext, episodes: int) -> KeepBest:
    """Keep-the-best evaluation of ``module`` (acting through ``act``) on ``episodes`` envs of its own, seeded
    from ``run.seed + EVAL_SEED_OFFSET``: episodes that neither training nor the held-out tests play."""
    envs = make_vector_env(run.env_id, run.env_kwargs, episodes, run.seed + EVAL_SEED_OFFSET)
    return KeepBest(module, act, envs, run.seed + EVAL_SEED_OFFSET)


def tabular_actor(pi: np.ndarray, env: gym.Env, seed: int) -> Act:
    choose, rng = PolicySampler(pi, *discrete_sizes(env, "evaluation")), agent_rng(seed)
    return lambda state: choose(int(state), rng)


def evaluate_policy(env: gym.Env, pi: np.ndarray, episodes: int, seed: int = 0, max_steps: int = 10_000) -> np.ndarray:
    """Returns of a tabular policy ``pi`` (int [S] or float [S, A]) over ``episodes`` episodes."""
    return run_episodes(env, tabular_actor(pi, env, seed), episodes, seed, max_steps)


def check_policy(pi: np.ndarray, env: gym.Env, source: str) -> None:
    """A policy from a file must fit the env it is run on; the error names the file."""
    try:
        PolicySampler(pi, *discrete_sizes(env, "evaluation"))
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from err


def load_actor(checkpoint: str, config: dict[str, Any], env: gym.Env, seed: int) -> Act:
    """The policy of a checkpoint as a function of one observation, whichever kind of agent wrote it."""
    algo = config.get("algo")
    if algo in DEEP_AGENT_MODULES:
        return OneAtATime(importlib.import_module(DEEP_AGENT_MODULES[algo]).load_policy(checkpoint, env))
    arrays = load_arrays(checkpoint)
    if "pi" not in arrays:
        raise CheckpointError(f"{checkpoint}: no policy 'pi' in checkpoint.npz (found: {sorted(arrays)})")
    check_policy(arrays["pi"], env, checkpoint)
    return tabular_actor(arrays["pi"], env, seed)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    import imageio.v2 as imageio  # imageio-ffmpeg ships its own ffmpeg binary

    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def video_path(video: str, config: dict[str, Any]) -> Path:
    """``--video out.mp4`` names the file; ``--video DIR`` gets ``<env>__<algo>.mp4`` in DIR."""
    if Path(video).suffix.lower() == ".mp4":
        return Path(video)
    return Path(video) / f"{config['env_id'].replace('/', '_')}__{config.get('algo', 'policy')}.mp4"


def record(config: dict[str, Any], checkpoint: str, seed: int, mode: str, video_dir: str | None) -> None:
    """Play one episode with rendering: frames as text (``ansi``) or an mp4 (``video_dir``: a directory or a
    ``.mp4`` file). Envs that draw their reference motion beside the character (``mpenv/HumanoidMimic``)
    show both."""
    env = make_env(config["env_id"], config.get("env_kwargs"), render_mode=mode)
    act = load_actor(checkpoint, config, env, seed)
    frames: list[Any] = []
    run_episodes(env, act, episodes=1, seed=seed, max_steps=2_000, on_frame=lambda: frames.append(env.render()))
    if mode == "ansi":
        print("\n".join(frames))
        return
    path = write_video(video_path(video_dir, config), frames, fps=env.metadata.get("render_fps") or 30)
    print(f"video of one episode ({len(frames)} frames): {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpenv-eval", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Evaluate a run written by mpenv-train: rebuilds its env from config.json and runs its "
                    "policy (greedy for control, DP and DQN runs; the mean action for Gaussian policies).")
    parser.add_argument("checkpoint", help="run directory (or the checkpoint file in it)")
    parser.add_argument("--episodes", type=int, default=100, help="number of evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first reset and of stochastic policies")
    parser.add_argument("--env-kwargs", default="{}", metavar="JSON",
                        help="env kwargs to change for this evaluation, over the run's own (e.g. "
                             '\'{"motions": ["walk"]}\' to evaluate a motion-library policy on one clip)')
    parser.add_argument("--max-episode-steps", type=int, default=None, metavar="N",
                        help="time limit of the evaluation episodes (default: the env's own)")
    parser.add_argument("--render", choices=["none", "ansi"], default="none",
                        help="print one episode's frames as text")
    parser.add_argument("--video", metavar="DIR|FILE.mp4", default=None,
                        help="write an mp4 of one episode into DIR, or to FILE.mp4 (envs with render_mode='rgb_array')")
    perturb = parser.add_argument_group(
        "perturbations (the humanoid)", "push the pelvis and/or add action noise; the report adds the episodes "
        "survived and the time until tracking recovers (MPJPE back under 5 cm) after the last push")
    perturb.add_argument("--push", type=float, default=None, metavar="NEWTONS", help="force of the push")
    perturb.add_argument("--push-duration", type=float, default=0.2, metavar="S", help="seconds each push lasts")
    perturb.add_argument("--push-at", type=float, default=1.0, metavar="S", help="seconds into the episode")
    perturb.add_argument("--push-direction", default="random", metavar="DEG|random",
                         help="degrees counter-clockwise from the character's facing: 0 forward, 90 left, "
                              "180 back, -90 right; random: a new direction each episode")
    perturb.add_argument("--action-noise", type=float, default=None, metavar="SIGMA",
                         help="standard deviation of Gaussian noise added to every action")
    return parser


def perturbation_kwargs(args: argparse.Namespace, env_id: str) -> dict[str, Any]:
    """The env kwargs of ``--push``/``--action-noise``, checked against what the env takes."""
    kwargs: dict[str, Any] = {}
    if args.push is not None:
        direction = None if args.push_direction == "random" else _degrees(args.push_direction)
        kwargs |= {"push_force": args.push, "push_duration": args.push_duration, "push_at": args.push_at,
                   "push_direction": direction}
    if args.action_noise is not None:
        kwargs["action_noise"] = args.action_noise
    missing = [name for name in kwargs if not env_takes(env_id, name)]
    if missing:
        flag = "--push" if "push_force" in missing else "--action-noise"
        raise ValueError(f"{flag}: {env_id} takes no {missing[0]} (perturbations are for mpenv/HumanoidMimic ids)")
    return kwargs


def _degrees(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--push-direction must be degrees or 'random', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value in (("--episodes", args.episodes), ("--max-episode-steps", args.max_episode_steps)):
        if value is not None and value < 1:
            print(f"mpenv-eval: error: {flag} must be at least 1", file=sys.stderr)
            return 2
    try:
        config = load_config(args.checkpoint)
        if "env_id" not in config:
            raise CheckpointError(f"{args.checkpoint}: config.json names no 'env_id'")
        config = config | {"env_kwargs": (config.get("env_kwargs") or {}) | parse_env_kwargs(args.env_kwargs)}
        env_kwargs = with_evaluation_metrics(config["env_id"], config["env_kwargs"])
        limit = {} if args.max_episode_steps is None else {"max_episode_steps": args.max_episode_steps}
        env = make_env(config["env_id"], env_kwargs | perturbation_kwargs(args, config["env_id"]), **limit)
        for flag, mode in (("--render", "ansi" if args.render == "ansi" else None),
                           ("--video", "rgb_array" if args.video else None)):
            modes = env.metadata.get("render_modes", [])
            if mode and mode not in modes:
                raise ValueError(f"{flag}: {config['env_id']} cannot render {mode!r} frames (it renders: "
                                 f"{', '.join(modes) or 'nothing'})")
        act = load_actor(args.checkpoint, config, env, args.seed)
        if args.render == "ansi":
            record(config, args.checkpoint, args.seed, "ansi", None)
        if args.video:
            record(config, args.checkpoint, args.seed, "rgb_array", args.video)
    except (CheckpointError, ValueError) as err:
        print(f"mpenv-eval: error: {err}", file=sys.stderr)
        return 2
    stats = EpisodeStats(args.episodes)
    returns = run_episodes(env, act, args.episodes, seed=args.seed, on_step=stats.add)
    print(f"{config['env_id']} | {config.get('algo', '?')} | {args.episodes} episodes: "
          f"return {returns.mean():.3f} +- {returns.std():.3f} (min {returns.min():.3g}, max {returns.max():.3g})")
    print(stats.summary(env.spec.max_episode_steps if env.spec else None))
    return 0


def env_takes(env_id: str, name: str) -> bool:
    """Whether the constructor of a registered env has the keyword argument ``name``."""
    try:
        creator = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
        return name in inspect.signature(creator).parameters
    except Exception:  # an unknown id (make_env reports it) or a creator without a signature
        return False


def with_evaluation_metrics(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` plus ``eval_metrics=True`` for envs whose constructor takes it: the humanoid computes its
    costlier metrics (PA-MPJPE, acceleration error) only when asked, so training stays fast."""
    if "eval_metrics" in env_kwargs or not env_takes(env_id, "eval_metrics"):
        return env_kwargs
    return {**env_kwargs, "eval_metrics": True}


WORST_EPISODE_KEYS = ("mpjpe", "mpjpe_global", "pa_mpjpe")
"""Tracking errors whose worst per-episode mean the report adds to the means over all steps."""


class EpisodeStats:
    """Episode lengths, the per-step means of an env's numeric ``info`` terms (the humanoid's ``reward_*``
    and tracking errors) and, for envs that report ``tracking_lost``, the episodes that never lost tracking
    (PHC's success), for the evaluation report."""

    def __init__(self, episodes: int) -> None:
        self.lengths = np.zeros(episodes, dtype=int)
        self.info_means = InfoMeans()
        self.episode_info = [InfoMeans() for _ in range(episodes)]  # the same means, episode by episode
        self.lost: np.ndarray | None = None  # per episode: tracking lost at some step
        self.fell = np.zeros(episodes, dtype=bool)
        self.pushes = False
        self.push_end = np.full(episodes, -1)  # per episode: the step that ended its last push
        self.recovered = np.full(episodes, -1)  # ... and the first step after it with MPJPE under 5 cm

    def add(self, episode: int, info: dict[str, Any]) -> None:
        self.lengths[episode] += 1
        self.info_means.add(info)
        self.episode_info[episode].add(info)
        if "tracking_lost" in info:
            if self.lost is None:
                self.lost = np.zeros(len(self.lengths), dtype=bool)
            self.lost[episode] |= bool(info["tracking_lost"])
        self.fell[episode] |= bool(info.get("fallen", False))
        step = self.lengths[episode]
        if info.get("pushed", False):
            self.pushes = True
            self.push_end[episode], self.recovered[episode] = step, -1
        elif self.push_end[episode] >= 0 and self.recovered[episode] < 0 and info.get("mpjpe", np.inf) < RECOVERED:
            self.recovered[episode] = step

    def episode_means(self, key: str) -> np.ndarray:
        """The per-step mean of ``info[key]`` in each episode (NaN where an episode never reported it): the
        issue's bars hold episode by episode, and a mean over all steps hides one bad episode."""
        return np.array([m.means().get(key, np.nan) for m in self.episode_info])

    def summary(self, max_episode_steps: int | None) -> str:
        text = f"episode length {self.lengths.mean():.1f} (min {self.lengths.min()}, max {self.lengths.max()})"
        if max_episode_steps:
            text += f", {np.mean(self.lengths / max_episode_steps):.3f} of the limit {max_episode_steps}"
        terms = ", ".join(f"{key} {mean:.4g}" for key, mean in self.info_means.means().items())
        text += f"\nper-step means: {terms}" if terms else ""
        worst = [f"{key} {np.nanmax(self.episode_means(key)):.4g}" for key in WORST_EPISODE_KEYS
                 if key in self.info_means.counts]
        text += f"\nworst episode's mean: {', '.join(worst)}" if worst else ""
        if self.lost is not None:
            text += (f"\ntracking success (PHC, mean global joint error never above 0.5 m, no fall): "
                     f"{np.sum(~self.lost)}/{len(self.lost)}")
        if self.pushes:
            text += "\n" + self.recovery_summary()
        return text

    def recovery_seconds(self, fps: float = 30.0) -> np.ndarray:
        """Per episode, the seconds from the end of its last push until tracking recovered; NaN where the episode
        was not pushed, fell, or never tracked within 5 cm again."""
        recovered = (self.push_end >= 0) & ~self.fell & (self.recovered >= 0)
        return np.where(recovered, (self.recovered - self.push_end) / fps, np.nan)

    def recovery_summary(self, fps: float = 30.0) -> str:
        """Survival of the pushed episodes, and how long tracking took to recover after each one's last push."""
        pushed = self.push_end >= 0
        all_seconds = self.recovery_seconds(fps)
        recovered = ~np.isnan(all_seconds)
        seconds = all_seconds[recovered]
        text = (f"pushes: survived {np.sum(pushed & ~self.fell)}/{np.sum(pushed)} pushed episodes; tracking "
                f"recovered (MPJPE < {RECOVERED * 100:g} cm, no fall) in {np.sum(recovered)}/{np.sum(pushed)}")
        if len(seconds):
            text += f", {np.median(seconds):.2f} s after the push (median; max {seconds.max():.2f} s)"
        return text
