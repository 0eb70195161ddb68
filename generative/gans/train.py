"""The adversarial training loop every GAN uses, and its ``mpenv-gen train`` run (logs, checkpoints, resume).

One generator step:

    for k in 1..d_steps:   D <- D - Adam(grad_D L_D(real batch, G(z)))     (+ gradient penalty)
    G <- G - Adam(grad_G L_G(G(z)))                                      (unrolled through D, optional)
    G_ema <- decay G_ema + (1 - decay) G                                 (optional)

An epoch is ``ceil(N / batch_size)`` generator steps (``N`` training examples); every discriminator step takes
the next batch of a reshuffled pass over the data. Adam with ``betas = (0.5, 0.999)``, DCGAN's choice. Nothing
here looks at a likelihood: ``mpenv-gen`` logs both players' losses, what the discriminator says of real and
generated batches, the gradient penalty's norms, and a sample-quality number per epoch (the Fréchet distance of
digits in the shipped classifier's features; modes covered on the 2D mixtures), with sample grids from fixed
noise. A discriminator that outputs NaN stops the run with the step, and the last checkpoint stays as it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from generative.gans.gan import GAN
from mpenv.checkpoint import load_state_dict_checked, load_torch, save_torch
from mpenv.device import torch_threads

__all__ = ["GANHistory", "batch_stream", "fit_gan", "make_optimizers", "sample_quality_report"]

BETAS = (0.5, 0.999)
QUALITY_SAMPLES = 1000
CLASSIFIED = ((1, 8, 8), (1, 28, 28))
"""Image shapes with a shipped classifier whose features the sample-quality metrics use."""


@dataclass
class GANHistory:
    """Per-epoch means of what :func:`fit_gan` logged, and how far it got."""

    steps: int = 0
    epochs: int = 0
    seconds: float = 0.0
    log: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self.log.setdefault(key, []).append(value)


def make_optimizers(model: GAN, lr: float) -> dict[str, torch.optim.Optimizer]:
    """One Adam per player, DCGAN's ``betas = (0.5, 0.999)``."""
    return {"generator": torch.optim.Adam(model.generator.parameters(), lr=lr, betas=BETAS),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=BETAS)}  # fmt: skip


def batch_stream(x: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Full batches of reshuffled passes over ``x``, forever."""
    batch_size = min(batch_size, len(x))
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield x[order[start : start + batch_size]]


def train_step(model: GAN, batches: Iterator[Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """``d_steps`` discriminator steps, one generator step, the EMA update; returns what to log."""
    stats: dict[str, float] = {}
    # with one discriminator step, the generator step reuses its samples (one generator pass per step, as the
    # PyTorch DCGAN example does); with several, every discriminator step sees fresh ones
    reuse = model.d_steps == 1 and model.unroll_steps == 0
    fake = None
    for _ in range(model.d_steps):
        real = next(batches)
        fake = model.fake_batch(real) if reuse else None
        loss_d, stats = model.discriminator_loss(real, None if fake is None else fake.detach())
        optimizers["discriminator"].zero_grad(set_to_none=True)
        loss_d.backward()
        optimizers["discriminator"].step()
    frozen = model.unroll_steps == 0  # the unrolled loss differentiates through the discriminator's weights
    model.discriminator.requires_grad_(not frozen)
    loss_g = model.generator_loss(len(real), real, fake)
    optimizers["generator"].zero_grad(set_to_none=True)
    loss_g.backward()
    optimizers["generator"].step()
    model.discriminator.requires_grad_(True)
    if not torch.isfinite(loss_g):
        raise FloatingPointError(f"{type(model).__name__}: the generator's loss is {float(loss_g.detach())}")
    model.update_ema()
    return {**stats, "generator": float(loss_g.detach())}


def fit_gan(model: GAN, train: Tensor, *, epochs: int = 100, steps: int | None = None, batch_size: int = 64,
            lr: float = 2e-4, seed: int = 0, optimizers: dict[str, torch.optim.Optimizer] | None = None,
            history: GANHistory | None = None, on_epoch: Callable[[GANHistory], None] | None = None,
            threads: int | None = 1) -> GANHistory:  # fmt: skip
    """Train both players for ``epochs`` (or ``steps`` generator steps, if given); ``optimizers`` and ``history``
    resume a run, ``on_epoch(history)`` runs after every epoch (logging, checkpoints). Seed torch before building
    the model; ``seed`` fixes the batch order.

    Raises:
        FloatingPointError: a NaN or infinite discriminator output or generator loss, naming the generator step.
    """
    history = GANHistory() if history is None else history
    optimizers = make_optimizers(model, lr) if optimizers is None else optimizers
    device = model._anchor.device
    batches = batch_stream(train.to(device), batch_size, torch.Generator().manual_seed(seed + history.epochs))
    steps_per_epoch = -(-len(train) // batch_size)
    total_steps = steps if steps is not None else epochs * steps_per_epoch
    start = time.perf_counter() - history.seconds
    model.train()
    with torch_threads(threads):
        while history.steps < total_steps:
            sums: dict[str, float] = {}
            n = min(steps_per_epoch, total_steps - history.steps)
            for _ in range(n):
                try:
                    stats = train_step(model, batches, optimizers)
                except FloatingPointError as err:
                    raise FloatingPointError(f"{err} at generator step {history.steps + 1} (epoch "
                                             f"{history.epochs + 1})") from err  # fmt: skip
                history.steps += 1
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value / n
            history.epochs += 1
            history.add(sums)
            history.seconds = time.perf_counter() - start
            if on_epoch is not None:
                on_epoch(history)
                model.train()
    model.eval()
    return history


# ------------------------------------------------------------------------------------------------ sample quality


@torch.no_grad()
def sample_quality_report(model: GAN, data_name: str, reference: Tensor, n: int = QUALITY_SAMPLES,
                          seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Sample-quality numbers of ``n`` samples against ``reference`` data: on 8x8 and 28x28 images the Fréchet
    distance, KID, precision and recall in the shipped classifier's features; on 2D mixtures modes covered and the
    high-quality fraction; on any 2D data precision and recall of the points themselves. Empty for other data."""
    from generative import data, metrics

    reference = reference.cpu().float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if getattr(model, "translates", False):  # the test digits' task images translated back to digits
            fake = model.translate(model.source_of(reference.to(model._anchor))).cpu().float()
            report = {"l1": float((fake - reference).abs().mean())}
            if hasattr(model, "cycle_error"):
                report["cycle_a"], report["cycle_b"] = model.cycle_error(reference)
            if model.input_shape in CLASSIFIED:
                report.update(metrics.sample_quality(reference, fake.clamp(0, 1)))
            return report
        fake = model.sample(n).cpu().float()
    if model.input_shape in CLASSIFIED:
        return metrics.sample_quality(reference, fake.clamp(0, 1))
    if model.input_shape == (2,):
        report = dict(zip(("precision", "recall"), metrics.precision_recall(reference, fake), strict=True))
        modes = data.mixture_modes(data_name[len("toy:") :]) if data_name.startswith("toy:") else None
        if modes is not None:
            covered, good = metrics.mode_coverage(fake, *modes)
            report.update({"modes": covered, "of_modes": len(modes[0]), "high_quality": good})
        return report
    return {}


def describe_quality(report: dict[str, float], n_reference: int) -> str:
    if not report:
        return "no sample-quality features for this data (the shipped classifiers take 8x8 and 28x28 images)"
    if "l1" in report:
        parts = [f"translations of the {n_reference} test digits' task images: L1 to the digits {report['l1']:.4f}"]
        if "cycle_a" in report:
            parts.append(f"cycle errors {report['cycle_a']:.4f} (A -> B -> A), {report['cycle_b']:.4f} (B -> A -> B)")
        if "fd" in report:
            parts.append(f"FD {report['fd']:.2f}, precision {report['precision']:.3f}, recall {report['recall']:.3f}")
        return ", ".join(parts)
    parts = []
    if "fd" in report:
        parts.append(f"FD {report['fd']:.2f}, KID {report['kid']:.4f}")
    if "modes" in report:
        parts.append(f"modes covered {report['modes']}/{report['of_modes']}, high-quality fraction "
                     f"{report['high_quality']:.3f}")  # fmt: skip
    parts.append(f"precision {report['precision']:.3f}, recall {report['recall']:.3f}")
    return f"sample quality of {QUALITY_SAMPLES} samples against the {n_reference} test examples: " + ", ".join(parts)


# ------------------------------------------------------------------------------------------------ mpenv-gen train


def save_checkpoint(run_dir: Path, model: GAN, optimizers: dict[str, torch.optim.Optimizer], h: GANHistory) -> None:
    save_torch(run_dir, {"step": h.epochs, "modules": {"model": model.state_dict()},
                         "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                         "extra": {"steps": h.steps, "seconds": h.seconds, "log": h.log}})  # fmt: skip


def restore_checkpoint(run_dir: Path, model: GAN, optimizers: dict[str, torch.optim.Optimizer]) -> GANHistory:
    state = load_torch(run_dir, required=("step", "modules", "optimizers", "extra"))
    load_state_dict_checked(model, state["modules"]["model"], str(run_dir))
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    extra = state["extra"]
    return GANHistory(int(extra["steps"]), int(state["step"]), float(extra["seconds"]),
                      {k: list(v) for k, v in extra["log"].items()})  # fmt: skip


def train_run(args: argparse.Namespace, config: dict[str, Any], model: GAN, train_split: Tensor, val_split: Tensor,
              test_split: Tensor, device: torch.device) -> int:  # fmt: skip
    """``mpenv-gen train`` for a GAN: TensorBoard per epoch, a checkpoint per epoch, ``--resume``, Ctrl-C."""
    from generative.train import draw_samples, open_run, sample_figure
    from mpenv.logger import RunLogger

    optimizers = make_optimizers(model, config["learning_rate"])
    run_dir, history = open_run(args, config, lambda d: restore_checkpoint(d, model, optimizers),
                                list(optimizers.values()), GANHistory)  # fmt: skip

    with RunLogger(run_dir, config, total_steps=config["epochs"]) as log:

        def on_epoch(h: GANHistory) -> None:
            for key, values in h.log.items():
                group = "gradient_penalty" if key == "gradient_norm" else "loss" if key in (
                    "generator", "discriminator") else "discriminator"  # fmt: skip
                log.log(f"{group}/{key}", values[-1], h.epochs)
            for key, value in sample_quality_report(model, config["data"], val_split).items():
                log.log(f"quality/{key}_val", value, h.epochs)
            if h.epochs % args.sample_every == 0 or h.epochs == 1:
                with torch.random.fork_rng(devices=[]):  # seed 0: the same noise (or inputs) every time
                    samples = draw_samples(model, 64, 0, device, inputs=val_split)
                log.figure("samples", sample_figure(samples, f"epoch {h.epochs}"), h.epochs)
            save_checkpoint(run_dir, model, optimizers, h)

        try:
            fit_gan(model, train_split, epochs=config["epochs"], batch_size=config["batch_size"],
                    lr=config["learning_rate"], seed=config["seed"], optimizers=optimizers, history=history,
                    on_epoch=on_epoch, threads=None)  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted; the last checkpoint is kept in {run_dir}", file=sys.stderr)
            return 130
        except FloatingPointError as err:
            raise ValueError(f"{err}; the last checkpoint in {run_dir} is kept") from err
    print_quality(model, config, test_split)
    print(f"run directory: {run_dir}")
    return 0


def print_quality(model: GAN, config: dict[str, Any], test_split: Tensor) -> None:
    report = sample_quality_report(model, config["data"], test_split, seed=config["seed"])
    print(f"{config['model']} on {config['data']}: no likelihood (a GAN has no log_prob); "
          f"{describe_quality(report, len(test_split))}")  # fmt: skip
