"""GAN benchmarks: time to cover the eight Gaussians per variant, and DCGAN training throughput against a
straightforward reference loop with the same networks.

1. Eight Gaussians (``toy:eight_gaussians``, 10,000 training points, batch 256, Adam (0.5, 0.999) at 1e-3): the
   minimax (saturating), non-saturating, WGAN-GP and unrolled GANs (``generative.gans`` defaults) are trained
   by ``fit_gan`` and checked every ``--check-every`` generator steps (5,000 samples): the first check with all
   8 modes covered and at least 90% of samples within 3 standard deviations of a mode (the tests' bar) gives
   the steps and seconds (training time only), per seed; ``-`` when not reached within ``--max-steps``.

2. DCGAN throughput on the grey digits (``DCGAN((1, 8, 8))``: the same generator and discriminator objects'
   architecture on both sides, batch 64, Adam (0.5, 0.999) at 2e-4, non-saturating loss): ours is
   ``generative.gans.train.train_step``; the reference is the PyTorch DCGAN example's loop (``examples/dcgan``):
   ``D`` on the real batch and backward, ``G(z)`` and ``D`` on its detached output and backward, the
   discriminator's step, then ``D`` on the same ``G(z)`` and backward through both players for the generator's
   step (binary cross-entropy on logits). Both train their own copy from the same initial weights on the same
   batch sequence. ``--rounds`` rounds of ``--round-steps`` steps alternate ours / reference (the order flips
   every round); images/s (real images through the discriminator per second) is the median over the rounds.
   After the rounds, the Fréchet distance of 360 samples of each to the 360 test digits (the shipped
   classifier's features) says both learned alike. Goal: ours >= 1.3x the reference at the same FD.

    python benchmarks/bench_gans.py                      # about 6 min on 2 busy cores
    python benchmarks/bench_gans.py --seeds 0 --max-steps 2000 --rounds 6
    python benchmarks/bench_gans.py --parts throughput
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from generative import data, metrics
from generative.gans import DCGAN, GAN, WGANGP, UnrolledGAN
from generative.gans.train import GANHistory, batch_stream, fit_gan, make_optimizers, train_step

VARIANTS = {"minimax": lambda: GAN((2,), loss="minimax"), "non-saturating": lambda: GAN((2,)),
            "WGAN-GP": lambda: WGANGP((2,)), "unrolled (5 steps)": lambda: UnrolledGAN((2,))}  # fmt: skip


def time_to_cover(make, seed: int, check_every: int, max_steps: int) -> tuple[int, float] | None:
    """``(steps, seconds)`` of the first check with 8/8 modes and >= 90% high-quality samples."""
    train_split = data.load("toy:eight_gaussians", seed=0).train
    modes = data.mixture_modes("eight_gaussians")
    torch.manual_seed(seed)
    gan, history = make(), GANHistory()
    optimizers = make_optimizers(gan, 1e-3)
    while history.steps < max_steps:
        fit_gan(gan, train_split, steps=history.steps + check_every, batch_size=256, seed=seed,
                optimizers=optimizers, history=history)  # fmt: skip
        covered, good = metrics.mode_coverage(gan.sample(5000), *modes)
        if covered == 8 and good >= 0.9:
            return history.steps, history.seconds
    return None


def reference_step(gan: GAN, real: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """The PyTorch DCGAN example's iteration, on logits."""
    netD, netG = gan.discriminator, gan.generator
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
    netD.zero_grad()
    F.binary_cross_entropy_with_logits(netD(real), ones).backward()
    fake = netG(torch.randn(len(real), gan.latent_dim))
    F.binary_cross_entropy_with_logits(netD(fake.detach()), zeros).backward()
    optimizers["discriminator"].step()
    netG.zero_grad()
    F.binary_cross_entropy_with_logits(netD(fake), ones).backward()
    optimizers["generator"].step()


def throughput(rounds: int, round_steps: int, seed: int) -> None:
    train_split, _, test_split = data.load("digits", seed=0)
    torch.manual_seed(seed)
    ours = DCGAN((1, 8, 8))
    reference = copy.deepcopy(ours)
    players = {"ours": (ours, make_optimizers(ours, 2e-4)), "reference": (reference, make_optimizers(reference, 2e-4))}
    streams = {name: batch_stream(train_split, 64, torch.Generator().manual_seed(seed)) for name in players}
    rates: dict[str, list[float]] = {name: [] for name in players}
    for r in range(rounds):
        for name in (("ours", "reference") if r % 2 == 0 else ("reference", "ours")):
            gan, optimizers = players[name]
            gan.train()
            start = time.perf_counter()
            for _ in range(round_steps):
                if name == "ours":
                    train_step(gan, streams[name], optimizers)
                else:
                    reference_step(gan, next(streams[name]), optimizers)
            rates[name].append(round_steps * 64 / (time.perf_counter() - start))
    classifier = metrics.load_classifier()
    fds = {}
    for name, (gan, _) in players.items():
        torch.manual_seed(0)
        with torch.no_grad():
            fds[name] = metrics.frechet_distance(classifier.features(test_split), classifier.features(gan.sample(360)))
    ours_rate, ref_rate = statistics.median(rates["ours"]), statistics.median(rates["reference"])
    ratio = ours_rate / ref_rate
    print(f"DCGAN on grey digits, batch 64, {rounds} alternating rounds of {round_steps} steps, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s)")  # fmt: skip
    print(f"{'':>10} {'images/s':>9} {'FD':>7}")
    for name, rate in (("ours", ours_rate), ("reference", ref_rate)):
        print(f"{name:>10} {rate:>9.0f} {fds[name]:>7.2f}")
    met = ratio >= 1.3 and fds["ours"] <= 1.1 * fds["reference"]
    print(f"ratio ours / reference {ratio:.2f}x; goal >= 1.3x at the same FD: {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--check-every", type=int, default=250, help="generator steps between coverage checks")
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-steps", type=int, default=200)
    parser.add_argument("--parts", nargs="+", choices=["modes", "throughput"], default=["modes", "throughput"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    if "modes" in args.parts:
        time_to_cover_table(args)
    if "throughput" in args.parts:
        throughput(args.rounds, args.round_steps, args.seeds[0])


def time_to_cover_table(args: argparse.Namespace) -> None:
    print("eight Gaussians: generator steps (seconds) to 8/8 modes with >= 90% of samples within 3 sigma, "
          f"checked every {args.check_every} steps")  # fmt: skip
    print(f"{'variant':>20} " + " ".join(f"{'seed ' + str(s):>16}" for s in args.seeds))
    for name, make in VARIANTS.items():
        cells = []
        for seed in args.seeds:
            reached = time_to_cover(make, seed, args.check_every, args.max_steps)
            cells.append("-" if reached is None else f"{reached[0]} ({reached[1]:.1f} s)")
        print(f"{name:>20} " + " ".join(f"{c:>16}" for c in cells), flush=True)
    print()


if __name__ == "__main__":
    main()
