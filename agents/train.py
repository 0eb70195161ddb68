"""``mpenv-train ALGO --env ENV_ID ...`` (also ``python -m agents.train``): train an agent, log to
TensorBoard, save a checkpoint.

    mpenv-train q-learning --env mpenv/CliffWalking-v0 --total-steps 20000 --seed 1
    mpenv-train value-iteration --env FrozenLake-v1 --gamma 0.99
    mpenv-train dqn --env CartPole-v1 --total-steps 50000 --seed 1
    mpenv-train a2c --resume runs/<run-dir> --total-steps 300000
    mpenv-train ppo --env mpenv/HumanoidMimicWalk-v0 --total-steps 20000000
    mpenv-train sarsa --help            # every hyperparameter, with its default

Each algorithm's hyperparameters are the fields of its config dataclass (``QLearningConfig`` in
``agents/td.py`` and so on); this module turns them into flags, so a new field is a new flag with no
edit here. A run writes ``runs/<env>__<algo>__<seed>__<timestamp>/`` (see :mod:`mpenv.logger`) with
``config.json``, ``checkpoint.npz`` (``V``, the greedy policy ``pi`` and ``Q`` for control methods)
and, on grid environments, ``values.png``: V(s) with greedy-policy arrows; deep agents write
``checkpoint.pt`` (see :mod:`agents.run`) and can be resumed: ``--resume RUN_DIR`` takes the env, its
kwargs, the seed and the hyperparameters from the run's ``config.json``.

Budgets: ``--total-steps`` bounds environment steps for the sample-based methods; when it is given and
``--n-episodes`` is not, the step budget alone ends the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents import actor_critic, dp, dqn, mc, reinforce, sb3_ppo, td
from agents.envs import make_env, parse_env_kwargs
from agents.evaluate import HELD_OUT_SEED_OFFSET, OneAtATime, check_policy, evaluate_policy, run_episodes
from agents.plots import save_figure, value_policy_figure
from agents.run import RunContext
from agents.tabular import discrete_sizes
from mpenv.checkpoint import CheckpointError, load_arrays, load_config, load_torch, save_arrays
from mpenv.device import get_device
from mpenv.logger import NonFiniteLossError, RunLogger, make_run_dir

Log = Callable[[str, float, int], None]
UNLIMITED_EPISODES = 10**12
DEEP_DEFAULT_STEPS = 100_000


@dataclass
class RunConfig:
    """What every run shares, whatever the algorithm."""

    env: str = field(default="mpenv/FrozenLake4x4-v0", metadata={"help": "gymnasium env id (mpenv/... ids included)"})
    env_kwargs: str = field(default="{}", metadata={"help": 'JSON dict of env kwargs, e.g. \'{"slip": 0.1}\''})
    total_steps: int | None = field(default=None, metadata={
        "help": f"env-step budget (sample-based methods; deep agents default to {DEEP_DEFAULT_STEPS:,}, "
                "a resumed run to its saved budget)"})
    seed: int = field(default=1, metadata={"help": "seed of the agent and of the env's first reset"})
    logdir: str = field(default="runs", metadata={"help": "parent directory of the run directory"})
    device: str = field(default="auto", metadata={"help": "torch device: auto, cpu, cuda, cuda:N or mps"})
    eval_episodes: int = field(default=100, metadata={"help": "greedy evaluation episodes after training (0: skip)"})
    policy: str = field(default="", metadata={"help": "prediction methods: evaluate this checkpoint's policy "
                                                      "instead of the uniform random one"})
    resume: str = field(default="", metadata={"help": "deep agents: continue the run in this run directory "
                                                      "(its env, env kwargs, seed and hyperparameters, its "
                                                      "TensorBoard curve)"})
    checkpoint_every: int = field(default=10_000, metadata={"help": "deep agents: env steps between checkpoints"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads; small MLPs are fastest with 1, CNNs "
                                                      "may gain from more (0: torch's default)"})


@dataclass(frozen=True)
class Algorithm:
    config: type  # the hyperparameter dataclass; its fields become flags
    fn: Callable  # the algorithm itself, from agents.dp / agents.mc / agents.td
    kind: str  # "dp": model -> V, pi; "control": learns Q; "prediction": V of a fixed policy; "deep": networks
    summary: str
    load_policy: Callable | None = None  # deep agents: (run_dir, env) -> batched deterministic actions
    example: str = ""  # a command line shown at the end of 'mpenv-train ALGO --help'


ALGORITHMS: dict[str, Algorithm] = {
    "value-iteration": Algorithm(dp.ValueIterationConfig, dp.value_iteration, "dp",
                                 "dynamic programming: value iteration on the env's model P"),
    "policy-iteration": Algorithm(dp.PolicyIterationConfig, dp.policy_iteration, "dp",
                                  "dynamic programming: policy iteration on the env's model P"),
    "mc-prediction": Algorithm(mc.MCPredictionConfig, mc.mc_prediction, "prediction",
                               "Monte Carlo prediction of V for a fixed policy"),
    "mc-control": Algorithm(mc.MCControlConfig, mc.mc_control, "control",
                            "on-policy first-visit Monte Carlo control, epsilon-greedy"),
    "td0": Algorithm(td.TD0Config, td.td0_prediction, "prediction", "TD(0) prediction of V for a fixed policy"),
    "sarsa": Algorithm(td.SarsaConfig, td.sarsa, "control", "SARSA: on-policy TD control"),
    "expected-sarsa": Algorithm(td.ExpectedSarsaConfig, td.expected_sarsa, "control",
                                "expected SARSA: TD control with the expected next action value"),
    "q-learning": Algorithm(td.QLearningConfig, td.q_learning, "control", "Q-learning: off-policy TD control"),
    "dqn": Algorithm(dqn.DQNConfig, dqn.train_dqn, "deep", "deep Q-network with replay and a target network",
                     dqn.load_policy),
    "reinforce": Algorithm(reinforce.ReinforceConfig, reinforce.train_reinforce, "deep",
                           "REINFORCE: Monte Carlo policy gradient with a baseline", reinforce.load_policy),
    "a2c": Algorithm(actor_critic.A2CConfig, actor_critic.train_a2c, "deep",
                     "advantage actor-critic on synchronous vectorized envs", actor_critic.load_policy),
    "ppo": Algorithm(sb3_ppo.PPOConfig, sb3_ppo.train_ppo, "deep",
                     "proximal policy optimization: stable-baselines3's PPO on parallel envs", sb3_ppo.load_policy,
                     example="mpenv-train ppo --env mpenv/HumanoidMimicWalk-v0 --total-steps 20000000"),
}
ALIASES = {"value-iteration": ["vi"], "policy-iteration": ["pi"], "mc-control": ["mc"],
           "q-learning": ["qlearning"]}
CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases} | {n: n for n in ALGORITHMS}


# ---------------------------------------------------------------------------------------------------
# Flags from dataclass fields


def _flag_type(annotation: Any) -> tuple[type, bool]:
    """The scalar type behind an annotation and whether ``None`` is allowed (``int | None``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _parser_for(kind: type, optional: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.strip().lower() == "none":
            return None
        return kind(text)
    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_dataclass_flags(parser: argparse.ArgumentParser, config: type, skip: set[str] = frozenset(),
                        suppress_defaults: bool = False) -> None:
    """One ``--field-name`` flag per dataclass field, typed from its annotation, helped by its metadata."""
    hints = typing.get_type_hints(config)
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        kind, optional = _flag_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help", "") + f" (default: {default})",
                                  "default": argparse.SUPPRESS if suppress_defaults else default}
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            parser.add_argument(flag, type=_parser_for(kind, optional), metavar=kind.__name__.upper(), **kwargs)


def check_no_shadowed_fields(name: str, config: type) -> None:
    """A hyperparameter named like a run flag would silently take the run flag's value (``seed`` is the
    one meant to be shared)."""
    clash = ({f.name for f in dataclasses.fields(config)} & {f.name for f in dataclasses.fields(RunConfig)}) - {"seed"}
    if clash:
        raise TypeError(f"{config.__name__} ({name}) has fields {sorted(clash)} that shadow mpenv-train's run flags")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpenv-train", description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="Run 'mpenv-train ALGO --help' for an algorithm's hyperparameters. Watch a run with "
               "'tensorboard --logdir runs'; evaluate it with 'mpenv-eval RUN_DIR'.")
    sub = parser.add_subparsers(dest="algo", required=True, metavar="ALGO",
                                help="one of: " + ", ".join(ALGORITHMS) + " (aliases: vi, pi, mc, qlearning)")
    for name, algorithm in ALGORITHMS.items():
        check_no_shadowed_fields(name, algorithm.config)
        doc = (algorithm.config.__doc__ or "").strip()
        # Raw text, filled here, so that the example stays one command line that can be copied.
        p = sub.add_parser(name, aliases=ALIASES.get(name, []), help=algorithm.summary,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=textwrap.fill(f"{algorithm.summary}. {' '.join(doc.split())}", width=100),
                           epilog=f"example:\n  {algorithm.example}" if algorithm.example else None)
        add_dataclass_flags(p.add_argument_group("run"), RunConfig)
        add_dataclass_flags(p.add_argument_group(f"{name} hyperparameters"), algorithm.config,
                            skip={f.name for f in dataclasses.fields(RunConfig)}, suppress_defaults=True)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[str, RunConfig, Any]:
    """Split parsed flags into the run config and the algorithm's config dataclass."""
    name = CANONICAL[args.algo]
    values = vars(args)
    run = RunConfig(**{f.name: values[f.name] for f in dataclasses.fields(RunConfig)})
    algo_fields = {f.name for f in dataclasses.fields(ALGORITHMS[name].config)}
    given = {key: values[key] for key in algo_fields if key in values}
    if "n_episodes" in algo_fields and "n_episodes" not in given and run.total_steps is not None:
        given["n_episodes"] = UNLIMITED_EPISODES
    if "seed" in algo_fields:
        given["seed"] = run.seed
    return name, run, ALGORITHMS[name].config(**given)


# ---------------------------------------------------------------------------------------------------
# A run


def policy_to_evaluate(env: gym.Env, checkpoint: str) -> np.ndarray:
    """The fixed policy of a prediction run: a saved run's ``pi``, else uniform random [S, A]."""
    n_states, n_actions = env.observation_space.n, env.action_space.n
    if not checkpoint:
        return np.full((n_states, n_actions), 1.0 / n_actions)
    pi = load_arrays(checkpoint, required={"pi": 1})["pi"]
    check_policy(pi, env, checkpoint)
    return pi


def run_algorithm(algorithm: Algorithm, env: gym.Env, params: dict[str, Any], total_steps: int | None,
                  policy: np.ndarray | None, log: Log) -> dict[str, np.ndarray]:
    """Run one algorithm; returns the arrays of its checkpoint: ``V``, ``pi`` and, for control, ``Q``."""
    if algorithm.kind == "dp":
        V, pi = algorithm.fn(dp.MDP.from_env(env), **params, log=log)
        return {"V": V, "pi": pi}
    if algorithm.kind == "prediction":
        V = algorithm.fn(env, policy, **params, total_steps=total_steps, log=log)
        return {"V": V, "pi": policy}
    Q = algorithm.fn(env, **params, total_steps=total_steps, log=log)
    return {"Q": Q, "V": Q.max(axis=1), "pi": Q.argmax(axis=1)}


def train(algo: str, run: RunConfig, params: Any, progress: bool | None = None) -> Path:
    """Train ``algo`` as configured; returns the run directory. Validates everything before writing.
    ``run.seed`` seeds the agent as well as the env: it replaces the ``seed`` field of ``params``, if any."""
    name = CANONICAL.get(algo)
    if name is None:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
    if run.resume:
        if ALGORITHMS[name].kind != "deep":
            raise ValueError(f"--resume: only the deep agents can be resumed, not {name}")
        run = run_as_saved(run)
    check_run_config(run)
    if any(f.name == "seed" for f in dataclasses.fields(params)):  # one seed for the agent and the env, as the CLI
        params = dataclasses.replace(params, seed=run.seed)
    env_kwargs = parse_env_kwargs(run.env_kwargs)
    env = make_env(run.env, env_kwargs)
    try:
        if ALGORITHMS[name].kind == "deep":
            return train_deep(name, run, params, env, env_kwargs, progress)
        return train_tabular(name, run, params, env, env_kwargs, progress)
    finally:
        env.close()


def check_run_config(run: RunConfig) -> None:
    """The run flags, all checked before anything is written (a typo in --device fails here too)."""
    get_device(run.device)
    for flag, value, least in (("--total-steps", run.total_steps, 1), ("--checkpoint-every", run.checkpoint_every, 1),
                               ("--eval-episodes", run.eval_episodes, 0), ("--threads", run.threads, 0)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}")


def run_as_saved(run: RunConfig) -> RunConfig:
    """A resumed run goes on as it started: env, env kwargs and seed from its ``config.json``. A flag left
    at its default takes the saved value; one given with another value is an error, since the run would
    silently change task (a lost ``--env-kwargs`` would train the humanoid on another action space).
    Without ``--total-steps`` it goes on towards the budget it was started with."""
    saved = load_config(run_dir_of(run.resume))
    defaults = RunConfig()
    resolved = {}
    for flag, key, kind in (("env", "env_id", str), ("env_kwargs", "env_kwargs", dict), ("seed", "seed", int)):
        given, default, value = getattr(run, flag), getattr(defaults, flag), saved.get(key)
        if not isinstance(value, kind):
            raise ValueError(f"--resume {run.resume}: its config.json has no valid {key} (found {value!r})")
        if flag == "env_kwargs":
            given, default = parse_env_kwargs(given), parse_env_kwargs(default)
        if given != default and given != value:
            raise ValueError(f"--resume {run.resume}: that run is {key}={value!r}, not {given!r}; "
                             f"leave --{flag.replace('_', '-')} out to continue it as it was")
        resolved[flag] = json.dumps(value) if flag == "env_kwargs" else value
    if run.total_steps is None:  # an interrupted run resumes towards the budget it was given
        resolved["total_steps"] = saved.get("total_steps")
        if not isinstance(resolved["total_steps"], int):
            raise ValueError(f"--resume {run.resume}: its config.json has no integer total_steps; give --total-steps")
    return dataclasses.replace(run, **resolved)


def run_dir_of(path: str | Path) -> Path:
    """``--resume`` takes a run directory or a checkpoint file in one."""
    path = Path(path)
    return path.parent if path.is_file() else path


def run_config(name: str, run: RunConfig, env_kwargs: dict[str, Any], params: Any, total_steps: int | None) -> dict:
    """What config.json records: enough to rebuild the env and the agent, and to resume."""
    return {"algo": name, "env_id": run.env, "env_kwargs": env_kwargs, "seed": run.seed, "total_steps": total_steps,
            "device": str(get_device(run.device)), "hyperparameters": dataclasses.asdict(params)}


@contextlib.contextmanager
def removed_if_rejected(run_dir: Path, logger: RunLogger, keep: bool = False) -> Iterator[None]:
    """The agents check their hyperparameters and spaces before doing any work: a run that fails there
    (a ValueError before anything was logged) leaves no directory behind, like every other bad input."""
    try:
        yield
    except ValueError:
        if logger.scalars_written == 0 and not keep:
            logger.close()
            shutil.rmtree(run_dir)
        raise


def train_tabular(name: str, run: RunConfig, params: Any, env: gym.Env, env_kwargs: dict[str, Any],
                  progress: bool | None) -> Path:
    discrete_sizes(env, f"{name} on {run.env}")
    algorithm = ALGORITHMS[name]
    policy = policy_to_evaluate(env, run.policy) if algorithm.kind == "prediction" else None
    config = run_config(name, run, env_kwargs, params, run.total_steps)
    run_dir = make_run_dir(run.logdir, run.env, name, run.seed)
    with RunLogger(run_dir, config, total_steps=run.total_steps, progress=progress) as logger:
        with removed_if_rejected(run_dir, logger):
            arrays = run_algorithm(algorithm, env, config["hyperparameters"], run.total_steps, policy, logger.log)
        save_arrays(run_dir, arrays)
        figure = value_policy_figure(env, arrays["V"], arrays["pi"] if arrays["pi"].ndim == 1 else None,
                                     title=f"{name} on {run.env}")
        if figure is not None:
            save_figure(figure, run_dir / "values.png")
            logger.figure("values", figure)
        if run.eval_episodes > 0:
            returns = evaluate_policy(env, arrays["pi"], run.eval_episodes, seed=run.seed + HELD_OUT_SEED_OFFSET)
            report_evaluation(logger, returns)
    return run_dir


def resumed_run(name: str, run: RunConfig, total_steps: int) -> tuple[Path, dict[str, Any]]:
    """The run directory and saved config of ``--resume``, checked against the command line: same algorithm
    and a budget beyond the steps already done (else there would be nothing to train)."""
    run_dir = run_dir_of(run.resume)
    done = int(load_torch(run_dir, required=("step",))["step"])  # fails early, naming the file, if unusable
    saved = load_config(run_dir)
    if saved.get("algo") != name:
        raise ValueError(f"--resume {run_dir}: that run is algo={saved.get('algo')!r}, not {name!r}")
    if total_steps <= done:
        raise ValueError(f"--total-steps {total_steps}: the run in {run_dir} has done {done} env steps already; "
                         f"give a larger budget to continue it")
    return run_dir, saved


def train_deep(name: str, run: RunConfig, params: Any, env: gym.Env, env_kwargs: dict[str, Any],
               progress: bool | None) -> Path:
    algorithm = ALGORITHMS[name]
    total_steps = DEEP_DEFAULT_STEPS if run.total_steps is None else run.total_steps
    if run.resume:
        run_dir, saved = resumed_run(name, run, total_steps)
        params = algorithm.config(**saved["hyperparameters"])  # a resumed run keeps its hyperparameters
    else:
        run_dir = make_run_dir(run.logdir, run.env, name, run.seed)
    config = run_config(name, run, env_kwargs, params, total_steps)
    with RunLogger(run_dir, config, total_steps=total_steps, progress=progress) as logger:
        context = RunContext(env_id=run.env, total_steps=total_steps, seed=run.seed, env_kwargs=env_kwargs,
                             device=run.device, log=logger.log, run_dir=run_dir,
                             resume=run_dir if run.resume else None, checkpoint_every=run.checkpoint_every,
                             threads=run.threads)
        with removed_if_rejected(run_dir, logger, keep=bool(run.resume)):
            algorithm.fn(params, context)
        if run.eval_episodes > 0:
            act = algorithm.load_policy(run_dir, env)
            report_evaluation(logger, run_episodes(env, OneAtATime(act), run.eval_episodes,
                                                   seed=run.seed + HELD_OUT_SEED_OFFSET))
    return run_dir


def report_evaluation(logger: RunLogger, returns: np.ndarray) -> None:
    logger.log("eval/final_return", returns.mean(), logger.last_step)
    print(f"evaluation over {len(returns)} episodes: return {returns.mean():.3f} +- {returns.std():.3f}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        name, run, params = configs_from_args(args)
        run_dir = train(name, run, params)
    except (ValueError, RuntimeError, CheckpointError) as err:
        print(f"mpenv-train: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"mpenv-train: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmpenv-train: interrupted; TensorBoard logs were flushed and the last checkpoint (deep agents) "
              "is intact", file=sys.stderr)
        return 130
    print(f"run directory: {run_dir}\n  tensorboard --logdir {run_dir.parent}\n  mpenv-eval {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
