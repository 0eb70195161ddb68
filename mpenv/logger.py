"""A training run's directory: TensorBoard scalars and images, the config as JSON, a progress bar.

Shared by every package that trains something (``agents``' RL runs, ``generative``'s models). Every agent
reports through one function, ``log(tag, value, step)``, so that the agents do not know
about TensorBoard and a test can pass a plain list-appending function instead. Tags follow the names
CleanRL made conventional: ``charts/episodic_return``, ``charts/episodic_length``, ``charts/epsilon``,
``charts/SPS``, ``losses/td_error`` and so on.

Layout of a run::

    runs/<env>__<algo>__<seed>__<timestamp>/
        events.out.tfevents.*     TensorBoard scalars, the hyperparameter table, images
        config.json               everything needed to rebuild the run (and to evaluate it)
        checkpoint.npz            written by the caller through mpenv.checkpoint
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the message names the tag and the step."""


def progress_enabled() -> bool:
    """Progress bars only for a person at a terminal: not in CI, not when output goes to a file."""
    in_ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    return sys.stderr.isatty() and not in_ci


def run_name(env_id: str, algo: str, seed: int) -> str:
    safe_env = env_id.replace("/", "_").replace(":", "_")
    return f"{safe_env}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def make_run_dir(logdir: str | Path, env_id: str, algo: str, seed: int) -> Path:
    """A fresh run directory; a numeric suffix keeps two runs started in the same second apart."""
    base = Path(logdir) / run_name(env_id, algo, seed)
    path, n = base, 1
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    path.mkdir(parents=True)
    return path


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, for a one-level hyperparameter table."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def hyperparameter_table(config: dict[str, Any]) -> str:
    rows = "\n".join(f"|{key}|{value}|" for key, value in flatten(config).items())
    return f"|param|value|\n|-|-|\n{rows}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file so an interruption never leaves half a JSON file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


class RunLogger:
    """TensorBoard writer + config.json + progress bar for one run; use it as a context manager so the
    events are flushed even when the run is interrupted with Ctrl-C."""

    def __init__(self, run_dir: Path, config: dict[str, Any], total_steps: int | None = None,
                 progress: bool | None = None) -> None:
        # torch's SummaryWriter is imported here, not at module level, so `--help` stays fast.
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(str(self.run_dir))
        self.writer.add_text("hyperparameters", hyperparameter_table(config))
        write_json(self.run_dir / "config.json", config)
        self.start_time = time.perf_counter()
        self.last_step = 0
        self.scalars_written = 0
        show = progress_enabled() if progress is None else progress
        self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True, disable=not show)

    def log(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if tag.startswith("losses/") and not math.isfinite(value):
            raise NonFiniteLossError(f"{tag} became {value} at step {step}; the run was stopped")
        self.writer.add_scalar(tag, value, step)
        self.scalars_written += 1
        if step > self.last_step:
            self.bar.update(step - self.last_step)
            self.last_step = step
        if tag == "charts/episodic_return":
            # Steps per second over the whole run so far, sampled once per episode like CleanRL.
            elapsed = max(time.perf_counter() - self.start_time, 1e-9)
            self.writer.add_scalar("charts/SPS", step / elapsed, step)
            self.bar.set_postfix(episodic_return=f"{value:.3g}", refresh=False)

    def figure(self, tag: str, figure: Any, step: int = 0) -> None:
        self.writer.add_figure(tag, figure, step, close=False)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_scalars(run_dir: str | Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one scalar tag from a run's event files, oldest file first (a resumed run adds one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # One accumulator per file, in the order they were written: the names end in ".<seconds>.<host>.<pid>.<n>",
    # so two files opened in the same second sort wrongly as text (".10" < ".9"), and one accumulator over the
    # directory drops the points of a file whose steps come after a later one's ("orphaned" data).
    def written_order(path: Path) -> tuple[int, ...]:
        numbers = [int(part) for part in path.name.split(".") if part.isdigit()]
        return (numbers[0], *numbers[-2:]) if numbers else (int(path.stat().st_mtime),)

    steps: list[int] = []
    values: list[float] = []
    found: set[str] = set()
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*"), key=written_order):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0: keep every point
        events.Reload()
        found.update(events.Tags()["scalars"])
        if tag in events.Tags()["scalars"]:
            points = events.Scalars(tag)
            steps += [p.step for p in points]
            values += [p.value for p in points]
    if tag not in found:
        raise KeyError(f"{run_dir}: no scalar {tag!r} (found: {sorted(found)})")
    return np.array(steps), np.array(values)
