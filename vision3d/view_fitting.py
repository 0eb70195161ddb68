"""What every model fitted to posed images shares around its own training step (NeRF, Gaussian splatting).

A run keeps a ``history`` of held-out evaluations (``step``, ``train_seconds`` with evaluations excluded, ``psnr``,
``ssim`` and whatever the model adds), writes TensorBoard events and ``config.json`` through
:class:`mpenv.logger.RunLogger`, checkpoints through :mod:`mpenv.checkpoint`, and on Ctrl-C saves the last
completed step before it stops, so ``resume`` continues exactly from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mpenv.checkpoint import load_torch
from vision3d.image_metrics import psnr, ssim

__all__ = ["Resumed", "fitting_run", "image_scores", "record_evaluation", "resume_state"]

SSIM_WINDOW = 11  # pixels; SSIM is undefined on smaller images


@dataclass
class Resumed:
    """A checkpoint to continue from: the saved ``state``, its file (for error messages), the step it reached, the
    evaluation history and the training seconds spent so far."""

    state: dict
    source: str
    step: int
    history: list[dict[str, float]]
    train_seconds: float


def resume_state(run_dir: str | Path | None, required: Sequence[str]) -> Resumed:
    """The checkpoint of ``run_dir`` (weights only, ``required`` keys checked) ready to resume from."""
    if run_dir is None:
        raise ValueError("resume needs the run directory")
    state = load_torch(run_dir, required=("step", "history", *required))
    history = state["history"]
    return Resumed(state, f"{run_dir}/checkpoint.pt", state["step"], history,
                   history[-1]["train_seconds"] if history else 0.0)


def image_scores(images: Sequence[Tensor], targets: Sequence[Tensor]) -> dict[str, float]:
    """Mean PSNR and SSIM of rendered ``images`` against ``targets`` ([H, W, 3] each); SSIM is NaN on images
    smaller than its window."""
    pairs = list(zip(images, targets, strict=True))
    small = min(images[0].shape[:2]) < SSIM_WINDOW
    return {"psnr": sum(psnr(i, t) for i, t in pairs) / len(pairs),
            "ssim": math.nan if small else sum(ssim(i, t) for i, t in pairs) / len(pairs)}


def record_evaluation(history: list[dict[str, float]], logger, step: int, train_seconds: float, result: dict,
                      **extra: float) -> None:
    """Append an evaluation (``result``: ``psnr``, ``ssim``, ``images``) to ``history`` and, with a logger, write it
    to TensorBoard with the first four rendered views."""
    history.append({"step": step, "train_seconds": train_seconds, "psnr": result["psnr"], "ssim": result["ssim"],
                    **extra})
    if logger is not None:
        logger.log("eval/psnr", result["psnr"], step)
        logger.log("eval/ssim", result["ssim"], step)
        logger.log("eval/train_seconds", train_seconds, step)
        for name, value in extra.items():
            logger.log(f"eval/{name}", value, step)
        logger.writer.add_images("eval/views", torch.stack(result["images"][:4]).clamp(0, 1), step,
                                 dataformats="NHWC")


@contextmanager
def fitting_run(run_dir: str | Path | None, run_config: dict, steps: int, progress: bool | None,
                save_on_interrupt: Callable[[], None]) -> Iterator[object | None]:
    """The run's logger (``None`` without a run directory) around the training loop: on Ctrl-C the last completed
    step is saved before the interrupt goes on, and the logs are flushed whatever happens."""
    from mpenv.logger import RunLogger

    logger = RunLogger(Path(run_dir), run_config, steps, progress) if run_dir is not None else None
    try:
        yield logger
    except KeyboardInterrupt:
        save_on_interrupt()
        raise
    finally:
        if logger is not None:
            logger.close()
