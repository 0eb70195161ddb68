"""Diffusion side by side in one process: training speed against diffusers, DDIM against the ancestral loop,
and latent against pixel diffusion, on binarized 8x8 digits.

Parts (``--parts``, all by default):

- ``train``: training steps/s, batch ``--batch`` of digits, Adam 1e-3, single-threaded torch, float32, CPU,
  ``--rounds`` alternating rounds of ``--steps`` steps each (the order flips every round; medians). A step is
  drawing ``t`` and ``eps``, noising, the network, the MSE and Adam. Three contenders:
  ours (``DDPM.loss``: our schedule and U-Net), diffusers' ``DDPMScheduler.add_noise`` driving the very same U-Net
  (same network: the difference is the training-step code), and diffusers' own ``UNet2DModel`` of matching shape
  (block widths 16 and 32, one ResNet block per level, attention at 4x4, GroupNorm of 8) with its scheduler.
- ``quality``: trains the pixel DDPM (``DDPM((1, 8, 8), n_bins=2)``, seed 0, ``--epochs`` epochs of
  ``generative.fit``), evaluated every ``--eval-every`` epochs by the Frechet distance of 360 DDIM-50 samples
  (eta 0, seed 1) to the 360 test images in the shipped classifier's features (the likelihood table's protocol); then,
  for DDPM with all 1000 steps and DDIM with 100 and 50, the sampling time of 360 samples and their FD, and the
  full variational bound on the test images in nats, with the reverse steps' variance ``beta_t`` (the course's)
  and the posterior's (tighter; the same network).
- ``latent``: trains a VAE (``generative.vae.VAE``, latent 8) and a DDPM on its codes (``LatentDDPM``, MLP
  denoiser) for ``--epochs``, its curve evaluated the same way with the VAE's training time included.

With both, a table of the training time each first reached FD ``--target``.

    python benchmarks/bench_diffusion.py --parts train              # about 1 minute
    python benchmarks/bench_diffusion.py --parts quality --epochs 400
    python benchmarks/bench_diffusion.py                            # everything, about an hour on 2 busy cores

Needs ``pip install diffusers`` (``pip install -e .[bench]``) for the ``train`` part.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative import data
from generative.diffusion import DDPM, LatentDDPM
from generative.fit import FitHistory, fit
from generative.metrics import sample_quality
from generative.vae import VAE
from mpenv.device import seed_everything

DATA = "digits-binary"


# ------------------------------------------------------------------------------------------------ training speed


def ours_step(model: DDPM, optimizer: torch.optim.Optimizer) -> Callable[[Tensor], None]:
    def step(x: Tensor) -> None:
        loss = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def diffusers_step(net: nn.Module, optimizer: torch.optim.Optimizer, ours_net: bool) -> Callable[[Tensor], None]:
    """diffusers' scheduler (its ``t`` is 0-based: step ``t + 1`` of ours) driving ``net``."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

    def step(x: Tensor) -> None:
        x0 = 2 * x - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (len(x0),))
        noisy = scheduler.add_noise(x0, noise, t)
        prediction = net(noisy, t + 1) if ours_net else net(noisy, t).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def diffusers_unet() -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       attention_head_dim=8)  # fmt: skip


def parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def bench_train(args: argparse.Namespace) -> None:
    train_x = data.load(DATA, seed=0).train
    torch.manual_seed(0)
    ours = DDPM((1, 8, 8), n_bins=2, ema_decay=None)  # EMA is an extra the others lack: off for like for like
    twin = DDPM((1, 8, 8), n_bins=2, ema_decay=None).net
    twin.load_state_dict(ours.net.state_dict())
    theirs = diffusers_unet()
    steps = {"ours": ours_step(ours, torch.optim.Adam(ours.parameters(), 1e-3)),
             "diffusers scheduler + our U-Net": diffusers_step(twin, torch.optim.Adam(twin.parameters(), 1e-3), True),
             "diffusers scheduler + UNet2DModel": diffusers_step(theirs, torch.optim.Adam(theirs.parameters(), 1e-3),
                                                                 False)}  # fmt: skip
    sizes = {"ours": parameters(ours.net), "diffusers scheduler + our U-Net": parameters(twin),
             "diffusers scheduler + UNet2DModel": parameters(theirs)}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batches = [train_x[torch.randint(0, len(train_x), (args.batch,), generator=g)] for _ in range(args.steps)]
    for step in steps.values():  # warm-up
        step(batches[0])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for name in order:
            start = time.perf_counter()
            for x in batches:
                steps[name](x)
            times[name].append(args.steps / (time.perf_counter() - start))
    print(f"training steps/s, batch {args.batch}, {args.rounds} alternating rounds of {args.steps} steps, "
          f"1 thread, diffusers {version('diffusers')}")  # fmt: skip
    print("| contender | parameters | steps/s (median) | ours / it |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(times["ours"])
    for name, values in times.items():
        rate = statistics.median(values)
        print(f"| {name} | {sizes[name]:,} | {rate:.1f} | {base / rate:.2f}x |")


# ------------------------------------------------------------------------------------------------ sample quality


def quality(model: nn.Module, test: Tensor, seed: int, **sample_kwargs) -> tuple[float, float]:
    """(seconds, FD) of as many samples as test images."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    samples = model.sample(len(test), **sample_kwargs)
    seconds = time.perf_counter() - start
    return seconds, sample_quality(test, samples)["fd"]


# ------------------------------------------------------------------------------------------------ pixel and latent


Trainer = Callable[[Callable[[FitHistory], None], dict[str, nn.Module]], None]
"""``trainer(on_epoch, holder)`` builds a model into ``holder["model"]`` and fits it, calling ``on_epoch``."""

Curve = list[tuple[int, float, float]]
"""(epoch, cumulative training seconds, FD of 360 DDIM-50 samples)."""


def curve(train_model: Trainer, test: Tensor, every: int, offset: float = 0.0) -> tuple[Curve, nn.Module]:
    """The FD every ``every`` epochs (the evaluation untimed), and the trained model."""
    points: Curve = []
    holder: dict[str, nn.Module] = {}
    elapsed = [offset, time.perf_counter()]

    def on_epoch(h: FitHistory) -> None:
        now = time.perf_counter()
        elapsed[0] += now - elapsed[1]
        if h.epochs % every == 0:
            model = holder["model"]
            model.eval()
            with torch.random.fork_rng(devices=[]):
                fd = quality(model, test, 1, sampler="ddim", steps=50)[1]
            model.train()
            points.append((h.epochs, elapsed[0], fd))
            print(f"  epoch {h.epochs}: {elapsed[0]:.0f} s, FD {fd:.1f}", flush=True)
        elapsed[1] = time.perf_counter()

    train_model(on_epoch, holder)
    return points, holder["model"]


def bench_pixel(args: argparse.Namespace) -> Curve:
    """The pixel DDPM's curve, then its samplers and its bound."""
    train_x, val_x, test = data.load(DATA, seed=0)

    def pixel(on_epoch, holder):
        seed_everything(0)
        holder["model"] = model = DDPM((1, 8, 8), n_bins=2)
        fit(model, train_x, val_x, epochs=args.epochs, patience=args.epochs, on_epoch=on_epoch)

    print(f"pixel DDPM (U-Net) on {DATA}, {args.epochs} epochs:")
    points, model = curve(pixel, test, args.eval_every)
    print("| sampler | seconds for 360 samples | FD to test |")
    print("| --- | --- | --- |")
    for label, kwargs in [("DDPM, 1000 steps", {}), ("DDIM, 100 steps, eta 0", {"sampler": "ddim", "steps": 100}),
                          ("DDIM, 50 steps, eta 0", {"sampler": "ddim", "steps": 50}),
                          ("DDIM, 50 steps, eta 1", {"sampler": "ddim", "steps": 50, "eta": 1.0})]:  # fmt: skip
        seconds, fd = quality(model, test, 1, **kwargs)
        print(f"| {label} | {seconds:.1f} | {fd:.1f} |", flush=True)
    for variance in ("beta", "posterior"):  # the same network; the reverse steps' fixed variance differs
        model.variance = variance
        bound = model.bound(test, seed=0)
        nats, first = float(bound.total.mean()), float(bound.steps[:, :10].sum(1).mean())
        print(f"test variational bound, sigma_t^2 = {variance}: {nats:.2f} nats ({nats / 64 / math.log(2):.4f} "
              f"bits/dim; L_T {float(bound.prior.mean()):.4f}, L_0 {float(bound.decoder.mean()):.3f}, L_1..L_10 "
              f"{first:.2f})", flush=True)  # fmt: skip
    return points


def bench_latent(args: argparse.Namespace) -> Curve:
    train_x, val_x, test = data.load(DATA, seed=0)
    seed_everything(0)
    vae = VAE((1, 8, 8), latent_dim=8)
    start = time.perf_counter()
    fit(vae, train_x, val_x, epochs=500, lr=3e-3, patience=15)
    vae_seconds = time.perf_counter() - start
    print(f"VAE (latent 8): {vae_seconds:.0f} s; FD of its own samples {quality(vae, test, 1)[1]:.1f}")

    def latent(on_epoch, holder):
        seed_everything(0)
        holder["model"] = model = LatentDDPM((1, 8, 8), vae, hidden=(256, 256, 256))
        fit(model, train_x, val_x, epochs=args.epochs, patience=args.epochs, on_epoch=on_epoch)

    print(f"latent DDPM (the VAE's codes, MLP 256-256-256), {args.epochs} epochs (the VAE's time included):")
    points, model = curve(latent, test, args.eval_every, offset=vae_seconds)
    seconds, _ = quality(model, test, 1, sampler="ddim", steps=50)
    print(f"latent DDIM-50 sampling: {seconds:.2f} s for 360 samples")
    return points


def time_to_target(curves: dict[str, Curve], target: float) -> None:
    print(f"| model | first at FD <= {target:g} | best FD (epoch, s) |")
    print("| --- | --- | --- |")
    for name, points in curves.items():
        reached = [(e, s) for e, s, fd in points if fd <= target]
        when = f"epoch {reached[0][0]}, {reached[0][1]:.0f} s" if reached else "not reached"
        epoch, seconds, best = min(points, key=lambda p: p[2])
        print(f"| {name} | {when} | {best:.1f} ({epoch}, {seconds:.0f} s) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["train", "quality", "latent"],
                        choices=["train", "quality", "latent"])  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="training steps per round (train)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=400, help="training epochs (quality, latent)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--target", type=float, default=40.0, help="the FD whose first time is reported")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if "train" in args.parts:
        bench_train(args)
    curves = {}
    if "quality" in args.parts:
        curves["pixel"] = bench_pixel(args)
    if "latent" in args.parts:
        curves["latent"] = bench_latent(args)
    if curves:
        time_to_target(curves, args.target)


if __name__ == "__main__":
    main()
